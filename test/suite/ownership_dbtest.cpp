// The reliability and security suite, ownership of tenant objects (issue 12, finding 3):
// databases and accounts that carry a tenant's derived names are taken over only if their
// ownership record says they are that tenant's (same namespace, name and credentials
// store). Each attack runs tenantdb-init as a pod runs it (kube mode, the API stand-in)
// against the real servers, on both engines:
//
//  - a squatter (the server's admin, by hand) pre-creates the database and accounts with
//    the tenant's names (all of them, only the standby account, or only the database): the init is refused with exit
//    code 9 and one error line naming the object, and the squatter's objects and password stay as they were;
//  - a second workload of the same tenant with another credentials Secret (or local output
//    directory): refused instead of resetting the first one's passwords, whose credentials
//    keep working;
//  - the tenant, with its own logins, tries to rewrite or remove its ownership record: the
//    server refuses it and the record stays.

#include <gtest/gtest.h>

#include <filesystem>
#include <rapidjson/document.h>

#include "credential_values.hpp"
#include "isolation_clients.hpp"
#include "kube_standin.hpp"
#include "pod.hpp"
#include "process.hpp"
#include "suite.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/naming.hpp"
#include "tenantdb/ownership.hpp"
#include "testdb.hpp"

namespace fs = std::filesystem;
using namespace tenantdb;
using namespace std::chrono_literals;
using test::isolation::my_client;
using test::isolation::pg_client;
using test::isolation::sql_failure;

