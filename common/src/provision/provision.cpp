#include "tenantdb/provision.hpp"

#include <algorithm>
#include <filesystem>
#include <thread>

#include "tenantdb/app.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/lifecycle.hpp"
#include "tenantdb/log.hpp"
#include "tenantdb/password.hpp"
#include "tenantdb/retry.hpp"

namespace tenantdb {
namespace {
namespace points = provision_fault_points;

// Writers that lose a race adopt the winner's credentials and go round again; more
// rounds than this mean something keeps rewriting the store, which a retry may outlast.
constexpr int max_store_rounds = 8;

// How long a run waits before it declares stored credentials lost, in case a racing run
// claimed the store and is about to set the password.
constexpr std::chrono::milliseconds settle_time{500};

// The annotations with a lockout record removed (an empty value: the Secret store keeps
// annotations a replace does not name). Every write that leaves all accounts with
// passwords the store holds, and that this run then verifies, ends a lockout.
annotation_map without_lockout(annotation_map notes) {
  remove_annotation(notes, annotations::lockout);
  return notes;
}

// The account the store records as locked out, "" if none.
std::string locked_out_account(const stored_credentials& stored) {
  const std::string* user = annotation_value(stored.annotations, annotations::lockout);
  return user != nullptr ? *user : std::string();
}

bool login_works(engine& db, const server_address& server, const login& l, const std::string& database,
                 const db_timeouts& t) {
  try {
    db.verify_login(server, l, database, t);
    return true;
  } catch (const error& e) {
    if (e.kind() != error_kind::verification) throw;  // unreachable server etc.: not a verdict
    log::info("stored credentials do not log in", {{"user", l.user}, {"reason", e.what()}});
    return false;
  }
}

// Stored credentials are trusted only if they name exactly the accounts this tenant has.
bool consistent(const credentials& c, const tenant_names& names, rotation_strategy strategy) {
  if (c.database != names.database) return false;
  const bool a_active = c.active.user == names.user_a;
  if (!a_active && c.active.user != names.user_b) return false;
  if (strategy == rotation_strategy::in_place) return true;
  return c.standby && c.standby->user == (a_active ? names.user_b : names.user_a);
}

// Who owns what this run provisions: the tenant as given and where its credentials live.
// A directory store is named by its absolute, normalised path, so "out" and "./out/"
// are the same owner.
ownership owner_of(const provision_options& opts, const tenant_names& names, const credential_store& store) {
  ownership o;
  o.adopt_existing = opts.adopt_existing;
  o.record.namespace_name = opts.who.namespace_name;
  o.record.name = opts.who.name;
  o.record.store = normalise_store_name(store.describe());
  o.record.database = names.database;
  o.record.users = {names.user_a, names.user_b};
  o.record.created = now_rfc3339();
  o.record.version = version();
  return o;
}

struct run {
  const connector& conn;
  engine& db;
  credential_store& store;
  const provision_options& opts;
  tenant_names names;
  ownership owner;
  tenant_limits limits;
  std::unique_ptr<admin_session> admin;
  provision_result result;

  void reached(std::string_view point) const {
    if (opts.fault && !opts.dry_run) opts.fault(point);
  }

  // --- The plan (issue 11, item 4). The engine lists its statements in `statements`
  // (and runs them unless this is a dry run); the store's writes are listed here, in
  // order with them. A dry run takes the same decisions as a real run and writes nothing.
  std::vector<std::string> statements;
  std::vector<std::string> planned_accounts;  ///< dry run: accounts that exist in the plan only

  void flush_statements() {
    for (auto& s : statements) result.plan.push_back("SQL " + std::move(s));
    statements.clear();
    if (admin)
      for (auto& r : admin->take_repairs()) result.repairs.push_back(std::move(r));
  }

  void plan_store_write(const std::string& what) {
    flush_statements();
    const bool secret = store.describe().starts_with("secret ");
    result.plan.push_back(std::string(secret ? "API " : "FILE ") + what);
  }

