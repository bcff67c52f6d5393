// Issue 11, item 5, the sidecar's side: what the tenant's own login can see of drift is
// reported in /metrics (tenantdb_drift{kind="privileges"}) and /readyz, without making
// the sidecar unready. tenantdb-init --local and tenantdb-sidecar --local as processes
// against the real PostgreSQL and MariaDB servers; the extra privilege is granted with
// the admin login.

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>

#include "../suite/isolation_clients.hpp"
#include "eventually.hpp"
#include "metrics.hpp"
#include "pod.hpp"
#include "ports.hpp"
#include "process.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/naming.hpp"
#include "testdb.hpp"

namespace fs = std::filesystem;
using namespace tenantdb;
using namespace std::chrono_literals;
using test::isolation::my_client;
using test::isolation::pg_client;

namespace {

[[maybe_unused]] const bool server_logs = test::dump_server_logs_on_failure({"pg", "mariadb"});

constexpr const char* drift_sample = "tenantdb_drift{kind=\"privileges\"}";

class SidecarDriftTest : public ::testing::TestWithParam<std::string> {
protected:
  bool pg() const { return GetParam() == "pg"; }

  void SetUp() override {
    conn_ = test::load_connector(GetParam());
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : name)
      if (c == '/') c = '_';
    work_ = fs::temp_directory_path() / ("tenantdb-sidecar-drift-" + std::to_string(::getpid()) + "-" + name);
    fs::remove_all(work_);
    fs::create_directories(work_);
    t_ = test::unique_tenant("drift");
    names_ = derive_names(t_);
  }

  void TearDown() override {
    if (sidecar_) {
      if (HasFailure()) std::cerr << "--- sidecar stderr\n" << test::tail(sidecar_->err(), 40) << "\n";
      sidecar_->kill(SIGKILL);
      sidecar_->wait(10s);
    }
    fs::remove_all(work_);
    try {
      auto admin = connect_admin(conn_.server, test::admin_login(conn_));
      admin->drop_database(names_.database);
      for (const auto& u : {names_.user_a, names_.user_b}) admin->drop_user(u);
      if (pg()) admin->drop_user(names_.database);
      for (const auto& o : admin->recorded_objects(&names_)) admin->drop_record(o);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "cleanup: " << e.what();
    }
  }

  fs::path store() const { return work_ / "store"; }

  void provision() {
    const auto r =
        test::run_process({TENANTDB_INIT_BIN, "--local", "--tenant", t_.name, "--namespace", t_.namespace_name,
                           "--connector-file", (test::testdb_dir() / (GetParam() + ".connector")).string(),
                           "--output-dir", store().string(), "--timeout", "60s"},
                          {{"KUBECONFIG", ""}, {"POD_NAMESPACE", ""}, {"TENANTDB_TENANT", ""}});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  void start_sidecar() {
    port_ = test::unused_port();
    sidecar_ = std::make_unique<test::child_process>(
        std::vector<std::string>{TENANTDB_SIDECAR_BIN, "--local",
                                 "--store-dir",        store().string(),
                                 "--output-dir",       (work_ / "out").string(),
                                 "--tenant",           t_.name,
                                 "--namespace",        t_.namespace_name,
                                 "--listen",           "127.0.0.1:" + std::to_string(port_),
                                 "--admin-listen",     "off",
                                 "--rotate-every",     "never",
                                 "--sync-interval",    "300ms",
                                 "--check-interval",   "1s"},
        std::map<std::string, std::string>{{"KUBECONFIG", ""},
                                           {"POD_NAMESPACE", ""},
                                           {"POD_NAME", ""},
                                           {"TENANTDB_TENANT", ""},
                                           {"TENANTDB_TEST_CRASH_AT", ""}},
        (work_ / "sidecar").string() + "-" + std::to_string(++launches_));
  }

  void stop_sidecar() {
    sidecar_->kill(SIGTERM);
    ASSERT_EQ(sidecar_->wait(20s), 0);
    sidecar_.reset();
  }

  std::optional<double> drift() const { return test::metric(test::http(port_, "GET", "/metrics").body, drift_sample); }

  // The account the workload logs in with now.
  std::string active_user() const { return read_directory(store()).at(keys::user).reveal(); }

  connector conn_;
  fs::path work_;
  tenant t_;
  tenant_names names_;
  std::unique_ptr<test::child_process> sidecar_;
  std::uint16_t port_ = 0;
  int launches_ = 0;
};

TEST_P(SidecarDriftTest, AnExtraPrivilegeShowsInTheMetricAndReadyzWithoutMakingItUnready) {
  provision();
  // A tenant as tenantdb made it: checked, no drift, plainly ready.
  start_sidecar();
  ASSERT_TRUE(test::eventually([&] { return drift().has_value(); }, 30s)) << test::http(port_, "GET", "/metrics").body;
  EXPECT_EQ(drift(), 0.0);
  ASSERT_TRUE(test::eventually([&] { return test::http(port_, "GET", "/readyz").status == 200; }, 30s));
  EXPECT_EQ(test::http(port_, "GET", "/readyz").body, "ready\n");
  stop_sidecar();

  // The admin gives the account more than tenantdb does.
  const login admin = test::admin_login(conn_);
  const std::string user = active_user();
  if (pg())
    pg_client(conn_.server, admin, conn_.server.admin_database.empty() ? "postgres" : conn_.server.admin_database)
        .exec("ALTER ROLE \"" + user + "\" CREATEDB");
  else
    my_client(conn_.server, admin, "").exec("GRANT PROCESS ON *.* TO '" + user + "'@'%'");

  // The sidecar's first check after a start sees it; the workload stays ready.
  start_sidecar();
  ASSERT_TRUE(test::eventually([&] { return drift().has_value(); }, 30s)) << test::http(port_, "GET", "/metrics").body;
  EXPECT_EQ(drift(), 1.0);
  ASSERT_TRUE(test::eventually([&] { return test::http(port_, "GET", "/readyz").status == 200; }, 30s));
  EXPECT_EQ(test::http(port_, "GET", "/readyz").body, "ready (drift: privileges)\n");
  EXPECT_EQ(test::metric(test::http(port_, "GET", "/metrics").body, "tenantdb_ready"), 1.0);
  // The log names what it found (names only).
  EXPECT_NE(sidecar_->err().find(pg() ? "has CREATEDB" : "GRANT PROCESS ON *.*"), std::string::npos)
      << test::tail(sidecar_->err(), 20);
}

INSTANTIATE_TEST_SUITE_P(Engines, SidecarDriftTest, ::testing::Values("pg", "mariadb"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
