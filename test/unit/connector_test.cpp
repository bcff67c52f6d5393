#include "tenantdb/connector.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include "expect_error.hpp"
#include "temp_dir.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/log.hpp"

namespace tenantdb {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;

// Distinctive enough that finding it in a message cannot be a coincidence.
const std::string kPassword = "Zq7-pw-DISTINCTIVE-9f31c";

// ---------------------------------------------------------------------------------------
// Fixtures

using test::temp_dir;

void write_file(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
  ASSERT_TRUE(out.good()) << path;
}

std::string base64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// A fresh self-signed certificate (EC P-256), in PEM.
std::string make_certificate_pem(const std::string& common_name) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"),
                                                          &EVP_PKEY_free);
  if (!key) throw std::runtime_error("keygen failed");
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), &X509_free);
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                             -1, 0);
  X509_set_issuer_name(cert.get(), name);
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) throw std::runtime_error("sign failed");
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  PEM_write_bio_X509(bio.get(), cert.get());
  std::string pem(static_cast<std::size_t>(BIO_pending(bio.get())), '\0');
  BIO_read(bio.get(), pem.data(), static_cast<int>(pem.size()));
  return pem;
}

const std::string& test_ca() {
  static const std::string pem = make_certificate_pem("tenantdb test CA");
  return pem;
}

// Points SSL_CERT_FILE at a file that exists, so verify-full without caCert does not
// depend on the machine's CA bundle; restores the variable afterwards.
class Connector : public ::testing::Test {
protected:
  void SetUp() override {
    if (const char* old = std::getenv("SSL_CERT_FILE")) saved_ = old;
    system_bundle_ = dir_.path() / "system-ca.crt";
    write_file(system_bundle_, test_ca());
    ::setenv("SSL_CERT_FILE", system_bundle_.c_str(), 1);
  }
  void TearDown() override {
    if (saved_)
      ::setenv("SSL_CERT_FILE", saved_->c_str(), 1);
    else
      ::unsetenv("SSL_CERT_FILE");
  }

  static connector_data postgres_data() {
    return {{"type", "postgres"}, {"host", "db.example.com"}, {"adminUser", "admin"}, {"adminPassword", kPassword}};
  }
  static connector_data mysql_data() {
    return {{"type", "mysql"}, {"host", "db.example.com"}, {"adminUser", "root"}, {"adminPassword", kPassword}};
  }
  static connector parse(connector_data data) { return parse_connector(std::move(data)); }

  // The error for `data`: kind connector, about `key`, one line naming the key, and never
  // the password.
  static void expect_error(connector_data data, const std::string& key, const std::string& context = "") {
    SCOPED_TRACE(context.empty() ? key : context);
    const auto e = test::catch_error([&] { (void)parse_connector(std::move(data)); });
    ASSERT_TRUE(e.has_value()) << "accepted, expected an error about " << key;
    EXPECT_STREQ(to_string(e->kind()), "connector") << e->what();
    EXPECT_EQ(e->key(), key) << e->what();
    const std::string what = e->what();
    EXPECT_NE(what.find(key), std::string::npos) << "message should name the key: " << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << "one line: " << what;
    // Also catches a quoted value cut short: any 8 characters of the password are too many.
    EXPECT_EQ(what.find(kPassword.substr(0, 8)), std::string::npos) << "message quotes the password: " << what;
    EXPECT_TRUE(data.empty()) << "data must be wiped on error too";
  }

  temp_dir dir_{"tenantdb-connector"};
  fs::path system_bundle_;
  std::optional<std::string> saved_;
};

// ---------------------------------------------------------------------------------------
// type, host, port

TEST_F(Connector, ParsesAMinimalPostgresConnector) {
  const connector c = parse(postgres_data());
  EXPECT_EQ(c.server.type, engine_type::postgres);
  EXPECT_FALSE(c.server.mariadb);
  EXPECT_EQ(c.server.host, "db.example.com");
  EXPECT_EQ(c.server.port, 5432);
  EXPECT_EQ(c.server.tls, tls_mode::verify_full);
  EXPECT_EQ(c.server.admin_database, "postgres");
  EXPECT_EQ(c.server.ca_pem, "");
  EXPECT_EQ(c.admin_user, "admin");
  EXPECT_EQ(c.admin_password.reveal(), kPassword);
}

TEST_F(Connector, TypeAcceptsEveryDocumentedNameCaseInsensitively) {
  const std::vector<std::tuple<std::string, engine_type, bool, std::string>> cases = {
      {"postgres", engine_type::postgres, false, "postgres"}, {"postgresql", engine_type::postgres, false, "postgres"},
      {"POSTGRES", engine_type::postgres, false, "postgres"}, {"PostgreSQL", engine_type::postgres, false, "postgres"},
      {"mysql", engine_type::mysql, false, "mysql"},          {"MySQL", engine_type::mysql, false, "mysql"},
      {"mariadb", engine_type::mysql, true, "mariadb"},       {"MariaDB", engine_type::mysql, true, "mariadb"},
  };
  for (const auto& [text, type, mariadb, name] : cases) {
    auto data = postgres_data();
    data["type"] = text;
    const connector c = parse(std::move(data));
    EXPECT_EQ(c.server.type, type) << text;
    EXPECT_EQ(c.server.mariadb, mariadb) << text;
    EXPECT_EQ(engine_name(c.server), name) << text;
  }
}

