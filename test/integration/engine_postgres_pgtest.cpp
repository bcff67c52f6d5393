// The PostgreSQL engine against a real PostgreSQL 15 (test/tools/testdb.sh), whose
// admin is a non-superuser with CREATEDB and CREATEROLE, like a managed cloud database.

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tenantdb/engine.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/naming.hpp"
#include "tenantdb/password.hpp"
#include "testdb.hpp"

namespace tenantdb {
namespace {

const bool server_logs = test::dump_server_logs_on_failure({"pg"});

// ---------------------------------------------------------------------------------------
// A plain libpq client for checking what the engine did, independent of the engine.
// ---------------------------------------------------------------------------------------

struct sql_failure : std::runtime_error {
  sql_failure(const std::string& message, std::string state)
      : std::runtime_error(message), sqlstate(std::move(state)) {}
  std::string sqlstate;
};

using rows = std::vector<std::vector<std::optional<std::string>>>;

class pg_client {
public:
  pg_client(const connector& c, const std::string& user, const secret& password, const std::string& database) {
    const std::string port = std::to_string(c.server.port);
    const std::string ca = test::ca_pem_path().string();
    const char* keys[] = {"host",    "port",        "dbname",          "user", "password",
                          "sslmode", "sslrootcert", "connect_timeout", nullptr};
    const char* values[] = {c.server.host.c_str(),
                            port.c_str(),
                            database.c_str(),
                            user.c_str(),
                            password.reveal().c_str(),
                            "verify-full",
                            ca.c_str(),
                            "5",
                            nullptr};
    conn_.reset(PQconnectdbParams(keys, values, 0));
    if (PQstatus(conn_.get()) != CONNECTION_OK) throw sql_failure(PQerrorMessage(conn_.get()), "");
    PQsetNoticeProcessor(
        conn_.get(), [](void*, const char*) {}, nullptr);
  }

  /// Runs `sql` with text parameters; throws sql_failure with the SQLSTATE.
  rows exec(const std::string& sql, const std::vector<std::string>& params = {}) {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p.c_str());
    std::unique_ptr<PGresult, decltype(&PQclear)> res(
        PQexecParams(conn_.get(), sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                     nullptr, 0),
        &PQclear);
    const auto status = PQresultStatus(res.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      const char* state = PQresultErrorField(res.get(), PG_DIAG_SQLSTATE);
      throw sql_failure(PQresultErrorMessage(res.get()), state != nullptr ? state : "");
    }
    rows out;
    for (int r = 0; r < PQntuples(res.get()); ++r) {
      auto& row = out.emplace_back();
      for (int f = 0; f < PQnfields(res.get()); ++f)
        row.push_back(PQgetisnull(res.get(), r, f) ? std::nullopt
                                                   : std::optional<std::string>(PQgetvalue(res.get(), r, f)));
    }
    return out;
  }

  /// The first column of the first row.
  std::string value(const std::string& sql, const std::vector<std::string>& params = {}) {
    const rows r = exec(sql, params);
    if (r.empty() || r[0].empty() || !r[0][0]) return {};
    return *r[0][0];
  }

  /// The SQLSTATE `sql` fails with, or "" if it succeeds.
  std::string sqlstate_of(const std::string& sql) {
    try {
      exec(sql);
      return "";
    } catch (const sql_failure& f) {
      return f.sqlstate;
    }
  }

private:
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn_{nullptr, &PQfinish};
};

/// The SQLSTATE-less message libpq gives when `user` cannot connect at all, or "".
std::string connect_failure(const connector& c, const std::string& user, const secret& pw, const std::string& db) {
  try {
    pg_client client(c, user, pw, db);
    return "";
  } catch (const sql_failure& f) {
    return f.what();
  }
}

template <typename F>
error expect_error(F&& f) {
  try {
    f();
  } catch (const error& e) {
    return e;
  }
  ADD_FAILURE() << "expected a tenantdb::error";
  return error(error_kind::internal, "no error");
}

// ---------------------------------------------------------------------------------------
// Fixture: one tenant per test, removed afterwards by the superuser.
// ---------------------------------------------------------------------------------------

class PostgresEngine : public ::testing::Test {
protected:
  void SetUp() override {
    admin_ = test::load_connector("pg");
    super_ = test::load_connector("pg-super");
    ASSERT_EQ(admin_.server.type, engine_type::postgres);
  }

