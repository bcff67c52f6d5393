#include "tenantdb/retry.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tenantdb/error.hpp"
#include "tenantdb/log.hpp"

namespace tenantdb {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using time_point = std::chrono::steady_clock::time_point;

// A clock that only moves when retry_until sleeps, and records every sleep.
struct fake_clock {
  time_point now = time_point{} + 1000h;  // arbitrary, far from the epoch
  std::vector<milliseconds> sleeps;

  retry_clock clock() {
    retry_clock c;
    c.now = [this] { return now; };
    c.sleep = [this](milliseconds d) {
      sleeps.push_back(d);
      now += d;
    };
    return c;
  }
};

backoff_policy no_jitter(milliseconds initial, milliseconds max, double multiplier = 2.0) {
  backoff_policy p;
  p.initial = initial;
  p.max = max;
  p.multiplier = multiplier;
  p.jitter = 0.0;
  return p;
}

// Keeps the warnings retry_until logs out of the test output.
class Retry : public ::testing::Test {
protected:
  void SetUp() override {
    log::set_sink([this](std::string_view line) { log_lines.emplace_back(line); });
  }
  void TearDown() override { log::set_sink(nullptr); }
  std::vector<std::string> log_lines;
};

TEST_F(Retry, ReturnsAtOnceOnSuccess) {
  fake_clock fc;
  int calls = 0;
  retry_until(
      fc.now + 1h, "op", [&] { ++calls; }, {}, fc.clock());
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(fc.sleeps.empty());
}

TEST_F(Retry, SucceedsAfterRetryableFailures) {
  fake_clock fc;
  int calls = 0;
  const auto policy = no_jitter(100ms, 10s);
  retry_until(
      fc.now + 1h, "op",
      [&] {
        if (++calls <= 5) throw error(error_kind::unavailable, "connection refused").retryable();
      },
      policy, fc.clock());
  EXPECT_EQ(calls, 6);
  ASSERT_EQ(fc.sleeps.size(), 5U);
  for (unsigned i = 0; i < 5; ++i) EXPECT_EQ(fc.sleeps[i].count(), backoff_delay(policy, i + 1).count()) << i;
  // With no jitter the delays are exactly initial * 2^(n-1).
  EXPECT_EQ(fc.sleeps[0].count(), 100);
  EXPECT_EQ(fc.sleeps[4].count(), 1600);
}

TEST_F(Retry, NonRetryableErrorPropagatesWithoutSleeping) {
  fake_clock fc;
  int calls = 0;
  try {
    retry_until(
        fc.now + 1h, "op",
        [&] {
          ++calls;
          throw error(error_kind::database, "permission denied").sqlstate("42501");
        },
        {}, fc.clock());
    FAIL() << "no exception";
  } catch (const error& e) {
    EXPECT_STREQ(to_string(e.kind()), "database");
    EXPECT_STREQ(e.what(), "permission denied");
    EXPECT_EQ(e.sqlstate(), "42501");
  }
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(fc.sleeps.empty());
}

TEST_F(Retry, RetryableFlagFalseIsNotRetried) {
  fake_clock fc;
  int calls = 0;
  EXPECT_THROW(retry_until(
                   fc.now + 1h, "op",
                   [&] {
                     ++calls;
                     throw error(error_kind::unavailable, "x").retryable(false);
                   },
                   {}, fc.clock()),
               error);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(fc.sleeps.empty());
}

TEST_F(Retry, OtherExceptionsPropagateWithoutSleeping) {
  fake_clock fc;
  int calls = 0;
  EXPECT_THROW(retry_until(
                   fc.now + 1h, "op",
                   [&] {
                     ++calls;
                     throw std::logic_error("bug");
                   },
                   {}, fc.clock()),
               std::logic_error);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(fc.sleeps.empty());
}

TEST_F(Retry, GivesUpAtTheDeadlineKeepingTheLastError) {
  fake_clock fc;
  const time_point deadline = fc.now + 1000ms;
  int calls = 0;
  // Delays 100, 200, 400 fit (t = 700 ms); the fourth, 800 ms, would end after the
  // deadline, so the fourth failure is the last.
  try {
    retry_until(
        deadline, "connect to db",
        [&] {
          ++calls;
          throw error(error_kind::database, "the database system is starting up (" + std::to_string(calls) + ")")
              .retryable()
              .sqlstate("57P03")
              .db_errno(2002)
              .http_status(503)
              .about("adminUser");
        },
        no_jitter(100ms, 10s), fc.clock());
    FAIL() << "no exception";
  } catch (const error& e) {
    const std::string what = e.what();
    EXPECT_STREQ(to_string(e.kind()), "unavailable");
    EXPECT_NE(what.find("gave up"), std::string::npos) << what;
    EXPECT_NE(what.find("connect to db"), std::string::npos) << what;
    EXPECT_NE(what.find("the database system is starting up (4)"), std::string::npos) << "last error's text: " << what;
    EXPECT_NE(what.find("4 attempts"), std::string::npos) << what;
    EXPECT_EQ(e.sqlstate(), "57P03");
    EXPECT_EQ(e.db_errno(), 2002U);
    EXPECT_EQ(e.http_status(), 503);
    EXPECT_EQ(e.key(), "adminUser");
  }
  EXPECT_EQ(calls, 4);
  ASSERT_EQ(fc.sleeps.size(), 3U);
  EXPECT_LE(fc.now, deadline) << "slept past the deadline";
}

TEST_F(Retry, DeadlineAlreadyPassedStillTriesOnce) {
  fake_clock fc;
  int calls = 0;
  try {
    retry_until(
        fc.now - 1s, "op",
        [&] {
          ++calls;
          throw error(error_kind::unavailable, "refused").retryable();
        },
        {}, fc.clock());
    FAIL() << "no exception";
  } catch (const error& e) {
    EXPECT_STREQ(to_string(e.kind()), "unavailable");
    EXPECT_NE(std::string(e.what()).find("1 attempt"), std::string::npos) << e.what();
  }
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(fc.sleeps.empty());
}

TEST_F(Retry, NeverSleepsPastTheDeadlineWithJitter) {
  for (int run = 0; run < 200; ++run) {
    fake_clock fc;
    const time_point deadline = fc.now + 3s;
    EXPECT_THROW(retry_until(
                     deadline, "op", [] { throw error(error_kind::unavailable, "x").retryable(); }, {}, fc.clock()),
                 error);
    EXPECT_LE(fc.now, deadline);
  }
}

TEST_F(Retry, LogsEachRetry) {
  fake_clock fc;
  int calls = 0;
  retry_until(
      fc.now + 1h, "read the connector",
      [&] {
        if (++calls <= 2) throw error(error_kind::unavailable, "timeout talking to the API").retryable();
      },
      no_jitter(10ms, 1s), fc.clock());
  ASSERT_EQ(log_lines.size(), 2U);
  EXPECT_NE(log_lines[0].find("read the connector"), std::string::npos) << log_lines[0];
  EXPECT_NE(log_lines[0].find("timeout talking to the API"), std::string::npos) << log_lines[0];
}

TEST_F(Retry, JitterStaysWithinBoundsAndVaries) {
  fake_clock fc;
  backoff_policy policy;
  policy.initial = 1000ms;
  policy.max = 1000ms;  // constant base: every sleep is 1000 ms +/- 25 %
  policy.jitter = 0.25;
  int calls = 0;
  retry_until(
      fc.now + 24h, "op",
      [&] {
        if (++calls <= 1000) throw error(error_kind::unavailable, "x").retryable();
      },
      policy, fc.clock());
  ASSERT_EQ(fc.sleeps.size(), 1000U);
  std::int64_t lo = fc.sleeps[0].count();
  std::int64_t hi = lo;
  double sum = 0;
  for (const auto d : fc.sleeps) {
    EXPECT_GE(d.count(), 750);
    EXPECT_LE(d.count(), 1250);
    lo = std::min<std::int64_t>(lo, d.count());
    hi = std::max<std::int64_t>(hi, d.count());
    sum += static_cast<double>(d.count());
  }
  // A uniform spread over [750, 1250]: 1000 draws all above 900 (or all below 1100) has
  // probability 0.8^1000; the mean is within a few ms of 1000 (sd of the mean ≈ 4.6 ms).
  EXPECT_LT(lo, 900);
  EXPECT_GT(hi, 1100);
  EXPECT_NEAR(sum / 1000.0, 1000.0, 40.0);
}

TEST_F(Retry, JitterFollowsTheGrowingBase) {
  fake_clock fc;
  backoff_policy policy;
  policy.initial = 100ms;
  policy.max = 3200ms;
  policy.jitter = 0.5;
  int calls = 0;
  retry_until(
      fc.now + 24h, "op",
      [&] {
        if (++calls <= 12) throw error(error_kind::unavailable, "x").retryable();
      },
      policy, fc.clock());
  ASSERT_EQ(fc.sleeps.size(), 12U);
  for (unsigned n = 1; n <= 12; ++n) {
    const double base = static_cast<double>(backoff_delay(policy, n).count());
    EXPECT_GE(static_cast<double>(fc.sleeps[n - 1].count()), std::floor(base * 0.5)) << "attempt " << n;
    EXPECT_LE(static_cast<double>(fc.sleeps[n - 1].count()), std::ceil(base * 1.5)) << "attempt " << n;
  }
}

TEST(BackoffDelay, GrowsGeometricallyAndCaps) {
  const backoff_policy policy;  // 250 ms, x2, cap 5 s
  const std::vector<std::int64_t> expected = {250, 500, 1000, 2000, 4000, 5000, 5000, 5000};
  for (unsigned n = 1; n <= expected.size(); ++n) EXPECT_EQ(backoff_delay(policy, n).count(), expected[n - 1]) << n;
  EXPECT_EQ(backoff_delay(policy, 1000).count(), 5000);
  EXPECT_EQ(backoff_delay(policy, std::numeric_limits<unsigned>::max()).count(), 5000);
}

TEST(BackoffDelay, NonIntegerMultiplier) {
  const auto policy = no_jitter(100ms, 1000ms, 1.5);
  EXPECT_EQ(backoff_delay(policy, 1).count(), 100);
  EXPECT_EQ(backoff_delay(policy, 2).count(), 150);
  EXPECT_EQ(backoff_delay(policy, 3).count(), 225);
  EXPECT_EQ(backoff_delay(policy, 4).count(), 337);  // 337.5, truncated
  EXPECT_EQ(backoff_delay(policy, 20).count(), 1000);
}

TEST(BackoffDelay, IsMonotonicAndNeverAboveTheCap) {
  const auto policy = no_jitter(7ms, 999ms, 1.7);
  std::int64_t previous = 0;
  for (unsigned n = 1; n < 100; ++n) {
    const auto d = backoff_delay(policy, n).count();
    EXPECT_GE(d, previous);
    EXPECT_LE(d, 999);
    previous = d;
  }
  EXPECT_EQ(previous, 999);
}

TEST(BackoffDelay, InitialAboveTheCapIsCapped) {
  EXPECT_EQ(backoff_delay(no_jitter(10s, 1s), 1).count(), 1000);
}

TEST(WithJitter, StaysWithinTheFractionEitherWayAndReachesBothSides) {
  std::mt19937_64 rng(42);
  std::int64_t lowest = std::numeric_limits<std::int64_t>::max();
  std::int64_t highest = 0;
  for (int i = 0; i < 2000; ++i) {
    const auto d = with_jitter(10'000ms, 0.1, rng).count();
    EXPECT_GE(d, 9'000);
    EXPECT_LE(d, 11'000);
    lowest = std::min(lowest, d);
    highest = std::max(highest, d);
  }
  // Spread over the whole band, not stuck on one side of the base.
  EXPECT_LT(lowest, 9'100);
  EXPECT_GT(highest, 10'900);
}

TEST(WithJitter, NoJitterIsTheDelayItself) {
  std::mt19937_64 rng(7);
  for (const auto d : {0ms, 1ms, 250ms, 300'000ms}) EXPECT_EQ(with_jitter(d, 0.0, rng), d);
}

TEST(WithJitter, SameSeedSameDelays) {
  std::mt19937_64 a(1234);
  std::mt19937_64 b(1234);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(with_jitter(5'000ms, 0.25, a), with_jitter(5'000ms, 0.25, b));
}

}  // namespace
}  // namespace tenantdb