TEST_F(Connector, TypeMustBeKnownAndPresent) {
  for (const std::string& bad : std::vector<std::string>{"oracle", "pg", "postgres ", "my sql", "sqlite"}) {
    auto data = postgres_data();
    data["type"] = bad;
    expect_error(std::move(data), "type", bad);
  }
  auto missing = postgres_data();
  missing.erase("type");
  expect_error(std::move(missing), "type", "missing");
  auto empty = postgres_data();
  empty["type"] = "";
  expect_error(std::move(empty), "type", "empty");
}

TEST_F(Connector, DefaultPortsFollowTheEngine) {
  EXPECT_EQ(default_port(engine_type::postgres), 5432);
  EXPECT_EQ(default_port(engine_type::mysql), 3306);
  EXPECT_EQ(parse(postgres_data()).server.port, 5432);
  EXPECT_EQ(parse(mysql_data()).server.port, 3306);
}

TEST_F(Connector, ExplicitPortIsUsed) {
  for (const auto& [text, port] :
       std::vector<std::pair<std::string, int>>{{"1", 1}, {"6543", 6543}, {"65535", 65535}}) {
    auto data = mysql_data();
    data["port"] = text;
    EXPECT_EQ(parse(std::move(data)).server.port, port) << text;
  }
}

TEST_F(Connector, RejectsBadPorts) {
  for (const std::string& bad :
       std::vector<std::string>{"0", "65536", "99999", "-1", "-5432", "+5432", " 5432", "5432 ", "54 32", "abc", "54x2",
                                "1e3", "0x10", "5432.0", "123456"}) {
    auto data = postgres_data();
    data["port"] = bad;
    expect_error(std::move(data), "port", "port \"" + bad + "\"");
  }
}

TEST_F(Connector, EndpointForms) {
  struct endpoint_case {
    std::string endpoint;
    std::string host;
    int port;
  };
  const std::vector<endpoint_case> cases = {
      {"db.example.com", "db.example.com", 5432},
      {"db.example.com:6543", "db.example.com", 6543},
      {"10.0.0.7:15432", "10.0.0.7", 15432},
      {"[::1]:6543", "::1", 6543},
      {"[2001:db8::5]", "2001:db8::5", 5432},
      {"2001:db8::5", "2001:db8::5", 5432},  // bare IPv6: every colon belongs to the address
      {"::1", "::1", 5432},
  };
  for (const auto& c : cases) {
    auto data = postgres_data();
    data.erase("host");
    data["endpoint"] = c.endpoint;
    const connector parsed = parse(std::move(data));
    EXPECT_EQ(parsed.server.host, c.host) << c.endpoint;
    EXPECT_EQ(parsed.server.port, c.port) << c.endpoint;
  }
}

TEST_F(Connector, HostMayBeAnIpv6Literal) {
  auto data = postgres_data();
  data["host"] = "2001:db8::5";
  data["port"] = "6000";
  const connector c = parse(std::move(data));
  EXPECT_EQ(c.server.host, "2001:db8::5");
  EXPECT_EQ(c.server.port, 6000);
}

TEST_F(Connector, RejectsBadEndpoints) {
  for (const std::string& bad :
       std::vector<std::string>{"db:", "db:abc", "db:0", "db:70000", "[::1", "[::1]x", "[::1]:", "[::1]:abc", ":5432",
                                "[]:5432", "postgres://db:5432", "db/x:5432", "a b:5432"}) {
    auto data = postgres_data();
    data.erase("host");
    data["endpoint"] = bad;
    expect_error(std::move(data), "endpoint", "endpoint \"" + bad + "\"");
  }
}

TEST_F(Connector, RejectsBadHosts) {
  for (const std::string& bad : std::vector<std::string>{"db:5432", "postgres://db", "db/x", "a b", "a@b", "db?x",
                                                         "[::1]", std::string(254, 'h')}) {
    auto data = postgres_data();
    data["host"] = bad;
    expect_error(std::move(data), "host", "host \"" + bad.substr(0, 20) + "\"");
  }
}

TEST_F(Connector, HostOrEndpointIsRequired) {
  auto data = postgres_data();
  data.erase("host");
  expect_error(std::move(data), "host");
}

TEST_F(Connector, EndpointAndHostMustAgree) {
  auto same = postgres_data();
  same["endpoint"] = "db.example.com:6543";
  same["port"] = "6543";
  const connector c = parse(std::move(same));
  EXPECT_EQ(c.server.host, "db.example.com");
  EXPECT_EQ(c.server.port, 6543);

  auto port_from_endpoint = postgres_data();
  port_from_endpoint["endpoint"] = "db.example.com:6543";
  EXPECT_EQ(parse(std::move(port_from_endpoint)).server.port, 6543);

  auto other_host = postgres_data();
  other_host["endpoint"] = "other.example.com:5432";
  expect_error(std::move(other_host), "endpoint", "other host");

  auto other_port = postgres_data();
  other_port["endpoint"] = "db.example.com:6543";
  other_port["port"] = "5432";
  expect_error(std::move(other_port), "endpoint", "other port");
}

// ---------------------------------------------------------------------------------------
// admin credentials

TEST_F(Connector, PlatformKeysUserAndPassword) {
  connector_data data = {
      {"type", "postgres"}, {"endpoint", "db:5432"}, {"user", "platform-admin"}, {"password", kPassword}};
  const connector c = parse(std::move(data));
  EXPECT_EQ(c.admin_user, "platform-admin");
  EXPECT_EQ(c.admin_password.reveal(), kPassword);
  EXPECT_EQ(c.server.host, "db");
}

