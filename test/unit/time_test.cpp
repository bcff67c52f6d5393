#include "tenantdb/time.hpp"

#include <chrono>

#include <gtest/gtest.h>

namespace tenantdb {
namespace {

using namespace std::chrono;
using clock_type = system_clock;

clock_type::time_point at(std::int64_t seconds) {
  return clock_type::time_point(duration_cast<clock_type::duration>(std::chrono::seconds(seconds)));
}

TEST(Time, FormatsWholeSecondsInUtc) {
  EXPECT_EQ(format_rfc3339(at(1714564800)), "2024-05-01T12:00:00Z");
  EXPECT_EQ(format_rfc3339(at(0)), "1970-01-01T00:00:00Z");
  // Truncated, never rounded into the next second.
  EXPECT_EQ(format_rfc3339(at(1714564800) + milliseconds(999)), "2024-05-01T12:00:00Z");
}

TEST(Time, FormatsMillisecondsForLogLines) {
  EXPECT_EQ(format_rfc3339(at(1714564800) + milliseconds(7), time_precision::milliseconds), "2024-05-01T12:00:00.007Z");
  EXPECT_EQ(format_rfc3339(at(1714564800) + microseconds(999999), time_precision::milliseconds),
            "2024-05-01T12:00:00.999Z");
}

TEST(Time, ParsesUtcOffsetsAndFractions) {
  EXPECT_EQ(parse_rfc3339("2024-05-01T12:00:00Z"), at(1714564800));
  EXPECT_EQ(parse_rfc3339("2024-05-01t12:00:00z"), at(1714564800));
  EXPECT_EQ(parse_rfc3339("2024-05-01 12:00:00Z"), at(1714564800));
  EXPECT_EQ(parse_rfc3339("2024-05-01T14:00:00+02:00"), at(1714564800));
  EXPECT_EQ(parse_rfc3339("2024-05-01T09:30:00-02:30"), at(1714564800));
  EXPECT_EQ(parse_rfc3339("2024-05-01T12:00:00.25Z"), at(1714564800) + milliseconds(250));
}

TEST(Time, RoundTripsWhatItFormats) {
  for (const std::int64_t s : {0LL, 951782400LL /* 2000-02-29 */, 1709164800LL /* 2024-02-29 */, 4102444799LL})
    EXPECT_EQ(parse_rfc3339(format_rfc3339(at(s))), at(s)) << s;
}

TEST(Time, RejectsImpossibleDatesAndTimes) {
  EXPECT_FALSE(parse_rfc3339("2024-02-31T00:00:00Z"));  // rotation and agent used to disagree here
  EXPECT_FALSE(parse_rfc3339("2023-02-29T00:00:00Z"));  // not a leap year
  EXPECT_FALSE(parse_rfc3339("1900-02-29T00:00:00Z"));  // nor is a century not divisible by 400
  EXPECT_TRUE(parse_rfc3339("2024-02-29T00:00:00Z"));
  EXPECT_TRUE(parse_rfc3339("2000-02-29T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2024-04-31T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2024-13-01T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2024-00-01T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2024-05-00T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2024-05-01T24:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2024-05-01T12:60:00Z"));
  EXPECT_FALSE(parse_rfc3339("2024-05-01T12:00:61Z"));
  EXPECT_FALSE(parse_rfc3339("2024-05-01T12:00:00+24:00"));
  EXPECT_FALSE(parse_rfc3339("2024-05-01T12:00:00+02:60"));
}

TEST(Time, RejectsWhatIsNotRfc3339) {
  EXPECT_FALSE(parse_rfc3339(""));
  EXPECT_FALSE(parse_rfc3339("2024-05-01 12:00"));
  EXPECT_FALSE(parse_rfc3339("2024-05-01T12:00:00"));  // no zone
  EXPECT_FALSE(parse_rfc3339("2024-05-01T12:00:00.Z"));
  EXPECT_FALSE(parse_rfc3339("2024-05-01T12:00:00Zjunk"));
  EXPECT_FALSE(parse_rfc3339("2024-5-01T12:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2024-05-01T12:00:00+0200"));
}

}  // namespace
}  // namespace tenantdb
