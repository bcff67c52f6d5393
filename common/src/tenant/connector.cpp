#include "tenantdb/connector.hpp"
#include "tenantdb/ownership.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <yaml-cpp/yaml.h>

#include "base/base64.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/log.hpp"
#include "tenantdb/naming.hpp"

namespace tenantdb {
namespace {

constexpr std::size_t max_value_bytes = 64 * 1024;
constexpr std::size_t max_ca_bytes = 1024 * 1024;
constexpr std::size_t max_file_bytes = 4 * 1024 * 1024;

[[noreturn]] void fail(std::string_view key, const std::string& what) {
  throw error(error_kind::connector, "connector key \"" + std::string(key) + "\" " + what).about(std::string(key));
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c); });
  return out;
}

// Shows a non-secret value in a message: printable ASCII only, cut short. A value that
// looks like it embeds credentials (user:password@host) is not shown at all.
std::string show(std::string_view value) {
  if (value.find('@') != std::string_view::npos) return "(value not shown: it contains '@')";
  std::string out = "\"";
  for (char c : value.substr(0, 40)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (value.size() > 40) out += "...";
  return out + "\"";
}

// Secret volumes written with `kubectl create secret --from-file` often end in a newline.
void trim_newline(std::string& v) {
  while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.pop_back();
}

struct raw_values {
  connector_data& data;

  const std::string* find(std::string_view key) const {
    const auto it = data.find(key);
    return it == data.end() ? nullptr : &it->second;
  }

  // A text value: UTF-8, no control characters, bounded; empty counts as absent.
  std::optional<std::string> text(std::string_view key, std::size_t max = 1024) const {
    const std::string* v = find(key);
    if (v == nullptr) return std::nullopt;
    std::string value = *v;
    trim_newline(value);
    if (value.empty()) return std::nullopt;
    if (value.size() > max)
      fail(key, "is " + std::to_string(value.size()) + " bytes long; at most " + std::to_string(max) + " are allowed");
    if (!is_valid_utf8(value)) fail(key, "is not valid UTF-8");
    for (char c : value)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) fail(key, "contains a control character or line break");
    return value;
  }
};

std::uint16_t parse_port(std::string_view key, std::string_view text) {
  if (text.empty() || text.size() > 5 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    fail(key, "must be a port number from 1 to 65535, got " + show(text));
  const unsigned long value = std::strtoul(std::string(text).c_str(), nullptr, 10);
  if (value < 1 || value > 65535) fail(key, "must be a port number from 1 to 65535, got " + show(text));
  return static_cast<std::uint16_t>(value);
}

bool is_ipv6_literal(std::string_view host) {
  return host.find(':') != std::string_view::npos;
}

void validate_host(std::string_view key, std::string_view host) {
  if (host.size() > 253) fail(key, "is longer than 253 characters");
  if (host.find("://") != std::string_view::npos)
    fail(key, "must be a host name or address, not a URL (drop the scheme): got " + show(host));
  for (char c : host)
    if (c == ' ' || c == '/' || c == '@' || c == '?' || c == '#' || c == '[' || c == ']' || c == '(' || c == ')' ||
        c == '\'' || c == '"' || c == '\\')
      fail(key, "must be a host name or address, got " + show(host));
  if (is_ipv6_literal(host) && std::count(host.begin(), host.end(), ':') < 2)
    fail(key, "must not include a port (put it in the \"port\" key): got " + show(host));
}

// No server's account is named with quotes, backslashes, semicolons or white space: such
// a value is a paste mistake (or an injection attempt) and should not reach the server
// as a login name, where it would only come back as "authentication failed".
void validate_account(std::string_view key, std::string_view name) {
  for (char c : name)
    if (c == '\'' || c == '"' || c == '`' || c == '\\' || c == ';' || c == ' ')
      fail(key, "must be an account name without quotes, backslashes, semicolons or spaces");
}

// endpoint: host, host:port, [v6] or [v6]:port.
std::pair<std::string, std::optional<std::uint16_t>> parse_endpoint(std::string_view key, std::string_view text) {
  if (text.find("://") != std::string_view::npos)
    fail(key, "must be host:port, not a URL (drop the scheme): got " + show(text));
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) fail(key, "has an opening '[' without a closing ']'");
    std::string host(text.substr(1, close - 1));
    std::string_view rest = text.substr(close + 1);
    if (rest.empty()) return {host, std::nullopt};
    if (rest.front() != ':') fail(key, "must be [address]:port, got " + show(text));
    return {host, parse_port(key, rest.substr(1))};
  }
  const auto colons = std::count(text.begin(), text.end(), ':');
  if (colons == 1) {
    const auto pos = text.find(':');
    return {std::string(text.substr(0, pos)), parse_port(key, text.substr(pos + 1))};
  }
  return {std::string(text), std::nullopt};  // a bare host or an unbracketed IPv6 literal
}

