// tenantdb-sidecar as a process, the way a pod runs it: the real tenantdb-init provisions
// the tenant against the real PostgreSQL / MariaDB test servers and the Kubernetes API
// stand-in, then one or more sidecars rotate, publish, serve probes and metrics, crash
// at fault points and recover, while clients keep logging in from the files.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>
#include <unistd.h>

#include <libpq-fe.h>
#include <mysql.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "credential_values.hpp"
#include "kube_standin.hpp"
#include "metrics.hpp"
#include "pod.hpp"
#include "process.hpp"
#include "suite.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/naming.hpp"
#include "tenantdb/rotation.hpp"
#include "testdb.hpp"

namespace fs = std::filesystem;
using namespace tenantdb;
using namespace std::chrono_literals;

namespace {

[[maybe_unused]] const bool server_logs = test::dump_server_logs_on_failure({"pg", "mariadb"});

constexpr const char* ns = "team-a";
using test::eventually;
using test::http;
using test::tail;

using test::metric;
using test::value_of;

// Stops and joins a background thread however the test leaves its scope (an ASSERT
// returns early; a joinable std::thread would terminate the process).
struct background {
  std::atomic<bool>& stop;
  std::thread thread;
  ~background() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
  void finish() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
};

struct sidecar {
  std::string name;
  fs::path out;
  std::uint16_t port = 0;
  std::uint16_t admin = 0;
  std::unique_ptr<test::child_process> proc;

  std::string metrics() const { return http(port, "GET", "/metrics").body; }
};

class SidecarFixture : public ::testing::Test {
protected:
  virtual std::string engine() const = 0;

  void SetUp() override {
    conn_ = test::load_connector(engine());
    work_ = fs::temp_directory_path() / ("tenantdb-sidecar-" + std::to_string(::getpid()) + "-" + test_name());
    fs::remove_all(work_);
    fs::create_directories(work_);
    who_ = test::unique_tenant("sc");
    who_.namespace_name = ns;
    secret_name_ = "vc-db-" + who_.name;
    test::set_up_pod(api_, pod_, engine(), secret_name_);
    kubeconfig_ = (work_ / "kubeconfig").string();
    test::write_kubeconfig(kubeconfig_, api_, pod_);
  }

  void TearDown() override {
    for (auto& s : sidecars_) {
      if (HasFailure() && s->proc)
        std::cerr << "--- " << s->name << " (last lines of stderr)\n" << tail(s->proc->err(), 40) << "\n";
      if (s->proc) {
        s->proc->kill(SIGKILL);
        s->proc->wait(10s);
      }
    }
    sidecars_.clear();
    fs::remove_all(work_);
  }

  static std::string test_name() {
    std::string n = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : n)
      if (c == '/') c = '_';
    return n;
  }