TEST_F(Connector, AdminAndPlatformKeysMayRepeatTheSameValue) {
  auto data = postgres_data();
  data["user"] = "admin";
  data["password"] = kPassword + "\n";  // a trailing newline does not make it different
  const connector c = parse(std::move(data));
  EXPECT_EQ(c.admin_user, "admin");
  EXPECT_EQ(c.admin_password.reveal(), kPassword);
}

TEST_F(Connector, ConflictingUserKeys) {
  auto data = postgres_data();
  data["user"] = "someone-else";
  expect_error(std::move(data), "user");
}

TEST_F(Connector, ConflictingPasswordKeys) {
  auto data = postgres_data();
  data["password"] = kPassword + "-other";
  expect_error(std::move(data), "password");
}

TEST_F(Connector, AdminUserIsRequired) {
  auto data = postgres_data();
  data.erase("adminUser");
  expect_error(std::move(data), "adminUser");
}

TEST_F(Connector, AdminPasswordIsRequired) {
  auto missing = postgres_data();
  missing.erase("adminPassword");
  expect_error(std::move(missing), "adminPassword", "missing");
  auto empty = postgres_data();
  empty["adminPassword"] = "";
  expect_error(std::move(empty), "adminPassword", "empty");
  auto newline_only = postgres_data();
  newline_only["adminPassword"] = "\n";
  expect_error(std::move(newline_only), "adminPassword", "only a newline");
}

TEST_F(Connector, PasswordKeepsEverythingButTrailingLineBreaks) {
  const std::string hostile = " p@ss:w/rd'\"\\`%;\t\xC3\xBC end ";
  auto data = postgres_data();
  data["adminPassword"] = hostile + "\r\n";
  EXPECT_EQ(parse(std::move(data)).admin_password.reveal(), hostile);
}

TEST_F(Connector, PasswordWithNulIsRejected) {
  auto data = postgres_data();
  data["adminPassword"] = kPassword + "\0tail"s;
  expect_error(std::move(data), "adminPassword");
}

TEST_F(Connector, OversizedPasswordIsRejected) {
  auto data = postgres_data();
  std::string huge;
  while (huge.size() <= 64 * 1024) huge += kPassword;
  data["adminPassword"] = huge;
  expect_error(std::move(data), "adminPassword");
}

// ---------------------------------------------------------------------------------------
// TLS

// ---------------------------------------------------------------------------------------
// the vCluster Platform's connector, unchanged (issue 11, item 9)

// Captures the log lines written while it lives, at info and above (as the binaries log).
class log_capture {
public:
  log_capture() : previous_(log::current_level()) {
    log::set_level(log::level::info);
    log::set_sink([this](std::string_view line) { lines_.emplace_back(line); });
  }
  ~log_capture() {
    log::set_sink(nullptr);
    log::set_level(previous_);
  }
  log_capture(const log_capture&) = delete;
  log_capture& operator=(const log_capture&) = delete;
  const std::vector<std::string>& lines() const { return lines_; }
  std::vector<std::string> at(const std::string& level) const {
    std::vector<std::string> out;
    for (const auto& l : lines_)
      if (l.find(R"("level":")" + level + "\"") != std::string::npos) out.push_back(l);
    return out;
  }

private:
  log::level previous_;
  std::vector<std::string> lines_;
};

// The Platform's own spelling: endpoint, user, password (no host, port, adminUser,
// adminPassword), and no sslMode.
connector_data platform_data(const std::string& type) {
  connector_data d = {{"endpoint", "db.example.com:3306"}, {"user", "platform-admin"}, {"password", kPassword}};
  if (type != "(none)") d["type"] = type;
  return d;
}

TEST_F(Connector, PlatformKeysWithoutTypeMeanMysql) {
  for (const std::string& type : {"(none)"s, ""s, "\n"s, "  "s}) {
    SCOPED_TRACE("type = \"" + type + "\"");
    const connector c = parse(platform_data(type));
    EXPECT_TRUE(c.platform_keys);
    EXPECT_EQ(c.server.type, engine_type::mysql);
    EXPECT_FALSE(c.server.mariadb);
    EXPECT_EQ(c.server.port, 3306);
    EXPECT_EQ(c.admin_user, "platform-admin");
  }
  // An explicit type still decides, and a wrong one is still refused.
  EXPECT_EQ(parse(platform_data("postgres")).server.type, engine_type::postgres);
  EXPECT_TRUE(parse(platform_data("mariadb")).server.mariadb);
  expect_error(platform_data("oracle"), "type");
}

TEST_F(Connector, OwnKeysStillRequireAType) {
  for (const std::string& type : {"(none)"s, ""s, "\n"s}) {
    auto data = postgres_data();
    if (type == "(none)")
      data.erase("type");
    else
      data["type"] = type;
    expect_error(std::move(data), "type", "own keys, type = \"" + type + "\"");
  }
  // Mixed spellings are not the Platform's connector: endpoint with adminUser, or with
  // host, keep this project's rules.
  auto mixed_admin = platform_data("(none)");
  mixed_admin["adminUser"] = "platform-admin";
  expect_error(std::move(mixed_admin), "type", "endpoint + adminUser");
  auto mixed_host = platform_data("(none)");
  mixed_host["host"] = "db.example.com";
  expect_error(std::move(mixed_host), "type", "endpoint + host");
}