  void TearDown() override {
    for (const auto& names : created_) {
      try {
        pg_client su(super_, super_.admin_user, super_.admin_password, "postgres");
        su.exec("DROP DATABASE IF EXISTS \"" + names.database + "\" WITH (FORCE)");
        su.exec("DROP ROLE IF EXISTS \"" + names.user_a + "\", \"" + names.user_b + "\", \"" + names.database + "\"");
      } catch (const std::exception& e) {
        std::cerr << "cleanup of " << names.database << " failed: " << e.what() << '\n';
      }
    }
  }

  /// Names for a fresh tenant, cleaned up after the test.
  tenant_names fresh(std::string_view prefix = "pgt") {
    return track(derive_names(test::unique_tenant(prefix), "tdbt_"));
  }
  tenant_names track(tenant_names names) {
    created_.push_back(names);
    return names;
  }

  std::unique_ptr<admin_session> admin() { return connect_admin(admin_.server, test::admin_login(admin_)); }
  pg_client super_client(const std::string& db = "postgres") {
    return pg_client(super_, super_.admin_user, super_.admin_password, db);
  }

  /// Database, user_a and user_b with passwords, granted.
  struct provisioned {
    tenant_names names;
    secret password_a;
    secret password_b;
  };
  provisioned provision(std::string_view prefix = "pgt") {
    provisioned p{fresh(prefix), generate_password(), generate_password()};
    auto session = admin();
    session->ensure_database(p.names);
    EXPECT_TRUE(session->ensure_user(p.names.user_a, p.password_a));
    EXPECT_TRUE(session->ensure_user(p.names.user_b, p.password_b));
    session->grant(p.names, p.names.user_a);
    session->grant(p.names, p.names.user_b);
    return p;
  }

