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

}  // namespace tenantdb