// The warning that verification is off (naming sslMode) is provisioning's, for every
// unverified connector (init_cli_dbtest checks there is exactly one); the parser says
// in one info line why the mode is not verify-full.
TEST_F(Connector, PlatformKeysWithoutSslModeGetThePlatformsTlsDefaultsAndSayWhy) {
  for (const std::string& type : {"postgres"s, "mysql"s, "mariadb"s, "(none)"s}) {
    SCOPED_TRACE("type = " + type);
    log_capture logs;
    const connector c = parse(platform_data(type));
    // PostgreSQL `require`, MySQL/MariaDB encrypted without verification: both `require`.
    EXPECT_EQ(c.server.tls, tls_mode::require);
    EXPECT_TRUE(c.server.ca_pem.empty());
    ASSERT_EQ(logs.lines().size(), 1u) << "one line";
    const std::string& line = logs.lines().front();
    EXPECT_EQ(logs.at("info").size(), 1u) << line;
    EXPECT_NE(line.find("Platform's default"), std::string::npos) << line;
    EXPECT_NE(line.find("not verified"), std::string::npos) << line;
    EXPECT_NE(line.find(R"("key":"sslMode")"), std::string::npos) << "names the key: " << line;
    EXPECT_NE(line.find(R"("sslMode":"require")"), std::string::npos) << line;
    EXPECT_EQ(line.find(kPassword.substr(0, 8)), std::string::npos) << line;
  }
}

TEST_F(Connector, PlatformKeysWithoutSslModeNeedNoCaBundle) {
  // The Platform connects without a CA; so does tenantdb for its connector, even where
  // no system bundle exists (verify-full would refuse here).
  ::setenv("SSL_CERT_FILE", (dir_.path() / "no-such-bundle.crt").c_str(), 1);
  EXPECT_EQ(parse(platform_data("postgres")).server.tls, tls_mode::require);
  EXPECT_EQ(parse(platform_data("(none)")).server.tls, tls_mode::require);
  auto verified = platform_data("postgres");
  verified["sslMode"] = "verify-full";
  expect_error(std::move(verified), "caCert", "verify-full without a bundle");
}

TEST_F(Connector, PlatformKeysWithSslModeKeepItAndSayNothing) {
  for (const auto& [key, value, mode] :
       std::vector<std::tuple<std::string, std::string, tls_mode>>{{"sslMode", "verify-full", tls_mode::verify_full},
                                                                   {"sslMode", "disable", tls_mode::disable},
                                                                   {"sslMode", "require", tls_mode::require},
                                                                   {"tls", "true", tls_mode::verify_full}}) {
    SCOPED_TRACE(key + " = " + value);
    log_capture logs;
    auto data = platform_data("postgres");
    data[key] = value;
    data["caCert"] = test_ca();
    const connector c = parse(std::move(data));
    EXPECT_EQ(c.server.tls, mode);
    EXPECT_TRUE(logs.lines().empty()) << logs.lines().front();
  }
}

TEST_F(Connector, OwnKeysWithoutSslModeStayVerifyFullAndSayNothing) {
  for (auto data : {postgres_data(), mysql_data()}) {
    log_capture logs;
    const connector c = parse(std::move(data));
    EXPECT_FALSE(c.platform_keys);
    EXPECT_EQ(c.server.tls, tls_mode::verify_full);
    EXPECT_TRUE(logs.lines().empty()) << logs.lines().front();
  }
  // endpoint in this project's connector (with adminUser/adminPassword) is not the
  // Platform's connector either.
  auto with_endpoint = postgres_data();
  with_endpoint.erase("host");
  with_endpoint["endpoint"] = "db.example.com:5432";
  EXPECT_EQ(parse(std::move(with_endpoint)).server.tls, tls_mode::verify_full);
}

TEST_F(Connector, TlsDefaultsToVerifyFull) {
  EXPECT_EQ(parse(postgres_data()).server.tls, tls_mode::verify_full);
  EXPECT_EQ(parse(mysql_data()).server.tls, tls_mode::verify_full);
}

TEST_F(Connector, EveryAcceptedTlsSpellingUnderBothKeys) {
  const std::vector<std::pair<std::string, tls_mode>> spellings = {
      {"disable", tls_mode::disable},
      {"disabled", tls_mode::disable},
      {"false", tls_mode::disable},
      {"no", tls_mode::disable},
      {"off", tls_mode::disable},
      {"0", tls_mode::disable},
      {"allow", tls_mode::allow},
      {"prefer", tls_mode::prefer},
      {"preferred", tls_mode::prefer},
      {"require", tls_mode::require},
      {"required", tls_mode::require},
      {"skip-verify", tls_mode::require},
      {"verify-ca", tls_mode::verify_ca},
      {"verify_ca", tls_mode::verify_ca},
      {"verify-full", tls_mode::verify_full},
      {"verify_full", tls_mode::verify_full},
      {"verify_identity", tls_mode::verify_full},
      {"verify-identity", tls_mode::verify_full},
      {"true", tls_mode::verify_full},
      {"yes", tls_mode::verify_full},
      {"on", tls_mode::verify_full},
      {"1", tls_mode::verify_full},
      // case-insensitive
      {"VERIFY-FULL", tls_mode::verify_full},
      {"Disable", tls_mode::disable},
      {"True", tls_mode::verify_full},
      {"Skip-Verify", tls_mode::require},
  };
  for (const std::string& key : std::vector<std::string>{"sslMode", "tls"}) {
    for (const auto& [text, mode] : spellings) {
      auto data = postgres_data();
      data[key] = text;
      EXPECT_EQ(parse(std::move(data)).server.tls, mode) << key << "=" << text;
    }
  }
}