  connector admin_;
  connector super_;
  std::vector<tenant_names> created_;
};

// ---------------------------------------------------------------------------------------
// Idempotence and concurrency
// ---------------------------------------------------------------------------------------

TEST_F(PostgresEngine, EnsureCallsTwiceAreNoOpsAndReportCreatedOnlyTheFirstTime) {
  const tenant_names names = fresh();
  const secret first = generate_password();
  auto session = admin();

  session->ensure_database(names);
  EXPECT_TRUE(session->ensure_user(names.user_a, first));
  session->grant(names, names.user_a);

  session->ensure_database(names);
  EXPECT_FALSE(session->ensure_user(names.user_a, generate_password()));
  session->grant(names, names.user_a);

  EXPECT_TRUE(session->user_exists(names.user_a));
  EXPECT_FALSE(session->user_exists(names.user_b));
  // An existing account keeps its password.
  EXPECT_NO_THROW(verify_login(admin_.server, {names.user_a, first}, names.database));

  auto su = super_client();
  EXPECT_EQ(su.value("SELECT count(*) FROM pg_database WHERE datname = $1", {names.database}), "1");
  EXPECT_EQ(su.value("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", {names.database}),
            names.database);
  // PUBLIC has no privilege on the database.
  for (const char* privilege : {"CONNECT", "TEMPORARY", "CREATE"})
    EXPECT_EQ(su.value("SELECT has_database_privilege('public', $1, $2)::text", {names.database, privilege}), "false")
        << privilege;
  EXPECT_EQ(su.value("SELECT rolcanlogin::text FROM pg_roles WHERE rolname = $1", {names.database}), "false");
  EXPECT_EQ(su.value("SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
                     "WHERE r.rolname = $1",
                     {names.user_a}),
            "1");
}

TEST_F(PostgresEngine, TwoConcurrentProvisioningsOfOneTenantBothSucceedWithOneDatabaseAndOneAccount) {
  for (int round = 0; round < 3; ++round) {
    const tenant_names names = fresh("race");
    std::atomic<int> created{0};
    std::atomic<int> ready{0};
    std::vector<std::string> failures(2);
    auto worker = [&](int index) {
      try {
        auto session = admin();
        ++ready;
        while (ready.load() < 2) std::this_thread::yield();
        session->ensure_database(names);
        if (session->ensure_user(names.user_a, generate_password())) ++created;
        session->grant(names, names.user_a);
      } catch (const std::exception& e) {
        failures[static_cast<std::size_t>(index)] = e.what();
      }
    };
    std::thread t1(worker, 0);
    std::thread t2(worker, 1);
    t1.join();
    t2.join();
    EXPECT_EQ(failures[0], "");
    EXPECT_EQ(failures[1], "");
    EXPECT_EQ(created.load(), 1);

    auto su = super_client();
    EXPECT_EQ(su.value("SELECT count(*) FROM pg_database WHERE datname = $1", {names.database}), "1");
    EXPECT_EQ(su.value("SELECT count(*) FROM pg_roles WHERE rolname = $1", {names.user_a}), "1");
    EXPECT_EQ(su.value("SELECT pg_has_role($1, $2, 'MEMBER')::text", {names.user_a, names.database}), "true");
    const secret pw = generate_password();
    admin()->set_password(names.user_a, pw);
    EXPECT_NO_THROW(verify_login(admin_.server, {names.user_a, pw}, names.database));
  }
}

// ---------------------------------------------------------------------------------------
// Passwords
// ---------------------------------------------------------------------------------------

TEST_F(PostgresEngine, SetPasswordThenVerifyLoginSucceeds) {
  const auto p = provision();
  const secret next = generate_password();
  admin()->set_password(p.names.user_a, next);
  EXPECT_NO_THROW(verify_login(admin_.server, {p.names.user_a, next}, p.names.database));
  const error e = expect_error([&] { verify_login(admin_.server, {p.names.user_a, p.password_a}, p.names.database); });
  EXPECT_EQ(e.kind(), error_kind::verification);
}

TEST_F(PostgresEngine, VerifyLoginWithAWrongPasswordFailsWithKindVerification) {
  const auto p = provision();
  const secret wrong("definitely-not-the-password-4711");
  const error e = expect_error([&] { verify_login(admin_.server, {p.names.user_a, wrong}, p.names.database); });
  EXPECT_EQ(e.kind(), error_kind::verification);
  EXPECT_FALSE(e.is_retryable());
  EXPECT_EQ(e.sqlstate(), "28P01");
  EXPECT_EQ(std::string(e.what()).find(wrong.reveal()), std::string::npos);
}

TEST_F(PostgresEngine, StoredPasswordIsAScramVerifier) {
  const auto p = provision();
  auto su = super_client();
  const std::string stored = su.value("SELECT rolpassword FROM pg_authid WHERE rolname = $1", {p.names.user_a});
  EXPECT_TRUE(stored.starts_with("SCRAM-SHA-256$")) << stored.substr(0, 20);
  EXPECT_EQ(stored.find(p.password_a.reveal()), std::string::npos);

  admin()->set_password(p.names.user_a, generate_password());
  const std::string after = su.value("SELECT rolpassword FROM pg_authid WHERE rolname = $1", {p.names.user_a});
  EXPECT_TRUE(after.starts_with("SCRAM-SHA-256$"));
  EXPECT_NE(after, stored);
}

TEST_F(PostgresEngine, ChangeOwnPasswordWorksWithoutTheAdminAndTheOldPasswordIsRefusedAfterwards) {
  const auto p = provision();
  const secret next = generate_password();
  change_own_password(admin_.server, {p.names.user_a, p.password_a}, p.names.database, next);
  EXPECT_NO_THROW(verify_login(admin_.server, {p.names.user_a, next}, p.names.database));
  const error e = expect_error([&] { verify_login(admin_.server, {p.names.user_a, p.password_a}, p.names.database); });
  EXPECT_EQ(e.kind(), error_kind::verification);

  // It changed the login's password, not the group role's it acts as.
  auto su = super_client();
  EXPECT_EQ(su.value("SELECT (rolpassword IS NULL)::text FROM pg_authid WHERE rolname = $1", {p.names.database}),
            "true");
  const std::string stored = su.value("SELECT rolpassword FROM pg_authid WHERE rolname = $1", {p.names.user_a});
  EXPECT_TRUE(stored.starts_with("SCRAM-SHA-256$"));
  // The other login is untouched.
  EXPECT_NO_THROW(verify_login(admin_.server, {p.names.user_b, p.password_b}, p.names.database));
}

TEST_F(PostgresEngine, HostilePasswordsRoundTripThroughSetPasswordVerifyLoginAndChangeOwnPassword) {
  const auto p = provision();
  const std::vector<std::string> hostile = {
      "it's a 'quoted' password",
      "double \"quotes\" and back\\slash\\",
      "back`tick` and $$dollar$$ and $1",
      "percent % and under_score _%_",
      "semi; colon'); DROP ROLE tenantdb_admin; --",
      "non-ASCII: äöü ß € 日本語 😀",
      "E'\\x27' \\' '' \\\\ ",
      std::string("80 chars: ") + std::string(70, 'x').replace(0, 7, "'\"\\`%_;"),
  };
  ASSERT_EQ(hostile.back().size(), 80u);
  auto session = admin();
  for (const auto& text : hostile) {
    SCOPED_TRACE(text);
    const secret pw(text);
    ASSERT_NO_THROW(session->set_password(p.names.user_a, pw));
    EXPECT_NO_THROW(verify_login(admin_.server, {p.names.user_a, pw}, p.names.database));
  }
  // And as the tenant itself.
  const secret last(hostile.back());
  const secret next("tenant's own \"new\" \\ password ✓");
  ASSERT_NO_THROW(change_own_password(admin_.server, {p.names.user_a, last}, p.names.database, next));
  EXPECT_NO_THROW(verify_login(admin_.server, {p.names.user_a, next}, p.names.database));
}

TEST_F(PostgresEngine, PasswordsNeverAppearInErrorMessages) {
  const tenant_names names = fresh();
  const secret pw("VisibleSecret-'quote'-12345");
  auto session = admin();
  // The role does not exist: the ALTER fails on the server.
  const error e = expect_error([&] { session->set_password(names.user_a, pw); });
  EXPECT_EQ(e.kind(), error_kind::database);
  EXPECT_EQ(std::string(e.what()).find("VisibleSecret"), std::string::npos) << e.what();
  EXPECT_EQ(std::string(e.what()).find("SCRAM"), std::string::npos) << e.what();
}

// ---------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------

TEST_F(PostgresEngine, TenantsWithHostileNamesGetWorkingDatabasesAndAccounts) {
  const std::vector<std::string> hostile = {
      "Robert'); DROP TABLE students;--",
      "\"quoted\" name with spaces",
      "äöü-ß-日本語-😀",
      "back\\slash`tick`%_",
      std::string(235, 'Z'),
      "a",
  };
  auto session = admin();
  for (const auto& name : hostile) {
    SCOPED_TRACE(name);
    const tenant who{name + test::unique_tenant("").name, "tenantdb-test"};
    ASSERT_NO_THROW(validate_tenant(who));
    const tenant_names names = track(derive_names(who, "tdbt_"));
    const secret pw = generate_password();
    ASSERT_NO_THROW(session->ensure_database(names));
    ASSERT_NO_THROW(session->ensure_user(names.user_a, pw));
    ASSERT_NO_THROW(session->grant(names, names.user_a));
    EXPECT_NO_THROW(verify_login(admin_.server, {names.user_a, pw}, names.database));
  }
}

TEST_F(PostgresEngine, NamesOutsideTheAllowListAreRejectedBeforeAnySql) {
  auto session = admin();
  const secret pw = generate_password();
  const std::vector<std::string> bad_names = {"Robert'; --", "UPPER", "x\"y", "1abc", "", std::string(64, 'a')};
  for (const auto& bad : bad_names) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(expect_error([&] { session->ensure_user(bad, pw); }).kind(), error_kind::usage);
    EXPECT_EQ(expect_error([&] {
                session->ensure_database({bad, "tdbt_ok_a", "tdbt_ok_b"});
              }).kind(),
              error_kind::usage);
  }
}

