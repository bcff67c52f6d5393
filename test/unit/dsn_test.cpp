#include "tenantdb/dsn.hpp"

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace tenantdb {
namespace {

using namespace std::string_literals;

bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Strict percent-decoding: only unreserved characters and %XX may appear (what
// percent_encode promises to produce); anything else fails.
std::optional<std::string> percent_decode(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;  // needs two hex digits after '%'
      const int hi = hex_value(text[i + 1]);
      const int lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (is_unreserved(c)) {
      out.push_back(static_cast<char>(c));
    } else {
      return std::nullopt;
    }
  }
  return out;
}

// A postgres:// URL taken apart the way Go's net/url does: the authority runs to the
// first '/', userinfo is everything before its last '@' and splits at the first ':'.
struct parsed_url {
  std::string user, password, host_port, database;
  std::map<std::string, std::string> query;
};

std::optional<parsed_url> parse_postgres_url(const std::string& url) {
  const std::string scheme = "postgres://";
  if (url.rfind(scheme, 0) != 0) return std::nullopt;
  const std::string rest = url.substr(scheme.size());
  const auto slash = rest.find('/');
  if (slash == std::string::npos) return std::nullopt;
  const std::string authority = rest.substr(0, slash);
  const auto at = authority.rfind('@');
  if (at == std::string::npos) return std::nullopt;
  const std::string userinfo = authority.substr(0, at);
  const auto colon = userinfo.find(':');
  if (colon == std::string::npos) return std::nullopt;
  parsed_url out;
  const auto user = percent_decode(userinfo.substr(0, colon));
  const auto password = percent_decode(userinfo.substr(colon + 1));
  if (!user || !password) return std::nullopt;
  out.user = *user;
  out.password = *password;
  out.host_port = authority.substr(at + 1);
  const std::string path_query = rest.substr(slash + 1);
  const auto qmark = path_query.find('?');
  const auto database = percent_decode(path_query.substr(0, qmark));
  if (!database) return std::nullopt;
  out.database = *database;
  if (qmark != std::string::npos) {
    std::string query = path_query.substr(qmark + 1);
    std::size_t start = 0;
    while (start <= query.size()) {
      const auto amp = query.find('&', start);
      const std::string pair = query.substr(start, amp == std::string::npos ? std::string::npos : amp - start);
      const auto eq = pair.find('=');
      if (eq == std::string::npos) return std::nullopt;
      const auto value = percent_decode(pair.substr(eq + 1));
      if (!value) return std::nullopt;
      out.query[pair.substr(0, eq)] = *value;
      if (amp == std::string::npos) break;
      start = amp + 1;
    }
  }
  return out;
}

// go-sql-driver/mysql ParseDSN, after Kine strips "mysql://": the database follows the
// LAST '/'; user:password is everything before the last '@' before it, split at the
// first ':'; then net(addr).
struct parsed_go_dsn {
  std::string user, password, net, addr, database;
};

std::optional<parsed_go_dsn> parse_go_mysql_dsn(const std::string& dsn_with_scheme) {
  const std::string scheme = "mysql://";
  if (dsn_with_scheme.rfind(scheme, 0) != 0) return std::nullopt;
  const std::string dsn = dsn_with_scheme.substr(scheme.size());
  const auto slash = dsn.rfind('/');
  if (slash == std::string::npos) return std::nullopt;
  parsed_go_dsn out;
  const std::string head = dsn.substr(0, slash);
  const auto at = head.rfind('@');
  if (at == std::string::npos) return std::nullopt;
  const std::string userinfo = head.substr(0, at);
  const auto colon = userinfo.find(':');
  out.user = userinfo.substr(0, colon);
  if (colon != std::string::npos) out.password = userinfo.substr(colon + 1);
  const std::string net_addr = head.substr(at + 1);
  const auto open = net_addr.find('(');
  if (open == std::string::npos || net_addr.back() != ')') return std::nullopt;
  out.net = net_addr.substr(0, open);
  out.addr = net_addr.substr(open + 1, net_addr.size() - open - 2);
  const std::string tail = dsn.substr(slash + 1);
  out.database = tail.substr(0, tail.find('?'));
  return out;
}

server_address make_server(engine_type type, std::string host, std::uint16_t port, tls_mode tls,
                           std::string ca_pem = "") {
  server_address s;
  s.type = type;
  s.host = std::move(host);
  s.port = port;
  s.tls = tls;
  s.ca_pem = std::move(ca_pem);
  return s;
}

const std::vector<std::string>& hostile_passwords() {
  static const std::vector<std::string> passwords = {
      "plainAlnum123",
      "p@ss:w/rd",
      "@@@",
      ":::",
      "a)/b@tcp(evil:1)/x",
      "with space",
      "100%25%",
      "?query=1&x=y#frag",
      "'\"\\`;",
      "caf\xC3\xA9\xE2\x98\x95",
      "tab\there",
      "[::1]",
      "ends-with-at@",
      "ends-with-slash/",
      "~unreserved-._~",
  };
  return passwords;
}

// ---------------------------------------------------------------------------------------

TEST(PercentEncode, KeepsExactlyTheUnreservedSetAndEncodesEveryOtherByte) {
  for (int b = 0; b < 256; ++b) {
    const auto c = static_cast<unsigned char>(b);
    const std::string in(1, static_cast<char>(c));
    const std::string out = percent_encode(in);
    if (is_unreserved(c)) {
      EXPECT_EQ(out, in) << "byte " << b;
    } else {
      ASSERT_EQ(out.size(), 3U) << "byte " << b;
      EXPECT_EQ(out[0], '%');
      EXPECT_EQ(hex_value(out[1]) * 16 + hex_value(out[2]), b) << out;
      EXPECT_EQ(out.find_first_of("abcdef"), std::string::npos) << "RFC 3986 prefers uppercase hex: " << out;
    }
  }
}

TEST(PercentEncode, Examples) {
  EXPECT_EQ(percent_encode(""), "");
  EXPECT_EQ(percent_encode("a b"), "a%20b");
  EXPECT_EQ(percent_encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
  EXPECT_EQ(percent_encode("\xC3\xBC"), "%C3%BC");
  EXPECT_EQ(percent_encode("AZaz09-._~"), "AZaz09-._~");
  EXPECT_EQ(percent_encode("100%"), "100%25");
  EXPECT_EQ(percent_encode("nul\0"s), "nul%00");
}

TEST(PercentEncode, RoundTripsHostileStrings) {
  for (const auto& s : hostile_passwords()) {
    const auto decoded = percent_decode(percent_encode(s));
    ASSERT_TRUE(decoded.has_value()) << s;
    EXPECT_EQ(*decoded, s);
  }
}

TEST(UrlHost, BracketsIpv6Only) {
  EXPECT_EQ(url_host("db.example.com"), "db.example.com");
  EXPECT_EQ(url_host("10.0.0.1"), "10.0.0.1");
  EXPECT_EQ(url_host("::1"), "[::1]");
  EXPECT_EQ(url_host("2001:db8::5"), "[2001:db8::5]");
}

TEST(KineDataSource, PostgresUrlRoundTripsUserPasswordAndDatabase) {
  for (const auto& pw : hostile_passwords()) {
    const secret password(pw);
    const data_source_parts parts{make_server(engine_type::postgres, "db.example.com", 5432, tls_mode::require),
                                  "vcluster_app_abc", "user with:odd@chars", &password, ""};
    const std::string dsn = kine_data_source(parts).reveal();
    const auto url = parse_postgres_url(dsn);
    ASSERT_TRUE(url.has_value()) << dsn;
    EXPECT_EQ(url->user, "user with:odd@chars");
    EXPECT_EQ(url->password, pw);
    EXPECT_EQ(url->host_port, "db.example.com:5432");
    EXPECT_EQ(url->database, "vcluster_app_abc");
    EXPECT_EQ(url->query.at("sslmode"), "require");
    EXPECT_EQ(url->query.count("sslrootcert"), 0U);
  }
}

TEST(KineDataSource, PostgresCarriesSslModeAndRootCertOnlyWhenVerifyingWithConnectorCa) {
  const secret password("pw");
  for (const tls_mode mode : {tls_mode::disable, tls_mode::allow, tls_mode::prefer, tls_mode::require,
                              tls_mode::verify_ca, tls_mode::verify_full}) {
    for (const std::string& ca_pem : std::vector<std::string>{"", "-----BEGIN CERTIFICATE-----..."}) {
      for (const std::string& ca_file : std::vector<std::string>{"", "/var/run/tenantdb creds/caCert"}) {
        const data_source_parts parts{make_server(engine_type::postgres, "db", 5432, mode, ca_pem), "db1", "u1",
                                      &password, ca_file};
        const std::string dsn = kine_data_source(parts).reveal();
        SCOPED_TRACE(dsn);
        const auto url = parse_postgres_url(dsn);
        ASSERT_TRUE(url.has_value());
        EXPECT_EQ(url->query.at("sslmode"), std::string(to_string(mode)));
        const bool verifying = mode == tls_mode::verify_ca || mode == tls_mode::verify_full;
        const bool expect_root_cert = verifying && !ca_pem.empty() && !ca_file.empty();
        EXPECT_EQ(url->query.count("sslrootcert"), expect_root_cert ? 1U : 0U);
        if (expect_root_cert) {
          EXPECT_EQ(url->query.at("sslrootcert"), ca_file);
        }
      }
    }
  }
}

TEST(KineDataSource, PostgresBracketsIpv6) {
  const secret password("pw");
  const data_source_parts parts{make_server(engine_type::postgres, "2001:db8::5", 6543, tls_mode::disable), "d", "u",
                                &password, ""};
  const auto url = parse_postgres_url(kine_data_source(parts).reveal());
  ASSERT_TRUE(url.has_value());
  EXPECT_EQ(url->host_port, "[2001:db8::5]:6543");
}

TEST(KineDataSource, MysqlPasswordIsVerbatimAndSurvivesGoSqlDriversParser) {
  for (const auto& pw : hostile_passwords()) {
    const secret password(pw);
    const data_source_parts parts{make_server(engine_type::mysql, "db.example.com", 3306, tls_mode::verify_full),
                                  "vcluster_app_abc", "vcluster_app_abc_a", &password, "/ca.crt"};
    const std::string dsn = kine_data_source(parts).reveal();
    SCOPED_TRACE(dsn);
    EXPECT_NE(dsn.find(":" + pw + "@"), std::string::npos) << "password must be verbatim, not encoded";
    const auto parsed = parse_go_mysql_dsn(dsn);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(parsed->user, "vcluster_app_abc_a");
    EXPECT_EQ(parsed->password, pw);
    EXPECT_EQ(parsed->net, "tcp");
    EXPECT_EQ(parsed->addr, "db.example.com:3306");
    EXPECT_EQ(parsed->database, "vcluster_app_abc");
  }
}

// Kine turns TLS on for MySQL only with --ca-file; without it the dataSource's own `tls`
// parameter (go-sql-driver's) is all that says how the connection is protected.
TEST(KineDataSource, MysqlSaysItsTlsWithGoSqlDriversTlsParameter) {
  const secret password("pw");
  const std::vector<std::pair<tls_mode, std::string>> cases = {
      {tls_mode::disable, "false"},       {tls_mode::allow, "preferred"}, {tls_mode::prefer, "preferred"},
      {tls_mode::require, "skip-verify"}, {tls_mode::verify_ca, "true"},  {tls_mode::verify_full, "true"}};
  for (const auto& [mode, expected] : cases) {
    for (const std::string& ca_pem : std::vector<std::string>{"", "-----BEGIN CERTIFICATE-----..."}) {
      const data_source_parts parts{make_server(engine_type::mysql, "db", 3306, mode, ca_pem), "db1", "u1", &password,
                                    "/run/tenantdb/files/caCert"};
      const std::string dsn = kine_data_source(parts).reveal();
      SCOPED_TRACE(dsn);
      EXPECT_EQ(go_mysql_tls(mode), expected);
      // Exactly one parameter, after the database: no file path (go-sql-driver cannot
      // read one; Kine's --ca-file names the CA).
      EXPECT_EQ(dsn, "mysql://u1:pw@tcp(db:3306)/db1?tls=" + expected);
      const auto parsed = parse_go_mysql_dsn(dsn);
      ASSERT_TRUE(parsed.has_value());
      EXPECT_EQ(parsed->database, "db1");
    }
  }
}

TEST(KineDataSource, MysqlBracketsIpv6) {
  const secret password("pw");
  const data_source_parts parts{make_server(engine_type::mysql, "::1", 3307, tls_mode::disable), "d", "u", &password,
                                ""};
  const auto parsed = parse_go_mysql_dsn(kine_data_source(parts).reveal());
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->addr, "[::1]:3307");
}

TEST(MaskDsn, HidesThePasswordOfAPostgresUrl) {
  for (const auto& pw : hostile_passwords()) {
    const secret password(pw);
    const data_source_parts parts{make_server(engine_type::postgres, "db", 5432, tls_mode::verify_full, "pem"), "d1",
                                  "u1", &password, "/ca.crt"};
    const std::string dsn = kine_data_source(parts).reveal();
    const std::string masked = mask_dsn(dsn);
    const std::string encoded = percent_encode(pw);
    std::string expected = dsn;
    expected.replace(expected.find(":" + encoded + "@") + 1, encoded.size(), "***");
    EXPECT_EQ(masked, expected) << dsn;
  }
}

TEST(MaskDsn, HidesTheWholePasswordOfAMysqlDsn) {
  for (const auto& pw : hostile_passwords()) {
    const secret password(pw);
    const data_source_parts parts{make_server(engine_type::mysql, "db", 3306, tls_mode::disable), "d1", "u1", &password,
                                  ""};
    const std::string dsn = kine_data_source(parts).reveal();
    EXPECT_EQ(mask_dsn(dsn), "mysql://u1:***@tcp(db:3306)/d1?tls=false") << dsn;
  }
}

TEST(MaskDsn, HidesThePasswordOfABareGoSqlDriverDsn) {
  EXPECT_EQ(mask_dsn("root:p@ss:w/rd@tcp(10.0.0.1:3306)/app?tls=true"), "root:***@tcp(10.0.0.1:3306)/app?tls=true");
  EXPECT_EQ(mask_dsn("root:secret@unix(/run/mysqld/mysqld.sock)/app"), "root:***@unix(/run/mysqld/mysqld.sock)/app");
}

TEST(MaskDsn, LeavesTextWithoutAPasswordUnchanged) {
  for (const std::string& text : std::vector<std::string>{""s, "connection refused"s, "db.example.com:5432"s,
                                                          "postgres://db:5432/app"s, "postgres://user@db:5432/app"s,
                                                          "user@tcp(db:3306)/app"s, "a:b"s, "time: 12:30 @ noon"s}) {
    EXPECT_EQ(mask_dsn(text), text);
  }
}

TEST(MaskDsn, HidesAPasswordInsideAMessage) {
  // "`text` with the password of any URL- or go-sql-driver-style DSN replaced": a DSN
  // quoted inside an error message is masked and the rest of the message kept.
  const std::string message = "cannot connect to postgres://admin:hunter2@db:5432/postgres: connection refused";
  const std::string masked = mask_dsn(message);
  EXPECT_EQ(masked.find("hunter2"), std::string::npos) << masked;
  EXPECT_EQ(masked, "cannot connect to postgres://admin:***@db:5432/postgres: connection refused");
}

}  // namespace
}  // namespace tenantdb
