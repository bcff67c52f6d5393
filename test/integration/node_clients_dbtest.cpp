// A second opinion on the proxy (issue 10), from clients nobody here wrote: Node's `pg`
// (PostgreSQL) and `mysql2` (MySQL/MariaDB) from npm, driven by test/clients/node/client.js
// (versions pinned in its package.json and package-lock.json, installed by
// tools/install-deps.sh). The real tenantdb-init provisions the tenant against the real
// test servers and the Kubernetes API stand-in; the real tenantdb-sidecar serves the proxy
// on loopback and rotates (dual strategy) as fast as its flags allow. The client reads ONE
// fixed, secret-free data source once, at start:
//   pg      postgres://kine@127.0.0.1:<port>/kine?sslmode=disable
//   mysql2  mysql://kine@127.0.0.1:<port>/<the tenant's database>
// and its pools keep opening new connections (short idle timeouts; pg's also retire every
// connection after a second) while it inserts rows and reads each committed row back.
//
// Through at least ten rotations, on both engines: zero failed queries, new connections
// opened all along (so it logged in after the rotations), and every committed row there at
// the end, read through the proxy by a fresh client with the same data source.
//
// Without node or the two npm packages (tools/install-deps.sh could not reach npm's
// registry) the tests SKIP, naming what is missing.

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include <rapidjson/document.h>

#include "eventually.hpp"
#include "kube_standin.hpp"
#include "metrics.hpp"
#include "pod.hpp"
#include "ports.hpp"
#include "process.hpp"
#include "temp_dir.hpp"
#include "tenantdb/credentials.hpp"
#include "testdb.hpp"

namespace fs = std::filesystem;
using namespace tenantdb;
using namespace std::chrono_literals;

namespace {

[[maybe_unused]] const bool server_logs = test::dump_server_logs_on_failure({"pg", "mariadb"});

constexpr const char* ns = "team-a";  // the pod's namespace (test::set_up_pod)
using test::eventually;
using test::http;
using test::metric;
using test::tail;

const fs::path node_client_dir = fs::path(TENANTDB_SOURCE_DIR) / "test" / "clients" / "node";

// `node` on PATH, or nothing.
std::optional<fs::path> find_node() {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty()) continue;
    const fs::path candidate = fs::path(dir) / "node";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

// The client's one JSON line.
struct node_result {
  int exit_code = -1;
  std::string out;
  std::string err;
  std::int64_t queries = 0;
  std::int64_t failures = 0;
  std::string first_error;
  std::int64_t committed_rows = 0;
  std::int64_t connections_opened = 0;
  std::int64_t idle_errors = 0;
  std::string name_prefix;
  std::int64_t verified_rows = 0;

  std::string describe() const {
    return "exit " + std::to_string(exit_code) + ", queries " + std::to_string(queries) + ", failures " +
           std::to_string(failures) + ", committed_rows " + std::to_string(committed_rows) + ", connections_opened " +
           std::to_string(connections_opened) + ", idle_errors " + std::to_string(idle_errors) + ", verified_rows " +
           std::to_string(verified_rows) + ", first_error [" + first_error + "], stdout [" + tail(out, 2000) +
           "], stderr [" + tail(err, 2000) + "]";
  }
};

struct node_options {
  std::chrono::milliseconds duration{2000};
  int workers = 4;
  std::string stop_file;
  std::string name_prefix;
  std::optional<std::int64_t> verify_rows;
  std::chrono::seconds timeout{120};
};

// Runs client.js with the data source in a private file (never on argv or in the
// environment). Fails the test (returns a result with exit_code -1 fields) when the
// client printed no JSON.
node_result run_node_client(const fs::path& node, const std::string& driver, const std::string& dsn,
                            const node_options& o) {
  const test::temp_dir dir("tenantdb-node-client");
  const fs::path dsn_file = dir.path() / "dsn";
  {
    std::ofstream f(dsn_file);
    f << dsn << "\n";
  }
  std::vector<std::string> argv = {node.string(), (node_client_dir / "client.js").string(),
                                   "--driver",    driver,
                                   "--dsn-file",  dsn_file.string(),
                                   "--duration",  std::to_string(o.duration.count()),
                                   "--workers",   std::to_string(o.workers)};
  if (!o.stop_file.empty()) argv.insert(argv.end(), {"--stop-file", o.stop_file});
  if (!o.name_prefix.empty()) argv.insert(argv.end(), {"--name-prefix", o.name_prefix});
  if (o.verify_rows) argv.insert(argv.end(), {"--verify-rows", std::to_string(*o.verify_rows)});
  const auto ran = test::run_process(argv, {}, o.timeout);
  node_result r;
  r.exit_code = ran.exit_code;
  r.out = ran.out;
  r.err = ran.err;
  std::string line = ran.out;
  while (!line.empty() && line.back() == '\n') line.pop_back();
  if (const auto nl = line.rfind('\n'); nl != std::string::npos) line.erase(0, nl + 1);
  rapidjson::Document doc;
  doc.Parse(line.c_str(), line.size());
  if (line.empty() || doc.HasParseError() || !doc.IsObject()) {
    ADD_FAILURE() << "the node client printed no JSON line: " << r.describe();
    r.failures = -1;
    return r;
  }
  const auto num = [&](const char* k) -> std::int64_t {
    const auto it = doc.FindMember(k);
    if (it == doc.MemberEnd() || !it->value.IsInt64()) {
      ADD_FAILURE() << "the node client's JSON has no integer " << k << ": " << line;
      return -1;
    }
    return it->value.GetInt64();
  };
  const auto str = [&](const char* k) -> std::string {
    const auto it = doc.FindMember(k);
    if (it == doc.MemberEnd() || !it->value.IsString()) {
      ADD_FAILURE() << "the node client's JSON has no string " << k << ": " << line;
      return "";
    }
    return it->value.GetString();
  };
  r.queries = num("queries");
  r.failures = num("failures");
  r.first_error = str("first_error");
  r.committed_rows = num("committed_rows");
  r.connections_opened = num("connections_opened");
  r.idle_errors = num("idle_errors");
  r.name_prefix = str("name_prefix");
  r.verified_rows = num("verified_rows");
  return r;
}

class NodeClientsTest : public ::testing::TestWithParam<std::string> {
protected:
  std::string engine() const { return GetParam(); }
  std::string driver() const { return engine() == "pg" ? "pg" : "mysql2"; }

