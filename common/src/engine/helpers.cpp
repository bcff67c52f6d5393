#include "engine/helpers.hpp"

#include "tenantdb/dsn.hpp"
#include "tenantdb/error.hpp"

namespace tenantdb::detail {

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

std::string printable(std::string_view text) {
  std::string out;
  for (const char c : text.substr(0, 80)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (text.size() > 80) out += "...";
  return out;
}

std::string endpoint(const server_address& server) {
  return url_host(server.host) + ":" + std::to_string(server.port);
}

bool is_identifier(std::string_view name, std::size_t max_length) {
  if (name.empty() || name.size() > max_length) return false;
  if (name[0] < 'a' || name[0] > 'z') return false;
  for (const char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

void check_password(const secret& password, std::string_view whose) {
  if (password.empty()) throw error(error_kind::usage, "the password of " + std::string(whose) + " is empty");
  if (password.reveal().find('\0') != std::string::npos)
    throw error(error_kind::usage, "the password of " + std::string(whose) + " contains a NUL byte");
}

}  // namespace tenantdb::detail
