// Isolation (issue 5, reliability and security suite): tenant A's credentials try to reach
// tenant B's database on both engines, by every route a client has, with libpq and
// Connector/C directly. Zero may succeed.
//
// engine_dbtest checks the grants one statement at a time on accounts made by the engine
// layer. Here both tenants are made by
// tenantdb::provision (as the init makes them), every route runs with both of A's logins
// (active and standby), and each route is one row of a table: what it tries, how the
// server must refuse it, and what counts as having reached B.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <libpq-fe.h>
#include <memory>
#include <mysql.h>
#include <set>
#include <stdexcept>
#include <unistd.h>

#include "isolation_clients.hpp"
#include "suite.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/naming.hpp"
#include "tenantdb/password.hpp"
#include "tenantdb/provision.hpp"
#include "tenantdb/store.hpp"
#include "testdb.hpp"

namespace fs = std::filesystem;
using namespace tenantdb;
using namespace tenantdb::test::isolation;
using namespace std::string_literals;

namespace {

[[maybe_unused]] const bool server_logs = test::dump_server_logs_on_failure({"pg", "mariadb"});

// One way tenant A might reach tenant B. `attempt` returns true when it did; a refusal
// throws sql_failure, whose code must be one of `refusals` (anything else means the route
// was not really tried: a typo, a missing feature).
struct route {
  std::string name;
  std::set<std::string> refusals;
  std::function<bool(const login& a)> attempt;
};

struct provisioned {
  tenant_names names;
  login active;
  login standby;
};

class IsolationTest : public ::testing::Test {
protected:
  void provision_pair(const std::string& which) {
    conn_ = test::load_connector(which);
    dir_ = fs::temp_directory_path() / ("tenantdb-isolation-" + std::to_string(::getpid()) + "-" + which);
    fs::remove_all(dir_);
    a_ = make("iso-a");
    b_ = make("iso-b");
  }
  void TearDown() override { fs::remove_all(dir_); }

  provisioned make(const std::string& prefix) {
    const tenant who = test::unique_tenant(prefix);
    auto store = make_directory_store(dir_ / who.name);
    provision_options o;
    o.who = who;
    o.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    o.ca_file = test::ca_pem_path().string();
    const auto r = provision(conn_, *make_engine(conn_.server.type), *store, o);
    return {r.names,
            {r.data.at(keys::user).reveal(), r.data.at(keys::password)},
            {r.data.at(keys::standby_user).reveal(), r.data.at(keys::standby_password)}};
  }

  void run_routes(test::suite_tally& tally, const std::vector<route>& routes) {
    for (const auto& [which, who] : {std::pair{"active", &a_.active}, std::pair{"standby", &a_.standby}}) {
      for (const auto& r : routes) {
        ++tally.routes;
        bool reached = false;
        try {
          reached = r.attempt(*who);
        } catch (const sql_failure& f) {
          if (r.refusals.count(f.code) == 0)
            ADD_FAILURE() << "route \"" << r.name << "\" as A's " << which << " login failed for another reason than "
                          << "a refusal (" << f.code << "): " << f.what();
        }
        if (reached) {
          ++tally.breaches;
          ADD_FAILURE() << "BREACH: route \"" << r.name << "\" reached tenant B as A's " << which << " login";
        }
      }
    }
  }

  connector conn_;
  fs::path dir_;
  provisioned a_;
  provisioned b_;
  const std::string marker_ = "b-only-" + test::unique_tenant("row").name;
};

// ---------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------

class PostgresIsolation : public IsolationTest {
protected:
  void SetUp() override { provision_pair("pg"); }

