#include "tenantdb/formats.hpp"

#include <algorithm>

#include "tenantdb/dsn.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/log.hpp"

namespace tenantdb {
namespace {

constexpr std::string_view all_formats = "pgpass, mycnf, env, json";

[[noreturn]] void refuse(credential_format format, const std::string& what) {
  throw error(error_kind::output, "cannot write " + std::string(format_file_name(format)) + ": " + what)
      .about(std::string(format_file_name(format)));
}

// A key the format needs: present and usable. Names the key, never the value.
void require_key(const credential_record& r, const char* key, bool present, credential_format format) {
  if (const auto it = r.invalid.find(key); it != r.invalid.end())
    refuse(format, "\"" + std::string(key) + "\" " + it->second);
  if (!present) refuse(format, "the credentials have no \"" + std::string(key) + "\"");
}

const std::string& require(const credential_record& r, const char* key, const std::string& value,
                           credential_format format) {
  require_key(r, key, !value.empty(), format);
  return value;
}

const std::string& require(const credential_record& r, const char* key, const secret& value, credential_format format) {
  require_key(r, key, !value.empty(), format);
  return value.reveal();
}

std::string require_port(const credential_record& r, credential_format format) {
  require_key(r, keys::port, r.port != 0, format);
  return std::to_string(r.port);
}

bool is_postgres(const credential_record& r, credential_format format) {
  require_key(r, keys::type, r.engine.has_value(), format);
  return r.engine->type == engine_type::postgres;
}

// Names the key, never the value.
void refuse_nul(std::string_view value, const char* key, credential_format format) {
  if (value.find('\0') != std::string_view::npos) refuse(format, "\"" + std::string(key) + "\" holds a NUL byte");
}

// Checks one pgpass field and appends it escaped.
void append_pgpass_field(std::string& line, const std::string& value, const char* key) {
  constexpr auto f = credential_format::pgpass;
  refuse_nul(value, key, f);
  // libpq reads the file line by line and strips a trailing CR: neither can be escaped.
  if (value.find_first_of("\r\n") != std::string::npos)
    throw error(error_kind::output, std::string("cannot write pgpass: \"") + key +
                                        "\" holds a line break, which "
                                        "a password file cannot represent")
        .about("pgpass");
  std::string escaped = pgpass_escape(value);
  line.append(escaped);
  wipe(escaped);
}

secret render_pgpass(const credential_record& r, const std::optional<login>& previous) {
  constexpr auto f = credential_format::pgpass;
  std::string out;
  out.reserve(4096);   // few reallocations: each would leave an unwiped copy behind
  std::string prefix;  // host:port:database:
  append_pgpass_field(prefix, require(r, keys::host, r.host, f), keys::host);
  prefix.push_back(':');
  append_pgpass_field(prefix, require_port(r, f), keys::port);
  prefix.push_back(':');
  append_pgpass_field(prefix, require(r, keys::database, r.database, f), keys::database);
  prefix.push_back(':');
  const std::string& user = require(r, keys::user, r.user, f);
  out.append(prefix);
  append_pgpass_field(out, user, keys::user);
  out.push_back(':');
  append_pgpass_field(out, require(r, keys::password, r.password, f), keys::password);
  out.push_back('\n');
  if (previous && !previous->user.empty() && previous->user != user && !previous->password.empty()) {
    out.append(prefix);
    append_pgpass_field(out, previous->user, keys::standby_user);
    out.push_back(':');
    append_pgpass_field(out, previous->password.reveal(), keys::standby_password);
    out.push_back('\n');
  }
  return secret(std::move(out));
}

secret render_mycnf(const credential_record& r, const std::string& ca_file) {
  constexpr auto f = credential_format::mycnf;
  std::string out;
  out.reserve(4096);  // few reallocations: each would leave an unwiped copy behind
  out += "[client]\n";
  const auto add = [&](const char* option, const char* key, const std::string& value) {
    refuse_nul(value, key, f);
    std::string quoted = mycnf_quote(value);
    out.append(option).append("=").append(quoted).append("\n");
    wipe(quoted);
  };
  add("user", keys::user, require(r, keys::user, r.user, f));
  add("password", keys::password, require(r, keys::password, r.password, f));
  add("host", keys::host, require(r, keys::host, r.host, f));
  out += "port=" + require_port(r, f) + "\n";
  add("database", keys::database, require(r, keys::database, r.database, f));
  if (!r.ca_pem.empty() && !ca_file.empty()) add("ssl-ca", "caFile", ca_file);
  return secret(std::move(out));
}

secret database_url(const credential_record& r, const std::string& ca_file) {
  constexpr auto f = credential_format::env;
  const std::string& host = require(r, keys::host, r.host, f);
  const std::string port = require_port(r, f);
  const std::string& database = require(r, keys::database, r.database, f);
  const std::string& user = require(r, keys::user, r.user, f);
  const std::string& password = require(r, keys::password, r.password, f);
  const bool postgres = is_postgres(r, f);
  // A host is a name or an address; anything that would break the authority is encoded.
  const bool plain_host = std::all_of(host.begin(), host.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == ':' || c == '%';
  });
  const std::string authority_host = plain_host ? url_host(host) : percent_encode(host);
  std::string encoded_password = percent_encode(password);
  std::string out;
  out.reserve(1024 + encoded_password.size());
  out.append(postgres ? "postgres" : "mysql").append("://").append(percent_encode(user)).append(":");
  out.append(encoded_password).append("@").append(authority_host).append(":").append(port).append("/");
  out.append(percent_encode(database));
  wipe(encoded_password);
  if (postgres) {
    require_key(r, keys::ssl_mode, true, f);  // a missing sslMode is left out, an unusable one refused
    if (r.tls) out += "?sslmode=" + percent_encode(to_string(*r.tls));
    const bool verifies = r.tls == tls_mode::verify_full || r.tls == tls_mode::verify_ca;
    if (verifies && !r.ca_pem.empty() && !ca_file.empty()) out += "&sslrootcert=" + percent_encode(ca_file);
  }
  return secret(std::move(out));
}

secret render_env(const credential_record& r, const std::string& ca_file) {
  constexpr auto f = credential_format::env;
  std::string out;
  out.reserve(4096);
  const auto add = [&](const char* name, const char* key, const std::string& value) {
    refuse_nul(value, key, f);
    std::string quoted = shell_quote(value);
    out.append(name).append("=").append(quoted).append("\n");
    wipe(quoted);
  };
  add("DB_HOST", keys::host, require(r, keys::host, r.host, f));
  add("DB_PORT", keys::port, require_port(r, f));
  add("DB_NAME", keys::database, require(r, keys::database, r.database, f));
  add("DB_USER", keys::user, require(r, keys::user, r.user, f));
  add("DB_PASSWORD", keys::password, require(r, keys::password, r.password, f));
  const secret url = database_url(r, ca_file);
  add("DATABASE_URL", keys::data_source, url.reveal());
  return secret(std::move(out));
}

}  // namespace

