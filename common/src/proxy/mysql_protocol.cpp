// The MySQL/MariaDB protocol pieces of the proxy; see mysql_protocol.hpp. Layouts as the
// MySQL client/server protocol documentation gives them (Connection Phase: HandshakeV10,
// HandshakeResponse41, SSLRequest, AuthSwitchRequest) with MariaDB's extended
// capabilities in the reserved bytes.

#include "proxy/mysql_protocol.hpp"

#include <algorithm>
#include <array>

#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace tenantdb::proxy::mysql {

namespace {

void need(std::string_view in, std::size_t pos, std::size_t n, const char* what) {
  if (pos > in.size() || in.size() - pos < n) throw protocol_error(std::string("truncated ") + what);
}

std::uint32_t le(std::string_view in, std::size_t pos, std::size_t n) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < n; ++i)
    v |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[pos + i])) << (8 * i);
  return v;
}

void put_le(std::string& out, std::uint64_t v, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

/// A NUL-terminated string at `pos`; the NUL must be inside the payload.
std::string nul_string(std::string_view in, std::size_t& pos, const char* what) {
  if (pos > in.size()) throw protocol_error(std::string("truncated ") + what);
  const std::size_t end = in.find('\0', pos);
  if (end == std::string_view::npos) throw protocol_error(std::string("unterminated ") + what);
  std::string out(in.substr(pos, end - pos));
  pos = end + 1;
  return out;
}

/// A NUL-terminated string that some peers leave unterminated at the end of the packet.
std::string nul_string_or_rest(std::string_view in, std::size_t& pos) {
  const std::size_t end = in.find('\0', pos);
  if (end == std::string_view::npos) {
    std::string out(in.substr(pos));
    pos = in.size();
    return out;
  }
  std::string out(in.substr(pos, end - pos));
  pos = end + 1;
  return out;
}

using digest = std::array<unsigned char, EVP_MAX_MD_SIZE>;

std::string hash(const EVP_MD* md, std::string_view a, std::string_view b = {}) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) throw std::bad_alloc();
  digest out{};
  unsigned int n = 0;
  const bool ok = EVP_DigestInit_ex(ctx, md, nullptr) == 1 && EVP_DigestUpdate(ctx, a.data(), a.size()) == 1 &&
                  EVP_DigestUpdate(ctx, b.data(), b.size()) == 1 && EVP_DigestFinal_ex(ctx, out.data(), &n) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) throw std::runtime_error("digest failed");
  std::string s(reinterpret_cast<const char*>(out.data()), n);
  OPENSSL_cleanse(out.data(), out.size());
  return s;
}

std::string xored(std::string a, std::string_view b) {
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) a[i] = static_cast<char>(a[i] ^ b[i]);
  return a;
}

}  // namespace

header parse_header(const unsigned char* four) noexcept {
  header h;
  h.length = static_cast<std::uint32_t>(four[0]) | (static_cast<std::uint32_t>(four[1]) << 8) |
             (static_cast<std::uint32_t>(four[2]) << 16);
  h.seq = four[3];
  return h;
}

std::string frame(std::uint8_t seq, std::string_view payload) {
  if (payload.size() > max_payload) throw protocol_error("packet too large to frame");
  std::string out;
  out.reserve(4 + payload.size());
  put_le(out, payload.size(), 3);
  out.push_back(static_cast<char>(seq));
  out.append(payload);
  return out;
}