  pg_client as(const login& l, const std::string& db, const std::string& sslmode = "verify-full",
               const std::string& replication = {}) const {
    return pg_client(conn_.server, l, db, sslmode, replication);
  }
  // A statement run by A in A's own database; succeeding is reaching B.
  route in_own_db(std::string name, std::set<std::string> refusals, std::string sql) const {
    return {std::move(name), std::move(refusals), [this, sql](const login& a) {
              as(a, a_.names.database).exec(sql);
              return true;
            }};
  }
  // A query run by A in `db` whose first value must stay "0" (or one of `harmless`).
  route count_in(std::string name, std::string db, std::string sql, std::set<std::string> harmless = {"0"},
                 std::set<std::string> refusals = {}) const {
    return {std::move(name), std::move(refusals), [this, db, sql, harmless](const login& a) {
              return harmless.count(as(a, db == "own" ? a_.names.database : db).value(sql)) == 0;
            }};
  }
};

TEST_F(PostgresIsolation, TenantACannotReachTenantBByAnyRoute) {
  test::suite_tally tally;
  const std::string bdb = b_.names.database;
  const std::string bgroup = "\"" + bdb + "\"";
  const std::string bu_a = "\"" + b_.names.user_a + "\"", bu_b = "\"" + b_.names.user_b + "\"";

  // B's data: a row, a large object, and a session whose last query names the marker.
  pg_client b_session = as(b_.active, bdb);
  b_session.exec("CREATE TABLE t (v text)");
  b_session.exec("INSERT INTO t VALUES ('" + marker_ + "')");
  const std::string lo = b_session.value("SELECT lo_from_bytea(0, convert_to('" + marker_ + "', 'UTF8'))::text");
  const std::string table_file = b_session.value("SELECT pg_relation_filepath('t')");
  const std::string b_pid = b_session.value("SELECT pg_backend_pid()::text");
  const std::string data_dir = (test::testdb_dir() / "pg" / "data").string();
  b_session.exec("SELECT '" + marker_ + "'");
  const std::string activity =
      "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE '%" + marker_ + "%'";
  // Controls: the routes below can only fail for the right reasons.
  ASSERT_EQ(pg_client(conn_.server, b_.standby, bdb).value("SELECT v FROM t"), marker_);
  // (as the login itself: a session's query is shown to roles with the privileges of its user)
  ASSERT_EQ(as(b_.active, bdb).value("SET ROLE NONE; " + activity), "1") << "B's login sees its own session's query";
  for (const login* a : {&a_.active, &a_.standby})
    ASSERT_EQ(as(*a, a_.names.database).value("SELECT current_user"), a_.names.database) << "A cannot log in";

  const std::string owner_only = "42501";
  std::vector<route> routes = {
      {"connect to B's database",
       {"connect-denied", "connect-hba"},
       [&](const login& a) {
         as(a, bdb);
         return true;
       }},
      {"connect to B's database without TLS",
       {"connect-hba"},
       [&](const login& a) {
         as(a, bdb, "disable");
         return true;
       }},
      {"connect to A's own database without TLS",
       {"connect-hba"},
       [&](const login& a) {
         as(a, a_.names.database, "disable");
         return true;
       }},
      {"logical replication connection to B's database",
       {"connect-denied", "connect-hba", "connect-replication"},
       [&](const login& a) {
         as(a, bdb, "verify-full", "database");
         return true;
       }},
      {"connect as B's active login with A's password",
       {"connect-auth"},
       [&](const login& a) {
         as({b_.names.user_a, a.password}, bdb);
         return true;
       }},
      {"connect as B's standby login with A's password",
       {"connect-auth"},
       [&](const login& a) {
         as({b_.names.user_b, a.password}, bdb);
         return true;
       }},
      {"connect as B's group role with A's password",
       {"connect-auth"},
       [&](const login& a) {
         as({bdb, a.password}, bdb);
         return true;
       }},
      // The shared databases: reachable on a server with the default pg_hba.conf (PUBLIC
      // CONNECT), but nothing of B is there and nothing planted there may reach the
      // databases created later from template1. The test server closes them with samerole
      // (TenantReachesNoDatabaseButItsOwn), so there these routes end at the door.
      count_in("B's table listed in database postgres", "postgres",
               "SELECT count(*) FROM pg_class WHERE relname = 't' AND relnamespace = 'public'::regnamespace", {"0"},
               {"connect-hba"}),
      count_in("B's table listed in database template1", "template1",
               "SELECT count(*) FROM pg_class WHERE relname = 't' AND relnamespace = 'public'::regnamespace", {"0"},
               {"connect-hba"}),
      {"plant a table in template1 (copied into new tenant databases)",
       {owner_only, "connect-hba"},
       [&](const login& a) {
         as(a, "template1").exec("CREATE TABLE public.tenantdb_planted (x int)");
         return true;
       }},
      {"plant a schema in template1",
       {owner_only, "connect-hba"},
       [&](const login& a) {
         as(a, "template1").exec("CREATE SCHEMA tenantdb_planted");
         return true;
       }},
      {"write a table into database postgres",
       {owner_only, "connect-hba"},
       [&](const login& a) {
         as(a, "postgres").exec("CREATE TABLE public.tenantdb_planted (x int)");
         return true;
       }},
      in_own_db("SET ROLE to B's group role", {owner_only}, "SET ROLE " + bgroup),
      in_own_db("SET ROLE to B's active login", {owner_only}, "SET ROLE " + bu_a),
      in_own_db("SET ROLE to B's standby login", {owner_only}, "SET ROLE " + bu_b),
      in_own_db("SET SESSION AUTHORIZATION B's active login", {owner_only}, "SET SESSION AUTHORIZATION " + bu_a),
      in_own_db("GRANT B's group role to self", {owner_only}, "GRANT " + bgroup + " TO SESSION_USER"),
      in_own_db("GRANT B's group role to A's group role", {owner_only}, "GRANT " + bgroup + " TO CURRENT_USER"),
      in_own_db("GRANT B's login to self", {owner_only}, "GRANT " + bu_a + " TO SESSION_USER"),
      in_own_db("GRANT CONNECT on B's database to self", {owner_only},
                "GRANT CONNECT ON DATABASE " + bgroup + " TO SESSION_USER"),
      in_own_db("GRANT ALL on B's database to PUBLIC", {owner_only}, "GRANT ALL ON DATABASE " + bgroup + " TO PUBLIC"),
      in_own_db("ALTER DATABASE of B: owner to A", {owner_only}, "ALTER DATABASE " + bgroup + " OWNER TO CURRENT_USER"),
      in_own_db("ALTER ROLE B's login PASSWORD", {owner_only}, "ALTER ROLE " + bu_a + " PASSWORD 'tenant-a-was-here'"),
      in_own_db("DROP DATABASE of B", {owner_only}, "DROP DATABASE " + bgroup),
      in_own_db("CREATE DATABASE", {owner_only}, "CREATE DATABASE tenantdb_iso_planted"),
      in_own_db("CREATE DATABASE from B's as template", {owner_only},
                "CREATE DATABASE tenantdb_iso_planted TEMPLATE " + bgroup),
      in_own_db("CREATE ROLE", {owner_only}, "CREATE ROLE tenantdb_iso_planted LOGIN PASSWORD 'x-x-x-x-x-x'"),
      in_own_db("CREATE EXTENSION dblink", {owner_only}, "CREATE EXTENSION dblink"),
      in_own_db("CREATE EXTENSION postgres_fdw", {owner_only}, "CREATE EXTENSION postgres_fdw"),
      in_own_db("CREATE EXTENSION file_fdw", {owner_only}, "CREATE EXTENSION file_fdw"),
      in_own_db(
          "CREATE SUBSCRIPTION to B's database", {owner_only},
          "CREATE SUBSCRIPTION tenantdb_iso CONNECTION 'dbname=" + bdb + "' PUBLICATION p WITH (connect = false)"),
      in_own_db("read pg_authid", {owner_only}, "SELECT rolpassword FROM pg_authid"),
      in_own_db("read pg_shadow", {owner_only}, "SELECT passwd FROM pg_shadow"),
      count_in("B's password verifier in pg_roles", "own",
               "SELECT count(*) FROM pg_roles WHERE rolname IN ('" + b_.names.user_a + "', '" + b_.names.user_b +
                   "') AND rolpassword IS DISTINCT FROM '********'"),
      in_own_db("COPY TO PROGRAM", {owner_only}, "COPY (SELECT 1) TO PROGRAM 'true'"),
      in_own_db("COPY FROM PROGRAM", {owner_only}, "CREATE TEMP TABLE x (v text); COPY x FROM PROGRAM 'true'"),
      in_own_db("COPY FROM B's table file", {owner_only},
                "CREATE TEMP TABLE x (v text); COPY x FROM '" + data_dir + "/" + table_file + "'"),
      in_own_db("pg_read_file of B's table file", {owner_only}, "SELECT pg_read_file('" + table_file + "')"),
      in_own_db("pg_read_binary_file of B's table file", {owner_only},
                "SELECT pg_read_binary_file('" + table_file + "')"),
      in_own_db("pg_ls_dir of B's database directory", {owner_only},
                "SELECT pg_ls_dir('" + fs::path(table_file).parent_path().string() + "')"),
      in_own_db("lo_import of B's table file", {owner_only}, "SELECT lo_import('" + data_dir + "/" + table_file + "')"),
      in_own_db("lo_export into B's database directory", {owner_only},
                "SELECT lo_export(lo_from_bytea(0, 'x'), '" + data_dir + "/" +
                    fs::path(table_file).parent_path().string() + "/planted')"),
      {"lo_get of B's large object by its OID",
       {"42704"},
       [&](const login& a) { return as(a, a_.names.database).value("SELECT lo_get(" + lo + ")").find("\\x") == 0; }},
      count_in("B's query text in pg_stat_activity", "own", activity),
      in_own_db("pg_terminate_backend of B's session", {owner_only}, "SELECT pg_terminate_backend(" + b_pid + ")"),
      // A login may preset its own settings; a preset role of B's must not take effect.
      {"own default role set to B's group, then log in again",
       {owner_only},
       [&](const login& a) {
         struct restore {  // through the admin, in case the login no longer works
           const connector& admin;
           std::string sql;
           ~restore() { pg_client(admin.server, test::admin_login(admin), "postgres").exec(sql); }
         } guard{conn_, "ALTER ROLE \"" + a.user + "\" SET role = '" + a_.names.database + "'"};
         {
           pg_client c = as(a, a_.names.database);
           c.exec("SET ROLE NONE");
           c.exec("ALTER ROLE SESSION_USER SET role = '" + bdb + "'");
         }
         return as(a, a_.names.database).value("SELECT current_user") == bdb;
       }},
  };
  run_routes(tally, routes);
  // B is untouched and A's own access still works.
  EXPECT_EQ(pg_client(conn_.server, b_.active, bdb).value("SELECT v FROM t"), marker_);
  EXPECT_EQ(as(a_.active, a_.names.database).value("SELECT current_user"), a_.names.database);
}

// Issue 11, item 8: PUBLIC CONNECT on postgres and template1 (and on any database made
// without tenantdb) is closed for every tenant at once by pg_hba.conf's `samerole`: a
// login reaches only a database named like a role it is a member of, and a tenant's
// database is named like the group role its logins belong to. The test server runs that
// way (test/tools/testdb.sh). Every database on the server is tried with both of A's
// logins; the server must refuse each at the door (pg_hba.conf), A's own excepted.
TEST_F(PostgresIsolation, TenantReachesNoDatabaseButItsOwn) {
  test::suite_tally tally;
  const std::vector<std::string> databases = pg_client(conn_.server, test::admin_login(conn_), "postgres")
                                                 .rows("SELECT datname FROM pg_database ORDER BY datname");
  const auto listed = [&](const std::string& db) {
    return std::find(databases.begin(), databases.end(), db) != databases.end();
  };
  // Controls: the list holds the shared databases and both tenants', and A reaches its own.
  for (const std::string& db : {"postgres"s, "template1"s, "template0"s, a_.names.database, b_.names.database})
    ASSERT_TRUE(listed(db)) << db << " is not in pg_database";
  for (const login* a : {&a_.active, &a_.standby})
    ASSERT_EQ(as(*a, a_.names.database).value("SELECT current_database()"), a_.names.database) << "A cannot log in";

  std::vector<route> routes;
  for (const std::string& db : databases) {
    if (db == a_.names.database) continue;
    routes.push_back({"connect to database " + db, {"connect-hba"}, [this, db](const login& a) {
                        as(a, db);
                        return true;
                      }});
  }
  run_routes(tally, routes);
  EXPECT_EQ(routes.size() + 1, databases.size());
}

// ---------------------------------------------------------------------------------------
// MariaDB
// ---------------------------------------------------------------------------------------

class MariadbIsolation : public IsolationTest {
protected:
  void SetUp() override { provision_pair("mariadb"); }