tls_mode parse_tls_value(std::string_view key, std::string_view text, engine_type type) {
  const std::string v = lower(text);
  if (v == "disable" || v == "disabled" || v == "false" || v == "no" || v == "off" || v == "0")
    return tls_mode::disable;
  if (v == "allow") return tls_mode::allow;
  if (v == "prefer" || v == "preferred") return tls_mode::prefer;
  if (v == "require" || v == "required" || v == "skip-verify") return tls_mode::require;
  if (v == "verify-ca" || v == "verify_ca") return tls_mode::verify_ca;
  if (v == "verify-full" || v == "verify_full" || v == "verify_identity" || v == "verify-identity" || v == "true" ||
      v == "yes" || v == "on" || v == "1")
    return tls_mode::verify_full;
  (void)type;
  fail(key,
       "must be one of disable, allow, prefer, require, verify-ca, verify-full (or true/false, "
       "skip-verify, preferred, required, verify_identity); got " +
           show(text));
}

}  // namespace

std::uint16_t default_port(engine_type type) noexcept {
  return type == engine_type::postgres ? 5432 : 3306;
}

std::optional<engine_kind> parse_engine_type(std::string_view text) {
  const std::string t = lower(text);
  if (t == "postgres" || t == "postgresql") return engine_kind{engine_type::postgres, false};
  if (t == "mysql" || t == "mariadb") return engine_kind{engine_type::mysql, t == "mariadb"};
  return std::nullopt;
}

std::string_view engine_name(const server_address& server) noexcept {
  if (server.type == engine_type::postgres) return "postgres";
  return server.mariadb ? "mariadb" : "mysql";
}

std::string_view to_string(tls_mode mode) noexcept {
  switch (mode) {
    case tls_mode::disable: return "disable";
    case tls_mode::allow: return "allow";
    case tls_mode::prefer: return "prefer";
    case tls_mode::require: return "require";
    case tls_mode::verify_ca: return "verify-ca";
    case tls_mode::verify_full: break;
  }
  return "verify-full";
}

std::string system_ca_file() {
  if (const char* env = std::getenv("SSL_CERT_FILE"); env != nullptr && *env != '\0') return env;
  return "/etc/ssl/certs/ca-certificates.crt";
}

