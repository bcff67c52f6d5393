#pragma once
/// \file
/// tenantdb-sidecar's command line: its flags and environment, parsed and checked into
/// the options the sidecar runs with, before any file is read or network call made.

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>

#include "tenantdb/agent.hpp"
#include "tenantdb/app.hpp"
#include "tenantdb/log.hpp"
#include "tenantdb/secret.hpp"

namespace tenantdb {

/// Everything tenantdb-sidecar's flags say, checked.
struct sidecar_options {
  /// --log-level.
  log::level log_level = log::level::info;
  /// What the agent runs with: --output-dir, --formats, --ca-file (default
  /// <output-dir>/caCert), --file-mode, --rotate-every, --jitter, --grace,
  /// --retire-when-drained, --strategy,
  /// --password-length, --sync-interval, --check-interval, --listen, --admin-listen, the
  /// --reload-* flags, --pod-name (default $POD_NAME, else the host name) as the
  /// rotation's holder, the --proxy-* flags, and the test hooks $TENANTDB_TEST_CRASH_AT
  /// and $TENANTDB_TEST_PAUSE_AT. store_source is "files" with --local.
  agent_options agent;
  /// --local: the store is `store_dir`, a directory written by tenantdb-init --local.
  bool local = false;
  std::filesystem::path store_dir;
  /// Without --local: the credentials Secret (--secret-name, default vc-db-<tenant>),
  /// the --namespace as given (empty: resolve_namespace decides) and --kubeconfig.
  std::string secret_name;
  std::string namespace_name;
  std::string kubeconfig;
  /// --watch (on|off, default on): without --local, follow the Secret with a watch and
  /// read it from the watch's copy; off: GET it every --sync-interval.
  bool watch = true;
  /// --resync-interval: while watching, a GET of the Secret this often all the same.
  std::chrono::milliseconds resync_interval{std::chrono::hours(1)};
};

/// Parses --proxy-listen: "off", or ADDRESS[:PORT] with ADDRESS an IP literal (IPv6 in
/// brackets: "[::1]:5432", "[::1]"). Without PORT the port is 0, which the proxy takes as
/// the engine's usual port once the store's type is known. Throws tenantdb::error (usage,
/// about "--proxy-listen").
listen_address parse_proxy_listen(std::string_view text);

/// Reads --proxy-password-file: a regular file (a Secret volume's symlink is followed)
/// that others cannot read (group may: fsGroup makes Secret volumes 0440), one line of at
/// least 16 and at most 1024 bytes without control characters; one trailing newline
/// ("\n" or "\r\n") is stripped. Throws tenantdb::error (usage, about
/// "--proxy-password-file") naming the path and what is wrong, never the content.
secret read_proxy_password_file(const std::filesystem::path& path);

/// Parses tenantdb-sidecar's argv (argv[0] the program) and environment ($TENANTDB_TENANT,
/// $POD_NAME, $TENANTDB_TEST_CRASH_AT, $TENANTDB_TEST_PAUSE_AT) and checks every value
/// in the order the flags are documented. --help and --version print to stdout and a
/// command line that cannot be parsed is logged as one line (see usage_error): both give
/// no options and the exit code. A value that fails a check throws tenantdb::error (usage
/// unless noted by the parser of that value, about the flag). Reads no file except to
/// check that the --reload-command program is executable, with --local, that
/// --store-dir is apart from --output-dir, and --proxy-password-file (read whole, once).
command_line<sidecar_options> parse_sidecar_command_line(int argc, const char* const* argv);

}  // namespace tenantdb