std::vector<credential_format> parse_formats(std::string_view list) {
  std::vector<credential_format> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    const std::size_t comma = list.find(',', start);
    std::string_view item =
        list.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) {
      credential_format format{};
      if (item == "pgpass") {
        format = credential_format::pgpass;
      } else if (item == "mycnf" || item == "my.cnf") {
        format = credential_format::mycnf;
      } else if (item == "env") {
        format = credential_format::env;
      } else if (item == "json") {
        format = credential_format::json;
      } else {
        std::string shown;
        log::append_json_string(shown, item);
        throw error(error_kind::usage,
                    "--formats: unknown format " + shown + " (known: " + std::string(all_formats) + ")")
            .about("--formats");
      }
      if (std::find(out.begin(), out.end(), format) == out.end()) out.push_back(format);
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string_view format_name(credential_format format) noexcept {
  switch (format) {
    case credential_format::pgpass: return "pgpass";
    case credential_format::mycnf: return "mycnf";
    case credential_format::env: return "env";
    case credential_format::json: return "json";
  }
  return "?";
}

std::string_view format_file_name(credential_format format) noexcept {
  switch (format) {
    case credential_format::pgpass: return "pgpass";
    case credential_format::mycnf: return "my.cnf";
    case credential_format::env: return "credentials.env";
    case credential_format::json: return "credentials.json";
  }
  return "?";
}

std::string pgpass_escape(std::string_view field) {
  if (field == "*") return "\\*";
  std::string out;
  out.reserve(field.size() + 4);
  for (std::size_t i = 0; i < field.size(); ++i) {
    const char c = field[i];
    if (c == '\\' || c == ':' || (i == 0 && c == '#')) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

std::string mycnf_quote(std::string_view value) {
  std::string out = "\"";
  out.reserve(value.size() + 8);
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      default: out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

std::string shell_quote(std::string_view value) {
  std::string out = "'";
  out.reserve(value.size() + 8);
  for (char c : value) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  out.push_back('\'');
  return out;
}

secret database_url(const credential_data& data, const std::string& ca_file) {
  return database_url(parse_record(data), ca_file);
}

secret render_format(credential_format format, const credential_data& data, const std::string& ca_file,
                     const std::optional<login>& previous) {
  switch (format) {
    case credential_format::pgpass: return render_pgpass(parse_record(data), previous);
    case credential_format::mycnf: return render_mycnf(parse_record(data), ca_file);
    case credential_format::env: return render_env(parse_record(data), ca_file);
    case credential_format::json: return to_json(data);
  }
  throw error(error_kind::internal, "unknown credential format");
}

credential_data with_formats(const credential_data& view, const std::vector<credential_format>& formats,
                             const std::string& ca_file, const std::optional<login>& previous) {
  credential_data out = view;
  for (const auto format : formats)
    out[std::string(format_file_name(format))] = render_format(format, view, ca_file, previous);
  return out;
}

}  // namespace tenantdb
