// The proxy's end-to-end acceptance tests (issue 10) with a client that behaves like Kine:
// kinelike (test/clients/kinelike), Go with the drivers Kine uses (pgx v4, go-sql-driver/
// mysql), a database/sql pool whose connections expire after 200 ms, so it opens new
// connections all the time. The real tenantdb-init provisions the tenant against the real
// PostgreSQL / MariaDB test servers and the Kubernetes API stand-in; the real
// tenantdb-sidecar serves the proxy on loopback and rotates as fast as its flags allow.
// kinelike reads ONE fixed, secret-free data source once:
//   PostgreSQL     postgres://kine@127.0.0.1:<port>/kine?sslmode=disable
//   MySQL/MariaDB  kine@tcp(127.0.0.1:<port>)/<the tenant's derived database name>
//
// - Through at least 50 rotations, in both strategies on both engines: zero failed
//   queries, rows committed, a pool that churned.
// - On MySQL/MariaDB Kine's start-up needs the database name to be one the tenant can see:
//   the static name `kine` stops it, the derived name (tenantdb-init --print-names) works.
// - kill -9 of the sidecar under load: the client fails only while the sidecar is down,
//   recovers once it is back on the same port, and no committed row is lost.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <thread>
#include <tuple>

#include <rapidjson/document.h>

#include "kinelike.hpp"
#include "kube_standin.hpp"
#include "metrics.hpp"
#include "pod.hpp"
#include "ports.hpp"
#include "process.hpp"
#include "tenantdb/credentials.hpp"
#include "testdb.hpp"

namespace fs = std::filesystem;
using namespace tenantdb;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

[[maybe_unused]] const bool server_logs = test::dump_server_logs_on_failure({"pg", "mariadb"});

constexpr const char* ns = "team-a";  // the pod's namespace (test::set_up_pod)
using test::eventually;
using test::http;
using test::metric;
using test::tail;

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct sidecar {
  std::uint16_t port = 0;   ///< --listen (health, metrics)
  std::uint16_t admin = 0;  ///< --admin-listen
  std::uint16_t proxy = 0;  ///< --proxy-listen
  std::unique_ptr<test::child_process> proc;

  std::string metrics() const { return http(port, "GET", "/metrics").body; }
  double rotated() const { return metric(metrics(), "tenantdb_rotations_total{result=\"rotated\"}").value_or(-1); }
  bool ready() const { return http(port, "GET", "/readyz").status == 200; }
};

// Provisioning through the API stand-in and the sidecar process, as in
// sidecar_proxy_dbtest.cpp.
class KineFixture : public ::testing::Test {
protected:
  virtual std::string engine() const = 0;
  virtual std::string strategy() const { return "dual"; }

  void SetUp() override {
    conn_ = test::load_connector(engine());
    work_ = fs::temp_directory_path() / ("tenantdb-kine-" + std::to_string(::getpid()) + "-" + test_name());
    fs::remove_all(work_);
    fs::create_directories(work_);
    who_ = test::unique_tenant("kn");
    who_.namespace_name = ns;
    secret_name_ = "vc-db-" + who_.name;
    test::set_up_pod(api_, pod_, engine(), secret_name_);
    kubeconfig_ = (work_ / "kubeconfig").string();
    test::write_kubeconfig(kubeconfig_, api_, pod_);
  }

  void TearDown() override {
    for (auto& s : sidecars_) {
      if (HasFailure() && s->proc)
        std::cerr << "--- sidecar (last lines of stderr)\n" << tail(s->proc->err(), 60) << "\n";
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

  // The database name `tenantdb-init --print-names` derives for the tenant (no API, no
  // database asked): what a values file puts into Kine's MySQL data source.
  std::string printed_database() const {
    const auto r = test::run_process({TENANTDB_INIT_BIN, "--print-names", "--tenant", who_.name, "--namespace", ns},
                                     {{"KUBECONFIG", ""}, {"POD_NAMESPACE", ""}, {"TENANTDB_TENANT", ""}});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    rapidjson::Document doc;
    doc.Parse(r.out.c_str(), r.out.size());
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("database") || !doc["database"].IsString()) {
      ADD_FAILURE() << "--print-names printed no JSON with a database: " << r.out;
      return "";
    }
    return doc["database"].GetString();
  }

  // A sidecar with the proxy on 127.0.0.1:<proxy_port> (a free port if 0).
  sidecar& start(const std::vector<std::string>& extra, std::uint16_t proxy_port = 0) {
    auto s = std::make_unique<sidecar>();
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
                                     (work_ / "out").string(),
                                     "--listen",
                                     "127.0.0.1:" + std::to_string(s->port),
                                     "--admin-listen",
                                     "127.0.0.1:" + std::to_string(s->admin),
                                     "--pod-name",
                                     "pod-k",
                                     "--strategy",
                                     strategy(),
                                     "--sync-interval",
                                     "300ms",
                                     "--check-interval",
                                     "1s",
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
                                                    (work_ / "pod-k").string());
    sidecars_.push_back(std::move(s));
    return *sidecars_.back();
  }

