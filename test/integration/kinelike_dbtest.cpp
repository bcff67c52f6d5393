// The clients the proxy's tests run (issue 10), proven here against the real test servers
// directly, with a tenant provisioned as the init does and its dataSource as written:
// kinelike (a Go client that starts and pools like Kine, with pgx and
// go-sql-driver/mysql), pgbench and mysqlslap. The proxy tests point the same helpers at
// the proxy; these tests make sure a failure there is the proxy's, not the client's.

#include <gtest/gtest.h>

#include <filesystem>

#include "kinelike.hpp"
#include "load_clients.hpp"
#include "temp_dir.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/dsn.hpp"
#include "tenantdb/password.hpp"
#include "tenantdb/provision.hpp"
#include "testdb.hpp"

namespace {
[[maybe_unused]] const bool server_logs = tenantdb::test::dump_server_logs_on_failure({"pg", "mariadb"});
}

namespace fs = std::filesystem;
using namespace tenantdb;

namespace {

class KinelikeTest : public ::testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    conn_ = test::load_connector(GetParam());
    store_dir_ = dir_.path() / "store";
    auto store = make_directory_store(store_dir_);
    provision_options o;
    o.who = test::unique_tenant("kinelike");
    o.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    o.ca_file = (store_dir_ / "caCert").string();
    data_ = provision(conn_, *make_engine(conn_.server.type), *store, o).data;
    ASSERT_TRUE(fs::exists(o.ca_file)) << "the dataSource names a CA file that is not there";
  }

  test::kinelike_driver driver() const { return test::kinelike_driver_for(conn_.server.type); }

  /// As Kine is configured for this tenant: the dataSource as written, plus --ca-file
  /// for go-sql-driver, which cannot name a CA in its DSN (README, "dataSource").
  test::kinelike_options kine_options() const {
    test::kinelike_options o;
    if (conn_.server.type != engine_type::postgres) o.ca_file = (store_dir_ / "caCert").string();
    return o;
  }

  const secret& data_source() const { return data_.at(keys::data_source); }

  test::db_endpoint endpoint() const {
    test::db_endpoint e;
    e.host = data_.at(keys::host).reveal();
    e.port = static_cast<std::uint16_t>(std::stoi(data_.at(keys::port).reveal()));
    e.user = data_.at(keys::user).reveal();
    e.database = data_.at(keys::database).reveal();
    e.password = data_.at(keys::password);
    e.ca_file = (store_dir_ / "caCert").string();
    return e;
  }

  connector conn_;
  test::temp_dir dir_{"tenantdb-kinelike-test"};
  fs::path store_dir_;
  credential_data data_;
};

TEST_P(KinelikeTest, RunsLikeKineWithZeroFailuresAndAChurningPool) {
  auto o = kine_options();
  o.duration = std::chrono::seconds(2);
  o.workers = 4;
  const auto r = test::run_kinelike(driver(), data_source(), o);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.mode, "run");
  EXPECT_EQ(r.failures, 0) << r.describe();
  EXPECT_EQ(r.first_error, "");
  EXPECT_GT(r.committed_rows, 0) << r.describe();
  // Every committed row was also read back: each is one insert and one select.
  EXPECT_GE(r.queries, 2 * r.committed_rows);
  // Connections expire after 200 ms, so 2 s of 4 workers open far more than 4 of them.
  EXPECT_GT(r.connections_opened, 10) << r.describe();
  EXPECT_GT(r.max_lifetime_closed + r.max_idle_time_closed, 0) << r.describe();
  EXPECT_EQ(r.err.find(data_.at(keys::password).reveal()), std::string::npos);
}

