// libFuzzer target: everything a PostgreSQL client's bytes reach in the proxy before it
// logs in upstream. The input is the client's side of the connection, read the way
// postgres_session.cpp reads it:
//   1. up to three first packets (length word, check_startup_length, parse_first_packet);
//      SSLRequest and GSSENCRequest are declined and the next one is read, a
//      CancelRequest or a malformed packet ends the session;
//   2. after a StartupMessage, the local SCRAM exchange: a 'p' message framed by
//      parse_header/body_length(max_client_auth_length) holding the SASLInitialResponse
//      (parsed inline by the session, mirrored here) for scram_server::server_first, then
//      a 'p' message with the client-final-message for scram_server::server_final;
//   3. whatever follows is read as more 'p' messages and given to md5_password and
//      parse_fields (bytes a confused client may send; cheap, and bounded the same way).
// The server nonce and the local password are fixed (fuzz_common.hpp) so a valid
// exchange is reachable; fuzz/corpus/postgres_front_door holds one.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "fuzz_common.hpp"
#include "proxy/postgres_protocol.hpp"

namespace pg = tenantdb::proxy::pg;

namespace {

/// The client's bytes, consumed front to back like a socket that then closes.
struct client_stream {
  std::string_view rest;
  bool take(std::size_t n, std::string_view& out) {
    if (rest.size() < n) return false;
    out = rest.substr(0, n);
    rest.remove_prefix(n);
    return true;
  }
};

void check(bool ok) {
  if (!ok) std::abort();
}

/// One framed client message during local auth; false where the session would end.
bool read_password_message(client_stream& in, std::string_view& body) {
  std::string_view h;
  if (!in.take(5, h)) return false;
  const pg::header hd = pg::parse_header(h.data());
  const auto n = hd.body_length(pg::max_client_auth_length);
  if (n) check(*n <= pg::max_client_auth_length);
  if (hd.type != 'p' || !n) return false;
  return in.take(*n, body);
}

void local_auth(client_stream& in) {
  std::string_view initial;
  if (!read_password_message(in, initial)) return;
  // As postgres_session.cpp's local_auth: mechanism, Int32 length, client-first-message.
  const std::size_t nul = initial.find('\0');
  if (nul == std::string_view::npos || initial.substr(0, nul) != "SCRAM-SHA-256" || initial.size() < nul + 5) return;
  const std::uint32_t len = pg::read_u32(initial.data() + nul + 1);
  if (len != initial.size() - nul - 5) return;
  pg::scram_server scram(tenantdb::fuzz::local_verifier(), std::string(tenantdb::fuzz::server_nonce));
  const auto server_first = scram.server_first(initial.substr(nul + 5));
  if (!server_first) {
    check(!scram.error().empty());
    return;
  }
  check(server_first->starts_with("r=") && server_first->find(tenantdb::fuzz::server_nonce) != std::string::npos);
  check(pg::authentication(11, *server_first).size() == server_first->size() + 9);
  std::string_view client_final;
  if (!read_password_message(in, client_final)) return;
  const auto server_final = scram.server_final(client_final);
  if (!server_final) check(!scram.error().empty());
  // A second client-final on the same exchange must not crash either.
  (void)scram.server_final(client_final);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  client_stream in{std::string_view(reinterpret_cast<const char*>(data), size)};
  for (int round = 0; round < 3; ++round) {
    std::string_view len_buf;
    if (!in.take(4, len_buf)) return 0;
    const std::uint32_t length = pg::read_u32(len_buf.data());
    if (pg::check_startup_length(length)) return 0;
    check(length >= 8 && length <= pg::max_startup_length);
    std::string_view body;
    if (!in.take(length - 4, body)) return 0;
    const pg::first_packet packet = pg::parse_first_packet(body);
    if (std::holds_alternative<pg::ssl_request>(packet) || std::holds_alternative<pg::gssenc_request>(packet)) continue;
    if (const auto* bad = std::get_if<pg::bad_packet>(&packet)) {
      check(!bad->message.empty());
      return 0;
    }
    if (const auto* cancel = std::get_if<pg::cancel_request>(&packet)) {
      check(pg::cancel_request_packet(cancel->pid, cancel->key).substr(4) == body);
      return 0;
    }
    const auto& startup = std::get<pg::startup_message>(packet);
    if (startup.version != pg::protocol_3_0) return 0;
    (void)pg::wants_replication(startup);
    const std::string* user = startup.find("user");
    const std::string* database = startup.find("database");
    // What the proxy sends upstream is built from the client's parameters: it must frame.
    const std::string upstream =
        pg::startup_for(user != nullptr ? *user : "", database != nullptr ? *database : "", startup.params);
    check(pg::read_u32(upstream.data()) == upstream.size());
    const auto reparsed = pg::parse_first_packet(std::string_view(upstream).substr(4));
    check(std::holds_alternative<pg::startup_message>(reparsed));
    local_auth(in);
    // Leftovers: further 'p' messages through the other client-reachable helpers.
    for (std::string_view body2; read_password_message(in, body2);) {
      (void)pg::parse_fields(body2);
      (void)pg::md5_password(tenantdb::secret(std::string(tenantdb::fuzz::local_password)), body2.substr(0, 64),
                             body2.substr(body2.size() > 4 ? body2.size() - 4 : 0));
    }
    return 0;
  }
  return 0;
}