  void init() {
    const auto r = test::run_process({TENANTDB_INIT_BIN, "--tenant", who_.name, "--namespace", ns, "--connector",
                                      "platform/db-connector", "--kubeconfig", kubeconfig_, "--timeout", "60s"},
                                     {{"KUBECONFIG", ""}, {"POD_NAMESPACE", ""}, {"TENANTDB_TENANT", ""}});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  sidecar& start(const std::string& name, const std::vector<std::string>& extra,
                 const std::map<std::string, std::string>& env = {}, fs::path out = {}) {
    auto s = std::make_unique<sidecar>();
    s->name = name;
    s->out = out.empty() ? work_ / ("out-" + name) : out;
    s->port = test::unused_port();
    s->admin = test::unused_port();
    launch(*s, extra, env);
    sidecars_.push_back(std::move(s));
    return *sidecars_.back();
  }

  void launch(sidecar& s, const std::vector<std::string>& extra, const std::map<std::string, std::string>& env) {
    std::vector<std::string> args = {TENANTDB_SIDECAR_BIN,
                                     "--tenant",
                                     who_.name,
                                     "--namespace",
                                     ns,
                                     "--kubeconfig",
                                     kubeconfig_,
                                     "--output-dir",
                                     s.out.string(),
                                     "--listen",
                                     "127.0.0.1:" + std::to_string(s.port),
                                     "--admin-listen",
                                     "127.0.0.1:" + std::to_string(s.admin),
                                     "--pod-name",
                                     s.name,
                                     "--sync-interval",
                                     sync_interval_,
                                     "--check-interval",
                                     "1s",
                                     "--log-level",
                                     "debug"};
    args.insert(args.end(), extra.begin(), extra.end());
    if (std::find(extra.begin(), extra.end(), "--local") != extra.end()) {
      const auto k = std::find(args.begin(), args.end(), "--kubeconfig");
      args.erase(k, k + 2);  // local mode refuses Kubernetes flags
    }
    std::map<std::string, std::string> e = {{"KUBECONFIG", ""},
                                            {"POD_NAMESPACE", ""},
                                            {"POD_NAME", ""},
                                            {"TENANTDB_TENANT", ""},
                                            {"TENANTDB_TEST_CRASH_AT", ""}};
    for (const auto& [k, v] : env) e[k] = v;
    s.proc =
        std::make_unique<test::child_process>(args, e, (work_ / s.name).string() + "-" + std::to_string(++launches_));
  }

  std::string stored(const std::string& key) const { return api_.secret_value(ns, secret_name_, key).value_or(""); }

  // An annotation of the Secret; "" when absent (the rotator blanks removed ones).
  std::string annotation(const std::string& key) const { return test::secret_annotation(api_, ns, secret_name_, key); }

  bool intent_left() const {
    return !annotation(annotations::rotation).empty() || api_.secret_value(ns, secret_name_, pending_password_key);
  }

  // True if the server accepts the login, false if it refuses it; other failures fail the test.
  bool logs_in(const std::string& user, const std::string& password) const {
    try {
      db_timeouts t;
      t.connect = 10s;
      verify_login(conn_.server, login{user, secret(password)}, stored(keys::database), t);
      return true;
    } catch (const error& e) {
      if (e.kind() != error_kind::verification) ADD_FAILURE() << "login check could not run: " << e.what();
      return false;
    }
  }

  static credential_data files(const sidecar& s) { return read_directory(s.out); }

  connector conn_;
  fs::path work_;
  tenant who_;
  std::string secret_name_;
  std::string kubeconfig_;
  test::KubeStandin api_;
  test::pod_identity pod_;
  std::vector<std::unique_ptr<sidecar>> sidecars_;
  int launches_ = 0;
  std::string sync_interval_ = "300ms";  ///< every sidecar's --sync-interval
};

class SidecarTest : public SidecarFixture, public ::testing::WithParamInterface<std::string> {
protected:
  std::string engine() const override { return GetParam(); }
};

// ---------------------------------------------------------------------------------------

TEST_P(SidecarTest, RotatesOnScheduleAndRetiresThePreviousPasswordAfterTheGrace) {
  init();
  auto& sc = start("pod-a", {"--rotate-every", "3s", "--grace", "2s", "--jitter", "0"});
  ASSERT_TRUE(eventually([&] { return !value_of(files(sc), keys::password).empty(); }, 15s)) << "no files";
  const auto first = files(sc);
  const std::string user0 = value_of(first, keys::user);
  const std::string pw0 = value_of(first, keys::password);
  EXPECT_EQ(pw0, stored(keys::password));
  EXPECT_TRUE(logs_in(user0, pw0));

  ASSERT_TRUE(eventually([&] { return value_of(files(sc), keys::password) != pw0; }, 20s)) << "no rotation";
  const auto switched_at = std::chrono::steady_clock::now();
  const auto second = files(sc);
  const std::string user1 = value_of(second, keys::user);
  const std::string pw1 = value_of(second, keys::password);
  EXPECT_NE(user1, user0) << "dual: the other account becomes active";
  EXPECT_TRUE(logs_in(user1, pw1));
  EXPECT_NE(value_of(second, keys::data_source).find(pw1), std::string::npos) << "every file of the generation moved";
  EXPECT_EQ(second.count(keys::standby_password), 0u);
  EXPECT_EQ(second.count(pending_password_key), 0u);
  // The previous credential keeps working during the grace period...
  EXPECT_TRUE(logs_in(user0, pw0)) << "previous credential refused during the grace period";
  // ...and is refused once it is over.
  ASSERT_TRUE(eventually([&] { return !logs_in(user0, pw0); }, 15s)) << "previous credential still works";
  EXPECT_GE(std::chrono::steady_clock::now() - switched_at, 1s) << "refused before the grace period ended";

  const auto m = sc.metrics();
  EXPECT_GE(metric(m, "tenantdb_rotations_total{result=\"rotated\"}"), 1) << m;
  EXPECT_GE(metric(m, "tenantdb_rotations_total{result=\"retired\"}"), 1) << m;
  EXPECT_GT(metric(m, "tenantdb_next_rotation_timestamp_seconds"), 1e9) << m;
}

// The Events of a rotation: Rotated, then Retired, Normal, on the pod named by POD_NAME,
// from tenantdb-sidecar, with no password (old, new, standby or admin) in any of them.
TEST_P(SidecarTest, RotationEmitsRotatedAndRetiredEventsOnThePodWithNoSecret) {
  init();
  const std::string pw0 = stored(keys::password);
  const std::string standby0 = stored(keys::standby_password);
  auto& sc = start("pod-a", {"--rotate-every", "3s", "--grace", "1s", "--jitter", "0"}, {{"POD_NAME", "pod-a"}});
  const auto reasons_on_pod = [&] {
    std::set<std::string> reasons;
    for (const auto& json : api_.list_objects("events", ns)) {
      rapidjson::Document d;
      d.Parse(json.data(), json.size());
      if (d.HasParseError() || !d.HasMember("involvedObject") || !d["involvedObject"].HasMember("name")) continue;
      if (std::string(d["involvedObject"]["name"].GetString()) != "pod-a") continue;
      EXPECT_EQ(std::string(d["involvedObject"]["kind"].GetString()), "Pod");
      EXPECT_EQ(std::string(d["source"]["component"].GetString()), "tenantdb-sidecar");
      EXPECT_EQ(std::string(d["type"].GetString()), "Normal") << json;
      reasons.insert(d["reason"].GetString());
    }
    return reasons;
  };
  ASSERT_TRUE(eventually([&] { return reasons_on_pod().count("Rotated") == 1; }, 20s)) << "no Rotated Event";
  ASSERT_TRUE(eventually([&] { return reasons_on_pod().count("Retired") == 1; }, 20s)) << "no Retired Event";
  const std::vector<std::string> passwords{pw0,
                                           standby0,
                                           stored(keys::password),
                                           stored(keys::standby_password),
                                           stored(pending_password_key),
                                           conn_.admin_password.reveal()};
  for (const auto& json : api_.list_objects("events", ns)) EXPECT_EQ(test::find_password(json, passwords), "");
  EXPECT_EQ(metric(sc.metrics(), "tenantdb_events_failed_total"), 0);
}

// Events are optional: a Role without them loses the Events, never a rotation.
TEST_P(SidecarTest, WithoutRbacOnEventsRotationGoesOnAndTheFailuresAreCounted) {
  init();
  const auto events_before = api_.list_objects("events", ns).size();  // the init's Provisioned
  api_.revoke(pod_.user);
  api_.allow(pod_.user, "get", ns, "secrets", secret_name_);
  api_.allow(pod_.user, "update", ns, "secrets", secret_name_);
  const std::string pw0 = stored(keys::password);
  auto& sc = start("pod-a", {"--rotate-every", "2s", "--grace", "1s", "--jitter", "0"}, {{"POD_NAME", "pod-a"}});
  ASSERT_TRUE(eventually([&] { return stored(keys::password) != pw0 && !stored(keys::password).empty(); }, 20s))
      << "no rotation";
  ASSERT_TRUE(eventually([&] { return metric(sc.metrics(), "tenantdb_events_failed_total") >= 1; }, 10s))
      << sc.metrics();
  EXPECT_EQ(api_.list_objects("events", ns).size(), events_before);
  EXPECT_EQ(metric(sc.metrics(), "tenantdb_rotations_total{result=\"failed\"}"), 0);
}

TEST_P(SidecarTest, ThreeReplicasRotateOncePerPeriodAndConverge) {
  init();
  std::vector<sidecar*> pods;
  for (int i = 0; i < 3; ++i)
    pods.push_back(&start("pod-" + std::to_string(i), {"--rotate-every", "3s", "--grace", "1s", "--jitter", "0"}));
  for (auto* p : pods)
    ASSERT_TRUE(eventually([&] { return !value_of(files(*p), keys::password).empty(); }, 15s)) << p->name;

  // Watch the Secret: every change of the active password is one rotation.
  std::vector<std::chrono::steady_clock::time_point> switches;
  std::string last = stored(keys::password);
  std::chrono::milliseconds worst_convergence{0};
  bool converging = false;
  std::chrono::steady_clock::time_point converging_since{};
  const auto end = std::chrono::steady_clock::now() + 13s;
  while (std::chrono::steady_clock::now() < end) {
    const std::string now_pw = stored(keys::password);
    const auto now = std::chrono::steady_clock::now();
    if (now_pw != last) {
      switches.push_back(now);
      last = now_pw;
      converging_since = now;
      converging = true;
    }
    if (converging) {
      bool all = true;
      for (auto* p : pods) all = all && value_of(files(*p), keys::password) == last;
      const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(now - converging_since);
      worst_convergence = std::max(worst_convergence, took);
      if (all) converging = false;
    }
    std::this_thread::sleep_for(25ms);
  }
  ASSERT_GE(switches.size(), 2u) << "expected a rotation every ~3-4 s";
  for (std::size_t i = 1; i < switches.size(); ++i)
    // The schedule counts from lastRotation, stored in whole seconds: up to 1 s early.
    EXPECT_GE(switches[i] - switches[i - 1], 1900ms) << "two rotations within one period";
  EXPECT_LE(worst_convergence, 3s) << "a replica's files lagged behind the Secret";

  // Each switch was made by exactly one replica.
  ASSERT_TRUE(eventually(
      [&] {
        double rotated = 0;
        for (auto* p : pods) {
          const auto count = metric(p->metrics(), "tenantdb_rotations_total{result=\"rotated\"}");
          if (!count) return false;  // every replica reports the counter
          rotated += *count;
        }
        const std::string now_pw = stored(keys::password);
        if (now_pw != last) {  // one more happened since the loop ended
          switches.push_back(std::chrono::steady_clock::now());
          last = now_pw;
        }
        return rotated == static_cast<double>(switches.size());
      },
      5s))
      << "rotations in the metrics do not match the switches in the Secret (" << switches.size() << ")";
  for (auto* p : pods)
    EXPECT_TRUE(eventually([&] { return value_of(files(*p), keys::password) == stored(keys::password); }, 5s))
        << p->name;
}

TEST_P(SidecarTest, ClientsReadingTheFilesNeverFailAndNeverSeeAMixedSet) {
  init();
  const bool pg = engine() == "pg";
  auto& sc = start("pod-r", {"--rotate-every", "2s", "--grace", "3s", "--jitter", "0", "--file-mode", "0400",
                             "--formats", pg ? "pgpass,env,json" : "mycnf,env,json"});
  ASSERT_TRUE(eventually([&] { return !value_of(files(sc), keys::password).empty(); }, 15s));
  const std::string database = stored(keys::database);

  std::atomic<bool> stop{false};
  std::atomic<int> logins{0}, login_failures{0}, format_logins{0}, format_failures{0}, reads{0}, mixed{0}, partial{0};
  std::mutex mu;
  std::set<std::string> seen;
  std::vector<std::string> problems;
  const auto note = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock(mu);
    if (problems.size() < 10) problems.push_back(what);
  };

