#pragma once
/// \file
/// RFC 3339 times, as the store's annotations, ownership records and log lines carry them.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace tenantdb {

/// How many fractional digits format_rfc3339 writes.
enum class time_precision {
  seconds,       ///< "2024-05-01T12:00:00Z" (annotations, ownership records)
  milliseconds,  ///< "2024-05-01T12:00:00.123Z" (log lines)
};

/// `t` in UTC, truncated to the precision (never rounded up into the next second).
std::string format_rfc3339(std::chrono::system_clock::time_point t, time_precision precision = time_precision::seconds);

/// Parses YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), 'T' also as 't' or ' ' and
/// 'Z' as 'z'. std::nullopt if it is not one, including an impossible date
/// ("2024-02-31"), an hour over 23, a minute over 59, a second over 60 (a leap second is
/// read as the next second) or an offset beyond 23:59.
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text);

}  // namespace tenantdb
