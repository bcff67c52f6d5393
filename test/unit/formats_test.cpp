// The extra credential file formats: exact output for ordinary values, and hostile values
// read back by the real parsers (libpq's password file lookup, MariaDB Connector/C's
// option-file reader, /bin/sh, a JSON parser), so escaping is checked against what
// clients do rather than against our own idea of it.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <libpq-fe.h>
#include <mysql.h>
#include <rapidjson/document.h>

#include "expect_error.hpp"
#include "process.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/formats.hpp"

namespace fs = std::filesystem;
using namespace tenantdb;

namespace {

credential_data make_data(const std::string& host, const std::string& port, const std::string& db,
                          const std::string& user, const std::string& password, const std::string& type = "postgres") {
  credential_data d;
  d[keys::host] = secret(host);
  d[keys::port] = secret(port);
  d[keys::database] = secret(db);
  d[keys::user] = secret(user);
  d[keys::password] = secret(password);
  d[keys::type] = secret(type);
  d[keys::ssl_mode] = secret(std::string("verify-full"));
  return d;
}

std::string render(credential_format f, const credential_data& d, const std::string& ca_file = {}) {
  return render_format(f, d, ca_file).reveal();
}

// Passwords and names that break naive quoting in one format or another.
const std::vector<std::string> hostile = {
    "a:b\\c",
    "*",
    "#hash",
    "it's \"quoted\"",
    " lead and trail ",
    "$(touch /tmp/x)`id`$HOME",
    "back\\",
    "semi;colon=eq",
    "new\nline",
    "tab\there",
    "per%cent&amp?q=1#f",
    "ünïcødé",
    "'",
    "\\",
    "\"",
};

class TempDir : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tenantdb-formats-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& content, fs::perms mode = fs::perms::owner_read) {
    const fs::path p = dir_ / name;
    fs::remove(p);
    std::ofstream(p, std::ios::binary) << content;
    fs::permissions(p, mode);
    return p;
  }

  fs::path dir_;
};

TEST(Formats, ParsesTheFormatList) {
  EXPECT_TRUE(parse_formats("").empty());
  const auto all = parse_formats("pgpass, mycnf,env,json,pgpass");
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0], credential_format::pgpass);
  EXPECT_EQ(all[1], credential_format::mycnf);
  EXPECT_EQ(all[2], credential_format::env);
  EXPECT_EQ(all[3], credential_format::json);
  EXPECT_EQ(parse_formats("my.cnf").at(0), credential_format::mycnf);
  EXPECT_TENANTDB_ERROR(parse_formats("pgpass,yaml"), error_kind::usage, "--formats");
  EXPECT_EQ(format_file_name(credential_format::pgpass), "pgpass");
  EXPECT_EQ(format_file_name(credential_format::mycnf), "my.cnf");
  EXPECT_EQ(format_file_name(credential_format::env), "credentials.env");
  EXPECT_EQ(format_file_name(credential_format::json), "credentials.json");
}

TEST(Formats, PgpassLineForOrdinaryValues) {
  const auto d = make_data("db.example.com", "5432", "vcluster_a_x", "vcluster_a_x_a", "Secr3t");
  EXPECT_EQ(render(credential_format::pgpass, d), "db.example.com:5432:vcluster_a_x:vcluster_a_x_a:Secr3t\n");
}

TEST(Formats, PgpassEscapesSeparatorsBackslashesWildcardsAndComments) {
  EXPECT_EQ(pgpass_escape("a:b\\c"), "a\\:b\\\\c");
  EXPECT_EQ(pgpass_escape("*"), "\\*");
  EXPECT_EQ(pgpass_escape("a*"), "a*");
  EXPECT_EQ(pgpass_escape("#x#"), "\\#x#");
  const auto d = make_data("#h:ost", "5432", "*", "u:\\", "p:w\\");
  EXPECT_EQ(render(credential_format::pgpass, d), "\\#h\\:ost:5432:\\*:u\\:\\\\:p\\:w\\\\\n");
}

