// tenantdb-sidecar's local database proxy (issue 10) as a process, the way a pod runs it:
// the real tenantdb-init provisions the tenant against the real PostgreSQL / MariaDB test
// servers and the Kubernetes API stand-in, then the real sidecar serves the proxy while it
// rotates. Clients are libpq and MariaDB Connector/C with a fixed, secret-free data source
// pointing at the proxy.
//
// What the sidecar's wiring alone decides (the lifecycle tests): the proxy listens once
// credentials exist and not before, /readyz and /metrics follow it, a port it cannot bind
// keeps it not ready until it can, SIGTERM closes it. What needs the engines' sessions as
// well (the acceptance tests): new connections through the proxy never fail across
// rotations, in both strategies; a session opened before the first rotation keeps working
// after five; a stalled API server adds nothing to proxied latency.

#include <gtest/gtest.h>

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <mutex>
#include <netinet/in.h>
#include <poll.h>
#include <set>
#include <sys/socket.h>
#include <thread>
#include <tuple>
#include <unistd.h>

#include <libpq-fe.h>
#include <mysql.h>

#include "credential_values.hpp"
#include "kube_standin.hpp"
#include "metrics.hpp"
#include "pod.hpp"
#include "process.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/naming.hpp"
#include "testdb.hpp"

namespace fs = std::filesystem;
using namespace tenantdb;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

[[maybe_unused]] const bool server_logs = test::dump_server_logs_on_failure({"pg", "mariadb"});

constexpr const char* ns = "team-a";
using test::eventually;
using test::http;
using test::metric;
using test::tail;

// ---------------------------------------------------------------------------------------
// Clients: a fixed data source, no password, whatever names (the proxy decides who and
// where the session lands).

struct query_result {
  bool ok = false;
  std::string user;      ///< the login account of the session (without MySQL's @host)
  std::string database;  ///< the database it is in
  std::string error;
};

// One client session through the proxy on 127.0.0.1:port, opened at construction.
class proxied_session {
public:
  proxied_session(const std::string& engine, std::uint16_t port) : pg_engine_(engine == "pg") {
    if (pg_engine_) {
      const std::string conninfo =
          "host=127.0.0.1 port=" + std::to_string(port) + " dbname=x user=x sslmode=disable connect_timeout=10";
      pg_ = PQconnectdb(conninfo.c_str());
      if (PQstatus(pg_) != CONNECTION_OK) error_ = PQerrorMessage(pg_);
    } else {
      my_ = mysql_init(nullptr);
      unsigned timeout = 10;
      mysql_optionsv(my_, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
      mysql_optionsv(my_, MYSQL_OPT_READ_TIMEOUT, &timeout);
      mysql_optionsv(my_, MYSQL_OPT_WRITE_TIMEOUT, &timeout);
      if (mysql_real_connect(my_, "127.0.0.1", "x", nullptr, "x", port, nullptr, 0) == nullptr)
        error_ = mysql_error(my_);
    }
  }
  ~proxied_session() {
    if (pg_ != nullptr) PQfinish(pg_);
    if (my_ != nullptr) mysql_close(my_);
  }
  proxied_session(const proxied_session&) = delete;
  proxied_session& operator=(const proxied_session&) = delete;

  bool connected() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  // Who and where the session is, asked of the server.
  query_result query() {
    query_result r;
    if (!connected()) {
      r.error = "connect: " + error_;
      return r;
    }
    if (pg_engine_) {
      // session_user: the login account (current_user is the tenant's group role, which
      // the login accounts act as).
      PGresult* res = PQexec(pg_, "SELECT session_user, current_database()");
      if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        r.ok = true;
        r.user = PQgetvalue(res, 0, 0);
        r.database = PQgetvalue(res, 0, 1);
      } else {
        r.error = std::string("query: ") + PQerrorMessage(pg_);
      }
      PQclear(res);
      return r;
    }
    if (mysql_query(my_, "SELECT CURRENT_USER(), DATABASE()") != 0) {
      r.error = std::string("query: ") + mysql_error(my_);
      return r;
    }
    MYSQL_RES* res = mysql_store_result(my_);
    MYSQL_ROW row = res != nullptr ? mysql_fetch_row(res) : nullptr;
    if (row != nullptr && row[0] != nullptr) {
      r.ok = true;
      r.user = row[0];
      r.user = r.user.substr(0, r.user.find('@'));
      r.database = row[1] != nullptr ? row[1] : "";
    } else {
      r.error = std::string("query: no row: ") + mysql_error(my_);
    }
    if (res != nullptr) mysql_free_result(res);
    return r;
  }

private:
  bool pg_engine_;
  PGconn* pg_ = nullptr;
  MYSQL* my_ = nullptr;
  std::string error_;
};

