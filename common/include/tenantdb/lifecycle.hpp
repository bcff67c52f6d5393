#pragma once
/// \file
/// A tenant's life after provisioning: the inventory of every tenant on a server (read
/// from the ownership records), and deprovisioning with a deletion policy: retain (logins
/// revoked, sessions ended, data kept, reversible by a normal init run) or delete
/// (sessions ended, database, accounts and records dropped). Both act only on objects
/// whose ownership record names the tenant; a dry run collects the plan (the statements,
/// one per line) and changes nothing.

#include <array>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tenantdb/connector.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/fault.hpp"
#include "tenantdb/naming.hpp"
#include "tenantdb/ownership.hpp"

namespace tenantdb {

/// Named points between deprovisioning's steps, where tests make tenantdb-init die.
namespace deprovision_fault_points {
/// Retain: every record says "retained" (the logins still work).
inline constexpr std::string_view records_retained = "deprovision-records-retained";
/// Both: no login account may log in any more.
inline constexpr std::string_view logins_revoked = "deprovision-logins-revoked";
/// Both: the accounts' sessions were ended.
inline constexpr std::string_view sessions_ended = "deprovision-sessions-ended";
/// Delete: the database is gone.
inline constexpr std::string_view database_dropped = "deprovision-database-dropped";
/// Delete: the login accounts are gone.
inline constexpr std::string_view accounts_dropped = "deprovision-accounts-dropped";
inline constexpr std::array all{records_retained, logins_revoked, sessions_ended, database_dropped, accounts_dropped};
}  // namespace deprovision_fault_points

/// One tenant of the inventory: the objects recorded for one owner and database.
struct inventory_entry {
  owner_record record;  ///< the database's record (else the first found)
  bool database_exists = false;
  std::optional<long long> size_bytes;  ///< std::nullopt: no database, or unreadable
  struct account {
    std::string user;
    int connections = 0;
    bool login_allowed = true;
  };
  std::vector<account> accounts;  ///< the recorded login accounts that exist
  /// Whether the owner still exists, when the caller could ask: "exists", "gone" or
  /// "unknown" (empty: not asked).
  std::string owner;
};

/// Reads the inventory through an admin session: every tenant with a record, sorted by
/// namespace, name and database. Read-only.
std::vector<inventory_entry> read_inventory(admin_session& admin);

/// The inventory as one JSON array.
std::string inventory_json(const std::vector<inventory_entry>& entries);

/// The inventory as a human table, one line per tenant after a header.
std::string inventory_table(const std::vector<inventory_entry>& entries);

/// What one deprovisioning run is asked to do.
struct deprovision_options {
  tenant who;
  std::string name_prefix{default_name_prefix};
  /// The credentials store the records must name: "secret ns/name" or "directory /abs".
  std::string store;
  std::string policy{policy_retain};  ///< "retain" or "delete"
  /// The tenant's names as its records name them (the sweep: records do not keep the
  /// name prefix); unset: derived from `who` and `name_prefix`.
  std::optional<tenant_names> names;
  bool dry_run = false;
  std::chrono::steady_clock::time_point deadline;
  db_timeouts timeouts;
  fault_hook fault;
};

/// What a run did (or, with dry_run, would do).
struct deprovision_result {
  tenant_names names;
  /// The statements, one per entry: what a dry run would run, or what a real run ran
  /// (its last attempt, when a transient failure was retried).
  std::vector<std::string> plan;
  bool nothing_found = false;  ///< no object and no record carries the tenant's names
};

/// Deprovisions the tenant `options.who` on the connector's server with
/// `options.policy`. Before anything changes, every object with one of the tenant's
/// names (database, group role, accounts, MySQL/MariaDB record rows) must carry a record
/// naming this tenant and store; otherwise throws tenantdb::error (ownership) and
/// changes nothing. Idempotent: a rerun, or one after a kill -9 at any step, completes.
/// Transient failures are retried until options.deadline.
deprovision_result deprovision(const connector& conn, engine& db, const deprovision_options& options);

/// A normal init run brings a retained tenant back: if a record with the tenant's names
/// says "retained", its accounts may log in again and the records say live again (in
/// that order, so a crash between leaves a record a rerun still acts on). Returns what
/// it changed, one line each (empty: nothing was retained). Called by provision().
std::vector<std::string> restore_retained(admin_session& admin, const tenant_names& names);

// --- Re-attach (tenantdb-init --attach-database) -----------------------------------

/// The names of the tenant objects that database `database` belongs to, by its records,
/// for a tenant `owner` that wants to attach to it. Read-only. Throws tenantdb::error
/// (ownership; nothing changed) when no record names the database, when it is gone, or
/// when a record names another owner that is live (neither retained nor orphaned).
tenant_names attached_names(admin_session& admin, engine_type type, const std::string& database,
                            const owner_record& owner);

/// Hands the objects of `names` to `owner`: ends the previous owner's sessions, then
/// rewrites each record that names another owner to name `owner` (a retained state is
/// kept, for restore_retained to end). Idempotent; returns what it changed, one line each.
/// The caller has checked with attached_names.
std::vector<std::string> attach_database(admin_session& admin, engine_type type, const tenant_names& names,
                                         const owner_record& owner);

// --- The orphan sweep (tenantdb-init --sweep) ------------------------------------------

/// Whether a tenant's owner (its credentials Secret) still exists, as the caller found out.
struct owner_status {
  enum class state {
    present,  ///< the Secret answered 200
    gone,     ///< a clean 404 NotFound for that Secret (or its namespace is gone)
    unknown,  ///< anything else (403, 5xx, timeout, a store the API cannot check): never acted on
  };
  state is = state::unknown;
  std::string why;  ///< unknown: the reason, one line
  /// present: the Secret's tenantdb.io/deletion-policy annotation, normalised ("" none).
  std::string annotated_policy;
  /// present: the annotation is there but is neither retain nor delete.
  bool annotation_invalid = false;
  /// unknown: the error that made it so, for the exit code (kind kubernetes or unavailable).
  std::optional<error_kind> failure;
};

/// What one sweep is asked to do.
struct sweep_options {
  /// How long an owner must have been gone before its tenant's policy is applied.
  std::chrono::milliseconds grace{0};
  bool dry_run = false;
  /// The connector's deletionPolicy ("" unset).
  std::string connector_policy;
  /// Only the tenants whose records name this namespace ("" every tenant).
  std::string only_namespace;
  std::chrono::steady_clock::time_point deadline;
  db_timeouts timeouts;
  fault_hook fault;
  /// Asks whether the owner of a record exists (the init asks the Kubernetes API).
  std::function<owner_status(const owner_record&)> check_owner;
  /// The wall clock the records' times are read against.
  std::function<std::chrono::system_clock::time_point()> now = [] { return std::chrono::system_clock::now(); };
};

/// One tenant's outcome; `line` is what the init prints for it.
struct sweep_entry {
  enum class outcome { present, waiting, acted, unknown, skipped, failed };
  outcome what = outcome::unknown;
  owner_record record;
  std::string line;
  std::vector<std::string> plan;      ///< the deprovisioning statements (dry run: would run)
  std::optional<error_kind> failure;  ///< unknown or failed: why, for the exit code
};

/// Named points of the sweep, where tests make tenantdb-init die.
namespace sweep_fault_points {
/// The owner of a tenant was found gone and orphanedSince was written on its records.
inline constexpr std::string_view orphan_recorded = "sweep-orphan-recorded";
}  // namespace sweep_fault_points

/// The orphan sweep: for every tenant in the inventory whose records name a credentials
/// Secret, asks check_owner. Present: clears orphanedSince (and remembers the Secret's
/// deletion-policy annotation in the records). Gone: writes orphanedSince on the first
/// sight, and once the owner has been gone longer than `grace` deprovisions the tenant
/// (deprovision(), with the names its records give) with its policy: the annotation the
/// records remember, else the connector's deletionPolicy, else retain. Unknown: nothing.
/// A dry run writes nothing at all (not even orphanedSince) and collects each plan.
/// One tenant's failure does not stop the others. Idempotent.
std::vector<sweep_entry> sweep(const connector& conn, engine& db, const sweep_options& options);

}  // namespace tenantdb
