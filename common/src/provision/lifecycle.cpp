#include "tenantdb/lifecycle.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <tuple>

#include "tenantdb/duration.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/log.hpp"
#include "tenantdb/retry.hpp"
#include "tenantdb/time.hpp"

namespace tenantdb {
namespace {
namespace points = deprovision_fault_points;

constexpr std::string_view state_retained = "retained";

std::string describe(const connector& conn, const std::string& kind, const std::string& name) {
  const bool pg = conn.server.type == engine_type::postgres;
  std::string product = pg ? "PostgreSQL" : (conn.server.mariadb ? "MariaDB" : "MySQL");
  const std::string what = kind == "database" ? "database" : pg ? "role" : kind == "user" ? "account" : kind;
  return product + " " + what + " \"" + name + "\"";
}

/// The size as people read it: 8.1 MiB.
std::string human_size(long long bytes) {
  static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%lld B", bytes);
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

struct deprovision_run {
  const connector& conn;
  engine& db;
  const deprovision_options& opts;
  tenant_names names;
  owner_record ours;
  std::unique_ptr<admin_session> admin;
  deprovision_result result;

  void reached(std::string_view point) const {
    if (opts.fault && !opts.dry_run) opts.fault(point);
  }

  bool postgres() const { return conn.server.type == engine_type::postgres; }

  std::vector<std::string> users() const { return {names.user_a, names.user_b}; }

  /// Every object with one of the tenant's names must be recorded as this owner's;
  /// checked before anything changes. Returns the records.
  std::vector<recorded_object> check_ownership() {
    auto records = admin->recorded_objects(&names);
    const auto refuse = [&](const std::string& kind, const std::string& name, const std::string& why) {
      throw error(error_kind::ownership, describe(conn, kind, name) + " " + why +
                                             ": deprovisioning never touches an object that is not recorded as "
                                             "this tenant's (" +
                                             ours.store + "); nothing was changed")
          .about(describe(conn, kind, name));
    };
    std::vector<std::pair<std::string, std::string>> present;
    if (admin->database_exists(names.database)) present.emplace_back("database", names.database);
    if (postgres() && admin->user_exists(names.database)) present.emplace_back("group role", names.database);
    for (const auto& u : users())
      if (admin->user_exists(u)) present.emplace_back("user", u);
    for (const auto& [kind, name] : present) {
      const auto it = std::find_if(records.begin(), records.end(),
                                   [&](const recorded_object& o) { return o.kind == kind && o.name == name; });
      if (it == records.end())
        refuse(kind, name,
               postgres() && kind == "database" ? "is not owned by a group role that carries a tenantdb record"
                                                : "carries no tenantdb ownership record");
    }
    for (const auto& o : records)
      if (!same_owner(o.record, ours)) refuse(o.kind, o.name, "is recorded for another owner or credentials store");
    result.nothing_found = present.empty() && records.empty();
    return records;
  }

  void end_sessions() {
    for (const auto& u : users())
      if (admin->user_exists(u)) {
        const int ended = admin->end_sessions(u);
        if (!opts.dry_run && ended > 0) log::info("ended sessions", {{"user", u}, {"sessions", ended}});
      }
    reached(points::sessions_ended);
  }

  void revoke_logins() {
    for (const auto& u : users())
      if (admin->set_login_allowed(u, false) && !opts.dry_run) log::info("revoked login", {{"user", u}});
    reached(points::logins_revoked);
  }

  void retain(const std::vector<recorded_object>& records) {
    const std::string now = now_rfc3339();
    for (const auto& o : records) {
      // PostgreSQL: the database's record is its group role's, written once.
      if (postgres() && o.kind == "database") continue;
      if (o.record.state == state_retained && o.record.deletion_policy == policy_retain) continue;
      recorded_object updated = o;
      updated.record.state = state_retained;
      updated.record.retained_at = now;
      updated.record.deletion_policy = policy_retain;
      admin->write_record(updated);
    }
    reached(points::records_retained);
    revoke_logins();
    end_sessions();
  }

  void remove() {
    revoke_logins();
    end_sessions();
    admin->drop_database(names.database);
    if (!opts.dry_run) log::info("dropped database", {{"database", names.database}});
    reached(points::database_dropped);
    for (const auto& u : users()) admin->drop_user(u);
    reached(points::accounts_dropped);
    if (postgres()) {
      admin->drop_user(names.database);  // the group role, with its record
    } else {
      // The records go last: until then a rerun still knows these names were this tenant's.
      for (const auto& o : admin->recorded_objects(&names)) admin->drop_record(o);
    }
  }

  void once() {
    admin = db.connect_admin(conn.server, login{conn.admin_user, conn.admin_password}, opts.timeouts);
    std::vector<std::string> plan;
    admin->plan_into(nullptr);
    const auto records = check_ownership();
    if (result.nothing_found) return;
    // A dry run collects; a real run runs and collects, so the log shows what it did.
    admin->plan_into(&plan, !opts.dry_run);
    if (opts.policy == policy_delete)
      remove();
    else
      retain(records);
    admin->plan_into(nullptr);
    result.plan = std::move(plan);
  }
};

}  // namespace

std::vector<inventory_entry> read_inventory(admin_session& admin) {
  using key = std::tuple<std::string, std::string, std::string, std::string>;
  std::map<key, std::vector<recorded_object>> tenants;
  for (auto& o : admin.recorded_objects(nullptr))
    tenants[key{o.record.namespace_name, o.record.name, o.record.store, o.record.database}].push_back(std::move(o));
  std::vector<inventory_entry> out;
  for (const auto& [k, objects] : tenants) {
    inventory_entry e;
    const auto pick = [&](const char* kind) -> const recorded_object* {
      for (const auto& o : objects)
        if (o.kind == kind) return &o;
      return nullptr;
    };
    const recorded_object* main = pick("database");
    if (main == nullptr) main = pick("group role");
    if (main == nullptr) main = &objects.front();
    e.record = main->record;
    for (const auto& o : objects)
      if (!o.record.created.empty() && (e.record.created.empty() || o.record.created < e.record.created))
        e.record.created = o.record.created;
    if (pick("database") != nullptr) {
      try {
        e.size_bytes = admin.database_size(std::get<3>(k));
        e.database_exists = e.size_bytes.has_value();
      } catch (const error& err) {
        if (err.kind() != error_kind::database) throw;
        e.database_exists = admin.database_exists(std::get<3>(k));
        log::warn("could not read a database's size", {{"database", std::get<3>(k)}, {"reason", err.what()}});
      }
    }
    for (const auto& o : objects) {
      if (o.kind != "user") continue;
      const auto allowed = admin.login_allowed(o.name);
      if (!allowed) continue;  // a record whose account is gone
      e.accounts.push_back({o.name, admin.session_count(o.name), *allowed});
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::string inventory_json(const std::vector<inventory_entry>& entries) {
  std::string out = "[";
  const auto str = [&](const char* key, const std::string& value) {
    out += '"';
    out += key;
    out += "\":";
    log::append_json_string(out, value);
    out += ',';
  };
  for (const auto& e : entries) {
    if (out.size() > 1) out += ',';
    out += '{';
    str("namespace", e.record.namespace_name);
    str("tenant", e.record.name);
    str("store", e.record.store);
    str("database", e.record.database);
    out += "\"databaseExists\":";
    out += e.database_exists ? "true," : "false,";
    out += "\"accounts\":[";
    for (std::size_t i = 0; i < e.accounts.size(); ++i) {
      if (i > 0) out += ',';
      out += "{\"user\":";
      log::append_json_string(out, e.accounts[i].user);
      out += ",\"connections\":" + std::to_string(e.accounts[i].connections);
      out += ",\"loginAllowed\":";
      out += e.accounts[i].login_allowed ? "true}" : "false}";
    }
    out += "],";
    str("created", e.record.created);
    str("version", e.record.version);
    str("policy", e.record.deletion_policy.empty() ? std::string(policy_retain) : e.record.deletion_policy);
    str("state", e.record.state.empty() ? std::string("live") : e.record.state);
    if (!e.record.retained_at.empty()) str("retainedAt", e.record.retained_at);
    if (!e.owner.empty()) str("owner", e.owner);
    out += "\"sizeBytes\":";
    out += e.size_bytes ? std::to_string(*e.size_bytes) : "null";
    out += '}';
  }
  return out + "]";
}

std::string inventory_table(const std::vector<inventory_entry>& entries) {
  std::vector<std::vector<std::string>> rows{
      {"TENANT", "DATABASE", "ACCOUNTS (SESSIONS)", "CREATED", "VERSION", "POLICY", "STATE", "SIZE", "OWNER"}};
  for (const auto& e : entries) {
    std::string accounts;
    for (const auto& a : e.accounts) {
      if (!accounts.empty()) accounts += ' ';
      accounts += a.user + "(" + std::to_string(a.connections) + (a.login_allowed ? "" : ",locked") + ")";
    }
    rows.push_back({e.record.namespace_name + "/" + e.record.name,
                    e.record.database + (e.database_exists ? "" : " (gone)"), accounts.empty() ? "-" : accounts,
                    e.record.created, e.record.version,
                    e.record.deletion_policy.empty() ? std::string(policy_retain) : e.record.deletion_policy,
                    e.record.state.empty() ? std::string("live") : e.record.state,
                    e.size_bytes ? human_size(*e.size_bytes) : "-", e.owner.empty() ? "-" : e.owner});
  }
  std::vector<std::size_t> width(rows[0].size(), 0);
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

deprovision_result deprovision(const connector& conn, engine& db, const deprovision_options& options) {
  validate_tenant(options.who);
  validate_name_prefix(options.name_prefix);
  if (options.policy != policy_retain && options.policy != policy_delete)
    throw error(error_kind::usage, "the deletion policy must be retain or delete").about("--policy");
  deprovision_run r{
      conn, db,      options, options.names ? *options.names : derive_names(options.who, options.name_prefix),
      {},   nullptr, {}};
  r.ours.namespace_name = options.who.namespace_name;
  r.ours.name = options.who.name;
  r.ours.store = normalise_store_name(options.store);
  r.result.names = r.names;
  log::info(options.dry_run ? "planning deprovisioning" : "deprovisioning", {{"tenant", options.who.name},
                                                                             {"namespace", options.who.namespace_name},
                                                                             {"database", r.names.database},
                                                                             {"policy", options.policy},
                                                                             {"store", r.ours.store}});
  retry_until(options.deadline, "deprovision tenant", [&] {
    r.result.plan.clear();
    r.once();
  });
  if (r.result.nothing_found)
    log::info("nothing to deprovision: no object or record carries the tenant's names",
              {{"database", r.names.database}});
  else if (!options.dry_run)
    log::info(options.policy == policy_delete ? "tenant deleted" : "tenant retained",
              {{"database", r.names.database}, {"policy", options.policy}});
  return std::move(r.result);
}

std::vector<std::string> restore_retained(admin_session& admin, const tenant_names& names) {
  const auto records = admin.recorded_objects(&names);
  const bool retained = std::any_of(records.begin(), records.end(),
                                    [](const recorded_object& o) { return o.record.state == state_retained; });
  if (!retained) return {};
  std::vector<std::string> changes;
  for (const std::string* u : {&names.user_a, &names.user_b})
    if (admin.set_login_allowed(*u, true)) changes.push_back("allowed the retained account " + *u + " to log in");
  std::vector<std::string> written;
  for (const auto& o : records) {
    if (o.record.state != state_retained) continue;
    if (std::find(written.begin(), written.end(), o.name) != written.end()) continue;  // PostgreSQL: one per role
    recorded_object live = o;
    live.record.state.clear();
    live.record.retained_at.clear();
    live.record.orphaned_since.clear();  // the owner is back: it is running this init
    admin.write_record(live);
    written.push_back(o.name);
  }
  changes.push_back("restored the retained tenant " + names.database);
  return changes;
}

namespace {

constexpr std::string_view policy_from_annotation = "annotation";

std::string tenant_label(const owner_record& r) {
  return r.namespace_name + "/" + r.name + " (database " + r.database + ")";
}

/// The sweep's work on one tenant of the inventory.
struct sweep_one {
  const connector& conn;
  engine& db;
  const sweep_options& opts;
  const inventory_entry& entry;
  sweep_entry out;

  bool postgres() const { return conn.server.type == engine_type::postgres; }

  tenant_names names() const {
    const auto& r = entry.record;
    if (r.users.size() != 2)
      throw error(error_kind::ownership, "the ownership record of " + tenant_label(r) +
                                             " does not name the tenant's two accounts; the sweep leaves it alone");
    return tenant_names{r.database, r.users[0], r.users[1]};
  }

  /// This owner's records (the group role's stands for its database on PostgreSQL).
  std::vector<recorded_object> records(admin_session& admin) const {
    const tenant_names n = names();
    std::vector<recorded_object> mine;
    for (auto& o : admin.recorded_objects(&n)) {
      if (postgres() && o.kind == "database") continue;
      if (same_owner(o.record, entry.record)) mine.push_back(std::move(o));
    }
    return mine;
  }

  /// Rewrites this owner's records with `change` applied, where it changes something.
  /// Returns whether any record changed.
  bool rewrite(const std::function<void(owner_record&)>& change) {
    bool changed = false;
    retry_until(opts.deadline, "update the ownership records of " + tenant_label(entry.record), [&] {
      changed = false;
      auto admin = db.connect_admin(conn.server, login{conn.admin_user, conn.admin_password}, opts.timeouts);
      for (auto o : records(*admin)) {
        const std::string before = owner_record_json(o.record);
        change(o.record);
        if (owner_record_json(o.record) == before) continue;
        admin->write_record(o);
        changed = true;
      }
    });
    return changed;
  }

  /// The earliest orphanedSince among the records, if any.
  std::optional<std::chrono::system_clock::time_point> orphaned_since() {
    std::optional<std::chrono::system_clock::time_point> since;
    retry_until(opts.deadline, "read the ownership records of " + tenant_label(entry.record), [&] {
      since.reset();
      auto admin = db.connect_admin(conn.server, login{conn.admin_user, conn.admin_password}, opts.timeouts);
      for (const auto& o : records(*admin)) {
        if (o.record.orphaned_since.empty()) continue;
        const auto t = parse_rfc3339(o.record.orphaned_since);
        if (t && (!since || *t < *since)) since = t;
      }
    });
    return since;
  }

  void present(const owner_status& status) {
    out.what = sweep_entry::outcome::present;
    out.line = tenant_label(entry.record) + ": owner present";
    std::vector<std::string> notes;
    if (status.annotation_invalid)
      notes.push_back("its tenantdb.io/deletion-policy annotation is neither retain nor delete and is ignored");
    const std::string annotated = status.annotated_policy;
    const auto change = [&](owner_record& r) {
      r.orphaned_since.clear();
      if (!annotated.empty()) {
        r.deletion_policy = annotated;
        r.policy_from = policy_from_annotation;
      } else if (!status.annotation_invalid && r.policy_from == policy_from_annotation) {
        r.deletion_policy = std::string(policy_retain);
        r.policy_from.clear();
      }
    };
    owner_record wanted = entry.record;
    change(wanted);
    const bool differs = owner_record_json(wanted) != owner_record_json(entry.record);
    if (differs) {
      if (!entry.record.orphaned_since.empty())
        notes.push_back(std::string(opts.dry_run ? "would clear" : "cleared") + " orphanedSince " +
                        entry.record.orphaned_since);
      if (wanted.policy_from != entry.record.policy_from || wanted.deletion_policy != entry.record.deletion_policy)
        notes.push_back(std::string(opts.dry_run ? "would record" : "recorded") + " its deletion policy " +
                        wanted.deletion_policy + " (" +
                        (annotated.empty() ? "annotation removed" : "from the Secret's annotation") + ")");
      if (!opts.dry_run) rewrite(change);
    }
    for (const auto& n : notes) out.line += "; " + n;
  }

  void gone() {
    const auto now = opts.now();
    auto since = orphaned_since();
    std::string first_seen;
    if (!since) {
      since = now;
      first_seen = opts.dry_run ? " (first seen now; dry run: orphanedSince not recorded)" : " (first seen now)";
      if (!opts.dry_run) {
        const std::string stamp = format_rfc3339(now);
        rewrite([&](owner_record& r) {
          if (r.orphaned_since.empty()) r.orphaned_since = stamp;
        });
        if (opts.fault) opts.fault(sweep_fault_points::orphan_recorded);
      }
    }
    const std::string gone_since = "owner " + entry.record.store + " gone since " + format_rfc3339(*since) + first_seen;
    const auto until = *since + opts.grace;
    if (now <= until) {
      out.what = sweep_entry::outcome::waiting;
      out.line = tenant_label(entry.record) + ": waiting until " + format_rfc3339(until) + ": " + gone_since +
                 ", grace " + format_duration(opts.grace);
      return;
    }
    std::string policy;
    std::string from;
    if (entry.record.policy_from == policy_from_annotation && parse_deletion_policy(entry.record.deletion_policy)) {
      policy = entry.record.deletion_policy;
      from = "the Secret's annotation, as recorded";
    } else if (!opts.connector_policy.empty()) {
      policy = opts.connector_policy;
      from = "connector deletionPolicy";
    } else {
      policy = std::string(policy_retain);
      from = "default";
    }
    deprovision_options d;
    d.who = tenant{entry.record.name, entry.record.namespace_name};
    d.store = entry.record.store;
    d.policy = policy;
    d.names = names();
    d.dry_run = opts.dry_run;
    d.deadline = opts.deadline;
    d.timeouts = opts.timeouts;
    d.fault = opts.fault;
    const bool was_retained = entry.record.state == state_retained;
    auto result = deprovision(conn, db, d);
    out.plan = std::move(result.plan);
    out.what = sweep_entry::outcome::acted;
    std::string done;
    if (result.nothing_found)
      done = "nothing left on the server";
    else if (policy == policy_delete)
      done = opts.dry_run ? "would delete" : "deleted";
    else
      done = was_retained ? "already retained" : opts.dry_run ? "would retain" : "retained";
    out.line = tenant_label(entry.record) + ": " + (opts.dry_run ? "would act" : "acted") + ": " + done + " (policy " +
               policy + " from " + from + "); " + gone_since + ", grace " + format_duration(opts.grace);
    if (!opts.dry_run)
      for (const auto& statement : out.plan)
        log::info("ran", {{"sql", statement}, {"database", entry.record.database}});
  }

  void run() {
    out.record = entry.record;
    static constexpr std::string_view secret_store = "secret ";
    if (!entry.record.store.starts_with(secret_store)) {
      out.what = sweep_entry::outcome::skipped;
      out.line = tenant_label(entry.record) + ": skipped: its credentials are in a " + entry.record.store +
                 ", not a Secret, so the API cannot say whether its owner exists";
      return;
    }
    const owner_status status = opts.check_owner(entry.record);
    switch (status.is) {
      case owner_status::state::present: present(status); return;
      case owner_status::state::gone: gone(); return;
      case owner_status::state::unknown:
        out.what = sweep_entry::outcome::unknown;
        out.failure = status.failure;
        out.line = tenant_label(entry.record) + ": unknown: " + status.why + "; nothing changed";
        return;
    }
  }
};

}  // namespace

std::vector<sweep_entry> sweep(const connector& conn, engine& db, const sweep_options& options) {
  if (options.grace <= std::chrono::milliseconds::zero())
    throw error(error_kind::usage, "--grace must be longer than 0").about("--grace");
  std::vector<inventory_entry> inventory;
  retry_until(options.deadline, "read the tenant inventory", [&] {
    auto admin = db.connect_admin(conn.server, login{conn.admin_user, conn.admin_password}, options.timeouts);
    inventory = read_inventory(*admin);
  });
  if (!options.only_namespace.empty())
    std::erase_if(inventory,
                  [&](const inventory_entry& e) { return e.record.namespace_name != options.only_namespace; });
  log::info(options.dry_run ? "planning an orphan sweep" : "orphan sweep",
            {{"tenants", static_cast<std::int64_t>(inventory.size())}, {"grace", format_duration(options.grace)}});
  std::vector<sweep_entry> out;
  for (const auto& e : inventory) {
    sweep_one one{conn, db, options, e, {}};
    try {
      one.run();
    } catch (const error& err) {
      one.out.what = sweep_entry::outcome::failed;
      one.out.failure = err.kind();
      one.out.line = tenant_label(e.record) + ": failed: " + err.what();
      log::warn("the sweep could not finish a tenant", {{"database", e.record.database}, {"reason", err.what()}});
    }
    out.push_back(std::move(one.out));
  }
  return out;
}

namespace {

std::string product_of(engine_type type) {
  return type == engine_type::postgres ? "PostgreSQL" : "MySQL/MariaDB";
}

}  // namespace

tenant_names attached_names(admin_session& admin, engine_type type, const std::string& database,
                            const owner_record& owner) {
  const std::string object = product_of(type) + " database \"" + database + "\"";
  const auto refuse = [&](const std::string& why) {
    throw error(error_kind::ownership, object + " " + why + "; nothing was changed").about("--attach-database");
  };
  std::vector<recorded_object> records;
  for (auto& o : admin.recorded_objects(nullptr))
    if (o.record.database == database) records.push_back(std::move(o));
  if (records.empty())
    refuse(admin.database_exists(database)
               ? "carries no tenantdb ownership record: --attach-database takes over only a database tenantdb made"
               : "does not exist and no tenantdb record names it");
  const auto& first = records.front().record;
  if (first.users.size() != 2) refuse("has a record that names no two login accounts");
  if (!admin.database_exists(database)) refuse("is gone: only its records remain");
  for (const auto& o : records) {
    if (same_owner(o.record, owner)) continue;
    const bool live = o.record.state != state_retained && o.record.orphaned_since.empty();
    if (!live) continue;
    // Another live owner. Named only within the tenant's own namespace, as must_adopt does.
    refuse(std::string("belongs to ") +
           (o.record.namespace_name == owner.namespace_name
                ? "the live tenant \"" + o.record.name + "\" of this namespace"
                : std::string("a live tenant of another namespace")) +
           ": only a retained tenant's database (tenantdb-init --deprovision --policy retain), or one whose owner an "
           "orphan sweep found gone, can be attached");
  }
  return tenant_names{first.database, first.users[0], first.users[1]};
}

std::vector<std::string> attach_database(admin_session& admin, engine_type type, const tenant_names& names,
                                         const owner_record& owner) {
  std::vector<recorded_object> theirs;
  for (auto& o : admin.recorded_objects(&names)) {
    if (type == engine_type::postgres && o.kind == "database") continue;  // its group role carries it
    if (!same_owner(o.record, owner)) theirs.push_back(std::move(o));
  }
  if (theirs.empty()) return {};
  const owner_record previous = theirs.front().record;
  std::vector<std::string> changes;
  // Sessions first: a crash after this leaves records a rerun still hands over.
  for (const std::string* u : {&names.user_a, &names.user_b})
    if (admin.user_exists(*u)) {
      const int ended = admin.end_sessions(*u);
      if (ended > 0) changes.push_back("ended " + std::to_string(ended) + " session(s) of " + *u);
    }
  for (auto& o : theirs) {
    o.record.namespace_name = owner.namespace_name;
    o.record.name = owner.name;
    o.record.store = owner.store;
    o.record.orphaned_since.clear();
    o.record.policy_from.clear();
    o.record.deletion_policy = std::string(policy_retain);
    admin.write_record(o);
  }
  changes.push_back("attached database " + names.database + " (previously " +
                    (previous.state == state_retained ? std::string("retained") : std::string("orphaned")) +
                    "); its records now name this tenant");
  return changes;
}
}  // namespace tenantdb
