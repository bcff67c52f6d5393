#include "tenantdb/sidecar_options.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

// GCC 12 reports a false "potential null pointer dereference" inside Asio (Boost 1.74)
// once it is inlined here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/ip/address.hpp>
#pragma GCC diagnostic pop

#include "base/cli.hpp"
#include "base/small_file.hpp"
#include "base/unique_fd.hpp"

#include "tenantdb/credentials.hpp"
#include "tenantdb/duration.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/fault.hpp"
#include "tenantdb/formats.hpp"
#include "tenantdb/naming.hpp"
#include "tenantdb/password.hpp"
#include "tenantdb/provision.hpp"

namespace tenantdb {

namespace asio = boost::asio;
using boost::system::error_code;

std::string listen_address::to_string() const {
  if (!enabled()) return "off";
  const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

listen_address parse_listen_address(std::string_view text, std::string_view flag) {
  const auto bad = [&](const std::string& why) {
    return error(error_kind::usage, std::string(flag) +
                                        " must be HOST:PORT with an IP address, [IPV6]:PORT, :PORT or off" +
                                        (why.empty() ? std::string() : ": " + why))
        .about(std::string(flag));
  };
  if (text == "off") return {};
  std::string host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') throw bad("");
    host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) throw bad("no port");
    host = std::string(text.substr(0, colon));
    if (host.find(':') != std::string::npos) throw bad("put an IPv6 address in brackets");
    port_text = text.substr(colon + 1);
  }
  if (host.empty()) host = "0.0.0.0";
  error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) throw bad("\"" + host + "\" is not an IP address");
  unsigned long port = 0;
  const bool digits = !port_text.empty() && port_text.size() <= 5 &&
                      std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (digits) port = std::stoul(std::string(port_text));
  if (!digits || port > 65535) throw bad("the port must be a number from 0 to 65535");
  return listen_address{address.to_string(), static_cast<std::uint16_t>(port)};
}

bool is_loopback(const listen_address& address) {
  error_code ec;
  const auto a = asio::ip::make_address(address.host, ec);
  if (ec) return false;
  if (a.is_v4()) return a.to_v4().is_loopback();
  const auto v6 = a.to_v6();
  if (v6.is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, v6).is_loopback();
  return v6.is_loopback();
}

listen_address parse_proxy_listen(std::string_view text) {
  const auto bad = [](const std::string& why) {
    return error(error_kind::usage,
                 "--proxy-listen must be ADDRESS[:PORT] with an IP address (IPv6 in brackets, "
                 "e.g. 127.0.0.1:5432 or [::1]), or off: " +
                     why)
        .about("--proxy-listen");
  };
  if (text == "off") return {};
  std::string host;
  std::string_view port_text;
  bool has_port = false;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) throw bad("no closing bracket");
    host = std::string(text.substr(1, close - 1));
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') throw bad("only :PORT may follow the bracketed address");
      port_text = rest.substr(1);
      has_port = true;
    }
  } else {
    const auto colon = text.find(':');
    if (colon != std::string_view::npos && text.find(':', colon + 1) != std::string_view::npos)
      throw bad("put an IPv6 address in brackets");
    host = std::string(text.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = text.substr(colon + 1);
      has_port = true;
    }
  }
  if (host.empty()) throw bad("the address is missing");
  error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) throw bad("\"" + host + "\" is not an IP address");
  unsigned long port = 0;
  if (has_port) {
    const bool digits = !port_text.empty() && port_text.size() <= 5 &&
                        std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (digits) port = std::stoul(std::string(port_text));
    if (!digits || port < 1 || port > 65535) throw bad("the port must be a number from 1 to 65535");
  }
  return listen_address{address.to_string(), static_cast<std::uint16_t>(port)};
}

