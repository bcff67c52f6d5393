// The database engines against the real servers of test/tools/testdb.sh: PostgreSQL 15,
// whose admin is a non-superuser with CREATEDB and CREATEROLE like a managed cloud
// database, and MariaDB 10.11, which requires TLS on every TCP connection.
//
// What both engines promise is one suite parameterised over them (Engines/Engine.<test>/pg
// and .../mariadb); where a promise is checked in an engine's own catalog, the
// test says so in an engine branch. What only one engine has, or what is checked so
// differently that a shared test would be two tests in one, is a plain test of
// PostgresEngine or MariadbEngine.

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <mysql.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "eventually.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/limits.hpp"
#include "tenantdb/naming.hpp"
#include "tenantdb/password.hpp"
#include "testdb.hpp"

namespace tenantdb {
namespace {

const bool server_logs = test::dump_server_logs_on_failure({"pg", "mariadb"});

// ---------------------------------------------------------------------------------------
// Plain clients (libpq, Connector/C) for checking what the engine did, independent of it.
// ---------------------------------------------------------------------------------------

/// A failed statement or login: PostgreSQL's SQLSTATE or MySQL/MariaDB's errno.
struct sql_failure : std::runtime_error {
  sql_failure(const std::string& message, std::string state, unsigned code)
      : std::runtime_error(message), sqlstate(std::move(state)), errnum(code) {}
  std::string sqlstate;
  unsigned errnum;
};

using rows = std::vector<std::vector<std::optional<std::string>>>;

/// What the shared tests ask of either client.
class sql_client {
public:
  sql_client() = default;
  sql_client(const sql_client&) = delete;
  sql_client& operator=(const sql_client&) = delete;
  virtual ~sql_client() = default;

  /// Runs `sql`; throws sql_failure.
  virtual rows exec(const std::string& sql) = 0;

  /// The first column of the first row; nullopt without a row or for NULL.
  std::optional<std::string> first(const std::string& sql) {
    const rows r = exec(sql);
    if (r.empty() || r[0].empty()) return std::nullopt;
    return r[0][0];
  }

  /// True while the connection still answers.
  bool alive() {
    try {
      return first("SELECT 1") == "1";
    } catch (const sql_failure&) {
      return false;
    }
  }
};

class pg_client : public sql_client {
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
    if (PQstatus(conn_.get()) != CONNECTION_OK) throw sql_failure(PQerrorMessage(conn_.get()), "", 0);
    PQsetNoticeProcessor(
        conn_.get(), [](void*, const char*) {}, nullptr);
  }

  rows exec(const std::string& sql) override { return exec(sql, {}); }

