// Retire when drained (issue 10, clients that do not use the proxy) against the real
// PostgreSQL and MariaDB test servers: the engine counts an account's own open sessions
// with that account's login; tenantdb-sidecar --retire-when-drained keeps the previous
// account working after --grace while a session is open on it (tenantdb_previous_account_
// sessions shows it), retires it once the session closes, and retires it anyway, with
// the session still running, once the maximum wait has passed. The state machine on the
// fakes: test/unit/drain_test.cpp.

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unistd.h>
#include <variant>
#include <vector>

#include <rapidjson/document.h>

#include "../suite/isolation_clients.hpp"
#include "credential_values.hpp"
#include "eventually.hpp"
#include "metrics.hpp"
#include "pod.hpp"
#include "ports.hpp"
#include "process.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/provision.hpp"
#include "tenantdb/store.hpp"
#include "testdb.hpp"

namespace {
[[maybe_unused]] const bool server_logs = tenantdb::test::dump_server_logs_on_failure({"pg", "mariadb"});
}

namespace fs = std::filesystem;
using namespace tenantdb;
using namespace std::chrono_literals;
using test::eventually;
using test::http;
using test::metric;
using test::value_of;

namespace {

// Generous: the CI machine has two loaded cores.
constexpr auto patience = 60s;

/// One session held open as `l`, through the engine's own wire protocol (libpq or
/// Connector/C, verified TLS), until destroyed.
class held_session {
public:
  held_session(const std::string& engine, const server_address& server, const login& l, const std::string& db) {
    if (engine == "pg")
      client_.emplace<test::isolation::pg_client>(server, l, db);
    else
      client_.emplace<test::isolation::my_client>(server, l, db);
  }
  /// Runs a statement on the session; throws test::isolation::sql_failure if it fails.
  std::string one() {
    return std::visit(
        [](auto& c) -> std::string {
          if constexpr (std::is_same_v<std::decay_t<decltype(c)>, std::monostate>)
            return {};
          else
            return c.value("SELECT 1");
        },
        client_);
  }

private:
  std::variant<std::monostate, test::isolation::pg_client, test::isolation::my_client> client_;
};

class DrainTest : public ::testing::TestWithParam<std::string> {
protected:
  std::string engine() const { return GetParam(); }

  void SetUp() override {
    conn_ = test::load_connector(engine());
    work_ = fs::temp_directory_path() / ("tenantdb-drain-" + std::to_string(::getpid()) + "-" + test_name());
    fs::remove_all(work_);
    fs::create_directories(work_);
  }
  void TearDown() override {
    if (sidecar_) {
      if (HasFailure()) std::cerr << "--- sidecar (last lines of stderr)\n" << test::tail(sidecar_->err(), 60) << "\n";
      sidecar_->kill(SIGKILL);
      sidecar_->wait(10s);
    }
    fs::remove_all(work_);
  }

  static std::string test_name() {
    std::string n = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : n)
      if (c == '/') c = '_';
    return n;
  }