void validate_ca_pem(std::string_view pem, std::string_view key) {
  if (pem.size() > max_ca_bytes) fail(key, "is larger than 1 MiB");
  static constexpr std::string_view begin = "-----BEGIN CERTIFICATE-----";
  static constexpr std::string_view end = "-----END CERTIFICATE-----";
  const auto blank = [](std::string_view text) {
    return std::all_of(text.begin(), text.end(),
                       [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
  };
  // Only certificate blocks separated by white space: a private key or stray text pasted
  // into caCert would otherwise be published to every workload.
  int count = 0;
  std::size_t pos = 0;
  while (true) {
    const auto b = pem.find(begin, pos);
    if (b == std::string_view::npos) {
      if (!blank(pem.substr(pos)))
        fail(key, "holds text that is not a PEM certificate (only CERTIFICATE blocks are allowed)");
      break;
    }
    if (!blank(pem.substr(pos, b - pos)))
      fail(key, "holds text that is not a PEM certificate (only CERTIFICATE blocks are allowed)");
    const auto e = pem.find(end, b);
    if (e == std::string_view::npos) fail(key, "has a certificate without its END line");
    const std::string_view block = pem.substr(b, e + end.size() - b);
    BIO* bio = BIO_new_mem_buf(block.data(), static_cast<int>(block.size()));
    if (bio == nullptr) throw error(error_kind::internal, "out of memory reading " + std::string(key));
    X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    ERR_clear_error();
    if (cert == nullptr) fail(key, "holds a certificate that does not parse as PEM X.509");
    X509_free(cert);
    ++count;
    pos = e + end.size();
  }
  if (count == 0)
    fail(key,
         "must hold PEM certificates (-----BEGIN CERTIFICATE-----); base64-decode it once more if it is "
         "doubly encoded");
}

connector parse_connector(connector_data&& data) {
  struct wiper {
    connector_data& d;
    ~wiper() {
      for (auto& [k, v] : d) wipe(v);
      d.clear();
    }
  } wipe_on_return{data};
  const raw_values raw{data};
  connector out;

  static constexpr std::string_view known[] = {"type",
                                               "host",
                                               "port",
                                               "adminUser",
                                               "adminPassword",
                                               "sslMode",
                                               "tls",
                                               "caCert",
                                               "ca.crt",
                                               "database",
                                               "endpoint",
                                               "user",
                                               "password",
                                               "maxConnections",
                                               "statementTimeout",
                                               "idleInTransactionTimeout",
                                               "deletionPolicy"};
  for (const auto& [key, value] : data)
    if (std::find(std::begin(known), std::end(known), key) == std::end(known))
      log::debug("ignoring unknown connector key", {{"key", key}});

  // The vCluster Platform's connector names the server with `endpoint` and the admin
  // with `user`/`password`. Such a connector (and only one that uses none of this
  // project's own address and admin keys) gets the Platform's documented defaults: a
  // blank type is mysql, and without sslMode/tls the Platform's TLS (below).
  const auto given = [&](std::string_view key) {  // present and not blank
    const std::string* v = raw.find(key);
    return v != nullptr &&
           !std::all_of(v->begin(), v->end(), [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
  };
  const bool platform_keys =
      given("endpoint") && !given("host") && !given("port") && !given("adminUser") && !given("adminPassword");
  out.platform_keys = platform_keys;

  // type
  const auto type = platform_keys && !given("type") ? std::optional<std::string>("mysql") : raw.text("type", 32);
  if (!type) fail("type", "is missing: set it to postgres or mysql (also: postgresql, mariadb)");
  const auto engine = parse_engine_type(*type);
  if (!engine) fail("type", "must be one of postgres, postgresql, mysql, mariadb; got " + show(*type));
  out.server.type = engine->type;
  out.server.mariadb = engine->mariadb;

  // host and port, from host/port or the Platform's endpoint
  const auto host = raw.text("host", 260);
  const auto endpoint = raw.text("endpoint", 270);
  std::optional<std::uint16_t> port;
  if (const auto p = raw.text("port", 16)) port = parse_port("port", *p);
  if (host) {
    validate_host("host", *host);
    out.server.host = *host;
  }
  if (endpoint) {
    auto [ep_host, ep_port] = parse_endpoint("endpoint", *endpoint);
    if (ep_host.empty()) fail("endpoint", "has no host part");
    validate_host("endpoint", ep_host);
    if (host && *host != ep_host) fail("endpoint", "names another host than \"host\"; keep one of the two");
    if (port && ep_port && *port != *ep_port) fail("endpoint", "names another port than \"port\"; keep one of the two");
    out.server.host = ep_host;
    if (!port) port = ep_port;
  }
  if (out.server.host.empty()) fail("host", "is missing: set host (and port), or endpoint as host:port");
  out.server.port = port.value_or(default_port(out.server.type));

  // admin credentials, from adminUser/adminPassword or the Platform's user/password
  const auto admin_user = raw.text("adminUser", 256);
  const auto platform_user = raw.text("user", 256);
  if (admin_user && platform_user && *admin_user != *platform_user)
    fail("user", "names another user than \"adminUser\"; keep one of the two");
  if (!admin_user && !platform_user) fail("adminUser", "is missing: set adminUser (or user) to the admin account");
  if (admin_user) validate_account("adminUser", *admin_user);
  if (platform_user) validate_account("user", *platform_user);
  out.admin_user = admin_user ? *admin_user : *platform_user;

  const std::string* pw = raw.find("adminPassword");
  const char* pw_key = "adminPassword";
  if (pw == nullptr || pw->empty()) {
    pw = raw.find("password");
    pw_key = "password";
  }
  if (pw == nullptr || pw->empty()) fail("adminPassword", "is missing or empty: set adminPassword (or password)");
  std::string password = *pw;
  trim_newline(password);
  if (password.empty()) fail(pw_key, "is empty");
  if (password.size() > max_value_bytes) fail(pw_key, "is longer than 64 KiB");
  if (password.find('\0') != std::string::npos) fail(pw_key, "contains a NUL byte");
  if (const std::string* other = raw.find(std::string_view(pw_key) == "password" ? "adminPassword" : "password");
      other != nullptr && !other->empty()) {
    std::string o = *other;
    trim_newline(o);
    const bool same = secret(o) == secret(password);
    wipe(o);
    if (!same) fail("password", "differs from \"adminPassword\"; keep one of the two");
  }
  out.admin_password = secret(std::move(password));

  // TLS
  const auto ssl_mode = raw.text("sslMode", 32);
  const auto tls = raw.text("tls", 32);
  std::optional<tls_mode> mode;
  if (ssl_mode) mode = parse_tls_value("sslMode", *ssl_mode, out.server.type);
  if (tls) {
    const tls_mode m = parse_tls_value("tls", *tls, out.server.type);
    if (mode && *mode != m) fail("tls", "disagrees with \"sslMode\"; keep one of the two");
    mode = m;
  }
  // The Platform's defaults: PostgreSQL `require`, MySQL encrypted without verification.
  const bool platform_tls_default = !mode && platform_keys;
  if (platform_tls_default) mode = tls_mode::require;
  out.server.tls = mode.value_or(tls_mode::verify_full);
  if (out.server.type == engine_type::mysql && out.server.tls == tls_mode::allow) out.server.tls = tls_mode::prefer;

  const std::string* ca = raw.find("caCert");
  const char* ca_key = "caCert";
  if (ca == nullptr || ca->empty()) {
    ca = raw.find("ca.crt");
    ca_key = "ca.crt";
  }
  if (ca != nullptr && !ca->empty()) {
    validate_ca_pem(*ca, ca_key);
    out.server.ca_pem = *ca;
  } else if (out.server.tls == tls_mode::verify_ca || out.server.tls == tls_mode::verify_full) {
    std::ifstream probe(system_ca_file());
    if (!probe)
      fail("caCert", "is missing and the system CA bundle " + system_ca_file() +
                         " does not exist: add the server's CA as caCert, or set sslMode/tls explicitly");
  }

  if (const auto db = raw.text("database", 63)) {
    if (out.server.type != engine_type::postgres) fail("database", "applies to PostgreSQL only; remove it");
    out.server.admin_database = *db;
  } else if (out.server.type == engine_type::postgres) {
    out.server.admin_database = "postgres";
  }
  // Per-tenant limits, platform-wide: the documented defaults unless a key says otherwise.
  if (const auto v = raw.text("maxConnections", 32))
    out.limits.max_connections = parse_max_connections(*v, "maxConnections", error_kind::connector);
  if (out.server.type == engine_type::postgres) {
    if (const auto v = raw.text("statementTimeout", 32))
      out.limits.statement_timeout = parse_limit_timeout(*v, "statementTimeout", error_kind::connector);
    if (const auto v = raw.text("idleInTransactionTimeout", 32))
      out.limits.idle_in_transaction_timeout =
          parse_limit_timeout(*v, "idleInTransactionTimeout", error_kind::connector);
  } else {
    for (const char* key : {"statementTimeout", "idleInTransactionTimeout"})
      if (raw.text(key, 32)) fail(key, "applies to PostgreSQL only; remove it");
    out.limits.statement_timeout = out.limits.idle_in_transaction_timeout = std::chrono::milliseconds(0);
  }

  // What deprovisioning does by default (lifecycle.hpp); a flag or the credentials
  // Secret's annotation overrides it per tenant.
  if (const auto v = raw.text("deletionPolicy", 16)) {
    const auto policy = parse_deletion_policy(*v);
    if (!policy) fail("deletionPolicy", "must be retain or delete");
    out.deletion_policy = *policy;
  }

  // Why the mode is not verify-full. The one warning that verification is off, naming
  // the key that turns it on, is provisioning's (for every unverified connector).
  if (platform_tls_default)
    log::info(
        "the connector uses the vCluster Platform's keys without sslMode: the Platform's default applies "
        "(encrypted, the server's certificate not verified)",
        {{"key", "sslMode"}, {"sslMode", to_string(out.server.tls)}, {"engine", engine_name(out.server)}});
  return out;
}

connector_data read_connector_path(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status))
    throw error(error_kind::connector, "connector path " + path.string() + " does not exist").about("--connector-file");
  const auto read_file = [](const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw error(error_kind::connector, "cannot read " + file.string()).about("--connector-file");
    std::string content;
    char buf[8192];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
      content.append(buf, static_cast<std::size_t>(in.gcount()));
      if (content.size() > max_file_bytes)
        throw error(error_kind::connector, file.string() + " is larger than 4 MiB").about("--connector-file");
    }
    return content;
  };

  connector_data data;
  if (fs::is_directory(status)) {
    // A Secret volume: one file per key; kubelet's ..data and timestamped dirs are hidden.
    for (const auto& entry : fs::directory_iterator(path, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.empty() || name.front() == '.') continue;
      if (!fs::is_regular_file(entry.path(), ec)) continue;
      data.emplace(name, read_file(entry.path()));
    }
    if (ec)
      throw error(error_kind::connector, "cannot list " + path.string() + ": " + ec.message())
          .about("--connector-file");
    if (data.empty())
      throw error(error_kind::connector, "connector directory " + path.string() + " holds no keys")
          .about("--connector-file");
    return data;
  }

  std::string content = read_file(path);
  YAML::Node root;
  try {
    root = YAML::Load(content);
  } catch (const YAML::Exception& e) {
    wipe(content);
    throw error(error_kind::connector,
                path.string() + " is neither YAML nor JSON (line " + std::to_string(e.mark.line + 1) + ")")
        .about("--connector-file");
  }
  wipe(content);
  if (!root.IsMap())
    throw error(error_kind::connector, path.string() + " must hold a Secret manifest or a map of keys")
        .about("--connector-file");
  const auto scalar = [&](const YAML::Node& value, const std::string& key) {
    if (!value.IsScalar())
      throw error(error_kind::connector, "connector key \"" + key + "\" must be a string").about(key);
    return value.Scalar();
  };
  const auto key_of = [&](const YAML::Node& node) {
    if (!node.IsScalar())
      throw error(error_kind::connector, path.string() + " has a key that is not a string").about("--connector-file");
    return node.Scalar();
  };
  // Within one map a repeated key is a mistake; which value wins must not be a guess.
  const auto put = [&](connector_data& into, const std::string& key, std::string value) {
    if (!into.emplace(key, std::move(value)).second)
      throw error(error_kind::connector, "connector key \"" + key + "\" appears twice in " + path.string()).about(key);
  };
  try {
    const bool manifest = root["data"] || root["stringData"] || root["kind"];
    if (manifest) {
      if (const auto d = root["data"]; d && d.IsMap()) {
        for (const auto& kv : d) {
          const std::string key = key_of(kv.first);
          std::string encoded = scalar(kv.second, key);
          auto decoded = base64_decode(encoded);
          wipe(encoded);
          if (!decoded)
            throw error(error_kind::connector,
                        "connector key \"" + key + "\" under data is not valid base64 (use stringData for plain text)")
                .about(key);
          put(data, key, std::move(*decoded));
        }
      }
      // stringData overrides data, as the API server merges them.
      if (const auto sd = root["stringData"]; sd && sd.IsMap()) {
        connector_data plain;
        for (const auto& kv : sd) {
          const std::string key = key_of(kv.first);
          put(plain, key, scalar(kv.second, key));
        }
        for (auto& [k, v] : plain) data[k] = std::move(v);
      }
    } else {
      for (const auto& kv : root) {
        const std::string key = key_of(kv.first);
        put(data, key, scalar(kv.second, key));
      }
    }
  } catch (const YAML::Exception& e) {
    throw error(error_kind::connector,
                path.string() + " could not be read as a connector (line " + std::to_string(e.mark.line + 1) + ")")
        .about("--connector-file");
  }
  if (data.empty())
    throw error(error_kind::connector, path.string() + " holds no connector keys").about("--connector-file");
  return data;
}

}  // namespace tenantdb
