#include "tenantdb/limits.hpp"

#include "tenantdb/duration.hpp"

namespace tenantdb {
namespace {

bool means_none(std::string_view text) {
  return text == "0" || text == "none";
}

// A value shown in a message: printable ASCII only, cut short.
std::string show(std::string_view value) {
  std::string out = "\"";
  for (char c : value.substr(0, 20)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (value.size() > 20) out += "...";
  return out + "\"";
}

std::string name_of(std::string_view key, error_kind kind) {
  return kind == error_kind::connector ? "connector key \"" + std::string(key) + "\"" : std::string(key);
}

}  // namespace

tenant_limits default_limits() {
  return tenant_limits{default_max_connections, default_statement_timeout, default_idle_in_transaction_timeout};
}

tenant_limits apply_overrides(tenant_limits base, const limit_overrides& overrides) {
  if (overrides.max_connections) base.max_connections = *overrides.max_connections;
  if (overrides.statement_timeout) base.statement_timeout = *overrides.statement_timeout;
  if (overrides.idle_in_transaction_timeout) base.idle_in_transaction_timeout = *overrides.idle_in_transaction_timeout;
  return base;
}

int parse_max_connections(std::string_view text, std::string_view key, error_kind kind) {
  if (means_none(text)) return 0;
  const std::string range = std::to_string(min_max_connections) + " to " + std::to_string(max_max_connections);
  const auto bad = [&] {
    return error(kind, name_of(key, kind) + " must be a number of sessions from " + range +
                           ", or 0 or none for no limit; got " + show(text))
        .about(std::string(key));
  };
  if (text.empty() || text.size() > 6) throw bad();
  int n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') throw bad();
    n = n * 10 + (c - '0');
  }
  if (n < min_max_connections || n > max_max_connections) throw bad();
  return n;
}

std::chrono::milliseconds parse_limit_timeout(std::string_view text, std::string_view key, error_kind kind) {
  if (means_none(text)) return std::chrono::milliseconds(0);
  const auto bad = [&] {
    return error(kind, name_of(key, kind) + " must be a duration from 1s to 24h such as 30s, 5m or 1h, or 0 or none " +
                           "for no timeout; got " + show(text))
        .about(std::string(key));
  };
  std::chrono::milliseconds d{0};
  try {
    d = parse_duration(text, key);
  } catch (const error&) {
    throw bad();
  }
  if (d < min_limit_timeout || d > max_limit_timeout) throw bad();
  return d;
}

void check_limits(const tenant_limits& limits) {
  const auto timeout_ok = [](std::chrono::milliseconds d) {
    return d.count() == 0 || (d >= min_limit_timeout && d <= max_limit_timeout);
  };
  const int n = limits.max_connections;
  if ((n != 0 && (n < min_max_connections || n > max_max_connections)) || !timeout_ok(limits.statement_timeout) ||
      !timeout_ok(limits.idle_in_transaction_timeout))
    throw error(error_kind::internal, "tenant limits out of range: maxConnections " + describe_connections(n) +
                                          ", statementTimeout " + describe_timeout(limits.statement_timeout) +
                                          ", idleInTransactionTimeout " +
                                          describe_timeout(limits.idle_in_transaction_timeout));
}

std::string describe_connections(int max_connections) {
  return max_connections == 0 ? "none" : std::to_string(max_connections);
}

std::string describe_timeout(std::chrono::milliseconds timeout) {
  return timeout.count() == 0 ? "none" : format_duration(timeout);
}

}  // namespace tenantdb
