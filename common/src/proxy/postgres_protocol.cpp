// The pure parts of the PostgreSQL proxy; see postgres_protocol.hpp.

#include "proxy/postgres_protocol.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "base/base64.hpp"

namespace tenantdb::proxy::pg {

namespace {

using key32 = std::array<unsigned char, 32>;

std::string_view as_view(const key32& k) {
  return {reinterpret_cast<const char*>(k.data()), k.size()};
}

key32 hmac(std::string_view key, std::string_view data) {
  key32 out{};
  unsigned int n = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
           data.size(), out.data(), &n) == nullptr ||
      n != out.size())
    throw std::runtime_error("HMAC-SHA-256 failed");
  return out;
}

key32 sha256(std::string_view data) {
  key32 out{};
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data());
  return out;
}

key32 salted_password(const secret& password, std::string_view salt, std::uint32_t iterations) {
  key32 out{};
  if (PKCS5_PBKDF2_HMAC(password.reveal().data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                        static_cast<int>(iterations), EVP_sha256(), static_cast<int>(out.size()), out.data()) != 1)
    throw std::runtime_error("PBKDF2 failed");
  return out;
}

/// Splits a SCRAM message into its attributes ("r=...", "s=..."), in order.
std::vector<std::string_view> attributes(std::string_view message) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = message.find(',', start);
    out.push_back(message.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

bool is_attr(std::string_view a, char name) {
  return a.size() >= 2 && a[0] == name && a[1] == '=';
}

/// A nonce: printable ASCII except ',' (RFC 5802).
bool valid_nonce(std::string_view n) {
  if (n.empty()) return false;
  return std::all_of(n.begin(), n.end(), [](char c) { return c > 0x20 && c < 0x7f && c != ','; });
}

std::string scram_escape(std::string_view user) {
  std::string out;
  for (char c : user) {
    if (c == ',')
      out += "=2C";
    else if (c == '=')
      out += "=3D";
    else
      out += c;
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

void append_cstring(std::string& out, std::string_view s) {
  for (char c : s) out += c == '\0' ? ' ' : c;  // a NUL would end the field early
  out += '\0';
}

}  // namespace

std::string message(char type, std::string_view body) {
  std::string out;
  out.reserve(body.size() + 5);
  out += type;
  append_u32(out, static_cast<std::uint32_t>(body.size() + 4));
  out += body;
  return out;
}

std::uint32_t read_u32(const char* p) noexcept {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (std::uint32_t{u[0]} << 24) | (std::uint32_t{u[1]} << 16) | (std::uint32_t{u[2]} << 8) | std::uint32_t{u[3]};
}

void append_u32(std::string& out, std::uint32_t v) {
  out += static_cast<char>((v >> 24) & 0xff);
  out += static_cast<char>((v >> 16) & 0xff);
  out += static_cast<char>((v >> 8) & 0xff);
  out += static_cast<char>(v & 0xff);
}

std::optional<std::string> check_startup_length(std::uint32_t length) {
  if (length < 8) return "invalid length of startup packet (" + std::to_string(length) + " bytes)";
  if (length > max_startup_length)
    return "startup packet too long (" + std::to_string(length) + " bytes, at most " +
           std::to_string(max_startup_length) + ")";
  return std::nullopt;
}

const std::string* startup_message::find(std::string_view name) const {
  const std::string* found = nullptr;
  for (const auto& [k, v] : params)
    if (k == name) found = &v;
  return found;
}

first_packet parse_first_packet(std::string_view body) {
  if (body.size() < 4) return bad_packet{"startup packet too short"};
  const std::uint32_t code = read_u32(body.data());
  const std::string_view rest = body.substr(4);
  if (code == ssl_request_code) {
    if (!rest.empty()) return bad_packet{"SSLRequest with trailing bytes"};
    return ssl_request{};
  }
  if (code == gssenc_request_code) {
    if (!rest.empty()) return bad_packet{"GSSENCRequest with trailing bytes"};
    return gssenc_request{};
  }
  if (code == cancel_request_code) {
    if (rest.size() != 8) return bad_packet{"CancelRequest of the wrong length"};
    return cancel_request{read_u32(rest.data()), read_u32(rest.data() + 4)};
  }
  startup_message s;
  s.version = code;
  if (code != protocol_3_0) return s;  // the caller refuses it by version
  if (rest.empty() || rest.back() != '\0') return bad_packet{"startup packet does not end with a terminator"};
  std::size_t at = 0;
  for (;;) {
    const std::size_t key_end = rest.find('\0', at);
    if (key_end == std::string_view::npos) return bad_packet{"startup packet parameter without a terminator"};
    if (key_end == at) {  // the empty name that ends the list
      if (key_end + 1 != rest.size()) return bad_packet{"startup packet has bytes after its terminator"};
      break;
    }
    const std::size_t value_end = rest.find('\0', key_end + 1);
    if (value_end == std::string_view::npos)
      return bad_packet{"startup packet parameter " +
                        std::string(rest.substr(at, std::min<std::size_t>(key_end - at, 64))) + " has no value"};
    s.params.emplace_back(std::string(rest.substr(at, key_end - at)),
                          std::string(rest.substr(key_end + 1, value_end - key_end - 1)));
    at = value_end + 1;
    if (at >= rest.size()) return bad_packet{"startup packet does not end with a terminator"};
  }
  return s;
}

bool wants_replication(const startup_message& s) {
  const std::string* v = s.find("replication");
  if (v == nullptr) return false;
  const std::string l = lower(*v);
  return !(l == "false" || l == "0" || l == "no" || l == "off");
}

std::optional<std::uint32_t> header::body_length(std::uint32_t max) const {
  if (length < 4 || length - 4 > max) return std::nullopt;
  return length - 4;
}

header parse_header(const char* five_bytes) noexcept {
  return header{five_bytes[0], read_u32(five_bytes + 1)};
}

std::string error_response(std::string_view severity, std::string_view sqlstate, std::string_view text) {
  std::string body;
  body += 'S';
  append_cstring(body, severity);
  body += 'V';
  append_cstring(body, severity);
  body += 'C';
  append_cstring(body, sqlstate);
  body += 'M';
  append_cstring(body, text);
  body += '\0';
  return message('E', body);
}

std::string authentication(std::uint32_t code, std::string_view data) {
  std::string body;
  append_u32(body, code);
  body += data;
  return message('R', body);
}

std::string authentication_ok() {
  return authentication(0);
}

std::string authentication_sasl_scram() {
  return authentication(10, std::string_view("SCRAM-SHA-256\0\0", 15));
}

std::string startup_for(const std::string& user, const std::string& database,
                        const std::vector<std::pair<std::string, std::string>>& client_params) {
  std::string body;
  append_u32(body, protocol_3_0);
  append_cstring(body, "user");
  append_cstring(body, user);
  append_cstring(body, "database");
  append_cstring(body, database);
  for (const auto& [k, v] : client_params) {
    if (k == "user" || k == "database" || k == "replication") continue;
    append_cstring(body, k);
    append_cstring(body, v);
  }
  body += '\0';
  std::string out;
  append_u32(out, static_cast<std::uint32_t>(body.size() + 4));
  return out + body;
}

std::string ssl_request_packet() {
  std::string out;
  append_u32(out, 8);
  append_u32(out, ssl_request_code);
  return out;
}

std::string cancel_request_packet(std::uint32_t pid, std::uint32_t key) {
  std::string out;
  append_u32(out, 16);
  append_u32(out, cancel_request_code);
  append_u32(out, pid);
  append_u32(out, key);
  return out;
}

std::string password_message(std::string_view body) {
  return message('p', body);
}

std::string sasl_initial_response(std::string_view mechanism, std::string_view data) {
  std::string body;
  append_cstring(body, mechanism);
  append_u32(body, static_cast<std::uint32_t>(data.size()));
  body += data;
  return message('p', body);
}

std::vector<std::pair<char, std::string>> parse_fields(std::string_view body) {
  std::vector<std::pair<char, std::string>> out;
  std::size_t at = 0;
  while (at < body.size() && body[at] != '\0') {
    const char type = body[at];
    const std::size_t end = body.find('\0', at + 1);
    if (end == std::string_view::npos) break;
    out.emplace_back(type, std::string(body.substr(at + 1, end - at - 1)));
    at = end + 1;
  }
  return out;
}

std::string field(const std::vector<std::pair<char, std::string>>& fields, char type) {
  for (const auto& [t, v] : fields)
    if (t == type) return v;
  return {};
}

std::vector<std::string> parse_sasl_mechanisms(std::string_view data) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < data.size()) {
    const std::size_t end = data.find('\0', at);
    if (end == std::string_view::npos || end == at) break;
    out.emplace_back(data.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

std::string md5_password(const secret& password, std::string_view user, std::string_view salt) {
  auto hex_md5 = [](std::string_view data) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(data.data(), data.size(), digest, &n, EVP_md5(), nullptr) != 1)
      throw std::runtime_error("MD5 failed");
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < n; ++i) {
      out += hex[digest[i] >> 4];
      out += hex[digest[i] & 0xf];
    }
    OPENSSL_cleanse(digest, sizeof digest);
    return out;
  };
  std::string first_in = password.reveal() + std::string(user);
  std::string inner = hex_md5(first_in);
  wipe(first_in);
  std::string result = "md5" + hex_md5(inner + std::string(salt));
  wipe(inner);
  return result;
}

