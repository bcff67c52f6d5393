#pragma once
/// \file
/// The database engines behind one small interface. PostgreSQL and MySQL/MariaDB each
/// implement it in their own file; nothing outside them knows an engine's SQL.

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <vector>

#include "tenantdb/connector.hpp"
#include "tenantdb/limits.hpp"
#include "tenantdb/naming.hpp"
#include "tenantdb/ownership.hpp"
#include "tenantdb/secret.hpp"

namespace tenantdb {

/// A user name and its password.
struct login {
  std::string user;
  secret password;
};

/// An object on the server that carries a tenantdb ownership record (the inventory).
struct recorded_object {
  /// "database", "group role" (PostgreSQL: the NOLOGIN role that owns the database) or
  /// "user" (a login account).
  std::string kind;
  std::string name;
  /// On PostgreSQL a database carries no record of its own: it is listed with its owning
  /// group role's record, and only when that role has one and is named like it.
  owner_record record;
};

/// An open connection as the connector's admin. Every method is idempotent: calling it
/// again, or after a crash half-way, converges on the same state. "Already exists" is
/// success. Errors are tenantdb::error with the server's SQLSTATE or errno, marked
/// retryable when the connection dropped or the server is starting up.
class admin_session {
public:
  admin_session() = default;
  admin_session(const admin_session&) = delete;
  admin_session& operator=(const admin_session&) = delete;
  virtual ~admin_session() = default;

  /// Creates the tenant's database if missing (on PostgreSQL owned by a NOLOGIN role of
  /// the same name, with CONNECT revoked from PUBLIC). Does not touch an existing one's data.
  ///
  /// With `owner`, first checks every object that carries one of `names` (database, group
  /// role, both accounts) and throws tenantdb::error (ownership) before changing anything
  /// if one exists whose ownership record names someone else, or that has none (unless
  /// owner->adopt_existing, which writes the record onto it). What it creates carries the
  /// record from the start (PostgreSQL: in the same transaction; MySQL/MariaDB: the record
  /// is written first). Without `owner` (engine tests, benchmarks) nothing is checked or
  /// recorded.
  virtual void ensure_database(const tenant_names& names, const ownership* owner = nullptr) = 0;

  /// Creates the login account if missing, with `initial_password`. An existing account
  /// keeps its password. Returns true if it was created. With `owner`, an existing account
  /// must carry its record (else tenantdb::error, ownership) and a new one gets it.
  virtual bool ensure_user(const std::string& user, const secret& initial_password,
                           const ownership* owner = nullptr) = 0;

  /// Sets the account's password (on PostgreSQL sent as a SCRAM verifier made here).
  virtual void set_password(const std::string& user, const secret& password) = 0;

  /// Gives the account what it needs to create and use tables in the tenant's database,
  /// and nothing else.
  virtual void grant(const tenant_names& names, const std::string& user) = 0;

  /// Gives the login account `user` of the tenant `names` exactly `limits` (zero: no
  /// limit): PostgreSQL CONNECTION LIMIT and the role settings statement_timeout and
  /// idle_in_transaction_session_timeout (ALTER ROLE ... SET, on the login role, so the
  /// admin's own sessions in the tenant's database are not limited); MySQL/MariaDB
  /// MAX_USER_CONNECTIONS (the timeouts do not apply there and must be zero). Reads what
  /// the account has first and changes only what differs, so a repeated call changes
  /// nothing. Returns one line per change, such as "maxConnections none -> 20". Sessions
  /// already open keep running.
  virtual std::vector<std::string> apply_limits(const tenant_names& names, const std::string& user,
                                                const tenant_limits& limits) = 0;

  /// Ends every open session of the login account `user` (not this one) and waits, a
  /// few seconds at most, until they are gone: PostgreSQL pg_terminate_backend (the
  /// admin joins the role for the length of one rolled-back transaction, as signalling a
  /// backend needs membership in its role), MySQL/MariaDB KILL CONNECTION. A password
  /// change does not close sessions already open with the old password. Returns how many
  /// sessions were ended. Throws tenantdb::error (database) if the admin may not.
  virtual int end_sessions(const std::string& user) = 0;

