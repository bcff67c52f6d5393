#pragma once
// The MySQL/MariaDB wire protocol pieces the proxy needs, pure (no I/O) so they can be
// unit-tested: packet headers, the HandshakeV10 greeting, the client's
// HandshakeResponse41 (and SSLRequest), OK/ERR packets, the authentication scrambles
// (mysql_native_password, caching_sha2_password) and the client->server framing that
// lets the relay spot COM_CHANGE_USER without buffering whole packets.
//
// Every parser bounds what it reads by the payload it is given and throws
// mysql::protocol_error on anything truncated or malformed; no parser allocates more
// than the payload's size.

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace tenantdb::proxy::mysql {

/// Something malformed, truncated or oversized from the other side.
class protocol_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// Capability flags (lower and upper 16 bits of the protocol's 32-bit field).
inline constexpr std::uint32_t client_long_password = 1U << 0;  // MariaDB: CLIENT_MYSQL
inline constexpr std::uint32_t client_connect_with_db = 1U << 3;
inline constexpr std::uint32_t client_compress = 1U << 5;
inline constexpr std::uint32_t client_local_files = 1U << 7;
inline constexpr std::uint32_t client_protocol_41 = 1U << 9;
inline constexpr std::uint32_t client_ssl = 1U << 11;
inline constexpr std::uint32_t client_secure_connection = 1U << 15;
inline constexpr std::uint32_t client_plugin_auth = 1U << 19;
inline constexpr std::uint32_t client_connect_attrs = 1U << 20;
inline constexpr std::uint32_t client_plugin_auth_lenenc = 1U << 21;
inline constexpr std::uint32_t client_zstd = 1U << 26;
inline constexpr std::uint32_t client_multi_factor_auth = 1U << 28;
inline constexpr std::uint32_t client_ssl_verify_server_cert = 1U << 30;
inline constexpr std::uint32_t client_remember_options = 1U << 31;
// MariaDB's extended capabilities (the 4 bytes after the reserved filler, when
// CLIENT_MYSQL is unset), numbered from bit 0 of that field (bit 32 of the whole).
inline constexpr std::uint32_t mariadb_client_com_multi = 1U << 1;

/// What the proxy offers the client: the upstream's capabilities minus what it cannot
/// relay transparently (local TLS, compression, multi-factor auth, client-only flags).
/// LOAD DATA LOCAL INFILE is out too: the file's packets are not commands, and one that
/// starts with 0x11 would look like COM_CHANGE_USER to a relay that does not parse the
/// server's side.
inline constexpr std::uint32_t never_offered = client_ssl | client_compress | client_zstd | client_multi_factor_auth |
                                               client_ssl_verify_server_cert | client_remember_options |
                                               client_local_files;
/// MariaDB extended capabilities never offered: COM_MULTI could carry a COM_CHANGE_USER
/// past the relay's check.
inline constexpr std::uint32_t never_offered_mariadb = mariadb_client_com_multi;

// Commands (the first payload byte of a command packet).
inline constexpr std::uint8_t com_change_user = 0x11;
inline constexpr std::uint8_t com_reset_connection = 0x1f;
inline constexpr std::uint8_t com_multi = 0xfe;

/// Largest payload of one packet; a packet of exactly this size is continued by the next.
inline constexpr std::uint32_t max_payload = 0xFFFFFF;
/// Cap on any packet read during the handshake (greeting, response, auth exchange).
inline constexpr std::uint32_t handshake_packet_cap = 64 * 1024;

struct header {
  std::uint32_t length = 0;
  std::uint8_t seq = 0;
};
header parse_header(const unsigned char* four) noexcept;
/// The 4-byte header followed by `payload`. Throws protocol_error if payload exceeds max_payload.
std::string frame(std::uint8_t seq, std::string_view payload);

/// HandshakeV10 as the proxy reads and writes it.
struct greeting {
  std::uint8_t protocol = 10;
  std::string server_version;
  std::uint32_t connection_id = 0;
  std::string scramble;  ///< auth-plugin-data, without the trailing NUL (20 bytes usually)
  std::uint32_t capabilities = 0;
  std::uint32_t mariadb_capabilities = 0;  ///< only when CLIENT_MYSQL (bit 0) is unset
  std::uint8_t charset = 0;
  std::uint16_t status = 0;
  std::string plugin;  ///< auth plugin name, empty without CLIENT_PLUGIN_AUTH
};
greeting parse_greeting(std::string_view payload);
std::string build_greeting(const greeting& g);

/// HandshakeResponse41 (or, when `ssl_request`, the 32-byte SSLRequest that precedes TLS).
struct handshake_response {
  bool ssl_request = false;
  std::uint32_t capabilities = 0;
  std::uint32_t mariadb_capabilities = 0;
  std::uint32_t max_packet = 0;
  std::uint8_t charset = 0;
  std::string user;
  std::string auth_response;
  std::string database;
  std::string plugin;
  /// The connection attributes as sent: the key/value pairs without their total length.
  std::string attributes;
};
/// Parses the client's first packet. Throws protocol_error on a truncated or malformed
/// one, or one without CLIENT_PROTOCOL_41 (the pre-4.1 protocol is not served).
handshake_response parse_handshake_response(std::string_view payload);
/// Builds a HandshakeResponse41 (or the SSLRequest prefix when r.ssl_request). The auth
/// response goes length-encoded when r.capabilities has CLIENT_PLUGIN_AUTH_LENENC, else
/// with a 1-byte length (then at most 255 bytes).
std::string build_handshake_response(const handshake_response& r);

/// Length-encoded integers (the protocol's "int<lenenc>").
void put_lenenc(std::string& out, std::uint64_t v);
/// Reads one at `pos`, advancing it. Throws protocol_error if truncated or NULL (0xFB).
std::uint64_t get_lenenc(std::string_view in, std::size_t& pos);

/// An ERR packet payload (protocol 4.1: with '#' and a 5-character SQLSTATE).
std::string err_payload(std::uint16_t code, std::string_view sqlstate, std::string_view message);
struct err_info {
  std::uint16_t code = 0;
  std::string sqlstate;
  std::string message;
};
/// Parses an ERR payload (first byte 0xFF). Throws protocol_error if it is not one.
err_info parse_err(std::string_view payload);

/// An AuthSwitchRequest payload (0xFE, plugin name, plugin data with a trailing NUL).
std::string auth_switch_payload(std::string_view plugin, std::string_view scramble);
struct auth_switch {
  std::string plugin;
  std::string data;  ///< the new scramble, trailing NUL removed
};
auth_switch parse_auth_switch(std::string_view payload);

/// mysql_native_password: SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))); empty
/// for an empty password (what the clients send).
std::string native_password_response(std::string_view password, std::string_view scramble);
/// Constant time: true if `response` is native_password_response(password, scramble).
bool native_password_matches(std::string_view password, std::string_view scramble, std::string_view response);
/// caching_sha2_password's fast path: SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble).
std::string caching_sha2_response(std::string_view password, std::string_view scramble);

/// The client->server framing of the command phase. Feed it the bytes read from the
/// client; it says how many to forward (or drop) and when to answer a refused command
/// (COM_CHANGE_USER, COM_MULTI) instead of forwarding it. Holds a few integers, never
/// the data: packets of any size (up to 16 MiB - 1 and their continuations) pass
/// through a buffer of any size >= 5 bytes.
class command_framer {
public:
  struct step {
    std::size_t consumed = 0;  ///< bytes of the input this step covers (0: need more input)
    bool forward = true;       ///< forward them (else drop them)
    bool refuse = false;       ///< after these bytes, answer the refused command with an ERR
    std::uint8_t err_seq = 0;  ///< the ERR's sequence id
    std::uint8_t command = 0;  ///< the refused command
  };
  /// The next step for `in` (the unconsumed input; a partial header stays unconsumed
  /// until more arrives).
  step next(const unsigned char* in, std::size_t n);

  static bool refused(std::uint8_t command) noexcept { return command == com_change_user || command == com_multi; }

private:
  std::uint64_t remaining_ = 0;  // payload bytes of the current packet not yet seen
  bool dropping_ = false;        // the current command is being dropped
  bool continued_ = false;       // the current packet is 0xFFFFFF long: another follows
  std::uint8_t last_seq_ = 0;
  std::uint8_t command_ = 0;
};

}  // namespace tenantdb::proxy::mysql
