#pragma once
/// \file
/// tenantdb-sidecar's command line: its flags and environment, parsed and checked into
/// the options the sidecar runs with, before any file is read or network call made.

#include <filesystem>
#include <string>

#include "tenantdb/agent.hpp"
#include "tenantdb/app.hpp"
#include "tenantdb/log.hpp"

namespace tenantdb {

/// Everything tenantdb-sidecar's flags say, checked.
struct sidecar_options {
  /// --log-level.
  log::level log_level = log::level::info;
  /// What the agent runs with: --output-dir, --formats, --ca-file (default
  /// <output-dir>/caCert), --file-mode, --rotate-every, --jitter, --grace, --strategy,
  /// --password-length, --sync-interval, --check-interval, --listen, --admin-listen, the
  /// --reload-* flags, --pod-name (default $POD_NAME, else the host name) as the
  /// rotation's holder, and the test hooks $TENANTDB_TEST_CRASH_AT and
  /// $TENANTDB_TEST_PAUSE_AT. store_source is "files" with --local.
  agent_options agent;
  /// --local: the store is `store_dir`, a directory written by tenantdb-init --local.
  bool local = false;
  std::filesystem::path store_dir;
  /// Without --local: the credentials Secret (--secret-name, default vc-db-<tenant>),
  /// the --namespace as given (empty: resolve_namespace decides) and --kubeconfig.
  std::string secret_name;
  std::string namespace_name;
  std::string kubeconfig;
};

/// Parses tenantdb-sidecar's argv (argv[0] the program) and environment ($TENANTDB_TENANT,
/// $POD_NAME, $TENANTDB_TEST_CRASH_AT, $TENANTDB_TEST_PAUSE_AT) and checks every value
/// in the order the flags are documented. --help and --version print to stdout and a
/// command line that cannot be parsed is logged as one line (see usage_error): both give
/// no options and the exit code. A value that fails a check throws tenantdb::error (usage
/// unless noted by the parser of that value, about the flag). Reads no file except to
/// check that the --reload-command program is executable and, with --local, that
/// --store-dir is apart from --output-dir.
command_line<sidecar_options> parse_sidecar_command_line(int argc, const char* const* argv);

}  // namespace tenantdb