namespace {

[[maybe_unused]] const bool server_logs = test::dump_server_logs_on_failure({"pg", "mariadb"});

constexpr int exit_ownership = 9;
const std::string squatter_password = "Squatter0wnsThisAccount7";

using test::value_of;

// The error lines (level "error") of a run's stderr.
std::vector<std::string> error_lines(const std::string& err) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < err.size()) {
    const std::size_t end = err.find('\n', start);
    const std::string line = err.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (line.find("\"level\":\"error\"") != std::string::npos) out.push_back(line);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

class OwnershipTest : public ::testing::TestWithParam<std::string> {
protected:
  bool pg() const { return GetParam() == "pg"; }

  void SetUp() override {
    conn_ = test::load_connector(GetParam());
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "." + info->name();
    for (char& c : name)
      if (c == '/') c = '_';
    work_ = fs::temp_directory_path() / ("tenantdb-owners-" + std::to_string(::getpid()) + "-" + name);
    fs::remove_all(work_);
    fs::create_directories(work_);
    who_ = test::unique_tenant("own");
    who_.namespace_name = "team-a";
    names_ = derive_names(who_);
    secret_name_ = "vc-db-" + who_.name;
    test::set_up_pod(api_, pod_, GetParam(), secret_name_);
    kubeconfig_ = (work_ / "kubeconfig").string();
    test::write_kubeconfig(kubeconfig_, api_, pod_);
  }
  void TearDown() override { fs::remove_all(work_); }

  test::process_result init(std::vector<std::string> args) {
    args.insert(args.begin(), TENANTDB_INIT_BIN);
    return test::run_process(args, {{"KUBECONFIG", ""}, {"POD_NAMESPACE", ""}, {"TENANTDB_TEST_CRASH_AT", ""}});
  }

  std::vector<std::string> kube_args(const std::string& secret_name) const {
    return {"--tenant",     who_.name,   "--namespace",   "team-a",    "--connector", "platform/db-connector",
            "--kubeconfig", kubeconfig_, "--secret-name", secret_name, "--timeout",   "60s"};
  }

  std::vector<std::string> local_args(const fs::path& dir) const {
    return {"--local",
            "--connector-file",
            (test::testdb_dir() / (GetParam() + ".connector")).string(),
            "--tenant",
            who_.name,
            "--namespace",
            "team-a",
            "--output-dir",
            dir.string(),
            "--timeout",
            "60s"};
  }

  // Refused as the finding asks: exit code 9 and exactly one error line, which names
  // `object` and says what to do.
  void expect_refused(const test::process_result& r, const std::string& object, const std::string& remedy) {
    EXPECT_EQ(r.exit_code, exit_ownership) << test::tail(r.err, 20);
    const auto lines = error_lines(r.err);
    ASSERT_EQ(lines.size(), 1u) << test::tail(r.err, 20);
    rapidjson::Document doc;
    doc.Parse(lines[0].c_str());
    ASSERT_FALSE(doc.HasParseError()) << lines[0];
    ASSERT_TRUE(doc.HasMember("msg") && doc["msg"].IsString()) << lines[0];
    const std::string msg = doc["msg"].GetString();
    EXPECT_NE(msg.find(object), std::string::npos) << msg;
    EXPECT_NE(msg.find(remedy), std::string::npos) << msg;
    ASSERT_TRUE(doc.HasMember("exit_code") && doc["exit_code"].IsInt()) << lines[0];
    EXPECT_EQ(doc["exit_code"].GetInt(), exit_ownership) << lines[0];
  }

  login admin() const { return login{conn_.admin_user, conn_.admin_password}; }

  // The squatter: the server's admin creating the tenant's database and accounts by hand.
  void squat(bool database, const std::vector<std::string>& users) {
    if (pg()) {
      pg_client a(conn_.server, admin(), "postgres");
      // (IN ROLE tenantdb_any_database: like any role made by hand, the squatter's logins
      // reach databases not named like one of their roles; the test server's pg_hba.conf
      // lets in only that group's members besides samerole: testdb.sh.)
      for (const auto& u : users)
        a.exec("CREATE ROLE " + u + " LOGIN PASSWORD '" + squatter_password + "' IN ROLE tenantdb_any_database");
      if (database) a.exec("CREATE DATABASE " + names_.database);
    } else {
      my_client a(conn_.server, admin(), "");
      if (database) a.exec("CREATE DATABASE " + names_.database);
      for (const auto& u : users) {
        a.exec("CREATE USER '" + u + "'@'%' IDENTIFIED BY '" + squatter_password + "'");
        if (database) a.exec("GRANT ALL ON `" + names_.database + "`.* TO '" + u + "'@'%'");
      }
    }
  }

  // True if `user` logs in to `db` with `password` and runs a statement.
  bool logs_in(const std::string& user, const std::string& password, const std::string& db) {
    try {
      const login l{user, secret(password)};
      if (pg())
        pg_client(conn_.server, l, db).value("SELECT 1");
      else
        my_client(conn_.server, l, db).value("SELECT 1");
      return true;
    } catch (const sql_failure&) {
      return false;
    }
  }

  bool role_or_user_exists(const std::string& name) {
    if (pg())
      return pg_client(conn_.server, admin(), "postgres")
                 .value("SELECT count(*) FROM pg_roles WHERE rolname = '" + name + "'") == "1";
    return my_client(conn_.server, admin(), "").value("SELECT count(*) FROM mysql.user WHERE User = '" + name + "'") ==
           "1";
  }

  // The ownership record the admin reads for an account ("" if none).
  std::string record_of_user(const std::string& user) {
    if (pg())
      return pg_client(conn_.server, admin(), "postgres")
          .value("SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = '" + user + "'");
    my_client a(conn_.server, admin(), "");
    if (a.value("SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'tenantdb' AND "
                "TABLE_NAME = 'owners'") != "1")
      return "";
    return a.value("SELECT record FROM tenantdb.owners WHERE kind = 'user' AND name = '" + user + "'");
  }

  // The database's record: PostgreSQL keeps it on the group role that owns the database.
  std::string record_of_database() {
    if (pg())
      return pg_client(conn_.server, admin(), "postgres")
          .value(
              "SELECT shobj_description(r.oid, 'pg_authid') FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba "
              "WHERE d.datname = '" +
              names_.database + "'");
    return my_client(conn_.server, admin(), "")
        .value("SELECT record FROM tenantdb.owners WHERE kind = 'database' AND name = '" + names_.database + "'");
  }

  // The Secret's data as the API stand-in holds it; empty if there is no such Secret.
  credential_data secret_data(const std::string& name) const {
    credential_data out;
    const auto object = api_.get_object("secrets", "team-a", name);
    if (!object) return out;
    rapidjson::Document doc;
    doc.Parse(object->c_str());
    if (doc.HasParseError() || !doc.HasMember("data")) return out;
    for (const auto& m : doc["data"].GetObject()) {
      const std::string key = m.name.GetString();
      out[key] = secret(api_.secret_value("team-a", name, key).value_or(""));
    }
    return out;
  }

  bool credentials_log_in(const credential_data& d) {
    return logs_in(value_of(d, keys::user), value_of(d, keys::password), names_.database) &&
           logs_in(value_of(d, keys::standby_user), value_of(d, keys::standby_password), names_.database);
  }

  connector conn_;
  fs::path work_;
  tenant who_;
  tenant_names names_;
  std::string secret_name_;
  std::string kubeconfig_;
  test::KubeStandin api_;
  test::pod_identity pod_;
};

std::string engine_name(const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

// ---------------------------------------------------------------------------------------
// Attack: squatting the tenant's names

TEST_P(OwnershipTest, SquattedDatabaseAndAccountsAreRefusedAndLeftAsTheyWere) {
  test::suite_tally tally;
  ASSERT_NO_FATAL_FAILURE(squat(true, {names_.user_a, names_.user_b}));
  ASSERT_TRUE(logs_in(names_.user_a, squatter_password, names_.database));

  ++tally.attacks;
  const auto r = init(kube_args(secret_name_));
  ASSERT_NO_FATAL_FAILURE(expect_refused(r, names_.database, "--adopt-existing"));
  // Nothing changed: the squatter's accounts still log in with its password, no Secret
  // claimed the tenant's credentials, no record was written, and on PostgreSQL no group
  // role was made.
  EXPECT_TRUE(logs_in(names_.user_a, squatter_password, names_.database)) << "the squatter's password was reset";
  EXPECT_TRUE(logs_in(names_.user_b, squatter_password, names_.database)) << "the squatter's password was reset";
  EXPECT_FALSE(api_.get_object("secrets", "team-a", secret_name_)) << "a Secret was written";
  EXPECT_EQ(record_of_user(names_.user_a), "");
  if (pg()) {
    EXPECT_FALSE(role_or_user_exists(names_.database)) << "the group role was created";
    EXPECT_EQ(pg_client(conn_.server, admin(), "postgres")
                  .value("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '" + names_.database + "'"),
              conn_.admin_user);
  } else {
    EXPECT_EQ(record_of_database(), "");
  }
  if (!HasFailure()) ++tally.held;
}

// Only one account with the tenant's name (the standby, which a workload never logs in
// with): every derived name is checked, not just the database.
TEST_P(OwnershipTest, SquattedStandbyAccountAloneIsRefused) {
  test::suite_tally tally;
  ASSERT_NO_FATAL_FAILURE(squat(false, {names_.user_b}));

  ++tally.attacks;
  const auto r = init(kube_args(secret_name_));
  ASSERT_NO_FATAL_FAILURE(expect_refused(r, names_.user_b, "--adopt-existing"));
  EXPECT_FALSE(role_or_user_exists(names_.user_a)) << "the active account was created";
  EXPECT_FALSE(api_.get_object("secrets", "team-a", secret_name_)) << "a Secret was written";
  EXPECT_EQ(record_of_user(names_.user_b), "");
  // The squatter's password still works (on its own, without the tenant's database).
  EXPECT_TRUE(logs_in(names_.user_b, squatter_password, pg() ? "postgres" : ""));
  if (!HasFailure()) ++tally.held;
}

// Only the database, owned by whoever made it (on PostgreSQL not the tenant's group role,
// which does not exist yet): refused before the group role or any account is created.
TEST_P(OwnershipTest, SquattedDatabaseAloneIsRefused) {
  test::suite_tally tally;
  ASSERT_NO_FATAL_FAILURE(squat(true, {}));

  ++tally.attacks;
  const auto r = init(kube_args(secret_name_));
  ASSERT_NO_FATAL_FAILURE(expect_refused(r, "database \"" + names_.database + "\"", "--adopt-existing"));
  EXPECT_FALSE(role_or_user_exists(names_.user_a)) << "the active account was created";
  EXPECT_FALSE(api_.get_object("secrets", "team-a", secret_name_)) << "a Secret was written";
  if (pg()) {
    EXPECT_FALSE(role_or_user_exists(names_.database)) << "the group role was created";
    EXPECT_EQ(pg_client(conn_.server, admin(), "postgres")
                  .value("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '" + names_.database + "'"),
              conn_.admin_user);
  } else {
    EXPECT_EQ(record_of_database(), "");
  }
  if (!HasFailure()) ++tally.held;
}

// The deliberate way to take over unrecorded objects: --adopt-existing records them as
// the tenant's; from then on they are its own (a third run changes nothing).
TEST_P(OwnershipTest, AdoptExistingTakesOverUnrecordedObjectsDeliberately) {
  ASSERT_NO_FATAL_FAILURE(squat(true, {names_.user_a, names_.user_b}));
  auto args = kube_args(secret_name_);
  args.push_back("--adopt-existing");
  const auto r = init(args);
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  const auto stored = secret_data(secret_name_);
  EXPECT_TRUE(credentials_log_in(stored));
  EXPECT_FALSE(logs_in(names_.user_a, squatter_password, names_.database));
  const auto record = parse_owner_record(record_of_user(names_.user_a));
  ASSERT_TRUE(record) << record_of_user(names_.user_a);
  EXPECT_EQ(record->store, "secret team-a/" + secret_name_);
  ASSERT_TRUE(parse_owner_record(record_of_database())) << record_of_database();

  const auto again = init(kube_args(secret_name_));
  ASSERT_EQ(again.exit_code, 0) << test::tail(again.err, 20);
  EXPECT_TRUE(same_data(secret_data(secret_name_), stored));
}

// ---------------------------------------------------------------------------------------
// Attack: a second workload of the same tenant with another credentials store

TEST_P(OwnershipTest, SecondWorkloadWithAnotherSecretIsRefusedAndTheFirstKeepsWorking) {
  test::suite_tally tally;
  const auto first = init(kube_args(secret_name_));
  ASSERT_EQ(first.exit_code, 0) << test::tail(first.err, 20);
  const auto stored = secret_data(secret_name_);
  ASSERT_TRUE(credentials_log_in(stored));

  const std::string other = secret_name_ + "-2";
  api_.allow(pod_.user, "get", "team-a", "secrets", other);
  api_.allow(pod_.user, "update", "team-a", "secrets", other);
  ++tally.attacks;
  const auto second = init(kube_args(other));
  ASSERT_NO_FATAL_FAILURE(expect_refused(second, names_.database, "secret team-a/" + secret_name_));
  // --adopt-existing never takes another owner's objects.
  auto adopt = kube_args(other);
  adopt.push_back("--adopt-existing");
  const auto third = init(adopt);
  ASSERT_NO_FATAL_FAILURE(expect_refused(third, names_.database, "refusing to take it over"));

  EXPECT_FALSE(api_.get_object("secrets", "team-a", other)) << "the second workload wrote its Secret";
  EXPECT_TRUE(same_data(secret_data(secret_name_), stored)) << "the first workload's Secret changed";
  EXPECT_TRUE(credentials_log_in(stored)) << "the first workload's credentials were reset";
  // The first workload's own reruns still adopt its objects.
  const auto rerun = init(kube_args(secret_name_));
  EXPECT_EQ(rerun.exit_code, 0) << test::tail(rerun.err, 20);
  EXPECT_TRUE(same_data(secret_data(secret_name_), stored));
  if (!HasFailure()) ++tally.held;
}

TEST_P(OwnershipTest, SecondLocalOutputDirectoryIsRefusedAndTheFirstKeepsWorking) {
  test::suite_tally tally;
  const fs::path first_dir = work_ / "first";
  const auto first = init(local_args(first_dir));
  ASSERT_EQ(first.exit_code, 0) << test::tail(first.err, 20);
  const auto stored = read_directory(first_dir);
  ASSERT_TRUE(credentials_log_in(stored));

  ++tally.attacks;
  const fs::path second_dir = work_ / "second";
  const auto second = init(local_args(second_dir));
  ASSERT_NO_FATAL_FAILURE(expect_refused(second, names_.database, "directory " + first_dir.string()));
  EXPECT_FALSE(fs::exists(second_dir / "..data")) << "the second directory got credentials";
  EXPECT_TRUE(same_data(read_directory(first_dir), stored));
  EXPECT_TRUE(credentials_log_in(stored)) << "the first workload's credentials were reset";
  // The same directory, spelled differently, is the same owner: the passwords stay (the
  // dataSource's sslrootcert follows the spelling of --output-dir, as it always did).
  const auto rerun = init(local_args(work_ / "." / "first" / ""));
  EXPECT_EQ(rerun.exit_code, 0) << test::tail(rerun.err, 20);
  const auto after = read_directory(first_dir);
  EXPECT_EQ(value_of(after, keys::password), value_of(stored, keys::password));
  EXPECT_EQ(value_of(after, keys::standby_password), value_of(stored, keys::standby_password));
  if (!HasFailure()) ++tally.held;
}

// ---------------------------------------------------------------------------------------
// Attack: the tenant forges its own ownership record

TEST_P(OwnershipTest, TenantCannotRewriteItsOwnershipRecord) {
  test::suite_tally tally;
  const auto first = init(kube_args(secret_name_));
  ASSERT_EQ(first.exit_code, 0) << test::tail(first.err, 20);
  const auto stored = secret_data(secret_name_);
  const login tenant_login{value_of(stored, keys::user), secret(value_of(stored, keys::password))};
  const std::string before_user_a = record_of_user(names_.user_a);
  const std::string before_user_b = record_of_user(names_.user_b);
  const std::string before_database = record_of_database();
  ASSERT_TRUE(parse_owner_record(before_user_a)) << before_user_a;
  ASSERT_TRUE(parse_owner_record(before_database)) << before_database;

  // What a forger writes: the same tenant, its credentials in a Secret it controls.
  owner_record forged = *parse_owner_record(before_database);
  forged.store = "secret team-a/attacker";
  const std::string forged_json = owner_record_json(forged);

  std::vector<std::string> statements;
  if (pg()) {
    // The logins act as the group role (which owns the database); try as both.
    for (const std::string& as : {std::string(), std::string("SET ROLE NONE; ")}) {
      for (const auto* role : {&names_.database, &names_.user_a, &names_.user_b}) {
        statements.push_back(as + "COMMENT ON ROLE " + *role + " IS '" + forged_json + "'");
        statements.push_back(as + "COMMENT ON ROLE " + *role + " IS NULL");
      }
    }
    statements.push_back("SET ROLE NONE; ALTER ROLE " + names_.database + " RENAME TO " + names_.database + "_x");
  } else {
    statements = {
        "UPDATE tenantdb.owners SET record = '" + forged_json + "'",
        "DELETE FROM tenantdb.owners WHERE name = '" + names_.database + "'",
        "INSERT INTO tenantdb.owners (kind, name, record) VALUES ('user', 'x', '" + forged_json + "')",
        "REPLACE INTO tenantdb.owners (kind, name, record) VALUES ('database', '" + names_.database + "', '" +
            forged_json + "')",
        "DROP TABLE tenantdb.owners",
        "SELECT record FROM tenantdb.owners",
        "CREATE TABLE tenantdb.owners2 (x int)",
    };
  }
  for (const auto& sql : statements) {
    ++tally.attacks;
    bool refused = false;
    try {
      if (pg())
        pg_client(conn_.server, tenant_login, names_.database).exec(sql);
      else
        my_client(conn_.server, tenant_login, names_.database).exec(sql);
    } catch (const sql_failure& e) {
      // PostgreSQL: 42501 insufficient privilege; MariaDB: 1142 table access denied, 1044
      // database access denied.
      refused = e.code == "42501" || e.code == "1142" || e.code == "1044";
      EXPECT_TRUE(refused) << sql << ": " << e.code << " " << e.what();
    }
    EXPECT_TRUE(refused) << "the tenant ran: " << sql;
    if (refused) ++tally.held;
  }
  EXPECT_EQ(record_of_user(names_.user_a), before_user_a);
  EXPECT_EQ(record_of_user(names_.user_b), before_user_b);
  EXPECT_EQ(record_of_database(), before_database);
  // And the record still works as one: a workload with the forger's Secret is refused.
  api_.allow(pod_.user, "get", "team-a", "secrets", "attacker");
  api_.allow(pod_.user, "update", "team-a", "secrets", "attacker");
  const auto r = init(kube_args("attacker"));
  EXPECT_EQ(r.exit_code, exit_ownership) << test::tail(r.err, 20);
  EXPECT_TRUE(credentials_log_in(stored));
}

INSTANTIATE_TEST_SUITE_P(Engines, OwnershipTest, ::testing::Values("pg", "mariadb"), engine_name);

}  // namespace