TEST(Formats, PgpassRefusesLineBreaksAndNulInsteadOfWritingABrokenFile) {
  EXPECT_TENANTDB_ERROR(render(credential_format::pgpass, make_data("h", "1", "d", "u", "a\nb")), error_kind::output,
                        "pgpass");
  EXPECT_TENANTDB_ERROR(render(credential_format::pgpass, make_data("h", "1", "d", "u", "a\rb")), error_kind::output,
                        "pgpass");
  EXPECT_TENANTDB_ERROR(render(credential_format::pgpass, make_data("h", "1", "d", "u", std::string("a\0b", 3))),
                        error_kind::output, "pgpass");
  // The message names the key, never the value.
  try {
    render(credential_format::pgpass, make_data("h", "1", "d", "u", "s3cr3t\nvalue"));
  } catch (const error& e) {
    EXPECT_EQ(std::string(e.what()).find("s3cr3t"), std::string::npos) << e.what();
  }
}

TEST(Formats, MissingKeysAreNamed) {
  auto d = make_data("h", "1", "d", "u", "p");
  d.erase(keys::password);
  for (auto f : {credential_format::pgpass, credential_format::mycnf, credential_format::env})
    EXPECT_TENANTDB_ERROR(render(f, d), error_kind::output, std::string(format_file_name(f)));
}

TEST_F(TempDir, PgpassIsReadBackByLibpqForHostileValues) {
  for (const auto& value : hostile) {
    if (value.find_first_of("\r\n") != std::string::npos) continue;  // refused, tested above
    // libpq treats a comma in host as a host list and a leading '/' as a socket directory.
    const std::string host = "db-" + std::to_string(value.size()) + ".x:y\\z";
    const auto d = make_data(host, "5432", "db " + value, "user" + value, "pw" + value);
    const fs::path file = write("pgpass", render(credential_format::pgpass, d));
    const std::string db = "db " + value;
    const std::string user = "user" + value;
    const char* keys[] = {"host", "hostaddr", "port", "dbname", "user", "passfile", "connect_timeout", nullptr};
    const char* values[] = {host.c_str(), "127.0.0.1", "5432", db.c_str(), user.c_str(), file.c_str(), "1", nullptr};
    PGconn* conn = PQconnectStartParams(keys, values, 0);
    ASSERT_NE(conn, nullptr);
    EXPECT_EQ(std::string(PQpass(conn)), "pw" + value) << "value: " << value;
    PQfinish(conn);
  }
}

TEST_F(TempDir, PgpassWildcardIsNotAWildcard) {
  // A database literally named "*" must not give its password to every database.
  const fs::path file = write("pgpass", render(credential_format::pgpass, make_data("h", "5432", "*", "u", "pw")));
  const char* keys[] = {"host", "hostaddr", "port", "dbname", "user", "passfile", nullptr};
  const char* other[] = {"h", "127.0.0.1", "5432", "otherdb", "u", file.c_str(), nullptr};
  PGconn* conn = PQconnectStartParams(keys, other, 0);
  EXPECT_EQ(std::string(PQpass(conn)), "");
  PQfinish(conn);
  const char* star[] = {"h", "127.0.0.1", "5432", "*", "u", file.c_str(), nullptr};
  conn = PQconnectStartParams(keys, star, 0);
  EXPECT_EQ(std::string(PQpass(conn)), "pw");
  PQfinish(conn);
}

TEST_F(TempDir, PgpassKeepsThePreviousAccountDuringGrace) {
  const auto d = make_data("h", "5432", "d", "app_b", "new:pw");
  const std::optional<login> previous = login{"app_a", secret(std::string("old\\pw"))};
  const std::string text = render(credential_format::pgpass, d);
  EXPECT_EQ(render_format(credential_format::pgpass, d, "", previous).reveal(),
            "h:5432:d:app_b:new\\:pw\nh:5432:d:app_a:old\\\\pw\n");
  // The other formats carry one credential only.
  EXPECT_EQ(render_format(credential_format::env, d, "", previous).reveal(), render(credential_format::env, d));
  const fs::path file = write("pgpass", render_format(credential_format::pgpass, d, "", previous).reveal());
  for (const auto& [user, password] : {std::pair<std::string, std::string>{"app_b", "new:pw"}, {"app_a", "old\\pw"}}) {
    const char* keys[] = {"host", "hostaddr", "port", "dbname", "user", "passfile", nullptr};
    const char* values[] = {"h", "127.0.0.1", "5432", "d", user.c_str(), file.c_str(), nullptr};
    PGconn* conn = PQconnectStartParams(keys, values, 0);
    EXPECT_EQ(std::string(PQpass(conn)), password) << user;
    PQfinish(conn);
  }
  (void)text;
}