  // The store's writes, listed in the plan; a dry run only lists them (and takes them as
  // done: the version it returns is a stand-in).
  std::optional<std::string> store_create(const credential_data& data, const std::string& what) {
    plan_store_write("create " + store.describe() + ": " + what);
    if (opts.dry_run) return std::string("dry-run");
    return store.create(data, {});
  }
  std::optional<std::string> store_replace(const credential_data& data, const annotation_map& notes,
                                           const std::string& version, const std::string& what) {
    plan_store_write("replace " + store.describe() + ": " + what);
    if (opts.dry_run) return std::string("dry-run");
    return store.replace(data, notes, version);
  }

  std::vector<login> accounts(const credentials& c) const {
    std::vector<login> out{c.active};
    if (c.standby) out.push_back(*c.standby);
    return out;
  }

  // Creates the account with its stored password if it is missing; false if it existed.
  bool create_if_missing(const credentials& c, const login& account) {
    if (!admin->ensure_user(account.user, account.password, &owner)) return false;
    if (opts.dry_run) {
      planned_accounts.push_back(account.user);
      return true;
    }
    log::info("created login account", {{"user", account.user}});
    reached(account.user == c.active.user ? points::active_account_created : points::standby_account_created);
    return true;
  }

  // Accounts exist (created with the stored password when missing) and hold the grants.
  void ensure_accounts(const credentials& c) {
    for (const auto& account : accounts(c)) {
      create_if_missing(c, account);
      admin->grant(names, account.user);
    }
    reached(points::granted);
  }

  credentials fresh_credentials() const {
    credentials c;
    c.server = conn.server;
    c.database = names.database;
    c.active = login{names.user_a, generate_password(opts.password_length)};
    if (opts.strategy == rotation_strategy::dual)
      c.standby = login{names.user_b, generate_password(opts.password_length)};
    return c;
  }

  // Sets every account's password to what the store holds, logs in, and confirms that the
  // store did not change meanwhile. Returns false if it did: the caller goes round again.
  bool apply_and_confirm(const credentials& c, const std::string& version) {
    for (const auto& account : accounts(c)) {
      if (!create_if_missing(c, account)) admin->set_password(account.user, account.password);
      admin->grant(names, account.user);
    }
    reached(points::granted);
    if (opts.dry_run) return true;  // a plan does not log in with passwords it did not set
    result.password_set = true;
    reached(points::passwords_set);
    if (!login_works(db, conn.server, c.active, c.database, opts.timeouts)) {
      const auto now = store.load();
      if (now && now->version != version) return false;
      throw error(error_kind::verification, "the tenant \"" + c.active.user +
                                                "\" cannot log in with the password just set; check the server's "
                                                "authentication rules (pg_hba.conf / account host)")
          .about(c.active.user);
    }
    reached(points::login_verified);
    const auto now = store.load();
    return now && now->version == version;
  }

  // True if the standby logs in with none of the passwords the store holds for it: its
  // own, or the pending one of a rotation in flight (which, with the dual strategy, is
  // always the standby's). Such an account is locked out: whoever knew one of them
  // changed it (the previous password works during the grace period, and a role may
  // change its own password; only a superuser could forbid that).
  bool standby_locked_out(const credentials& c, const credential_record& record) const {
    if (is_planned(c.standby->user)) return false;
    if (login_works(db, conn.server, *c.standby, c.database, opts.timeouts)) return false;
    if (!record.pending_password.empty() &&
        login_works(db, conn.server, login{c.standby->user, record.pending_password}, c.database, opts.timeouts))
      return false;
    return true;
  }