  // 1: re-reads the files before every login, as a workload that reloads would.
  std::thread file_client([&] {
    while (!stop) {
      const auto d = read_directory(sc.out);
      try {
        db_timeouts t;
        t.connect = 10s;
        verify_login(conn_.server, login{value_of(d, keys::user), secret(value_of(d, keys::password))}, database, t);
        ++logins;
      } catch (const error& e) {
        ++login_failures;
        note(std::string("file client: ") + e.what());
      }
    }
  });

  // 2: a client library reading its own file: libpq with passfile=, or Connector/C with
  // the option file.
  std::thread format_client([&] {
    const std::string ca = (sc.out / keys::ca_cert).string();
    while (!stop) {
      const auto d = read_directory(sc.out);
      if (pg) {
        const std::string user = value_of(d, keys::user);
        const std::string passfile = (sc.out / "pgpass").string();
        const std::string port = std::to_string(conn_.server.port);
        const char* k[] = {"host",    "port",        "dbname",          "user", "passfile",
                           "sslmode", "sslrootcert", "connect_timeout", nullptr};
        const char* v[] = {conn_.server.host.c_str(),
                           port.c_str(),
                           database.c_str(),
                           user.c_str(),
                           passfile.c_str(),
                           "verify-full",
                           ca.c_str(),
                           "10",
                           nullptr};
        PGconn* c = PQconnectdbParams(k, v, 0);
        if (PQstatus(c) == CONNECTION_OK) {
          ++format_logins;
        } else {
          ++format_failures;
          note(std::string("libpq passfile client: ") + PQerrorMessage(c));
        }
        PQfinish(c);
      } else {
        MYSQL* m = mysql_init(nullptr);
        const std::string cnf = (sc.out / "my.cnf").string();
        mysql_optionsv(m, MYSQL_READ_DEFAULT_FILE, cnf.c_str());
        unsigned timeout = 10;
        mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
        if (mysql_real_connect(m, nullptr, nullptr, nullptr, nullptr, 0, nullptr, 0) != nullptr) {
          ++format_logins;
        } else {
          ++format_failures;
          note(std::string("Connector/C my.cnf client: ") + mysql_error(m));
        }
        mysql_close(m);
      }
    }
  });

