#pragma once
// The sidecar's status: what it counts (rotation steps, errors by source, published
// generations), what /readyz says and why, and the /metrics text. It is told what
// happened (the outcomes the loop hands it) and reads the publisher's state; it never
// schedules anything.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "sidecar/outcome.hpp"
#include "sidecar/publisher.hpp"
#include "tenantdb/agent.hpp"
#include "tenantdb/rotation.hpp"

namespace tenantdb::sidecar {

class proxy_feed;
class drift_watch;

/// What one login check with the published credentials found.
struct login_check {
  bool passed = false;
  std::string user;               ///< who logged in (for the log), when it passed
  std::optional<failure> failed;  ///< why not; none when nothing is published yet
};

/// Logs in with the credentials now in the files (`published`: the workload's view).
login_check check_login(const std::optional<credential_data>& published, const db_timeouts& timeouts);

class sidecar_status {
public:
  sidecar_status(const agent_options& options, const file_publisher& files,
                 std::chrono::system_clock::time_point started);

  /// Counts a failed step against its source and logs it (never a secret: the error's
  /// message and kind).
  void count(const failure& f);

  /// A rotator call that returned; `step` is "advance" or "rotate".
  void rotation_step(rotation_outcome outcome, const char* step);
  /// A rotator call that threw.
  void rotation_failed() noexcept { ++failed_total_; }
  /// A new generation of the files was published.
  void files_published() noexcept { ++files_published_total_; }

  /// The store was read: tracks when the active password changed (credential age) and
  /// logs a lockout when it appears or clears, so every replica says it.
  void observe_store();
  /// The login check's result (its failure, if any, is counted by count()).
  void login_checked(const login_check& check);

  /// The local database proxy, when --proxy-listen is set: ready() then also needs it
  /// serving, and metrics() adds its families. Not owned; outlives this.
  void watch_proxy(const proxy_feed* proxy) noexcept { proxy_ = proxy; }
  /// The rotator, whose drain (--retire-when-drained) metrics() reports. Not owned.
  void watch_rotator(const rotator* r) noexcept { rotator_ = r; }
  /// The drift the tenant's own login sees (drift.hpp): metrics() adds its family and
  /// ready_note() its note; it never makes the sidecar unready. Not owned; outlives this.
  void watch_drift(const drift_watch* drift) noexcept { drift_ = drift; }
  /// While ready: "" or a note from a fixed set ("drift: privileges") for /readyz.
  std::string ready_note() const;

  /// The account the store records as locked out ("" if none).
  std::string locked_out() const;
  /// Files in place and current, login check passed, store usable, nobody locked out,
  /// and the proxy (if enabled) listening with credentials.
  bool ready() const;
  /// One terse line from a fixed set for /readyz (details go to the log).
  std::string reason() const;
  /// The tenantdb_* families in Prometheus text format (the HTTP server's own counters
  /// are added by the endpoint).
  std::string metrics() const;

private:
  const agent_options& options_;
  const file_publisher& files_;
  std::chrono::system_clock::time_point started_;
  const proxy_feed* proxy_ = nullptr;
  const rotator* rotator_ = nullptr;
  const drift_watch* drift_ = nullptr;

  bool check_ok_ = false;
  std::string check_reason_;
  std::string lockout_seen_;  ///< the lockout last logged ("" for none)
  std::optional<secret> active_password_;
  std::chrono::system_clock::time_point active_since_;
  std::optional<std::chrono::system_clock::time_point> last_success_;

  std::uint64_t rotated_total_ = 0;
  std::uint64_t lost_race_total_ = 0;
  std::uint64_t failed_total_ = 0;
  std::uint64_t recovered_total_ = 0;
  std::uint64_t retired_total_ = 0;
  std::uint64_t files_published_total_ = 0;
  std::map<std::string, std::uint64_t> errors_total_;
};

}  // namespace tenantdb::sidecar
