#pragma once
/// \file
/// Retrying transient failures with exponential backoff and jitter until a deadline.

#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <string_view>

namespace tenantdb {

/// Backoff between attempts: initial, multiplied each time, capped, with +/- jitter.
struct backoff_policy {
  std::chrono::milliseconds initial{250};
  std::chrono::milliseconds max{5000};
  double multiplier = 2.0;
  double jitter = 0.25;  ///< fraction of the delay drawn at random either way
};

/// Time and sleeping, injectable so tests need not wait.
struct retry_clock {
  std::function<std::chrono::steady_clock::time_point()> now = [] { return std::chrono::steady_clock::now(); };
  std::function<void(std::chrono::milliseconds)> sleep;  ///< default: this_thread::sleep_for
};

/// Calls `attempt` until it returns normally. A tenantdb::error marked retryable is
/// logged and retried after a backoff delay; once the next attempt would start after
/// `deadline`, the last error is rethrown as kind `unavailable` with its message kept
/// ("gave up after N attempts: ..."). Any other exception propagates at once.
void retry_until(std::chrono::steady_clock::time_point deadline, std::string_view what,
                 const std::function<void()>& attempt, const backoff_policy& policy = {},
                 const retry_clock& clock = {});

/// The delay before attempt number `attempt` (1-based) without jitter.
std::chrono::milliseconds backoff_delay(const backoff_policy& policy, unsigned attempt) noexcept;

/// `delay` spread at random by up to `jitter` (a fraction) either way, drawn from `rng`:
/// what retry_until does to each backoff_delay, and how the sidecar spreads its timers.
/// Jitter only spreads clients apart; it needs no cryptographic quality.
template <typename Rng>
std::chrono::milliseconds with_jitter(std::chrono::milliseconds delay, double jitter, Rng& rng) {
  std::uniform_real_distribution<double> spread(1.0 - jitter, 1.0 + jitter);
  return std::chrono::milliseconds(static_cast<std::int64_t>(static_cast<double>(delay.count()) * spread(rng)));
}

}  // namespace tenantdb
