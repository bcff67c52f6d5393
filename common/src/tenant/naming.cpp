#include "tenantdb/naming.hpp"

#include <array>

#include <openssl/evp.h>

#include "tenantdb/error.hpp"

namespace tenantdb {
namespace {

constexpr std::size_t max_tenant_name_bytes = 253;
// The prefix, '_' and the hash must fit the 30 characters of a base name.
constexpr std::size_t max_prefix_length = max_base_name_length - name_hash_length - 1;
static_assert(max_prefix_length >= 9, "the default prefix vcluster_ must fit");

bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// base32 (RFC 4648 alphabet, lowercased) of SHA-256("<namespace>/<name>"). A namespace
// cannot contain '/', so the input is unambiguous.
std::string tenant_hash(const tenant& t) {
  const std::string input = t.namespace_name + "/" + t.name;
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  if (EVP_Digest(input.data(), input.size(), digest.data(), &len, EVP_sha256(), nullptr) != 1)
    throw error(error_kind::internal, "SHA-256 failed in OpenSSL");
  static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (unsigned i = 0; i < len && out.size() < name_hash_length; ++i) {
    buffer = (buffer << 8) | digest[i];
    bits += 8;
    while (bits >= 5 && out.size() < name_hash_length) {
      out.push_back(alphabet[(buffer >> (bits - 5)) & 31u]);
      bits -= 5;
    }
  }
  return out;
}

// Lowercase ASCII letters and digits kept; every other run of bytes becomes one '_'.
std::string fold(std::string_view name) {
  std::string out;
  for (char c : name) {
    const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if (is_lower_alnum(lower)) {
      out.push_back(lower);
    } else if (!out.empty() && out.back() != '_') {
      out.push_back('_');
    }
  }
  return out;
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len;
    unsigned cp;
    unsigned min;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1Fu;
      min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0Fu;
      min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07u;
      min = 0x10000;
    } else
      return false;
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

bool is_dns1123_label(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  if (!is_lower_alnum(name.front()) || !is_lower_alnum(name.back())) return false;
  for (char c : name)
    if (!is_lower_alnum(c) && c != '-') return false;
  return true;
}

bool is_dns1123_subdomain(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = name.find('.', start);
    const std::string_view part =
        name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (part.empty()) return false;
    if (!is_lower_alnum(part.front()) || !is_lower_alnum(part.back())) return false;
    for (char c : part)
      if (!is_lower_alnum(c) && c != '-') return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

void validate_tenant(const tenant& t) {
  if (t.name.empty())
    throw error(error_kind::usage, "the tenant name is empty: pass --tenant or set TENANTDB_TENANT").about("--tenant");
  if (t.name.size() > max_tenant_name_bytes)
    throw error(error_kind::usage, "the tenant name (--tenant) is " + std::to_string(t.name.size()) +
                                       " bytes long; at most 253 are allowed")
        .about("--tenant");
  if (!is_valid_utf8(t.name))
    throw error(error_kind::usage, "the tenant name (--tenant) is not valid UTF-8").about("--tenant");
  for (std::size_t i = 0; i < t.name.size(); ++i) {
    const auto c = static_cast<unsigned char>(t.name[i]);
    // C0, DEL, and C1 (U+0080-U+009F, UTF-8 C2 80-C2 9F), which terminals act on.
    const bool c1 = c == 0xC2 && i + 1 < t.name.size() && static_cast<unsigned char>(t.name[i + 1]) <= 0x9F;
    if (c < 0x20 || c == 0x7f || c1)
      throw error(error_kind::usage, "the tenant name (--tenant) contains a control character").about("--tenant");
  }
  if (!is_dns1123_label(t.namespace_name))
    throw error(error_kind::usage,
                "the namespace must be a Kubernetes namespace name (lowercase letters, digits and '-', at most 63): "
                "pass --namespace or set POD_NAMESPACE")
        .about("--namespace");
}

void validate_name_prefix(std::string_view prefix) {
  if (prefix.empty()) return;
  bool ok = prefix.size() <= max_prefix_length && prefix.front() >= 'a' && prefix.front() <= 'z';
  for (char c : prefix) ok = ok && (is_lower_alnum(c) || c == '_');
  if (!ok)
    throw error(error_kind::usage,
                "--name-prefix must start with a lowercase letter and hold only a-z, 0-9 and '_', at most " +
                    std::to_string(max_prefix_length) + " characters")
        .about("--name-prefix");
}

tenant_names derive_names(const tenant& t, std::string_view prefix) {
  // A validated prefix starts with a letter. Without one, the name might start with a
  // digit, so keep one character of room for a leading 't'.
  const std::string lead = prefix.empty() ? "t" : std::string(prefix);
  // Room for the readable part: the total minus the lead, the hash and the '_' before it.
  const std::size_t budget = max_base_name_length - lead.size() - name_hash_length - 1;
  std::string folded = fold(t.name);
  if (folded.size() > budget) folded.resize(budget);
  while (!folded.empty() && folded.back() == '_') folded.pop_back();
  std::string base = prefix.empty() ? std::string() : lead;
  if (prefix.empty() && (folded.empty() || !(folded.front() >= 'a' && folded.front() <= 'z'))) base = lead;
  if (!base.empty() && base.back() == '_' && !folded.empty() && folded.front() == '_') folded.erase(0, 1);
  base += folded;
  if (!base.empty() && base.back() != '_') base.push_back('_');
  base += tenant_hash(t);
  return tenant_names{base, base + "_a", base + "_b"};
}

}  // namespace tenantdb
