#pragma once
/// \file
/// The sidecar's agent: keeps the workload's credential files in step with the store,
/// rotates the password on a schedule (coordinating with the pod's other replicas
/// through the store), checks that the credentials log in, and serves /healthz,
/// /readyz, /metrics and a local admin endpoint.
///
/// Threading: one boost::asio::io_context run by one thread. Periodic jobs are
/// self-re-arming steady_timers with jitter; signals arrive through a signal_set; the
/// HTTP servers are asynchronous on the same context. Calls to the Kubernetes API
/// (libcurl) and to the database (verify_login, the rotator) block inside a timer
/// handler; each has its own timeouts (API: kube_config's connect/request timeouts;
/// database: rotation_options::timeouts), so the loop is held for at most that long.
/// While a handler blocks, HTTP requests wait, so liveness probes should allow for the
/// longest of those timeouts. A rotation step therefore always completes before a
/// SIGTERM is acted on.
///
/// The local database proxy (agent_options::proxy) is the exception: it serves on its own
/// thread and io_context, so none of the above ever holds up proxied traffic. The loop
/// hands it every store content it learns (each load, and each write of the rotator as
/// it happens) and never waits on it, except to stop it on SIGTERM after the HTTP
/// servers.
///
/// Signals: SIGTERM and SIGINT stop the timers, the listeners and the proxy (closing its
/// connections), the io_context ends and run() returns 0 (an interrupted rotation is
/// completed or rolled back by the next start's advance(), like after a crash). SIGHUP
/// runs a sync at once.
///
/// Test hook: with agent_options::crash_at set (the binary reads
/// $TENANTDB_TEST_CRASH_AT), the rotator's fault hook kills the process with SIGKILL
/// when it reaches that fault point (see tenantdb::fault_points and crash_at_hook in
/// tenantdb/fault.hpp), so tests can crash the sidecar between any two protocol steps.
/// With agent_options::pause_at set ($TENANTDB_TEST_PAUSE_AT=POINT:MILLISECONDS) the rotator
/// sleeps that long at the fault point instead, so tests can restart the database server
/// inside a rotation.
///
/// Files first: a rotation step (claim, retire, recovery) runs only while the workload's
/// files hold what the store holds. While the output directory cannot be written (full,
/// read-only) the sidecar reports not ready and counts errors_total{source="files"}, but
/// never retires the password the files still hold; it resumes once they are published.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tenantdb/credentials.hpp"
#include "tenantdb/events.hpp"
#include "tenantdb/formats.hpp"
#include "tenantdb/rotation.hpp"
#include "tenantdb/store.hpp"

