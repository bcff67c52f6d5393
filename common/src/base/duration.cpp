#include "tenantdb/duration.hpp"

#include <cstdint>
#include <limits>

#include "tenantdb/error.hpp"

namespace tenantdb {

std::chrono::milliseconds parse_duration(std::string_view text, std::string_view flag) {
  const auto bad = [&] {
    return error(error_kind::usage, std::string(flag) + " must be a duration such as 90s, 5m, 24h or 1h30m")
        .about(std::string(flag));
  };
  if (text.empty()) throw bad();
  std::int64_t total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::int64_t number = 0;
    const std::size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      if (number > 1'000'000'000) throw bad();
      number = number * 10 + (text[i] - '0');
      ++i;
    }
    if (i == start) throw bad();
    std::int64_t unit_ms = 0;
    if (text.substr(i, 2) == "ms") {
      unit_ms = 1;
      i += 2;
    } else if (i < text.size() && text[i] == 's') {
      unit_ms = 1000;
      ++i;
    } else if (i < text.size() && text[i] == 'm') {
      unit_ms = 60'000;
      ++i;
    } else if (i < text.size() && text[i] == 'h') {
      unit_ms = 3'600'000;
      ++i;
    } else if (i < text.size() && text[i] == 'd') {
      unit_ms = 86'400'000;
      ++i;
    } else
      throw bad();
    if (number > (std::numeric_limits<std::int64_t>::max() / 4 - total) / unit_ms) throw bad();
    total += number * unit_ms;
  }
  // Ten years: far beyond any sensible setting, and safe to add to a steady_clock time.
  constexpr std::int64_t max_ms = 10LL * 365 * 86'400'000;
  if (total <= 0 || total > max_ms) throw bad();
  return std::chrono::milliseconds(total);
}

std::string format_duration(std::chrono::milliseconds d) {
  std::int64_t ms = d.count();
  if (ms == 0) return "0s";
  if (ms < 0) return "-" + format_duration(-d);
  std::string out;
  const struct {
    std::int64_t size;
    const char* name;
  } units[] = {{86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}, {1, "ms"}};
  for (const auto& u : units) {
    if (ms >= u.size) {
      out += std::to_string(ms / u.size) + u.name;
      ms %= u.size;
    }
  }
  return out;
}

}  // namespace tenantdb