TEST_P(KinelikeTest, WrongPasswordFailsAndNeverShowsIt) {
  const secret wrong = generate_password();
  data_source_parts parts;
  parts.server = conn_.server;
  parts.database = data_.at(keys::database).reveal();
  parts.user = data_.at(keys::user).reveal();
  parts.password = &wrong;
  parts.ca_file = (store_dir_ / "caCert").string();
  const secret dsn = kine_data_source(parts);

  auto o = kine_options();
  o.duration = std::chrono::milliseconds(500);
  const auto r = test::run_kinelike(driver(), dsn, o);
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_GT(r.failures, 0) << r.describe();
  EXPECT_EQ(r.committed_rows, 0) << r.describe();
  EXPECT_NE(r.first_error, "") << r.describe();
  for (const std::string& text : {r.first_error, r.out, r.err}) {
    EXPECT_EQ(text.find(wrong.reveal()), std::string::npos) << "the password it was given shows";
    EXPECT_EQ(text.find(data_.at(keys::password).reveal()), std::string::npos) << "the tenant's password shows";
  }
}

TEST_P(KinelikeTest, VerifyModeFindsEveryCommittedRowAndFailsOnMore) {
  auto o = kine_options();
  o.duration = std::chrono::milliseconds(500);
  o.workers = 2;
  const auto run = test::run_kinelike(driver(), data_source(), o);
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  ASSERT_GT(run.committed_rows, 0) << run.describe();
  ASSERT_NE(run.name_prefix, "");

  auto v = kine_options();
  v.name_prefix = run.name_prefix;
  v.verify_rows = run.committed_rows;
  const auto found = test::run_kinelike(driver(), data_source(), v);
  EXPECT_EQ(found.exit_code, 0) << found.describe();
  EXPECT_EQ(found.mode, "verify");
  EXPECT_EQ(found.verified_rows, run.committed_rows) << "the run committed exactly these rows under its prefix";

  v.verify_rows = run.committed_rows + 1;
  const auto missing = test::run_kinelike(driver(), data_source(), v);
  EXPECT_EQ(missing.exit_code, 1) << missing.describe();
  EXPECT_EQ(missing.failures, 1) << missing.describe();
}

TEST_P(KinelikeTest, BadUsageExitsTwoWithoutJson) {
  auto o = kine_options();
  o.workers = 0;
  const auto r = test::run_kinelike(driver(), data_source(), o);
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("-workers"), std::string::npos) << r.err;
}

TEST_P(KinelikeTest, EngineLoadClientRunsAsTheTenantForASecond) {
  const auto target = endpoint();
  test::load_result r;
  if (conn_.server.type == engine_type::postgres) {
    test::pgbench_options o;
    o.duration = std::chrono::seconds(1);
    r = test::run_pgbench(target, o);
    EXPECT_GT(r.latency_ms, 0) << r.describe();
  } else {
    test::mysqlslap_options o;
    o.queries = 500;
    r = test::run_mysqlslap(target, o);
  }
  EXPECT_TRUE(r.ok) << r.describe();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_GT(r.transactions, 0) << r.describe();
  EXPECT_GT(r.per_second, 0) << r.describe();
  EXPECT_EQ(r.err.find(target.password.reveal()), std::string::npos);
}

TEST_P(KinelikeTest, EngineLoadClientFailsWithAWrongPassword) {
  auto target = endpoint();
  target.password = generate_password();
  const auto r = conn_.server.type == engine_type::postgres ? test::run_pgbench(target) : test::run_mysqlslap(target);
  EXPECT_FALSE(r.ok) << r.describe();
  EXPECT_NE(r.exit_code, 0) << r.describe();
  // Refused for the password, not for anything else wrong with the run.
  const char* refusal = conn_.server.type == engine_type::postgres ? "password authentication failed" : "Access denied";
  EXPECT_NE(r.err.find(refusal), std::string::npos) << r.describe();
  EXPECT_EQ(r.out.find(target.password.reveal()), std::string::npos);
  EXPECT_EQ(r.err.find(target.password.reveal()), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Engines, KinelikeTest, ::testing::Values("pg", "mariadb"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
