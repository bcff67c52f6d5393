#pragma once
// Shared by the fuzz targets and the seed generator: the fixed secrets and nonces that
// make the proxy's SCRAM exchanges deterministic, so the fuzzer (and the seed corpus)
// can reach the messages after the first one. Nothing here is a real credential.

#include <string>
#include <string_view>

#include "proxy/postgres_protocol.hpp"
#include "tenantdb/secret.hpp"

namespace tenantdb::fuzz {

/// The proxy's local password and its verifier (PostgreSQL front door).
inline constexpr std::string_view local_password = "fuzz-local-password";
inline constexpr std::string_view local_salt = "fuzz-salt-16byte";
inline constexpr std::uint32_t local_iterations = 4096;
/// The server nonce the proxy's scram_server appends (random in the proxy).
inline constexpr std::string_view server_nonce = "ProxyServerNonceForFuzzing";
/// The nonce the proxy's scram_client sends upstream (random in the proxy).
inline constexpr std::string_view client_nonce = "ProxyClientNonceForFuzzing";
/// The tenant's upstream password and user in the upstream target.
inline constexpr std::string_view upstream_password = "fuzz-upstream-password";
inline constexpr std::string_view upstream_user = "vcluster_fuzz_a";
/// The scramble the MySQL proxy sends in its greeting (random in the proxy).
inline constexpr std::string_view mysql_scramble = "0123456789abcdefghij";

inline const proxy::pg::scram_verifier& local_verifier() {
  static const proxy::pg::scram_verifier v =
      proxy::pg::make_scram_verifier(secret(std::string(local_password)), std::string(local_salt), local_iterations);
  return v;
}

}  // namespace tenantdb::fuzz