  void SetUp() override {
    // What tools/install-deps.sh provides; without it, skip and say what is missing.
    const auto node = find_node();
    if (!node) GTEST_SKIP() << "node is not installed (not on PATH): run tools/install-deps.sh";
    node_ = *node;
    if (!fs::exists(node_client_dir / "node_modules" / driver() / "package.json"))
      GTEST_SKIP() << "the npm package " << driver() << " is not installed in " << (node_client_dir / "node_modules")
                   << ": run tools/install-deps.sh with npm's registry reachable";

    conn_ = test::load_connector(engine());
    work_ = fs::temp_directory_path() / ("tenantdb-node-" + std::to_string(::getpid()) + "-" + engine());
    fs::remove_all(work_);
    fs::create_directories(work_);
    who_ = test::unique_tenant("nd");
    who_.namespace_name = ns;
    secret_name_ = "vc-db-" + who_.name;  // the name tenantdb-init derives
    test::set_up_pod(api_, pod_, engine(), secret_name_);
    kubeconfig_ = (work_ / "kubeconfig").string();
    test::write_kubeconfig(kubeconfig_, api_, pod_);
  }

  void TearDown() override {
    if (sidecar_) {
      if (HasFailure()) std::cerr << "--- sidecar (last lines of stderr)\n" << tail(sidecar_->err(), 60) << "\n";
      sidecar_->kill(SIGKILL);
      sidecar_->wait(10s);
      sidecar_.reset();
    }
    if (!work_.empty()) fs::remove_all(work_);
  }