TEST_F(Connector, AllowMeansPreferOnMysql) {
  auto data = mysql_data();
  data["sslMode"] = "allow";
  EXPECT_EQ(parse(std::move(data)).server.tls, tls_mode::prefer);
}

TEST_F(Connector, SslModeAndTlsMayAgreeInDifferentSpellings) {
  auto data = postgres_data();
  data["sslMode"] = "verify-full";
  data["tls"] = "true";
  EXPECT_EQ(parse(std::move(data)).server.tls, tls_mode::verify_full);
}

TEST_F(Connector, SslModeAndTlsMustNotDisagree) {
  auto data = postgres_data();
  data["sslMode"] = "require";
  data["tls"] = "verify-full";
  expect_error(std::move(data), "tls");
}

TEST_F(Connector, RejectsUnknownTlsValues) {
  for (const std::string& key : std::vector<std::string>{"sslMode", "tls"}) {
    for (const std::string& bad : std::vector<std::string>{"maybe", "verify", "ssl", "2", "verify full"}) {
      auto data = postgres_data();
      data[key] = bad;
      expect_error(std::move(data), key, key + "=" + bad);
    }
  }
}

TEST_F(Connector, TlsModeNamesAreLibpqs) {
  EXPECT_EQ(to_string(tls_mode::disable), "disable");
  EXPECT_EQ(to_string(tls_mode::allow), "allow");
  EXPECT_EQ(to_string(tls_mode::prefer), "prefer");
  EXPECT_EQ(to_string(tls_mode::require), "require");
  EXPECT_EQ(to_string(tls_mode::verify_ca), "verify-ca");
  EXPECT_EQ(to_string(tls_mode::verify_full), "verify-full");
}

TEST_F(Connector, SystemCaFileFollowsSslCertFile) {
  EXPECT_EQ(system_ca_file(), system_bundle_.string());
  ::unsetenv("SSL_CERT_FILE");
  EXPECT_EQ(system_ca_file(), "/etc/ssl/certs/ca-certificates.crt");
  ::setenv("SSL_CERT_FILE", "", 1);
  EXPECT_EQ(system_ca_file(), "/etc/ssl/certs/ca-certificates.crt");
}

TEST_F(Connector, VerifyingWithoutCaNeedsTheSystemBundle) {
  ::setenv("SSL_CERT_FILE", (dir_.path() / "no-such-bundle.crt").c_str(), 1);
  expect_error(postgres_data(), "caCert", "verify-full");
  auto verify_ca = postgres_data();
  verify_ca["sslMode"] = "verify-ca";
  expect_error(std::move(verify_ca), "caCert", "verify-ca");
  // Not verifying: no bundle needed.
  auto require = postgres_data();
  require["sslMode"] = "require";
  EXPECT_EQ(parse(std::move(require)).server.tls, tls_mode::require);
}

TEST_F(Connector, AcceptsAValidCaCert) {
  auto data = postgres_data();
  data["caCert"] = test_ca();
  EXPECT_EQ(parse(std::move(data)).server.ca_pem, test_ca());
}

TEST_F(Connector, AcceptsACaBundleAndTrailingWhitespace) {
  const std::string bundle = test_ca() + make_certificate_pem("second CA") + "\n\n";
  auto data = postgres_data();
  data["caCert"] = bundle;
  EXPECT_EQ(parse(std::move(data)).server.ca_pem, bundle);
  EXPECT_NO_THROW(validate_ca_pem(bundle, "caCert"));
}

TEST_F(Connector, CaCrtIsAnAliasOfCaCert) {
  auto data = postgres_data();
  data["ca.crt"] = test_ca();
  EXPECT_EQ(parse(std::move(data)).server.ca_pem, test_ca());
}

TEST_F(Connector, RejectsInvalidPem) {
  const std::string& good = test_ca();
  const std::string begin = "-----BEGIN CERTIFICATE-----\n";
  const std::string end = "-----END CERTIFICATE-----\n";
  const std::size_t body_start = good.find('\n') + 1;
  // Cut the base64 body short, keeping the BEGIN and END lines.
  const std::string truncated = good.substr(0, body_start + 40) + "\n" + end;
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"not PEM at all", "hello, I am not a certificate"},
      {"doubly base64-encoded", base64(good)},
      {"garbage body", begin + "bm90IGEgY2VydGlmaWNhdGUgYXQgYWxs\n" + end},
      {"truncated body", truncated},
      {"BEGIN without END", begin + good.substr(body_start, 64) + "\n"},
  };
  for (const auto& [what, pem] : bad) {
    for (const std::string& key : std::vector<std::string>{"caCert", "ca.crt"}) {
      auto data = postgres_data();
      data[key] = pem;
      expect_error(std::move(data), key, key + ": " + what);
    }
  }
}

TEST_F(Connector, RejectsGarbageAfterThePem) {
  // Contract (validate_ca_pem): "at least one parseable X.509 certificate and nothing that
  // is not PEM".
  auto data = postgres_data();
  data["caCert"] = test_ca() + "this line is not PEM\n";
  expect_error(std::move(data), "caCert");
  EXPECT_TENANTDB_ERROR(validate_ca_pem(test_ca() + "trailing garbage", "caCert"), error_kind::connector, "caCert");
}