  // 3: resolves ..data once and reads every file of that generation: all present, all
  // from one credential.
  std::thread reader([&] {
    const std::vector<std::string> expected = {keys::user,        keys::password,     keys::data_source,
                                               "credentials.env", "credentials.json", pg ? "pgpass" : "my.cnf"};
    while (!stop) {
      char target[4096];
      const ssize_t n = ::readlink((sc.out / "..data").c_str(), target, sizeof target - 1);
      if (n <= 0) {
        ++partial;
        note("no ..data link");
        continue;
      }
      const fs::path gen = sc.out / std::string(target, static_cast<std::size_t>(n));
      std::map<std::string, std::string> content;
      bool vanished = false;
      for (const auto& key : expected) {
        const int fd = ::open((gen / key).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
          vanished = true;
          break;
        }
        std::string text;
        char buf[4096];
        ssize_t r;
        while ((r = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(r));
        ::close(fd);
        content[key] = text;
      }
      if (vanished) {
        // Only a generation that was replaced may disappear under a reader (it is removed
        // after ..data moved on); a key missing while ..data still names it is a partial set.
        char again[4096];
        const ssize_t m = ::readlink((sc.out / "..data").c_str(), again, sizeof again - 1);
        if (m == n &&
            std::string(again, static_cast<std::size_t>(m)) == std::string(target, static_cast<std::size_t>(n))) {
          ++partial;
          note("a key is missing from a live generation");
        }
        continue;
      }
      ++reads;
      const std::string& pw = content[keys::password];
      const std::string& user = content[keys::user];
      {
        std::lock_guard<std::mutex> lock(mu);
        seen.insert(pw);
      }
      const bool consistent = content[keys::data_source].find(pw) != std::string::npos &&
                              content[keys::data_source].find(user) != std::string::npos &&
                              content["credentials.env"].find("DB_PASSWORD='" + pw + "'") != std::string::npos &&
                              content["credentials.env"].find("DB_USER='" + user + "'") != std::string::npos &&
                              content["credentials.json"].find("\"password\":\"" + pw + "\"") != std::string::npos &&
                              content[pg ? "pgpass" : "my.cnf"].find(pw) != std::string::npos;
      if (!consistent) {
        ++mixed;
        note("a generation mixes two credentials");
      }
    }
  });

  const auto deadline = std::chrono::steady_clock::now() + 25s;
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (seen.size() >= 4) break;  // three rotations seen by the reader
    }
    std::this_thread::sleep_for(100ms);
  }
  stop = true;
  file_client.join();
  format_client.join();
  reader.join();

  for (const auto& p : problems) ADD_FAILURE() << p;
  EXPECT_GE(seen.size(), 4u) << "fewer than three rotations happened";
  EXPECT_EQ(login_failures, 0) << "of " << logins + login_failures;
  EXPECT_EQ(format_failures, 0) << "of " << format_logins + format_failures;
  EXPECT_GT(logins, 10);
  EXPECT_GT(format_logins, 10);
  EXPECT_EQ(mixed, 0) << "of " << reads;
  EXPECT_EQ(partial, 0);
  EXPECT_GT(reads, 100);
}