  // Repairs a locked-out standby. Setting the stored password again would give the login
  // back to whoever knew it, so the account gets a fresh password, claimed in the store
  // first (with the rotation in flight, if any, and the lockout record dropped: the
  // account now has a password nobody was given, which is what a retire leaves), and its
  // open sessions are ended, before and after the change, so a session that knew the old
  // password cannot keep the login. The active account is not touched. Returns false: the
  // caller goes round again and verifies everything from the store.
  bool reset_locked_out_standby(const credentials& c, const stored_credentials& stored) {
    credentials fresh = c;
    fresh.standby->password = generate_password(opts.password_length);
    auto notes = without_lockout(stored.annotations);
    remove_annotation(notes, annotations::rotation);
    const std::string& user = fresh.standby->user;
    const auto version = store_replace(to_data(fresh, opts.ca_file), notes, stored.version,
                                       "a fresh password for the locked-out standby " + user + " (masked)");
    if (!version) return false;
    if (opts.dry_run) {
      end_sessions_of(user);
      admin->set_password(user, fresh.standby->password);
      end_sessions_of(user);
      result.repairs.push_back("would reset locked-out standby account " + user);
      return true;
    }
    result.store_written = true;
    log::warn(
        "the standby account logs in with none of its stored passwords: someone changed its password; "
        "setting a fresh one and ending its sessions (the active account is untouched)",
        {{"user", user}, {"store", store.describe()}});
    reached(points::store_claimed);
    int ended = end_sessions_of(user);
    admin->set_password(user, fresh.standby->password);
    result.password_set = true;
    ended += end_sessions_of(user);
    reached(points::passwords_set);
    log::info("reset the locked-out standby account", {{"user", user}, {"sessionsEnded", ended}});
    result.repairs.push_back("reset locked-out standby account " + user +
                             " (its password had been changed outside tenantdb) and ended its sessions");
    return false;
  }

  // Ends the sessions of `user`; an admin without the right to is told, not failed: the
  // password is reset either way, and those sessions end when they disconnect.
  int end_sessions_of(const std::string& user) {
    try {
      return admin->end_sessions(user);
    } catch (const error& e) {
      if (e.kind() != error_kind::database) throw;
      log::warn("could not end the sessions of the reset account; they keep working until they disconnect",
                {{"user", user}, {"reason", e.what()}});
      return 0;
    }
  }

