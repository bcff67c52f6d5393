#include "tenantdb/password.hpp"

#include <array>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "tenantdb/error.hpp"

namespace tenantdb {

void validate_password_length(std::size_t length) {
  if (length < min_password_length || length > max_password_length)
    throw error(error_kind::usage, "--password-length must be between " + std::to_string(min_password_length) +
                                       " and " + std::to_string(max_password_length))
        .about("--password-length");
}

secret generate_password(std::size_t length) {
  validate_password_length(length);
  constexpr std::size_t n = password_alphabet.size();
  // Accept only bytes below the largest multiple of n: every character is then equally
  // likely (rejection sampling instead of a biased modulo).
  constexpr unsigned limit = 256 - (256 % n);
  std::string out;
  out.reserve(max_password_length);
  std::array<unsigned char, 64> pool{};
  while (out.size() < length) {
    if (RAND_bytes(pool.data(), static_cast<int>(pool.size())) != 1)
      throw error(error_kind::internal, "the system's random number generator failed (OpenSSL RAND_bytes)");
    for (unsigned char byte : pool) {
      if (byte >= limit) continue;
      out.push_back(password_alphabet[byte % n]);
      if (out.size() == length) break;
    }
  }
  OPENSSL_cleanse(pool.data(), pool.size());
  return secret(std::move(out));
}

}  // namespace tenantdb
