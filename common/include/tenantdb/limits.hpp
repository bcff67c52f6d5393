#pragma once
/// \file
/// Per-tenant limits, so one tenant cannot starve the shared server: a connection limit
/// on each login account and, on PostgreSQL, statement and idle-in-transaction timeouts.
/// The connector carries the platform-wide defaults; init flags override them per tenant.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tenantdb/error.hpp"

namespace tenantdb {

/// The limits each login account of a tenant gets. Zero means no limit.
struct tenant_limits {
  /// Sessions per login account (PostgreSQL CONNECTION LIMIT, MySQL/MariaDB
  /// MAX_USER_CONNECTIONS). Each account of the dual strategy has its own.
  int max_connections = 0;
  /// PostgreSQL statement_timeout of the account's sessions.
  std::chrono::milliseconds statement_timeout{0};
  /// PostgreSQL idle_in_transaction_session_timeout of the account's sessions.
  std::chrono::milliseconds idle_in_transaction_timeout{0};

  bool operator==(const tenant_limits&) const = default;
};

/// The documented defaults, used when neither the connector nor a flag names a limit:
/// 20 sessions per account, statements of at most 5 minutes, a transaction left idle
/// ended after 1 minute.
inline constexpr int default_max_connections = 20;
inline constexpr std::chrono::milliseconds default_statement_timeout{5 * 60 * 1000};
inline constexpr std::chrono::milliseconds default_idle_in_transaction_timeout{60 * 1000};
tenant_limits default_limits();

/// Bounds of a limit that is set. A connection limit below 2 would leave no session for
/// the sidecar's login check beside the workload's; one above 10000 is no limit at all.
/// Timeouts from 1 s to 24 h.
inline constexpr int min_max_connections = 2;
inline constexpr int max_max_connections = 10000;
inline constexpr std::chrono::milliseconds min_limit_timeout{1000};
inline constexpr std::chrono::milliseconds max_limit_timeout{24 * 3600 * 1000};

/// Per-tenant overrides (init flags): an unset field keeps the connector's value.
struct limit_overrides {
  std::optional<int> max_connections;
  std::optional<std::chrono::milliseconds> statement_timeout;
  std::optional<std::chrono::milliseconds> idle_in_transaction_timeout;
};

/// `base` with every set override in place.
tenant_limits apply_overrides(tenant_limits base, const limit_overrides& overrides);

/// Parses a connection limit: a whole number from min_max_connections to
/// max_max_connections, or "0" / "none" for no limit. Throws tenantdb::error of `kind`
/// (about `key`) with one line naming `key` otherwise.
int parse_max_connections(std::string_view text, std::string_view key, error_kind kind);

/// Parses a timeout: a duration such as 30s, 5m or 1h from min_limit_timeout to
/// max_limit_timeout, or "0" / "none" for no timeout. Throws like parse_max_connections.
std::chrono::milliseconds parse_limit_timeout(std::string_view text, std::string_view key, error_kind kind);

/// Throws tenantdb::error (internal) unless every limit is zero or within the bounds
/// above: what the engines check before a number reaches SQL.
void check_limits(const tenant_limits& limits);

/// "20", "5m"; "none" for zero. For logs and messages.
std::string describe_connections(int max_connections);
std::string describe_timeout(std::chrono::milliseconds timeout);

}  // namespace tenantdb
