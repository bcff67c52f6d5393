// tenantdb-init: provisions a tenant's database, accounts and credentials, then exits.
// The flags are tenantdb::init_options and the work is tenantdb::provision, both in common/.

#include <iostream>

#include "tenantdb/app.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/events.hpp"
#include "tenantdb/fault.hpp"
#include "tenantdb/init_events.hpp"
#include "tenantdb/init_options.hpp"
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

  if (o.local) {
    const connector conn = parse_connector(read_connector_path(o.connector_file));
    refuse_unsafe_directory(o.output_dir);
    if (!o.store_dir.empty()) refuse_unsafe_directory(o.store_dir);
    auto store = make_directory_store(o.store_dir.empty() ? o.output_dir : o.store_dir, o.files);
    const auto result = provision(conn, *make_engine(conn.server.type), *store, opts);
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
    if (is_runtime_failure(e)) events.warning(event_reasons::failed, "Provision", failure_event_message(e));
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
  std::map<std::string, std::string> labels{{"app.kubernetes.io/managed-by", "tenantdb"},
                                            {"tenantdb.io/database", names.database}};
  const std::string secret = opts.who.namespace_name + "/" + o.secret_name;
  auto store = make_secret_store(client, opts.who.namespace_name, o.secret_name, labels);
  // A credentials Secret that is not tenantdb's (e.g. a ServiceAccount token put in its
  // place) is refused before any database is touched; provisioning checks every read again.
  retry_until(opts.deadline, "read credentials secret " + secret, [&] { (void)store->load(); });
  const auto result = provision(conn, *make_engine(conn.server.type), *store, opts);
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