TEST(Formats, MyCnfForOrdinaryValues) {
  auto d = make_data("db.example.com", "3306", "vcluster_a_x", "vcluster_a_x_a", "Secr3t", "mariadb");
  EXPECT_EQ(render(credential_format::mycnf, d, "/creds/caCert"),
            "[client]\nuser=\"vcluster_a_x_a\"\npassword=\"Secr3t\"\nhost=\"db.example.com\"\nport=3306\n"
            "database=\"vcluster_a_x\"\n");
  d[keys::ca_cert] = secret(std::string("-----BEGIN CERTIFICATE-----\n"));
  EXPECT_NE(render(credential_format::mycnf, d, "/creds/caCert").find("ssl-ca=\"/creds/caCert\"\n"), std::string::npos);
}

TEST(Formats, MyCnfQuotesAndEscapes) {
  EXPECT_EQ(mycnf_quote("a\"b\\c\nd\te#f'g"), "\"a\\\"b\\\\c\\nd\\te#f'g\"");
  EXPECT_TENANTDB_ERROR(render(credential_format::mycnf, make_data("h", "3306", "d", "u", std::string("a\0b", 3))),
                        error_kind::output, "my.cnf");
  EXPECT_TENANTDB_ERROR(render(credential_format::mycnf, make_data("h", "33x6", "d", "u", "p")), error_kind::output,
                        "my.cnf");
}

TEST_F(TempDir, MyCnfIsReadBackByConnectorCForHostileValues) {
  for (const auto& value : hostile) {
    auto d = make_data("127.0.0.1", "1", "db" + value, "u" + value, value, "mariadb");
    d[keys::ca_cert] = secret(std::string("pem"));
    const std::string ca_path = (dir_ / ("ca " + std::to_string(value.size()))).string();
    const fs::path file = write("my.cnf", render(credential_format::mycnf, d, ca_path));
    MYSQL* m = mysql_init(nullptr);
    ASSERT_NE(m, nullptr);
    mysql_optionsv(m, MYSQL_READ_DEFAULT_FILE, file.c_str());
    unsigned timeout = 1;
    mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    // Port 1 refuses at once; CLIENT_REMEMBER_OPTIONS keeps what the file set.
    EXPECT_EQ(mysql_real_connect(m, nullptr, nullptr, nullptr, nullptr, 0, nullptr, CLIENT_REMEMBER_OPTIONS), nullptr);
    const auto str = [](const char* s) { return s == nullptr ? std::string("<null>") : std::string(s); };
    EXPECT_EQ(str(m->options.password), value) << "value: " << value;
    EXPECT_EQ(str(m->options.user), "u" + value);
    EXPECT_EQ(str(m->options.db), "db" + value);
    EXPECT_EQ(str(m->options.host), "127.0.0.1");
    EXPECT_EQ(m->options.port, 1u);
    EXPECT_EQ(str(m->options.ssl_ca), ca_path);
    mysql_close(m);
  }
}

TEST(Formats, EnvFileForOrdinaryValues) {
  const auto d = make_data("db.example.com", "5432", "app", "app_a", "Secr3t");
  EXPECT_EQ(render(credential_format::env, d),
            "DB_HOST='db.example.com'\nDB_PORT='5432'\nDB_NAME='app'\nDB_USER='app_a'\nDB_PASSWORD='Secr3t'\n"
            "DATABASE_URL='postgres://app_a:Secr3t@db.example.com:5432/app?sslmode=verify-full'\n");
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
}