  bool round() {
    auto stored = store.load();
    credential_record record;
    std::optional<credentials> creds;
    if (stored) {
      record = parse_record(stored->data);
      creds = record.to_credentials(conn.server);
      if (creds && !consistent(*creds, names, opts.strategy)) {
        log::warn("stored credentials do not match this tenant's accounts; replacing them",
                  {{"store", store.describe()}});
        creds.reset();
      }
    }

    if (!creds) {
      // Nothing usable stored: claim the store with fresh credentials first, then make the
      // database agree. A writer that loses the claim adopts the winner's next round.
      credentials fresh = fresh_credentials();
      const auto data = to_data(fresh, opts.ca_file);
      // Annotations as before (none named: kept), except that a lockout record ends.
      annotation_map notes;
      if (stored && !locked_out_account(*stored).empty()) notes[annotations::lockout] = "";
      const std::string what = "new credentials for " + fresh.active.user +
                               (fresh.standby ? " and " + fresh.standby->user : std::string()) + " (passwords masked)";
      const auto version = stored ? store_replace(data, notes, stored->version, what) : store_create(data, what);
      if (!version) return false;
      if (opts.dry_run) {
        if (!apply_and_confirm(fresh, *version)) return false;
        result.data = data;
        return true;
      }
      result.store_written = true;
      log::info(stored ? "replaced unusable stored credentials" : "stored new credentials",
                {{"store", store.describe()}});
      if (stored) result.repairs.push_back("replaced unusable stored credentials in " + store.describe());
      reached(points::store_claimed);
      if (!apply_and_confirm(fresh, *version)) return false;
      result.data = to_data(fresh, opts.ca_file);
      return true;
    }

    ensure_accounts(*creds);
    if (opts.dry_run && is_planned(creds->active.user)) {
      // The accounts exist in the plan only, with the stored passwords.
    } else if (!login_works(db, conn.server, creds->active, creds->database, opts.timeouts)) {
      if (opts.dry_run) {
        credentials fresh = *creds;
        fresh.active.password = generate_password(opts.password_length);
        store_replace(to_data(fresh, opts.ca_file), without_lockout(stored->annotations), stored->version,
                      "a fresh password for " + fresh.active.user + " (masked)");
        admin->set_password(fresh.active.user, fresh.active.password);
        result.repairs.push_back("would set a fresh password for " + fresh.active.user);
        result.data = to_data(fresh, opts.ca_file);
        return true;
      }
      // Another run may have claimed the store and not yet set the password: give it a
      // moment, and go round again if the store moved on.
      std::this_thread::sleep_for(settle_time);
      const auto again = store.load();
      if (!again || again->version != stored->version) return false;
      if (login_works(db, conn.server, creds->active, creds->database, opts.timeouts)) return false;
      // Lost credentials: the account's password changed behind our back. A fresh
      // password replaces it, claimed in the store before the database is touched.
      credentials fresh = *creds;
      fresh.active.password = generate_password(opts.password_length);
      const auto version = store_replace(to_data(fresh, opts.ca_file), without_lockout(stored->annotations),
                                         stored->version, "a fresh password for " + fresh.active.user + " (masked)");
      if (!version) return false;
      result.store_written = true;
      log::warn("stored password no longer worked; set a fresh one", {{"user", fresh.active.user}});
      result.repairs.push_back("stored password of " + fresh.active.user + " no longer logged in; set a fresh one");
      reached(points::store_claimed);
      if (!apply_and_confirm(fresh, *version)) return false;
      result.data = to_data(fresh, opts.ca_file);
      return true;
    }
    reached(points::login_verified);

    // The standby of the dual strategy must log in with a password the store holds for it.
    if (creds->standby && standby_locked_out(*creds, record)) {
      // Another run may have claimed a fresh standby password and not yet set it.
      std::this_thread::sleep_for(settle_time);
      const auto again = store.load();
      if (!again || again->version != stored->version) return false;
      if (!standby_locked_out(*creds, record)) return false;
      return reset_locked_out_standby(*creds, *stored);
    }

    // Everything works. Rewrite the store only if what it should say changed (a moved
    // server, a new CA, another CA path) or it records a lockout that is over; passwords
    // stay, and so does the pending password of a rotation in flight.
    auto desired = to_data(*creds, opts.ca_file);
    if (!record.pending_password.empty()) desired[keys::pending_password] = record.pending_password;
    const std::string stale_lockout = locked_out_account(*stored);
    if (!same_data(desired, stored->data) || !stale_lockout.empty()) {
      if (!store_replace(desired, without_lockout(stored->annotations), stored->version,
                         stale_lockout.empty() ? "what it says changed (server, CA or CA path; passwords kept)"
                                               : "the lockout record of " + stale_lockout + " removed"))
        return false;
      if (opts.dry_run) {
        result.data = std::move(desired);
        return true;
      }
      result.store_written = true;
      if (!stale_lockout.empty())
        log::info("every account logs in with its stored password; removed the lockout record",
                  {{"user", stale_lockout}, {"store", store.describe()}});
      log::info("updated stored credentials", {{"store", store.describe()}});
      reached(points::store_updated);
    } else if (!opts.dry_run) {
      // Report only what the store still holds: a racer may have replaced it meanwhile.
      const auto now = store.load();
      if (!now || now->version != stored->version) return false;
    }
    result.data = std::move(desired);
    return true;
  }

  // Every login account gets the tenant's limits; an existing tenant is brought to the
  // current ones (drift repair), and each change is logged.
  void apply_limits() {
    std::vector<std::string> users{names.user_a};
    if (opts.strategy == rotation_strategy::dual) users.push_back(names.user_b);
    for (const auto& user : users) {
      const auto changes = admin->apply_limits(names, user, limits);
      if (!opts.dry_run)
        for (const auto& change : changes) log::info("set limit", {{"user", user}, {"change", change}});
    }
  }

  bool is_planned(const std::string& user) const {
    return std::find(planned_accounts.begin(), planned_accounts.end(), user) != planned_accounts.end();
  }

  void once() {
    result.plan.clear();
    statements.clear();
    planned_accounts.clear();
    admin = db.connect_admin(conn.server, login{conn.admin_user, conn.admin_password}, opts.timeouts);
    // Every statement is listed; a dry run runs none that changes anything.
    admin->plan_into(&statements, !opts.dry_run);
    try {
      steps();
    } catch (...) {
      admin->plan_into(nullptr);
      throw;
    }
    flush_statements();
    admin->plan_into(nullptr);
  }

