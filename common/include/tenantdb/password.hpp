#pragma once
/// \file
/// Password generation from OpenSSL's CSPRNG.

#include <cstddef>
#include <string_view>

#include "tenantdb/secret.hpp"

namespace tenantdb {

/// Letters and digits only: no character needs quoting or escaping in a URL, a
/// go-sql-driver DSN, a libpq conninfo string, a pgpass line, an option file or SQL.
inline constexpr std::string_view password_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Default length: 32 characters, about 190 bits.
inline constexpr std::size_t default_password_length = 32;
/// Bounds accepted for --password-length (MySQL caps passwords at 80 in some paths).
inline constexpr std::size_t min_password_length = 16;
inline constexpr std::size_t max_password_length = 80;

/// Throws tenantdb::error (usage, about "--password-length") unless `length` is within
/// [min_password_length, max_password_length]. Call before anything is created.
void validate_password_length(std::size_t length);

/// Returns `length` characters drawn uniformly from password_alphabet (rejection
/// sampling, so no modulo bias). Throws tenantdb::error if the CSPRNG fails.
secret generate_password(std::size_t length = default_password_length);

}  // namespace tenantdb