greeting parse_greeting(std::string_view in) {
  greeting g;
  std::size_t pos = 0;
  need(in, pos, 1, "greeting");
  g.protocol = static_cast<std::uint8_t>(in[pos++]);
  if (g.protocol != 10) throw protocol_error("greeting of protocol version " + std::to_string(g.protocol));
  g.server_version = nul_string(in, pos, "server version");
  need(in, pos, 4 + 8 + 1 + 2, "greeting");
  g.connection_id = le(in, pos, 4);
  pos += 4;
  std::string scramble(in.substr(pos, 8));
  pos += 8 + 1;  // the filler
  g.capabilities = le(in, pos, 2);
  pos += 2;
  std::size_t auth_len = 0;
  if (pos < in.size()) {
    need(in, pos, 1 + 2 + 2 + 1 + 10, "greeting");
    g.charset = static_cast<std::uint8_t>(in[pos]);
    g.status = static_cast<std::uint16_t>(le(in, pos + 1, 2));
    g.capabilities |= le(in, pos + 3, 2) << 16;
    auth_len = static_cast<unsigned char>(in[pos + 5]);
    if ((g.capabilities & client_long_password) == 0) g.mariadb_capabilities = le(in, pos + 12, 4);
    pos += 16;
  }
  if ((g.capabilities & client_protocol_41) == 0) throw protocol_error("a server without CLIENT_PROTOCOL_41");
  if ((g.capabilities & client_secure_connection) != 0) {
    const std::size_t part2 = std::max<std::size_t>(13, auth_len > 8 ? auth_len - 8 : 0);
    need(in, pos, part2, "auth-plugin-data");
    scramble.append(in.substr(pos, part2));
    pos += part2;
  }
  while (!scramble.empty() && scramble.back() == '\0') scramble.pop_back();
  g.scramble = std::move(scramble);
  if ((g.capabilities & client_plugin_auth) != 0 && pos < in.size()) g.plugin = nul_string_or_rest(in, pos);
  return g;
}

std::string build_greeting(const greeting& g) {
  if (g.scramble.size() < 8) throw protocol_error("a scramble shorter than 8 bytes");
  std::string out;
  out.reserve(64 + g.server_version.size() + g.plugin.size());
  out.push_back(static_cast<char>(g.protocol));
  out.append(g.server_version);
  out.push_back('\0');
  put_le(out, g.connection_id, 4);
  out.append(g.scramble, 0, 8);
  out.push_back('\0');
  put_le(out, g.capabilities & 0xFFFF, 2);
  out.push_back(static_cast<char>(g.charset));
  put_le(out, g.status, 2);
  put_le(out, g.capabilities >> 16, 2);
  out.push_back((g.capabilities & client_plugin_auth) != 0 ? static_cast<char>(g.scramble.size() + 1) : '\0');
  out.append(6, '\0');
  put_le(out, (g.capabilities & client_long_password) == 0 ? g.mariadb_capabilities : 0, 4);
  if ((g.capabilities & client_secure_connection) != 0) {
    std::string part2 = g.scramble.substr(8);
    part2.push_back('\0');
    if (part2.size() < 13) part2.append(13 - part2.size(), '\0');
    out.append(part2);
  }
  if ((g.capabilities & client_plugin_auth) != 0) {
    out.append(g.plugin);
    out.push_back('\0');
  }
  return out;
}

void put_lenenc(std::string& out, std::uint64_t v) {
  if (v < 0xFB) {
    out.push_back(static_cast<char>(v));
  } else if (v <= 0xFFFF) {
    out.push_back(static_cast<char>(0xFC));
    put_le(out, v, 2);
  } else if (v <= 0xFFFFFF) {
    out.push_back(static_cast<char>(0xFD));
    put_le(out, v, 3);
  } else {
    out.push_back(static_cast<char>(0xFE));
    put_le(out, v, 8);
  }
}

std::uint64_t get_lenenc(std::string_view in, std::size_t& pos) {
  need(in, pos, 1, "length");
  const auto first = static_cast<unsigned char>(in[pos++]);
  std::size_t n = 0;
  switch (first) {
    case 0xFB: throw protocol_error("NULL length");
    case 0xFC: n = 2; break;
    case 0xFD: n = 3; break;
    case 0xFE: n = 8; break;
    case 0xFF: throw protocol_error("invalid length");
    default: return first;
  }
  need(in, pos, n, "length");
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i)
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[pos + i])) << (8 * i);
  pos += n;
  return v;
}