  void steps() {
    log::info("connected as admin", {{"engine", engine_name(conn.server)},
                                     {"host", conn.server.host},
                                     {"port", static_cast<int>(conn.server.port)},
                                     {"version", admin->server_version()}});
    if (!opts.attach_database.empty()) {
      (void)attached_names(*admin, conn.server.type, opts.attach_database, owner.record);  // checked again
      for (auto& change : attach_database(*admin, conn.server.type, names, owner.record)) {
        log::info("attached an existing database", {{"change", change}});
        result.repairs.push_back(std::move(change));
      }
    }
    admin->ensure_database(names, &owner);
    flush_statements();
    // A tenant deprovisioned with the retain policy comes back: logins allowed again,
    // records live again (lifecycle.hpp).
    for (auto& change : restore_retained(*admin, names)) {
      if (!opts.dry_run) log::info("restored a retained tenant", {{"change", change}});
      result.repairs.push_back(std::move(change));
    }
    reached(points::database_ensured);
    for (int i = 0; i < max_store_rounds; ++i)
      if (round()) {
        apply_limits();
        return;
      }
    throw error(error_kind::unavailable, store.describe() + " kept changing while provisioning; will retry")
        .retryable();
  }
};

/// One loud line when the admin connector does not verify the server: the admin password
/// and every tenant password then travel to whoever answers at the address.
void warn_if_unverified(const server_address& server) {
  if (server.tls == tls_mode::verify_ca || server.tls == tls_mode::verify_full) return;
  const bool plain = server.tls == tls_mode::disable || server.tls == tls_mode::allow;
  log::warn(std::string("TLS to the database server is ") + (plain ? "off or optional" : "not verified") +
                ": a man in the middle can read and change this connection, the tenant passwords set over it "
                "included; set sslMode: verify-full (and caCert) in the connector to verify the server",
            {{"sslMode", std::string(to_string(server.tls))}, {"about", "sslMode"}, {"host", server.host}});
}

/// The connector's limits with the tenant's overrides. The timeouts are PostgreSQL's: on
/// MySQL/MariaDB an override of one is ignored with a warning.
tenant_limits limits_for(const connector& conn, const provision_options& options) {
  tenant_limits out = apply_overrides(conn.limits, options.limits);
  if (conn.server.type != engine_type::postgres) {
    if (out.statement_timeout.count() != 0 || out.idle_in_transaction_timeout.count() != 0)
      log::warn("statement and idle-in-transaction timeouts apply to PostgreSQL only; ignored",
                {{"engine", engine_name(conn.server)}});
    out.statement_timeout = out.idle_in_transaction_timeout = std::chrono::milliseconds(0);
  }
  check_limits(out);
  return out;
}

}  // namespace

provision_result provision(const connector& conn, engine& db, credential_store& store,
                           const provision_options& options) {
  validate_tenant(options.who);
  validate_name_prefix(options.name_prefix);
  validate_password_length(options.password_length);
  tenant_names names = derive_names(options.who, options.name_prefix);
  if (!options.attach_database.empty()) {
    // --attach-database: the names are the database's and its recorded accounts', not derived.
    const owner_record us = owner_of(options, names, store).record;
    retry_until(options.deadline, "find the database to attach", [&] {
      auto admin = db.connect_admin(conn.server, login{conn.admin_user, conn.admin_password}, options.timeouts);
      names = attached_names(*admin, conn.server.type, options.attach_database, us);
    });
  }
  run r{conn,    db, store, options, names, owner_of(options, names, store), limits_for(conn, options),
        nullptr, {}, {},    {}};
  r.result.names = r.names;
  log::info(options.dry_run ? "planning provisioning (dry run: nothing is changed)" : "provisioning",
            {{"tenant", options.who.name},
             {"namespace", options.who.namespace_name},
             {"database", r.names.database},
             {"store", store.describe()}});
  warn_if_unverified(conn.server);
  retry_until(options.deadline, "provision tenant database", [&] {
    r.result.password_set = false;
    r.result.store_written = false;
    r.once();
  });
  return std::move(r.result);
}

}  // namespace tenantdb
