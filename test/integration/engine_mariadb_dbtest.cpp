// The MySQL/MariaDB engine against a real MariaDB 10.11 (test/tools/testdb.sh) that
// requires TLS on every TCP connection.

#include <gtest/gtest.h>
#include <mysql.h>

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

const bool server_logs = test::dump_server_logs_on_failure({"mariadb"});

// ---------------------------------------------------------------------------------------
// A plain Connector/C client for checking what the engine did, independent of it.
// ---------------------------------------------------------------------------------------

struct sql_failure : std::runtime_error {
  sql_failure(const std::string& message, unsigned code) : std::runtime_error(message), errnum(code) {}
  unsigned errnum;
};

using rows = std::vector<std::vector<std::optional<std::string>>>;

class my_client {
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
      throw sql_failure(mysql_error(m), mysql_errno(m));
  }

  rows exec(const std::string& sql) {
    MYSQL* m = conn_.get();
    if (mysql_real_query(m, sql.data(), static_cast<unsigned long>(sql.size())) != 0)
      throw sql_failure(mysql_error(m), mysql_errno(m));
    rows out;
    std::unique_ptr<MYSQL_RES, decltype(&mysql_free_result)> res(mysql_store_result(m), &mysql_free_result);
    if (!res) {
      if (mysql_field_count(m) != 0) throw sql_failure(mysql_error(m), mysql_errno(m));
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

  std::optional<std::string> value(const std::string& sql) {
    const rows r = exec(sql);
    if (r.empty() || r[0].empty()) return std::nullopt;
    return r[0][0];
  }

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

/// The errno a login as `user` fails with, or 0.
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

// ---------------------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------------------

class MariadbEngine : public ::testing::Test {
protected:
  void SetUp() override {
    admin_ = test::load_connector("mariadb");
    super_ = test::load_connector("mariadb-super");
    ASSERT_EQ(admin_.server.type, engine_type::mysql);
  }

  void TearDown() override {
    try {
      my_client su(super_, super_.admin_user, super_.admin_password);
      for (const auto& names : created_) {
        su.exec("DROP DATABASE IF EXISTS `" + names.database + "`");
        su.exec("DROP USER IF EXISTS '" + names.user_a + "'@'%', '" + names.user_b + "'@'%'");
      }
      for (const auto& db : extra_databases_) su.exec("DROP DATABASE IF EXISTS `" + db + "`");
    } catch (const std::exception& e) {
      std::cerr << "cleanup failed: " << e.what() << '\n';
    }
  }

  tenant_names fresh(std::string_view prefix = "myt") {
    return track(derive_names(test::unique_tenant(prefix), "tdbt_"));
  }
  tenant_names track(tenant_names names) {
    created_.push_back(names);
    return names;
  }

  std::unique_ptr<admin_session> admin() { return connect_admin(admin_.server, test::admin_login(admin_)); }
  my_client super_client() { return my_client(super_, super_.admin_user, super_.admin_password); }

  struct provisioned {
    tenant_names names;
    secret password_a;
    secret password_b;
  };
  provisioned provision(std::string_view prefix = "myt") {
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
  std::vector<std::string> extra_databases_;
};

std::string quoted(const std::string& s) {
  return "'" + s + "'";
}

// ---------------------------------------------------------------------------------------
// Idempotence and concurrency
// ---------------------------------------------------------------------------------------

TEST_F(MariadbEngine, EnsureCallsTwiceAreNoOpsAndReportCreatedOnlyTheFirstTime) {
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
  EXPECT_NO_THROW(verify_login(admin_.server, {names.user_a, first}, names.database));

  auto su = super_client();
  EXPECT_EQ(su.value("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = " + quoted(names.database)),
            "1");
  EXPECT_EQ(su.value("SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = " +
                     quoted(names.database)),
            "utf8mb4");
  EXPECT_EQ(su.value("SELECT COUNT(*) FROM mysql.user WHERE User = " + quoted(names.user_a)), "1");
}

TEST_F(MariadbEngine, TwoConcurrentProvisioningsOfOneTenantBothSucceedWithOneDatabaseAndOneAccount) {
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
    EXPECT_EQ(
        su.value("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = " + quoted(names.database)),
        "1");
    EXPECT_EQ(su.value("SELECT COUNT(*) FROM mysql.user WHERE User = " + quoted(names.user_a)), "1");
    const secret pw = generate_password();
    admin()->set_password(names.user_a, pw);
    EXPECT_NO_THROW(verify_login(admin_.server, {names.user_a, pw}, names.database));
  }
}

// ---------------------------------------------------------------------------------------
// Passwords
// ---------------------------------------------------------------------------------------

TEST_F(MariadbEngine, SetPasswordThenVerifyLoginSucceeds) {
  const auto p = provision();
  const secret next = generate_password();
  admin()->set_password(p.names.user_a, next);
  EXPECT_NO_THROW(verify_login(admin_.server, {p.names.user_a, next}, p.names.database));
  const error e = expect_error([&] { verify_login(admin_.server, {p.names.user_a, p.password_a}, p.names.database); });
  EXPECT_EQ(e.kind(), error_kind::verification);
}

TEST_F(MariadbEngine, VerifyLoginWithAWrongPasswordFailsWithKindVerification) {
  const auto p = provision();
  const secret wrong("definitely-not-the-password-4711");
  const error e = expect_error([&] { verify_login(admin_.server, {p.names.user_a, wrong}, p.names.database); });
  EXPECT_EQ(e.kind(), error_kind::verification);
  EXPECT_FALSE(e.is_retryable());
  EXPECT_EQ(e.db_errno(), 1045u);
  EXPECT_EQ(std::string(e.what()).find(wrong.reveal()), std::string::npos);
}

TEST_F(MariadbEngine, ChangeOwnPasswordWorksWithoutTheAdminAndTheOldPasswordIsRefusedAfterwards) {
  const auto p = provision();
  const secret next = generate_password();
  change_own_password(admin_.server, {p.names.user_a, p.password_a}, p.names.database, next);
  EXPECT_NO_THROW(verify_login(admin_.server, {p.names.user_a, next}, p.names.database));
  const error e = expect_error([&] { verify_login(admin_.server, {p.names.user_a, p.password_a}, p.names.database); });
  EXPECT_EQ(e.kind(), error_kind::verification);
  EXPECT_NO_THROW(verify_login(admin_.server, {p.names.user_b, p.password_b}, p.names.database));
}

TEST_F(MariadbEngine, HostilePasswordsRoundTripThroughSetPasswordVerifyLoginAndChangeOwnPassword) {
  const auto p = provision();
  const std::vector<std::string> hostile = {
      "it's a 'quoted' password",
      "double \"quotes\" and back\\slash\\",
      "back`tick` and $$dollar$$",
      "percent % and under_score _%_",
      "semi; colon'); DROP USER tenantdb_admin; --",
      "non-ASCII: äöü ß € 日本語 😀",
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
  const secret last(hostile.back());
  const secret next("tenant's own \"new\" \\ password ✓ %_");
  ASSERT_NO_THROW(change_own_password(admin_.server, {p.names.user_a, last}, p.names.database, next));
  EXPECT_NO_THROW(verify_login(admin_.server, {p.names.user_a, next}, p.names.database));
}

TEST_F(MariadbEngine, PasswordsNeverAppearInErrorMessages) {
  const tenant_names names = fresh();
  const secret pw("VisibleSecret-'quote'-12345");
  auto session = admin();
  const error e = expect_error([&] { session->set_password(names.user_a, pw); });  // no such account
  EXPECT_EQ(e.kind(), error_kind::database);
  EXPECT_NE(e.db_errno(), 0u);
  EXPECT_EQ(std::string(e.what()).find("VisibleSecret"), std::string::npos) << e.what();
}

TEST_F(MariadbEngine, AccountsRequireTls) {
  const auto p = provision();
  auto su = super_client();
  EXPECT_EQ(su.value("SELECT ssl_type FROM mysql.user WHERE User = " + quoted(p.names.user_a) + " AND Host = '%'"),
            "ANY");
}

// ---------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------

TEST_F(MariadbEngine, TenantsWithHostileNamesGetWorkingDatabasesAndAccounts) {
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

TEST_F(MariadbEngine, NamesOutsideTheAllowListAreRejectedBeforeAnySql) {
  auto session = admin();
  const secret pw = generate_password();
  const std::vector<std::string> bad_names = {"Robert'; --", "UPPER", "x`y", "1abc", "", "a%", std::string(65, 'a')};
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

TEST_F(MariadbEngine, TenantCannotConnectToOrUseAnotherTenantsDatabase) {
  const auto a = provision("isoa");
  const auto b = provision("isob");
  const error e = expect_error([&] { verify_login(admin_.server, {a.names.user_a, a.password_a}, b.names.database); });
  EXPECT_EQ(e.kind(), error_kind::verification);
  EXPECT_EQ(e.db_errno(), 1044u);
  EXPECT_EQ(connect_errno(admin_, a.names.user_b, a.password_b, b.names.database), 1044u);
  my_client as_a(admin_, a.names.user_a, a.password_a, a.names.database);
  EXPECT_EQ(as_a.errno_of("USE `" + b.names.database + "`"), 1044u);
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
  auto su = super_client();
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

TEST_F(MariadbEngine, TenantCannotCreateDatabasesOrUsers) {
  const auto a = provision("isoa");
  my_client as_a(admin_, a.names.user_a, a.password_a, a.names.database);
  EXPECT_EQ(as_a.errno_of("CREATE DATABASE tdbt_should_not_exist"), 1044u);
  EXPECT_EQ(as_a.errno_of("CREATE USER 'tdbt_should_not_exist'@'%'"), 1227u);
  EXPECT_EQ(as_a.errno_of("GRANT ALL ON *.* TO '" + a.names.user_a + "'@'%'"), 1045u);
  EXPECT_NE(as_a.errno_of("GRANT SELECT ON `" + a.names.database + "`.* TO '" + a.names.user_b + "'@'%'"), 0u);
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

TEST_F(MariadbEngine, TableCreatedByOneLoginIsReadableAndWritableByTheOther) {
  const auto p = provision("dual");
  {
    my_client as_a(admin_, p.names.user_a, p.password_a, p.names.database);
    as_a.exec("CREATE TABLE shared (id INT PRIMARY KEY, v TEXT)");
    as_a.exec("INSERT INTO shared VALUES (1, 'from a')");
  }
  my_client as_b(admin_, p.names.user_b, p.password_b, p.names.database);
  EXPECT_EQ(as_b.value("SELECT v FROM shared WHERE id = 1"), "from a");
  EXPECT_EQ(as_b.errno_of("INSERT INTO shared VALUES (2, 'from b')"), 0u);
  EXPECT_EQ(as_b.errno_of("ALTER TABLE shared ADD COLUMN w INT"), 0u);
}

// ---------------------------------------------------------------------------------------
// Connection failures
// ---------------------------------------------------------------------------------------

TEST_F(MariadbEngine, WrongCaFailsWithKindConnectorAndIsNotRetryable) {
  const auto p = provision("wrongca");
  for (const tls_mode mode : {tls_mode::verify_full, tls_mode::verify_ca}) {
    SCOPED_TRACE(std::string(to_string(mode)));
    server_address wrong = admin_.server;
    wrong.ca_pem = test::other_ca_pem();
    wrong.tls = mode;
    const error e = expect_error([&] { connect_admin(wrong, test::admin_login(admin_)); });
    EXPECT_EQ(e.kind(), error_kind::connector) << e.what();
    EXPECT_FALSE(e.is_retryable());
    EXPECT_EQ(e.db_errno(), 2026u);
    EXPECT_NE(std::string(e.what()).find("caCert"), std::string::npos) << e.what();

    const error t = expect_error([&] { verify_login(wrong, {p.names.user_a, p.password_a}, p.names.database); });
    EXPECT_EQ(t.kind(), error_kind::connector);
  }
}

TEST_F(MariadbEngine, VerifyCaAcceptsTheRightCa) {
  server_address ca_only = admin_.server;
  ca_only.tls = tls_mode::verify_ca;
  EXPECT_NO_THROW(connect_admin(ca_only, test::admin_login(admin_))->server_version());
}

TEST_F(MariadbEngine, RequireModeEncryptsWithoutVerifyingTheCertificate) {
  server_address unverified = admin_.server;
  unverified.tls = tls_mode::require;
  unverified.ca_pem = test::other_ca_pem();
  const tenant_names names = fresh("require");
  const secret pw = generate_password();
  auto session = connect_admin(unverified, test::admin_login(admin_));
  session->ensure_database(names);
  ASSERT_TRUE(session->ensure_user(names.user_a, pw));
  session->grant(names, names.user_a);
  EXPECT_NO_THROW(verify_login(unverified, {names.user_a, pw}, names.database));
  // require still makes the account TLS-only.
  EXPECT_EQ(super_client().value("SELECT ssl_type FROM mysql.user WHERE User = " + quoted(names.user_a)), "ANY");
}

TEST_F(MariadbEngine, VerifyLoginFailsForAnAccountWithoutTheGrant) {
  const tenant_names names = fresh("nogrant");
  const secret pw = generate_password();
  auto session = admin();
  session->ensure_database(names);
  ASSERT_TRUE(session->ensure_user(names.user_a, pw));
  const error e = expect_error([&] { verify_login(admin_.server, {names.user_a, pw}, names.database); });
  EXPECT_EQ(e.kind(), error_kind::verification) << e.what();
  EXPECT_EQ(e.db_errno(), 1044u);
  session->grant(names, names.user_a);
  EXPECT_NO_THROW(verify_login(admin_.server, {names.user_a, pw}, names.database));
}

TEST_F(MariadbEngine, NothingListeningFailsWithKindUnavailableAndIsRetryable) {
  server_address dead = admin_.server;
  dead.port = test::unused_port();
  const error e = expect_error([&] { connect_admin(dead, test::admin_login(admin_), {std::chrono::seconds(3)}); });
  EXPECT_EQ(e.kind(), error_kind::unavailable) << e.what();
  EXPECT_TRUE(e.is_retryable());
}

TEST_F(MariadbEngine, WrongAdminPasswordFailsWithKindDatabaseAndNamesTheConnectorKeys) {
  const secret wrong("wrong-admin-password-0815");
  const error e = expect_error([&] { connect_admin(admin_.server, {admin_.admin_user, wrong}); });
  EXPECT_EQ(e.kind(), error_kind::database);
  EXPECT_FALSE(e.is_retryable());
  EXPECT_EQ(e.db_errno(), 1045u);
  const std::string what = e.what();
  EXPECT_NE(what.find("MariaDB refused the admin login \"" + admin_.admin_user + "\""), std::string::npos) << what;
  EXPECT_NE(what.find("adminUser/adminPassword"), std::string::npos);
  EXPECT_EQ(what.find(wrong.reveal()), std::string::npos);
}

TEST_F(MariadbEngine, AdminWithoutCreatePrivilegeGetsADatabaseErrorNamingIt) {
  const tenant_names weak = fresh("weak");
  const secret pw = generate_password();
  auto su = super_client();
  su.exec("CREATE USER '" + weak.user_a + "'@'%' IDENTIFIED BY '" + pw.reveal() + "'");
  const error e = expect_error([&] {
    auto session = connect_admin(admin_.server, {weak.user_a, pw});
    session->ensure_database(fresh("weakdb"));
  });
  EXPECT_EQ(e.kind(), error_kind::database) << e.what();
  EXPECT_EQ(e.db_errno(), 1044u);
  EXPECT_NE(std::string(e.what()).find("CREATE"), std::string::npos) << e.what();
}

TEST_F(MariadbEngine, ServerVersionNamesMariadb) {
  EXPECT_NE(admin()->server_version().find("MariaDB"), std::string::npos);
}

// A password change leaves sessions open with the old password working; end_sessions is
// how the init's repair of a locked-out account ends them.
TEST_F(MariadbEngine, EndSessionsEndsOnlyThatAccountsSessions) {
  const auto p = provision();
  const auto alive = [](my_client& c) {
    try {
      return c.value("SELECT 1") == "1";
    } catch (const sql_failure&) {
      return false;
    }
  };
  my_client a1(admin_, p.names.user_a, p.password_a, p.names.database);
  my_client a2(admin_, p.names.user_a, p.password_a, p.names.database);
  my_client b(admin_, p.names.user_b, p.password_b, p.names.database);
  ASSERT_TRUE(alive(a1) && alive(a2) && alive(b));

  auto session = admin();
  EXPECT_EQ(session->end_sessions(p.names.user_a), 2);
  EXPECT_FALSE(alive(a1));
  EXPECT_FALSE(alive(a2));
  EXPECT_TRUE(alive(b)) << "another account's session was ended";
  auto su = super_client();
  EXPECT_EQ(su.value("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = " + quoted(p.names.user_a)),
            "0");
  // The admin's own session goes on; nothing is left to end.
  EXPECT_EQ(session->end_sessions(p.names.user_a), 0);
  EXPECT_TRUE(session->user_exists(p.names.user_a));
}

}  // namespace
}  // namespace tenantdb