// ---------------------------------------------------------------------------------------
// Isolation: a tenant reaches its own database and nothing else.
// ---------------------------------------------------------------------------------------

TEST_F(PostgresEngine, TenantCannotConnectToAnotherTenantsDatabase) {
  const auto a = provision("isoa");
  const auto b = provision("isob");
  // The test server's pg_hba.conf (samerole) already turns A away at the door; A's active
  // login is let past it (tenantdb_any_database: testdb.sh) so that what refuses it here
  // is the CONNECT privilege the engine revoked. The standby login meets the door.
  super_client().exec("GRANT tenantdb_any_database TO \"" + a.names.user_a + "\"");
  const error e = expect_error([&] { verify_login(admin_.server, {a.names.user_a, a.password_a}, b.names.database); });
  EXPECT_EQ(e.kind(), error_kind::verification);
  EXPECT_NE(connect_failure(admin_, a.names.user_a, a.password_a, b.names.database).find("permission denied"),
            std::string::npos);
  // Nor with its second login.
  EXPECT_NE(connect_failure(admin_, a.names.user_b, a.password_b, b.names.database), "");
}

TEST_F(PostgresEngine, TenantCannotReadOrTouchAnotherTenantsTable) {
  const auto a = provision("isoa");
  const auto b = provision("isob");
  {
    pg_client as_b(admin_, b.names.user_a, b.password_a, b.names.database);
    as_b.exec("CREATE TABLE secrets (v text)");
    as_b.exec("INSERT INTO secrets VALUES ('b-only')");
  }
  pg_client as_a(admin_, a.names.user_a, a.password_a, a.names.database);
  EXPECT_EQ(as_a.sqlstate_of("SELECT * FROM secrets"), "42P01");
  EXPECT_EQ(as_a.sqlstate_of("SELECT * FROM \"" + b.names.database + "\".public.secrets"), "0A000");
  // A cannot become B's group role.
  EXPECT_EQ(as_a.sqlstate_of("SET ROLE \"" + b.names.database + "\""), "42501");
  EXPECT_EQ(as_a.sqlstate_of("ALTER ROLE \"" + b.names.user_a + "\" PASSWORD 'x'"), "42501");
  EXPECT_EQ(as_a.sqlstate_of("GRANT \"" + b.names.database + "\" TO CURRENT_USER"), "42501");
  EXPECT_EQ(as_a.sqlstate_of("DROP DATABASE \"" + b.names.database + "\""), "42501");
}

