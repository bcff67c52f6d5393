// The pure parts of the PostgreSQL proxy (common/src/proxy/postgres_protocol.*): the
// front door's startup packet, message framing, the messages the proxy writes, PostgreSQL's
// md5 hash and both ends of SCRAM-SHA-256 against RFC 7677's test vector.

#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "base/base64.hpp"
#include "proxy/postgres_protocol.hpp"

namespace tenantdb::proxy::pg {
namespace {

using namespace std::string_literals;

/// The body of a StartupMessage 3.0 with `params` ("k\0v\0...") and the final terminator.
std::string startup_body(const std::string& params, std::uint32_t version = protocol_3_0) {
  std::string body;
  append_u32(body, version);
  return body + params + '\0';
}

TEST(ProxyPostgresStartup, ParsesEveryParameterInOrder) {
  const auto packet = parse_first_packet(startup_body(
      "user\0bob\0database\0shop\0application_name\0kine\0options\0-c work_mem=4MB\0client_encoding\0UTF8\0"s));
  const auto* s = std::get_if<startup_message>(&packet);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->version, protocol_3_0);
  ASSERT_EQ(s->params.size(), 5u);
  EXPECT_EQ(s->params[0], (std::pair<std::string, std::string>{"user", "bob"}));
  EXPECT_EQ(s->params[3], (std::pair<std::string, std::string>{"options", "-c work_mem=4MB"}));
  ASSERT_NE(s->find("application_name"), nullptr);
  EXPECT_EQ(*s->find("application_name"), "kine");
  EXPECT_EQ(s->find("replication"), nullptr);
}

TEST(ProxyPostgresStartup, EmptyValuesAreParameters) {
  const auto packet = parse_first_packet(startup_body("user\0bob\0options\0\0"s));
  const auto* s = std::get_if<startup_message>(&packet);
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->params.size(), 2u);
  EXPECT_EQ(s->params[1].second, "");
}

TEST(ProxyPostgresStartup, ReplicationIsRecognisedInEveryTrueSpelling) {
  for (const char* yes : {"true", "database", "1", "on", "yes", "TRUE", "Database"}) {
    const auto packet = parse_first_packet(startup_body("user\0bob\0replication\0"s + yes + '\0'));
    ASSERT_TRUE(std::holds_alternative<startup_message>(packet)) << yes;
    EXPECT_TRUE(wants_replication(std::get<startup_message>(packet))) << yes;
  }
  for (const char* no : {"false", "0", "no", "off", "OFF", "False"}) {
    const auto packet = parse_first_packet(startup_body("user\0bob\0replication\0"s + no + '\0'));
    ASSERT_TRUE(std::holds_alternative<startup_message>(packet)) << no;
    EXPECT_FALSE(wants_replication(std::get<startup_message>(packet))) << no;
  }
  const auto none = parse_first_packet(startup_body("user\0bob\0"s));
  EXPECT_FALSE(wants_replication(std::get<startup_message>(none)));
}

TEST(ProxyPostgresStartup, LengthWordIsBounded) {
  EXPECT_FALSE(check_startup_length(8).has_value());
  EXPECT_FALSE(check_startup_length(max_startup_length).has_value());
  EXPECT_TRUE(check_startup_length(max_startup_length + 1).has_value());
  EXPECT_TRUE(check_startup_length(7).has_value());
  EXPECT_TRUE(check_startup_length(0).has_value());
  EXPECT_TRUE(check_startup_length(0x80000000u).has_value());  // 2^31
  EXPECT_TRUE(check_startup_length(0xffffffffu).has_value());
}

TEST(ProxyPostgresStartup, TruncatedPacketsAreRefused) {
  EXPECT_TRUE(std::holds_alternative<bad_packet>(parse_first_packet("")));
  EXPECT_TRUE(std::holds_alternative<bad_packet>(parse_first_packet("\0\3"s)));
  std::string no_terminator;
  append_u32(no_terminator, protocol_3_0);
  no_terminator += "user\0bob"s;  // value cut off, no final terminator
  EXPECT_TRUE(std::holds_alternative<bad_packet>(parse_first_packet(no_terminator)));
  std::string key_only;
  append_u32(key_only, protocol_3_0);
  key_only += "user\0"s;  // a name without value, and no list terminator
  EXPECT_TRUE(std::holds_alternative<bad_packet>(parse_first_packet(key_only)));
  std::string trailing = startup_body("user\0bob\0"s) + "junk"s;
  EXPECT_TRUE(std::holds_alternative<bad_packet>(parse_first_packet(trailing)));
  std::string empty_list;
  append_u32(empty_list, protocol_3_0);  // no terminator at all
  EXPECT_TRUE(std::holds_alternative<bad_packet>(parse_first_packet(empty_list)));
}

