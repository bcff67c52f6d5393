// libFuzzer target: what a hostile or broken server's bytes reach in the proxy while it
// logs in as the tenant (a server is in the threat model too). The first input byte
// picks the engine; the rest is the server's side of the connection, read the way the
// sessions read it:
//   PostgreSQL (first byte even): messages framed by parse_header and
//     body_length(max_upstream_login_length): ErrorResponse/NoticeResponse through
//     parse_fields and field; AuthenticationMD5Password through md5_password;
//     AuthenticationSASL through parse_sasl_mechanisms and scram_client::client_first;
//     SASLContinue through scram_client::client_final (server-first-message: nonce, salt,
//     iteration count); SASLFinal through verify_server_final; after AuthenticationOk,
//     BackendKeyData and the rest up to ReadyForQuery. Bit 1 of the first byte picks
//     SCRAM-SHA-256-PLUS (with a fixed binding) over plain SCRAM-SHA-256.
//   MySQL (first byte odd): packets of at most handshake_packet_cap: the greeting (or an
//     ERR) through parse_greeting, the greeting the proxy derives from it through
//     build_greeting and back, then the auth exchange: ERR through parse_err,
//     AuthSwitchRequest through parse_auth_switch and the scrambles.
// The proxy's client nonce is fixed (fuzz_common.hpp) so a server-first-message that
// extends it is reachable. Iteration counts from 4097 to max_scram_iterations are
// skipped: they are legal and only slow (PBKDF2), which the fuzzer would report as
// timeouts; above the maximum they are refused before any work and still fuzzed.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_common.hpp"
#include "proxy/mysql_protocol.hpp"
#include "proxy/postgres_protocol.hpp"

namespace pg = tenantdb::proxy::pg;
namespace my = tenantdb::proxy::mysql;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

struct server_stream {
  std::string_view rest;
  bool take(std::size_t n, std::string_view& out) {
    if (rest.size() < n) return false;
    out = rest.substr(0, n);
    rest.remove_prefix(n);
    return true;
  }
};

bool read_upstream_message(server_stream& in, char& type, std::string_view& body) {
  std::string_view h;
  if (!in.take(5, h)) return false;
  const pg::header hd = pg::parse_header(h.data());
  const auto n = hd.body_length(pg::max_upstream_login_length);
  if (!n) return false;
  type = hd.type;
  return in.take(*n, body);
}