  std::string stored(const std::string& key) const { return api_.secret_value(ns, secret_name_, key).value_or(""); }

  test::kinelike_driver driver() const { return test::kinelike_driver_for(conn_.server.type); }

  // Kine's data source pointing at the proxy: fixed, no password, read once.
  secret data_source(std::uint16_t proxy, const std::string& mysql_database) const {
    const std::string at = "127.0.0.1:" + std::to_string(proxy);
    if (engine() == "pg") return secret("postgres://kine@" + at + "/kine?sslmode=disable");
    return secret("kine@tcp(" + at + ")/" + mysql_database);
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

// ---------------------------------------------------------------------------------------
// Fifty rotations Kine never notices: engine x strategy.

class KineRotationTest : public KineFixture,
                         public ::testing::WithParamInterface<std::tuple<std::string, std::string>> {
protected:
  std::string engine() const override { return std::get<0>(GetParam()); }
  std::string strategy() const override { return std::get<1>(GetParam()); }
};

TEST_P(KineRotationTest, AKineLikeClientWithAFixedDataSourceSeesZeroFailuresThroughFiftyRotations) {
  init();
  auto& sc = start({"--rotate-every", "1s", "--grace", "1s", "--jitter", "0"});
  ASSERT_TRUE(eventually([&] { return sc.ready(); }, 30s)) << http(sc.port, "GET", "/readyz").body;

  const std::string database = printed_database();
  ASSERT_EQ(database, stored(keys::database)) << "--print-names and the provisioned database disagree";
  if (engine() != "pg") {
    // Kine's MySQL start-up with a static name: `kine` is not in the tenant's
    // information_schema.SCHEMATA, CREATE DATABASE is refused, and Kine stops.
    test::kinelike_options o;
    o.duration = 1s;
    const auto r = test::run_kinelike(driver(), data_source(sc.proxy, "kine"), o);
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_EQ(r.committed_rows, 0) << r.describe();
    EXPECT_NE(r.first_error.find("kine"), std::string::npos) << r.describe();
  }

  // The fastest schedule the flags allow (--rotate-every 1s, --grace 1s): in place a
  // rotation about every second, dual about every two (the previous account's grace
  // comes before the next switch), measured 75 in 75 s and 38 in 75 s. The run is long
  // enough for about 60 either way; the assertion below counts them, it assumes nothing.
  test::kinelike_options o;
  o.duration = strategy() == "dual" ? 120s : 65s;
  o.workers = 4;
  o.timeout = std::chrono::duration_cast<std::chrono::seconds>(o.duration) + 60s;
  const double rotated_before = sc.rotated();
  ASSERT_GE(rotated_before, 0);
  const auto began = steady::now();
  const auto r = test::run_kinelike(driver(), data_source(sc.proxy, database), o);
  const auto took = steady::now() - began;
  const double rotated_after = sc.rotated();
  std::cerr << "kinelike ran " << std::chrono::duration_cast<std::chrono::seconds>(took).count() << " s through "
            << rotated_after - rotated_before << " rotations: " << r.describe() << "\n";

  // At least 50 rotations completed while the client ran (51 counted: the first one may
  // have been under way before it started).
  EXPECT_GE(rotated_after - rotated_before, 51) << "too few rotations during the run";
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.failures, 0) << r.describe();
  EXPECT_EQ(r.first_error, "") << r.describe();
  EXPECT_EQ(r.connect_failures, 0) << r.describe();
  EXPECT_GT(r.committed_rows, 0) << r.describe();
  EXPECT_GT(r.queries, 2 * r.committed_rows - 1) << r.describe();  // every insert is read back
  // The pool churned: connections expire after 200 ms, so many more than one per
  // rotation were opened (each through the proxy, with whatever credentials were current).
  EXPECT_GE(r.connections_opened, 5 * (rotated_after - rotated_before)) << r.describe();
  EXPECT_GT(r.max_lifetime_closed + r.max_idle_time_closed, 0) << r.describe();

  const auto m = sc.metrics();
  EXPECT_EQ(metric(m, "tenantdb_rotations_total{result=\"failed\"}").value_or(0), 0) << m;
  EXPECT_EQ(metric(m, "tenantdb_proxy_failures_total{reason=\"upstream_auth\"}").value_or(0), 0) << m;
  EXPECT_GE(metric(m, "tenantdb_proxy_connections_total").value_or(0), r.connections_opened) << m;
}

INSTANTIATE_TEST_SUITE_P(EnginesAndStrategies, KineRotationTest,
                         ::testing::Combine(::testing::Values("pg", "mariadb"), ::testing::Values("dual", "in-place")),
                         [](const auto& param_info) {
                           std::string name = std::get<0>(param_info.param) + "_" + std::get<1>(param_info.param);
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// ---------------------------------------------------------------------------------------
// kill -9 of the sidecar under load.

class KineKillTest : public KineFixture, public ::testing::WithParamInterface<std::string> {
protected:
  std::string engine() const override { return GetParam(); }
};

TEST_P(KineKillTest, AfterKillNineClientsFailOnlyUntilTheSidecarIsBackAndNoCommittedRowIsLost) {
  init();
  const std::uint16_t proxy_port = test::unused_port();
  const std::vector<std::string> flags = {"--rotate-every", "1s", "--grace", "1s", "--jitter", "0"};
  auto* sc = &start(flags, proxy_port);
  ASSERT_TRUE(eventually([&] { return sc->ready(); }, 30s)) << http(sc->port, "GET", "/readyz").body;
  const secret dsn = data_source(proxy_port, stored(keys::database));

  constexpr auto run_for = 25s;
  test::kinelike_options o;
  o.duration = run_for;
  o.workers = 8;
  o.timeout = 90s;
  test::kinelike_result run;
  std::string run_error;
  const auto began = steady::now();
  std::thread client([&] {
    try {
      run = test::run_kinelike(driver(), dsn, o);
    } catch (const std::exception& e) {
      run_error = e.what();
    }
  });

  // Under load: the client has opened plenty of connections through the proxy.
  const bool loaded =
      eventually([&] { return metric(sc->metrics(), "tenantdb_proxy_connections_total").value_or(0) >= 100; }, 20s);
  EXPECT_TRUE(loaded) << sc->metrics();

  sc->proc->kill(SIGKILL);
  EXPECT_EQ(sc->proc->wait(10s), 128 + SIGKILL);
  const auto killed_at = steady::now();
  // Down for a second (the outage under test; nothing to await), then back on the same port.
  std::this_thread::sleep_for(1s);
  sc = &start(flags, proxy_port);
  const bool back = eventually([&] { return sc->ready(); }, 30s);
  const std::int64_t ready_unix_ms = unix_ms_now();
  const auto ready_at = steady::now();
  EXPECT_TRUE(back) << http(sc->port, "GET", "/readyz").body;
  std::cerr << "down for " << std::chrono::duration_cast<std::chrono::milliseconds>(ready_at - killed_at).count()
            << " ms, ready again " << std::chrono::duration_cast<std::chrono::milliseconds>(ready_at - began).count()
            << " ms after the client started\n";
  EXPECT_LT(ready_at - began, run_for - 8s) << "the client had too little time left to show that it recovered";

  client.join();
  ASSERT_EQ(run_error, "");
  std::cerr << "kinelike: " << run.describe() << "; last failure " << run.last_failure_unix_ms - ready_unix_ms
            << " ms after the sidecar was ready again\n";
  // It saw the outage ...
  EXPECT_GT(run.failures, 0) << "the client never noticed the sidecar was gone: " << run.describe();
  ASSERT_GT(run.last_failure_unix_ms, 0) << run.describe();
  // ... and nothing after shortly after the sidecar was back: the pool recovered by itself.
  EXPECT_LE(run.last_failure_unix_ms, ready_unix_ms + 2000)
      << "the client still failed " << run.last_failure_unix_ms - ready_unix_ms
      << " ms after the sidecar was ready again: " << run.describe();
  EXPECT_GT(run.committed_rows, 0) << run.describe();

  // No committed row lost: every insert the server acknowledged is there, read through
  // the restarted proxy with the same fixed data source.
  test::kinelike_options v;
  v.name_prefix = run.name_prefix;
  v.verify_rows = run.committed_rows;
  const auto verified = test::run_kinelike(driver(), dsn, v);
  EXPECT_EQ(verified.exit_code, 0) << verified.describe();
  EXPECT_GE(verified.verified_rows, run.committed_rows) << verified.describe();
  EXPECT_EQ(metric(sc->metrics(), "tenantdb_rotations_total{result=\"failed\"}").value_or(0), 0);
}

INSTANTIATE_TEST_SUITE_P(Engines, KineKillTest, ::testing::Values("pg", "mariadb"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
