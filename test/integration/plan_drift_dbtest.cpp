// Issue 11, items 4 and 5: `tenantdb-init --dry-run` on a normal run prints the plan and
// changes nothing, a real run then does exactly what the plan said; and each init run
// puts back what drifted in what tenantdb owns, logging every repair. Run as processes
// against the real PostgreSQL and MariaDB servers; drift is made with the admin login.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <rapidjson/document.h>
#include <regex>
#include <sstream>

#include "../suite/isolation_clients.hpp"
#include "pod.hpp"
#include "process.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/naming.hpp"
#include "testdb.hpp"

namespace fs = std::filesystem;
using namespace tenantdb;
using test::isolation::my_client;
using test::isolation::pg_client;

namespace {

[[maybe_unused]] const bool server_logs = test::dump_server_logs_on_failure({"pg", "mariadb"});

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string field(const std::string& json_line, const char* key) {
  rapidjson::Document d;
  d.Parse(json_line.c_str());
  if (d.HasParseError() || !d.IsObject()) return {};
  const auto it = d.FindMember(key);
  return it != d.MemberEnd() && it->value.IsString() ? it->value.GetString() : std::string();
}

// The log lines with message `msg`, each as its field `key`.
std::vector<std::string> logged(const std::string& err, const std::string& msg, const char* key) {
  std::vector<std::string> out;
  for (const auto& l : lines_of(err))
    if (field(l, "msg") == msg) out.push_back(field(l, key));
  return out;
}

// An ownership record says when it was written: two runs differ only there.
std::string without_time(const std::string& step) {
  static const std::regex created(R"re(\\?"created\\?":\\?"[^"\\]*\\?")re");
  return std::regex_replace(step, created, "created:<time>");
}

class PlanDriftTest : public ::testing::TestWithParam<std::string> {
protected:
  bool pg() const { return GetParam() == "pg"; }

  void SetUp() override {
    conn_ = test::load_connector(GetParam());
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "." + info->name();
    for (char& c : name)
      if (c == '/') c = '_';
    work_ = fs::temp_directory_path() / ("tenantdb-plan-" + std::to_string(::getpid()) + "-" + name);
    fs::remove_all(work_);
    fs::create_directories(work_);
    t_ = test::unique_tenant("plan");
    names_ = derive_names(t_);
  }
  void TearDown() override {
    fs::remove_all(work_);
    // The tenant goes with the test (the servers are shared).
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

  test::process_result init(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{TENANTDB_INIT_BIN,  "--local",
                                  "--connector-file", (test::testdb_dir() / (GetParam() + ".connector")).string(),
                                  "--tenant",         t_.name,
                                  "--namespace",      t_.namespace_name,
                                  "--output-dir",     store().string(),
                                  "--timeout",        "60s"};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_process(args, {{"KUBECONFIG", ""}, {"POD_NAMESPACE", ""}, {"TENANTDB_TEST_CRASH_AT", ""}});
  }

  // The writes a dry run printed ("SQL ...", "API ...", "FILE ...").
  static std::vector<std::string> plan_of(const test::process_result& r) {
    std::vector<std::string> out;
    for (const auto& l : lines_of(r.out))
      if (l.rfind("SQL ", 0) == 0 || l.rfind("API ", 0) == 0 || l.rfind("FILE ", 0) == 0)
        out.push_back(without_time(l));
    return out;
  }

  // What a real run logged it did, in the plan's words.
  static std::vector<std::string> ran(const test::process_result& r) {
    std::vector<std::string> out;
    for (const auto& s : logged(r.err, "ran", "step")) out.push_back(without_time(s));
    return out;
  }

  void provision() {
    const auto r = init();
    ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 30);
  }

  // Runs statements as the admin (PostgreSQL: in the admin's own database).
  std::string admin_sql(const std::string& sql) {
    const login admin = test::admin_login(conn_);
    if (pg()) {
      const std::string db = conn_.server.admin_database.empty() ? "postgres" : conn_.server.admin_database;
      return pg_client(conn_.server, admin, db).value(sql);
    }
    return my_client(conn_.server, admin, "").value(sql);
  }

  // Runs the init and expects it to log `repair` (a part of one "repaired drift" line).
  void expect_repaired(const std::string& repair) {
    const auto r = init();
    ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 30);
    const auto repairs = logged(r.err, "repaired drift", "repair");
    EXPECT_TRUE(std::any_of(repairs.begin(), repairs.end(),
                            [&](const std::string& s) { return s.find(repair) != std::string::npos; }))
        << "expected a repair mentioning \"" << repair << "\"; the run logged:\n"
        << test::tail(r.err, 40);
  }

  // The escaped name GRANT uses on MariaDB ('_' matches itself only).
  std::string grant_db() const {
    std::string out;
    for (char c : names_.database) {
      if (c == '_') out += '\\';
      out += c;
    }
    return "`" + out + "`";
  }

  connector conn_;
  fs::path work_;
  tenant t_;
  tenant_names names_;
};

// --- item 4: the plan -------------------------------------------------------------------

TEST_P(PlanDriftTest, DryRunOnAFreshTenantPrintsTheWritesChangesNothingAndTheRealRunDoesThem) {
  const auto dry = init({"--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << test::tail(dry.err, 30);
  const auto plan = plan_of(dry);
  const auto has = [&](const std::string& needle) {
    return std::any_of(plan.begin(), plan.end(), [&](const std::string& s) { return s.find(needle) != s.npos; });
  };
  EXPECT_TRUE(has("SQL CREATE DATABASE")) << dry.out;
  EXPECT_TRUE(has(pg() ? "SQL CREATE ROLE \"" + names_.user_a + "\" LOGIN"
                       : "SQL CREATE USER IF NOT EXISTS '" + names_.user_a + "'@'%'"))
      << dry.out;
  EXPECT_TRUE(has(pg() ? "SQL GRANT \"" + names_.database + "\" TO \"" + names_.user_a + "\""
                       : "SQL GRANT ALL PRIVILEGES ON " + grant_db() + ".* TO '" + names_.user_a + "'@'%'"))
      << dry.out;
  EXPECT_TRUE(has("FILE create directory " + store().string())) << dry.out;
  // Passwords are masked: every password clause says '***'.
  for (const auto& step : plan) {
    for (const char* clause : {"PASSWORD ", "IDENTIFIED BY "}) {
      const auto at = step.find(clause);
      if (at != std::string::npos) {
        EXPECT_EQ(step.substr(at + std::strlen(clause), 5), "'***'") << step;
      }
    }
  }
  EXPECT_EQ(dry.out.find("SCRAM-SHA-256$"), std::string::npos) << "not even a verifier";

  // Nothing changed: no database, no account, no record, no files.
  {
    auto admin = connect_admin(conn_.server, test::admin_login(conn_));
    EXPECT_FALSE(admin->database_exists(names_.database));
    EXPECT_FALSE(admin->user_exists(names_.user_a));
    EXPECT_FALSE(admin->user_exists(names_.user_b));
    if (pg()) {
      EXPECT_FALSE(admin->user_exists(names_.database));
    }
    EXPECT_TRUE(admin->recorded_objects(&names_).empty());
  }
  EXPECT_FALSE(fs::exists(store()));

  // The real run does exactly what the plan said, in its order.
  const auto real = init();
  ASSERT_EQ(real.exit_code, 0) << test::tail(real.err, 30);
  EXPECT_EQ(ran(real), plan) << "dry run:\n" << dry.out << "\nreal run:\n" << test::tail(real.err, 60);
  EXPECT_TRUE(fs::exists(store() / "password"));

  // Now up to date: the plan has no writes.
  const auto again = init({"--dry-run"});
  ASSERT_EQ(again.exit_code, 0) << test::tail(again.err, 30);
  EXPECT_TRUE(plan_of(again).empty()) << again.out;
  EXPECT_NE(again.out.find("# nothing to do"), std::string::npos) << again.out;
  // And a real run on it does nothing either.
  EXPECT_TRUE(ran(init()).empty());
}

TEST_P(PlanDriftTest, DryRunListsARepairAndTheRealRunMakesIt) {
  provision();
  if (pg())
    admin_sql("GRANT CONNECT ON DATABASE \"" + names_.database + "\" TO PUBLIC");
  else
    admin_sql("ALTER USER '" + names_.user_a + "'@'%' REQUIRE NONE");
  const auto dry = init({"--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << test::tail(dry.err, 30);
  const auto plan = plan_of(dry);
  const std::vector<std::string> want{pg() ? "SQL REVOKE ALL ON DATABASE \"" + names_.database + "\" FROM PUBLIC"
                                           : "SQL ALTER USER '" + names_.user_a + "'@'%' REQUIRE SSL"};
  EXPECT_EQ(plan, want) << dry.out;
  EXPECT_NE(dry.out.find("# repair: "), std::string::npos) << dry.out;
  // Still drifted after the dry run.
  if (pg())
    EXPECT_EQ(admin_sql("SELECT has_database_privilege('public', '" + names_.database + "', 'CONNECT')"), "t");
  else
    EXPECT_EQ(admin_sql("SELECT ssl_type FROM mysql.user WHERE User = '" + names_.user_a + "' AND Host = '%'"), "");
  const auto real = init();
  ASSERT_EQ(real.exit_code, 0) << test::tail(real.err, 30);
  EXPECT_EQ(ran(real), plan);
}

// --- item 5: drift repair -------------------------------------------------------------

TEST_P(PlanDriftTest, ARevokedPrivilegeIsGrantedAgainAndLogged) {
  provision();
  if (pg()) {
    admin_sql("REVOKE CREATE ON DATABASE \"" + names_.database + "\" FROM \"" + names_.database + "\"");
    ASSERT_EQ(
        admin_sql("SELECT has_database_privilege('" + names_.database + "', '" + names_.database + "', 'CREATE')"),
        "f");
    expect_repaired("had lost privileges on its database");
    EXPECT_EQ(
        admin_sql("SELECT has_database_privilege('" + names_.database + "', '" + names_.database + "', 'CREATE')"),
        "t");
  } else {
    admin_sql("REVOKE DELETE, CREATE ON " + grant_db() + ".* FROM '" + names_.user_a + "'@'%'");
    expect_repaired("account " + names_.user_a + " had lost privileges on database " + names_.database);
    const auto grants =
        my_client(conn_.server, test::admin_login(conn_), "").rows("SHOW GRANTS FOR '" + names_.user_a + "'@'%'");
    EXPECT_TRUE(std::any_of(grants.begin(), grants.end(), [&](const std::string& g) {
      return g.rfind("GRANT ALL PRIVILEGES ON " + grant_db() + ".*", 0) == 0;
    })) << ::testing::PrintToString(grants);
  }
}

TEST_P(PlanDriftTest, ALostGroupMembershipAndPresetRoleAreRestoredAndLogged) {
  if (!pg()) GTEST_SKIP() << "PostgreSQL only: MySQL/MariaDB accounts have no group role";
  provision();
  admin_sql("REVOKE \"" + names_.database + "\" FROM \"" + names_.user_a + "\"");
  admin_sql("ALTER ROLE \"" + names_.user_b + "\" RESET role");
  const auto r = init();
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 30);
  const auto repairs = logged(r.err, "repaired drift", "repair");
  const auto has = [&](const std::string& needle) {
    return std::any_of(repairs.begin(), repairs.end(),
                       [&](const std::string& s) { return s.find(needle) != std::string::npos; });
  };
  EXPECT_TRUE(has("role " + names_.user_a + " was not a member of its group role")) << test::tail(r.err, 30);
  EXPECT_TRUE(has("role " + names_.user_b + " no longer acted as its group role")) << test::tail(r.err, 30);
  EXPECT_EQ(admin_sql("SELECT pg_has_role('" + names_.user_a + "', '" + names_.database + "', 'MEMBER')"), "t");
}

TEST_P(PlanDriftTest, AChangedDatabaseOwnerIsGivenBackAndLogged) {
  if (!pg()) GTEST_SKIP() << "PostgreSQL only: a MySQL/MariaDB database has no owner";
  provision();
  const std::string admin = test::admin_login(conn_).user;
  admin_sql("ALTER DATABASE \"" + names_.database + "\" OWNER TO \"" + admin + "\"");
  ASSERT_EQ(admin_sql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '" + names_.database + "'"),
            admin);
  expect_repaired("database " + names_.database + " was owned by role " + admin);
  EXPECT_EQ(admin_sql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '" + names_.database + "'"),
            names_.database);
}

TEST_P(PlanDriftTest, PublicConnectIsRevokedAgainAndLogged) {
  if (!pg()) GTEST_SKIP() << "PostgreSQL only: MySQL/MariaDB have no PUBLIC CONNECT";
  provision();
  admin_sql("GRANT CONNECT ON DATABASE \"" + names_.database + "\" TO PUBLIC");
  expect_repaired("PUBLIC could connect to database " + names_.database);
  EXPECT_EQ(admin_sql("SELECT has_database_privilege('public', '" + names_.database + "', 'CONNECT')"), "f");
}

TEST_P(PlanDriftTest, RequireSslRemovedIsSetAgainAndLogged) {
  if (pg()) GTEST_SKIP() << "MySQL/MariaDB only: PostgreSQL enforces TLS in pg_hba.conf";
  provision();
  admin_sql("ALTER USER '" + names_.user_b + "'@'%' REQUIRE NONE");
  expect_repaired("account " + names_.user_b + " no longer required TLS");
  EXPECT_EQ(admin_sql("SELECT ssl_type FROM mysql.user WHERE User = '" + names_.user_b + "' AND Host = '%'"), "ANY");
}

TEST_P(PlanDriftTest, RoleAttributesTenantdbNeverGivesAreTakenAwayAndLogged) {
  if (!pg()) GTEST_SKIP() << "PostgreSQL only: role attributes";
  provision();
  // CREATEDB is an attribute the (non-superuser) test admin holds and may give.
  admin_sql("ALTER ROLE \"" + names_.user_a + "\" CREATEDB");
  expect_repaired("role " + names_.user_a + " had attributes tenantdb never gives; set NOCREATEDB");
  EXPECT_EQ(admin_sql("SELECT rolcreatedb FROM pg_roles WHERE rolname = '" + names_.user_a + "'"), "f");
}

TEST_P(PlanDriftTest, AChangedConnectionLimitIsSetBackAndLogged) {
  provision();
  // Already reconciled before issue 11 (apply_limits): logged as "set limit".
  if (pg())
    admin_sql("ALTER ROLE \"" + names_.user_a + "\" CONNECTION LIMIT 3");
  else
    admin_sql("ALTER USER '" + names_.user_a + "'@'%' WITH MAX_USER_CONNECTIONS 3");
  const auto r = init();
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 30);
  const auto changes = logged(r.err, "set limit", "change");
  ASSERT_EQ(changes.size(), 1u) << test::tail(r.err, 30);
  EXPECT_EQ(changes[0].rfind("maxConnections 3 -> ", 0), 0u) << changes[0];
  const std::string now = pg() ? admin_sql("SELECT rolconnlimit FROM pg_roles WHERE rolname = '" + names_.user_a + "'")
                               : admin_sql("SELECT max_user_connections FROM mysql.user WHERE User = '" +
                                           names_.user_a + "' AND Host = '%'");
  EXPECT_NE(now, "3");
}

INSTANTIATE_TEST_SUITE_P(Engines, PlanDriftTest, ::testing::Values("pg", "mariadb"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
