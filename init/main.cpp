// tenantdb-init: provisions a tenant's database, accounts and credentials, then exits.
// Flags are parsed here; the work is tenantdb::provision in common/.

#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

#include "tenantdb/app.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/duration.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/fault.hpp"
#include "tenantdb/log.hpp"
#include "tenantdb/naming.hpp"
#include "tenantdb/password.hpp"
#include "tenantdb/provision.hpp"
#include "tenantdb/retry.hpp"
#include "tenantdb/store.hpp"

namespace {

struct flags {
  std::string tenant;
  std::string namespace_name;
  std::string name_prefix{tenantdb::default_name_prefix};
  std::string connector;
  std::string connector_file;
  std::string secret_name;
  std::string output_dir;
  std::string store_dir;
  std::string ca_file;
  std::string kubeconfig;
  std::string strategy = "dual";
  std::string timeout = "5m";
  std::string log_level = "info";
  std::string file_mode = "0440";
  std::size_t password_length = 32;
  bool local = false;
  bool print_json = false;
  bool adopt_existing = false;
};

// Before any database or Secret is touched: a directory someone else can write, or one
// holding what tenantdb never writes (a ..data leading elsewhere, a FIFO for a key), is
// refused with one line (exit 7) and nothing is changed.
void refuse_unsafe_directory(const std::string& dir) {
  tenantdb::check_credential_directory(dir, false);
  (void)tenantdb::read_directory(dir);
}

int run(const flags& f) {
  using namespace tenantdb;
  log::set_level(log::parse_level(f.log_level));
  const auto timeout = parse_duration(f.timeout, "--timeout");
  const auto deadline = std::chrono::steady_clock::now() + timeout;

  provision_options opts;
  opts.who.name = f.tenant;
  opts.name_prefix = f.name_prefix;
  opts.strategy = parse_strategy(f.strategy);
  opts.password_length = f.password_length;
  validate_password_length(opts.password_length);
  opts.deadline = deadline;
  opts.adopt_existing = f.adopt_existing;
  directory_options dir_opts;
  dir_opts.file_mode = tenantdb::parse_file_mode(f.file_mode);
  opts.fault = crash_at_hook(crash_at_from_env());
  dir_opts.fault = opts.fault;
  opts.ca_file = !f.ca_file.empty() ? f.ca_file : f.output_dir.empty() ? std::string() : f.output_dir + "/caCert";

  if (f.local) {
    // No Kubernetes at all: connector from a file, the directory is the store.
    if (f.connector_file.empty())
      throw error(error_kind::usage, "--local needs --connector-file").about("--connector-file");
    if (f.output_dir.empty()) throw error(error_kind::usage, "--local needs --output-dir").about("--output-dir");
    if (!f.connector.empty() || !f.secret_name.empty())
      throw error(error_kind::usage, "--local does not use the Kubernetes API: drop --connector and --secret-name")
          .about("--local");
    opts.who.namespace_name = resolve_namespace(f.namespace_name, "default");
    validate_tenant(opts.who);
    validate_name_prefix(opts.name_prefix);
    // With --store-dir the store is tenantdb's own and --output-dir gets only the
    // workload's keys; without it --output-dir is the store (standby included).
    if (!f.store_dir.empty()) check_store_apart(f.store_dir, f.output_dir);
    const connector conn = parse_connector(read_connector_path(f.connector_file));
    refuse_unsafe_directory(f.output_dir);
    if (!f.store_dir.empty()) refuse_unsafe_directory(f.store_dir);
    auto store = make_directory_store(f.store_dir.empty() ? f.output_dir : f.store_dir, dir_opts);
    const auto result = provision(conn, *store, opts);
    if (opts.fault) opts.fault(provision_fault_points::provisioned);
    if (!f.store_dir.empty()) {
      const auto view = workload_view(result.data);
      if (!same_data(read_directory(f.output_dir), view)) publish_directory(f.output_dir, view, dir_opts);
    }
    log::info(
        "tenant ready",
        {{"database", result.names.database}, {"user", parse_record(result.data).user}, {"output_dir", f.output_dir}});
    if (f.print_json) std::cout << to_json(workload_view(result.data)).reveal() << std::endl;
    return 0;
  }

  if (!f.store_dir.empty())
    throw error(error_kind::usage, "--store-dir is for --local only (the store is the credentials Secret)")
        .about("--store-dir");
  if (f.connector.empty() == f.connector_file.empty())
    throw error(error_kind::usage, "pass exactly one of --connector (a Secret) or --connector-file (a mounted file)")
        .about("--connector");
  kube_client client(find_kube_config(f.kubeconfig));
  opts.who.namespace_name = resolve_namespace(f.namespace_name, client.config().namespace_name);
  validate_tenant(opts.who);
  validate_name_prefix(opts.name_prefix);
  const std::string secret_name = f.secret_name.empty() ? "vc-db-" + f.tenant : f.secret_name;
  if (!is_dns1123_subdomain(secret_name)) {
    // Quoted cut short: one readable line, never a long value echoed back whole.
    const std::string shown = f.secret_name.empty()     ? std::string("vc-db-<tenant>")
                              : secret_name.size() > 63 ? secret_name.substr(0, 40) + "..."
                                                        : secret_name;
    throw error(error_kind::usage,
                "the credentials Secret name \"" + shown + "\" is not a valid Kubernetes name; pass --secret-name")
        .about("--secret-name");
  }

  connector_data raw = f.connector_file.empty()
                           ? fetch_connector(client, f.connector, opts.who.namespace_name, deadline)
                           : read_connector_path(f.connector_file);
  const connector conn = parse_connector(std::move(raw));
  if (!conn.server.ca_pem.empty() && opts.ca_file.empty() && conn.server.type == engine_type::postgres)
    log::warn("the dataSource names no sslrootcert: pass --ca-file with the path where the workload mounts caCert");

  if (!f.output_dir.empty()) refuse_unsafe_directory(f.output_dir);
  const tenant_names names = derive_names(opts.who, opts.name_prefix);
  std::map<std::string, std::string> labels{{"app.kubernetes.io/managed-by", "tenantdb"},
                                            {"tenantdb.io/database", names.database}};
  auto store = make_secret_store(client, opts.who.namespace_name, secret_name, labels);
  // A credentials Secret that is not tenantdb's (e.g. a ServiceAccount token put in its
  // place) is refused before any database is touched; provisioning checks every read again.
  retry_until(deadline, "read credentials secret " + opts.who.namespace_name + "/" + secret_name,
              [&] { (void)store->load(); });
  const auto result = provision(conn, *store, opts);
  if (opts.fault) opts.fault(provision_fault_points::provisioned);
  if (!f.output_dir.empty()) {
    // Rewrite the files only if they differ: a second run changes nothing it need not.
    const auto view = workload_view(result.data);
    if (!same_data(read_directory(f.output_dir), view)) publish_directory(f.output_dir, view, dir_opts);
  }
  log::info("tenant ready", {{"database", result.names.database},
                             {"user", parse_record(result.data).user},
                             {"secret", opts.who.namespace_name + "/" + secret_name}});
  if (f.print_json) std::cout << to_json(workload_view(result.data)).reveal() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  tenantdb::log::set_component("init");
  // Before anything holds a password: no core dumps, no /proc/PID/mem for others.
  tenantdb::harden_process();
  flags f;
  CLI::App app{"tenantdb-init: gives a tenant its own database, user and credentials on a shared server"};
  app.set_version_flag("--version", tenantdb::version());
  app.add_option("--tenant", f.tenant, "Tenant name (e.g. the vCluster's name)")->envname("TENANTDB_TENANT");
  app.add_option("--namespace", f.namespace_name, "Tenant namespace (default: $POD_NAMESPACE, the pod's own)");
  app.add_option("--name-prefix", f.name_prefix, "Prefix of database and user names")->capture_default_str();
  app.add_option("--connector", f.connector, "Connector Secret as NAME or NAMESPACE/NAME, read through the API");
  app.add_option("--connector-file", f.connector_file, "Connector as a mounted Secret directory or a YAML/JSON file");
  app.add_option("--secret-name", f.secret_name, "Credentials Secret name (default: vc-db-<tenant>)");
  app.add_option("--output-dir", f.output_dir, "Also write the credentials as files into this directory");
  app.add_option("--ca-file", f.ca_file, "Path of caCert as the workload sees it (default: <output-dir>/caCert)");
  app.add_option("--file-mode", f.file_mode, "Mode of the credential files")->capture_default_str();
  app.add_option("--kubeconfig", f.kubeconfig,
                 "Kubeconfig to use outside a cluster (default: $KUBECONFIG, else in-cluster)");
  app.add_option("--strategy", f.strategy, "Rotation strategy the accounts are made for: dual or in-place")
      ->capture_default_str();
  app.add_option("--password-length", f.password_length, "Password length (16-80)")->capture_default_str();
  app.add_option("--timeout", f.timeout, "Give up on an unreachable database or API after this long")
      ->capture_default_str();
  app.add_option("--log-level", f.log_level, "debug, info, warn or error")->capture_default_str();
  app.add_flag("--local", f.local,
               "No Kubernetes: --connector-file in, --store-dir (default: --output-dir) is the credential store");
  app.add_option(
      "--store-dir", f.store_dir,
      "With --local: the credential store, apart from --output-dir, which then gets only the workload's keys");
  app.add_flag("--print-json", f.print_json, "Print the credentials as JSON on stdout");
  app.add_flag("--adopt-existing", f.adopt_existing,
               "Take over an existing database or account with the tenant's names that has no ownership record "
               "(never one recorded for another owner)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return tenantdb::usage_error(e.what());
  }
  return tenantdb::run_main([&] { return run(f); });
}
