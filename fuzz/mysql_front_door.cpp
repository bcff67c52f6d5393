// libFuzzer target: everything a MySQL/MariaDB client's bytes reach in the proxy before
// (and, for the command framer, after) it logs in upstream, read the way
// mysql_session.cpp reads them:
//   1. the client's first packet (header, at most handshake_packet_cap) through
//      parse_handshake_response (HandshakeResponse41 or SSLRequest), and the
//      HandshakeResponse41 the proxy would build upstream from it;
//   2. when the client named another plugin, the auth-switch response packet; either
//      way native_password_matches against the proxy's scramble;
//   3. the rest is the command phase: command_framer over the client's bytes, read into
//      a buffer of a fuzzer-chosen size (5 to 64 bytes) in fuzzer-chosen pieces, the way
//      pump_up does. Its decisions are checked against a plain reference walk of the
//      same bytes: every byte forwarded or dropped as its command says, every complete
//      COM_CHANGE_USER/COM_MULTI refused once with the right sequence id, and never stuck
//      with a full buffer.
// Packets and bytes come from the front of the input; the buffer size and the read sizes
// from its back (FuzzedDataProvider), so a seed is a plain client byte stream.

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_common.hpp"
#include "proxy/mysql_protocol.hpp"

namespace my = tenantdb::proxy::mysql;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

/// One client packet as read_packet reads it during the handshake; false where the
/// session would end (closed, or over the cap).
bool read_packet(FuzzedDataProvider& in, std::string& payload) {
  const std::vector<unsigned char> h = in.ConsumeBytes<unsigned char>(4);
  if (h.size() < 4) return false;
  const my::header hd = my::parse_header(h.data());
  if (hd.length > my::handshake_packet_cap) return false;
  payload = in.ConsumeBytesAsString(hd.length);
  return payload.size() == hd.length;
}

struct refusal {
  std::uint8_t seq;
  std::uint8_t command;
  bool operator==(const refusal&) const = default;
};

/// What the framer should decide for `bytes`: a flag per byte it can classify ('f'
/// forward, 'd' drop) and the refusals, by walking whole packets.
void reference(const std::string& bytes, std::string& flags, std::vector<refusal>& refused) {
  std::size_t pos = 0;
  bool continued = false;
  bool dropping = false;
  std::uint8_t command = 0;
  while (bytes.size() - pos >= 4) {
    const my::header h = my::parse_header(reinterpret_cast<const unsigned char*>(bytes.data() + pos));
    if (!continued) {
      if (h.length > 0 && bytes.size() - pos < 5) return;  // the command byte decides
      command = h.length > 0 ? static_cast<std::uint8_t>(bytes[pos + 4]) : 0;
      dropping = h.length > 0 && my::command_framer::refused(command);
    }
    const std::size_t have = std::min<std::size_t>(h.length, bytes.size() - pos - 4);
    flags.append(4 + have, dropping ? 'd' : 'f');
    continued = h.length == my::max_payload;
    if (have < h.length) return;
    if (dropping && !continued) refused.push_back({static_cast<std::uint8_t>(h.seq + 1), command});
    pos += 4 + h.length;
  }
}

void command_phase(FuzzedDataProvider& in) {
  const std::size_t cap = in.ConsumeIntegralInRange<std::size_t>(5, 64);
  std::vector<unsigned char> buf(cap);
  std::size_t begin = 0;
  std::size_t end = 0;
  std::string delivered;  // every byte the client sent, in order
  std::string flags;      // the framer's decision per consumed byte
  std::vector<refusal> refused;
  my::command_framer framer;
  for (;;) {
    const my::command_framer::step s = framer.next(buf.data() + begin, end - begin);
    check(s.consumed <= end - begin);
    if (s.consumed == 0) {
      if (begin > 0) {
        std::memmove(buf.data(), buf.data() + begin, end - begin);
        end -= begin;
        begin = 0;
      }
      check(end < cap);  // a full buffer the framer cannot take from would hang the relay
      const std::size_t want = in.ConsumeIntegralInRange<std::size_t>(1, cap - end);
      const std::vector<unsigned char> got = in.ConsumeBytes<unsigned char>(want);
      if (got.empty()) break;  // the client closed
      std::memcpy(buf.data() + end, got.data(), got.size());
      end += got.size();
      delivered.append(got.begin(), got.end());
      continue;
    }
    flags.append(s.consumed, s.forward ? 'f' : 'd');
    if (s.refuse) {
      check(my::command_framer::refused(s.command));
      refused.push_back({s.err_seq, s.command});
    }
    begin += s.consumed;
    if (begin == end) begin = end = 0;
  }
  std::string want_flags;
  std::vector<refusal> want_refused;
  reference(delivered, want_flags, want_refused);
  check(flags == want_flags);
  check(refused == want_refused);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  std::string first;
  if (!read_packet(in, first)) return 0;
  my::handshake_response hello;
  try {
    hello = my::parse_handshake_response(first);
  } catch (const my::protocol_error&) {
    return 0;
  }
  check(hello.user.size() + hello.auth_response.size() + hello.database.size() + hello.plugin.size() +
            hello.attributes.size() <=
        first.size());
  if (hello.ssl_request) return 0;
  // What the proxy sends upstream carries the client's attributes, charset and limits.
  my::handshake_response up;
  up.capabilities = hello.capabilities | my::client_protocol_41 | my::client_secure_connection |
                    my::client_plugin_auth | my::client_connect_with_db;
  up.mariadb_capabilities = hello.mariadb_capabilities;
  up.max_packet = hello.max_packet;
  up.charset = hello.charset;
  up.user = "vcluster_fuzz_a";
  up.database = "vcluster_fuzz";
  up.plugin = "mysql_native_password";
  up.attributes = (up.capabilities & my::client_connect_attrs) != 0 ? hello.attributes : std::string();
  up.auth_response = my::native_password_response(tenantdb::fuzz::upstream_password, tenantdb::fuzz::mysql_scramble);
  const my::handshake_response back = my::parse_handshake_response(my::build_handshake_response(up));
  check(back.user == up.user && back.attributes == up.attributes && back.auth_response == up.auth_response);

  std::string response = hello.auth_response;
  if (!hello.plugin.empty() && hello.plugin != "mysql_native_password") {
    if (!read_packet(in, response)) return 0;
  }
  (void)my::native_password_matches(tenantdb::fuzz::local_password, tenantdb::fuzz::mysql_scramble, response);
  command_phase(in);
  return 0;
}