TEST_F(TempDir, EnvFileSourcedByShShowsHostileValuesVerbatimAndRunsNothing) {
  for (const auto& value : hostile) {
    const auto d = make_data("h", "5432", "d" + value, "u", value);
    const fs::path file = write("credentials.env", render(credential_format::env, d));
    const fs::path marker = "/tmp/x";
    const bool marker_existed = fs::exists(marker);
    const auto r =
        test::run_process({"/bin/sh", "-c", ". \"$1\" && printf '%s|%s|%s' \"$DB_PASSWORD\" \"$DB_NAME\" \"$DB_PORT\"",
                           "sh", file.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, value + "|d" + value + "|5432") << "value: " << value;
    if (!marker_existed) {
      EXPECT_FALSE(fs::exists(marker)) << "sourcing ran a command";
    }
  }
}

TEST(Formats, DatabaseUrlEncodesAndBracketsIPv6) {
  auto d = make_data("::1", "5432", "my db", "us@er", "p:a/s?s#");
  d[keys::ca_cert] = secret(std::string("pem"));
  EXPECT_EQ(database_url(d, "/creds/caCert").reveal(),
            "postgres://us%40er:p%3Aa%2Fs%3Fs%23@[::1]:5432/my%20db?sslmode=verify-full&sslrootcert=%2Fcreds%2FcaCert");
  const auto m = make_data("db", "3306", "app", "u", "p@ss", "mariadb");
  EXPECT_EQ(database_url(m, "/creds/caCert").reveal(), "mysql://u:p%40ss@db:3306/app");
  const auto bad_host = make_data("evil@host/x", "1", "d", "u", "p");
  EXPECT_EQ(database_url(bad_host, "").reveal(), "postgres://u:p@evil%40host%2Fx:1/d?sslmode=verify-full");
}

TEST(Formats, TheTypeFollowsTheOneEngineRule) {
  // Any case, as in the connector (parse_engine_type).
  EXPECT_EQ(database_url(make_data("db", "3306", "app", "u", "p", "MariaDB"), "").reveal(), "mysql://u:p@db:3306/app");
  EXPECT_EQ(database_url(make_data("db", "5432", "app", "u", "p", "PostgreSQL"), "").reveal(),
            "postgres://u:p@db:5432/app?sslmode=verify-full");
  // Missing or unknown: refused and named, never guessed.
  auto missing = make_data("db", "5432", "app", "u", "p");
  missing.erase(keys::type);
  EXPECT_TENANTDB_ERROR(render(credential_format::env, missing), error_kind::output, "credentials.env");
  EXPECT_TENANTDB_ERROR(render(credential_format::env, make_data("db", "5432", "app", "u", "p", "oracle")),
                        error_kind::output, "credentials.env");
  // pgpass and my.cnf do not name the engine and do not need it.
  EXPECT_EQ(render(credential_format::pgpass, missing), "db:5432:app:u:p\n");
}

TEST(Formats, JsonHoldsTheWorkloadKeys) {
  for (const auto& value : hostile) {
    const auto d = make_data("h", "5432", "d", "u", value);
    const std::string text = render(credential_format::json, d);
    rapidjson::Document doc;
    doc.Parse(text.data(), text.size());
    ASSERT_FALSE(doc.HasParseError()) << text;
    ASSERT_TRUE(doc.IsObject());
    EXPECT_EQ(std::string(doc["password"].GetString(), doc["password"].GetStringLength()), value);
    EXPECT_STREQ(doc["host"].GetString(), "h");
    EXPECT_STREQ(doc["port"].GetString(), "5432");
  }
}

TEST(Formats, WithFormatsAddsOneFilePerFormatAndKeepsTheKeys) {
  const auto d = make_data("h", "5432", "d", "u", "p");
  const auto out = with_formats(d, parse_formats("pgpass,mycnf,env,json"), "/c/caCert");
  EXPECT_EQ(out.size(), d.size() + 4);
  for (const auto& [k, v] : d) EXPECT_TRUE(out.at(k) == v) << k;
  EXPECT_EQ(out.at("pgpass").reveal(), "h:5432:d:u:p\n");
  EXPECT_EQ(out.count("my.cnf"), 1u);
  EXPECT_EQ(out.count("credentials.env"), 1u);
  EXPECT_EQ(out.count("credentials.json"), 1u);
}

TEST_F(TempDir, PublishedFormatsSwitchInTheSameGeneration) {
  const fs::path out = dir_ / "out";
  directory_options opts;
  opts.file_mode = 0400;
  publish_directory(out, with_formats(make_data("h", "5432", "d", "u", "one"), {credential_format::pgpass}, ""), opts);
  const auto first = read_directory(out);
  EXPECT_EQ(first.at("pgpass").reveal(), "h:5432:d:u:one\n");
  publish_directory(out, with_formats(make_data("h", "5432", "d", "u", "two"), {credential_format::pgpass}, ""), opts);
  const auto second = read_directory(out);
  EXPECT_EQ(second.at("password").reveal(), "two");
  EXPECT_EQ(second.at("pgpass").reveal(), "h:5432:d:u:two\n");
  EXPECT_TRUE(fs::is_symlink(out / "pgpass"));
}

}  // namespace