handshake_response parse_handshake_response(std::string_view in) {
  handshake_response r;
  need(in, 0, 32, "handshake response");
  r.capabilities = le(in, 0, 4);
  if ((r.capabilities & client_protocol_41) == 0) throw protocol_error("a client without CLIENT_PROTOCOL_41");
  r.max_packet = le(in, 4, 4);
  r.charset = static_cast<std::uint8_t>(in[8]);
  if ((r.capabilities & client_long_password) == 0) r.mariadb_capabilities = le(in, 28, 4);
  if (in.size() == 32 && (r.capabilities & client_ssl) != 0) {
    r.ssl_request = true;
    return r;
  }
  std::size_t pos = 32;
  r.user = nul_string(in, pos, "user name");
  if ((r.capabilities & client_plugin_auth_lenenc) != 0) {
    const std::uint64_t n = get_lenenc(in, pos);
    need(in, pos, n, "auth response");
    r.auth_response.assign(in.substr(pos, n));
    pos += n;
  } else if ((r.capabilities & client_secure_connection) != 0) {
    need(in, pos, 1, "auth response");
    const auto n = static_cast<unsigned char>(in[pos++]);
    need(in, pos, n, "auth response");
    r.auth_response.assign(in.substr(pos, n));
    pos += n;
  } else {
    r.auth_response = nul_string(in, pos, "auth response");
  }
  // The rest is optional in practice: clients stop early when they have nothing to say.
  if ((r.capabilities & client_connect_with_db) != 0 && pos < in.size()) r.database = nul_string(in, pos, "database");
  if ((r.capabilities & client_plugin_auth) != 0 && pos < in.size()) r.plugin = nul_string_or_rest(in, pos);
  if ((r.capabilities & client_connect_attrs) != 0 && pos < in.size()) {
    const std::uint64_t n = get_lenenc(in, pos);
    need(in, pos, n, "connection attributes");
    r.attributes.assign(in.substr(pos, n));
    pos += n;
  }
  return r;
}

std::string build_handshake_response(const handshake_response& r) {
  std::string out;
  out.reserve(64 + r.user.size() + r.auth_response.size() + r.database.size() + r.plugin.size() + r.attributes.size());
  put_le(out, r.capabilities, 4);
  put_le(out, r.max_packet, 4);
  out.push_back(static_cast<char>(r.charset));
  out.append(19, '\0');
  put_le(out, (r.capabilities & client_long_password) == 0 ? r.mariadb_capabilities : 0, 4);
  if (r.ssl_request) return out;
  out.append(r.user);
  out.push_back('\0');
  if ((r.capabilities & client_plugin_auth_lenenc) != 0) {
    put_lenenc(out, r.auth_response.size());
  } else {
    if (r.auth_response.size() > 255) throw protocol_error("auth response too long without CLIENT_PLUGIN_AUTH_LENENC");
    out.push_back(static_cast<char>(r.auth_response.size()));
  }
  out.append(r.auth_response);
  if ((r.capabilities & client_connect_with_db) != 0) {
    out.append(r.database);
    out.push_back('\0');
  }
  if ((r.capabilities & client_plugin_auth) != 0) {
    out.append(r.plugin);
    out.push_back('\0');
  }
  if ((r.capabilities & client_connect_attrs) != 0) {
    put_lenenc(out, r.attributes.size());
    out.append(r.attributes);
  }
  return out;
}

std::string err_payload(std::uint16_t code, std::string_view sqlstate, std::string_view message) {
  std::string out;
  out.push_back(static_cast<char>(0xFF));
  put_le(out, code, 2);
  out.push_back('#');
  std::string state(sqlstate.substr(0, 5));
  state.resize(5, '0');
  out.append(state);
  out.append(message.substr(0, 1024));
  return out;
}