TEST(ProxyPostgresStartup, OtherProtocolVersionsParseWithTheirVersionForTheRefusal) {
  for (std::uint32_t v : {0x00020000u, 0x00030001u, 0x00040000u, 0x12345678u}) {
    const auto packet = parse_first_packet(startup_body("user\0bob\0"s, v));
    const auto* s = std::get_if<startup_message>(&packet);
    ASSERT_NE(s, nullptr) << v;
    EXPECT_EQ(s->version, v);
    EXPECT_NE(s->version, protocol_3_0);
  }
}

TEST(ProxyPostgresStartup, SpecialRequests) {
  std::string ssl, gss, cancel, long_ssl, short_cancel;
  append_u32(ssl, ssl_request_code);
  append_u32(gss, gssenc_request_code);
  append_u32(cancel, cancel_request_code);
  append_u32(cancel, 4242);
  append_u32(cancel, 0xdeadbeef);
  EXPECT_TRUE(std::holds_alternative<ssl_request>(parse_first_packet(ssl)));
  EXPECT_TRUE(std::holds_alternative<gssenc_request>(parse_first_packet(gss)));
  const auto c = parse_first_packet(cancel);
  ASSERT_TRUE(std::holds_alternative<cancel_request>(c));
  EXPECT_EQ(std::get<cancel_request>(c).pid, 4242u);
  EXPECT_EQ(std::get<cancel_request>(c).key, 0xdeadbeefu);
  long_ssl = ssl + "x";
  EXPECT_TRUE(std::holds_alternative<bad_packet>(parse_first_packet(long_ssl)));
  short_cancel = cancel.substr(0, 10);
  EXPECT_TRUE(std::holds_alternative<bad_packet>(parse_first_packet(short_cancel)));
}

TEST(ProxyPostgresStartup, UpstreamStartupIsTheTenantsWithTheClientsOtherParameters) {
  const std::vector<std::pair<std::string, std::string>> client = {
      {"user", "postgres"},     {"database", "postgres"}, {"application_name", "kine"}, {"options", "-c search_path=x"},
      {"replication", "false"}, {"DateStyle", "ISO"}};
  const std::string packet = startup_for("tenant_a", "tenant_db", client);
  ASSERT_GE(packet.size(), 8u);
  EXPECT_EQ(read_u32(packet.data()), packet.size());
  const auto parsed = parse_first_packet(std::string_view(packet).substr(4));
  const auto* s = std::get_if<startup_message>(&parsed);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->version, protocol_3_0);
  const std::vector<std::pair<std::string, std::string>> want = {{"user", "tenant_a"},
                                                                 {"database", "tenant_db"},
                                                                 {"application_name", "kine"},
                                                                 {"options", "-c search_path=x"},
                                                                 {"DateStyle", "ISO"}};
  EXPECT_EQ(s->params, want);
}

TEST(ProxyPostgresFraming, HeaderLengthIsBoundedBeforeAllocating) {
  const std::string ok = "R\0\0\0\x0c"s;
  const header h = parse_header(ok.data());
  EXPECT_EQ(h.type, 'R');
  EXPECT_EQ(h.body_length(100), std::optional<std::uint32_t>(8));
  EXPECT_EQ(h.body_length(7), std::nullopt);
  const std::string too_short = "R\0\0\0\x03"s;
  EXPECT_EQ(parse_header(too_short.data()).body_length(100), std::nullopt);
  const std::string huge = "p\x80\0\0\0"s;  // 2^31
  EXPECT_EQ(parse_header(huge.data()).length, 0x80000000u);
  EXPECT_EQ(parse_header(huge.data()).body_length(max_upstream_login_length), std::nullopt);
}

TEST(ProxyPostgresFraming, ErrorResponseCarriesSeverityCodeAndMessage) {
  const std::string e = error_response("FATAL", "53300", "too many\0 connections"s);
  ASSERT_GE(e.size(), 5u);
  EXPECT_EQ(e[0], 'E');
  EXPECT_EQ(read_u32(e.data() + 1), e.size() - 1);
  EXPECT_EQ(e.back(), '\0');
  const auto fields = parse_fields(std::string_view(e).substr(5));
  EXPECT_EQ(field(fields, 'S'), "FATAL");
  EXPECT_EQ(field(fields, 'V'), "FATAL");
  EXPECT_EQ(field(fields, 'C'), "53300");
  EXPECT_EQ(field(fields, 'M'), "too many  connections");  // an embedded NUL cannot cut the field
}