TEST_F(PostgresEngine, TenantCannotCreateDatabasesOrRoles) {
  const auto a = provision("isoa");
  pg_client as_a(admin_, a.names.user_a, a.password_a, a.names.database);
  EXPECT_EQ(as_a.sqlstate_of("CREATE DATABASE tdbt_should_not_exist"), "42501");
  EXPECT_EQ(as_a.sqlstate_of("CREATE ROLE tdbt_should_not_exist"), "42501");
  EXPECT_EQ(as_a.sqlstate_of("ALTER ROLE CURRENT_USER CREATEDB"), "42501");
  EXPECT_EQ(as_a.sqlstate_of("SET ROLE NONE"), "");
  EXPECT_EQ(as_a.sqlstate_of("ALTER ROLE CURRENT_USER SUPERUSER"), "42501");
}

TEST_F(PostgresEngine, TenantHasNoServerLevelPrivileges) {
  const auto a = provision("isoa");
  auto su = super_client();
  for (const auto& role : {a.names.user_a, a.names.user_b, a.names.database}) {
    SCOPED_TRACE(role);
    const rows r = su.exec(
        "SELECT rolsuper::text, rolcreatedb::text, rolcreaterole::text, rolreplication::text, rolbypassrls::text "
        "FROM pg_roles WHERE rolname = $1",
        {role});
    ASSERT_EQ(r.size(), 1u);
    for (const auto& v : r[0]) EXPECT_EQ(v.value_or("?"), "false");
    // Members of nothing but the tenant's own group role.
    EXPECT_EQ(su.value("SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
                       "JOIN pg_roles g ON g.oid = m.roleid WHERE r.rolname = $1 AND g.rolname <> $2",
                       {role, a.names.database}),
              "0");
  }
  pg_client as_a(admin_, a.names.user_a, a.password_a, a.names.database);
  EXPECT_EQ(as_a.sqlstate_of("SELECT rolpassword FROM pg_authid"), "42501");
  EXPECT_EQ(as_a.sqlstate_of("COPY (SELECT 1) TO PROGRAM 'true'"), "42501");
  EXPECT_EQ(as_a.sqlstate_of("COPY (SELECT 1) TO '/tmp/tenantdb-should-not-exist'"), "42501");
  EXPECT_EQ(as_a.sqlstate_of("SELECT pg_read_file('/etc/passwd')"), "42501");
  EXPECT_EQ(as_a.sqlstate_of("CREATE EXTENSION IF NOT EXISTS dblink"), "42501");
}