namespace tenantdb {

/// An address to listen on. Disabled when `host` is empty.
struct listen_address {
  std::string host;  ///< an IPv4 or IPv6 literal
  std::uint16_t port = 0;
  bool enabled() const noexcept { return !host.empty(); }
  /// "host:port" ("[v6]:port"), for messages.
  std::string to_string() const;
};

/// Parses "HOST:PORT", "[IPV6]:PORT", ":PORT" (all interfaces) or "off". HOST must be an
/// IP literal (no name lookups). Throws tenantdb::error (usage, about `flag`).
listen_address parse_listen_address(std::string_view text, std::string_view flag);

/// True if `address` is a loopback address (127.0.0.0/8, ::1).
bool is_loopback(const listen_address& address);

/// Parses a signal given as "HUP", "SIGHUP" or a number. Throws tenantdb::error (usage,
/// about "--reload-signal").
int parse_signal(std::string_view text);

/// How the workload is told that its files changed.
struct reload_options {
  /// Signal sent to every process whose /proc/PID/comm equals `process_name` (needs
  /// shareProcessNamespace in the pod). 0: none.
  int signal = 0;
  std::string process_name;
  /// A program run with posix_spawn (no shell): an absolute path, then its arguments.
  /// Its environment holds only PATH, HOME and TENANTDB_OUTPUT_DIR, never a secret;
  /// its output goes to /dev/null and its exit status is logged.
  std::vector<std::string> command;
  /// The command is killed (SIGKILL) when it runs longer than this.
  std::chrono::milliseconds command_timeout{30'000};
};

/// The local database proxy (issue 10): the --proxy-* flags, checked. The proxy is off
/// unless `listen` is enabled.
struct proxy_settings {
  /// --proxy-listen: an IP literal; port 0 stands for the engine's usual port (5432 or
  /// 3306), chosen once the store's type is known.
  listen_address listen;
  /// --proxy-password-file's content: the password clients must give; empty: none, which
  /// the flags allow on a loopback address only.
  secret local_password;
  /// --proxy-max-connections: client connections served at once.
  std::size_t max_connections = 512;
  /// --proxy-connect-timeout: upstream TCP connect, TLS and login.
  std::chrono::milliseconds connect_timeout{10'000};
  bool enabled() const noexcept { return listen.enabled(); }
};

/// Everything the agent is told at start-up; validated by the caller.
struct agent_options {
  /// Where the workload reads its files.
  std::filesystem::path output_dir;
  directory_options files;
  /// Extra files published with the keys, in the same generation.
  std::vector<credential_format> formats;
  /// Where the workload finds caCert (my.cnf's ssl-ca, DATABASE_URL's sslrootcert).
  std::string ca_file;
  /// Scheduled rotation period; std::nullopt: only on request.
  std::optional<std::chrono::seconds> rotate_every = std::chrono::hours(24);
  /// Per-tenant spread of the schedule, a fraction of rotate_every.
  double jitter = 0.1;
  rotation_options rotation;
  std::chrono::milliseconds sync_interval{5'000};
  std::chrono::milliseconds check_interval{60'000};
  /// /healthz, /readyz, /metrics.
  listen_address listen{"0.0.0.0", 8080};
  /// POST /rotate; must be a loopback address.
  listen_address admin_listen{"127.0.0.1", 8081};
  /// The local database proxy; off by default.
  proxy_settings proxy;
  reload_options reload;
  /// Errors of the store count as this errors_total source ("api" for the Secret,
  /// "files" for a directory store).
  std::string store_source = "api";
  /// Test hook: the fault point at which to SIGKILL this process ("" for none).
  std::string crash_at;
  /// Test hook: "POINT:MILLISECONDS", sleep that long at the fault point ("" for none).
  std::string pause_at;
  /// Wall clock, injectable for tests.
  std::function<std::chrono::system_clock::time_point()> now = [] { return std::chrono::system_clock::now(); };
  /// Seed of the timer jitter; 0 draws one from std::random_device.
  std::uint64_t seed = 0;
  /// Kubernetes Events (Rotated, Retired, Failed); null: none. Not owned; outlives the
  /// agent. Its failures are tenantdb_events_failed_total.
  event_recorder* events = nullptr;
  /// Failed Events for the same reason are sent at most this often.
  std::chrono::milliseconds failed_event_interval{std::chrono::minutes(10)};
};

/// The sidecar's event loop.
class agent {
public:
  /// Binds the listeners at once; throws tenantdb::error (usage, about "--listen" or
  /// "--admin-listen") if an address cannot be bound. Nothing else happens until run().
  agent(credential_store& store, agent_options options);
  ~agent();
  agent(const agent&) = delete;
  agent& operator=(const agent&) = delete;

  /// Ports actually bound (0 if disabled), for tests that listen on port 0.
  std::uint16_t port() const;
  std::uint16_t admin_port() const;

  /// Runs the loop on the calling thread until SIGTERM/SIGINT or stop(); returns the
  /// process exit code (0).
  int run();

  /// Asks the loop to stop as SIGTERM does; safe to call from any thread.
  void stop();

  /// Asks the loop to sync now, as SIGHUP does (without its log line); safe to call from
  /// any thread. The Secret's watch calls it when the Secret changed.
  void sync_now();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// The fault hook behind agent_options::pause_at: `spec` is "POINT:MILLISECONDS" (a
/// fault point, then 1 to 600000); the hook logs and sleeps that long when POINT is
/// reached. An empty `spec` gives a hook that does nothing. Throws tenantdb::error
/// (usage, about "TENANTDB_TEST_PAUSE_AT") on a malformed spec.
fault_hook pause_at_hook(std::string_view spec);

}  // namespace tenantdb
