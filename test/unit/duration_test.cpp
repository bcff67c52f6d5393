#include "tenantdb/duration.hpp"

#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "expect_error.hpp"
#include "tenantdb/error.hpp"

namespace tenantdb {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

std::int64_t ms(milliseconds d) {
  return d.count();
}
std::int64_t parsed_ms(std::string_view text) {
  return parse_duration(text, "--timeout").count();
}

TEST(ParseDuration, SingleUnits) {
  EXPECT_EQ(parsed_ms("250ms"), ms(250ms));
  EXPECT_EQ(parsed_ms("90s"), ms(90s));
  EXPECT_EQ(parsed_ms("5m"), ms(5min));
  EXPECT_EQ(parsed_ms("24h"), ms(24h));
  EXPECT_EQ(parsed_ms("2d"), ms(48h));
  EXPECT_EQ(parsed_ms("1ms"), ms(1ms));
}

TEST(ParseDuration, CompoundUnits) {
  EXPECT_EQ(parsed_ms("1h30m"), ms(90min));
  EXPECT_EQ(parsed_ms("1m30s"), ms(90s));
  EXPECT_EQ(parsed_ms("1d2h3m4s5ms"), ms(24h + 2h + 3min + 4s + 5ms));
  EXPECT_EQ(parsed_ms("1s500ms"), ms(1500ms));
  EXPECT_EQ(parsed_ms("0h5m"), ms(5min));  // a zero part is fine if the sum is not
  EXPECT_EQ(parsed_ms("90m"), ms(90min));  // no normalisation required
}

TEST(ParseDuration, Rejections) {
  for (const std::string& bad : std::vector<std::string>{"",
                                                         "5",
                                                         "-5s",
                                                         "+5s",
                                                         "5x",
                                                         "0s",
                                                         "0ms",
                                                         "0h0m",
                                                         "s",
                                                         "ms",
                                                         "h5",
                                                         "5 s",
                                                         " 5s",
                                                         "5s ",
                                                         "5S",
                                                         "1.5h",
                                                         "5sm",
                                                         "m5",
                                                         "5s-",
                                                         "\xC3\xBC"
                                                         "5s",
                                                         "99999999999999999999s",
                                                         "9999999999999h",
                                                         "1h\n"}) {
    EXPECT_TENANTDB_ERROR(parse_duration(bad, "--rotate-every"), error_kind::usage, "--rotate-every");
  }
}

TEST(ParseDuration, ErrorMessageNamesTheFlag) {
  try {
    (void)parse_duration("soon", "--timeout");
    FAIL() << "accepted \"soon\"";
  } catch (const error& e) {
    EXPECT_NE(std::string(e.what()).find("--timeout"), std::string::npos) << e.what();
  }
}

TEST(ParseDuration, EverythingAcceptedFitsASteadyClockDeadline) {
  // init computes steady_clock::now() + parse_duration(--timeout); the sum is in the
  // clock's nanoseconds, which hold about 292 years. A duration the parser accepts must
  // not overflow there (signed overflow is undefined behaviour).
  const auto limit = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::duration::max());
  for (const std::string& text : std::vector<std::string>{"200000d", "9999999999d", "999999999h", "106752d"}) {
    try {
      const milliseconds d = parse_duration(text, "--timeout");
      EXPECT_LT(d.count(), (limit / 2).count()) << text << " parses to " << d.count() << " ms, too long for a deadline";
    } catch (const error& e) {
      EXPECT_STREQ(to_string(e.kind()), "usage");  // rejecting is fine
    }
  }
}

TEST(FormatDuration, LargestExactUnits) {
  EXPECT_EQ(format_duration(90min), "1h30m");
  EXPECT_EQ(format_duration(250ms), "250ms");
  EXPECT_EQ(format_duration(90s), "1m30s");
  EXPECT_EQ(format_duration(24h), "1d");
  EXPECT_EQ(format_duration(25h), "1d1h");
  EXPECT_EQ(format_duration(1500ms), "1s500ms");
  EXPECT_EQ(format_duration(24h + 1h + 1min + 1s + 1ms), "1d1h1m1s1ms");
  EXPECT_EQ(format_duration(0ms), "0s");
}

TEST(FormatDuration, RoundTripsThroughParse) {
  const std::vector<milliseconds> samples = {1ms,
                                             999ms,
                                             1s,
                                             59s,
                                             61s,
                                             3599s,
                                             3601s,
                                             86399999ms,
                                             86400001ms,
                                             milliseconds(123456789),
                                             milliseconds(98765432101)};  // parse caps at ten years
  for (const auto d : samples) {
    const std::string text = format_duration(d);
    EXPECT_EQ(parse_duration(text, "--x").count(), d.count()) << text;
  }
}

}  // namespace
}  // namespace tenantdb