  /// True if the account exists.
  virtual bool user_exists(const std::string& user) = 0;

  /// True if the database exists.
  virtual bool database_exists(const std::string& database) = 0;

  /// The server's version string, for logs.
  virtual std::string server_version() = 0;

  // --- Lifecycle: the inventory, retain and delete (lifecycle.hpp). -------------------
  // Reads never change anything (on MySQL/MariaDB a missing tenantdb.owners table is an
  // empty inventory, not created). The changing calls below read the current state
  // first and do only what differs; while a plan sink is set (plan_into) they append
  // the statements they would run to it and run none.

  /// Every object carrying a tenantdb record, or with `names` only those with one of the
  /// tenant's names (MySQL/MariaDB: also a record whose object is gone).
  virtual std::vector<recorded_object> recorded_objects(const tenant_names* names = nullptr) = 0;

  /// The database's size in bytes, std::nullopt if it does not exist.
  virtual std::optional<long long> database_size(const std::string& database) = 0;

  /// How many sessions the login account has open now.
  virtual int session_count(const std::string& user) = 0;

  /// Whether the account may log in (PostgreSQL LOGIN, MySQL/MariaDB not ACCOUNT LOCK);
  /// std::nullopt if it does not exist.
  virtual std::optional<bool> login_allowed(const std::string& user) = 0;

  /// PostgreSQL ALTER ROLE LOGIN/NOLOGIN, MySQL/MariaDB ALTER USER ACCOUNT UNLOCK/LOCK,
  /// if the account exists and differs. Returns true if it changed (or would).
  virtual bool set_login_allowed(const std::string& user, bool allowed) = 0;

  /// Replaces the record the object carries (PostgreSQL COMMENT ON ROLE; a "database"
  /// object's record lives on its group role; MySQL/MariaDB UPDATE tenantdb.owners).
  virtual void write_record(const recorded_object& object) = 0;

  /// Removes the record (MySQL/MariaDB: its row; PostgreSQL: nothing, the record goes
  /// with its role).
  virtual void drop_record(const recorded_object& object) = 0;

  /// DROP DATABASE if it exists. The caller has checked whose it is and ended the
  /// tenant's sessions.
  virtual void drop_database(const std::string& database) = 0;

  /// DROP ROLE / DROP USER if it exists (on PostgreSQL also the group role).
  virtual void drop_user(const std::string& user) = 0;

  /// Collect: while `sink` is set, the lifecycle calls above (and end_sessions) append
  /// each statement they would run to it, one per entry, and run nothing that changes
  /// the server, unless `execute`, which runs them too (a real run's record of what it
  /// did, in the plan's format). nullptr stops collecting.
  virtual void plan_into(std::vector<std::string>* sink, bool execute = false) = 0;

  // --- Plan and drift (issue 11, items 4 and 5). -----------------------------------
  // plan_into() covers the provisioning calls too (ensure_database, ensure_user,
  // set_password, grant, apply_limits): each lists the statements it runs, a password
  // as '***', and a dry run takes what it would create as created. ensure_database and
  // grant also put back what drifted on objects that already existed (PostgreSQL: the
  // database's owner, PUBLIC's CONNECT, the group role's privileges on its database, a
  // login's membership in its group and its preset role, role attributes; MySQL/MariaDB:
  // the account's privileges on its database and REQUIRE SSL).

