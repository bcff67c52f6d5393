#pragma once
/// \file
/// Password rotation with the tenant's own credentials (the connector's admin password
/// never reaches the sidecar). The store (credentials Secret) is the single source of
/// truth and the coordination point between replicas: every step is a conditional
/// write, and the intent is recorded in the store before the database is touched, so a
/// crash at any point leaves a state that recover() completes or rolls back.
///
/// Dual strategy (zero downtime): the Secret names an active and a standby account.
///   1 claim    store: pendingPassword=P, annotation tenantdb.io/rotation={phase:standby,...}
///   2 change   standby logs in with its password and sets its own password to P
///   3 switch   store: active<->standby swapped (new active has P), the old active stays
///              valid for the grace period: annotation phase=grace, graceUntil=T
///   4 retire   after T: store pendingPassword=R, phase=retire; the old active sets its
///              own password to R (random, never given to the workload); store: standby
///              password R, rotation annotation removed.
/// In-place strategy: 1 claim (pendingPassword), 2 the active account changes its own
/// password, 3 store the new password. No grace: the old password stops at once (open
/// connections keep working). Between 2 and 3 the stored password is already stale; a
/// crash there leaves the pending password as the one that works, and recovery stores it.
///
/// lastRotation is set, and rotate-now removed, by the write that makes the new
/// credential active (3). A removed annotation is written as an empty value, because the
/// Secret store keeps annotations a replace does not name; readers treat empty as absent.
/// Recovery completes an interrupted rotation (it never rolls back a claim whose password
/// may be in the database). A fresh claim is rolled back only when the account's login is
/// refused with both its stored and the pending password, i.e. nothing was changed.
/// Such an account is locked out: someone changed its password (whoever holds the previous
/// password during the grace period can). The rotator records it in the lockout
/// annotation (with the roll-back, or once for a stuck recovery) and does not probe it
/// again; only an admin (tenantdb-init) can reset it.
/// takeover_after must exceed the database timeouts (connect + statement), so a replica
/// that is merely slow has finished its change before another takes the rotation over.
///
/// Retire when drained (dual, drain_max > 0): after the grace period the previous account
/// is retired (4) only once it has no open sessions other than the probe itself, counted
/// with its own login (engine::count_own_sessions), or once the drain deadline has passed,
/// or at once when the next rotation is waiting (advance's `rotation_waiting`): dual
/// needs the previous account's slot for it. The deadline, graceUntil + drain_max, is
/// recorded by the switch (3) as drainUntil in the rotation annotation, so every replica
/// and every restart waits for the same time; a grace period recorded without it (an older
/// sidecar, the flag turned on later) waits until graceUntil + this replica's drain_max.
/// The wait writes nothing: a restart or another replica simply counts again.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "tenantdb/credentials.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/fault.hpp"
#include "tenantdb/store.hpp"

namespace tenantdb {

/// Store key holding the password a rotation in flight is setting.
inline constexpr const char* pending_password_key = keys::pending_password;

/// Named points between the steps above, where tests make the process die (kill -9).
namespace fault_points {
inline constexpr std::string_view claimed = "claimed";    ///< after 1
inline constexpr std::string_view changed = "changed";    ///< after 2
inline constexpr std::string_view switched = "switched";  ///< after 3
inline constexpr std::string_view retire_claimed = "retire-claimed";
inline constexpr std::string_view retire_changed = "retire-changed";
inline constexpr std::string_view retired = "retired";
}  // namespace fault_points

/// Settings of one rotator.
struct rotation_options {
  rotation_strategy strategy = rotation_strategy::dual;
  /// How long the previous credential keeps working after a switch (dual only).
  std::chrono::seconds grace{std::chrono::minutes(10)};
  std::size_t password_length = 32;
  /// This replica's name (the pod name), recorded as the holder of a rotation.
  std::string holder;
  /// A rotation whose holder has not finished after this long may be taken over.
  std::chrono::seconds takeover_after{std::chrono::minutes(2)};
  /// Dual only: after the grace period, wait up to this long for the previous account's
  /// open sessions to close before retiring it (0: retire when the grace period ends).
  std::chrono::seconds drain_max{0};
  /// Where the workload finds caCert (for the dataSource), as for provisioning.
  std::string ca_file;
  db_timeouts timeouts;
};

/// What a call did.
enum class rotation_outcome {
  nothing,    ///< nothing was due or another replica holds the rotation
  rotated,    ///< a new credential is active in the store
  retired,    ///< the previous credential was retired after its grace period
  recovered,  ///< a rotation interrupted by a crash was completed or rolled back
  lost_race,  ///< another replica wrote first; the store is unchanged by us
};

/// What this rotator saw of the previous account's sessions while waiting to retire it
/// (rotation_options::drain_max), for the sidecar's metrics.
struct drain_status {
  /// Sessions open on the previous account, as last counted, while it waits to be
  /// retired; 0 when no account waits (or it drained, or was retired).
  int sessions = 0;
  /// Checks that found sessions open and left the previous account working.
  std::uint64_t deferred_total = 0;
  /// Retirements with sessions still open: the drain deadline passed, or the next
  /// rotation was waiting.
  std::uint64_t forced_max_wait_total = 0;
  std::uint64_t forced_next_rotation_total = 0;
};

/// Drives rotations against one store, talking to the database through `db` (the
/// sidecar's make_engine_by_address(), or a fake in tests), which must outlive it.
class rotator {
public:
  using clock = std::chrono::system_clock;

  rotator(engine& db, credential_store& store, rotation_options options, fault_hook hook = {});

  /// Starts a rotation now if none is in flight, and runs it through the switch (dual)
  /// or to the end (in-place). Returns rotated, or lost_race/nothing if another replica
  /// holds one.
  rotation_outcome rotate(clock::time_point now);

  /// Finishes what is in flight and due: retires a previous credential whose grace
  /// ended (with drain_max, once it has drained, see above; `rotation_waiting` says the
  /// next rotation is due or requested, which ends the wait); completes or rolls back a
  /// rotation whose holder is this replica (after a restart) or whose holder has not
  /// finished within takeover_after.
  rotation_outcome advance(clock::time_point now, bool rotation_waiting = false);

  /// The previous account's drain as this rotator last saw it.
  const drain_status& drain() const noexcept { return drain_; }

  /// When the next scheduled rotation is due: lastRotation (or, if absent, `fallback`)
  /// plus `every`, shifted by a per-tenant offset in [-jitter, +jitter] derived from the
  /// database name so a thousand tenants spread out deterministically.
  static clock::time_point next_due(const stored_credentials& stored, std::chrono::seconds every, double jitter,
                                    clock::time_point fallback);

  /// True if the store asks for a rotation now (annotation rotate-now).
  static bool rotation_requested(const stored_credentials& stored);

  /// When a grace period in flight ends, if one is.
  static std::optional<clock::time_point> grace_ends(const stored_credentials& stored);

  /// The account the store records as locked out (annotation lockout), "" if none.
  static std::string locked_out_account(const stored_credentials& stored);

private:
  engine& db_;
  credential_store& store_;
  rotation_options options_;
  fault_hook hook_;
  drain_status drain_;
  /// The deferral last logged (rotation id, sessions), so a wait logs a line when the
  /// count changes rather than on every sync.
  std::pair<std::string, int> drain_logged_{{}, -1};
};

}  // namespace tenantdb