secret read_proxy_password_file(const std::filesystem::path& path) {
  constexpr std::size_t min_length = 16;
  constexpr std::size_t max_length = 1024;
  const auto refuse = [&](const std::string& why) {
    return error(error_kind::usage, "--proxy-password-file " + path.string() + " " + why)
        .about("--proxy-password-file");
  };
  // O_NONBLOCK: a FIFO put in its place must not hang the start; it is refused below.
  const unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) throw refuse(std::string("cannot be opened: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw refuse(std::string("cannot be read: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw refuse("is not a regular file");
  if ((st.st_mode & 0007) != 0)
    throw refuse("can be read or written by others (mode 0" + std::to_string((st.st_mode >> 6) & 7) +
                 std::to_string((st.st_mode >> 3) & 7) + std::to_string(st.st_mode & 7) +
                 "): give others no access, e.g. mode 0400 or 0440 (a Secret volume's defaultMode)");
  std::string content;
  if (const int rc = read_small_fd(fd.get(), max_length + 2, content); rc != 0)
    throw refuse(rc == EFBIG ? "is longer than " + std::to_string(max_length) + " bytes"
                             : std::string("cannot be read: ") + std::strerror(rc));
  secret value(std::move(content));  // wiped from here on, whatever is refused below
  std::string_view text = value.reveal();
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  if (std::any_of(text.begin(), text.end(), [](char c) { return c == '\n' || c == '\r'; }))
    throw refuse("must hold one line: the password");
  if (std::any_of(text.begin(), text.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) == 0x7f; }))
    throw refuse("holds a control character");
  if (text.size() < min_length)
    throw refuse("must hold a password of at least " + std::to_string(min_length) + " characters");
  if (text.size() > max_length) throw refuse("is longer than " + std::to_string(max_length) + " bytes");
  return secret(std::string(text));
}

int parse_signal(std::string_view text) {
  static const std::pair<const char*, int> names[] = {
      {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"USR1", SIGUSR1},   {"USR2", SIGUSR2},
      {"TERM", SIGTERM}, {"KILL", SIGKILL}, {"CONT", SIGCONT}, {"WINCH", SIGWINCH}, {"ALRM", SIGALRM},
  };
  std::string_view name = text;
  if (name.substr(0, 3) == "SIG") name.remove_prefix(3);
  for (const auto& [n, value] : names)
    if (name == n) return value;
  const bool digits = !text.empty() && text.size() <= 2 &&
                      std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (digits) {
    const int value = std::stoi(std::string(text));
    if (value >= 1 && value <= 64) return value;
  }
  throw error(error_kind::usage, "--reload-signal must be a signal name such as HUP or USR1, or a number from 1 to 64")
      .about("--reload-signal");
}