err_info parse_err(std::string_view in) {
  if (in.empty() || static_cast<unsigned char>(in[0]) != 0xFF) throw protocol_error("not an ERR packet");
  need(in, 1, 2, "ERR packet");
  err_info e;
  e.code = static_cast<std::uint16_t>(le(in, 1, 2));
  std::size_t pos = 3;
  if (pos < in.size() && in[pos] == '#') {
    need(in, pos + 1, 5, "SQLSTATE");
    e.sqlstate.assign(in.substr(pos + 1, 5));
    pos += 6;
  }
  e.message.assign(in.substr(pos));
  return e;
}

std::string auth_switch_payload(std::string_view plugin, std::string_view scramble) {
  std::string out;
  out.push_back(static_cast<char>(0xFE));
  out.append(plugin);
  out.push_back('\0');
  out.append(scramble);
  out.push_back('\0');
  return out;
}

auth_switch parse_auth_switch(std::string_view in) {
  if (in.empty() || static_cast<unsigned char>(in[0]) != 0xFE) throw protocol_error("not an AuthSwitchRequest");
  if (in.size() == 1) throw protocol_error("an old-password AuthSwitchRequest");
  std::size_t pos = 1;
  auth_switch s;
  s.plugin = nul_string(in, pos, "plugin name");
  s.data.assign(in.substr(pos));
  if (!s.data.empty() && s.data.back() == '\0') s.data.pop_back();
  return s;
}

std::string native_password_response(std::string_view password, std::string_view scramble) {
  if (password.empty()) return {};
  const std::string stage1 = hash(EVP_sha1(), password);
  const std::string stage2 = hash(EVP_sha1(), stage1);
  return xored(stage1, hash(EVP_sha1(), scramble, stage2));
}

bool native_password_matches(std::string_view password, std::string_view scramble, std::string_view response) {
  const std::string expected = native_password_response(password, scramble);
  if (expected.size() != response.size() || expected.empty()) return false;
  return CRYPTO_memcmp(expected.data(), response.data(), expected.size()) == 0;
}

std::string caching_sha2_response(std::string_view password, std::string_view scramble) {
  if (password.empty()) return {};
  const std::string p1 = hash(EVP_sha256(), password);
  const std::string p2 = hash(EVP_sha256(), p1);
  return xored(p1, hash(EVP_sha256(), p2, scramble));
}

command_framer::step command_framer::next(const unsigned char* in, std::size_t n) {
  step s;
  if (remaining_ > 0) {  // inside a packet: pass or drop what there is of it
    const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, n));
    remaining_ -= take;
    s.consumed = take;
    s.forward = !dropping_;
    if (dropping_ && remaining_ == 0 && !continued_) {
      s.refuse = true;
      s.err_seq = static_cast<std::uint8_t>(last_seq_ + 1);
      s.command = command_;
      dropping_ = false;
    }
    return s;
  }
  std::size_t i = 0;
  while (i < n) {
    if (n - i < 4) break;  // a partial header waits for the rest
    const header h = parse_header(in + i);
    const bool command_start = !continued_;
    if (dropping_ || (command_start && h.length > 0 && n - i >= 5 && refused(in[i + 4]))) {
      if (i > 0) break;  // forward what came before first
      if (!dropping_) command_ = in[4];
      dropping_ = true;
      last_seq_ = h.seq;
      continued_ = h.length == max_payload;
      const std::size_t take = std::min<std::size_t>(h.length, n - 4);
      remaining_ = h.length - take;
      s.consumed = 4 + take;
      s.forward = false;
      if (remaining_ == 0 && !continued_) {
        s.refuse = true;
        s.err_seq = static_cast<std::uint8_t>(last_seq_ + 1);
        s.command = command_;
        dropping_ = false;
      }
      return s;
    }
    if (command_start && h.length > 0 && n - i < 5) break;  // the command byte decides
    last_seq_ = h.seq;
    continued_ = h.length == max_payload;
    const std::size_t take = std::min<std::size_t>(h.length, n - i - 4);
    remaining_ = h.length - take;
    i += 4 + take;
    if (remaining_ > 0) break;
  }
  s.consumed = i;
  s.forward = true;
  return s;
}

}  // namespace tenantdb::proxy::mysql