TEST_F(PostgresEngine, TableCreatedByOneLoginIsReadableAndWritableByTheOther) {
  const auto p = provision("dual");
  {
    pg_client as_a(admin_, p.names.user_a, p.password_a, p.names.database);
    as_a.exec("CREATE TABLE shared (id int PRIMARY KEY, v text)");
    as_a.exec("INSERT INTO shared VALUES (1, 'from a')");
    EXPECT_EQ(as_a.value("SELECT tableowner FROM pg_tables WHERE tablename = 'shared'"), p.names.database);
  }
  pg_client as_b(admin_, p.names.user_b, p.password_b, p.names.database);
  EXPECT_EQ(as_b.value("SELECT v FROM shared WHERE id = 1"), "from a");
  EXPECT_NO_THROW(as_b.exec("INSERT INTO shared VALUES (2, 'from b')"));
  EXPECT_NO_THROW(as_b.exec("UPDATE shared SET v = 'changed by b' WHERE id = 1"));
  EXPECT_NO_THROW(as_b.exec("ALTER TABLE shared ADD COLUMN w int"));
  EXPECT_EQ(as_b.value("SELECT count(*) FROM shared"), "2");
}

// ---------------------------------------------------------------------------------------
// Connection failures
// ---------------------------------------------------------------------------------------

TEST_F(PostgresEngine, WrongCaFailsWithKindConnectorAndIsNotRetryable) {
  for (const tls_mode mode : {tls_mode::verify_full, tls_mode::verify_ca}) {
    SCOPED_TRACE(std::string(to_string(mode)));
    server_address wrong = admin_.server;
    wrong.ca_pem = test::other_ca_pem();
    wrong.tls = mode;
    const error e = expect_error([&] { connect_admin(wrong, test::admin_login(admin_)); });
    EXPECT_EQ(e.kind(), error_kind::connector) << e.what();
    EXPECT_FALSE(e.is_retryable());
    EXPECT_NE(std::string(e.what()).find("caCert"), std::string::npos) << e.what();

    const auto p = provision("wrongca");
    const error t = expect_error([&] { verify_login(wrong, {p.names.user_a, p.password_a}, p.names.database); });
    EXPECT_EQ(t.kind(), error_kind::connector);
  }
}

TEST_F(PostgresEngine, NothingListeningFailsWithKindUnavailableAndIsRetryable) {
  server_address dead = admin_.server;
  dead.port = test::unused_port();
  const error e = expect_error([&] { connect_admin(dead, test::admin_login(admin_), {std::chrono::seconds(3)}); });
  EXPECT_EQ(e.kind(), error_kind::unavailable) << e.what();
  EXPECT_TRUE(e.is_retryable());
}

TEST_F(PostgresEngine, WrongAdminPasswordFailsWithKindDatabaseAndNamesTheConnectorKeys) {
  const secret wrong("wrong-admin-password-0815");
  const error e = expect_error([&] { connect_admin(admin_.server, {admin_.admin_user, wrong}); });
  EXPECT_EQ(e.kind(), error_kind::database);
  EXPECT_FALSE(e.is_retryable());
  const std::string what = e.what();
  EXPECT_NE(what.find("PostgreSQL refused the admin login \"" + admin_.admin_user + "\""), std::string::npos) << what;
  EXPECT_NE(what.find("adminUser/adminPassword"), std::string::npos);
  EXPECT_EQ(what.find(wrong.reveal()), std::string::npos);
}

TEST_F(PostgresEngine, AdminProvisionsTenantsAlthoughItIsNotSuperuser) {
  auto su = super_client();
  ASSERT_EQ(su.value("SELECT rolsuper::text FROM pg_roles WHERE rolname = $1", {admin_.admin_user}), "false");
  auto session = admin();
  EXPECT_NE(session->server_version().find("PostgreSQL 15"), std::string::npos) << session->server_version();
  const auto p = provision("nosuper");
  EXPECT_NO_THROW(verify_login(admin_.server, {p.names.user_b, p.password_b}, p.names.database));
}