TEST_P(SidecarTest, ProbesMetricsAdminRotateNowAndSigterm) {
  // Started before the init: alive, not ready, and says why.
  auto& sc = start("pod-h", {"--rotate-every", "never", "--grace", "1s"});
  ASSERT_TRUE(eventually([&] { return http(sc.port, "GET", "/healthz").status == 200; }, 10s));
  EXPECT_EQ(http(sc.port, "GET", "/healthz").body, "ok\n");
  ASSERT_TRUE(
      eventually([&] { return http(sc.port, "GET", "/readyz").body.find("no credentials") != std::string::npos; }, 10s))
      << http(sc.port, "GET", "/readyz").body;
  EXPECT_EQ(http(sc.port, "GET", "/readyz").status, 503);

  init();
  ASSERT_TRUE(eventually([&] { return http(sc.port, "GET", "/readyz").status == 200; }, 15s))
      << http(sc.port, "GET", "/readyz").body;
  EXPECT_EQ(http(sc.port, "GET", "/readyz").body, "ready\n");
  auto m = http(sc.port, "GET", "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.headers.find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_EQ(metric(m.body, "tenantdb_ready"), 1) << m.body;
  EXPECT_GE(metric(m.body, "tenantdb_files_published_total"), 1);
  EXPECT_EQ(metric(m.body, "tenantdb_rotations_total{result=\"rotated\"}"), 0);
  EXPECT_EQ(metric(m.body, "tenantdb_errors_total{source=\"database\"}"), 0) << m.body;
  EXPECT_FALSE(metric(m.body, "tenantdb_next_rotation_timestamp_seconds").has_value()) << "rotation is not scheduled";
  EXPECT_GE(metric(m.body, "tenantdb_credential_age_seconds"), 0);

  // The admin endpoint: GET is refused, POST starts a rotation.
  EXPECT_EQ(http(sc.admin, "GET", "/rotate").status, 405);
  const std::string before = stored(keys::password);
  EXPECT_EQ(http(sc.admin, "POST", "/rotate").status, 202);
  ASSERT_TRUE(eventually([&] { return stored(keys::password) != before; }, 15s)) << "POST /rotate did nothing";
  ASSERT_TRUE(eventually([&] { return value_of(files(sc), keys::password) == stored(keys::password); }, 5s));
  m = http(sc.port, "GET", "/metrics");
  EXPECT_EQ(metric(m.body, "tenantdb_rotations_total{result=\"rotated\"}"), 1) << m.body;
  const double now_s = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const auto last_success = metric(m.body, "tenantdb_last_rotation_success_timestamp_seconds");
  ASSERT_TRUE(last_success.has_value()) << m.body;
  EXPECT_NEAR(*last_success, now_s, 30) << m.body;
  const auto age = metric(m.body, "tenantdb_credential_age_seconds");
  ASSERT_TRUE(age.has_value()) << m.body;
  EXPECT_LT(*age, 30) << m.body;

  // The rotate-now annotation works too (set as a user would with kubectl annotate).
  ASSERT_TRUE(eventually([&] { return !intent_left(); }, 15s));
  const auto object = api_.get_object("secrets", ns, secret_name_);
  ASSERT_TRUE(object);
  rapidjson::Document doc;
  doc.Parse(object->data(), object->size());
  auto& meta = doc["metadata"];
  if (!meta.HasMember("annotations"))
    meta.AddMember("annotations", rapidjson::Value(rapidjson::kObjectType), doc.GetAllocator());
  meta["annotations"].AddMember(rapidjson::StringRef(annotations::rotate_now), "now", doc.GetAllocator());
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buf);
  doc.Accept(writer);
  const std::string second = stored(keys::password);
  api_.put_object(std::string(buf.GetString(), buf.GetSize()));
  ASSERT_TRUE(eventually([&] { return stored(keys::password) != second; }, 15s)) << "rotate-now annotation ignored";
  EXPECT_TRUE(eventually([&] { return annotation(annotations::rotate_now).empty(); }, 5s));

  // SIGTERM: prompt exit 0.
  const auto t0 = std::chrono::steady_clock::now();
  sc.proc->kill(SIGTERM);
  EXPECT_EQ(sc.proc->wait(10s), 0) << tail(sc.proc->err(), 20);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST_P(SidecarTest, ReloadSignalsTheNamedProcessAndRunsTheCommand) {
  init();
  // A process with a name nothing else on the machine has: a copy of sleep.
  char name[16];
  std::snprintf(name, sizeof name, "tdbw%08x", static_cast<unsigned>(::getpid() ^ (std::rand() & 0xffff)));
  const fs::path watcher_bin = work_ / name;
  fs::copy_file("/bin/sleep", watcher_bin);
  const fs::path marker = work_ / "reloaded";
  auto& sc = start("pod-w", {"--rotate-every", "never", "--grace", "1s", "--reload-signal", "HUP", "--reload-process",
                             name, "--reload-command", "/bin/sh", "--reload-command=-c",
                             "--reload-command=echo \"$TENANTDB_OUTPUT_DIR\" >> " + marker.string()});
  ASSERT_TRUE(eventually([&] { return http(sc.port, "GET", "/readyz").status == 200; }, 15s));
  ASSERT_TRUE(eventually([&] { return test::read_file(marker.string()).size() == sc.out.string().size() + 1; }, 5s))
      << "the first publish runs the command";
  EXPECT_EQ(test::read_file(marker.string()), sc.out.string() + "\n");

  test::child_process watcher({watcher_bin.string(), "1000"}, {}, (work_ / "watcher").string());
  std::this_thread::sleep_for(200ms);
  ASSERT_TRUE(watcher.running());
  EXPECT_EQ(http(sc.admin, "POST", "/rotate").status, 202);
  EXPECT_EQ(watcher.wait(15s), 128 + SIGHUP) << "the watcher was not sent SIGHUP after the files changed";
  EXPECT_TRUE(
      eventually([&] { return test::read_file(marker.string()).size() == 2 * (sc.out.string().size() + 1); }, 5s))
      << test::read_file(marker.string());
}

TEST_P(SidecarTest, NoPasswordInCmdlineEnvironOrDebugLogs) {
  init();
  std::set<std::string> passwords;
  std::atomic<bool> stop{false};
  std::mutex mu;
  background collector{stop, std::thread([&] {
                         while (!stop) {
                           for (const char* key : {keys::password, keys::standby_password, pending_password_key}) {
                             const std::string v = stored(key);
                             std::lock_guard<std::mutex> lock(mu);
                             if (!v.empty()) passwords.insert(v);
                           }
                           std::this_thread::sleep_for(10ms);
                         }
                       })};
  auto& sc = start("pod-s", {"--rotate-every", "never", "--grace", "1s", "--formats", "env,json"});
  ASSERT_TRUE(eventually([&] { return http(sc.port, "GET", "/readyz").status == 200; }, 15s));
  EXPECT_EQ(http(sc.admin, "POST", "/rotate").status, 202);
  ASSERT_TRUE(
      eventually([&] { return metric(sc.metrics(), "tenantdb_rotations_total{result=\"retired\"}") >= 1; }, 20s));
  const std::string cmdline = test::read_file("/proc/" + std::to_string(sc.proc->pid()) + "/cmdline");
  const std::string environ_text = test::read_file("/proc/" + std::to_string(sc.proc->pid()) + "/environ");
  ASSERT_FALSE(cmdline.empty());
  sc.proc->kill(SIGTERM);
  EXPECT_EQ(sc.proc->wait(10s), 0);
  collector.finish();

  const std::string logs = sc.proc->err() + sc.proc->out();
  EXPECT_NE(logs.find("\"level\":\"debug\""), std::string::npos) << "debug logging was not on";
  EXPECT_GE(passwords.size(), 3u) << "initial, rotated and retired passwords";
  std::vector<std::string> all(passwords.begin(), passwords.end());
  all.push_back(conn_.admin_password.reveal());
  for (const auto& pw : all) {
    ASSERT_GE(pw.size(), 8u);
    EXPECT_EQ(cmdline.find(pw), std::string::npos) << "a password in /proc/PID/cmdline";
    EXPECT_EQ(environ_text.find(pw), std::string::npos) << "a password in /proc/PID/environ";
    EXPECT_EQ(logs.find(pw), std::string::npos) << "a password in the sidecar's logs";
  }
}

TEST_P(SidecarTest, LocalModeRotatesTheDirectoryStore) {
  // tenantdb-init --local: the directory is the store; no Kubernetes anywhere.
  const fs::path store = work_ / "store";
  const auto r = test::run_process(
      {TENANTDB_INIT_BIN, "--local", "--tenant", who_.name, "--namespace", ns, "--connector-file",
       (test::testdb_dir() / (engine() + ".connector")).string(), "--output-dir", store.string(), "--timeout", "60s"},
      {{"KUBECONFIG", ""}, {"POD_NAMESPACE", ""}, {"TENANTDB_TENANT", ""}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string db = value_of(read_directory(store), keys::database);
  const auto local_login = [&](const credential_data& d) {
    try {
      verify_login(conn_.server, login{value_of(d, keys::user), secret(value_of(d, keys::password))}, db);
      return true;
    } catch (const error& e) {
      ADD_FAILURE() << e.what();
      return false;
    }
  };

  // A separate output directory: the workload's view is published there.
  auto& sc = start("pod-l", {"--local", "--store-dir", store.string(), "--rotate-every", "2s", "--grace", "1s",
                             "--jitter", "0", "--formats", "env"});
  ASSERT_TRUE(eventually([&] { return !value_of(files(sc), keys::password).empty(); }, 15s));
  const std::string pw0 = value_of(files(sc), keys::password);
  ASSERT_TRUE(eventually([&] { return value_of(files(sc), keys::password) != pw0; }, 15s)) << "no rotation";
  ASSERT_TRUE(eventually(
      [&] { return value_of(files(sc), keys::password) == value_of(read_directory(store), keys::password); }, 5s));
  EXPECT_TRUE(local_login(files(sc)));
  EXPECT_EQ(files(sc).count(keys::standby_password), 0u);
  EXPECT_EQ(files(sc).count(keys::ca_cert), 1u);
  sc.proc->kill(SIGTERM);
  ASSERT_EQ(sc.proc->wait(10s), 0);

  // --output-dir equal to --store-dir would hand the workload the standby and pending
  // passwords: refused before anything starts (the attack itself is in
  // test/suite/directory_dbtest.cpp).
  auto& same =
      start("pod-m", {"--local", "--store-dir", store.string(), "--rotate-every", "never", "--grace", "1s"}, {}, store);
  EXPECT_EQ(same.proc->wait(30s), 2) << same.proc->err();
  EXPECT_NE(same.proc->err().find("--store-dir"), std::string::npos) << same.proc->err();
}

// Issue 11, item 10: with `watch` in the Role a replica learns of another's rotation from
// its watch of the Secret. The sync interval is an hour, so no poll can be what told it.
TEST_P(SidecarTest, AFollowerLearnsOfARotationThroughItsWatchOfTheSecret) {
  api_.allow(pod_.user, "watch", ns, "secrets", secret_name_);
  sync_interval_ = "1h";
  init();
  const std::vector<std::string> args = {"--rotate-every", "never", "--grace", "1h", "--resync-interval", "1h"};
  auto& leader = start("pod-leader", args);
  auto& follower = start("pod-follower", args);
  const std::string before = stored(keys::password);
  for (auto* p : {&leader, &follower})
    ASSERT_TRUE(eventually([&] { return value_of(files(*p), keys::password) == before; }, 30s)) << p->name;
  ASSERT_TRUE(eventually([&] { return api_.active_watches() == 2; }, 30s)) << api_.active_watches();

  EXPECT_EQ(http(leader.admin, "POST", "/rotate").status, 202);
  ASSERT_TRUE(eventually([&] { return stored(keys::password) != before; }, 30s)) << "POST /rotate did nothing";
  const std::string after = stored(keys::password);
  EXPECT_TRUE(eventually([&] { return value_of(files(follower), keys::password) == after; }, 30s))
      << "the follower did not learn of the rotation";
  EXPECT_TRUE(logs_in(value_of(files(follower), keys::user), value_of(files(follower), keys::password)));
  EXPECT_EQ(follower.proc->err().find("lacks the verb"), std::string::npos);
}

// Without `watch` in the Role (the Role before issue 11) the sidecar says which verb is
// missing, once, and reads the Secret every --sync-interval as before.
TEST_P(SidecarTest, WithoutWatchInTheRoleItSaysSoAndFallsBackToPolling) {
  init();
  const std::vector<std::string> args = {"--rotate-every", "never", "--grace", "1h"};
  auto& leader = start("pod-leader", args);
  auto& follower = start("pod-follower", args);
  const std::string before = stored(keys::password);
  ASSERT_TRUE(eventually([&] { return value_of(files(follower), keys::password) == before; }, 30s));
  ASSERT_TRUE(eventually([&] { return follower.proc->err().find("lacks the verb") != std::string::npos; }, 30s))
      << tail(follower.proc->err(), 20);
  const std::string err = follower.proc->err();
  EXPECT_NE(err.find(R"(lacks the verb \"watch\" on secrets for resourceNames [)" + secret_name_ + "]"),
            std::string::npos)
      << tail(err, 20);
  EXPECT_EQ(api_.active_watches(), 0u);

  // Polling: GETs keep coming, and the follower still learns of a rotation.
  const auto gets = api_.request_count("GET", "/secrets/" + secret_name_);
  ASSERT_TRUE(eventually([&] { return api_.request_count("GET", "/secrets/" + secret_name_) >= gets + 4; }, 30s));
  EXPECT_EQ(http(leader.admin, "POST", "/rotate").status, 202);
  ASSERT_TRUE(eventually([&] { return stored(keys::password) != before; }, 30s)) << "POST /rotate did nothing";
  const std::string after = stored(keys::password);
  EXPECT_TRUE(eventually([&] { return value_of(files(follower), keys::password) == after; }, 30s));
  // One line per process, not one per sync.
  const std::string log = follower.proc->err();
  std::size_t lines = 0;
  for (auto at = log.find("lacks the verb"); at != std::string::npos; at = log.find("lacks the verb", at + 1)) ++lines;
  EXPECT_EQ(lines, 1u);
}

INSTANTIATE_TEST_SUITE_P(Engines, SidecarTest, ::testing::Values("pg", "mariadb"),
                         [](const auto& param_info) { return param_info.param; });

// ---------------------------------------------------------------------------------------
// kill -9 at each fault point, then a restart of the same pod.

class SidecarCrashTest : public SidecarFixture,
                         public ::testing::WithParamInterface<std::tuple<std::string, std::string>> {
protected:
  std::string engine() const override { return std::get<0>(GetParam()); }
  std::string point() const { return std::get<1>(GetParam()); }
};

TEST_P(SidecarCrashTest, KillNineAtTheFaultPointThenRestartLeavesWorkingCredentialsAndNoIntent) {
  test::suite_tally tally;
  init();
  const std::vector<std::string> args = {"--rotate-every", "never", "--grace", "1s"};
  auto& sc = start("pod-c", args, {{"TENANTDB_TEST_CRASH_AT", point()}});
  ASSERT_TRUE(eventually([&] { return http(sc.port, "GET", "/readyz").status == 200; }, 15s))
      << http(sc.port, "GET", "/readyz").body;
  EXPECT_EQ(http(sc.admin, "POST", "/rotate").status, 202);
  ASSERT_EQ(sc.proc->wait(30s), 128 + SIGKILL) << "did not die at " << point();
  EXPECT_NE(sc.proc->err().find("\"fault_point\":\"" + point() + "\""), std::string::npos);
  tally.faults = 1;

  // The same pod comes back (same name: it is the rotation's holder) without the hook.
  launch(sc, args, {});
  ASSERT_TRUE(eventually([&] { return !intent_left() && http(sc.port, "GET", "/readyz").status == 200; }, 30s))
      << "rotation annotation: " << annotation(annotations::rotation)
      << "; readyz: " << http(sc.port, "GET", "/readyz").body;
  ASSERT_TRUE(eventually([&] { return value_of(files(sc), keys::password) == stored(keys::password); }, 5s));

  const auto f = files(sc);
  EXPECT_EQ(value_of(f, keys::user), stored(keys::user));
  EXPECT_EQ(f.count(pending_password_key), 0u);
  EXPECT_EQ(f.count(keys::standby_password), 0u);
  EXPECT_TRUE(logs_in(value_of(f, keys::user), value_of(f, keys::password))) << "the files' credential";
  EXPECT_TRUE(logs_in(stored(keys::standby_user), stored(keys::standby_password))) << "the store's standby record";
  EXPECT_NE(value_of(f, keys::data_source).find(value_of(f, keys::password)), std::string::npos);
  if (!HasFailure()) tally.recoveries = 1;

  // The restarted process is the one that finished the job.
  const auto m = sc.metrics();
  if (point() == fault_points::switched) {
    EXPECT_EQ(metric(m, "tenantdb_rotations_total{result=\"retired\"}"), 1) << m;
  } else if (point() != fault_points::retired) {
    EXPECT_EQ(metric(m, "tenantdb_rotations_total{result=\"recovered\"}"), 1) << m;
  }
}

INSTANTIATE_TEST_SUITE_P(
    FaultPoints, SidecarCrashTest,
    ::testing::Combine(::testing::Values("pg", "mariadb"),
                       ::testing::Values(std::string(fault_points::claimed), std::string(fault_points::changed),
                                         std::string(fault_points::switched), std::string(fault_points::retire_claimed),
                                         std::string(fault_points::retire_changed),
                                         std::string(fault_points::retired))),
    [](const auto& param_info) {
      std::string n = std::get<0>(param_info.param) + "_" + std::get<1>(param_info.param);
      for (char& c : n)
        if (c == '-') c = '_';
      return n;
    });

}  // namespace