std::string random_nonce(std::size_t n) {
  std::string raw(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(n)) != 1)
    throw std::runtime_error("the CSPRNG failed");
  return base64_encode(raw);
}

// ---------------------------------------------------------------------------------------
// SCRAM client

scram_client::scram_client(secret password, std::string user, std::string client_nonce, std::string gs2_header,
                           std::string binding)
    : password_(std::move(password)),
      user_(std::move(user)),
      nonce_(std::move(client_nonce)),
      gs2_(std::move(gs2_header)),
      binding_(std::move(binding)) {}

std::string scram_client::client_first() const {
  return gs2_ + "n=" + scram_escape(user_) + ",r=" + nonce_;
}

scram_key_cache::keys scram_key_cache::get(const secret& password, std::string_view salt, std::uint32_t iterations) {
  if (valid_ && iterations == iterations_ && salt == salt_ && password == password_) return keys_;
  key32 sp = salted_password(password, salt, iterations);
  keys_.client_key = hmac(as_view(sp), "Client Key");
  keys_.server_key = hmac(as_view(sp), "Server Key");
  OPENSSL_cleanse(sp.data(), sp.size());
  password_ = password;
  salt_ = std::string(salt);
  iterations_ = iterations;
  valid_ = true;
  return keys_;
}

std::optional<std::string> scram_client::client_final(std::string_view server_first, scram_key_cache* cache) {
  const auto attrs = attributes(server_first);
  if (attrs.size() < 3 || !is_attr(attrs[0], 'r') || !is_attr(attrs[1], 's') || !is_attr(attrs[2], 'i')) {
    error_ = attrs.empty() || !is_attr(attrs[0], 'm') ? "malformed SCRAM server-first-message"
                                                      : "the server demands a SCRAM extension";
    return std::nullopt;
  }
  const std::string_view nonce = attrs[0].substr(2);
  if (!valid_nonce(nonce) || nonce.size() <= nonce_.size() || nonce.substr(0, nonce_.size()) != nonce_) {
    error_ = "the server's SCRAM nonce does not extend the proxy's";
    return std::nullopt;
  }
  const auto salt = base64_decode(attrs[1].substr(2));
  if (!salt || salt->empty()) {
    error_ = "the server's SCRAM salt is not base64";
    return std::nullopt;
  }
  const std::string_view iter_text = attrs[2].substr(2);
  std::uint64_t iterations = 0;
  if (iter_text.empty() || iter_text.size() > 10 ||
      !std::all_of(iter_text.begin(), iter_text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    error_ = "the server's SCRAM iteration count is not a number";
    return std::nullopt;
  }
  for (char c : iter_text) iterations = iterations * 10 + static_cast<std::uint64_t>(c - '0');
  if (iterations < 1 || iterations > max_scram_iterations) {
    error_ = "the server's SCRAM iteration count " + std::string(iter_text) + " is out of range (1 to " +
             std::to_string(max_scram_iterations) + ")";
    return std::nullopt;
  }
  scram_key_cache one_off;
  scram_key_cache::keys k =
      (cache != nullptr ? *cache : one_off).get(password_, *salt, static_cast<std::uint32_t>(iterations));
  key32 client_key = k.client_key;
  const key32 stored_key = sha256(as_view(client_key));
  server_key_ = k.server_key;
  OPENSSL_cleanse(k.client_key.data(), k.client_key.size());
  const std::string without_proof = "c=" + base64_encode(gs2_ + binding_) + ",r=" + std::string(nonce);
  auth_message_ = client_first().substr(gs2_.size()) + "," + std::string(server_first) + "," + without_proof;
  const key32 signature = hmac(as_view(stored_key), auth_message_);
  key32 proof{};
  for (std::size_t i = 0; i < proof.size(); ++i) proof[i] = client_key[i] ^ signature[i];
  OPENSSL_cleanse(client_key.data(), client_key.size());
  have_keys_ = true;
  return without_proof + ",p=" + base64_encode(as_view(proof));
}

bool scram_client::verify_server_final(std::string_view server_final) const {
  if (!have_keys_) return false;
  const auto attrs = attributes(server_final);
  if (attrs.empty() || !is_attr(attrs[0], 'v')) return false;
  const auto got = base64_decode(attrs[0].substr(2));
  const key32 want = hmac(as_view(server_key_), auth_message_);
  return got && got->size() == want.size() && CRYPTO_memcmp(got->data(), want.data(), want.size()) == 0;
}

// ---------------------------------------------------------------------------------------
// SCRAM server

scram_verifier make_scram_verifier(const secret& password, std::string salt, std::uint32_t iterations) {
  scram_verifier v;
  v.salt = std::move(salt);
  v.iterations = iterations;
  key32 sp = salted_password(password, v.salt, iterations);
  key32 client_key = hmac(as_view(sp), "Client Key");
  v.stored_key = sha256(as_view(client_key));
  v.server_key = hmac(as_view(sp), "Server Key");
  OPENSSL_cleanse(sp.data(), sp.size());
  OPENSSL_cleanse(client_key.data(), client_key.size());
  return v;
}

scram_server::scram_server(const scram_verifier& v, std::string server_nonce)
    : v_(v), server_nonce_(std::move(server_nonce)) {}

std::optional<std::string> scram_server::server_first(std::string_view client_first) {
  // gs2-header: ("n" | "y") "," [ "a=" authzid ] ","; "p=..." needs TLS the client does not have.
  if (client_first.size() < 3 || (client_first[0] != 'n' && client_first[0] != 'y') || client_first[1] != ',') {
    error_ = client_first.starts_with("p=") ? "the client demands channel binding, which needs TLS to the proxy"
                                            : "malformed SCRAM client-first-message";
    return std::nullopt;
  }
  if (client_first[2] != ',') {
    error_ = "SCRAM authorization identities are not supported";
    return std::nullopt;
  }
  gs2_ = std::string(client_first.substr(0, 3));
  client_first_bare_ = std::string(client_first.substr(3));
  const auto attrs = attributes(client_first_bare_);
  if (attrs.size() < 2 || !is_attr(attrs[0], 'n') || !is_attr(attrs[1], 'r') || !valid_nonce(attrs[1].substr(2))) {
    error_ = "malformed SCRAM client-first-message";
    return std::nullopt;
  }
  nonce_ = std::string(attrs[1].substr(2)) + server_nonce_;
  server_first_ = "r=" + nonce_ + ",s=" + base64_encode(v_.salt) + ",i=" + std::to_string(v_.iterations);
  return server_first_;
}

std::optional<std::string> scram_server::server_final(std::string_view client_final) {
  if (server_first_.empty()) {
    error_ = "SCRAM messages out of order";
    return std::nullopt;
  }
  const std::size_t p = client_final.rfind(",p=");
  if (p == std::string_view::npos) {
    error_ = "malformed SCRAM client-final-message";
    return std::nullopt;
  }
  const std::string_view without_proof = client_final.substr(0, p);
  const auto attrs = attributes(without_proof);
  if (attrs.size() < 2 || !is_attr(attrs[0], 'c') || !is_attr(attrs[1], 'r')) {
    error_ = "malformed SCRAM client-final-message";
    return std::nullopt;
  }
  if (attrs[0].substr(2) != base64_encode(gs2_) || attrs[1].substr(2) != nonce_) {
    error_ = "SCRAM channel binding or nonce mismatch";
    return std::nullopt;
  }
  const auto proof = base64_decode(client_final.substr(p + 3));
  if (!proof || proof->size() != 32) {
    error_ = "malformed SCRAM proof";
    return std::nullopt;
  }
  const std::string auth_message = client_first_bare_ + "," + server_first_ + "," + std::string(without_proof);
  const key32 signature = hmac(as_view(v_.stored_key), auth_message);
  key32 client_key{};
  for (std::size_t i = 0; i < client_key.size(); ++i)
    client_key[i] = static_cast<unsigned char>((*proof)[i]) ^ signature[i];
  const key32 stored = sha256(as_view(client_key));
  OPENSSL_cleanse(client_key.data(), client_key.size());
  if (CRYPTO_memcmp(stored.data(), v_.stored_key.data(), stored.size()) != 0) {
    error_ = "wrong password";
    return std::nullopt;
  }
  return "v=" + base64_encode(as_view(hmac(as_view(v_.server_key), auth_message)));
}

}  // namespace tenantdb::proxy::pg