  /// Runs `sql` with text parameters; throws sql_failure with the SQLSTATE.
  rows exec(const std::string& sql, const std::vector<std::string>& params) {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p.c_str());
    std::unique_ptr<PGresult, decltype(&PQclear)> res(
        PQexecParams(conn_.get(), sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                     nullptr, 0),
        &PQclear);
    const auto status = PQresultStatus(res.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      const char* state = PQresultErrorField(res.get(), PG_DIAG_SQLSTATE);
      throw sql_failure(PQresultErrorMessage(res.get()), state != nullptr ? state : "", 0);
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

  /// The first column of the first row ("" without a row or for NULL).
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

class my_client : public sql_client {
public:
  my_client(const connector& c, const std::string& user, const secret& password, const std::string& database = {}) {
    conn_.reset(mysql_init(nullptr));
    MYSQL* m = conn_.get();
    const unsigned timeout = 5;
    const unsigned tcp = MYSQL_PROTOCOL_TCP;
    const my_bool yes = 1;
    const std::string ca = test::ca_pem_path().string();
    mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_optionsv(m, MYSQL_OPT_PROTOCOL, &tcp);
    mysql_optionsv(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_optionsv(m, MYSQL_OPT_SSL_ENFORCE, &yes);
    mysql_optionsv(m, MYSQL_OPT_SSL_CA, ca.c_str());
    mysql_optionsv(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &yes);
    if (mysql_real_connect(m, c.server.host.c_str(), user.c_str(), password.reveal().c_str(),
                           database.empty() ? nullptr : database.c_str(), c.server.port, nullptr, 0) == nullptr)
      throw sql_failure(mysql_error(m), "", mysql_errno(m));
  }

  rows exec(const std::string& sql) override {
    MYSQL* m = conn_.get();
    if (mysql_real_query(m, sql.data(), static_cast<unsigned long>(sql.size())) != 0)
      throw sql_failure(mysql_error(m), "", mysql_errno(m));
    rows out;
    std::unique_ptr<MYSQL_RES, decltype(&mysql_free_result)> res(mysql_store_result(m), &mysql_free_result);
    if (!res) {
      if (mysql_field_count(m) != 0) throw sql_failure(mysql_error(m), "", mysql_errno(m));
      return out;
    }
    const unsigned fields = mysql_num_fields(res.get());
    while (MYSQL_ROW r = mysql_fetch_row(res.get())) {
      const unsigned long* lengths = mysql_fetch_lengths(res.get());
      auto& row = out.emplace_back();
      for (unsigned i = 0; i < fields; ++i)
        row.push_back(r[i] == nullptr ? std::nullopt : std::optional<std::string>(std::string(r[i], lengths[i])));
    }
    return out;
  }

  std::optional<std::string> value(const std::string& sql) { return first(sql); }

  /// The errno `sql` fails with, or 0 if it succeeds.
  unsigned errno_of(const std::string& sql) {
    try {
      exec(sql);
      return 0;
    } catch (const sql_failure& f) {
      return f.errnum;
    }
  }

private:
  std::unique_ptr<MYSQL, decltype(&mysql_close)> conn_{nullptr, &mysql_close};
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

/// The errno a MySQL/MariaDB login as `user` fails with, or 0.
unsigned connect_errno(const connector& c, const std::string& user, const secret& pw, const std::string& db) {
  try {
    my_client client(c, user, pw, db);
    return 0;
  } catch (const sql_failure& f) {
    return f.errnum;
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

std::string quoted(const std::string& s) {
  return "'" + s + "'";
}

// ---------------------------------------------------------------------------------------
// Fixture: one engine's servers; every tenant a test makes is removed by the superuser.
// ---------------------------------------------------------------------------------------

class EngineFixture : public ::testing::Test {
protected:
  explicit EngineFixture(engine_type type) : type_(type) {}

  bool postgres() const { return type_ == engine_type::postgres; }

  void SetUp() override {
    admin_ = test::load_connector(postgres() ? "pg" : "mariadb");
    super_ = test::load_connector(postgres() ? "pg-super" : "mariadb-super");
    ASSERT_EQ(admin_.server.type, type_);
  }

  void TearDown() override {
    if (postgres()) {
      for (const auto& names : created_) {
        try {
          pg_client su = pg_super();
          su.exec("DROP DATABASE IF EXISTS \"" + names.database + "\" WITH (FORCE)");
          su.exec("DROP ROLE IF EXISTS \"" + names.user_a + "\", \"" + names.user_b + "\", \"" + names.database + "\"");
        } catch (const std::exception& e) {
          std::cerr << "cleanup of " << names.database << " failed: " << e.what() << '\n';
        }
      }
      return;
    }
    try {
      my_client su = my_super();
      for (const auto& names : created_) {
        su.exec("DROP DATABASE IF EXISTS `" + names.database + "`");
        su.exec("DROP USER IF EXISTS '" + names.user_a + "'@'%', '" + names.user_b + "'@'%'");
      }
      for (const auto& db : extra_databases_) su.exec("DROP DATABASE IF EXISTS `" + db + "`");
    } catch (const std::exception& e) {
      std::cerr << "cleanup failed: " << e.what() << '\n';
    }
  }

  /// Names for a fresh tenant, cleaned up after the test.
  tenant_names fresh(std::string_view prefix = {}) {
    if (prefix.empty()) prefix = postgres() ? "pgt" : "myt";
    return track(derive_names(test::unique_tenant(prefix), "tdbt_"));
  }
  tenant_names track(tenant_names names) {
    created_.push_back(names);
    return names;
  }

  std::unique_ptr<admin_session> admin() { return connect_admin(admin_.server, test::admin_login(admin_)); }
  pg_client pg_super(const std::string& db = "postgres") {
    return pg_client(super_, super_.admin_user, super_.admin_password, db);
  }
  my_client my_super() { return my_client(super_, super_.admin_user, super_.admin_password); }

  /// A plain client logged in as `user` to `database`, verifying the server's certificate.
  std::unique_ptr<sql_client> connect_as(const std::string& user, const secret& password, const std::string& database) {
    if (postgres()) return std::make_unique<pg_client>(admin_, user, password, database);
    return std::make_unique<my_client>(admin_, user, password, database);
  }

  /// Database, user_a and user_b with passwords, granted.
  struct provisioned {
    tenant_names names;
    secret password_a;
    secret password_b;
  };
  provisioned provision(std::string_view prefix = {}) {
    provisioned p{fresh(prefix), generate_password(), generate_password()};
    auto session = admin();
    session->ensure_database(p.names);
    EXPECT_TRUE(session->ensure_user(p.names.user_a, p.password_a));
    EXPECT_TRUE(session->ensure_user(p.names.user_b, p.password_b));
    session->grant(p.names, p.names.user_a);
    session->grant(p.names, p.names.user_b);
    return p;
  }

  engine_type type_;
  connector admin_;
  connector super_;
  std::vector<tenant_names> created_;
  std::vector<std::string> extra_databases_;
};

/// The suite both engines pass; the parameter names the test server ("pg", "mariadb").
class Engine : public EngineFixture, public ::testing::WithParamInterface<const char*> {
protected:
  Engine() : EngineFixture(std::string(GetParam()) == "pg" ? engine_type::postgres : engine_type::mysql) {}
};

/// Tests of what only PostgreSQL has, or checks in its own way.
class PostgresEngine : public EngineFixture {
protected:
  PostgresEngine() : EngineFixture(engine_type::postgres) {}
};

/// Tests of what only MySQL/MariaDB has, or checks in its own way.
class MariadbEngine : public EngineFixture {
protected:
  MariadbEngine() : EngineFixture(engine_type::mysql) {}
};

INSTANTIATE_TEST_SUITE_P(Engines, Engine, ::testing::Values("pg", "mariadb"),
                         [](const ::testing::TestParamInfo<const char*>& engine) { return std::string(engine.param); });

// ---------------------------------------------------------------------------------------
// Idempotence and concurrency
// ---------------------------------------------------------------------------------------

TEST_P(Engine, EnsureCallsTwiceAreNoOpsAndReportCreatedOnlyTheFirstTime) {
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

  if (postgres()) {
    auto su = pg_super();
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
  } else {
    auto su = my_super();
    EXPECT_EQ(
        su.value("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = " + quoted(names.database)),
        "1");
    EXPECT_EQ(su.value("SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = " +
                       quoted(names.database)),
              "utf8mb4");
    EXPECT_EQ(su.value("SELECT COUNT(*) FROM mysql.user WHERE User = " + quoted(names.user_a)), "1");
  }
}

TEST_P(Engine, TwoConcurrentProvisioningsOfOneTenantBothSucceedWithOneDatabaseAndOneAccount) {
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

    if (postgres()) {
      auto su = pg_super();
      EXPECT_EQ(su.value("SELECT count(*) FROM pg_database WHERE datname = $1", {names.database}), "1");
      EXPECT_EQ(su.value("SELECT count(*) FROM pg_roles WHERE rolname = $1", {names.user_a}), "1");
      EXPECT_EQ(su.value("SELECT pg_has_role($1, $2, 'MEMBER')::text", {names.user_a, names.database}), "true");
    } else {
      auto su = my_super();
      EXPECT_EQ(
          su.value("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = " + quoted(names.database)),
          "1");
      EXPECT_EQ(su.value("SELECT COUNT(*) FROM mysql.user WHERE User = " + quoted(names.user_a)), "1");
    }
    const secret pw = generate_password();
    admin()->set_password(names.user_a, pw);
    EXPECT_NO_THROW(verify_login(admin_.server, {names.user_a, pw}, names.database));
  }
}

// ---------------------------------------------------------------------------------------
// Passwords
// ---------------------------------------------------------------------------------------

TEST_P(Engine, SetPasswordThenVerifyLoginSucceeds) {
  const auto p = provision();
  const secret next = generate_password();
  admin()->set_password(p.names.user_a, next);
  EXPECT_NO_THROW(verify_login(admin_.server, {p.names.user_a, next}, p.names.database));
  const error e = expect_error([&] { verify_login(admin_.server, {p.names.user_a, p.password_a}, p.names.database); });
  EXPECT_EQ(e.kind(), error_kind::verification);
}

TEST_P(Engine, VerifyLoginWithAWrongPasswordFailsWithKindVerification) {
  const auto p = provision();
  const secret wrong("definitely-not-the-password-4711");
  const error e = expect_error([&] { verify_login(admin_.server, {p.names.user_a, wrong}, p.names.database); });
  EXPECT_EQ(e.kind(), error_kind::verification);
  EXPECT_FALSE(e.is_retryable());
  if (postgres()) {
    EXPECT_EQ(e.sqlstate(), "28P01");
  } else {
    EXPECT_EQ(e.db_errno(), 1045u);
  }
  EXPECT_EQ(std::string(e.what()).find(wrong.reveal()), std::string::npos);
}

TEST_P(Engine, ChangeOwnPasswordWorksWithoutTheAdminAndTheOldPasswordIsRefusedAfterwards) {
  const auto p = provision();
  const secret next = generate_password();
  change_own_password(admin_.server, {p.names.user_a, p.password_a}, p.names.database, next);
  EXPECT_NO_THROW(verify_login(admin_.server, {p.names.user_a, next}, p.names.database));
  const error e = expect_error([&] { verify_login(admin_.server, {p.names.user_a, p.password_a}, p.names.database); });
  EXPECT_EQ(e.kind(), error_kind::verification);

  if (postgres()) {
    // It changed the login's password, not the group role's it acts as.
    auto su = pg_super();
    EXPECT_EQ(su.value("SELECT (rolpassword IS NULL)::text FROM pg_authid WHERE rolname = $1", {p.names.database}),
              "true");
    const std::string stored = su.value("SELECT rolpassword FROM pg_authid WHERE rolname = $1", {p.names.user_a});
    EXPECT_TRUE(stored.starts_with("SCRAM-SHA-256$"));
  }
  // The other login is untouched.
  EXPECT_NO_THROW(verify_login(admin_.server, {p.names.user_b, p.password_b}, p.names.database));
}

TEST_P(Engine, HostilePasswordsRoundTripThroughSetPasswordVerifyLoginAndChangeOwnPassword) {
  const auto p = provision();
  // Quotes, escapes and comment markers of both SQL dialects, for both engines.
  const std::vector<std::string> hostile = {
      "it's a 'quoted' password",
      "double \"quotes\" and back\\slash\\",
      "back`tick` and $$dollar$$ and $1",
      "percent % and under_score _%_",
      "semi; colon'); DROP ROLE tenantdb_admin; --",
      "semi; colon'); DROP USER tenantdb_admin; --",
      "non-ASCII: äöü ß € 日本語 😀",
      "E'\\x27' \\' '' \\\\ ",
      "\\' '' \\\\ \\0 \\n",
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
  const secret next("tenant's own \"new\" \\ password ✓ %_");
  ASSERT_NO_THROW(change_own_password(admin_.server, {p.names.user_a, last}, p.names.database, next));
  EXPECT_NO_THROW(verify_login(admin_.server, {p.names.user_a, next}, p.names.database));
}

TEST_P(Engine, PasswordsNeverAppearInErrorMessages) {
  const tenant_names names = fresh();
  const secret pw("VisibleSecret-'quote'-12345");
  auto session = admin();
  // The account does not exist: the change fails on the server.
  const error e = expect_error([&] { session->set_password(names.user_a, pw); });
  EXPECT_EQ(e.kind(), error_kind::database);
  if (!postgres()) {
    EXPECT_NE(e.db_errno(), 0u);
  }
  EXPECT_EQ(std::string(e.what()).find("VisibleSecret"), std::string::npos) << e.what();
  if (postgres()) {
    EXPECT_EQ(std::string(e.what()).find("SCRAM"), std::string::npos) << e.what();
  }
}

TEST_F(PostgresEngine, StoredPasswordIsAScramVerifier) {
  const auto p = provision();
  auto su = pg_super();
  const std::string stored = su.value("SELECT rolpassword FROM pg_authid WHERE rolname = $1", {p.names.user_a});
  EXPECT_TRUE(stored.starts_with("SCRAM-SHA-256$")) << stored.substr(0, 20);
  EXPECT_EQ(stored.find(p.password_a.reveal()), std::string::npos);

  admin()->set_password(p.names.user_a, generate_password());
  const std::string after = su.value("SELECT rolpassword FROM pg_authid WHERE rolname = $1", {p.names.user_a});
  EXPECT_TRUE(after.starts_with("SCRAM-SHA-256$"));
  EXPECT_NE(after, stored);
}

TEST_F(MariadbEngine, AccountsRequireTls) {
  const auto p = provision();
  auto su = my_super();
  EXPECT_EQ(su.value("SELECT ssl_type FROM mysql.user WHERE User = " + quoted(p.names.user_a) + " AND Host = '%'"),
            "ANY");
}

// ---------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------

TEST_P(Engine, TenantsWithHostileNamesGetWorkingDatabasesAndAccounts) {
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

TEST_P(Engine, NamesOutsideTheAllowListAreRejectedBeforeAnySql) {
  auto session = admin();
  const secret pw = generate_password();
  // Quote characters of both dialects, LIKE wildcards, and one character over the
  // server's identifier limit (PostgreSQL 63, MySQL/MariaDB 64).
  const std::vector<std::string> bad_names = {"Robert'; --", "UPPER", "x\"y", "x`y",
                                              "1abc",        "",      "a%",   std::string(postgres() ? 64 : 65, 'a')};
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

TEST_P(Engine, TenantCannotConnectToAnotherTenantsDatabase) {
  const auto a = provision("isoa");
  const auto b = provision("isob");
  // The PostgreSQL test server's pg_hba.conf (samerole) already turns A away at the door;
  // A's active login is let past it (tenantdb_any_database: testdb.sh) so that what
  // refuses it here is the CONNECT privilege the engine revoked. The standby login meets
  // the door.
  if (postgres()) pg_super().exec("GRANT tenantdb_any_database TO \"" + a.names.user_a + "\"");
  const error e = expect_error([&] { verify_login(admin_.server, {a.names.user_a, a.password_a}, b.names.database); });
  EXPECT_EQ(e.kind(), error_kind::verification);
  if (postgres()) {
    EXPECT_NE(connect_failure(admin_, a.names.user_a, a.password_a, b.names.database).find("permission denied"),
              std::string::npos);
    // Nor with its second login.
    EXPECT_NE(connect_failure(admin_, a.names.user_b, a.password_b, b.names.database), "");
  } else {
    EXPECT_EQ(e.db_errno(), 1044u);
    // Nor with its second login, nor by switching databases.
    EXPECT_EQ(connect_errno(admin_, a.names.user_b, a.password_b, b.names.database), 1044u);
    my_client as_a(admin_, a.names.user_a, a.password_a, a.names.database);
    EXPECT_EQ(as_a.errno_of("USE `" + b.names.database + "`"), 1044u);
  }
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

TEST_F(MariadbEngine, TenantCannotReadAnotherTenantsTableByQualifiedName) {
  const auto a = provision("isoa");
  const auto b = provision("isob");
  {
    my_client as_b(admin_, b.names.user_a, b.password_a, b.names.database);
    as_b.exec("CREATE TABLE secrets (v TEXT)");
    as_b.exec("INSERT INTO secrets VALUES ('b-only')");
  }
  my_client as_a(admin_, a.names.user_a, a.password_a, a.names.database);
  const std::string table = "`" + b.names.database + "`.secrets";
  EXPECT_EQ(as_a.errno_of("SELECT * FROM " + table), 1142u);
  EXPECT_EQ(as_a.errno_of("INSERT INTO " + table + " VALUES ('x')"), 1142u);
  EXPECT_EQ(as_a.errno_of("DROP TABLE " + table), 1142u);
  EXPECT_EQ(as_a.errno_of("DROP DATABASE `" + b.names.database + "`"), 1044u);
  EXPECT_EQ(
      as_a.value("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = " + quoted(b.names.database)),
      "0");
}

TEST_F(MariadbEngine, TenantCannotReachALookAlikeDatabaseMatchedByTheUnderscoreWildcard) {
  const auto a = provision("look");
  // Every '_' in the tenant's name would match any character in an unescaped GRANT.
  std::vector<std::string> lookalikes;
  for (std::size_t i = 0; i < a.names.database.size(); ++i) {
    if (a.names.database[i] != '_') continue;
    std::string other = a.names.database;
    other[i] = 'X';
    lookalikes.push_back(other);
  }
  ASSERT_FALSE(lookalikes.empty());
  auto su = my_super();
  for (const auto& db : lookalikes) {
    extra_databases_.push_back(db);
    su.exec("CREATE DATABASE `" + db + "`");
    su.exec("CREATE TABLE `" + db + "`.t (v TEXT)");
  }
  my_client as_a(admin_, a.names.user_a, a.password_a, a.names.database);
  for (const auto& db : lookalikes) {
    SCOPED_TRACE(db);
    EXPECT_EQ(as_a.errno_of("USE `" + db + "`"), 1044u);
    EXPECT_EQ(as_a.errno_of("SELECT * FROM `" + db + "`.t"), 1142u);
    EXPECT_EQ(as_a.errno_of("CREATE TABLE `" + db + "`.mine (x INT)"), 1142u);
    EXPECT_EQ(connect_errno(admin_, a.names.user_a, a.password_a, db), 1044u);
  }
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

TEST_F(MariadbEngine, TenantCannotCreateDatabasesOrUsers) {
  const auto a = provision("isoa");
  my_client as_a(admin_, a.names.user_a, a.password_a, a.names.database);
  EXPECT_EQ(as_a.errno_of("CREATE DATABASE tdbt_should_not_exist"), 1044u);
  EXPECT_EQ(as_a.errno_of("CREATE USER 'tdbt_should_not_exist'@'%'"), 1227u);
  EXPECT_EQ(as_a.errno_of("GRANT ALL ON *.* TO '" + a.names.user_a + "'@'%'"), 1045u);
  EXPECT_NE(as_a.errno_of("GRANT SELECT ON `" + a.names.database + "`.* TO '" + a.names.user_b + "'@'%'"), 0u);
}

TEST_F(PostgresEngine, TenantHasNoServerLevelPrivileges) {
  const auto a = provision("isoa");
  auto su = pg_super();
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

TEST_F(MariadbEngine, TenantHasNoServerLevelPrivileges) {
  const auto a = provision("isoa");
  my_client as_a(admin_, a.names.user_a, a.password_a, a.names.database);

  const rows grants = as_a.exec("SHOW GRANTS");
  ASSERT_EQ(grants.size(), 2u);
  std::string escaped;
  for (const char c : a.names.database) {
    if (c == '_') escaped += '\\';
    escaped += c;
  }
  int usage = 0, database = 0;
  for (const auto& row : grants) {
    const std::string g = row.at(0).value_or("");
    SCOPED_TRACE(g);
    EXPECT_EQ(g.find("WITH GRANT OPTION"), std::string::npos);
    if (g.starts_with("GRANT USAGE ON *.* TO ")) {
      ++usage;
    } else if (g.starts_with("GRANT ALL PRIVILEGES ON `" + escaped + "`.* TO ")) {
      ++database;
    }
  }
  EXPECT_EQ(usage, 1);
  EXPECT_EQ(database, 1);

  EXPECT_EQ(as_a.errno_of("SELECT * FROM mysql.user"), 1142u);
  EXPECT_EQ(as_a.errno_of("SELECT * FROM mysql.global_priv"), 1142u);
  EXPECT_EQ(as_a.value("SELECT LOAD_FILE('/etc/passwd')"), std::nullopt);
  // No FILE privilege: MariaDB says 1227, MySQL 1045.
  const unsigned outfile = as_a.errno_of("SELECT 1 INTO OUTFILE '/tmp/tenantdb-should-not-exist'");
  EXPECT_TRUE(outfile == 1227u || outfile == 1045u) << outfile;
  EXPECT_EQ(as_a.errno_of("SHUTDOWN"), 1227u);
  EXPECT_EQ(as_a.errno_of("SET GLOBAL max_connections = 1"), 1227u);
}

TEST_P(Engine, TableCreatedByOneLoginIsReadableAndWritableByTheOther) {
  const auto p = provision("dual");
  {
    auto as_a = connect_as(p.names.user_a, p.password_a, p.names.database);
    as_a->exec("CREATE TABLE shared (id INT PRIMARY KEY, v TEXT)");
    as_a->exec("INSERT INTO shared VALUES (1, 'from a')");
    // On PostgreSQL the table belongs to the tenant's group role, not to the login.
    if (postgres()) {
      EXPECT_EQ(as_a->first("SELECT tableowner FROM pg_tables WHERE tablename = 'shared'"), p.names.database);
    }
  }
  auto as_b = connect_as(p.names.user_b, p.password_b, p.names.database);
  EXPECT_EQ(as_b->first("SELECT v FROM shared WHERE id = 1"), "from a");
  EXPECT_NO_THROW(as_b->exec("INSERT INTO shared VALUES (2, 'from b')"));
  EXPECT_NO_THROW(as_b->exec("UPDATE shared SET v = 'changed by b' WHERE id = 1"));
  EXPECT_NO_THROW(as_b->exec("ALTER TABLE shared ADD COLUMN w INT"));
  EXPECT_EQ(as_b->first("SELECT COUNT(*) FROM shared"), "2");
}

// ---------------------------------------------------------------------------------------
// Connection failures and TLS
// ---------------------------------------------------------------------------------------

TEST_P(Engine, WrongCaFailsWithKindConnectorAndIsNotRetryable) {
  const auto p = provision("wrongca");
  for (const tls_mode mode : {tls_mode::verify_full, tls_mode::verify_ca}) {
    SCOPED_TRACE(std::string(to_string(mode)));
    server_address wrong = admin_.server;
    wrong.ca_pem = test::other_ca_pem();
    wrong.tls = mode;
    const error e = expect_error([&] { connect_admin(wrong, test::admin_login(admin_)); });
    EXPECT_EQ(e.kind(), error_kind::connector) << e.what();
    EXPECT_FALSE(e.is_retryable());
    if (!postgres()) {
      EXPECT_EQ(e.db_errno(), 2026u);
    }
    EXPECT_NE(std::string(e.what()).find("caCert"), std::string::npos) << e.what();

    const error t = expect_error([&] { verify_login(wrong, {p.names.user_a, p.password_a}, p.names.database); });
    EXPECT_EQ(t.kind(), error_kind::connector);
  }
}

TEST_P(Engine, VerifyCaAcceptsTheRightCa) {
  server_address ca_only = admin_.server;
  ca_only.tls = tls_mode::verify_ca;
  EXPECT_NO_THROW(connect_admin(ca_only, test::admin_login(admin_))->server_version());
}

TEST_P(Engine, RequireModeEncryptsWithoutVerifyingTheCertificate) {
  server_address unverified = admin_.server;
  unverified.tls = tls_mode::require;
  unverified.ca_pem = test::other_ca_pem();  // verification would fail with it
  const tenant_names names = fresh("require");
  const secret pw = generate_password();
  auto session = connect_admin(unverified, test::admin_login(admin_));
  EXPECT_FALSE(session->server_version().empty());
  session->ensure_database(names);
  ASSERT_TRUE(session->ensure_user(names.user_a, pw));
  session->grant(names, names.user_a);

  if (postgres()) {
    // A session the engine opens in require mode, as an account nothing else uses, so
    // its backend is the only one of that user: pg_stat_ssl must show it encrypted. (An
    // admin session opens `postgres`: tenantdb_any_database lets it past the test
    // server's samerole pg_hba.conf.)
    pg_super().exec("GRANT tenantdb_any_database TO \"" + names.user_a + "\"");
    auto own = connect_admin(unverified, {names.user_a, pw});
    const rows r = pg_super().exec(
        "SELECT s.ssl::text, s.version FROM pg_stat_ssl s "
        "JOIN pg_stat_activity a ON a.pid = s.pid WHERE a.usename = $1",
        {names.user_a});
    ASSERT_EQ(r.size(), 1u) << "one session of " << names.user_a;
    EXPECT_EQ(r[0][0], "true") << "the require-mode session is not encrypted";
    EXPECT_TRUE(r[0][1].has_value() && r[0][1]->starts_with("TLS")) << r[0][1].value_or("no TLS version");
  } else {
    // require still makes the account TLS-only (REQUIRE SSL): the server refuses any
    // login of it without TLS, whatever the server's other settings, so the logins
    // below (the engine's verify_login and an admin session as that account, both in
    // require mode) can only succeed encrypted.
    EXPECT_EQ(my_super().value("SELECT ssl_type FROM mysql.user WHERE User = " + quoted(names.user_a)), "ANY");
  }
  EXPECT_NO_THROW(verify_login(unverified, {names.user_a, pw}, names.database));
  if (!postgres()) {
    EXPECT_NO_THROW(connect_admin(unverified, {names.user_a, pw})->server_version());
  }
}

TEST_P(Engine, VerifyLoginFailsForAnAccountWithoutTheGrant) {
  const tenant_names names = fresh("nogrant");
  const secret pw = generate_password();
  auto session = admin();
  session->ensure_database(names);
  ASSERT_TRUE(session->ensure_user(names.user_a, pw));
  const error e = expect_error([&] { verify_login(admin_.server, {names.user_a, pw}, names.database); });
  EXPECT_EQ(e.kind(), error_kind::verification) << e.what();
  if (!postgres()) {
    EXPECT_EQ(e.db_errno(), 1044u);
  }
  session->grant(names, names.user_a);
  EXPECT_NO_THROW(verify_login(admin_.server, {names.user_a, pw}, names.database));
}

TEST_P(Engine, NothingListeningFailsWithKindUnavailableAndIsRetryable) {
  server_address dead = admin_.server;
  dead.port = test::unused_port();
  const error e = expect_error([&] { connect_admin(dead, test::admin_login(admin_), {std::chrono::seconds(3)}); });
  EXPECT_EQ(e.kind(), error_kind::unavailable) << e.what();
  EXPECT_TRUE(e.is_retryable());
}

TEST_P(Engine, WrongAdminPasswordFailsWithKindDatabaseAndNamesTheConnectorKeys) {
  const secret wrong("wrong-admin-password-0815");
  const error e = expect_error([&] { connect_admin(admin_.server, {admin_.admin_user, wrong}); });
  EXPECT_EQ(e.kind(), error_kind::database);
  EXPECT_FALSE(e.is_retryable());
  if (!postgres()) {
    EXPECT_EQ(e.db_errno(), 1045u);
  }
  const std::string what = e.what();
  const std::string product = postgres() ? "PostgreSQL" : "MariaDB";
  EXPECT_NE(what.find(product + " refused the admin login \"" + admin_.admin_user + "\""), std::string::npos) << what;
  EXPECT_NE(what.find("adminUser/adminPassword"), std::string::npos);
  EXPECT_EQ(what.find(wrong.reveal()), std::string::npos);
}

// ---------------------------------------------------------------------------------------
// The admin account
// ---------------------------------------------------------------------------------------

TEST_F(PostgresEngine, AdminProvisionsTenantsAlthoughItIsNotSuperuser) {
  auto su = pg_super();
  ASSERT_EQ(su.value("SELECT rolsuper::text FROM pg_roles WHERE rolname = $1", {admin_.admin_user}), "false");
  auto session = admin();
  EXPECT_NE(session->server_version().find("PostgreSQL 15"), std::string::npos) << session->server_version();
  const auto p = provision("nosuper");
  EXPECT_NO_THROW(verify_login(admin_.server, {p.names.user_b, p.password_b}, p.names.database));
}

TEST_F(MariadbEngine, ServerVersionNamesMariadb) {
  EXPECT_NE(admin()->server_version().find("MariaDB"), std::string::npos);
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
  auto su = pg_super();
  EXPECT_EQ(su.value("SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
                     "JOIN pg_roles g ON g.oid = m.roleid WHERE r.rolname = $1 AND g.rolname = $2",
                     {super_.admin_user, names.database}),
            "0");
}

TEST_F(PostgresEngine, AdminWithoutCreatedbGetsADatabaseErrorNamingThePrivilege) {
  // A separate admin role lacking CREATEDB, created and dropped by the superuser.
  const tenant_names weak = fresh("weak");
  const secret pw = generate_password();
  auto su = pg_super();
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

TEST_F(MariadbEngine, AdminWithoutCreatePrivilegeGetsADatabaseErrorNamingIt) {
  const tenant_names weak = fresh("weak");
  const secret pw = generate_password();
  auto su = my_super();
  su.exec("CREATE USER '" + weak.user_a + "'@'%' IDENTIFIED BY '" + pw.reveal() + "'");
  const error e = expect_error([&] {
    auto session = connect_admin(admin_.server, {weak.user_a, pw});
    session->ensure_database(fresh("weakdb"));
  });
  EXPECT_EQ(e.kind(), error_kind::database) << e.what();
  EXPECT_EQ(e.db_errno(), 1044u);
  EXPECT_NE(std::string(e.what()).find("CREATE"), std::string::npos) << e.what();
}

// A password change leaves sessions open with the old password working; end_sessions is
// how the init's repair of a locked-out account ends them.
TEST_P(Engine, EndSessionsEndsOnlyThatAccountsSessions) {
  const auto p = provision();
  auto a1 = connect_as(p.names.user_a, p.password_a, p.names.database);
  auto a2 = connect_as(p.names.user_a, p.password_a, p.names.database);
  auto b = connect_as(p.names.user_b, p.password_b, p.names.database);
  ASSERT_TRUE(a1->alive() && a2->alive() && b->alive());

  auto session = admin();
  EXPECT_EQ(session->end_sessions(p.names.user_a), 2);
  EXPECT_FALSE(a1->alive());
  EXPECT_FALSE(a2->alive());
  EXPECT_TRUE(b->alive()) << "another account's session was ended";
  if (postgres()) {
    // The admin joined the role only for the call (a rolled-back transaction).
    auto su = pg_super();
    EXPECT_EQ(su.value("SELECT pg_has_role($1, $2, 'MEMBER')", {admin_.admin_user, p.names.user_a}), "f");
  } else {
    auto su = my_super();
    EXPECT_EQ(su.value("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = " + quoted(p.names.user_a)),
              "0");
  }
  // The admin's own session goes on; nothing is left to end.
  EXPECT_EQ(session->end_sessions(p.names.user_a), 0);
  EXPECT_TRUE(session->user_exists(p.names.user_a));
}

// ---------------------------------------------------------------------------------------
// Per-tenant limits
// ---------------------------------------------------------------------------------------

/// Why a login as `user` is refused: libpq's message (PostgreSQL reports the SQLSTATE of
/// a refused connection only in its text) or "errno N"; "" if it is not refused.
std::string login_refusal(bool postgres, const connector& c, const std::string& user, const secret& pw,
                          const std::string& db) {
  if (postgres) return connect_failure(c, user, pw, db);
  const unsigned code = connect_errno(c, user, pw, db);
  return code == 0 ? "" : "errno " + std::to_string(code);
}

TEST_P(Engine, ConnectionLimitRefusesTheSessionBeyondItOnThatAccountOnly) {
  const auto p = provision();
  auto session = admin();
  const tenant_limits three{3, std::chrono::milliseconds(0), std::chrono::milliseconds(0)};
  EXPECT_EQ(session->apply_limits(p.names, p.names.user_a, three),
            std::vector<std::string>{"maxConnections none -> 3"});

  std::vector<std::unique_ptr<sql_client>> open;
  for (int i = 0; i < 3; ++i) open.push_back(connect_as(p.names.user_a, p.password_a, p.names.database));
  for (auto& c : open) ASSERT_TRUE(c->alive());
  const std::string refused = login_refusal(postgres(), admin_, p.names.user_a, p.password_a, p.names.database);
  if (postgres()) {
    EXPECT_NE(refused.find("too many connections for role"), std::string::npos) << refused;  // SQLSTATE 53300
  } else {
    // ER_USER_LIMIT_REACHED: the account's own MAX_USER_CONNECTIONS (1203,
    // ER_TOO_MANY_USER_CONNECTIONS, is the server-wide max_user_connections variable's).
    EXPECT_EQ(refused, "errno 1226");
  }
  // The other login of the tenant has a limit of its own (none here).
  auto b = connect_as(p.names.user_b, p.password_b, p.names.database);
  EXPECT_TRUE(b->alive());

  // Applying the same limits again changes nothing; "none" lifts the limit.
  EXPECT_TRUE(session->apply_limits(p.names, p.names.user_a, three).empty());
  EXPECT_EQ(session->apply_limits(p.names, p.names.user_a, tenant_limits{}),
            std::vector<std::string>{"maxConnections 3 -> none"});
  EXPECT_EQ(login_refusal(postgres(), admin_, p.names.user_a, p.password_a, p.names.database), "");
}

TEST_P(Engine, ApplyLimitsRepairsALimitChangedBehindItsBackAndSaysWhatChanged) {
  const auto p = provision();
  tenant_limits limits = default_limits();
  if (!postgres()) limits.statement_timeout = limits.idle_in_transaction_timeout = std::chrono::milliseconds(0);
  auto session = admin();
  EXPECT_FALSE(session->apply_limits(p.names, p.names.user_b, limits).empty());
  EXPECT_TRUE(session->apply_limits(p.names, p.names.user_b, limits).empty());
  if (postgres()) {
    auto su = pg_super();
    su.exec("ALTER ROLE \"" + p.names.user_b + "\" CONNECTION LIMIT -1");
    su.exec("ALTER ROLE \"" + p.names.user_b + "\" SET statement_timeout = '2h'");
    su.exec("ALTER ROLE \"" + p.names.user_b + "\" RESET idle_in_transaction_session_timeout");
    EXPECT_EQ(session->apply_limits(p.names, p.names.user_b, limits),
              (std::vector<std::string>{"maxConnections none -> 20", "statementTimeout 2h -> 5m",
                                        "idleInTransactionTimeout none -> 1m"}));
    EXPECT_EQ(su.value("SELECT rolconnlimit FROM pg_roles WHERE rolname = $1", {p.names.user_b}), "20");
    // The tenant's sessions run with the settings; the role preset (SET role) is kept.
    pg_client tenant(admin_, p.names.user_b, p.password_b, p.names.database);
    EXPECT_EQ(tenant.value("SHOW statement_timeout"), "5min");
    EXPECT_EQ(tenant.value("SHOW idle_in_transaction_session_timeout"), "1min");
    EXPECT_EQ(tenant.value("SELECT current_user"), p.names.database);
  } else {
    auto su = my_super();
    su.exec("ALTER USER '" + p.names.user_b + "'@'%' WITH MAX_USER_CONNECTIONS 0");
    EXPECT_EQ(session->apply_limits(p.names, p.names.user_b, limits),
              std::vector<std::string>{"maxConnections none -> 20"});
    EXPECT_EQ(su.value("SELECT max_user_connections FROM mysql.user WHERE User = " + quoted(p.names.user_b)), "20");
  }
  EXPECT_TRUE(session->apply_limits(p.names, p.names.user_b, limits).empty());
}

TEST_P(Engine, LimitsOutOfRangeAreRejectedBeforeAnySql) {
  const auto p = provision();
  auto session = admin();
  for (const int n : {-1, 1, 10001}) {
    const error e = expect_error([&] {
      session->apply_limits(p.names, p.names.user_a, {n, std::chrono::milliseconds(0), std::chrono::milliseconds(0)});
    });
    EXPECT_EQ(e.kind(), error_kind::internal) << n;
  }
  const error e = expect_error([&] {
    session->apply_limits(p.names, p.names.user_a, {0, std::chrono::milliseconds(-5), std::chrono::milliseconds(0)});
  });
  EXPECT_EQ(e.kind(), error_kind::internal);
  EXPECT_EQ(login_refusal(postgres(), admin_, p.names.user_a, p.password_a, p.names.database), "");
  if (postgres()) {
    EXPECT_EQ(pg_super().value("SELECT rolconnlimit FROM pg_roles WHERE rolname = $1", {p.names.user_a}), "-1");
  }
}

TEST_F(PostgresEngine, StatementTimeoutCancelsALongStatementAndAnIdleTransactionIsEnded) {
  const auto p = provision();
  const tenant_limits limits{0, std::chrono::seconds(1), std::chrono::seconds(1)};
  EXPECT_EQ(admin()->apply_limits(p.names, p.names.user_a, limits).size(), 2U);

  pg_client busy(admin_, p.names.user_a, p.password_a, p.names.database);
  EXPECT_EQ(busy.sqlstate_of("SELECT pg_sleep(5)"), "57014");  // query_canceled
  EXPECT_EQ(busy.value("SELECT 1"), "1");                      // the session goes on

  pg_client idle(admin_, p.names.user_a, p.password_a, p.names.database);
  const std::string pid = idle.value("SELECT pg_backend_pid()");
  idle.exec("BEGIN");
  idle.exec("SELECT 1");
  // The server ends the session once it has sat idle in the transaction for 1 s.
  auto su = pg_super();
  EXPECT_TRUE(test::eventually([&] {
    return su.value("SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", {pid}) == "0";
  })) << "the idle transaction's session is still there";
  // (Over TLS libpq loses the server's last words, SQLSTATE 25P03: the session is gone.)
  EXPECT_FALSE(idle.alive());
  // The other session sat idle as long, outside a transaction: it is not ended.
  EXPECT_EQ(busy.value("SELECT 1"), "1");
}

}  // namespace
}  // namespace tenantdb