TEST(ProxyPostgresFraming, MessagesTheProxyWrites) {
  EXPECT_EQ(authentication_ok(), "R\0\0\0\x08\0\0\0\0"s);
  EXPECT_EQ(authentication_sasl_scram(), "R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0"s);
  EXPECT_EQ(ssl_request_packet(), "\0\0\0\x08\x04\xd2\x16\x2f"s);
  EXPECT_EQ(cancel_request_packet(1, 2), "\0\0\0\x10\x04\xd2\x16\x2e\0\0\0\x01\0\0\0\x02"s);
  EXPECT_EQ(sasl_initial_response("SCRAM-SHA-256", "abc"),
            "p\0\0\0\x19SCRAM-SHA-256\0\0\0\0\x03"
            "abc"s);
  EXPECT_EQ(parse_sasl_mechanisms("SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"s),
            (std::vector<std::string>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}));
}

TEST(ProxyPostgresAuth, Md5PasswordMatchesPostgres) {
  // md5(hex(md5(password + user)) + salt), computed independently with Python's hashlib.
  EXPECT_EQ(md5_password(secret("Secr3tPassw0rd"), "vcluster_demo_a", "\x01\x02\x03\xfa"),
            "md5bfb7822bf26fce586e04d01f96da16ef");
}

// RFC 7677 section 3: user "user", password "pencil".
const std::string rfc_client_nonce = "rOprNGfwEbeRWgbNEkqO";
const std::string rfc_server_nonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const std::string rfc_server_first =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const std::string rfc_client_final =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const std::string rfc_server_final = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