  void init() {
    const auto r = test::run_process(
        {TENANTDB_INIT_BIN, "--tenant", who_.name, "--namespace", ns, "--connector", "platform/db-connector",
         "--kubeconfig", kubeconfig_, "--strategy", "dual", "--timeout", "60s"},
        {{"KUBECONFIG", ""}, {"POD_NAMESPACE", ""}, {"TENANTDB_TENANT", ""}});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  // The sidecar with the proxy on loopback, rotating as fast as its flags allow.
  void start_sidecar() {
    port_ = test::unused_port();
    proxy_ = test::unused_port();
    sidecar_ = std::make_unique<test::child_process>(
        std::vector<std::string>{TENANTDB_SIDECAR_BIN,
                                 "--tenant",
                                 who_.name,
                                 "--namespace",
                                 ns,
                                 "--kubeconfig",
                                 kubeconfig_,
                                 "--output-dir",
                                 (work_ / "out").string(),
                                 "--listen",
                                 "127.0.0.1:" + std::to_string(port_),
                                 "--admin-listen",
                                 "127.0.0.1:" + std::to_string(test::unused_port()),
                                 "--pod-name",
                                 "pod-n",
                                 "--strategy",
                                 "dual",
                                 "--sync-interval",
                                 "300ms",
                                 "--check-interval",
                                 "1s",
                                 "--proxy-listen",
                                 "127.0.0.1:" + std::to_string(proxy_),
                                 "--rotate-every",
                                 "1s",
                                 "--grace",
                                 "1s",
                                 "--jitter",
                                 "0"},
        std::map<std::string, std::string>{{"KUBECONFIG", ""},
                                           {"POD_NAMESPACE", ""},
                                           {"POD_NAME", ""},
                                           {"TENANTDB_TENANT", ""},
                                           {"TENANTDB_TEST_CRASH_AT", ""},
                                           {"TENANTDB_TEST_PAUSE_AT", ""}},
        (work_ / "pod-n").string());
  }

  std::string metrics() const { return http(port_, "GET", "/metrics").body; }
  double rotated() const { return metric(metrics(), "tenantdb_rotations_total{result=\"rotated\"}").value_or(-1); }

  // The fixed data source, no password: the proxy's loopback front door needs none.
  std::string data_source() const {
    const std::string at = "127.0.0.1:" + std::to_string(proxy_);
    if (engine() == "pg") return "postgres://kine@" + at + "/kine?sslmode=disable";
    return "mysql://kine@" + at + "/" + api_.secret_value(ns, secret_name_, keys::database).value_or("");
  }

  fs::path node_;
  connector conn_;
  fs::path work_;
  tenant who_;
  std::string secret_name_;
  std::string kubeconfig_;
  test::KubeStandin api_;
  test::pod_identity pod_;
  std::unique_ptr<test::child_process> sidecar_;
  std::uint16_t port_ = 0;
  std::uint16_t proxy_ = 0;
};

TEST_P(NodeClientsTest, NodeDriversWithAFixedDataSourceSeeZeroFailuresThroughTenRotationsAndKeepEveryRow) {
  init();
  start_sidecar();
  ASSERT_TRUE(eventually([&] { return http(port_, "GET", "/readyz").status == 200; }, 30s))
      << http(port_, "GET", "/readyz").body;
  const std::string dsn = data_source();

  // The client runs until the sidecar has completed eleven more rotations (ten whole ones
  // inside the run: the first may have begun before it), then the stop file ends it. Dual
  // at --rotate-every 1s --grace 1s switches about every two seconds; the deadlines are
  // generous for a loaded machine and only bound a hang.
  const double rotated_before = rotated();
  ASSERT_GE(rotated_before, 0) << metrics();
  const double connections_before = metric(metrics(), "tenantdb_proxy_connections_total").value_or(0);
  node_options o;
  o.duration = 100s;
  o.stop_file = (work_ / "stop").string();
  o.timeout = 150s;
  node_result run;
  std::thread client([&] { run = run_node_client(node_, driver(), dsn, o); });
  const bool rotated_enough = eventually([&] { return rotated() >= rotated_before + 11; }, 90s);
  std::ofstream(o.stop_file).put('\n');
  client.join();
  const double rotations = rotated() - rotated_before;
  std::cerr << "node " << driver() << " ran through " << rotations << " rotations: " << run.describe() << "\n";

  EXPECT_TRUE(rotated_enough) << "only " << rotations << " rotations in 90 s: " << metrics();
  EXPECT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_EQ(run.failures, 0) << run.describe();
  EXPECT_EQ(run.first_error, "") << run.describe();
  EXPECT_GT(run.committed_rows, 0) << run.describe();
  EXPECT_GE(run.queries, 2 * run.committed_rows) << run.describe();  // every insert read back
  // The pool logged in anew all along, not once before the first rotation: at least one
  // new connection per rotation, each through the proxy.
  EXPECT_GE(run.connections_opened, rotations) << run.describe();
  EXPECT_GE(metric(metrics(), "tenantdb_proxy_connections_total").value_or(0) - connections_before,
            run.connections_opened)
      << metrics();

  // Every committed row is there, read by a fresh client through the proxy with the same
  // data source (with no failed insert, exactly the committed ones).
  node_options v;
  v.name_prefix = run.name_prefix;
  v.verify_rows = run.committed_rows;
  ASSERT_FALSE(run.name_prefix.empty()) << run.describe();
  const auto verified = run_node_client(node_, driver(), dsn, v);
  EXPECT_EQ(verified.exit_code, 0) << verified.describe();
  EXPECT_EQ(verified.verified_rows, run.committed_rows) << verified.describe();

  const auto m = metrics();
  EXPECT_EQ(metric(m, "tenantdb_rotations_total{result=\"failed\"}").value_or(0), 0) << m;
  EXPECT_EQ(metric(m, "tenantdb_proxy_failures_total{reason=\"upstream_auth\"}").value_or(0), 0) << m;
}

INSTANTIATE_TEST_SUITE_P(Engines, NodeClientsTest, ::testing::Values("pg", "mariadb"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
