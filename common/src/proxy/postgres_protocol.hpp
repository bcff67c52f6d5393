#pragma once
// The pure parts of the PostgreSQL proxy (no sockets): the front door's startup packet,
// message framing, the messages the proxy writes, and both ends of SCRAM-SHA-256
// (RFC 5802, RFC 7677) plus PostgreSQL's md5 password hash. postgres_session.cpp does
// the I/O; these are unit-tested on their own (test/unit/proxy_postgres_test.cpp).
// Private to tenantdb_common.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "tenantdb/secret.hpp"

namespace tenantdb::proxy::pg {

/// Longest startup packet accepted, length word included (PostgreSQL's MAX_STARTUP_PACKET_LENGTH).
inline constexpr std::uint32_t max_startup_length = 10000;
/// Longest message a client may send while it authenticates to the proxy (SASL messages).
inline constexpr std::uint32_t max_client_auth_length = 4096;
/// Longest message the upstream may send before ReadyForQuery (errors, parameters).
inline constexpr std::uint32_t max_upstream_login_length = 65536;
/// Highest SCRAM iteration count the proxy computes (each costs the proxy's thread CPU).
inline constexpr std::uint32_t max_scram_iterations = 1'000'000;

inline constexpr std::uint32_t protocol_3_0 = 196608;  // 3 << 16
inline constexpr std::uint32_t ssl_request_code = 80877103;
inline constexpr std::uint32_t gssenc_request_code = 80877104;
inline constexpr std::uint32_t cancel_request_code = 80877102;

std::uint32_t read_u32(const char* p) noexcept;
void append_u32(std::string& out, std::uint32_t v);

/// The first packet's length word: nullopt if acceptable (8 to max_startup_length), else
/// why not.
std::optional<std::string> check_startup_length(std::uint32_t length);

struct ssl_request {};
struct gssenc_request {};
struct cancel_request {
  std::uint32_t pid = 0;
  std::uint32_t key = 0;
};
struct startup_message {
  std::uint32_t version = 0;
  /// Every parameter in the client's order (user and database included).
  std::vector<std::pair<std::string, std::string>> params;
  /// The value of `name`, nullptr if absent (the last one wins, as in PostgreSQL).
  const std::string* find(std::string_view name) const;
};
/// A malformed first packet; `message` says what was wrong (no client bytes in it).
struct bad_packet {
  std::string message;
};
using first_packet = std::variant<ssl_request, gssenc_request, cancel_request, startup_message, bad_packet>;

/// Parses the body of a first packet (everything after the length word). A startup of
/// another protocol than 3.0 parses (version set) so the caller can refuse it by name.
first_packet parse_first_packet(std::string_view body);

/// True if the startup's `replication` value asks for a replication connection (anything
/// but false, 0, no, off, in any case; absent is no).
bool wants_replication(const startup_message& s);

/// A framed message header: type byte and the length word (which counts itself).
struct header {
  char type = 0;
  std::uint32_t length = 0;
  /// Bytes of body that follow (length - 4); nullopt if length < 4 or more than `max`.
  std::optional<std::uint32_t> body_length(std::uint32_t max) const;
};
header parse_header(const char* five_bytes) noexcept;

// Messages the proxy writes.
/// Type byte and length word around `body`.
std::string message(char type, std::string_view body);
std::string error_response(std::string_view severity, std::string_view sqlstate, std::string_view text);
std::string authentication(std::uint32_t code, std::string_view data = {});
std::string authentication_ok();
/// AuthenticationSASL offering only SCRAM-SHA-256.
std::string authentication_sasl_scram();
/// A StartupMessage 3.0 as `user` to `database` with the client's other parameters
/// (user, database and replication among them are dropped).
std::string startup_for(const std::string& user, const std::string& database,
                        const std::vector<std::pair<std::string, std::string>>& client_params);
std::string ssl_request_packet();
std::string cancel_request_packet(std::uint32_t pid, std::uint32_t key);
/// A 'p' message around `body`.
std::string password_message(std::string_view body);
/// SASLInitialResponse: mechanism, then the client-first message.
std::string sasl_initial_response(std::string_view mechanism, std::string_view data);

/// Fields of an ErrorResponse or NoticeResponse body, by field type ('C', 'M', 'S', ...).
std::vector<std::pair<char, std::string>> parse_fields(std::string_view body);
std::string field(const std::vector<std::pair<char, std::string>>& fields, char type);

/// Mechanisms named in an AuthenticationSASL body (after the code).
std::vector<std::string> parse_sasl_mechanisms(std::string_view data);

/// PostgreSQL's md5 password: "md5" + hex(md5(hex(md5(password + user)) + salt)).
std::string md5_password(const secret& password, std::string_view user, std::string_view salt);

/// Base64 of `n` random bytes from the CSPRNG (nonces).
std::string random_nonce(std::size_t n = 18);

/// The keys SCRAM derives from a password for one salt and iteration count. PBKDF2 is the
/// expensive part of every login (4096 HMACs by default), and the server's salt stays the
/// same until the password changes, so a login can reuse them.
class scram_key_cache {
public:
  struct keys {
    std::array<unsigned char, 32> client_key{};
    std::array<unsigned char, 32> server_key{};
  };
  /// The keys of (password, salt, iterations): derived on a miss, remembered (one entry).
  keys get(const secret& password, std::string_view salt, std::uint32_t iterations);

private:
  secret password_;
  std::string salt_;
  std::uint32_t iterations_ = 0;
  keys keys_;
  bool valid_ = false;
};

/// SCRAM-SHA-256 client (RFC 5802/7677), as libpq does it.
class scram_client {
public:
  /// `gs2_header` is "n,,", "y,," or "p=tls-server-end-point,,"; `binding` the channel
  /// binding data for "p=" (empty otherwise). `user` goes into n= (PostgreSQL: empty).
  scram_client(secret password, std::string user, std::string client_nonce, std::string gs2_header,
               std::string binding = {});
  /// client-first-message (gs2 header + bare).
  std::string client_first() const;
  /// Takes the server-first-message; returns the client-final-message, or nullopt with
  /// error() set (bad nonce, bad salt, iteration count out of range, mandatory extension).
  /// With `cache`, the keys come from it (and go into it).
  std::optional<std::string> client_final(std::string_view server_first, scram_key_cache* cache = nullptr);
  /// True if the server-final-message carries the expected server signature.
  bool verify_server_final(std::string_view server_final) const;
  const std::string& error() const { return error_; }

private:
  secret password_;
  std::string user_, nonce_, gs2_, binding_, error_;
  std::string auth_message_;
  std::array<unsigned char, 32> server_key_{};
  bool have_keys_ = false;
};

/// SCRAM-SHA-256 server for the proxy's local password: the password never crosses the
/// wire. Keys are derived once per (password, salt) by the caller (scram_verifier).
struct scram_verifier {
  std::string salt;  ///< raw bytes
  std::uint32_t iterations = 4096;
  std::array<unsigned char, 32> stored_key{};
  std::array<unsigned char, 32> server_key{};
};
scram_verifier make_scram_verifier(const secret& password, std::string salt, std::uint32_t iterations);

class scram_server {
public:
  scram_server(const scram_verifier& v, std::string server_nonce);
  /// Takes the client-first-message; returns the server-first-message, or nullopt with
  /// error() (malformed, channel binding demanded).
  std::optional<std::string> server_first(std::string_view client_first);
  /// Takes the client-final-message; returns the server-final-message if the proof is
  /// right (compared in constant time), nullopt otherwise.
  std::optional<std::string> server_final(std::string_view client_final);
  const std::string& error() const { return error_; }

private:
  const scram_verifier& v_;
  std::string server_nonce_, nonce_, gs2_, client_first_bare_, server_first_, error_;
};

}  // namespace tenantdb::proxy::pg