namespace {

// The flags as written, defaults filled in; checked by to_options.
struct flags {
  std::string tenant;
  std::string namespace_name;
  std::string secret_name;
  std::string kubeconfig;
  bool local = false;
  std::string store_dir;
  std::string output_dir;
  std::string formats;
  std::string rotate_every = "24h";
  double jitter = 0.1;
  std::string grace = "10m";
  std::string retire_when_drained = "0";
  std::string strategy = "dual";
  std::string sync_interval = "5s";
  std::string watch = "on";
  std::string resync_interval = "1h";
  std::string check_interval = "60s";
  std::string listen = "0.0.0.0:8080";
  std::string admin_listen = "127.0.0.1:8081";
  std::string reload_signal;
  std::string reload_process;
  std::vector<std::string> reload_command;
  std::string pod_name;
  std::string ca_file;
  std::string file_mode = "0440";
  std::size_t password_length = 32;
  std::string log_level = "info";
  std::string proxy_listen = "off";
  std::string proxy_password_file;
  std::size_t proxy_max_connections = 512;
  std::string proxy_connect_timeout = "10s";
};

[[noreturn]] void usage(const std::string& flag, const std::string& what) {
  throw error(error_kind::usage, flag + " " + what).about(flag);
}

// "0" is allowed where the flag says so; parse_duration refuses zero.
std::chrono::milliseconds parse_period(const std::string& text, const std::string& flag,
                                       std::chrono::milliseconds min) {
  const auto d = parse_duration(text, flag);
  if (d < min) usage(flag, "must be at least " + format_duration(min));
  return d;
}

std::chrono::seconds whole_seconds(std::chrono::milliseconds d, const std::string& flag) {
  if (d.count() % 1000 != 0) usage(flag, "must be a whole number of seconds");
  return std::chrono::duration_cast<std::chrono::seconds>(d);
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return {};
  return buf;
}

void add_flags(CLI::App& app, flags& f) {
  app.set_version_flag("--version", version());
  app.add_option("--tenant", f.tenant, "Tenant name; names the default credentials Secret")->envname("TENANTDB_TENANT");
  app.add_option("--namespace", f.namespace_name, "Namespace of the credentials Secret (default: $POD_NAMESPACE)");
  app.add_option("--secret-name", f.secret_name, "Credentials Secret name (default: vc-db-<tenant>)");
  app.add_option("--kubeconfig", f.kubeconfig,
                 "Kubeconfig to use outside a cluster (default: $KUBECONFIG, else in-cluster)");
  app.add_flag("--local", f.local, "No Kubernetes: the store is --store-dir, written by tenantdb-init --local");
  app.add_option("--store-dir", f.store_dir, "With --local: the credential store directory");
  app.add_option("--output-dir", f.output_dir, "Where the workload reads its credential files")->required();
  app.add_option("--formats", f.formats, "Extra files, comma-separated: pgpass, mycnf, env, json");
  app.add_option("--rotate-every", f.rotate_every, "Rotation period; 0 or never: only on request")
      ->capture_default_str();
  app.add_option("--jitter", f.jitter, "Per-tenant spread of the schedule, a fraction of the period")
      ->capture_default_str();
  app.add_option("--grace", f.grace, "How long the previous password keeps working after a switch (dual)")
      ->capture_default_str();
  app.add_option("--retire-when-drained", f.retire_when_drained,
                 "Dual: after --grace, retire the previous account only once it has no open sessions, waiting at "
                 "most this long; 0: retire when --grace ends")
      ->capture_default_str();
  app.add_option("--strategy", f.strategy, "dual or in-place (as the init provisioned)")->capture_default_str();
  app.add_option("--sync-interval", f.sync_interval,
                 "How often the sidecar syncs: reads the store (a GET of the Secret unless it is watched), "
                 "runs due rotation steps")
      ->capture_default_str();
  app.add_option("--watch", f.watch,
                 "on: follow the credentials Secret with a Kubernetes watch and read it from the watch; off: a GET "
                 "every --sync-interval")
      ->capture_default_str();
  app.add_option("--resync-interval", f.resync_interval, "While watching, a GET of the Secret this often all the same")
      ->capture_default_str();
  app.add_option("--check-interval", f.check_interval, "How often the credentials' login is checked")
      ->capture_default_str();
  app.add_option("--listen", f.listen, "Address of /healthz, /readyz and /metrics, or off")->capture_default_str();
  app.add_option("--admin-listen", f.admin_listen, "Loopback address of POST /rotate, or off")->capture_default_str();
  app.add_option("--reload-signal", f.reload_signal, "Signal sent to --reload-process after the files change");
  app.add_option("--reload-process", f.reload_process, "Process name (as in /proc/PID/comm) to signal");
  app.add_option("--reload-command", f.reload_command,
                 "Program (absolute path) and arguments run after the files change; repeat the flag or use "
                 "--reload-command=ARG for arguments that start with '-'")
      ->expected(1, -1);
  app.add_option("--pod-name", f.pod_name, "This replica's name, recorded as a rotation's holder")->envname("POD_NAME");
  app.add_option("--ca-file", f.ca_file, "Path of caCert as the workload sees it (default: <output-dir>/caCert)");
  app.add_option("--file-mode", f.file_mode, "Mode of the credential files")->capture_default_str();
  app.add_option("--password-length", f.password_length, "Password length (16-80)")->capture_default_str();
  app.add_option("--log-level", f.log_level, "debug, info, warn or error")->capture_default_str();
  app.add_option("--proxy-listen", f.proxy_listen,
                 "Local database proxy: ADDRESS[:PORT] to listen on (IP literal, IPv6 in brackets; default port "
                 "the engine's, 5432 or 3306), or off")
      ->capture_default_str();
  app.add_option("--proxy-password-file", f.proxy_password_file,
                 "File holding the password proxy clients must give (one line, at least 16 characters, not "
                 "readable by others); required on a non-loopback --proxy-listen");
  app.add_option("--proxy-max-connections", f.proxy_max_connections, "Client connections the proxy serves at once")
      ->capture_default_str();
  app.add_option("--proxy-connect-timeout", f.proxy_connect_timeout,
                 "Deadline of the proxy's upstream connect, TLS handshake and login")
      ->capture_default_str();
}

proxy_settings to_proxy_settings(const flags& f) {
  proxy_settings p;
  p.listen = parse_proxy_listen(f.proxy_listen);
  if (f.proxy_max_connections < 1 || f.proxy_max_connections > 100'000)
    usage("--proxy-max-connections", "must be a number from 1 to 100000");
  p.max_connections = f.proxy_max_connections;
  p.connect_timeout = parse_period(f.proxy_connect_timeout, "--proxy-connect-timeout", std::chrono::milliseconds(100));
  if (p.connect_timeout > std::chrono::minutes(5)) usage("--proxy-connect-timeout", "must be at most 5m");
  if (!f.proxy_password_file.empty()) {
    if (!p.listen.enabled()) usage("--proxy-password-file", "needs --proxy-listen (the proxy is off)");
    p.local_password = read_proxy_password_file(f.proxy_password_file);
  }
  if (p.listen.enabled() && p.local_password.empty() && !is_loopback(p.listen))
    usage("--proxy-listen", p.listen.host +
                                " is not a loopback address: clients from the network must give a password, so it "
                                "needs --proxy-password-file (or listen on 127.0.0.1 or [::1])");
  return p;
}

// Every flag is checked before the first file is read or network call made.
sidecar_options to_options(const flags& f) {
  sidecar_options out;
  out.log_level = log::parse_level(f.log_level);

  agent_options& opts = out.agent;
  rotation_options& rot = opts.rotation;
  rot.strategy = parse_strategy(f.strategy);
  validate_password_length(f.password_length);
  rot.password_length = f.password_length;
  rot.grace = f.grace == "0" ? std::chrono::seconds(0)
                             : whole_seconds(parse_period(f.grace, "--grace", std::chrono::seconds(1)), "--grace");
  if (f.retire_when_drained != "0" && f.retire_when_drained != "off") {
    rot.drain_max = whole_seconds(parse_period(f.retire_when_drained, "--retire-when-drained", std::chrono::seconds(1)),
                                  "--retire-when-drained");
    if (rot.drain_max > std::chrono::hours(24 * 7))
      usage("--retire-when-drained", "must be at most 7d (the previous account must not stay usable for long)");
    if (rot.strategy != rotation_strategy::dual)
      usage("--retire-when-drained", "needs --strategy dual (in-place has no previous account to retire)");
  }
  if (f.rotate_every == "0" || f.rotate_every == "never" || f.rotate_every == "off") {
    opts.rotate_every.reset();
  } else {
    opts.rotate_every =
        whole_seconds(parse_period(f.rotate_every, "--rotate-every", std::chrono::seconds(1)), "--rotate-every");
  }
  if (!(f.jitter >= 0.0 && f.jitter <= 0.5)) usage("--jitter", "must be a fraction from 0 to 0.5");
  opts.jitter = f.jitter;
  opts.sync_interval = parse_period(f.sync_interval, "--sync-interval", std::chrono::milliseconds(100));
  opts.check_interval = parse_period(f.check_interval, "--check-interval", std::chrono::milliseconds(100));
  if (f.watch == "on" || f.watch == "true")
    out.watch = true;
  else if (f.watch == "off" || f.watch == "false")
    out.watch = false;
  else
    usage("--watch", "must be on or off");
  out.resync_interval = parse_period(f.resync_interval, "--resync-interval", std::chrono::seconds(1));
  opts.listen = parse_listen_address(f.listen, "--listen");
  opts.admin_listen = parse_listen_address(f.admin_listen, "--admin-listen");
  if (opts.admin_listen.enabled() && !is_loopback(opts.admin_listen))
    usage("--admin-listen", "must be a loopback address such as 127.0.0.1:8081 (the admin endpoint is local only)");
  opts.files.file_mode = parse_file_mode(f.file_mode);
  opts.formats = parse_formats(f.formats);
  const bool wants_pgpass =
      std::find(opts.formats.begin(), opts.formats.end(), credential_format::pgpass) != opts.formats.end();
  if (wants_pgpass && (opts.files.file_mode & 0077) != 0)
    usage("--file-mode",
          "must give no group or other access (e.g. 0400) with --formats pgpass: libpq ignores a "
          "password file that others can read");

  opts.proxy = to_proxy_settings(f);

  if (!f.reload_signal.empty()) opts.reload.signal = parse_signal(f.reload_signal);
  opts.reload.process_name = f.reload_process;
  if (opts.reload.signal != 0 && opts.reload.process_name.empty())
    usage("--reload-signal", "needs --reload-process (the process name to signal)");
  if (opts.reload.signal == 0 && !opts.reload.process_name.empty())
    usage("--reload-process", "needs --reload-signal (the signal to send)");
  if (!f.reload_command.empty()) {
    const std::string& program = f.reload_command.front();
    if (program.empty() || program.front() != '/')
      usage("--reload-command", "must start with an absolute path (it runs without a shell)");
    if (::access(program.c_str(), X_OK) != 0)
      usage("--reload-command", "names a program that is not executable: " + program);
    opts.reload.command = f.reload_command;
  }

  if (f.output_dir.empty()) usage("--output-dir", "is required");
  opts.output_dir = f.output_dir;
  opts.ca_file = default_ca_file(f.ca_file, f.output_dir);
  rot.ca_file = opts.ca_file;

  std::string holder = f.pod_name;
  if (holder.empty()) holder = host_name();
  if (holder.empty() || holder.size() > 253 || !is_valid_utf8(holder) ||
      std::any_of(holder.begin(), holder.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == '"'; }))
    usage("--pod-name", "must be this replica's name (default: $POD_NAME, else the host name)");
  rot.holder = holder;
  opts.crash_at = crash_at_from_env();
  if (const char* pause = std::getenv("TENANTDB_TEST_PAUSE_AT"); pause != nullptr) {
    opts.pause_at = pause;
    pause_at_hook(opts.pause_at);  // refuses a malformed spec before anything runs
  }

  out.local = f.local;
  if (f.local) {
    if (f.store_dir.empty()) usage("--local", "needs --store-dir (the directory written by tenantdb-init --local)");
    if (!f.secret_name.empty() || !f.kubeconfig.empty())
      usage("--local", "does not use the Kubernetes API: drop --secret-name and --kubeconfig");
    // The store holds the standby and pending passwords: the workload must not read it.
    check_store_apart(f.store_dir, f.output_dir);
    opts.store_source = "files";
    out.store_dir = f.store_dir;
  } else {
    if (!f.store_dir.empty()) usage("--store-dir", "is for --local only (the store is the credentials Secret)");
    if (f.secret_name.empty() && f.tenant.empty())
      usage("--secret-name", "is required without --tenant / $TENANTDB_TENANT (default: vc-db-<tenant>)");
    out.secret_name = f.secret_name.empty() ? default_secret_name(f.tenant) : f.secret_name;
    if (!is_dns1123_subdomain(out.secret_name))
      usage("--secret-name", "must be a valid Kubernetes name (the credentials Secret, default vc-db-<tenant>)");
    if (!f.namespace_name.empty() && !is_dns1123_label(f.namespace_name))
      usage("--namespace", "must be a valid Kubernetes namespace name");
    out.namespace_name = f.namespace_name;
    out.kubeconfig = f.kubeconfig;
  }
  return out;
}

}  // namespace

command_line<sidecar_options> parse_sidecar_command_line(int argc, const char* const* argv) {
  flags f;
  CLI::App app{"tenantdb-sidecar: keeps a tenant's database credentials fresh and rotates them"};
  add_flags(app, f);
  return detail::parse_command_line(app, argc, argv, [&] { return to_options(f); });
}

}  // namespace tenantdb