/// True if the server-first-message's i= is in the legal-but-slow range (see above).
bool slow_iterations(std::string_view server_first) {
  const std::size_t at = server_first.find(",i=");
  if (at == std::string_view::npos) return false;
  std::uint64_t v = 0;
  for (std::size_t i = at + 3; i < server_first.size() && i < at + 13; ++i) {
    const char c = server_first[i];
    if (c < '0' || c > '9') break;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v > 4096 && v <= pg::max_scram_iterations;
}

void postgres(server_stream& in, bool plus) {
  const tenantdb::secret password{std::string(tenantdb::fuzz::upstream_password)};
  std::optional<pg::scram_client> scram;
  static pg::scram_key_cache keys;  // as the session's thread_local cache
  char type = 0;
  std::string_view body;
  for (bool authenticated = false; !authenticated;) {
    if (!read_upstream_message(in, type, body)) return;
    if (type == 'E' || type == 'N') {
      const auto fields = pg::parse_fields(body);
      (void)pg::field(fields, 'C');
      (void)pg::field(fields, 'M');
      if (type == 'E') return;
      continue;
    }
    if (type == 'v') continue;
    if (type != 'R' || body.size() < 4) return;
    const std::uint32_t code = pg::read_u32(body.data());
    const std::string_view data = body.substr(4);
    switch (code) {
      case 0: authenticated = true; break;
      case 3: break;
      case 5:
        if (data.size() != 4) return;
        check(pg::md5_password(password, tenantdb::fuzz::upstream_user, data).size() == 35);
        break;
      case 10: {
        const auto mechs = pg::parse_sasl_mechanisms(data);
        for (const auto& m : mechs) check(!m.empty() && m.find('\0') == std::string::npos);
        scram.emplace(password, "", std::string(tenantdb::fuzz::client_nonce),
                      plus ? "p=tls-server-end-point,," : "n,,", plus ? std::string(32, 'B') : std::string());
        (void)pg::sasl_initial_response(plus ? "SCRAM-SHA-256-PLUS" : "SCRAM-SHA-256", scram->client_first());
        break;
      }
      case 11: {
        if (!scram || slow_iterations(data)) return;
        const auto final_message = scram->client_final(data, &keys);
        if (!final_message) {
          check(!scram->error().empty());
          return;
        }
        break;
      }
      case 12:
        if (!scram) return;
        (void)scram->verify_server_final(data);
        break;
      default: return;
    }
  }
  while (read_upstream_message(in, type, body)) {
    if (type == 'E') {
      (void)pg::parse_fields(body);
      return;
    }
    if (type == 'K' && body.size() == 8)
      (void)pg::cancel_request_packet(pg::read_u32(body.data()), pg::read_u32(body.data() + 4));
    if (type == 'Z') return;
  }
}

bool read_packet(server_stream& in, std::string_view& payload) {
  std::string_view h;
  if (!in.take(4, h)) return false;
  const my::header hd = my::parse_header(reinterpret_cast<const unsigned char*>(h.data()));
  if (hd.length > my::handshake_packet_cap) return false;
  return in.take(hd.length, payload);
}

void mysql(server_stream& in) {
  std::string_view p;
  if (!read_packet(in, p)) return;
  my::greeting g;
  try {
    if (!p.empty() && static_cast<unsigned char>(p[0]) == 0xFF) {
      const my::err_info e = my::parse_err(p);
      check(e.sqlstate.size() + e.message.size() <= p.size());
      return;
    }
    g = my::parse_greeting(p);
  } catch (const my::protocol_error&) {
    return;
  }
  // The greeting the proxy offers its client, derived as mysql_session.cpp does.
  my::greeting ours = g;
  ours.capabilities = (ours.capabilities & ~my::never_offered) | my::client_plugin_auth;
  ours.mariadb_capabilities &= ~my::never_offered_mariadb;
  ours.scramble = std::string(tenantdb::fuzz::mysql_scramble);
  ours.plugin = "mysql_native_password";
  const my::greeting back = my::parse_greeting(my::build_greeting(ours));
  check(back.server_version == ours.server_version && back.connection_id == ours.connection_id &&
        back.capabilities == ours.capabilities && back.plugin == ours.plugin);
  if ((ours.capabilities & my::client_secure_connection) != 0) check(back.scramble == ours.scramble);
  if ((ours.capabilities & my::client_long_password) == 0)
    check(back.mariadb_capabilities == ours.mariadb_capabilities);

  std::string plugin = g.plugin.empty() ? "mysql_native_password" : g.plugin;
  std::string scramble = g.scramble;
  for (int round = 0; round < 8; ++round) {
    if (!read_packet(in, p) || p.empty()) return;
    const auto kind = static_cast<unsigned char>(p[0]);
    try {
      if (kind == 0x00) return;
      if (kind == 0xFF) {
        (void)my::parse_err(p);
        return;
      }
      if (kind == 0xFE) {
        const my::auth_switch sw = my::parse_auth_switch(p);
        check(sw.plugin.size() + sw.data.size() < p.size());
        plugin = sw.plugin;
        scramble = sw.data;
      }
    } catch (const my::protocol_error&) {
      return;
    }
    if (plugin == "caching_sha2_password")
      (void)my::caching_sha2_response(tenantdb::fuzz::upstream_password, scramble);
    else
      (void)my::native_password_response(tenantdb::fuzz::upstream_password, scramble);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  server_stream in{std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1)};
  if ((data[0] & 1) == 0)
    postgres(in, (data[0] & 2) != 0);
  else
    mysql(in);
  return 0;
}
