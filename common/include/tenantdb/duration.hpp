#pragma once
/// \file
/// Durations as users write them in flags: "90s", "5m", "24h", "1h30m", "250ms".

#include <chrono>
#include <string>
#include <string_view>

namespace tenantdb {

/// Parses a Go-style duration (units ms, s, m, h, d; at least one unit; no sign). Throws
/// tenantdb::error (usage, about `flag`) on anything else or on zero.
std::chrono::milliseconds parse_duration(std::string_view text, std::string_view flag);

/// Formats as the largest exact units, e.g. "1h30m", "250ms".
std::string format_duration(std::chrono::milliseconds d);

}  // namespace tenantdb