// ---------------------------------------------------------------------------------------
// database, normalisation and hygiene

TEST_F(Connector, DatabaseIsForPostgresOnly) {
  auto pg = postgres_data();
  pg["database"] = "admin_db";
  EXPECT_EQ(parse(std::move(pg)).server.admin_database, "admin_db");
  auto my = mysql_data();
  my["database"] = "mysql";
  expect_error(std::move(my), "database");
  EXPECT_EQ(parse(mysql_data()).server.admin_database, "");
}

TEST_F(Connector, TrimsTrailingNewlinesOfEveryValue) {
  connector_data data = {{"type", "postgres\n"},
                         {"host", "db.example.com\r\n"},
                         {"port", "6543\n"},
                         {"adminUser", "admin\n"},
                         {"adminPassword", kPassword + "\n"},
                         {"sslMode", "verify-ca\n"},
                         {"database", "maint\n"},
                         {"caCert", test_ca()}};
  const connector c = parse(std::move(data));
  EXPECT_EQ(c.server.host, "db.example.com");
  EXPECT_EQ(c.server.port, 6543);
  EXPECT_EQ(c.admin_user, "admin");
  EXPECT_EQ(c.admin_password.reveal(), kPassword);
  EXPECT_EQ(c.server.tls, tls_mode::verify_ca);
  EXPECT_EQ(c.server.admin_database, "maint");
}

TEST_F(Connector, RejectsControlCharacters) {
  for (const std::string& key : std::vector<std::string>{"type", "host", "endpoint", "port", "adminUser", "user",
                                                         "sslMode", "tls", "database"}) {
    for (const std::string& bad : std::vector<std::string>{"a\tb", "a\x01", "a\nb", "a\x7f", "a\0b"s}) {
      auto data = postgres_data();
      if (key == "endpoint") data.erase("host");
      if (key == "user") data.erase("adminUser");
      data[key] = bad;
      expect_error(std::move(data), key, key + " with a control character");
    }
  }
}

TEST_F(Connector, RejectsInvalidUtf8) {
  for (const std::string& key : std::vector<std::string>{"host", "adminUser", "user", "database", "type"}) {
    auto data = postgres_data();
    if (key == "user") data.erase("adminUser");
    data[key] = "ab\xFF\xFE";
    expect_error(std::move(data), key, key);
  }
}

TEST_F(Connector, RejectsAccountNamesThatLookLikeSql) {
  for (const std::string& key : std::vector<std::string>{"adminUser", "user"}) {
    for (const std::string& bad :
         std::vector<std::string>{"x'; DROP TABLE t; --", "a\"b", "a`b", "a\\b", "a;b", "a b"}) {
      auto data = postgres_data();
      if (key == "user") data.erase("adminUser");
      data[key] = bad;
      expect_error(std::move(data), key, key + " = " + bad);
    }
  }
  // What real admin accounts are called still passes, Azure's user@server included.
  for (const std::string& good : std::vector<std::string>{"postgres", "tenantdb_admin", "db-admin.1", "admin@server"}) {
    auto data = postgres_data();
    data["adminUser"] = good;
    EXPECT_EQ(parse(std::move(data)).admin_user, good);
  }
}

TEST_F(Connector, RejectsOversizedValues) {
  const std::string big(5000, 'a');
  for (const std::string& key : std::vector<std::string>{"type", "host", "endpoint", "port", "adminUser", "user",
                                                         "sslMode", "tls", "database"}) {
    auto data = postgres_data();
    if (key == "endpoint") data.erase("host");
    if (key == "user") data.erase("adminUser");
    data[key] = big;
    expect_error(std::move(data), key, key + " oversized");
  }
}

TEST_F(Connector, DataIsWipedAfterParsing) {
  auto data = postgres_data();
  data["unknownKey"] = "whatever";
  (void)parse_connector(std::move(data));
  EXPECT_TRUE(data.empty());  // NOLINT(bugprone-use-after-move): the contract says so
}

TEST_F(Connector, PasswordNeverReachesTheLog) {
  std::vector<std::string> lines;
  const auto previous = log::current_level();
  log::set_level(log::level::debug);
  log::set_sink([&](std::string_view line) { lines.emplace_back(line); });
  auto data = postgres_data();
  data["unknownKey"] = kPassword;  // an unknown key is logged by name, never by value
  data["alsoUnknown"] = "x";
  (void)parse_connector(std::move(data));
  auto bad = postgres_data();
  bad["port"] = "nope";
  (void)test::catch_error([&] { (void)parse_connector(std::move(bad)); });
  log::set_sink(nullptr);
  log::set_level(previous);
  for (const auto& line : lines) EXPECT_EQ(line.find(kPassword), std::string::npos) << line;
}

TEST_F(Connector, CredentialsInEndpointOrHostAreNotQuoted) {
  // A platform team pasting a full DSN, or user:password@host, is the likeliest way a
  // password lands in a non-secret key; the error must still not repeat it.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"endpoint", "postgres://admin:" + kPassword + "@db.example.com:5432/postgres"},
      {"endpoint", "admin:" + kPassword + "@db:5432"},
      {"host", "mysql://root:" + kPassword + "@db"},
      {"host", "root:" + kPassword + "@db"},
  };
  for (const auto& [key, value] : cases) {
    auto data = postgres_data();
    data.erase("host");
    data[key] = value;
    expect_error(std::move(data), key, key + " = " + value.substr(0, 12) + "...");
  }
}