// A new connection, one query, closed.
query_result query_once(const std::string& engine, std::uint16_t port) {
  proxied_session s(engine, port);
  return s.query();
}

// A TCP socket connected to 127.0.0.1:port, or -1 if nothing accepts.
int tcp_connect(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool accepts(std::uint16_t port) {
  const int fd = tcp_connect(port);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

// A listening socket on 127.0.0.1:port, so the sidecar cannot bind it; -1 on failure.
int occupy(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 4) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// ---------------------------------------------------------------------------------------

struct sidecar {
  std::string name;
  fs::path out;
  std::uint16_t port = 0;   ///< --listen
  std::uint16_t admin = 0;  ///< --admin-listen
  std::uint16_t proxy = 0;  ///< --proxy-listen
  std::unique_ptr<test::child_process> proc;

  std::string metrics() const { return http(port, "GET", "/metrics").body; }
  double rotated() const { return metric(metrics(), "tenantdb_rotations_total{result=\"rotated\"}").value_or(-1); }
  double retired() const { return metric(metrics(), "tenantdb_rotations_total{result=\"retired\"}").value_or(-1); }
};

class ProxyFixture : public ::testing::Test {
protected:
  virtual std::string engine() const = 0;
  virtual std::string strategy() const { return "dual"; }

  void SetUp() override {
    conn_ = test::load_connector(engine());
    work_ = fs::temp_directory_path() / ("tenantdb-proxy-" + std::to_string(::getpid()) + "-" + test_name());
    fs::remove_all(work_);
    fs::create_directories(work_);
    who_ = test::unique_tenant("px");
    who_.namespace_name = ns;
    secret_name_ = "vc-db-" + who_.name;
    test::set_up_pod(api_, pod_, engine(), secret_name_);
    kubeconfig_ = (work_ / "kubeconfig").string();
    test::write_kubeconfig(kubeconfig_, api_, pod_);
  }

  void TearDown() override {
    for (auto& s : sidecars_) {
      if (HasFailure() && s->proc)
        std::cerr << "--- " << s->name << " (last lines of stderr)\n" << tail(s->proc->err(), 60) << "\n";
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
    const auto r = test::run_process(
        {TENANTDB_INIT_BIN, "--tenant", who_.name, "--namespace", ns, "--connector", "platform/db-connector",
         "--kubeconfig", kubeconfig_, "--strategy", strategy(), "--timeout", "60s"},
        {{"KUBECONFIG", ""}, {"POD_NAMESPACE", ""}, {"TENANTDB_TENANT", ""}});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  // A sidecar with the proxy on 127.0.0.1:<proxy_port> (a free port if 0).
  sidecar& start(const std::vector<std::string>& extra, std::uint16_t proxy_port = 0) {
    auto s = std::make_unique<sidecar>();
    s->name = "pod-p";
    s->out = work_ / "out";
    s->port = test::unused_port();
    s->admin = test::unused_port();
    s->proxy = proxy_port != 0 ? proxy_port : test::unused_port();
    std::vector<std::string> args = {TENANTDB_SIDECAR_BIN,
                                     "--tenant",
                                     who_.name,
                                     "--namespace",
                                     ns,
                                     "--kubeconfig",
                                     kubeconfig_,
                                     "--output-dir",
                                     s->out.string(),
                                     "--listen",
                                     "127.0.0.1:" + std::to_string(s->port),
                                     "--admin-listen",
                                     "127.0.0.1:" + std::to_string(s->admin),
                                     "--pod-name",
                                     s->name,
                                     "--strategy",
                                     strategy(),
                                     "--sync-interval",
                                     "300ms",
                                     "--check-interval",
                                     "1s",
                                     "--log-level",
                                     "debug",
                                     "--proxy-listen",
                                     "127.0.0.1:" + std::to_string(s->proxy)};
    args.insert(args.end(), extra.begin(), extra.end());
    s->proc = std::make_unique<test::child_process>(args,
                                                    std::map<std::string, std::string>{{"KUBECONFIG", ""},
                                                                                       {"POD_NAMESPACE", ""},
                                                                                       {"POD_NAME", ""},
                                                                                       {"TENANTDB_TENANT", ""},
                                                                                       {"TENANTDB_TEST_CRASH_AT", ""},
                                                                                       {"TENANTDB_TEST_PAUSE_AT", ""}},
                                                    (work_ / s->name).string());
    sidecars_.push_back(std::move(s));
    return *sidecars_.back();
  }

  std::string stored(const std::string& key) const { return api_.secret_value(ns, secret_name_, key).value_or(""); }

  // The account names init gives the tenant: <database>_a, <database>_b.
  bool is_tenant_account(const std::string& user) const {
    const std::string db = stored(keys::database);
    return !db.empty() && user.rfind(db + "_", 0) == 0;
  }

  connector conn_;
  fs::path work_;
  tenant who_;
  std::string secret_name_;
  std::string kubeconfig_;
  test::KubeStandin api_;
  test::pod_identity pod_;
  std::vector<std::unique_ptr<sidecar>> sidecars_;
};

class SidecarProxyTest : public ProxyFixture, public ::testing::WithParamInterface<std::string> {
protected:
  std::string engine() const override { return GetParam(); }
};

// ---------------------------------------------------------------------------------------
// The wiring: listening, readiness, metrics, shutdown.

TEST_P(SidecarProxyTest, ListensOnceCredentialsExistNotBeforeReportsItAndSigtermClosesIt) {
  // No init yet: the credentials Secret does not exist.
  auto& sc = start({"--rotate-every", "never"});
  ASSERT_TRUE(eventually([&] { return http(sc.port, "GET", "/healthz").status == 200; }, 15s));
  // The sidecar has looked for the Secret a few times and found nothing.
  ASSERT_TRUE(eventually([&] { return api_.request_count("GET", "secrets/" + secret_name_) >= 3; }, 15s));
  EXPECT_FALSE(accepts(sc.proxy)) << "the proxy listens before any credentials exist";
  const auto before = http(sc.port, "GET", "/readyz");
  EXPECT_EQ(before.status, 503) << before.body;
  std::string m = sc.metrics();
  EXPECT_EQ(metric(m, "tenantdb_proxy_serving"), 0) << m;
  EXPECT_EQ(metric(m, "tenantdb_proxy_connections_total"), 0) << m;

  init();
  ASSERT_TRUE(eventually([&] { return accepts(sc.proxy); }, 15s)) << "the proxy never listened";
  ASSERT_TRUE(eventually([&] { return http(sc.port, "GET", "/readyz").status == 200; }, 20s))
      << http(sc.port, "GET", "/readyz").body;
  const std::string logs = sc.proc->err();
  EXPECT_EQ(count_of(logs, "\"msg\":\"proxy listening\""), 1u) << tail(logs, 30);

  m = sc.metrics();
  EXPECT_EQ(metric(m, "tenantdb_proxy_serving"), 1) << m;
  EXPECT_EQ(metric(m, "tenantdb_ready"), 1) << m;
  EXPECT_GE(metric(m, "tenantdb_proxy_connections_total"), 1) << m;  // accepts() connected
  EXPECT_EQ(metric(m, "tenantdb_proxy_failures_total{reason=\"connection_cap\"}"), 0) << m;
  for (const char* family : {"# TYPE tenantdb_proxy_connections_open gauge", "# TYPE tenantdb_proxy_sessions gauge",
                             "# TYPE tenantdb_proxy_upstream_connect_seconds histogram"})
    EXPECT_NE(m.find(family), std::string::npos) << family << "\n" << m;

  // SIGTERM: the port closes, a client connection that is open is closed too, and the
  // process exits promptly with 0.
  const int client = tcp_connect(sc.proxy);
  ASSERT_GE(client, 0);
  const auto term = steady::now();
  sc.proc->kill(SIGTERM);
  EXPECT_EQ(sc.proc->wait(10s), 0) << tail(sc.proc->err(), 20);
  EXPECT_LT(steady::now() - term, 5s) << "the sidecar took long to exit";
  // Whatever the proxy sent first (MySQL's greeting) is read; then the end must come.
  bool closed = false;
  const auto deadline = steady::now() + 5s;
  while (!closed && steady::now() < deadline) {
    pollfd p{client, POLLIN, 0};
    if (::poll(&p, 1, 200) != 1) continue;
    char buf[512];
    closed = ::recv(client, buf, sizeof buf, 0) <= 0;
  }
  EXPECT_TRUE(closed) << "the open client connection was not closed";
  ::close(client);
  EXPECT_FALSE(accepts(sc.proxy)) << "the proxy still listens after SIGTERM";
  EXPECT_NE(sc.proc->err().find("\"msg\":\"proxy stopped\""), std::string::npos) << tail(sc.proc->err(), 20);
}

TEST_P(SidecarProxyTest, APortItCannotBindKeepsItNotReadyLoggedOnceUntilThePortIsFree) {
  init();
  const std::uint16_t port = test::unused_port();
  const int blocker = occupy(port);
  ASSERT_GE(blocker, 0);
  auto& sc = start({"--rotate-every", "never"}, port);
  // Everything else gets ready (files, login check); the proxy keeps it not ready.
  ASSERT_TRUE(
      eventually([&] { return http(sc.port, "GET", "/readyz").body == "not ready: proxy cannot listen\n"; }, 20s))
      << http(sc.port, "GET", "/readyz").body;
  EXPECT_EQ(http(sc.port, "GET", "/readyz").status, 503);
  EXPECT_EQ(metric(sc.metrics(), "tenantdb_proxy_serving"), 0);
  EXPECT_EQ(metric(sc.metrics(), "tenantdb_ready"), 0);
  // Several syncs later still one error line, naming the address.
  const auto gets = api_.request_count("GET", "secrets/" + secret_name_);
  ASSERT_TRUE(eventually([&] { return api_.request_count("GET", "secrets/" + secret_name_) >= gets + 3; }, 15s));
  const std::string logs = sc.proc->err();
  EXPECT_EQ(count_of(logs, "proxy cannot listen"), 1u) << tail(logs, 30);
  EXPECT_NE(logs.find("cannot listen on 127.0.0.1:" + std::to_string(port)), std::string::npos) << tail(logs, 30);

  ::close(blocker);
  ASSERT_TRUE(eventually([&] { return http(sc.port, "GET", "/readyz").status == 200; }, 15s))
      << http(sc.port, "GET", "/readyz").body;
  EXPECT_TRUE(accepts(port));
  EXPECT_EQ(metric(sc.metrics(), "tenantdb_proxy_serving"), 1);
}

TEST_P(SidecarProxyTest, ANetworkAddressWithoutAPasswordFileIsAUsageError) {
  const auto r = test::run_process({TENANTDB_SIDECAR_BIN, "--tenant", who_.name, "--output-dir",
                                    (work_ / "out").string(), "--pod-name", "p", "--proxy-listen", "0.0.0.0"},
                                   {{"KUBECONFIG", ""}, {"TENANTDB_TENANT", ""}, {"POD_NAME", ""}});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--proxy-listen"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--proxy-password-file"), std::string::npos) << r.err;
}

// ---------------------------------------------------------------------------------------
// The proxy isolated from the sidecar's loop.

// The sidecar's loop blocks on its API calls (tenantdb/agent.hpp); the proxy must not.
// The stand-in holds the sidecar's next read of the Secret for 5 s; meanwhile /healthz
// (served by the loop) waits, and new proxied connections answer as fast as ever.
TEST_P(SidecarProxyTest, AStalledApiServerNeverHoldsAProxiedConnection) {
  init();
  auto& sc = start({"--rotate-every", "never"});
  ASSERT_TRUE(eventually([&] { return http(sc.port, "GET", "/readyz").status == 200; }, 30s))
      << http(sc.port, "GET", "/readyz").body;
  const auto warm = query_once(engine(), sc.proxy);
  ASSERT_TRUE(warm.ok) << warm.error;

  api_.stall_next(1, 5s, "secrets/" + secret_name_, "GET");
  struct timed {
    steady::time_point start, end;
    bool ok = false;
    std::string error;
  };
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<timed> probes;  // /healthz, through the sidecar's loop
  std::thread prober([&] {
    while (!stop) {
      timed t;
      t.start = steady::now();
      t.ok = http(sc.port, "GET", "/healthz").status == 200;
      t.end = steady::now();
      const std::lock_guard<std::mutex> lock(mu);
      probes.push_back(t);
    }
  });
  std::vector<timed> queries;  // new connection + query through the proxy
  const auto until = steady::now() + 7s;
  while (steady::now() < until) {
    timed t;
    t.start = steady::now();
    const auto r = query_once(engine(), sc.proxy);
    t.end = steady::now();
    t.ok = r.ok;
    t.error = r.error;
    queries.push_back(t);
    std::this_thread::sleep_until(t.start + 100ms);  // pace: ten a second
  }
  stop = true;
  prober.join();

  // The stall happened: one /healthz waited for the held API call.
  const auto slow = std::max_element(probes.begin(), probes.end(),
                                     [](const timed& a, const timed& b) { return a.end - a.start < b.end - b.start; });
  ASSERT_NE(slow, probes.end());
  ASSERT_GE(slow->end - slow->start, 3s) << "the sidecar's loop was never held: the stall did not happen";
  // Proxied connections went on during it: none waited for the held loop (a proxy that
  // did would take most of the 5 s stall for one query, and fit few inside it). How fast
  // a query is, is the benchmark's business (bench/proxy.sh), not this test's.
  int during = 0;
  for (const auto& q : queries) {
    EXPECT_TRUE(q.ok) << q.error;
    EXPECT_LT(q.end - q.start, 2500ms) << "a proxied connection and query waited on the stalled loop: it took "
                                       << std::chrono::duration_cast<std::chrono::milliseconds>(q.end - q.start).count()
                                       << " ms";
    if (q.start >= slow->start && q.end <= slow->end) ++during;
  }
  EXPECT_GE(during, 20) << "too few proxied queries ran while the loop was held";
}

INSTANTIATE_TEST_SUITE_P(Engines, SidecarProxyTest, ::testing::Values("pg", "mariadb"),
                         [](const auto& param_info) { return param_info.param; });

// ---------------------------------------------------------------------------------------
// Rotation the client never notices: engine x strategy.

class ProxyRotationTest : public ProxyFixture,
                          public ::testing::WithParamInterface<std::tuple<std::string, std::string>> {
protected:
  std::string engine() const override { return std::get<0>(GetParam()); }
  std::string strategy() const override { return std::get<1>(GetParam()); }
};

// The fastest schedule the flags allow (--rotate-every and --grace are at least 1s), a
// client that opens a new connection every ~50 ms with one fixed data source and runs a
// query on it, for at least five rotations: not one failure. A session opened before
// those rotations still answers after them.
TEST_P(ProxyRotationTest, NewConnectionsWithAFixedDataSourceNeverFailThroughFiveRotations) {
  init();
  auto& sc = start({"--rotate-every", "1s", "--grace", "1s", "--jitter", "0"});
  ASSERT_TRUE(eventually([&] { return http(sc.port, "GET", "/readyz").status == 200; }, 30s))
      << http(sc.port, "GET", "/readyz").body;
  const std::string database = stored(keys::database);

  proxied_session early(engine(), sc.proxy);
  ASSERT_TRUE(early.connected()) << early.error();
  const auto first = early.query();
  ASSERT_TRUE(first.ok) << first.error;
  const double rotated_at_start = sc.rotated();
  ASSERT_GE(rotated_at_start, 0);

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0};
  std::atomic<int> attempts{0};
  std::mutex mu;
  std::vector<std::string> failures;
  std::set<std::string> users;
  std::thread client([&] {
    while (!stop) {
      const auto began = steady::now();
      const auto r = query_once(engine(), sc.proxy);
      ++attempts;
      {
        const std::lock_guard<std::mutex> lock(mu);
        if (!r.ok) {
          failures.push_back(r.error);
        } else if (r.database != database || !is_tenant_account(r.user)) {
          failures.push_back("landed as " + r.user + " in " + r.database);
        } else {
          ++ok;
          users.insert(r.user);
        }
      }
      std::this_thread::sleep_until(began + 50ms);
    }
  });
  // At least five rotations, and enough connections around them to count.
  const bool five = eventually([&] { return sc.rotated() >= rotated_at_start + 5 && attempts >= 100; }, 90s);
  stop = true;
  client.join();
  ASSERT_TRUE(five) << sc.rotated() - rotated_at_start << " rotations, " << attempts << " connections";

  EXPECT_TRUE(failures.empty()) << failures.size() << " of " << failures.size() + ok
                                << " failed; first: " << failures.front();
  EXPECT_GE(ok, 100);
  if (strategy() == "dual") {
    EXPECT_EQ(users.size(), 2u) << "new sessions did not follow the switch of accounts";
  }
  const auto m = sc.metrics();
  EXPECT_EQ(metric(m, "tenantdb_proxy_failures_total{reason=\"upstream_auth\"}"), 0) << m;
  EXPECT_EQ(metric(m, "tenantdb_rotations_total{result=\"failed\"}"), 0) << m;

  const auto last = early.query();
  EXPECT_TRUE(last.ok) << "the session opened before five rotations broke: " << last.error;
  EXPECT_EQ(last.user, first.user) << "a session keeps the account it logged in with";
}

// Deterministic: the session is opened before the first rotation (none is scheduled),
// then five rotations are requested one after the other through the admin endpoint.
TEST_P(ProxyRotationTest, ASessionOpenedBeforeTheFirstRotationStillWorksAfterFive) {
  init();
  auto& sc = start({"--rotate-every", "never", "--grace", "1s"});
  ASSERT_TRUE(eventually([&] { return http(sc.port, "GET", "/readyz").status == 200; }, 30s))
      << http(sc.port, "GET", "/readyz").body;
  const std::string password0 = stored(keys::password);

  proxied_session session(engine(), sc.proxy);
  ASSERT_TRUE(session.connected()) << session.error();
  const auto before = session.query();
  ASSERT_TRUE(before.ok) << before.error;
  EXPECT_EQ(before.database, stored(keys::database));
  EXPECT_TRUE(is_tenant_account(before.user)) << before.user;
  ASSERT_EQ(sc.rotated(), 0) << "a rotation ran before the session was opened";

  for (int i = 1; i <= 5; ++i) {
    ASSERT_EQ(http(sc.admin, "POST", "/rotate").status, 202);
    ASSERT_TRUE(eventually([&] { return sc.rotated() >= i; }, 30s)) << "rotation " << i << " did not happen";
  }
  if (strategy() == "dual") {  // the session's account has had its password retired since
    ASSERT_TRUE(eventually([&] { return sc.retired() >= 4; }, 20s));
  }
  EXPECT_NE(stored(keys::password), password0);

  const auto after = session.query();
  EXPECT_TRUE(after.ok) << after.error;
  EXPECT_EQ(after.user, before.user);
  // And a new session lands as the tenant too.
  const auto fresh = query_once(engine(), sc.proxy);
  EXPECT_TRUE(fresh.ok) << fresh.error;
  EXPECT_EQ(fresh.user, stored(keys::user));
}

INSTANTIATE_TEST_SUITE_P(EnginesAndStrategies, ProxyRotationTest,
                         ::testing::Combine(::testing::Values("pg", "mariadb"), ::testing::Values("dual", "in-place")),
                         [](const auto& param_info) {
                           std::string name = std::get<0>(param_info.param) + "_" + std::get<1>(param_info.param);
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