  /// What the calls since the last take_repairs() found drifted and put back (or, while
  /// planning without executing, would), one line each, names only. Default: nothing.
  virtual std::vector<std::string> take_repairs() { return {}; }
};

/// Connection timeouts for every engine call.
struct db_timeouts {
  std::chrono::seconds connect{10};
  std::chrono::seconds statement{30};
};

/// One server type's operations: the admin's (connect, then the admin_session) and the
/// tenant's own (log in, change its own password). PostgreSQL and MySQL/MariaDB each
/// implement it in their own file; make_engine() chooses one from the engine type, and
/// provisioning and rotation take it as a parameter, so tests can hand them a fake. An
/// engine holds no connection and no secret: every call connects to the address it is
/// given and closes again. Errors are tenantdb::error as for admin_session.
class engine {
public:
  engine() = default;
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;
  virtual ~engine() = default;

  /// Connects as the admin. Throws tenantdb::error: database (auth refused, permission),
  /// retryable unavailable (refused, DNS, server starting), connector (TLS verification
  /// failed: wrong CA or host name).
  virtual std::unique_ptr<admin_session> connect_admin(const server_address& server, const login& admin,
                                                       const db_timeouts& timeouts) = 0;

  /// Logs in as the tenant to its database and runs a statement there. Throws
  /// tenantdb::error kind verification if the credentials are refused.
  virtual void verify_login(const server_address& server, const login& tenant_login, const std::string& database,
                            const db_timeouts& timeouts) = 0;

  /// Logs in as `current` and changes that account's own password to `next`, without
  /// admin rights (PostgreSQL ALTER ROLE, MySQL/MariaDB SET PASSWORD). Throws
  /// tenantdb::error kind verification if `current` is refused.
  virtual void change_own_password(const server_address& server, const login& current, const std::string& database,
                                   const secret& next, const db_timeouts& timeouts) = 0;

  /// Logs in as `account` and counts that account's other open sessions (every session
  /// it has on the server except this probe), without admin rights: PostgreSQL
  /// pg_stat_activity rows of session_user, MySQL/MariaDB information_schema.PROCESSLIST
  /// rows of the account (without PROCESS an account sees only its own). Read-only.
  /// Throws tenantdb::error kind verification if `account` is refused.
  virtual int count_own_sessions(const server_address& server, const login& account, const std::string& database,
                                 const db_timeouts& timeouts) = 0;

  /// Drift as the tenant sees it (issue 11, item 5): logs in as `tenant_login` to its
  /// database and lists what the account may do beyond what tenantdb gives it, one line
  /// each, names only (never a password or hash). PostgreSQL: SUPERUSER, CREATEDB,
  /// CREATEROLE, REPLICATION or BYPASSRLS on the login or its group role, membership in
  /// any role but its group; MySQL/MariaDB: any grant but USAGE on *.* and ALL
  /// PRIVILEGES (without GRANT OPTION) on its own database. Empty: nothing more. Throws
  /// tenantdb::error as verify_login does. Default: nothing (fakes).
  virtual std::vector<std::string> excess_privileges(const server_address& server, const login& tenant_login,
                                                     const std::string& database, const db_timeouts& timeouts) {
    (void)server, (void)tenant_login, (void)database, (void)timeouts;
    return {};
  }
};

/// The engine for `type`: PostgreSQL, or MySQL/MariaDB. Calls with an address of another
/// type are refused (tenantdb::error, internal).
std::unique_ptr<engine> make_engine(engine_type type);

/// An engine that takes each call to make_engine(server.type) for the address it is
/// given. For the sidecar, which reads the server's type from the credentials store
/// rather than from a connector, so it follows the store as it always has.
std::unique_ptr<engine> make_engine_by_address();

/// Thin wrappers over make_engine(server.type), for the engine tests and tools that call
/// one operation on its own.
std::unique_ptr<admin_session> connect_admin(const server_address& server, const login& admin,
                                             const db_timeouts& timeouts = {});
void verify_login(const server_address& server, const login& tenant_login, const std::string& database,
                  const db_timeouts& timeouts = {});
void change_own_password(const server_address& server, const login& current, const std::string& database,
                         const secret& next, const db_timeouts& timeouts = {});
std::vector<std::string> excess_privileges(const server_address& server, const login& tenant_login,
                                           const std::string& database, const db_timeouts& timeouts = {});

}  // namespace tenantdb