// ---------------------------------------------------------------------------------------
// read_connector_path

class ReadConnectorPath : public Connector {};

TEST_F(ReadConnectorPath, ReadsASecretVolumeAndSkipsHiddenEntries) {
  // kubelet's layout: ..<timestamp>/ holds the files, ..data -> ..<timestamp>, and each
  // key is a symlink key -> ..data/key.
  const fs::path vol = dir_.path() / "connector";
  const fs::path generation = vol / "..2024_05_01_10_00_00.123456789";
  fs::create_directories(generation);
  const connector_data expected = {
      {"type", "postgres\n"}, {"host", "db.example.com"}, {"adminUser", "admin"}, {"adminPassword", kPassword + "\n"}};
  for (const auto& [key, value] : expected) {
    write_file(generation / key, value);
    fs::create_symlink(fs::path("..data") / key, vol / key);
  }
  fs::create_directory_symlink(generation.filename(), vol / "..data");
  write_file(vol / ".hidden", "must be ignored");
  fs::create_directories(vol / "..2023_01_01_00_00_00.old");
  write_file(vol / "..2023_01_01_00_00_00.old" / "adminPassword", "stale");

  const connector_data data = read_connector_path(vol);
  EXPECT_EQ(data, expected);
  connector_data copy = data;
  const connector c = parse_connector(std::move(copy));
  EXPECT_EQ(c.admin_password.reveal(), kPassword);
}

TEST_F(ReadConnectorPath, EmptyDirectoryIsAnError) {
  const fs::path vol = dir_.path() / "empty";
  fs::create_directories(vol);
  EXPECT_TENANTDB_ERROR(read_connector_path(vol), error_kind::connector, "--connector-file");
  write_file(vol / ".only-hidden", "x");
  EXPECT_TENANTDB_ERROR(read_connector_path(vol), error_kind::connector, "--connector-file");
}

TEST_F(ReadConnectorPath, MissingPathIsAnError) {
  EXPECT_TENANTDB_ERROR(read_connector_path(dir_.path() / "nope"), error_kind::connector, "--connector-file");
}

TEST_F(ReadConnectorPath, ReadsAYamlFlatMap) {
  const fs::path file = dir_.path() / "connector.yaml";
  write_file(file, "type: postgres\nhost: db.example.com\nport: 6543\nadminUser: admin\nadminPassword: '" + kPassword +
                       ": #x'\ntls: off\n");
  const connector_data data = read_connector_path(file);
  const connector_data expected = {{"type", "postgres"},
                                   {"host", "db.example.com"},
                                   {"port", "6543"},
                                   {"adminUser", "admin"},
                                   {"adminPassword", kPassword + ": #x"},
                                   {"tls", "off"}};
  EXPECT_EQ(data, expected);
  connector_data copy = data;
  const connector c = parse_connector(std::move(copy));
  EXPECT_EQ(c.server.tls, tls_mode::disable);  // YAML's "off" stays the text "off"
  EXPECT_EQ(c.server.port, 6543);
}

TEST_F(ReadConnectorPath, ReadsAJsonFlatMap) {
  const fs::path file = dir_.path() / "connector.json";
  write_file(file, R"({"type": "mariadb", "endpoint": "[::1]:3307", "user": "root", "password": ")" + kPassword +
                       R"(", "tls": true})");
  const connector_data data = read_connector_path(file);
  const connector_data expected = {
      {"type", "mariadb"}, {"endpoint", "[::1]:3307"}, {"user", "root"}, {"password", kPassword}, {"tls", "true"}};
  EXPECT_EQ(data, expected);
  connector_data copy = data;
  const connector c = parse_connector(std::move(copy));
  EXPECT_TRUE(c.server.mariadb);
  EXPECT_EQ(c.server.host, "::1");
  EXPECT_EQ(c.server.port, 3307);
}

TEST_F(ReadConnectorPath, ReadsASecretManifestWithDataAndStringData) {
  const fs::path file = dir_.path() / "secret.yaml";
  write_file(file,
             "apiVersion: v1\nkind: Secret\nmetadata:\n  name: pg\n  namespace: platform\ntype: Opaque\n"
             "data:\n  type: " +
                 base64("postgres") + "\n  adminPassword: " + base64(kPassword + "\n") +
                 "\n  host: " + base64("overridden.example.com") + "\n  caCert: " + base64(test_ca()) +
                 "\nstringData:\n  host: db.example.com\n  adminUser: admin\n");
  const connector_data data = read_connector_path(file);
  // stringData wins over data for the same key, as the API server merges them.
  const connector_data expected = {{"type", "postgres"},
                                   {"adminPassword", kPassword + "\n"},
                                   {"host", "db.example.com"},
                                   {"adminUser", "admin"},
                                   {"caCert", test_ca()}};
  EXPECT_EQ(data, expected);
}

TEST_F(ReadConnectorPath, InvalidBase64InDataNamesTheKey) {
  const fs::path file = dir_.path() / "secret.yaml";
  write_file(file, "kind: Secret\ndata:\n  type: " + base64("postgres") + "\n  adminPassword: '" + kPassword + "!'\n");
  const auto e = test::catch_error([&] { (void)read_connector_path(file); });
  ASSERT_TRUE(e.has_value());
  EXPECT_STREQ(to_string(e->kind()), "connector");
  EXPECT_EQ(e->key(), "adminPassword");
  EXPECT_EQ(std::string(e->what()).find(kPassword), std::string::npos) << e->what();
}

