#pragma once
/// \file
/// The init's job: make the tenant's database, accounts and credentials exist and work.

#include <array>
#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "tenantdb/connector.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/fault.hpp"
#include "tenantdb/naming.hpp"
#include "tenantdb/store.hpp"

namespace tenantdb {

/// Named points between the steps of provisioning, where tests make tenantdb-init die
/// (kill -9). Some are reached only when their step has something to do: an account is
/// created only if missing, the store claimed only when it holds nothing usable and
/// updated only when what it should say changed. Fresh credentials are claimed in the
/// store before the database is touched, so a crash anywhere leaves either nothing
/// usable stored or stored passwords that the next run puts into the database.
namespace provision_fault_points {
inline constexpr std::string_view database_ensured = "database-ensured";
/// The store holds fresh credentials (new, or replacing lost or unusable ones) that the
/// database does not know yet.
inline constexpr std::string_view store_claimed = "store-claimed";
inline constexpr std::string_view active_account_created = "active-account-created";
inline constexpr std::string_view standby_account_created = "standby-account-created";  ///< dual only
/// Every account holds its grants.
inline constexpr std::string_view granted = "granted";
/// The database holds the stored passwords.
inline constexpr std::string_view passwords_set = "passwords-set";
/// The tenant logged in with the stored password.
inline constexpr std::string_view login_verified = "login-verified";
/// The store was rewritten because what it should say changed (server, CA, CA path).
inline constexpr std::string_view store_updated = "store-updated";
/// tenantdb-init: provisioning finished; in kube mode the credentials directory is not
/// yet published.
inline constexpr std::string_view provisioned = "provisioned";
/// Inside publish_directory (also the directory store's writes in local mode).
inline constexpr std::string_view directory_written = publish_fault_point;

inline constexpr std::array all{database_ensured, store_claimed,    active_account_created, standby_account_created,
                                granted,          passwords_set,    login_verified,         store_updated,
                                provisioned,      directory_written};
}  // namespace provision_fault_points

/// Inputs of one provisioning run.
struct provision_options {
  tenant who;
  std::string name_prefix{default_name_prefix};
  rotation_strategy strategy = rotation_strategy::dual;
  std::size_t password_length = 32;
  /// Where the workload finds caCert; goes into the PostgreSQL dataSource.
  std::string ca_file;
  std::chrono::steady_clock::time_point deadline;
  db_timeouts timeouts;
  /// Write this tenant's ownership record onto existing objects that carry its names but
  /// no record (made by hand, or by a tenantdb without records), instead of refusing them.
  /// Objects recorded for another owner are refused regardless.
  bool adopt_existing = false;
  /// --attach-database: use this existing tenantdb database (and its accounts) instead of
  /// the derived names, taking it over from a retained or orphaned owner (lifecycle.hpp).
  std::string attach_database;
  /// Per-tenant overrides of the connector's limits (--max-connections,
  /// --statement-timeout, --idle-in-transaction-timeout); unset fields keep the
  /// connector's. The timeouts are PostgreSQL's: on MySQL/MariaDB they are ignored with
  /// a warning.
  limit_overrides limits;
  /// Test hook, called at each of provision_fault_points that provision() reaches.
  fault_hook fault;
  /// Plan only (tenantdb-init --dry-run): read the current state (admin login, objects,
  /// records, the store, the tenant's login), take the same decisions as a real run and
  /// list its writes in provision_result::plan, but write nothing: no statement that
  /// changes the server, no store write. Fault points are not reached.
  bool dry_run = false;
};

/// What a run ended with.
struct provision_result {
  tenant_names names;
  credential_data data;        ///< what the store holds now
  bool password_set = false;   ///< passwords were written to the database this run
  bool store_written = false;  ///< the store was created or rewritten this run
  /// What this run repaired, one line each, names only (never a password): a lockout
  /// reset, lost or unusable credentials replaced. Reported as Repaired Events.
  std::vector<std::string> repairs;
  /// The writes, in order, one per entry: "SQL <statement>" (a password as '***') or
  /// "API <write>" (the credentials store: "API create secret ns/name: ..."; a directory
  /// store says "FILE" instead of "API"). A dry run's is what a real run would do; a real
  /// run's what it did (its last attempt, when a transient failure was retried). Empty:
  /// nothing to do.
  std::vector<std::string> plan;
};

/// Refuses (tenantdb::error, ownership; nothing changed) when a database or account with
/// the tenant's names exists that is not recorded as this tenant's (same namespace, name
/// and credentials store; see ownership.hpp). Creates database and accounts if missing,
/// each with its ownership record, grants least privilege, reconciles the
/// credentials with `store` (keeps working ones, replaces lost or broken ones; a lost
/// race adopts the winner's), sets the passwords in the database, and logs in as the
/// tenant, all through `db`; then gives every login account the connector's limits with
/// the per-tenant overrides (admin_session::apply_limits), logging what changed (make_engine(conn.server.type), or a
/// fake in tests). Transient failures are retried until options.deadline. Idempotent.
provision_result provision(const connector& conn, engine& db, credential_store& store,
                           const provision_options& options);

}  // namespace tenantdb
