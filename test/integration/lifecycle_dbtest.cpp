// Issue 11, items 1 to 3: the inventory (tenantdb-init --list), deprovisioning with a
// policy (--deprovision, retain or delete) and its --dry-run plan, run as processes
// against the real PostgreSQL and MariaDB servers (and the API stand-in where the
// Kubernetes API is asked). Other tests share the servers: every check is confined to
// the tenants a test made, found by their own namespace.

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <regex>
#include <sstream>

#include "../suite/isolation_clients.hpp"
#include "kube_standin.hpp"
#include "pod.hpp"
#include "process.hpp"
#include "tenantdb/app.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/lifecycle.hpp"
#include "tenantdb/naming.hpp"
#include "testdb.hpp"

namespace fs = std::filesystem;
using namespace tenantdb;
using test::isolation::my_client;
using test::isolation::pg_client;
using test::isolation::sql_failure;

namespace {

[[maybe_unused]] const bool server_logs = test::dump_server_logs_on_failure({"pg", "mariadb"});

constexpr int exit_usage = 2;
constexpr int exit_connector = 3;
constexpr int exit_ownership = 9;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The error lines of a run's log.
std::vector<std::string> error_lines(const std::string& err) {
  std::vector<std::string> out;
  for (const auto& l : lines_of(err))
    if (l.find("\"level\":\"error\"") != std::string::npos) out.push_back(l);
  return out;
}

class LifecycleTest : public ::testing::TestWithParam<std::string> {
protected:
  bool pg() const { return GetParam() == "pg"; }

  void SetUp() override {
    conn_ = test::load_connector(GetParam());
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "." + info->name();
    for (char& c : name)
      if (c == '/') c = '_';
    work_ = fs::temp_directory_path() / ("tenantdb-lifecycle-" + std::to_string(::getpid()) + "-" + name);
    fs::remove_all(work_);
    fs::create_directories(work_);
    // A namespace of this test's own: the listing is filtered by it.
    ns_ = test::unique_tenant("lc").name;
  }
  void TearDown() override { fs::remove_all(work_); }

  tenant make_tenant(const std::string& name) const { return tenant{name, ns_}; }

  std::string connector_file() const { return (test::testdb_dir() / (GetParam() + ".connector")).string(); }

  test::process_result init(std::vector<std::string> args, const std::string& crash_at = "") {
    args.insert(args.begin(), TENANTDB_INIT_BIN);
    return test::run_process(args, {{"KUBECONFIG", ""}, {"POD_NAMESPACE", ""}, {"TENANTDB_TEST_CRASH_AT", crash_at}});
  }

  fs::path store_of(const tenant& t) const { return work_ / ("store-" + t.name); }

  // Provisions `t` in local mode with its own store directory.
  void provision(const tenant& t) {
    const auto r = init({"--local", "--connector-file", connector_file(), "--tenant", t.name, "--namespace",
                         t.namespace_name, "--output-dir", store_of(t).string(), "--timeout", "60s"});
    ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  }