TEST_F(PostgresEngine, SuperuserAdminProvisionsTenantsToo) {
  const tenant_names names = fresh("super");
  const secret pw = generate_password();
  auto session = connect_admin(super_.server, test::admin_login(super_));
  session->ensure_database(names);
  EXPECT_TRUE(session->ensure_user(names.user_a, pw));
  session->grant(names, names.user_a);
  session->ensure_database(names);
  EXPECT_NO_THROW(verify_login(admin_.server, {names.user_a, pw}, names.database));
  // The superuser never needed to join the group role.
  auto su = super_client();
  EXPECT_EQ(su.value("SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
                     "JOIN pg_roles g ON g.oid = m.roleid WHERE r.rolname = $1 AND g.rolname = $2",
                     {super_.admin_user, names.database}),
            "0");
}

TEST_F(PostgresEngine, VerifyLoginFailsForAnAccountWithoutTheGrant) {
  const tenant_names names = fresh("nogrant");
  const secret pw = generate_password();
  auto session = admin();
  session->ensure_database(names);
  ASSERT_TRUE(session->ensure_user(names.user_a, pw));
  const error e = expect_error([&] { verify_login(admin_.server, {names.user_a, pw}, names.database); });
  EXPECT_EQ(e.kind(), error_kind::verification) << e.what();
  session->grant(names, names.user_a);
  EXPECT_NO_THROW(verify_login(admin_.server, {names.user_a, pw}, names.database));
}

TEST_F(PostgresEngine, RequireModeEncryptsWithoutVerifyingTheCertificate) {
  server_address unverified = admin_.server;
  unverified.tls = tls_mode::require;
  unverified.ca_pem = test::other_ca_pem();
  auto session = connect_admin(unverified, test::admin_login(admin_));
  EXPECT_FALSE(session->server_version().empty());
}

TEST_F(PostgresEngine, AdminWithoutCreatedbGetsADatabaseErrorNamingThePrivilege) {
  // A separate admin role lacking CREATEDB, created and dropped by the superuser.
  const tenant_names weak = fresh("weak");
  const secret pw = generate_password();
  auto su = super_client();
  // (IN ROLE tenantdb_any_database: the test server's pg_hba.conf lets only the admins and
  // that group's members into databases not named like one of their roles; testdb.sh.)
  su.exec("CREATE ROLE \"" + weak.user_a + "\" LOGIN CREATEROLE NOCREATEDB PASSWORD '" + pw.reveal() +
          "' IN ROLE tenantdb_any_database");
  const error e = expect_error([&] {
    auto session = connect_admin(admin_.server, {weak.user_a, pw});
    session->ensure_database(fresh("weakdb"));
  });
  EXPECT_EQ(e.kind(), error_kind::database) << e.what();
  EXPECT_EQ(e.sqlstate(), "42501");
  EXPECT_NE(std::string(e.what()).find("CREATEDB"), std::string::npos) << e.what();
}

// A password change leaves sessions open with the old password working; end_sessions is
// how the init's repair of a locked-out account ends them.
TEST_F(PostgresEngine, EndSessionsEndsOnlyThatAccountsSessionsAndLeavesTheAdminNoMembership) {
  const auto p = provision();
  const auto alive = [](pg_client& c) {
    try {
      return c.value("SELECT 1") == "1";
    } catch (const sql_failure&) {
      return false;
    }
  };
  pg_client a1(admin_, p.names.user_a, p.password_a, p.names.database);
  pg_client a2(admin_, p.names.user_a, p.password_a, p.names.database);
  pg_client b(admin_, p.names.user_b, p.password_b, p.names.database);
  ASSERT_TRUE(alive(a1) && alive(a2) && alive(b));

  auto session = admin();
  EXPECT_EQ(session->end_sessions(p.names.user_a), 2);
  EXPECT_FALSE(alive(a1));
  EXPECT_FALSE(alive(a2));
  EXPECT_TRUE(alive(b)) << "another account's session was ended";
  // The admin joined the role only for the call (a rolled-back transaction).
  auto su = super_client();
  EXPECT_EQ(su.value("SELECT pg_has_role($1, $2, 'MEMBER')", {admin_.admin_user, p.names.user_a}), "f");
  // The admin's own session goes on; nothing is left to end.
  EXPECT_EQ(session->end_sessions(p.names.user_a), 0);
  EXPECT_TRUE(session->user_exists(p.names.user_a));
}

}  // namespace
}  // namespace tenantdb