TEST(ProxyPostgresAuth, ScramClientMatchesRfc7677) {
  scram_client c(secret("pencil"), "user", rfc_client_nonce, "n,,");
  EXPECT_EQ(c.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  const auto final_message = c.client_final(rfc_server_first);
  ASSERT_TRUE(final_message.has_value()) << c.error();
  EXPECT_EQ(*final_message, rfc_client_final);
  EXPECT_TRUE(c.verify_server_final(rfc_server_final));
  EXPECT_FALSE(c.verify_server_final("v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="));
  EXPECT_FALSE(c.verify_server_final("e=invalid-proof"));
}

TEST(ProxyPostgresAuth, ScramKeyCacheGivesTheSameProofAndMissesOnAnotherPassword) {
  scram_key_cache cache;
  for (int round = 0; round < 2; ++round) {
    scram_client c(secret("pencil"), "user", rfc_client_nonce, "n,,");
    EXPECT_EQ(c.client_final(rfc_server_first, &cache), rfc_client_final) << round;
    EXPECT_TRUE(c.verify_server_final(rfc_server_final)) << round;
  }
  // A miss on another password or another salt: the result is what no cache gives.
  const auto uncached = [](const char* password, const std::string& server_first) {
    scram_client c(secret(password), "user", rfc_client_nonce, "n,,");
    return c.client_final(server_first);
  };
  const std::string other_salt = "r=rOprNGfwEbeRWgbNEkqOx,s=X22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
  scram_client other(secret("pencil2"), "user", rfc_client_nonce, "n,,");
  EXPECT_EQ(other.client_final(rfc_server_first, &cache), uncached("pencil2", rfc_server_first));
  scram_client salted(secret("pencil"), "user", rfc_client_nonce, "n,,");
  EXPECT_EQ(salted.client_final(other_salt, &cache), uncached("pencil", other_salt));
  scram_client again(secret("pencil"), "user", rfc_client_nonce, "n,,");
  EXPECT_EQ(again.client_final(rfc_server_first, &cache), rfc_client_final);
}

TEST(ProxyPostgresAuth, ScramClientWithAnotherPasswordGivesAnotherProof) {
  scram_client c(secret("pencil2"), "user", rfc_client_nonce, "n,,");
  const auto final_message = c.client_final(rfc_server_first);
  ASSERT_TRUE(final_message.has_value());
  EXPECT_NE(*final_message, rfc_client_final);
  EXPECT_FALSE(c.verify_server_final(rfc_server_final));
}

TEST(ProxyPostgresAuth, ScramClientRefusesABadServerFirst) {
  const auto refuses = [](const std::string& server_first) {
    scram_client c(secret("pencil"), "", rfc_client_nonce, "n,,");
    const bool refused = !c.client_final(server_first).has_value();
    return refused && !c.error().empty();
  };
  EXPECT_TRUE(refuses("r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"));           // nonce not ours
  EXPECT_TRUE(refuses("r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"));  // nothing added
  EXPECT_TRUE(refuses("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0"));
  EXPECT_TRUE(refuses("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4294967296"));
  EXPECT_TRUE(refuses("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000001"));
  EXPECT_TRUE(refuses("r=rOprNGfwEbeRWgbNEkqOx,s=not*base64,i=4096"));
  EXPECT_TRUE(refuses("m=ext,r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"));
  EXPECT_TRUE(refuses("garbage"));
  EXPECT_FALSE(refuses(rfc_server_first));
}

TEST(ProxyPostgresAuth, ScramClientBindsTheChannel) {
  scram_client c(secret("pencil"), "", rfc_client_nonce, "p=tls-server-end-point,,", "\x01\x02\x03");
  EXPECT_EQ(c.client_first(), "p=tls-server-end-point,,n=,r=rOprNGfwEbeRWgbNEkqO");
  const auto final_message = c.client_final(rfc_server_first);
  ASSERT_TRUE(final_message.has_value());
  EXPECT_TRUE(final_message->starts_with("c=" + base64_encode("p=tls-server-end-point,,\x01\x02\x03") + ",r="));
}

scram_verifier rfc_verifier() {
  return make_scram_verifier(secret("pencil"), *base64_decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
}

TEST(ProxyPostgresAuth, ScramServerMatchesRfc7677) {
  const scram_verifier v = rfc_verifier();
  scram_server s(v, rfc_server_nonce);
  const auto first = s.server_first("n,,n=user,r=" + rfc_client_nonce);
  ASSERT_TRUE(first.has_value()) << s.error();
  EXPECT_EQ(*first, rfc_server_first);
  const auto final_message = s.server_final(rfc_client_final);
  ASSERT_TRUE(final_message.has_value()) << s.error();
  EXPECT_EQ(*final_message, rfc_server_final);
}

TEST(ProxyPostgresAuth, ScramServerRefusesAWrongProof) {
  const scram_verifier v = rfc_verifier();
  scram_server s(v, rfc_server_nonce);
  ASSERT_TRUE(s.server_first("n,,n=user,r=" + rfc_client_nonce).has_value());
  std::string tampered = rfc_client_final;
  tampered[tampered.size() - 3] = tampered[tampered.size() - 3] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(s.server_final(tampered).has_value());
}

TEST(ProxyPostgresAuth, ScramServerRefusesChannelBindingAndBadMessages) {
  const scram_verifier v = rfc_verifier();
  EXPECT_FALSE(scram_server(v, "x").server_first("p=tls-server-end-point,,n=,r=abc").has_value());
  EXPECT_FALSE(scram_server(v, "x").server_first("n,a=admin,n=,r=abc").has_value());
  EXPECT_FALSE(scram_server(v, "x").server_first("n,,r=abc").has_value());
  EXPECT_FALSE(scram_server(v, "x").server_first("").has_value());
  EXPECT_TRUE(scram_server(v, "x").server_first("y,,n=,r=abc").has_value());
  scram_server s(v, "x");
  EXPECT_FALSE(s.server_final("c=biws,r=abcx,p=AAAA").has_value());  // before server-first
  ASSERT_TRUE(s.server_first("n,,n=,r=abc").has_value());
  EXPECT_FALSE(s.server_final("c=biws,r=other,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=").has_value());
  EXPECT_FALSE(s.server_final("c=eSws,r=abcx,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=").has_value());
  EXPECT_FALSE(s.server_final("c=biws,r=abcx").has_value());
}

TEST(ProxyPostgresAuth, ScramClientAndServerAgreeOnlyOnTheSamePassword) {
  for (const char* client_password : {"local-pass", "local-pasS"}) {
    const scram_verifier v = make_scram_verifier(secret("local-pass"), "0123456789abcdef", 4096);
    scram_server s(v, random_nonce());
    scram_client c(secret(client_password), "", random_nonce(), "n,,");
    const auto first = s.server_first(c.client_first());
    ASSERT_TRUE(first.has_value());
    const auto client_final = c.client_final(*first);
    ASSERT_TRUE(client_final.has_value());
    const auto server_final = s.server_final(*client_final);
    const bool same = std::string(client_password) == "local-pass";
    EXPECT_EQ(server_final.has_value(), same) << client_password;
    if (server_final) {
      EXPECT_TRUE(c.verify_server_final(*server_final));
    }
  }
}

}  // namespace
}  // namespace tenantdb::proxy::pg
