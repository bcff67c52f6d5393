#pragma once
/// \file
/// What both binaries do around their real work: error triage into exit codes, finding
/// the Kubernetes API, and reading the connector.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "tenantdb/connector.hpp"
#include "tenantdb/kube.hpp"

namespace tenantdb {

/// First thing in main: no core dump and no /proc/PID/mem or ptrace for other processes
/// of the same user (PR_SET_DUMPABLE 0, RLIMIT_CORE 0): the process holds the admin and
/// tenant passwords in memory. Logs one warning line if the kernel refuses either.
void harden_process() noexcept;

/// Runs `body` and turns what it throws into one error log line and a documented exit
/// code. Returns the process exit code.
int run_main(const std::function<int()>& body);

/// Logs a command-line parse error (CLI11's message, cut short: it quotes the offending
/// value whole) as one error line and returns the usage exit code, 2.
int usage_error(std::string message);

/// `--kubeconfig` (or $KUBECONFIG) if given, else the in-cluster configuration.
kube_config find_kube_config(const std::string& kubeconfig_path);

/// The namespace to work in: `flag`, else $POD_NAMESPACE, else `fallback`.
std::string resolve_namespace(const std::string& flag, const std::string& fallback);

/// Reads the connector from the API: `reference` is NAME or NAMESPACE/NAME, the
/// namespace defaulting to `default_namespace`. Transient API failures are retried
/// until `deadline`.
connector_data fetch_connector(kube_client& client, const std::string& reference, const std::string& default_namespace,
                               std::chrono::steady_clock::time_point deadline);

/// What a binary's command line asks for: run with `options`, or, when it holds none, end
/// the process at once with `exit_code` (0: --help or --version was printed on stdout;
/// 2: a command line that could not be parsed, already logged by usage_error).
template <typename Options>
struct command_line {
  std::optional<Options> options;
  int exit_code = 0;
};

/// The credentials Secret of `tenant` when --secret-name is not given: "vc-db-<tenant>".
std::string default_secret_name(std::string_view tenant);

/// Where the workload finds caCert: `ca_file` (--ca-file) if given, else caCert in
/// `output_dir`, else "" (no --output-dir: the workload's path is unknown).
std::string default_ca_file(const std::string& ca_file, const std::string& output_dir);

/// The binaries' version string.
const char* version() noexcept;

}  // namespace tenantdb