  std::vector<std::string> deprovision_args(const tenant& t, const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> args{"--local",   "--deprovision", "--connector-file", connector_file(),
                                  "--tenant",  t.name,          "--namespace",      t.namespace_name,
                                  "--timeout", "60s",           "--output-dir",     store_of(t).string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  login stored_login(const tenant& t) const {
    const auto files = read_directory(store_of(t));
    return login{files.at("user").reveal(), secret(files.at("password").reveal())};
  }

  // Runs statements as the tenant in its database; throws sql_failure if it cannot.
  std::string as_tenant(const tenant& t, const std::string& sql) {
    const auto names = derive_names(t);
    if (pg()) return pg_client(conn_.server, stored_login(t), names.database).value(sql);
    return my_client(conn_.server, stored_login(t), names.database).value(sql);
  }

  bool logs_in(const tenant& t) {
    try {
      verify_login(conn_.server, stored_login(t), derive_names(t).database);
      return true;
    } catch (const error&) {
      return false;
    }
  }

  // The listing, as JSON, of this test's namespace only.
  std::vector<rapidjson::Document> listed() {
    const auto r = init({"--local", "--list", "--output", "json", "--connector-file", connector_file()});
    EXPECT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
    rapidjson::Document all;
    all.Parse(r.out.c_str());
    EXPECT_TRUE(!all.HasParseError() && all.IsArray()) << r.out;
    std::vector<rapidjson::Document> out;
    if (all.HasParseError() || !all.IsArray()) return out;
    for (const auto& e : all.GetArray()) {
      if (std::string(e["namespace"].GetString()) != ns_) continue;
      rapidjson::Document d;
      d.CopyFrom(e, d.GetAllocator());
      out.push_back(std::move(d));
    }
    return out;
  }

  struct server_state {
    bool database = false;
    bool user_a = false;
    bool user_b = false;
    bool group = false;
    std::size_t records = 0;
  };
  server_state state_of(const tenant& t) {
    const auto names = derive_names(t);
    auto admin = connect_admin(conn_.server, test::admin_login(conn_));
    server_state s;
    s.database = admin->database_exists(names.database);
    s.user_a = admin->user_exists(names.user_a);
    s.user_b = admin->user_exists(names.user_b);
    s.group = pg() && admin->user_exists(names.database);
    s.records = admin->recorded_objects(&names).size();
    return s;
  }

  connector conn_;
  fs::path work_;
  std::string ns_;
};

std::string str(const rapidjson::Value& v, const char* key) {
  const auto it = v.FindMember(key);
  return it != v.MemberEnd() && it->value.IsString() ? it->value.GetString() : "<absent>";
}

TEST_P(LifecycleTest, ListFindsExactlyTheTenantsCreatedWithTheirFields) {
  const tenant one = make_tenant("shop");
  const tenant two = make_tenant("blog");
  provision(one);
  provision(two);
  // One open session of shop's active account, counted in the listing.
  std::optional<pg_client> pg_session;
  std::optional<my_client> my_session;
  if (pg())
    pg_session.emplace(conn_.server, stored_login(one), derive_names(one).database);
  else
    my_session.emplace(conn_.server, stored_login(one), derive_names(one).database);

  const auto entries = listed();
  ASSERT_EQ(entries.size(), 2u);
  for (const auto& e : entries) {
    const tenant t = str(e, "tenant") == "shop" ? one : two;
    ASSERT_EQ(str(e, "tenant"), t.name);
    const auto names = derive_names(t);
    EXPECT_EQ(str(e, "database"), names.database);
    EXPECT_EQ(str(e, "store"), "directory " + store_of(t).string());
    EXPECT_EQ(str(e, "version"), version());
    EXPECT_EQ(str(e, "policy"), "retain");
    EXPECT_EQ(str(e, "state"), "live");
    EXPECT_TRUE(std::regex_match(str(e, "created"), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")))
        << str(e, "created");
    EXPECT_TRUE(e["databaseExists"].GetBool());
    EXPECT_TRUE(e["sizeBytes"].IsInt64());
    EXPECT_FALSE(e.HasMember("owner")) << "--local cannot ask whether the owner exists";
    const auto& accounts = e["accounts"];
    ASSERT_EQ(accounts.Size(), 2u);
    EXPECT_EQ(std::string(accounts[0]["user"].GetString()), names.user_a);
    EXPECT_EQ(std::string(accounts[1]["user"].GetString()), names.user_b);
    EXPECT_EQ(accounts[0]["connections"].GetInt(), t.name == "shop" ? 1 : 0);
    EXPECT_EQ(accounts[1]["connections"].GetInt(), 0);
    EXPECT_TRUE(accounts[0]["loginAllowed"].GetBool());
  }

  // The human table: a header and one line per tenant, the session count included.
  const auto r = init({"--local", "--list", "--connector-file", connector_file()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("TENANT", 0), 0u) << r.out;
  EXPECT_NE(r.out.find(ns_ + "/shop"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(derive_names(one).user_a + "(1)"), std::string::npos) << r.out;
}

TEST_P(LifecycleTest, RetainRevokesLoginsEndsSessionsKeepsTheDataAndAnInitRunBringsItBack) {
  const tenant t = make_tenant("keep");
  provision(t);
  as_tenant(t, "CREATE TABLE kept (v VARCHAR(20)); INSERT INTO kept VALUES ('still here')");
  std::optional<pg_client> pg_session;
  std::optional<my_client> my_session;
  if (pg())
    pg_session.emplace(conn_.server, stored_login(t), derive_names(t).database);
  else
    my_session.emplace(conn_.server, stored_login(t), derive_names(t).database);

  const auto r = init(deprovision_args(t));  // no --policy: retain is the default
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  EXPECT_NE(r.err.find("\"from\":\"default\""), std::string::npos) << r.err;
  EXPECT_FALSE(logs_in(t));
  // The open session was ended.
  EXPECT_THROW(pg() ? pg_session->value("SELECT 1") : my_session->value("SELECT 1"), sql_failure);
  auto s = state_of(t);
  EXPECT_TRUE(s.database && s.user_a && s.user_b);
  auto entries = listed();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(str(entries[0], "state"), "retained");
  EXPECT_NE(str(entries[0], "retainedAt"), "<absent>");
  EXPECT_FALSE(entries[0]["accounts"][0]["loginAllowed"].GetBool());

  // Idempotent: again, same end.
  const auto again = init(deprovision_args(t));
  ASSERT_EQ(again.exit_code, 0) << test::tail(again.err, 20);
  EXPECT_FALSE(logs_in(t));

  // Reversible: a normal init run of the same tenant logs in again, data there.
  provision(t);
  EXPECT_TRUE(logs_in(t));
  EXPECT_EQ(as_tenant(t, "SELECT v FROM kept"), "still here");
  entries = listed();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(str(entries[0], "state"), "live");
  EXPECT_EQ(str(entries[0], "retainedAt"), "<absent>");
  EXPECT_TRUE(entries[0]["accounts"][1]["loginAllowed"].GetBool());
}

TEST_P(LifecycleTest, DeleteLeavesNoDatabaseAccountOrRecordAndAnotherTenantUntouched) {
  const tenant gone = make_tenant("gone");
  const tenant stays = make_tenant("stays");
  provision(gone);
  provision(stays);
  as_tenant(stays, "CREATE TABLE t (v INT); INSERT INTO t VALUES (7)");

  const auto r = init(deprovision_args(gone, {"--policy", "delete"}));
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  const auto s = state_of(gone);
  EXPECT_FALSE(s.database);
  EXPECT_FALSE(s.user_a);
  EXPECT_FALSE(s.user_b);
  EXPECT_FALSE(s.group);
  EXPECT_EQ(s.records, 0u);

  const auto other = state_of(stays);
  EXPECT_TRUE(other.database && other.user_a && other.user_b);
  EXPECT_EQ(other.records, pg() ? 4u : 3u);  // PostgreSQL: the database is listed with its group role
  EXPECT_TRUE(logs_in(stays));
  EXPECT_EQ(as_tenant(stays, "SELECT v FROM t"), "7");
  const auto entries = listed();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(str(entries[0], "tenant"), "stays");

  // Idempotent: a second run finds nothing and succeeds.
  const auto again = init(deprovision_args(gone, {"--policy", "delete"}));
  ASSERT_EQ(again.exit_code, 0) << test::tail(again.err, 20);
  EXPECT_NE(again.err.find("nothing to deprovision"), std::string::npos) << again.err;
}

TEST_P(LifecycleTest, ThePolicyComesFromTheConnectorWhenNoFlagSaysOtherwise) {
  const tenant t = make_tenant("bypolicy");
  provision(t);
  const fs::path dir = work_ / "delete.connector";
  fs::copy(connector_file(), dir);
  std::ofstream(dir / "deletionPolicy") << "Delete\n";
  auto args = deprovision_args(t);
  args[3] = dir.string();
  const auto r = init(args);
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  EXPECT_NE(r.err.find("\"from\":\"connector deletionPolicy\""), std::string::npos) << r.err;
  EXPECT_FALSE(state_of(t).database);
}

TEST_P(LifecycleTest, DeleteRefusesObjectsRecordedForAnotherStoreOrNotRecordedAndChangesNothing) {
  const tenant t = make_tenant("mine");
  provision(t);
  // The same tenant's names, but another credentials store: not this owner's.
  auto args = deprovision_args(t, {"--policy", "delete"});
  const auto dir = std::find(args.begin(), args.end(), "--output-dir");
  ASSERT_NE(dir, args.end());
  *(dir + 1) = (work_ / "elsewhere").string();
  const auto r = init(args);
  EXPECT_EQ(r.exit_code, exit_ownership) << test::tail(r.err, 20);
  ASSERT_EQ(error_lines(r.err).size(), 1u) << r.err;
  EXPECT_NE(error_lines(r.err)[0].find("not recorded as this tenant's"), std::string::npos) << r.err;
  auto s = state_of(t);
  EXPECT_TRUE(s.database && s.user_a && s.user_b);
  EXPECT_TRUE(logs_in(t));

  // Objects with a tenant's names but without a record (made by hand) are never touched.
  const tenant bare = make_tenant("bare");
  const auto names = derive_names(bare);
  connect_admin(conn_.server, test::admin_login(conn_))->ensure_database(names, nullptr);
  const auto refused = init(deprovision_args(bare, {"--policy", "delete"}));
  EXPECT_EQ(refused.exit_code, exit_ownership) << test::tail(refused.err, 20);
  EXPECT_NE(refused.err.find(names.database), std::string::npos) << refused.err;
  EXPECT_TRUE(state_of(bare).database);
  auto admin = connect_admin(conn_.server, test::admin_login(conn_));
  // Clean up what the test made by hand (not tenantdb's to drop).
  admin->drop_database(names.database);
  if (pg()) admin->drop_user(names.database);
}

TEST_P(LifecycleTest, DryRunPrintsThePlanChangesNothingAndTheRealRunDoesWhatItSaid) {
  const tenant t = make_tenant("plan");
  provision(t);
  const auto names = derive_names(t);
  const auto dry = init(deprovision_args(t, {"--policy", "delete", "--dry-run"}));
  ASSERT_EQ(dry.exit_code, 0) << test::tail(dry.err, 20);
  std::vector<std::string> plan;
  for (const auto& l : lines_of(dry.out))
    if (l.rfind("SQL ", 0) == 0) plan.push_back(l.substr(4));
  ASSERT_FALSE(plan.empty()) << dry.out;
  const auto has = [&](const std::string& needle) {
    return std::any_of(plan.begin(), plan.end(), [&](const std::string& s) { return s.find(needle) != s.npos; });
  };
  EXPECT_TRUE(has("DROP DATABASE IF EXISTS")) << dry.out;
  EXPECT_TRUE(has(names.user_a)) << dry.out;
  EXPECT_TRUE(has(pg() ? "NOLOGIN" : "ACCOUNT LOCK")) << dry.out;
  // Nothing changed.
  auto s = state_of(t);
  EXPECT_TRUE(s.database && s.user_a && s.user_b);
  EXPECT_EQ(s.records, pg() ? 4u : 3u);
  EXPECT_TRUE(logs_in(t));

  // The real run runs exactly those statements (its log says which, in the plan's words).
  const auto real = init(deprovision_args(t, {"--policy", "delete"}));
  ASSERT_EQ(real.exit_code, 0) << test::tail(real.err, 20);
  std::vector<std::string> ran;
  for (const auto& l : lines_of(real.err)) {
    rapidjson::Document d;
    d.Parse(l.c_str());
    if (!d.HasParseError() && d.IsObject() && str(d, "msg") == "ran") ran.push_back(str(d, "sql"));
  }
  EXPECT_EQ(ran, plan);
  EXPECT_FALSE(state_of(t).database);
}

// kill -9 at every step of either policy, then a rerun completes it.
TEST_P(LifecycleTest, AKillAtAnyStepIsCompletedByTheNextRun) {
  const std::pair<std::string, std::vector<std::string_view>> cases[] = {
      {"retain",
       {deprovision_fault_points::records_retained, deprovision_fault_points::logins_revoked,
        deprovision_fault_points::sessions_ended}},
      {"delete",
       {deprovision_fault_points::logins_revoked, deprovision_fault_points::sessions_ended,
        deprovision_fault_points::database_dropped, deprovision_fault_points::accounts_dropped}},
  };
  int n = 0;
  for (const auto& [policy, points] : cases) {
    for (const auto point : points) {
      SCOPED_TRACE(policy + " at " + std::string(point));
      const tenant t = make_tenant("k" + std::to_string(n++));
      provision(t);
      const auto killed = init(deprovision_args(t, {"--policy", policy}), std::string(point));
      ASSERT_EQ(killed.exit_code, 128 + SIGKILL) << test::tail(killed.err, 20);
      ASSERT_NE(killed.err.find("\"fault_point\":\"" + std::string(point) + "\""), std::string::npos);
      const auto rerun = init(deprovision_args(t, {"--policy", policy}));
      ASSERT_EQ(rerun.exit_code, 0) << test::tail(rerun.err, 20);
      const auto s = state_of(t);
      if (policy == "delete") {
        EXPECT_FALSE(s.database || s.user_a || s.user_b || s.group);
        EXPECT_EQ(s.records, 0u);
      } else {
        EXPECT_TRUE(s.database && s.user_a && s.user_b);
        EXPECT_FALSE(logs_in(t));
        const auto entries = listed();
        const auto it = std::find_if(entries.begin(), entries.end(),
                                     [&](const rapidjson::Document& e) { return str(e, "tenant") == t.name; });
        ASSERT_NE(it, entries.end());
        EXPECT_EQ(str(*it, "state"), "retained");
        provision(t);  // and it still comes back
        EXPECT_TRUE(logs_in(t));
      }
    }
  }
}

TEST_P(LifecycleTest, BadInputToTheNewModesIsOneLineNamingTheFlagAndChangesNothing) {
  const tenant t = make_tenant("bad");
  provision(t);
  const struct {
    std::vector<std::string> args;
    int code;
    std::string names;
  } cases[] = {
      {deprovision_args(t, {"--policy", "destroy"}), exit_usage, "--policy"},
      {deprovision_args(t, {"--output", "json"}), exit_usage, "--output"},
      {{"--local", "--list", "--connector-file", connector_file(), "--output", "xml"}, exit_usage, "--output"},
      {{"--local", "--list", "--connector-file", connector_file(), "--dry-run"}, exit_usage, "--dry-run"},
      {{"--local", "--list", "--connector-file", connector_file(), "--policy", "delete"}, exit_usage, "--policy"},
      {{"--local", "--deprovision", "--connector-file", connector_file(), "--tenant", t.name},
       exit_usage,
       "--store-dir"},
      {{"--local", "--deprovision", "--list", "--connector-file", connector_file()}, exit_usage, "--deprovision"},
  };
  for (const auto& c : cases) {
    const auto r = init(c.args);
    EXPECT_EQ(r.exit_code, c.code) << test::tail(r.err, 10);
    const auto errors = error_lines(r.err);
    ASSERT_EQ(errors.size(), 1u) << r.err;
    EXPECT_NE(errors[0].find(c.names), std::string::npos) << errors[0];
  }
  // A connector with a bad deletionPolicy: exit 3 naming the key.
  const fs::path dir = work_ / "bad.connector";
  fs::copy(connector_file(), dir);
  std::ofstream(dir / "deletionPolicy") << "purge";
  auto args = deprovision_args(t);
  args[3] = dir.string();
  const auto r = init(args);
  EXPECT_EQ(r.exit_code, exit_connector) << test::tail(r.err, 10);
  EXPECT_NE(r.err.find("deletionPolicy"), std::string::npos) << r.err;

  EXPECT_TRUE(logs_in(t));
  EXPECT_EQ(listed().size(), 1u);
  EXPECT_EQ(str(listed()[0], "state"), "live");
}

// Issue 11, item 3: a new tenant re-attaches a retained tenant's database and reads its data.
TEST_P(LifecycleTest, ANewTenantAttachesARetainedDatabaseAndReadsItsDataButNeverALiveOnes) {
  const tenant old_owner = make_tenant("before");
  provision(old_owner);
  const auto names = derive_names(old_owner);
  as_tenant(old_owner, "CREATE TABLE kept (v VARCHAR(20)); INSERT INTO kept VALUES ('row one'), ('row two')");
  ASSERT_EQ(init(deprovision_args(old_owner)).exit_code, 0);  // retain

  // Another name in another namespace, e.g. after the namespace was recreated.
  const tenant heir{"after", ns_ + "-new"};
  const auto attach = [&](const tenant& t, const std::string& database) {
    return init({"--local", "--connector-file", connector_file(), "--tenant", t.name, "--namespace", t.namespace_name,
                 "--output-dir", store_of(t).string(), "--timeout", "60s", "--attach-database", database});
  };
  auto r = attach(heir, names.database);
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  // Its store names the attached database, and its login reads the old rows.
  const auto files = read_directory(store_of(heir));
  EXPECT_EQ(files.at("database").reveal(), names.database);
  const login heir_login{files.at("user").reveal(), secret(files.at("password").reveal())};
  const std::string rows =
      pg() ? pg_client(conn_.server, heir_login, names.database).value("SELECT string_agg(v, ',' ORDER BY v) FROM kept")
           : my_client(conn_.server, heir_login, names.database).value("SELECT GROUP_CONCAT(v ORDER BY v) FROM kept");
  EXPECT_EQ(rows, "row one,row two");
  // The records name the new owner and the tenant is live again; the old store opens nothing.
  auto admin = connect_admin(conn_.server, test::admin_login(conn_));
  const auto records = admin->recorded_objects(&names);
  ASSERT_FALSE(records.empty());
  for (const auto& o : records) {
    EXPECT_EQ(o.record.namespace_name, heir.namespace_name) << o.name;
    EXPECT_EQ(o.record.name, heir.name) << o.name;
    EXPECT_EQ(o.record.store, "directory " + store_of(heir).string()) << o.name;
    EXPECT_EQ(o.record.state, "") << o.name;
  }
  EXPECT_FALSE(logs_in(old_owner));
  // Idempotent: the same run again changes nothing and still works.
  r = attach(heir, names.database);
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  EXPECT_EQ(r.err.find("attached an existing database"), std::string::npos) << r.err;

  // The heir is live now: nobody else may attach its database.
  const tenant thief = make_tenant("thief");
  r = attach(thief, names.database);
  EXPECT_EQ(r.exit_code, exit_ownership) << test::tail(r.err, 20);
  ASSERT_EQ(error_lines(r.err).size(), 1u) << r.err;
  EXPECT_NE(error_lines(r.err)[0].find("live tenant"), std::string::npos) << r.err;
  EXPECT_EQ(admin->recorded_objects(&names).front().record.name, heir.name);
  EXPECT_EQ(pg() ? pg_client(conn_.server, heir_login, names.database).value("SELECT count(*) FROM kept")
                 : my_client(conn_.server, heir_login, names.database).value("SELECT COUNT(*) FROM kept"),
            "2");

  // A database without a record (made by hand) is refused too; a bad name is a usage error.
  const tenant bare = make_tenant("bare2");
  const auto bare_names = derive_names(bare);
  admin->ensure_database(bare_names, nullptr);
  r = attach(thief, bare_names.database);
  EXPECT_EQ(r.exit_code, exit_ownership) << test::tail(r.err, 20);
  EXPECT_NE(r.err.find("carries no tenantdb ownership record"), std::string::npos) << r.err;
  EXPECT_TRUE(admin->database_exists(bare_names.database));
  r = attach(thief, "Robert'); DROP TABLE x;--");
  EXPECT_EQ(r.exit_code, exit_usage) << test::tail(r.err, 20);
  EXPECT_NE(r.err.find("--attach-database"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(store_of(thief) / "password"));

  admin->drop_database(bare_names.database);  // made by hand above: not tenantdb's to drop
  if (pg()) admin->drop_user(bare_names.database);

  // The heir deprovisions naming the database it attached: delete leaves nothing.
  r = init(deprovision_args(heir, {"--policy", "delete", "--attach-database", names.database}));
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  EXPECT_FALSE(admin->database_exists(names.database));
  EXPECT_FALSE(admin->user_exists(names.user_a) || admin->user_exists(names.user_b));
  EXPECT_TRUE(admin->recorded_objects(&names).empty());
}

// Through the Kubernetes API: the credentials Secret's annotation chooses the policy, and
// the listing says whether each tenant's Secret still exists.
TEST_P(LifecycleTest, KubeModeTakesThePolicyFromTheSecretAnnotationAndListsWhetherTheOwnerExists) {
  test::KubeStandin api;
  test::pod_identity pod;
  pod.ns = ns_;
  pod.user = "system:serviceaccount:" + ns_ + ":tenantdb";
  const tenant a = make_tenant("kept");
  const tenant b = make_tenant("dropped");
  test::set_up_pod(api, pod, GetParam(), "vc-db-" + a.name);
  api.allow(pod.user, "get", ns_, "secrets", "vc-db-" + b.name);
  api.allow(pod.user, "update", ns_, "secrets", "vc-db-" + b.name);
  const std::string kubeconfig = (work_ / "kubeconfig").string();
  test::write_kubeconfig(kubeconfig, api, pod);
  const auto kube = [&](const tenant& t, std::vector<std::string> extra) {
    std::vector<std::string> args{
        "--tenant",     t.name,     "--namespace", ns_,  "--connector", "platform/db-connector",
        "--kubeconfig", kubeconfig, "--timeout",   "60s"};
    args.insert(args.end(), extra.begin(), extra.end());
    return init(args);
  };
  ASSERT_EQ(kube(a, {}).exit_code, 0);
  ASSERT_EQ(kube(b, {}).exit_code, 0);

  // The listing: both Secrets exist; then one is gone.
  const auto list = [&] {
    const auto r = init({"--list", "--output", "json", "--connector", "platform/db-connector", "--kubeconfig",
                         kubeconfig, "--namespace", ns_});
    EXPECT_EQ(r.exit_code, 0) << test::tail(r.err, 10);
    rapidjson::Document d;
    d.Parse(r.out.c_str());
    std::map<std::string, std::string> owner;
    if (!d.HasParseError() && d.IsArray())
      for (const auto& e : d.GetArray())
        if (str(e, "namespace") == ns_) owner[str(e, "tenant")] = str(e, "owner");
    return owner;
  };
  EXPECT_EQ(list(), (std::map<std::string, std::string>{{a.name, "exists"}, {b.name, "exists"}}));

  // The platform marks b for deletion on its Secret; no flag says otherwise.
  auto secret = api.get_object("secrets", ns_, "vc-db-" + b.name);
  ASSERT_TRUE(secret);
  rapidjson::Document doc;
  doc.Parse(secret->c_str());
  auto& meta = doc["metadata"];
  if (!meta.HasMember("annotations"))
    meta.AddMember("annotations", rapidjson::Value(rapidjson::kObjectType), doc.GetAllocator());
  meta["annotations"].AddMember("tenantdb.io/deletion-policy", "delete", doc.GetAllocator());
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  doc.Accept(w);
  api.put_object(buf.GetString());

  const auto del = kube(b, {"--deprovision"});
  ASSERT_EQ(del.exit_code, 0) << test::tail(del.err, 20);
  EXPECT_NE(del.err.find("\"from\":\"annotation tenantdb.io/deletion-policy\""), std::string::npos) << del.err;
  EXPECT_FALSE(state_of(b).database);
  // Delete leaves the credentials Secret in place (its passwords open nothing any more).
  EXPECT_TRUE(api.get_object("secrets", ns_, "vc-db-" + b.name));

  // a, without an annotation, is retained; then its Secret goes and the listing says so.
  const auto keep = kube(a, {"--deprovision"});
  ASSERT_EQ(keep.exit_code, 0) << test::tail(keep.err, 20);
  EXPECT_TRUE(state_of(a).database);
  api.delete_object("secrets", ns_, "vc-db-" + a.name);
  EXPECT_EQ(list(), (std::map<std::string, std::string>{{a.name, "gone"}}));
  // Clean up: the retained tenant's data is this test's.
  ASSERT_EQ(init({"--deprovision", "--policy", "delete", "--tenant", a.name, "--namespace", ns_, "--connector",
                  "platform/db-connector", "--kubeconfig", kubeconfig, "--timeout", "60s"})
                .exit_code,
            0);
}

INSTANTIATE_TEST_SUITE_P(Engines, LifecycleTest, ::testing::Values("pg", "mariadb"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
