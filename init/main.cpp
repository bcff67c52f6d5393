// tenantdb-init: provisions a tenant's database, accounts and credentials, then exits.
// The flags are tenantdb::init_options and the work is tenantdb::provision, both in common/.

#include <cstdint>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <rapidjson/document.h>

#include "tenantdb/app.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/duration.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/events.hpp"
#include "tenantdb/fault.hpp"
#include "tenantdb/init_events.hpp"
#include "tenantdb/init_options.hpp"
#include "tenantdb/kube.hpp"
#include "tenantdb/lifecycle.hpp"
#include "tenantdb/log.hpp"
#include "tenantdb/naming.hpp"
#include "tenantdb/provision.hpp"
#include "tenantdb/retry.hpp"
#include "tenantdb/store.hpp"

namespace {

// Before any database or Secret is touched: a directory someone else can write, or one
// holding what tenantdb never writes (a ..data leading elsewhere, a FIFO for a key), is
// refused with one line (exit 7) and nothing is changed.
void refuse_unsafe_directory(const std::string& dir) {
  tenantdb::check_credential_directory(dir, false);
  (void)tenantdb::read_directory(dir);
}

// Rewrites the files only if they differ: a second run changes nothing it need not.
void publish_workload_files(const tenantdb::init_options& o, const tenantdb::credential_data& data) {
  const auto view = tenantdb::workload_view(data);
  if (!tenantdb::same_data(tenantdb::read_directory(o.output_dir), view))
    tenantdb::publish_directory(o.output_dir, view, o.files);
}

// --print-names: one JSON object, for values files that must name the database.
std::string names_json(const tenantdb::tenant& who, const tenantdb::tenant_names& n) {
  std::string out = "{";
  const auto field = [&](const char* key, const std::string& value, bool last = false) {
    out += '"';
    out += key;
    out += "\":";
    tenantdb::log::append_json_string(out, value);
    if (!last) out += ',';
  };
  field("namespace", who.namespace_name);
  field("tenant", who.name);
  field("database", n.database);
  field("user_a", n.user_a);
  field("user_b", n.user_b, true);
  return out + "}";
}

int run_in_cluster(tenantdb::init_options& o, tenantdb::kube_client& client, tenantdb::event_recorder& events);

// The plan as --dry-run prints it, for provisioning and deprovisioning alike: "# plan:
// <what>", then one write per line ("SQL <statement>", "API <write>", "FILE <write>";
// passwords as '***'), then notes as "# " lines.
void print_plan(const std::string& what, const std::vector<std::string>& steps,
                const std::optional<std::string>& nothing_to_do, const std::vector<std::string>& notes) {
  std::cout << "# plan: " << what << "\n";
  if (nothing_to_do) std::cout << "# nothing to do: " << *nothing_to_do << "\n";
  for (const auto& step : steps) std::cout << step << "\n";
  for (const auto& note : notes) std::cout << "# " << note << "\n";
  std::cout << std::flush;
}

// A store a dry run reads and never writes: a directory that does not exist yet is an
// empty store, not one to create.
class read_only_store final : public tenantdb::credential_store {
public:
  read_only_store(std::unique_ptr<tenantdb::credential_store> inner, std::string dir)
      : inner_(std::move(inner)), dir_(std::move(dir)) {}
  std::optional<tenantdb::stored_credentials> load() override {
    if (!dir_.empty() && !std::filesystem::exists(dir_)) return std::nullopt;
    return inner_->load();
  }
  std::optional<std::string> create(const tenantdb::credential_data& /*data*/,
                                    const std::map<std::string, std::string>& /*annotations*/) override {
    throw tenantdb::error(tenantdb::error_kind::internal, "a dry run wrote to the credentials store");
  }
  std::optional<std::string> replace(const tenantdb::credential_data& /*data*/,
                                     const std::map<std::string, std::string>& /*annotations*/,
                                     const std::string& /*version*/) override {
    throw tenantdb::error(tenantdb::error_kind::internal, "a dry run wrote to the credentials store");
  }
  std::string describe() const override { return inner_->describe(); }

private:
  std::unique_ptr<tenantdb::credential_store> inner_;
  std::string dir_;
};

// After provision(): a dry run prints its plan; a real run logs what it did, in the
// plan's words (statements with passwords masked, store writes).
void report_plan(const tenantdb::init_options& o, const tenantdb::connector& conn,
                 const tenantdb::provision_result& result, const std::string& store) {
  using namespace tenantdb;
  if (!o.provision.dry_run) {
    for (const auto& step : result.plan) log::info("ran", {{"step", step}});
    return;
  }
  const auto& who = o.provision.who;
  std::vector<std::string> notes;
  for (const auto& r : result.repairs) notes.push_back("repair: " + r);
  if (!o.output_dir.empty() && !o.store_dir.empty())
    notes.push_back("then the workload's files in " + o.output_dir + " are written if they differ");
  print_plan("provision tenant " + who.namespace_name + "/" + who.name + " (database " + result.names.database +
                 ", credentials " + store + ") on " + std::string(engine_name(conn.server)) + " at " +
                 conn.server.host + ":" + std::to_string(conn.server.port),
             result.plan,
             result.plan.empty() ? std::optional<std::string>("the database, accounts and credentials are up to date")
                                 : std::nullopt,
             notes);
}

// The annotation a platform sets on a tenant's credentials Secret to choose its policy.
constexpr const char* deletion_policy_annotation = "tenantdb.io/deletion-policy";

tenantdb::connector read_connector(const tenantdb::init_options& o, tenantdb::kube_client* client,
                                   const std::string& ns) {
  using namespace tenantdb;
  if (!o.connector_file.empty() || client == nullptr) return parse_connector(read_connector_path(o.connector_file));
  return parse_connector(fetch_connector(*client, o.connector, ns, o.provision.deadline));
}

// --list: every tenant on the server, from the ownership records. Read-only.
int run_list(const tenantdb::init_options& o) {
  using namespace tenantdb;
  std::optional<kube_client> client;
  std::string ns = o.namespace_name;
  if (!o.local) {
    client.emplace(find_kube_config(o.kubeconfig));
    if (ns.empty()) ns = client->config().namespace_name;
  }
  const connector conn = read_connector(o, client ? &*client : nullptr, ns);
  std::vector<inventory_entry> entries;
  retry_until(o.provision.deadline, "read the tenant inventory", [&] {
    auto admin = make_engine(conn.server.type)
                     ->connect_admin(conn.server, login{conn.admin_user, conn.admin_password}, o.provision.timeouts);
    entries = read_inventory(*admin);
  });
  if (client) {
    // The owner exists while its credentials Secret does (a directory store cannot be
    // checked from here).
    static constexpr std::string_view prefix = "secret ";
    for (auto& e : entries) {
      const std::string& store = e.record.store;
      const auto slash = store.find('/');
      if (!store.starts_with(prefix) || slash == std::string::npos) {
        e.owner = "unknown";
        continue;
      }
      try {
        const std::string secret_ns = store.substr(prefix.size(), slash - prefix.size());
        e.owner = client->get_secret(secret_ns, store.substr(slash + 1)) ? "exists" : "gone";
      } catch (const error& err) {
        e.owner = "unknown";
        log::warn("could not ask whether a tenant's credentials Secret exists",
                  {{"store", store}, {"reason", err.what()}});
      }
    }
  }
  if (o.output == "json")
    std::cout << inventory_json(entries) << std::endl;
  else
    std::cout << inventory_table(entries) << std::flush;
  return 0;
}

// --deprovision: retain or delete one tenant; --dry-run prints the plan instead.
int run_deprovision(tenantdb::init_options& o) {
  using namespace tenantdb;
  std::optional<kube_client> client;
  deprovision_options d;
  std::string policy_from = "--policy";
  std::string policy = o.policy;
  if (o.local) {
    d.store = "directory " + (o.store_dir.empty() ? o.output_dir : o.store_dir);
  } else {
    client.emplace(find_kube_config(o.kubeconfig));
    resolve_tenant(o, client->config().namespace_name);
    d.store = "secret " + o.provision.who.namespace_name + "/" + o.secret_name;
  }
  const connector conn = read_connector(o, client ? &*client : nullptr, o.provision.who.namespace_name);
  if (policy.empty() && client) {
    std::optional<secret_object> secret;
    retry_until(o.provision.deadline, "read credentials " + d.store,
                [&] { secret = client->get_secret(o.provision.who.namespace_name, o.secret_name); });
    if (secret) {
      if (const auto it = secret->annotations.find(deletion_policy_annotation); it != secret->annotations.end()) {
        const auto parsed = parse_deletion_policy(it->second);
        if (!parsed)
          throw error(error_kind::usage, std::string("the annotation ") + deletion_policy_annotation + " on " +
                                             d.store + " must be retain or delete")
              .about(deletion_policy_annotation);
        policy = *parsed;
        policy_from = std::string("annotation ") + deletion_policy_annotation;
      }
    }
  }
  if (policy.empty() && !conn.deletion_policy.empty()) {
    policy = conn.deletion_policy;
    policy_from = "connector deletionPolicy";
  }
  if (policy.empty()) {
    policy = std::string(policy_retain);
    policy_from = "default";
  }
  log::info("deletion policy", {{"policy", policy}, {"from", policy_from}});
  d.who = o.provision.who;
  d.name_prefix = o.provision.name_prefix;
  // A tenant that attached a database has that database's names (its accounts are
  // <database>_a and _b, as tenantdb makes them); deprovision() checks every record.
  if (const std::string& db = o.provision.attach_database; !db.empty())
    d.names = tenant_names{db, db + "_a", db + "_b"};
  d.policy = policy;
  d.dry_run = o.dry_run;
  d.deadline = o.provision.deadline;
  d.timeouts = o.provision.timeouts;
  d.fault = o.provision.fault;
  const auto result = deprovision(conn, *make_engine(conn.server.type), d);
  if (o.dry_run) {
    std::vector<std::string> steps;
    for (const auto& statement : result.plan) steps.push_back("SQL " + statement);
    print_plan("deprovision tenant " + d.who.namespace_name + "/" + d.who.name + " (database " + result.names.database +
                   ") with policy " + policy + " (" + policy_from + ") on " + std::string(engine_name(conn.server)) +
                   " at " + conn.server.host + ":" + std::to_string(conn.server.port),
               steps,
               result.nothing_found ? std::optional<std::string>("no object or record carries the tenant's names")
                                    : std::nullopt,
               {"the credentials " + d.store + " is left in place"});
  }
  // A real run logs what it ran, in the plan's words (records and names only, no secret).
  if (!o.dry_run)
    for (const auto& statement : result.plan) log::info("ran", {{"sql", statement}});
  return 0;
}

// --sweep: whether a record's owner (its credentials Secret) exists. Only a clean 404
// NotFound Status for that very Secret (or for its namespace) counts as gone; anything
// else (403, 5xx, a timeout, a 404 from something that is not the API) is unknown, and
// an unknown owner is never acted on.
tenantdb::owner_status ask_owner(tenantdb::kube_client& client, const tenantdb::owner_record& record) {
  using namespace tenantdb;
  owner_status out;
  static constexpr std::string_view prefix = "secret ";
  const std::string& store = record.store;
  const auto slash = store.find('/');
  const std::string ns = slash == std::string::npos ? "" : store.substr(prefix.size(), slash - prefix.size());
  const std::string name = slash == std::string::npos ? "" : store.substr(slash + 1);
  if (!is_dns1123_label(ns) || !is_dns1123_subdomain(name)) {
    out.why = "the record's credentials store \"" + store + "\" names no valid Secret";
    return out;
  }
  try {
    const auto secret = client.get_secret(ns, name);
    if (secret) {
      out.is = owner_status::state::present;
      if (const auto it = secret->annotations.find(deletion_policy_annotation); it != secret->annotations.end()) {
        const auto parsed = parse_deletion_policy(it->second);
        if (parsed)
          out.annotated_policy = *parsed;
        else
          out.annotation_invalid = true;
      }
      return out;
    }
    // A 404: ask once more and read the answer itself. It must be the API's own Status
    // saying that this Secret (or its namespace) is not found.
    kube_response again = client.request("GET", "/api/v1/namespaces/" + ns + "/secrets/" + name);
    if (again.status == 200) {
      wipe(again.body);
      out.is = owner_status::state::present;  // back meanwhile; its annotation is read next time
      return out;
    }
    rapidjson::Document doc;
    doc.Parse(again.body.c_str(), again.body.size());
    const auto text = [&](const rapidjson::Value& v, const char* key) -> std::string {
      if (!v.IsObject()) return {};
      const auto m = v.FindMember(key);
      return m != v.MemberEnd() && m->value.IsString() ? m->value.GetString() : std::string();
    };
    bool clean = false;
    if (again.status == 404 && !doc.HasParseError() && doc.IsObject() && text(doc, "kind") == "Status" &&
        text(doc, "reason") == "NotFound" && doc.HasMember("details")) {
      const auto& details = doc["details"];
      clean = (text(details, "kind") == "secrets" && text(details, "name") == name) ||
              (text(details, "kind") == "namespaces" && text(details, "name") == ns);
    }
    if (clean) {
      out.is = owner_status::state::gone;
      return out;
    }
    wipe(again.body);
    if (again.status == 404) {
      out.why = "get secret \"" + ns + "/" + name + "\" answered 404 without the API's NotFound Status for it";
      out.failure = error_kind::kubernetes;
      return out;
    }
    throw_api_error(again, "get secret \"" + ns + "/" + name + "\"");
  } catch (const error& err) {
    out.is = owner_status::state::unknown;
    out.why = err.what();
    out.failure = err.kind();
  }
  return out;
}

// --sweep: every tenant whose owner is gone for longer than --grace gets its policy.
int run_sweep(tenantdb::init_options& o) {
  using namespace tenantdb;
  kube_client client(find_kube_config(o.kubeconfig));
  // --namespace narrows the sweep to that namespace's tenants; a connector named without
  // a namespace is in the sweeper's own.
  const connector conn = read_connector(o, &client, client.config().namespace_name);
  sweep_options s;
  s.grace = o.grace;
  s.dry_run = o.dry_run;
  s.connector_policy = conn.deletion_policy;
  s.only_namespace = o.namespace_name;
  s.deadline = o.provision.deadline;
  s.timeouts = o.provision.timeouts;
  s.fault = o.provision.fault;
  s.check_owner = [&](const owner_record& r) { return ask_owner(client, r); };
  const auto entries = sweep(conn, *make_engine(conn.server.type), s);
  if (o.dry_run)
    std::cout << "# plan: orphan sweep of " << engine_name(conn.server) << " at " << conn.server.host << ":"
              << conn.server.port << ", grace " << format_duration(o.grace)
              << " (dry run: nothing is changed, not even orphanedSince)\n";
  std::optional<error_kind> failure;
  std::size_t acted = 0;
  for (const auto& e : entries) {
    std::cout << e.line << "\n";
    if (o.dry_run)
      for (const auto& statement : e.plan) std::cout << "SQL " << statement << "\n";
    if (e.what == sweep_entry::outcome::acted) ++acted;
    if (!failure && e.failure) failure = e.failure;
  }
  std::cout << std::flush;
  log::info("orphan sweep done", {{"tenants", static_cast<std::int64_t>(entries.size())},
                                  {"acted", static_cast<std::int64_t>(acted)},
                                  {"dry_run", o.dry_run}});
  // A tenant whose owner could not be asked, or that could not be finished, makes the
  // run fail (after every other tenant was done), so a CronJob shows it.
  if (failure) {
    const error summary(*failure,
                        "the sweep left tenants undecided or unfinished (their lines say why); the next "
                        "run asks again");
    log::error("orphan sweep incomplete", {{"reason", summary.what()}});
    return static_cast<int>(summary.code());
  }
  return 0;
}

int run(tenantdb::init_options o) {
  using namespace tenantdb;
  log::set_level(o.log_level);
  provision_options& opts = o.provision;
  opts.deadline = std::chrono::steady_clock::now() + o.timeout;

  if (o.print_names) {
    const tenant_names names = derive_names(opts.who, opts.name_prefix);
    std::cout << names_json(opts.who, names) << std::endl;
    return 0;
  }

  if (o.mode == init_mode::list) return run_list(o);
  if (o.mode == init_mode::deprovision) return run_deprovision(o);
  if (o.mode == init_mode::sweep) return run_sweep(o);

  if (o.local) {
    const connector conn = parse_connector(read_connector_path(o.connector_file));
    refuse_unsafe_directory(o.output_dir);
    if (!o.store_dir.empty()) refuse_unsafe_directory(o.store_dir);
    const std::string store_dir = o.store_dir.empty() ? o.output_dir : o.store_dir;
    std::unique_ptr<credential_store> store = make_directory_store(store_dir, o.files);
    if (opts.dry_run) store = std::make_unique<read_only_store>(std::move(store), store_dir);
    const auto result = provision(conn, *make_engine(conn.server.type), *store, opts);
    report_plan(o, conn, result, store->describe());
    if (opts.dry_run) return 0;
    if (opts.fault) opts.fault(provision_fault_points::provisioned);
    if (!o.store_dir.empty()) publish_workload_files(o, result.data);
    log::info(
        "tenant ready",
        {{"database", result.names.database}, {"user", parse_record(result.data).user}, {"output_dir", o.output_dir}});
    if (o.print_json) std::cout << to_json(workload_view(result.data)).reveal() << std::endl;
    return 0;
  }

  kube_client client(find_kube_config(o.kubeconfig));
  resolve_tenant(o, client.config().namespace_name);
  event_recorder events(&client, "tenantdb-init", event_target_for(opts.who.namespace_name, o.secret_name));
  try {
    return run_in_cluster(o, client, events);
  } catch (const std::exception& e) {
    // Refused input (flags, connector, a foreign Secret, another owner's objects, unsafe
    // directories) changes nothing, not even an Event: its one log line is the report.
    // What failed at run time (server unreachable, login refused) is worth an Event.
    if (is_runtime_failure(e) && !o.provision.dry_run)
      events.warning(event_reasons::failed, "Provision", failure_event_message(e));
    throw;
  }
}

int run_in_cluster(tenantdb::init_options& o, tenantdb::kube_client& client, tenantdb::event_recorder& events) {
  using namespace tenantdb;
  provision_options& opts = o.provision;
  connector_data raw = o.connector_file.empty()
                           ? fetch_connector(client, o.connector, opts.who.namespace_name, opts.deadline)
                           : read_connector_path(o.connector_file);
  const connector conn = parse_connector(std::move(raw));
  emit_tls_event(events, conn, o);
  if (!conn.server.ca_pem.empty() && opts.ca_file.empty() && conn.server.type == engine_type::postgres)
    log::warn("the dataSource names no sslrootcert: pass --ca-file with the path where the workload mounts caCert");

  if (!o.output_dir.empty()) refuse_unsafe_directory(o.output_dir);
  const tenant_names names = derive_names(opts.who, opts.name_prefix);
  std::map<std::string, std::string> labels{
      {"app.kubernetes.io/managed-by", "tenantdb"},
      {"tenantdb.io/database", opts.attach_database.empty() ? names.database : opts.attach_database}};
  const std::string secret = opts.who.namespace_name + "/" + o.secret_name;
  std::unique_ptr<credential_store> store = make_secret_store(client, opts.who.namespace_name, o.secret_name, labels);
  if (opts.dry_run) store = std::make_unique<read_only_store>(std::move(store), "");
  // A credentials Secret that is not tenantdb's (e.g. a ServiceAccount token put in its
  // place) is refused before any database is touched; provisioning checks every read again.
  retry_until(opts.deadline, "read credentials secret " + secret, [&] { (void)store->load(); });
  const auto result = provision(conn, *make_engine(conn.server.type), *store, opts);
  report_plan(o, conn, result, store->describe());
  if (opts.dry_run) return 0;  // no Secret, no files, no Events
  if (opts.fault) opts.fault(provision_fault_points::provisioned);
  if (!o.output_dir.empty()) publish_workload_files(o, result.data);
  log::info("tenant ready",
            {{"database", result.names.database}, {"user", parse_record(result.data).user}, {"secret", secret}});
  emit_provision_events(events, result, secret);
  if (o.print_json) std::cout << to_json(workload_view(result.data)).reveal() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  tenantdb::log::set_component("init");
  // Before anything holds a password: no core dumps, no /proc/PID/mem for others.
  tenantdb::harden_process();
  return tenantdb::run_main([&] {
    auto command = tenantdb::parse_init_command_line(argc, argv);
    if (!command.options) return command.exit_code;
    return run(std::move(*command.options));
  });
}
