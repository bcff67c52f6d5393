#include "tenantdb/time.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>

namespace tenantdb {

using clock = std::chrono::system_clock;

std::string format_rfc3339(clock::time_point t, time_precision precision) {
  const auto millis = std::chrono::floor<std::chrono::milliseconds>(t);
  const auto secs = std::chrono::floor<std::chrono::seconds>(millis);
  const auto days = std::chrono::floor<std::chrono::days>(secs);
  const std::chrono::year_month_day ymd{days};
  const std::chrono::hh_mm_ss hms{secs - days};
  char buf[40];
  int n = std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d", static_cast<int>(ymd.year()),
                        static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                        static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                        static_cast<int>(hms.seconds().count()));
  std::string out(buf, static_cast<std::size_t>(std::max(n, 0)));
  if (precision == time_precision::milliseconds) {
    n = std::snprintf(buf, sizeof buf, ".%03d", static_cast<int>((millis - secs).count()));
    out.append(buf, static_cast<std::size_t>(std::max(n, 0)));
  }
  out.push_back('Z');
  return out;
}

std::optional<clock::time_point> parse_rfc3339(std::string_view s) {
  std::size_t pos = 0;
  const auto digits = [&](std::size_t n) -> std::optional<int> {
    if (pos + n > s.size()) return std::nullopt;
    int v = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const char c = s[pos + i];
      if (c < '0' || c > '9') return std::nullopt;
      v = v * 10 + (c - '0');
    }
    pos += n;
    return v;
  };
  const auto expect = [&](std::string_view chars) {
    if (pos < s.size() && chars.find(s[pos]) != std::string_view::npos) {
      ++pos;
      return true;
    }
    return false;
  };
  const auto y = digits(4);
  if (!y || !expect("-")) return std::nullopt;
  const auto mo = digits(2);
  if (!mo || !expect("-")) return std::nullopt;
  const auto d = digits(2);
  if (!d || !expect("Tt ")) return std::nullopt;
  const auto h = digits(2);
  if (!h || !expect(":")) return std::nullopt;
  const auto mi = digits(2);
  if (!mi || !expect(":")) return std::nullopt;
  const auto sec = digits(2);
  if (!sec) return std::nullopt;
  std::chrono::nanoseconds fraction{0};
  if (expect(".")) {
    std::int64_t scale = 100'000'000;
    const std::size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      fraction += std::chrono::nanoseconds((s[pos] - '0') * scale);
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  std::chrono::minutes offset{0};
  if (!expect("Zz")) {
    if (pos >= s.size() || (s[pos] != '+' && s[pos] != '-')) return std::nullopt;
    const int sign = s[pos] == '-' ? -1 : 1;
    ++pos;
    const auto oh = digits(2);
    if (!oh || !expect(":")) return std::nullopt;
    const auto om = digits(2);
    if (!om || *oh > 23 || *om > 59) return std::nullopt;
    offset = std::chrono::minutes(sign * (*oh * 60 + *om));
  }
  if (pos != s.size()) return std::nullopt;
  // year_month_day::ok() knows each month's length and leap years: 2024-02-31 is no date.
  const std::chrono::year_month_day ymd{std::chrono::year{*y}, std::chrono::month{static_cast<unsigned>(*mo)},
                                        std::chrono::day{static_cast<unsigned>(*d)}};
  if (!ymd.ok() || *h > 23 || *mi > 59 || *sec > 60) return std::nullopt;
  const auto tp = std::chrono::sys_days{ymd} + std::chrono::hours(*h) + std::chrono::minutes(*mi) +
                  std::chrono::seconds(*sec) + fraction - offset;
  return std::chrono::time_point_cast<clock::duration>(tp);
}

}  // namespace tenantdb
