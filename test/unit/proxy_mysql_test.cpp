// The MySQL/MariaDB proxy's pure protocol pieces (common/src/proxy/mysql_protocol.hpp):
// greeting and HandshakeResponse41 layouts, bounds on everything read from the network,
// the client->server framing that spots COM_CHANGE_USER, and the auth scrambles against
// vectors computed independently (Python's hashlib, see each test).

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proxy/mysql_protocol.hpp"

using namespace tenantdb::proxy::mysql;

namespace {

std::string hex(std::string_view s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

std::string le4(std::uint32_t v) {
  std::string s;
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  return s;
}

// A greeting laid out by hand from the protocol documentation (HandshakeV10), as
// MariaDB 10.11 sends it: CLIENT_MYSQL unset, so the last 4 reserved bytes are
// MariaDB's extended capabilities.
std::string mariadb_greeting_bytes() {
  std::string p;
  p.push_back(10);
  p += "5.5.5-10.11.6-MariaDB";
  p.push_back('\0');
  p += le4(1234);
  p += "ABCDEFGH";
  p.push_back('\0');
  const std::uint32_t caps = client_protocol_41 | client_secure_connection | client_plugin_auth | client_ssl |
                             client_compress | client_connect_with_db | client_connect_attrs;
  p.push_back(static_cast<char>(caps & 0xFF));
  p.push_back(static_cast<char>((caps >> 8) & 0xFF));
  p.push_back(45);  // charset
  p.push_back(2);   // status: autocommit
  p.push_back(0);
  p.push_back(static_cast<char>((caps >> 16) & 0xFF));
  p.push_back(static_cast<char>((caps >> 24) & 0xFF));
  p.push_back(21);  // auth data length: 20 + NUL
  p.append(6, '\0');
  p += le4(0x1D);  // MariaDB extended capabilities
  p += "IJKLMNOPQRST";
  p.push_back('\0');
  p += "mysql_native_password";
  p.push_back('\0');
  return p;
}

}  // namespace

TEST(ProxyMysqlProtocol, ParsesAHandWrittenMariadbGreeting) {
  const greeting g = parse_greeting(mariadb_greeting_bytes());
  EXPECT_EQ(g.protocol, 10);
  EXPECT_EQ(g.server_version, "5.5.5-10.11.6-MariaDB");
  EXPECT_EQ(g.connection_id, 1234u);
  EXPECT_EQ(g.scramble, "ABCDEFGHIJKLMNOPQRST");
  EXPECT_EQ(g.charset, 45);
  EXPECT_EQ(g.status, 2);
  EXPECT_NE(g.capabilities & client_ssl, 0u);
  EXPECT_NE(g.capabilities & client_plugin_auth, 0u);
  EXPECT_EQ(g.mariadb_capabilities, 0x1Du);
  EXPECT_EQ(g.plugin, "mysql_native_password");
}

TEST(ProxyMysqlProtocol, GreetingRoundTripsByteForByte) {
  const std::string original = mariadb_greeting_bytes();
  EXPECT_EQ(hex(build_greeting(parse_greeting(original))), hex(original));

  greeting g;
  g.server_version = "8.0.36";
  g.connection_id = 0xDEADBEEF;
  g.scramble = "0123456789abcdefghij";
  g.capabilities = client_protocol_41 | client_secure_connection | client_plugin_auth | client_long_password;
  g.mariadb_capabilities = 0xFF;  // must not be written: CLIENT_MYSQL is set
  g.charset = 255;
  g.status = 0x4002;
  g.plugin = "caching_sha2_password";
  const greeting back = parse_greeting(build_greeting(g));
  EXPECT_EQ(back.server_version, g.server_version);
  EXPECT_EQ(back.connection_id, g.connection_id);
  EXPECT_EQ(back.scramble, g.scramble);
  EXPECT_EQ(back.capabilities, g.capabilities);
  EXPECT_EQ(back.mariadb_capabilities, 0u);
  EXPECT_EQ(back.charset, 255);
  EXPECT_EQ(back.status, 0x4002);
  EXPECT_EQ(back.plugin, g.plugin);
}

TEST(ProxyMysqlProtocol, TruncatedGreetingsAreRefusedAtEveryLength) {
  const std::string full = mariadb_greeting_bytes();
  // Every prefix that cuts a mandatory field must throw; none may read past the end.
  // (A cut inside the trailing plugin name is accepted: servers omit its NUL.)
  const std::size_t plugin_at = full.size() - std::string("mysql_native_password").size() - 1;
  for (std::size_t n = 0; n < plugin_at; ++n) {
    if (n == 1 + 22 + 4 + 8 + 1 + 2) continue;  // the pre-4.1 short form stops here: throws too, below
    EXPECT_THROW(parse_greeting(full.substr(0, n)), protocol_error) << "prefix of " << n;
  }
  EXPECT_THROW(parse_greeting(full.substr(0, 1 + 22 + 4 + 8 + 1 + 2)), protocol_error);
  std::string v9 = full;
  v9[0] = 9;
  EXPECT_THROW(parse_greeting(v9), protocol_error);
}

TEST(ProxyMysqlProtocol, ParsesAFullHandshakeResponse) {
  handshake_response r;
  r.capabilities = client_protocol_41 | client_secure_connection | client_plugin_auth | client_plugin_auth_lenenc |
                   client_connect_with_db | client_connect_attrs;
  r.mariadb_capabilities = 0x5;
  r.max_packet = 16 * 1024 * 1024;
  r.charset = 45;
  r.user = "kine";
  r.auth_response = std::string(20, '\x01');
  r.database = "anything";
  r.plugin = "mysql_native_password";
  r.attributes = std::string("\x0c_client_name\x0alibmariadb", 24);
  const std::string bytes = build_handshake_response(r);
  const handshake_response back = parse_handshake_response(bytes);
  EXPECT_FALSE(back.ssl_request);
  EXPECT_EQ(back.capabilities, r.capabilities);
  EXPECT_EQ(back.mariadb_capabilities, 0x5u);
  EXPECT_EQ(back.max_packet, r.max_packet);
  EXPECT_EQ(back.charset, 45);
  EXPECT_EQ(back.user, "kine");
  EXPECT_EQ(back.auth_response, r.auth_response);
  EXPECT_EQ(back.database, "anything");
  EXPECT_EQ(back.plugin, "mysql_native_password");
  EXPECT_EQ(hex(back.attributes), hex(r.attributes));
  // Every prefix up to the end of the plugin name is truncated somewhere that matters.
  for (std::size_t n = 0; n < 32 + 5 + 1 + 20; ++n)
    EXPECT_THROW(parse_handshake_response(bytes.substr(0, n)), protocol_error) << "prefix of " << n;
  // Attributes announced longer than the packet.
  std::string lying = bytes;
  lying[lying.size() - r.attributes.size() - 1] = static_cast<char>(0xFA);
  EXPECT_THROW(parse_handshake_response(lying), protocol_error);
}

TEST(ProxyMysqlProtocol, ParsesAResponseWithoutDatabaseOrAttributes) {
  handshake_response r;
  r.capabilities = client_protocol_41 | client_secure_connection | client_long_password;
  r.max_packet = 1024;
  r.charset = 8;
  r.user = "root";
  r.auth_response = "";
  const handshake_response back = parse_handshake_response(build_handshake_response(r));
  EXPECT_EQ(back.user, "root");
  EXPECT_EQ(back.auth_response, "");
  EXPECT_EQ(back.database, "");
  EXPECT_EQ(back.plugin, "");
  EXPECT_EQ(back.attributes, "");
  EXPECT_EQ(back.mariadb_capabilities, 0u);  // CLIENT_MYSQL set: the filler is not MariaDB's
}

TEST(ProxyMysqlProtocol, RecognisesAnSslRequestAndRefusesPre41Clients) {
  handshake_response r;
  r.ssl_request = true;
  r.capabilities = client_protocol_41 | client_ssl | client_secure_connection;
  const std::string bytes = build_handshake_response(r);
  ASSERT_EQ(bytes.size(), 32u);
  EXPECT_TRUE(parse_handshake_response(bytes).ssl_request);
  r.capabilities = client_secure_connection;  // no CLIENT_PROTOCOL_41
  r.ssl_request = false;
  r.user = "x";
  EXPECT_THROW(parse_handshake_response(build_handshake_response(r)), protocol_error);
}

TEST(ProxyMysqlProtocol, LengthEncodedIntegersAreBounded) {
  for (std::uint64_t v : {0ULL, 250ULL, 251ULL, 65535ULL, 65536ULL, 0xFFFFFFULL, 0x1000000ULL, 1ULL << 40}) {
    std::string s;
    put_lenenc(s, v);
    std::size_t pos = 0;
    EXPECT_EQ(get_lenenc(s, pos), v);
    EXPECT_EQ(pos, s.size());
    std::size_t p2 = 0;
    EXPECT_THROW(get_lenenc(std::string_view(s).substr(0, s.size() - 1), p2), protocol_error) << v;
  }
  std::size_t pos = 0;
  EXPECT_THROW(get_lenenc("\xFB", pos), protocol_error);
}

TEST(ProxyMysqlProtocol, HeadersAndFramesCarryLengthAndSequence) {
  const unsigned char h[4] = {0xFF, 0xFF, 0xFF, 7};
  EXPECT_EQ(parse_header(h).length, 0xFFFFFFu);
  EXPECT_EQ(parse_header(h).seq, 7);
  EXPECT_EQ(hex(frame(3, "ab")),
            "0200000361"
            "62");
}

TEST(ProxyMysqlProtocol, ErrPacketsRoundTrip) {
  const std::string p = err_payload(1040, "08004", "tenantdb proxy: too many");
  const err_info e = parse_err(p);
  EXPECT_EQ(e.code, 1040);
  EXPECT_EQ(e.sqlstate, "08004");
  EXPECT_EQ(e.message, "tenantdb proxy: too many");
  EXPECT_THROW(parse_err(std::string_view("\x00\x01", 2)), protocol_error);
  EXPECT_THROW(parse_err("\xFF\x01"), protocol_error);
}

TEST(ProxyMysqlProtocol, AuthSwitchRoundTrips) {
  const auth_switch s = parse_auth_switch(auth_switch_payload("caching_sha2_password", "12345678901234567890"));
  EXPECT_EQ(s.plugin, "caching_sha2_password");
  EXPECT_EQ(s.data, "12345678901234567890");
  EXPECT_THROW(parse_auth_switch("\xFE"), protocol_error);  // the old-password switch
  EXPECT_THROW(parse_auth_switch(std::string("\xFEno-nul", 7)), protocol_error);
}

// Vectors from Python:
//   s1 = sha1(pw); m = sha1(scramble + sha1(s1)); s1 XOR m
//   p1 = sha256(pw); m = sha256(sha256(p1) + scramble); p1 XOR m
// with pw = b"secret-password", scramble = b"abcdefghij0123456789".
TEST(ProxyMysqlProtocol, ScramblesMatchIndependentVectors) {
  const std::string scramble = "abcdefghij0123456789";
  EXPECT_EQ(hex(native_password_response("secret-password", scramble)), "3be9cc95ba4c6d9078b84ae5d10833e8571e217a");
  EXPECT_EQ(hex(caching_sha2_response("secret-password", scramble)),
            "373c9b8b90cafc9f03a9c721796f17c8fb35eaf2cecd1cfda0f4bc3b26d1cb4c");
  EXPECT_EQ(native_password_response("", scramble), "");
  const std::string right = native_password_response("secret-password", scramble);
  EXPECT_TRUE(native_password_matches("secret-password", scramble, right));
  EXPECT_FALSE(native_password_matches("secret-passwore", scramble, right));
  EXPECT_FALSE(native_password_matches("secret-password", "abcdefghij012345678X", right));
  EXPECT_FALSE(native_password_matches("secret-password", scramble, right.substr(0, 19)));
  EXPECT_FALSE(native_password_matches("secret-password", scramble, ""));
}

namespace {

struct framed_run {
  std::string forwarded;
  std::vector<std::pair<std::uint8_t, std::uint8_t>> refused;  // (err seq, command)
};

// Feeds `input` to a framer in chunks of `chunk` bytes, as the relay does with a
// buffer that keeps unconsumed bytes.
framed_run run_framer(const std::string& input, std::size_t chunk) {
  command_framer f;
  framed_run out;
  std::string pending;
  std::size_t fed = 0;
  for (;;) {
    const auto* p = reinterpret_cast<const unsigned char*>(pending.data());
    const command_framer::step s = f.next(p, pending.size());
    if (s.consumed == 0) {
      if (fed == input.size()) break;
      const std::size_t take = std::min(chunk, input.size() - fed);
      pending.append(input, fed, take);
      fed += take;
      continue;
    }
    if (s.forward) out.forwarded.append(pending, 0, s.consumed);
    pending.erase(0, s.consumed);
    if (s.refuse) out.refused.emplace_back(s.err_seq, s.command);
  }
  EXPECT_TRUE(pending.empty()) << "left over: " << pending.size();
  return out;
}

std::string packet(std::uint8_t seq, const std::string& payload) {
  return frame(seq, payload);
}

}  // namespace

TEST(ProxyMysqlFramer, ForwardsCommandsAndDropsChangeUserAtAnyChunking) {
  const std::string query = packet(0, "\x03SELECT 1");
  const std::string change_user = packet(0, std::string("\x11root\0\0", 7));
  const std::string reset = packet(0, "\x1f");
  const std::string empty = packet(0, "");
  const std::string input = query + change_user + reset + empty + query;
  for (std::size_t chunk : {1, 2, 3, 4, 5, 7, 64, 4096}) {
    const framed_run r = run_framer(input, chunk);
    EXPECT_EQ(hex(r.forwarded), hex(query + reset + empty + query)) << "chunk " << chunk;
    ASSERT_EQ(r.refused.size(), 1u) << "chunk " << chunk;
    EXPECT_EQ(r.refused[0].first, 1);
    EXPECT_EQ(r.refused[0].second, com_change_user);
  }
}

TEST(ProxyMysqlFramer, FollowsContinuationsOfMaximumLength) {
  // A 16 MiB - 1 COM_QUERY, continued by a packet whose first byte is 0x11: that byte is
  // data, not a command, and must be forwarded.
  std::string big(max_payload, 'x');
  big[0] = '\x03';
  const std::string cont = packet(1, std::string("\x11 tail", 6));
  std::string input = packet(0, big) + cont + packet(0, "\x0e");  // then COM_PING
  const framed_run r = run_framer(input, 8192);
  EXPECT_EQ(r.forwarded.size(), input.size());
  EXPECT_TRUE(r.refused.empty());

  // A dropped COM_CHANGE_USER of maximum length and its continuation: all dropped, one
  // ERR with the sequence id after the continuation's.
  std::string huge(max_payload, 'y');
  huge[0] = '\x11';
  input = packet(0, huge) + packet(1, "zz") + packet(0, "\x0e");
  const framed_run d = run_framer(input, 8192);
  EXPECT_EQ(hex(d.forwarded), hex(packet(0, "\x0e")));
  ASSERT_EQ(d.refused.size(), 1u);
  EXPECT_EQ(d.refused[0].first, 2);
}

TEST(ProxyMysqlFramer, AHeaderWithoutItsBodyForwardsNothingYet) {
  // A length of 0xFFFFFF and no body: the header passes (the upstream waits for the
  // body), and the framer asks for more without holding any of it.
  command_framer f;
  const unsigned char h[5] = {0xFF, 0xFF, 0xFF, 0, 0x03};
  command_framer::step s = f.next(h, 4);
  EXPECT_EQ(s.consumed, 0u);  // the command byte decides
  s = f.next(h, 5);
  EXPECT_EQ(s.consumed, 5u);
  EXPECT_TRUE(s.forward);
}