  // tenantdb-init --local: the directory store the sidecar rotates.
  void init_local() {
    const auto who = test::unique_tenant("drain");
    const auto r = test::run_process({TENANTDB_INIT_BIN, "--local", "--tenant", who.name, "--namespace", "team-a",
                                      "--connector-file", (test::testdb_dir() / (engine() + ".connector")).string(),
                                      "--output-dir", store().string(), "--timeout", "60s"},
                                     {{"KUBECONFIG", ""}, {"POD_NAMESPACE", ""}, {"TENANTDB_TENANT", ""}});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  fs::path store() const { return work_ / "store"; }
  credential_data stored() const { return read_directory(store()); }
  std::string database() const { return value_of(stored(), keys::database); }
  login active() const { return login{value_of(stored(), keys::user), secret(value_of(stored(), keys::password))}; }

  void start_sidecar(const std::string& drain_max) {
    port_ = test::unused_port();
    admin_ = test::unused_port();
    sidecar_ = std::make_unique<test::child_process>(
        std::vector<std::string>{TENANTDB_SIDECAR_BIN,
                                 "--local",
                                 "--store-dir",
                                 store().string(),
                                 "--output-dir",
                                 (work_ / "out").string(),
                                 "--listen",
                                 "127.0.0.1:" + std::to_string(port_),
                                 "--admin-listen",
                                 "127.0.0.1:" + std::to_string(admin_),
                                 "--pod-name",
                                 "pod-d",
                                 "--sync-interval",
                                 "300ms",
                                 "--rotate-every",
                                 "never",
                                 "--grace",
                                 "1s",
                                 "--retire-when-drained",
                                 drain_max,
                                 "--log-level",
                                 "debug"},
        std::map<std::string, std::string>{
            {"KUBECONFIG", ""}, {"POD_NAMESPACE", ""}, {"POD_NAME", ""}, {"TENANTDB_TENANT", ""}},
        (work_ / ("sidecar-" + std::to_string(++launches_))).string());
    ASSERT_TRUE(eventually([&] { return http(port_, "GET", "/readyz").status == 200; }, patience))
        << http(port_, "GET", "/readyz").body;
  }

  std::string metrics() const { return http(port_, "GET", "/metrics").body; }
  std::optional<double> sample(const std::string& name) const { return metric(metrics(), name); }

  // True if the server accepts the login, false if it refuses it; other failures throw.
  bool logs_in(const login& l) const {
    try {
      db_timeouts t;
      t.connect = 10s;
      verify_login(conn_.server, l, database(), t);
      return true;
    } catch (const error& e) {
      if (e.kind() != error_kind::verification) throw;
      return false;
    }
  }

  int count(const login& l) const {
    db_timeouts t;
    t.connect = 10s;
    return make_engine(conn_.server.type)->count_own_sessions(conn_.server, l, database(), t);
  }

  // Rotates once through the admin endpoint; returns when the store has switched accounts.
  void rotate_now(const login& before) {
    ASSERT_EQ(http(admin_, "POST", "/rotate").status, 202);
    ASSERT_TRUE(eventually([&] { return active().user != before.user; }, patience)) << "no rotation";
  }

  connector conn_;
  fs::path work_;
  std::unique_ptr<test::child_process> sidecar_;
  std::uint16_t port_ = 0;
  std::uint16_t admin_ = 0;
  int launches_ = 0;
};

TEST_P(DrainTest, TheEngineCountsOnlyTheAccountsOwnOtherSessions) {
  init_local();
  const login a = active();
  const login b{value_of(stored(), keys::standby_user), secret(value_of(stored(), keys::standby_password))};
  EXPECT_EQ(count(a), 0) << "the probe counted itself";
  {
    held_session a1(engine(), conn_.server, a, database());
    held_session a2(engine(), conn_.server, a, database());
    held_session b1(engine(), conn_.server, b, database());
    EXPECT_EQ(count(a), 2);
    EXPECT_EQ(count(b), 1) << "another account's sessions were counted, or its own were not";
  }
  // A closed session leaves the server's list once its backend or thread has ended.
  EXPECT_TRUE(eventually([&] { return count(a) == 0 && count(b) == 0; }, patience));
  try {
    count(login{a.user, secret("NotThePasswordNotThePassword")});
    ADD_FAILURE() << "counted with a wrong password";
  } catch (const error& e) {
    EXPECT_EQ(e.kind(), error_kind::verification) << e.what();
  }
}

TEST_P(DrainTest, AnOpenSessionKeepsThePreviousAccountWorkingUntilItClosesThenItIsRetired) {
  init_local();
  const login previous = active();
  auto session = std::make_unique<held_session>(engine(), conn_.server, previous, database());
  start_sidecar("10m");
  EXPECT_EQ(sample("tenantdb_previous_account_sessions"), 0) << metrics();
  rotate_now(previous);

  // --grace 1s is long over, and the session keeps the previous account working.
  ASSERT_TRUE(eventually([&] { return sample("tenantdb_previous_account_sessions") == 1; }, patience)) << metrics();
  EXPECT_TRUE(eventually([&] { return sample("tenantdb_retirements_deferred_total") >= 2; }, patience)) << metrics();
  EXPECT_EQ(sample("tenantdb_rotations_total{result=\"retired\"}"), 0) << metrics();
  EXPECT_TRUE(logs_in(previous)) << "the previous account was retired with a session open";
  EXPECT_EQ(session->one(), "1");

  session.reset();
  ASSERT_TRUE(eventually([&] { return sample("tenantdb_rotations_total{result=\"retired\"}") == 1; }, patience))
      << metrics();
  EXPECT_FALSE(logs_in(previous)) << "retired, yet the previous password still logs in";
  EXPECT_EQ(sample("tenantdb_previous_account_sessions"), 0) << metrics();
  EXPECT_EQ(sample("tenantdb_retirements_forced_total{reason=\"max_wait\"}"), 0) << metrics();
  EXPECT_TRUE(logs_in(active())) << "the active credential stopped working";
  EXPECT_NE(sidecar_->err().find("not retiring the previous account yet"), std::string::npos);
}

TEST_P(DrainTest, AKillNineDuringTheWaitLeavesTheWaitToTheRestartedSidecarWhichRetiresOnceDrained) {
  init_local();
  const login previous = active();
  auto session = std::make_unique<held_session>(engine(), conn_.server, previous, database());
  start_sidecar("10m");
  rotate_now(previous);
  ASSERT_TRUE(eventually([&] { return sample("tenantdb_previous_account_sessions") == 1; }, patience)) << metrics();

  sidecar_->kill(SIGKILL);
  ASSERT_EQ(sidecar_->wait(30s), 128 + SIGKILL);
  EXPECT_TRUE(logs_in(previous)) << "the previous account was retired with a session open";
  start_sidecar("10m");
  ASSERT_TRUE(eventually([&] { return sample("tenantdb_retirements_deferred_total") >= 1; }, patience)) << metrics();
  EXPECT_EQ(sample("tenantdb_previous_account_sessions"), 1) << metrics();
  EXPECT_TRUE(logs_in(previous)) << "the restarted sidecar retired the previous account with a session open";

  session.reset();
  ASSERT_TRUE(eventually([&] { return sample("tenantdb_rotations_total{result=\"retired\"}") == 1; }, patience))
      << metrics();
  EXPECT_FALSE(logs_in(previous)) << "the previous account was never retired after the restart";
  EXPECT_EQ(sample("tenantdb_previous_account_sessions"), 0) << metrics();
}

TEST_P(DrainTest, AfterTheMaximumWaitThePreviousAccountIsRetiredWithTheSessionStillOpen) {
  init_local();
  const login previous = active();
  held_session session(engine(), conn_.server, previous, database());
  start_sidecar("3s");
  rotate_now(previous);

  ASSERT_TRUE(eventually([&] { return sample("tenantdb_rotations_total{result=\"retired\"}") == 1; }, patience))
      << metrics();
  EXPECT_EQ(sample("tenantdb_retirements_forced_total{reason=\"max_wait\"}"), 1) << metrics();
  EXPECT_EQ(sample("tenantdb_previous_account_sessions"), 0) << metrics();
  EXPECT_FALSE(logs_in(previous)) << "the previous password still logs in after the maximum wait";
  EXPECT_EQ(session.one(), "1") << "a retirement ends no session";
  EXPECT_NE(sidecar_->err().find("retiring the previous account with sessions still open"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Engines, DrainTest, ::testing::Values("pg", "mariadb"),
                         [](const auto& param_info) { return param_info.param; });

TEST(DrainFlag, ABadMaximumWaitEndsTheSidecarWithOneLineAndExitTwo) {
  for (const char* bad : {"soon", "1500ms", "8d"}) {
    const auto r = test::run_process(
        {TENANTDB_SIDECAR_BIN, "--local", "--store-dir", "/nonexistent/store", "--output-dir", "/nonexistent/out",
         "--listen", "off", "--admin-listen", "off", "--pod-name", "p", "--retire-when-drained", bad},
        {{"KUBECONFIG", ""}, {"POD_NAMESPACE", ""}, {"TENANTDB_TENANT", ""}});
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << bad << ": expected one line:\n" << r.err;
    EXPECT_NE(r.err.find("--retire-when-drained"), std::string::npos) << bad << ": " << r.err;
  }
}

}  // namespace
