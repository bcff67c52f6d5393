#pragma once
/// \file
/// tenantdb-init's command line: its flags and environment, parsed and checked into the
/// options the init runs with, before any database or Secret is touched.

#include <chrono>
#include <string>

#include "tenantdb/app.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/log.hpp"
#include "tenantdb/provision.hpp"

namespace tenantdb {

/// What tenantdb-init is asked to do.
enum class init_mode {
  provision,    ///< the default: provision the tenant
  list,         ///< --list: the inventory of every tenant on the server (read-only)
  deprovision,  ///< --deprovision: retain or delete one tenant (lifecycle.hpp)
  sweep,        ///< --sweep: apply each orphaned tenant's policy after --grace (lifecycle.hpp)
};

/// Everything tenantdb-init's flags say, checked.
struct init_options {
  init_mode mode = init_mode::provision;
  /// --output with --list: "table" (default) or "json".
  std::string output = "table";
  /// --policy with --deprovision, normalised; empty: the Secret's annotation, the
  /// connector's deletionPolicy, else retain.
  std::string policy;
  /// --dry-run: print the plan, change nothing (a provisioning run: also
  /// provision.dry_run; also with --deprovision and --sweep).
  bool dry_run = false;
  /// --grace with --sweep: how long an owner must be gone before its policy applies.
  std::chrono::milliseconds grace{0};
  /// --log-level.
  log::level log_level = log::level::info;
  /// --timeout: how long unreachable databases and API servers are retried.
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  /// What provision() runs with: the tenant (--tenant, $TENANTDB_TENANT; its namespace
  /// once resolve_tenant has run), --name-prefix, --strategy, --password-length,
  /// --adopt-existing, --max-connections, --statement-timeout,
  /// --idle-in-transaction-timeout, --ca-file (default <output-dir>/caCert) and the
  /// $TENANTDB_TEST_CRASH_AT hook. The deadline is the caller's (now + timeout).
  provision_options provision;
  /// How the credential files are written: --file-mode and the same crash hook.
  directory_options files;
  /// --namespace as given (empty: resolve_tenant decides).
  std::string namespace_name;
  /// --local: no Kubernetes; the connector is connector_file and the store is store_dir,
  /// else output_dir.
  bool local = false;
  std::string connector;       ///< --connector, NAME or NAMESPACE/NAME
  std::string connector_file;  ///< --connector-file
  /// Without --local: the credentials Secret, --secret-name as given until resolve_tenant
  /// fills in the default (vc-db-<tenant>) and checks it.
  std::string secret_name;
  std::string output_dir;  ///< --output-dir ("" for none)
  std::string store_dir;   ///< --store-dir, with --local only
  std::string kubeconfig;  ///< --kubeconfig
  bool print_json = false;
  /// --print-names: print the tenant's derived names and exit; nothing is read or
  /// touched (no connector, no API, no database). The tenant is resolved at once.
  bool print_names = false;
};

/// Parses tenantdb-init's argv (argv[0] the program) and environment ($TENANTDB_TENANT,
/// $TENANTDB_TEST_CRASH_AT) and checks every value that needs no Kubernetes API. --help
/// and --version print to stdout and a command line that cannot be parsed is logged as
/// one line (see usage_error): both give no options and the exit code. A value that fails
/// a check throws tenantdb::error (usage unless noted by the parser of that value, about
/// the flag). With --local the tenant is resolved at once (resolve_tenant with the
/// namespace "default") and --store-dir is checked to be apart from --output-dir.
command_line<init_options> parse_init_command_line(int argc, const char* const* argv);

/// Settles the tenant once the namespace is known: --namespace, else $POD_NAMESPACE,
/// else `default_namespace` (the kubeconfig's or service account's). Validates the tenant
/// and the name prefix and, without --local, the credentials Secret name. Throws
/// tenantdb::error (usage, about the flag) like parse_init_command_line.
void resolve_tenant(init_options& options, const std::string& default_namespace);

}  // namespace tenantdb
