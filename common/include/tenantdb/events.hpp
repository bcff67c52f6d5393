#pragma once
/// \file
/// Kubernetes Events about what tenantdb did (Provisioned, Repaired, Rotated, Retired,
/// Failed), on the pod when its name is known, else on the credentials Secret. Events
/// are optional: RBAC without `create` on `events`, an API that is slow or down, any
/// error, costs one log line and a count, never the work and never a retry.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "tenantdb/kube.hpp"

namespace tenantdb {

/// Event reasons (the `reason` column of kubectl describe).
namespace event_reasons {
inline constexpr const char* provisioned = "Provisioned";
inline constexpr const char* repaired = "Repaired";
inline constexpr const char* rotated = "Rotated";
inline constexpr const char* retired = "Retired";
inline constexpr const char* failed = "Failed";
}  // namespace event_reasons

/// The object Events are about.
struct event_target {
  std::string kind;  ///< "Pod" or "Secret"
  std::string namespace_name;
  std::string name;
};

/// The pod ($POD_NAME in $POD_NAMESPACE, or in `ns` without it) when $POD_NAME is set,
/// else the credentials Secret `ns`/`secret_name`.
event_target event_target_for(const std::string& ns, const std::string& secret_name);

/// Emits Events through a client it does not own. Thread-safe; never throws.
class event_recorder {
public:
  /// How long one Event may take before it is given up.
  static constexpr std::chrono::milliseconds default_timeout{2000};

  /// `client` may be null: then nothing is sent (local mode). `component` is
  /// tenantdb-init or tenantdb-sidecar.
  event_recorder(kube_client* client, std::string component, event_target target,
                 std::chrono::milliseconds timeout = default_timeout);

  /// Sends one Event; false (logged once at warn, later at debug, and counted) when it
  /// could not be sent.
  bool normal(const std::string& reason, const std::string& action, const std::string& message) noexcept;
  bool warning(const std::string& reason, const std::string& action, const std::string& message) noexcept;
  /// A Warning sent at most once per `interval` for the same reason; false when it was
  /// held back or failed.
  bool warning_limited(const std::string& reason, const std::string& action, const std::string& message,
                       std::chrono::steady_clock::duration interval) noexcept;

  std::uint64_t sent() const noexcept { return sent_.load(); }
  /// Events that could not be sent (tenantdb_events_failed_total).
  std::uint64_t failed() const noexcept { return failed_.load(); }
  const event_target& target() const noexcept { return target_; }

private:
  bool emit(const char* type, const std::string& reason, const std::string& action,
            const std::string& message) noexcept;

  kube_client* client_;
  std::string component_;
  std::string instance_;
  event_target target_;
  std::chrono::milliseconds timeout_;
  std::atomic<std::uint64_t> sent_{0};
  std::atomic<std::uint64_t> failed_{0};
  std::atomic<bool> warned_{false};
  std::mutex mutex_;
  std::map<std::string, std::chrono::steady_clock::time_point> last_limited_;
};

}  // namespace tenantdb
