#pragma once
/// \file
/// Deterministic database and account names for a tenant.

#include <string>
#include <string_view>

namespace tenantdb {

/// Who gets a database: a workload's name and its Kubernetes namespace.
struct tenant {
  std::string name;
  std::string namespace_name;
};

/// The names derived for one tenant. All are lowercase [a-z0-9_], start with a letter,
/// and fit every supported engine: PostgreSQL 63 bytes, MySQL/MariaDB databases 64
/// characters, MySQL accounts 32 characters.
struct tenant_names {
  /// The database, and on PostgreSQL also the NOLOGIN role that owns it and its objects.
  std::string database;
  /// The two login accounts. With the in-place strategy only `user_a` is used; the dual
  /// strategy alternates between them so a rotation never invalidates the live one.
  std::string user_a;
  std::string user_b;
};

/// Longest base name (database), leaving room for the "_a"/"_b" account suffix within
/// MySQL's 32-character account limit.
inline constexpr std::size_t max_base_name_length = 30;
/// Length of the hash part, in base32 characters (80 bits): finding another tenant
/// (namespace/name) whose names collide with a given tenant's takes about 2^80 SHA-256
/// evaluations, so names cannot be squatted by computing a collision. With the default
/// prefix this leaves 4 characters for the readable part of the name.
inline constexpr std::size_t name_hash_length = 16;
/// Default prefix.
inline constexpr std::string_view default_name_prefix = "vcluster_";

/// Throws tenantdb::error (usage, about "--tenant"/"--namespace") when the tenant's name
/// is empty, longer than 253 bytes, not UTF-8 or holds control characters, or the
/// namespace is not a DNS-1123 label.
void validate_tenant(const tenant& t);

/// Throws tenantdb::error (usage, about "--name-prefix") unless `prefix` is empty or
/// matches [a-z][a-z0-9_]* with at most 13 characters (30, less the hash and its '_').
void validate_name_prefix(std::string_view prefix);

/// Derives the names as <prefix><folded name>_<hash>, where the folded name keeps
/// lowercase ASCII letters and digits of the tenant name (other runs become '_') and is
/// cut to fit, and the hash is base32 of SHA-256 over "<namespace>/<name>". The same
/// tenant always maps to the same names; tenants that differ in any byte of name or
/// namespace get different hashes. Inputs must have passed the validators above.
tenant_names derive_names(const tenant& t, std::string_view prefix = default_name_prefix);

/// True if `name` is a DNS-1123 subdomain (Kubernetes object names, e.g. Secrets).
bool is_dns1123_subdomain(std::string_view name);
/// True if `name` is a DNS-1123 label (Kubernetes namespaces).
bool is_dns1123_label(std::string_view name);
/// True if `text` is well-formed UTF-8.
bool is_valid_utf8(std::string_view text);

}  // namespace tenantdb
