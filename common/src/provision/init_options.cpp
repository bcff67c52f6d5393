#include "tenantdb/init_options.hpp"

#include <cstdlib>

#include "base/cli.hpp"

#include "tenantdb/duration.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/fault.hpp"
#include "tenantdb/limits.hpp"
#include "tenantdb/naming.hpp"
#include "tenantdb/password.hpp"

namespace tenantdb {
namespace {

// The flags as written, defaults filled in; checked by to_options.
struct flags {
  std::string tenant;
  std::string namespace_name;
  std::string name_prefix{default_name_prefix};
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
  // Per-tenant limits: empty keeps the connector's.
  std::string max_connections;
  std::string statement_timeout;
  std::string idle_in_transaction_timeout;
  std::size_t password_length = 32;
  bool local = false;
  bool print_json = false;
  bool print_names = false;
  bool adopt_existing = false;
  bool list = false;
  bool deprovision = false;
  bool dry_run = false;
  bool sweep = false;
  std::string grace;
  std::string attach_database;
  std::string policy;
  std::string output;
};

void add_flags(CLI::App& app, flags& f) {
  app.set_version_flag("--version", version());
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
  app.add_option("--max-connections", f.max_connections,
                 "Sessions per login account, or 0/none for no limit (default: the connector's maxConnections, "
                 "else 20)");
  app.add_option("--statement-timeout", f.statement_timeout,
                 "PostgreSQL: longest statement, e.g. 30s, or 0/none (default: the connector's statementTimeout, "
                 "else 5m)");
  app.add_option("--idle-in-transaction-timeout", f.idle_in_transaction_timeout,
                 "PostgreSQL: end a session idle in a transaction this long, or 0/none (default: the connector's "
                 "idleInTransactionTimeout, else 1m)");
  app.add_flag("--local", f.local,
               "No Kubernetes: --connector-file in, --store-dir (default: --output-dir) is the credential store");
  app.add_option(
      "--store-dir", f.store_dir,
      "With --local: the credential store, apart from --output-dir, which then gets only the workload's keys");
  app.add_flag("--print-json", f.print_json, "Print the credentials as JSON on stdout");
  app.add_flag("--print-names", f.print_names,
               "Print the database and account names the tenant gets (JSON) and exit; touches nothing");
  app.add_flag("--list", f.list,
               "Print every tenant on the connector's server (from the ownership records) and exit; read-only");
  app.add_option("--output", f.output, "With --list: table (default) or json");
  app.add_flag("--deprovision", f.deprovision,
               "Deprovision the tenant with its deletion policy: retain (logins revoked, data kept) or delete");
  app.add_option("--policy", f.policy,
                 "With --deprovision: retain or delete (default: the credentials Secret's annotation "
                 "tenantdb.io/deletion-policy, else the connector's deletionPolicy, else retain)");
  app.add_flag("--sweep", f.sweep,
               "Orphan sweep: apply the deletion policy of every tenant whose credentials Secret has been gone "
               "(404) for longer than --grace; through the API only");
  app.add_option("--grace", f.grace, "With --sweep (required): how long an owner must be gone, e.g. 24h");
  app.add_flag("--dry-run", f.dry_run,
               "Print the plan (the SQL statements and credential writes it would make, passwords masked) and change "
               "nothing; also with --deprovision and --sweep");
  app.add_option("--attach-database", f.attach_database,
                 "Use this existing tenantdb database (and its accounts) instead of the derived names, taking it "
                 "over from a retained or orphaned owner; never from a live one");
  app.add_flag("--adopt-existing", f.adopt_existing,
               "Take over an existing database or account with the tenant's names that has no ownership record "
               "(never one recorded for another owner)");
}

// --sweep: every tenant on the server, through the Kubernetes API only.
init_options sweep_options_from(const flags& f, init_options& out) {
  out.mode = init_mode::sweep;
  if (f.print_names)
    throw error(error_kind::usage, "--print-names is a mode of its own: drop --sweep").about("--print-names");
  if (f.local)
    throw error(error_kind::usage,
                "--sweep asks the Kubernetes API whether each tenant's credentials Secret still exists; --local has "
                "no API: drop --local, or deprovision local tenants one by one with --deprovision")
        .about("--local");
  if (!f.tenant.empty())
    throw error(error_kind::usage,
                "--sweep acts on every tenant on the server: drop --tenant (and $TENANTDB_TENANT); for one tenant use "
                "--deprovision")
        .about("--tenant");
  if (!f.secret_name.empty())
    throw error(error_kind::usage, "--sweep reads each tenant's Secret from its ownership records: drop --secret-name")
        .about("--secret-name");
  if (!f.policy.empty())
    throw error(error_kind::usage,
                "--policy is for --deprovision only: the sweep applies each tenant's own policy (its Secret's "
                "annotation as recorded, else the connector's deletionPolicy, else retain)")
        .about("--policy");
  if (!f.output.empty()) throw error(error_kind::usage, "--output is for --list only").about("--output");
  if (!f.store_dir.empty() || !f.output_dir.empty())
    throw error(error_kind::usage, "--sweep writes no credential files: drop --output-dir/--store-dir")
        .about(f.store_dir.empty() ? "--output-dir" : "--store-dir");
  if (f.grace.empty())
    throw error(error_kind::usage,
                "--sweep needs --grace (e.g. 24h): how long an owner must be gone before its policy is applied")
        .about("--grace");
  out.grace = parse_duration(f.grace, "--grace");
  if (out.grace <= std::chrono::milliseconds::zero())
    throw error(error_kind::usage, "--grace must be longer than 0 (an owner must be seen gone twice)").about("--grace");
  if (f.connector.empty() == f.connector_file.empty())
    throw error(error_kind::usage, "pass exactly one of --connector (a Secret) or --connector-file (a mounted file)")
        .about("--connector");
  return out;
}

init_options to_options(const flags& f) {
  init_options out;
  out.log_level = log::parse_level(f.log_level);
  out.timeout = parse_duration(f.timeout, "--timeout");

  provision_options& opts = out.provision;
  opts.who.name = f.tenant;
  opts.name_prefix = f.name_prefix;
  opts.strategy = parse_strategy(f.strategy);
  opts.password_length = f.password_length;
  validate_password_length(opts.password_length);
  opts.adopt_existing = f.adopt_existing;
  if (!f.max_connections.empty())
    opts.limits.max_connections = parse_max_connections(f.max_connections, "--max-connections", error_kind::usage);
  if (!f.statement_timeout.empty())
    opts.limits.statement_timeout = parse_limit_timeout(f.statement_timeout, "--statement-timeout", error_kind::usage);
  if (!f.idle_in_transaction_timeout.empty())
    opts.limits.idle_in_transaction_timeout =
        parse_limit_timeout(f.idle_in_transaction_timeout, "--idle-in-transaction-timeout", error_kind::usage);
  out.files.file_mode = parse_file_mode(f.file_mode);
  opts.fault = crash_at_hook(crash_at_from_env());
  out.files.fault = opts.fault;
  opts.ca_file = default_ca_file(f.ca_file, f.output_dir);

  out.namespace_name = f.namespace_name;
  out.local = f.local;
  out.connector = f.connector;
  out.connector_file = f.connector_file;
  out.output_dir = f.output_dir;
  out.store_dir = f.store_dir;
  out.kubeconfig = f.kubeconfig;
  out.print_json = f.print_json;
  out.print_names = f.print_names;

  out.dry_run = f.dry_run;
  if (f.list && f.deprovision)
    throw error(error_kind::usage, "pass one of --list or --deprovision, not both").about("--deprovision");
  if (f.sweep && (f.list || f.deprovision))
    throw error(error_kind::usage, "--sweep is a mode of its own: drop --list/--deprovision").about("--sweep");
  if (!f.grace.empty() && !f.sweep) throw error(error_kind::usage, "--grace is for --sweep only").about("--grace");
  if (!f.attach_database.empty()) {
    if (f.list || f.sweep || f.print_names)
      throw error(error_kind::usage,
                  "--attach-database is for a normal init run or --deprovision of a tenant that attached a database")
          .about("--attach-database");
    // tenantdb's own names are [a-z][a-z0-9_]*; nothing else was ever made by it.
    const std::string& d = f.attach_database;
    bool ok = d.size() <= 63 && d[0] >= 'a' && d[0] <= 'z';
    for (const char c : d) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
    if (!ok)
      throw error(error_kind::usage,
                  "--attach-database must name a tenantdb database: [a-z][a-z0-9_]*, at most 63 characters")
          .about("--attach-database");
    out.provision.attach_database = d;
  }
  if (f.sweep) return sweep_options_from(f, out);
  if ((f.list || f.deprovision) && f.print_names)
    throw error(error_kind::usage, "--print-names is a mode of its own: drop --list/--deprovision")
        .about("--print-names");
  if (!f.output.empty() && !f.list) throw error(error_kind::usage, "--output is for --list only").about("--output");
  if (!f.policy.empty() && !f.deprovision)
    throw error(error_kind::usage, "--policy is for --deprovision only").about("--policy");
  if (f.dry_run && (f.list || f.print_names))
    throw error(error_kind::usage, std::string("--dry-run plans a provisioning or --deprovision run; ") +
                                       (f.list ? "--list" : "--print-names") + " changes nothing anyway")
        .about("--dry-run");
  out.provision.dry_run = f.dry_run && !f.deprovision;

  if (f.list || f.deprovision) {
    out.mode = f.list ? init_mode::list : init_mode::deprovision;
    if (f.list) {
      if (!f.output.empty() && f.output != "table" && f.output != "json")
        throw error(error_kind::usage, "--output must be table or json").about("--output");
      if (!f.output.empty()) out.output = f.output;
    } else {
      if (!f.policy.empty()) {
        const auto policy = parse_deletion_policy(f.policy);
        if (!policy) throw error(error_kind::usage, "--policy must be retain or delete").about("--policy");
        out.policy = *policy;
      }
    }
    if (f.local) {
      if (f.connector_file.empty())
        throw error(error_kind::usage, "--local needs --connector-file").about("--connector-file");
      if (!f.connector.empty() || !f.secret_name.empty())
        throw error(error_kind::usage, "--local does not use the Kubernetes API: drop --connector and --secret-name")
            .about("--local");
      if (f.deprovision) {
        // The records name the store the tenant was provisioned with.
        if (f.store_dir.empty() && f.output_dir.empty())
          throw error(error_kind::usage,
                      "--local --deprovision needs the tenant's store: --store-dir, else --output-dir, as provisioned")
              .about("--store-dir");
        resolve_tenant(out, "default");
      }
      return out;
    }
    if (!f.store_dir.empty())
      throw error(error_kind::usage, "--store-dir is for --local only (the store is the credentials Secret)")
          .about("--store-dir");
    if (f.connector.empty() == f.connector_file.empty())
      throw error(error_kind::usage, "pass exactly one of --connector (a Secret) or --connector-file (a mounted file)")
          .about("--connector");
    if (f.deprovision && f.tenant.empty())
      throw error(error_kind::usage, "--deprovision needs --tenant").about("--tenant");
    out.secret_name = f.secret_name;
    return out;
  }

  if (f.print_names) {
    // Names only: --tenant, --namespace (or $POD_NAMESPACE) and --name-prefix decide them.
    if (f.namespace_name.empty() && std::getenv("POD_NAMESPACE") == nullptr)
      throw error(error_kind::usage, "--print-names needs --namespace (no API is asked)").about("--namespace");
    resolve_tenant(out, "");
    return out;
  }

  if (f.local) {
    // No Kubernetes at all: connector from a file, the directory is the store.
    if (f.connector_file.empty())
      throw error(error_kind::usage, "--local needs --connector-file").about("--connector-file");
    if (f.output_dir.empty()) throw error(error_kind::usage, "--local needs --output-dir").about("--output-dir");
    if (!f.connector.empty() || !f.secret_name.empty())
      throw error(error_kind::usage, "--local does not use the Kubernetes API: drop --connector and --secret-name")
          .about("--local");
    resolve_tenant(out, "default");
    // With --store-dir the store is tenantdb's own and --output-dir gets only the
    // workload's keys; without it --output-dir is the store (standby included).
    if (!f.store_dir.empty()) check_store_apart(f.store_dir, f.output_dir);
    return out;
  }

  if (!f.store_dir.empty())
    throw error(error_kind::usage, "--store-dir is for --local only (the store is the credentials Secret)")
        .about("--store-dir");
  if (f.connector.empty() == f.connector_file.empty())
    throw error(error_kind::usage, "pass exactly one of --connector (a Secret) or --connector-file (a mounted file)")
        .about("--connector");
  out.secret_name = f.secret_name;
  return out;
}

}  // namespace

command_line<init_options> parse_init_command_line(int argc, const char* const* argv) {
  flags f;
  CLI::App app{"tenantdb-init: gives a tenant its own database, user and credentials on a shared server"};
  add_flags(app, f);
  return detail::parse_command_line(app, argc, argv, [&] { return to_options(f); });
}

void resolve_tenant(init_options& options, const std::string& default_namespace) {
  tenant& who = options.provision.who;
  who.namespace_name = resolve_namespace(options.namespace_name, default_namespace);
  validate_tenant(who);
  validate_name_prefix(options.provision.name_prefix);
  if (options.local) return;
  const bool defaulted = options.secret_name.empty();
  if (defaulted) options.secret_name = default_secret_name(who.name);
  const std::string& name = options.secret_name;
  if (is_dns1123_subdomain(name)) return;
  // Quoted cut short: one readable line, never a long value echoed back whole.
  const std::string shown = defaulted          ? std::string("vc-db-<tenant>")
                            : name.size() > 63 ? name.substr(0, 40) + "..."
                                               : name;
  throw error(error_kind::usage,
              "the credentials Secret name \"" + shown + "\" is not a valid Kubernetes name; pass --secret-name")
      .about("--secret-name");
}

}  // namespace tenantdb
