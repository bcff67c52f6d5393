#include "tenantdb/dsn.hpp"

#include <regex>

namespace tenantdb {

std::string percent_encode(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() * 3);
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                            c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0xF]);
    }
  }
  return out;
}

std::string url_host(std::string_view host) {
  if (host.find(':') != std::string_view::npos) return "[" + std::string(host) + "]";
  return std::string(host);
}

std::string_view go_mysql_tls(tls_mode mode) noexcept {
  switch (mode) {
    case tls_mode::disable: return "false";
    case tls_mode::allow:
    case tls_mode::prefer: return "preferred";
    case tls_mode::require: return "skip-verify";
    case tls_mode::verify_ca:
    case tls_mode::verify_full: break;
  }
  return "true";
}

secret kine_data_source(const data_source_parts& parts) {
  static const secret empty;
  const secret& password = parts.password != nullptr ? *parts.password : empty;
  const std::string host_port = url_host(parts.server.host) + ":" + std::to_string(parts.server.port);
  std::string out;
  if (parts.server.type == engine_type::postgres) {
    std::string encoded_password = percent_encode(password.reveal());
    out = "postgres://" + percent_encode(parts.user) + ":" + encoded_password + "@" + host_port + "/" +
          percent_encode(parts.database) + "?sslmode=" + std::string(to_string(parts.server.tls));
    wipe(encoded_password);
    const bool verifies = parts.server.tls == tls_mode::verify_ca || parts.server.tls == tls_mode::verify_full;
    if (verifies && !parts.server.ca_pem.empty() && !parts.ca_file.empty())
      out += "&sslrootcert=" + percent_encode(parts.ca_file);
  } else {
    // go-sql-driver takes everything between the first ':' and the last '@' verbatim.
    out = "mysql://" + parts.user + ":" + password.reveal() + "@tcp(" + host_port + ")/" + parts.database +
          "?tls=" + std::string(go_mysql_tls(parts.server.tls));
  }
  return secret(std::move(out));
}

std::string mask_dsn(std::string_view text) {
  // scheme://user:password@ and user:password@tcp( anywhere in the text. The password
  // runs to the last '@' before the host; a URL's is percent-encoded and holds no '@'.
  static const std::regex url(R"(([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^\s]*(@[^@\s]*))");
  static const std::regex go(R"((^|[\s"'=])([^:/@\s"'=]*:)(?!//)[^\s]*(@(tcp|unix)\())");
  // A bare DSN: the password is everything between the user's ':' and the last '@',
  // spaces included.
  static const std::regex bare_url(R"(^([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*:)(.*)(@[^@]*)$)");
  static const std::regex bare_go(R"(^([^:/@]*:)(?!//)(.*)(@(tcp|unix)\(.*)$)");
  const std::string whole(text);
  std::smatch m;
  if (std::regex_match(whole, m, bare_url) || std::regex_match(whole, m, bare_go))
    return m[1].str() + "***" + m[3].str();
  // Inside a message a DSN ends at white space.
  std::string s = std::regex_replace(whole, url, "$1***$2");
  return std::regex_replace(s, go, "$1$2***$3");
}

}  // namespace tenantdb