TEST_F(ReadConnectorPath, RejectsWhatIsNotAMap) {
  for (const std::string& content :
       std::vector<std::string>{"- a\n- b\n", "just a string\n", "", "42\n", "a: [unclosed\n"}) {
    const fs::path file = dir_.path() / "bad.yaml";
    write_file(file, content);
    EXPECT_TENANTDB_ERROR(read_connector_path(file), error_kind::connector, "--connector-file");
  }
}

TEST_F(ReadConnectorPath, NestedValueNamesTheKey) {
  const fs::path file = dir_.path() / "nested.yaml";
  write_file(file, "type: postgres\nhost:\n  name: db\n");
  EXPECT_TENANTDB_ERROR(read_connector_path(file), error_kind::connector, "host");
}

TEST_F(ReadConnectorPath, NonScalarKeyIsAConnectorError) {
  // Contract: tenantdb::error (connector) on unreadable input, not a yaml-cpp exception.
  const fs::path file = dir_.path() / "complex-key.yaml";
  write_file(file, "? [a, b]\n: c\ntype: postgres\n");
  const auto e = test::catch_error([&] { (void)read_connector_path(file); });
  ASSERT_TRUE(e.has_value());
  EXPECT_STREQ(to_string(e->kind()), "connector");
}

TEST_F(ReadConnectorPath, ConflictingDuplicateKeysAreAnError) {
  // YAML forbids duplicate keys; silently taking one of two passwords hides a mistake.
  const fs::path file = dir_.path() / "dup.yaml";
  write_file(file, "type: postgres\nadminPassword: first\nadminPassword: second\n");
  const auto e = test::catch_error([&] { (void)read_connector_path(file); });
  ASSERT_TRUE(e.has_value()) << "duplicate key accepted";
  EXPECT_STREQ(to_string(e->kind()), "connector");
  EXPECT_EQ(e->key(), "adminPassword");
}

// ---------------------------------------------------------------------------------------
// Per-tenant limits (platform-wide defaults)

TEST_F(Connector, LimitsHaveTheDocumentedDefaults) {
  const connector pg = parse(postgres_data());
  EXPECT_EQ(pg.limits.max_connections, 20);
  EXPECT_EQ(pg.limits.statement_timeout, std::chrono::minutes(5));
  EXPECT_EQ(pg.limits.idle_in_transaction_timeout, std::chrono::minutes(1));
  // The timeouts are PostgreSQL's.
  const connector my = parse(mysql_data());
  EXPECT_EQ(my.limits, (tenant_limits{20, std::chrono::milliseconds(0), std::chrono::milliseconds(0)}));
}

TEST_F(Connector, LimitKeysSetThePlatformWideLimitsAndZeroOrNoneMeansNoLimit) {
  auto data = postgres_data();
  data["maxConnections"] = "64\n";
  data["statementTimeout"] = "30s";
  data["idleInTransactionTimeout"] = "2m";
  EXPECT_EQ(parse(std::move(data)).limits, (tenant_limits{64, std::chrono::seconds(30), std::chrono::minutes(2)}));
  for (const char* none : {"0", "none"}) {
    data = postgres_data();
    data["maxConnections"] = none;
    data["statementTimeout"] = none;
    data["idleInTransactionTimeout"] = none;
    EXPECT_EQ(parse(std::move(data)).limits, tenant_limits{}) << none;
  }
  data = mysql_data();
  data["maxConnections"] = "none";
  EXPECT_EQ(parse(std::move(data)).limits.max_connections, 0);
}

TEST_F(Connector, DeletionPolicyIsRetainOrDeleteAndAbsentByDefault) {
  EXPECT_EQ(parse(postgres_data()).deletion_policy, "");
  auto data = mysql_data();
  data["deletionPolicy"] = "Delete\n";
  EXPECT_EQ(parse(std::move(data)).deletion_policy, "delete");
  for (const std::string& bad : std::vector<std::string>{"purge", "retain please", "0"}) {
    auto d = postgres_data();
    d["deletionPolicy"] = bad;
    expect_error(std::move(d), "deletionPolicy", "deletionPolicy \"" + bad + "\"");
  }
}

TEST_F(Connector, RejectsBadLimitsNamingTheKey) {
  for (const std::string& bad :
       std::vector<std::string>{"-1", "1", "10001", "99999999999", "twenty", "20s", "2.5", "+20", " 20", "0x10"}) {
    auto data = postgres_data();
    data["maxConnections"] = bad;
    expect_error(std::move(data), "maxConnections", "maxConnections \"" + bad + "\"");
  }
  for (const char* key : {"statementTimeout", "idleInTransactionTimeout"}) {
    for (const std::string& bad :
         std::vector<std::string>{"5", "-5s", "500ms", "25h", "2d", "never", "5 m", "1e3s", "none please"}) {
      auto data = postgres_data();
      data[key] = bad;
      expect_error(std::move(data), key, std::string(key) + " \"" + bad + "\"");
    }
    auto data = mysql_data();
    data[key] = "30s";
    expect_error(std::move(data), key, std::string(key) + " on MySQL");
  }
}

}  // namespace
}  // namespace tenantdb
