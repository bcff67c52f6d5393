#include "tenantdb/retry.hpp"

#include <algorithm>
#include <random>
#include <thread>

#include "tenantdb/error.hpp"
#include "tenantdb/log.hpp"

namespace tenantdb {

std::chrono::milliseconds backoff_delay(const backoff_policy& policy, unsigned attempt) noexcept {
  double delay = static_cast<double>(policy.initial.count());
  for (unsigned i = 1; i < attempt && delay < static_cast<double>(policy.max.count()); ++i) delay *= policy.multiplier;
  delay = std::min(delay, static_cast<double>(policy.max.count()));
  return std::chrono::milliseconds(static_cast<std::int64_t>(delay));
}

void retry_until(std::chrono::steady_clock::time_point deadline, std::string_view what,
                 const std::function<void()>& attempt, const backoff_policy& policy, const retry_clock& clock) {
  // Jitter only spreads retries of many clients apart; it needs no cryptographic quality.
  thread_local std::minstd_rand rng{std::random_device{}()};
  for (unsigned n = 1;; ++n) {
    try {
      attempt();
      return;
    } catch (const error& e) {
      if (!e.is_retryable()) throw;
      const auto delay = with_jitter(backoff_delay(policy, n), policy.jitter, rng);
      const auto now = clock.now();
      if (now + delay > deadline) {
        error out(error_kind::unavailable, std::string(what) + ": gave up after " + std::to_string(n) + " attempt" +
                                               (n == 1 ? "" : "s") + " (--timeout reached): " + e.what());
        out.about(e.key()).sqlstate(e.sqlstate()).db_errno(e.db_errno()).http_status(e.http_status());
        throw out;
      }
      log::warn("retrying after a transient failure", {{"operation", what},
                                                       {"attempt", n},
                                                       {"delay_ms", static_cast<std::int64_t>(delay.count())},
                                                       {"error", e.what()}});
      if (clock.sleep) {
        clock.sleep(delay);
      } else {
        std::this_thread::sleep_for(delay);
      }
    }
  }
}

}  // namespace tenantdb