  my_client as(const login& l, const std::string& db = {}, bool tls = true) const {
    return my_client(conn_.server, l, db, tls);
  }
  route in_own_db(std::string name, std::set<std::string> refusals, std::string sql) const {
    return {std::move(name), std::move(refusals), [this, sql](const login& a) {
              as(a, a_.names.database).exec(sql);
              return true;
            }};
  }
  // A query whose first value, run by A, must be "0"; run by B it must not be (so it
  // really looks for B's objects).
  route count_of_b(std::string name, std::string sql) const {
    const std::string b_sees = as(b_.active, "information_schema").value(sql);
    EXPECT_NE(b_sees, "0") << name << ": the query does not find B's objects even as B";
    return {std::move(name), {}, [this, sql](const login& a) { return as(a, "information_schema").value(sql) != "0"; }};
  }
};

TEST_F(MariadbIsolation, TenantACannotReachTenantBByAnyRoute) {
  test::suite_tally tally;
  const std::string bdb = b_.names.database, adb = a_.names.database;
  const std::string bq = "`" + bdb + "`";
  const std::string bacct = "'" + b_.names.user_a + "'@'%'";
  const std::string data_dir = (test::testdb_dir() / "mariadb" / "data").string();

  my_client b_session = as(b_.active, bdb);
  b_session.exec("CREATE TABLE t (v TEXT) ENGINE=InnoDB");
  b_session.exec("INSERT INTO t VALUES ('" + marker_ + "')");
  b_session.exec("CREATE TABLE m (v TEXT) ENGINE=MyISAM");
  b_session.exec("INSERT INTO m VALUES ('" + marker_ + "')");
  b_session.exec("CREATE PROCEDURE p() SELECT v FROM t");
  b_session.exec("CREATE VIEW w AS SELECT v FROM t");
  const std::string b_thread = b_session.value("SELECT CONNECTION_ID()");
  b_session.exec("SELECT '" + marker_ + "'");
  ASSERT_EQ(as(b_.standby, bdb).value("SELECT v FROM t"), marker_);
  for (const login* a : {&a_.active, &a_.standby})
    ASSERT_EQ(as(*a, adb).value("SELECT DATABASE()"), adb) << "A cannot log in";

  const std::string like_b = "'" + bdb + "'";
  const std::set<std::string> denied_db = {"1044"}, denied_table = {"1142"}, needs_super = {"1227"};
  const std::set<std::string> needs_file = {"1045", "1227"};
  std::vector<route> routes = {
      {"connect to B's database", denied_db,
       [&](const login& a) {
         as(a, bdb);
         return true;
       }},
      {"connect to B's database without TLS",
       {"1045", "4036"},
       [&](const login& a) {
         as(a, bdb, false);
         return true;
       }},
      {"connect to A's own database without TLS",
       {"1045", "4036"},
       [&](const login& a) {
         as(a, adb, false);
         return true;
       }},
      {"connect as B's active login with A's password",
       {"1045"},
       [&](const login& a) {
         as({b_.names.user_a, a.password}, bdb);
         return true;
       }},
      {"connect as B's standby login with A's password",
       {"1045"},
       [&](const login& a) {
         as({b_.names.user_b, a.password}, bdb);
         return true;
       }},
      {"connect to database mysql", denied_db,
       [&](const login& a) {
         as(a, "mysql");
         return true;
       }},
      {"connect to database performance_schema", denied_db,
       [&](const login& a) {
         as(a, "performance_schema");
         return true;
       }},
      {"mysql_change_user to B's active login with A's password",
       {"1045"},
       [&](const login& a) {
         as(a, adb).change_user({b_.names.user_a, a.password}, bdb);
         return true;
       }},
      {"mysql_change_user to B's standby login with A's password",
       {"1045"},
       [&](const login& a) {
         as(a, adb).change_user({b_.names.user_b, a.password}, bdb);
         return true;
       }},
      {"mysql_change_user to A's own login into B's database", denied_db,
       [&](const login& a) {
         as(a, adb).change_user(a, bdb);
         return true;
       }},
      count_of_b("B's schema in information_schema.SCHEMATA",
                 "SELECT COUNT(*) FROM SCHEMATA WHERE SCHEMA_NAME = " + like_b),
      count_of_b("B's tables in information_schema.TABLES",
                 "SELECT COUNT(*) FROM TABLES WHERE TABLE_SCHEMA = " + like_b),
      count_of_b("B's columns in information_schema.COLUMNS",
                 "SELECT COUNT(*) FROM COLUMNS WHERE TABLE_SCHEMA = " + like_b),
      count_of_b("B's routines in information_schema.ROUTINES",
                 "SELECT COUNT(*) FROM ROUTINES WHERE ROUTINE_SCHEMA = " + like_b),
      count_of_b("B's views in information_schema.VIEWS", "SELECT COUNT(*) FROM VIEWS WHERE TABLE_SCHEMA = " + like_b),
      count_of_b("B's grants in information_schema.SCHEMA_PRIVILEGES",
                 "SELECT COUNT(*) FROM SCHEMA_PRIVILEGES WHERE GRANTEE LIKE '%" + b_.names.user_a + "%'"),
      count_of_b("B's session in information_schema.PROCESSLIST",
                 "SELECT COUNT(*) FROM PROCESSLIST WHERE USER = '" + b_.names.user_a + "'"),
      {"SHOW DATABASES lists B's database",
       {},
       [&](const login& a) {
         for (const auto& row : as(a, adb).rows("SHOW DATABASES"))
           if (row == bdb) return true;
         return false;
       }},
      {"SHOW PROCESSLIST shows another account's session",
       {},
       [&](const login& a) {
         for (const auto& user : as(a, adb).rows("SELECT User FROM information_schema.PROCESSLIST"))
           if (user != a.user) return true;
         return false;
       }},
      in_own_db("KILL B's session", {"1095"}, "KILL " + b_thread),
      in_own_db("USE B's database", denied_db, "USE " + bq),
      in_own_db("SELECT from B's table", denied_table, "SELECT * FROM " + bq + ".t"),
      in_own_db("SELECT from B's view", denied_table, "SELECT * FROM " + bq + ".w"),
      in_own_db("CALL B's procedure", {"1370"}, "CALL " + bq + ".p()"),
      in_own_db("HANDLER OPEN on B's table", denied_table, "HANDLER " + bq + ".t OPEN"),
      in_own_db("CREATE TABLE AS SELECT from B's table", denied_table, "CREATE TABLE c AS SELECT * FROM " + bq + ".t"),
      in_own_db("CREATE TABLE LIKE B's table", denied_table, "CREATE TABLE l LIKE " + bq + ".t"),
      in_own_db("CREATE VIEW over B's table", denied_table, "CREATE VIEW v AS SELECT * FROM " + bq + ".t"),
      in_own_db("MERGE table over B's MyISAM table", denied_table,
                "CREATE TABLE IF NOT EXISTS mm (v TEXT) ENGINE=MERGE UNION=(" + bq + ".m); SELECT * FROM mm"),
      in_own_db("RENAME B's table into A's database", denied_table, "RENAME TABLE " + bq + ".t TO stolen"),
      in_own_db("ALTER TABLE B's table RENAME into A's database", denied_table,
                "ALTER TABLE " + bq + ".t RENAME TO `" + adb + "`.stolen"),
      in_own_db("LOCK TABLES B's table", {"1044", "1142"}, "LOCK TABLES " + bq + ".t READ"),
      in_own_db("SHOW CREATE TABLE of B's table", denied_table, "SHOW CREATE TABLE " + bq + ".t"),
      in_own_db("SHOW GRANTS FOR B's login", denied_db, "SHOW GRANTS FOR " + bacct),
      in_own_db("SELECT from mysql.user", denied_table, "SELECT * FROM mysql.user"),
      in_own_db("SELECT from mysql.global_priv", denied_table, "SELECT * FROM mysql.global_priv"),
      in_own_db("SELECT from mysql.db", denied_table, "SELECT * FROM mysql.db"),
      in_own_db("LOAD DATA INFILE from B's table file", needs_file,
                "CREATE TABLE IF NOT EXISTS f (v LONGBLOB); LOAD DATA INFILE '" + data_dir + "/" + bdb +
                    "/t.ibd' INTO TABLE f"),
      {"LOAD_FILE of B's table file",
       {},
       [&](const login& a) {
         return as(a, adb).value("SELECT LOAD_FILE('" + data_dir + "/" + bdb + "/t.ibd') IS NOT NULL") == "1";
       }},
      in_own_db("SELECT INTO OUTFILE into B's database directory", needs_file,
                "SELECT 1 INTO OUTFILE '" + data_dir + "/" + bdb + "/planted.txt'"),
      in_own_db("SELECT INTO DUMPFILE into B's database directory", needs_file,
                "SELECT 1 INTO DUMPFILE '" + data_dir + "/" + bdb + "/planted.frm'"),
      in_own_db("CREATE DATABASE", denied_db, "CREATE DATABASE tenantdb_iso_planted"),
      in_own_db("CREATE USER", needs_super, "CREATE USER 'tenantdb_iso_planted'@'%'"),
      in_own_db("GRANT on B's database to self", denied_db, "GRANT ALL ON " + bq + ".* TO CURRENT_USER"),
      in_own_db("GRANT on everything to self", {"1045"}, "GRANT ALL ON *.* TO CURRENT_USER"),
      in_own_db("GRANT PROXY on B's login to self", {"1045", "1698"}, "GRANT PROXY ON " + bacct + " TO CURRENT_USER"),
      in_own_db("SET PASSWORD FOR B's login", denied_db, "SET PASSWORD FOR " + bacct + " = PASSWORD('tenant-a')"),
      in_own_db("ALTER USER B's login", needs_super, "ALTER USER " + bacct + " IDENTIFIED BY 'tenant-a'"),
      in_own_db("RENAME USER B's login", needs_super, "RENAME USER " + bacct + " TO 'tenantdb_iso_planted'@'%'"),
      in_own_db("DROP USER B's login", needs_super, "DROP USER " + bacct),
      in_own_db(
          "CREATE DEFINER=B's login PROCEDURE", needs_super,
          "CREATE DEFINER=" + bacct + " PROCEDURE dp() SQL SECURITY DEFINER SELECT * FROM " + bq + ".t; CALL dp()"),
      in_own_db("CREATE DEFINER=B's login FUNCTION", needs_super,
                "CREATE DEFINER=" + bacct + " FUNCTION df() RETURNS TEXT SQL SECURITY DEFINER RETURN (SELECT v FROM " +
                    bq + ".t LIMIT 1); SELECT df()"),
      in_own_db("CREATE DEFINER=B's login VIEW", needs_super,
                "CREATE DEFINER=" + bacct + " SQL SECURITY DEFINER VIEW dv0 AS SELECT 1"),
      in_own_db(
          "CREATE DEFINER=B's login VIEW over B's table", {"1227", "1142"},
          "CREATE DEFINER=" + bacct + " SQL SECURITY DEFINER VIEW dv AS SELECT * FROM " + bq + ".t; SELECT * FROM dv"),
      in_own_db("CREATE DEFINER=B's login TRIGGER", needs_super,
                "CREATE TABLE IF NOT EXISTS tt (x INT); CREATE DEFINER=" + bacct +
                    " TRIGGER dt BEFORE INSERT ON tt FOR EACH ROW SET @v = (SELECT v FROM " + bq +
                    ".t LIMIT 1); INSERT INTO tt VALUES (1)"),
      in_own_db("CREATE DEFINER=B's login EVENT", needs_super,
                "CREATE DEFINER=" + bacct + " EVENT de ON SCHEDULE AT CURRENT_TIMESTAMP DO DELETE FROM " + bq + ".t"),
  };
  run_routes(tally, routes);
  EXPECT_EQ(as(b_.active, bdb).value("SELECT v FROM t"), marker_);
  EXPECT_EQ(as(a_.active, adb).value("SELECT DATABASE()"), adb);
}

}  // namespace
