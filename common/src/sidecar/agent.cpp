#include "tenantdb/agent.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <random>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

// GCC 12 reports a false "potential null pointer dereference" inside Asio's scheduler
// (Boost 1.74) once it is inlined here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#pragma GCC diagnostic pop

#include "base/unique_fd.hpp"
#include "sidecar/http_server.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/log.hpp"
#include "tenantdb/memory.hpp"
#include "tenantdb/time.hpp"

namespace tenantdb {
namespace asio = boost::asio;
using boost::system::error_code;
using std::chrono::milliseconds;
using std::chrono::seconds;
using sys_clock = std::chrono::system_clock;

// ---------------------------------------------------------------------------------------
// Small parsers

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

fault_hook pause_at_hook(std::string_view spec) {
  if (spec.empty()) return {};
  const auto colon = spec.rfind(':');
  const std::string_view point = colon == std::string_view::npos ? std::string_view() : spec.substr(0, colon);
  const std::string_view digits = colon == std::string_view::npos ? std::string_view() : spec.substr(colon + 1);
  const bool number = !digits.empty() && digits.size() <= 6 &&
                      std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
  const long ms = number ? std::stol(std::string(digits)) : 0;
  if (point.empty() || ms < 1 || ms > 600'000)
    throw error(error_kind::usage, "TENANTDB_TEST_PAUSE_AT must be FAULT_POINT:MILLISECONDS (1 to 600000)")
        .about("TENANTDB_TEST_PAUSE_AT");
  return [point = std::string(point), pause = milliseconds(ms)](std::string_view reached) {
    if (reached != point) return;
    log::warn("test hook: pausing at a fault point (TENANTDB_TEST_PAUSE_AT)",
              {{"fault_point", point}, {"milliseconds", static_cast<std::int64_t>(pause.count())}});
    std::this_thread::sleep_for(pause);
  };
}

// ---------------------------------------------------------------------------------------
// The agent

namespace {

/// Forwards to the real store and remembers whether the last failure was the store's, so
/// errors of the rotator can be counted against the right source.
class observed_store final : public credential_store {
public:
  explicit observed_store(credential_store& inner) : inner_(inner) {}

private:
  template <typename F>
  auto observe(F&& f) {
    try {
      return f();
    } catch (...) {
      failed_ = true;
      throw;
    }
  }

public:
  std::optional<stored_credentials> load() override {
    return observe([&] { return inner_.load(); });
  }
  std::optional<std::string> create(const credential_data& data,
                                    const std::map<std::string, std::string>& annotations) override {
    return observe([&] { return inner_.create(data, annotations); });
  }
  std::optional<std::string> replace(const credential_data& data, const std::map<std::string, std::string>& annotations,
                                     const std::string& version) override {
    return observe([&] { return inner_.replace(data, annotations, version); });
  }
  std::string describe() const override { return inner_.describe(); }

  /// Clears the failure mark; call before a step.
  void reset() noexcept { failed_ = false; }
  bool failed() const noexcept { return failed_; }

private:
  credential_store& inner_;
  bool failed_ = false;
};

// The rotator marks a removed annotation with an empty value (a PUT keeps annotations it
// does not name), so empty counts as absent.
const std::string* annotation_of(const stored_credentials& stored, const char* key) {
  const auto it = stored.annotations.find(key);
  return it == stored.annotations.end() || it->second.empty() ? nullptr : &it->second;
}

// What the workload sees: never the standby account, nor a password a rotation in flight
// is setting (during a retire that is the password nobody may have).
credential_data files_view(const credential_data& data) {
  credential_data out = workload_view(data);
  out.erase(pending_password_key);
  return out;
}

// Account names as the init makes them ([a-z0-9_]); anything else (a hand-edited store)
// is kept out of a metric label rather than escaped.
bool is_label_value(const std::string& text) {
  return !text.empty() && text.size() <= 63 && std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
  });
}

const secret* find_value(const credential_data& data, const char* key) {
  const auto it = data.find(key);
  return it == data.end() ? nullptr : &it->second;
}

// During a dual rotation's grace period the standby account is the previous active one,
// still valid: pgpass keeps a line for it (see render_format). Never after the grace.
std::optional<login> grace_login(const stored_credentials& stored) {
  if (!rotator::grace_ends(stored)) return std::nullopt;
  const secret* user = find_value(stored.data, keys::standby_user);
  const secret* password = find_value(stored.data, keys::standby_password);
  if (user == nullptr || password == nullptr) return std::nullopt;
  return login{user->reveal(), *password};
}

double unix_seconds(sys_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

std::string format_number(double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", value);
  return buf;
}

// The PIDs whose /proc/PID/comm is `name` (the kernel cuts comm to 15 bytes).
std::vector<pid_t> find_processes(const std::string& name) {
  const std::string want = name.substr(0, 15);
  std::vector<pid_t> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  const pid_t self = ::getpid();
  while (const dirent* entry = ::readdir(proc)) {
    const std::string_view d(entry->d_name);
    if (d.empty() || !std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(std::string(d)));
    if (pid == self) continue;
    unique_fd fd(::open(("/proc/" + std::string(d) + "/comm").c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) continue;
    char buf[64];
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n <= 0) continue;
    std::string comm(buf, static_cast<std::size_t>(n));
    while (!comm.empty() && (comm.back() == '\n' || comm.back() == '\0')) comm.pop_back();
    if (comm == want) out.push_back(pid);
  }
  ::closedir(proc);
  return out;
}

// The test hooks in the order a fault point reaches them: a pause, then a crash.
fault_hook test_hooks(const agent_options& o) {
  fault_hook pause = pause_at_hook(o.pause_at);
  fault_hook crash = crash_at_hook(o.crash_at);
  if (!pause) return crash;
  if (!crash) return pause;
  return [pause = std::move(pause), crash = std::move(crash)](std::string_view point) {
    pause(point);
    crash(point);
  };
}

}  // namespace

struct agent::impl {
  impl(credential_store& s, agent_options o)
      : options(std::move(o)),
        store(s),
        rot(store, options.rotation, test_hooks(options)),
        sync_timer(io),
        check_timer(io),
        reload_timer(io),
        signals(io),
        rng(options.seed != 0 ? options.seed : std::random_device{}()) {
    started = options.now();
    rotate_backoff = options.sync_interval;
    if (options.listen.enabled())
      main_server = bind(options.listen, "--listen", [this](const http::request& r) { return serve_main(r); });
    if (options.admin_listen.enabled())
      admin_server =
          bind(options.admin_listen, "--admin-listen", [this](const http::request& r) { return serve_admin(r); });
  }

  std::unique_ptr<http::server> bind(const listen_address& address, const char* flag, http::handler h) {
    try {
      auto s = std::make_unique<http::server>(io, address.host, address.port, std::move(h), http::limits{}, flag + 2);
      return s;
    } catch (const boost::system::system_error& e) {
      throw error(error_kind::usage,
                  std::string("cannot listen on ") + flag + " " + address.to_string() + ": " + e.code().message())
          .about(flag);
    }
  }

  // --- timers -----------------------------------------------------------------------------

  milliseconds jittered(milliseconds base) {
    // +-10%, so replicas started together drift apart instead of hitting the API in step.
    std::uniform_real_distribution<double> spread(0.9, 1.1);
    return milliseconds(static_cast<milliseconds::rep>(static_cast<double>(base.count()) * spread(rng)));
  }

  // A task boundary: whatever a job throws is logged and the loop goes on.
  static void guarded(const char* job, const std::function<void()>& f) {
    try {
      f();
    } catch (const std::exception& e) {
      log::error(std::string(job) + " failed unexpectedly", {{"error", e.what()}});
    }
  }

  // Re-arming replaces any pending wait: its handler sees operation_aborted and returns,
  // so there is never more than one wait per timer. After each job the sidecar sleeps
  // until the next one: what the job mapped of the program (a login check runs the whole
  // TLS stack) and the heap it freed go back, for about 0.1 ms (release_idle_memory).
  void schedule_sync(milliseconds delay) {
    if (stopping) return;
    sync_timer.expires_after(delay);
    sync_timer.async_wait([this](error_code ec) {
      if (ec == asio::error::operation_aborted || stopping) return;
      guarded("sync", [this] { sync(); });
      release_idle_memory();
      schedule_sync(jittered(options.sync_interval));
    });
  }

  void schedule_check(milliseconds delay) {
    if (stopping) return;
    check_timer.expires_after(delay);
    check_timer.async_wait([this](error_code ec) {
      if (ec == asio::error::operation_aborted || stopping) return;
      guarded("login check", [this] { check(); });
      release_idle_memory();
      schedule_check(jittered(options.check_interval));
    });
  }

  void wait_signal() {
    signals.async_wait([this](error_code ec, int signo) {
      if (ec) return;
      if (signo == SIGHUP) {
        log::info("SIGHUP: syncing now");
        schedule_sync(milliseconds(0));
        wait_signal();
        return;
      }
      log::info("stopping", {{"signal", signo == SIGTERM ? "SIGTERM" : "SIGINT"}});
      shutdown();
    });
  }

  void shutdown() {
    if (stopping) return;
    stopping = true;
    sync_timer.cancel();
    check_timer.cancel();
    reload_timer.cancel();
    error_code ignored;
    signals.cancel(ignored);
    if (main_server) main_server->stop();
    if (admin_server) admin_server->stop();
    if (reload_pid > 0)
      log::warn("a reload command is still running; leaving it", {{"pid", static_cast<std::int64_t>(reload_pid)}});
    io.stop();
  }

  // --- the sync job -------------------------------------------------------------------------

  void count_error(const std::string& source, const error& e, const std::string& step) {
    ++errors_total[source];
    log::warn(step + " failed", {{"error", e.what()}, {"kind", to_string(e.kind())}, {"source", source}});
  }

  // Loads the store and publishes the workload's files if the content moved on. Returns
  // false if the store could not be read or holds nothing.
  bool load_and_publish() {
    std::optional<stored_credentials> loaded;
    try {
      loaded = store.load();
    } catch (const foreign_store_error& e) {
      // Not tenantdb's (a ServiceAccount token Secret in its place): nothing from it is
      // published, and the pod says so until the store is usable again.
      store_refused = true;
      count_error(options.store_source, e, "reading the " + store.describe());
      return false;
    } catch (const error& e) {
      count_error(options.store_source, e, "reading the " + store.describe());
      return false;
    }
    store_refused = false;
    // An existing Secret with no data is one pre-created for tenantdb-init to fill.
    if (loaded && loaded->data.empty()) loaded.reset();
    if (!loaded) {
      if (!missing_logged)
        log::warn("the store holds no credentials yet: run tenantdb-init first", {{"store", store.describe()}});
      missing_logged = true;
      if (!files_in_place) not_ready_reason = "no credentials yet";
      return false;
    }
    missing_logged = false;
    current = std::move(loaded);
    observe_credential();
    observe_lockout();
    // Republish when the store moved on, or when someone removed the files meanwhile.
    std::error_code ec;
    const bool files_gone = files_in_place && !std::filesystem::is_symlink(options.output_dir / "..data", ec);
    if (current->version == published_version && !publish_failed && !files_gone) return true;

    bool changed = false;
    try {
      const credential_data desired =
          with_formats(files_view(current->data), options.formats, options.ca_file, grace_login(*current));
      if (!same_data(read_directory(options.output_dir), desired)) {
        publish_directory(options.output_dir, desired, options.files);
        ++files_published_total;
        changed = true;
        log::info("credential files published",
                  {{"output_dir", options.output_dir.string()}, {"version", current->version}});
      }
      published = files_view(current->data);
    } catch (const error& e) {
      publish_failed = true;
      not_ready_reason = "cannot write the credential files";
      count_error("files", e, "publishing the credential files");
      return true;
    }
    publish_failed = false;
    published_version = current->version;
    if (!files_in_place) {
      files_in_place = true;
      schedule_check(milliseconds(0));
    }
    if (changed) {
      reload();
      schedule_check(milliseconds(0));
    }
    return true;
  }

  // Tracks when the active credential changed, for tenantdb_credential_age_seconds.
  void observe_credential() {
    const secret* password = find_value(current->data, keys::password);
    if (password == nullptr) return;
    if (!active_password) {
      active_since = started;
      if (const std::string* last = annotation_of(*current, annotations::last_rotation))
        if (auto t = parse_rfc3339(*last)) active_since = std::min(*t, started);
    } else if (!(*active_password == *password)) {
      active_since = options.now();
    }
    active_password = *password;
  }

  // The account the store records as locked out ("" if none), and a log line when that
  // changes, so every replica says it, not only the one that found it.
  std::string locked_out() const { return current ? rotator::locked_out_account(*current) : std::string(); }

  void observe_lockout() {
    const std::string account = locked_out();
    if (account == lockout_seen) return;
    if (!account.empty()) {
      log::error(
          "account locked out: it logs in with none of the passwords the credentials store holds for it; "
          "not ready and not rotating until tenantdb-init resets it (restart the pod or run the init)",
          {{"user", account}, {"annotation", annotations::lockout}, {"store", store.describe()}});
    } else {
      log::info("account lockout resolved", {{"user", lockout_seen}});
    }
    lockout_seen = account;
  }

  bool rotation_due(sys_clock::time_point now) const {
    if (!current) return false;
    if (annotation_of(*current, annotations::rotation) != nullptr) return false;  // in flight: advance() owns it
    // A locked-out account cannot take a rotation; trying would only fail again. The init
    // removes the record when it has reset the account.
    if (!locked_out().empty()) return false;
    if (admin_requested || rotator::rotation_requested(*current)) return true;
    if (!options.rotate_every) return false;
    return now >= rotator::next_due(*current, *options.rotate_every, options.jitter, started);
  }

  void record(rotation_outcome outcome, const char* step) {
    switch (outcome) {
      case rotation_outcome::nothing: return;
      case rotation_outcome::rotated:
        ++rotated_total;
        last_success = options.now();
        break;
      case rotation_outcome::retired: ++retired_total; break;
      case rotation_outcome::recovered: ++recovered_total; break;
      case rotation_outcome::lost_race: ++lost_race_total; break;
    }
    static constexpr const char* names[] = {"nothing", "rotated", "retired", "recovered", "lost_race"};
    log::info("rotation step",
              {{"step", step}, {"outcome", names[static_cast<int>(outcome)]}, {"holder", options.rotation.holder}});
  }

  // Runs one rotator call; on success re-reads the store if it changed.
  bool rotator_step(const char* step, const std::function<rotation_outcome()>& call) {
    store.reset();
    try {
      const rotation_outcome outcome = call();
      record(outcome, step);
      rotate_backoff = options.sync_interval;
      rotate_not_before = {};
      if (outcome != rotation_outcome::nothing) load_and_publish();
      return true;
    } catch (const error& e) {
      ++failed_total;
      const std::string source = store.failed()                   ? options.store_source
                                 : e.kind() == error_kind::output ? std::string("files")
                                                                  : std::string("database");
      count_error(source, e, std::string(step) == "advance" ? "finishing an in-flight rotation" : "rotation");
      // Back off so a database or API outage is not hammered every sync.
      rotate_not_before = std::chrono::steady_clock::now() + rotate_backoff;
      rotate_backoff = std::min<milliseconds>(rotate_backoff * 2, std::chrono::minutes(5));
      return false;
    } catch (const std::exception& e) {
      ++failed_total;
      log::error(std::string(step) + " failed unexpectedly", {{"error", e.what()}});
      rotate_not_before = std::chrono::steady_clock::now() + rotate_backoff;
      return false;
    }
  }

  void sync() {
    // The files first: after a restart they reflect the store before anything else runs.
    if (!load_and_publish()) return;
    // The files may still hold a password the store has moved on from (the previous
    // active one, in its grace period); a retire or a new rotation would lock the workload
    // out with it. Nothing rotates until the files have caught up.
    if (publish_failed) {
      log::debug("not rotating: the credential files are not up to date",
                 {{"output_dir", options.output_dir.string()}});
      return;
    }
    if (std::chrono::steady_clock::now() < rotate_not_before) return;
    const auto now = options.now();
    if (!rotator_step("advance", [&] { return rot.advance(now); })) return;
    if (!rotation_due(now)) return;
    const bool requested = admin_requested || rotator::rotation_requested(*current);
    log::info(requested ? "rotation requested" : "rotation due", {{"store", store.describe()}});
    if (rotator_step("rotate", [&] { return rot.rotate(now); })) admin_requested = false;
  }

  // --- the login check ------------------------------------------------------------------------

  void check() {
    if (!published) {
      check_ok = false;
      return;
    }
    const credential_data& data = *published;
    try {
      const server_address server = server_from_data(data);
      const secret* user = find_value(data, keys::user);
      const secret* password = find_value(data, keys::password);
      const secret* database = find_value(data, keys::database);
      if (user == nullptr || password == nullptr || database == nullptr)
        throw error(error_kind::connector, "the credentials lack user, password or database");
      verify_login(server, login{user->reveal(), *password}, database->reveal(), options.rotation.timeouts);
      if (!check_ok) log::info("login check passed", {{"user", user->reveal()}});
      check_ok = true;
      check_reason.clear();
    } catch (const error& e) {
      check_ok = false;
      check_reason = std::string("login check failed: ") + failure_class(e.kind());
      count_error(e.kind() == error_kind::output ? "files" : "database", e, "login check");
    }
  }

  // What /readyz may say about a failed login check. /readyz answers anyone who reaches
  // --listen (0.0.0.0 by default), so it names a class of failure and never the host,
  // port, user, database or the server's own words: those go to the log (count_error).
  static const char* failure_class(error_kind kind) {
    switch (kind) {
      case error_kind::unavailable: return "database unreachable";
      case error_kind::verification: return "database refused the login";  // the tenant's login
      case error_kind::database: return "database error";
      case error_kind::connector: return "unusable credentials";
      case error_kind::output: return "credential files unreadable";
      default: return "unexpected error";
    }
  }

  // Not ready while an account is locked out: whoever changed its password holds a login
  // to the tenant's database that rotation can no longer take away.
  bool ready() const { return files_in_place && !publish_failed && check_ok && locked_out().empty() && !store_refused; }

  // One terse line from a fixed set (see failure_class); the details are in the log.
  std::string reason() const {
    if (store_refused) return "credentials Secret refused";  // why: the log
    if (!files_in_place || publish_failed) return not_ready_reason;
    if (!check_ok) return check_reason.empty() ? "login check pending" : check_reason;
    if (!locked_out().empty()) return "account locked out: run tenantdb-init";  // which one: the log and the gauge
    return "ready";
  }

  // --- reload hook ------------------------------------------------------------------------------

  void reload() {
    const auto& r = options.reload;
    if (r.signal != 0 && !r.process_name.empty()) {
      const auto pids = find_processes(r.process_name);
      int sent = 0;
      for (const pid_t pid : pids)
        if (::kill(pid, r.signal) == 0) ++sent;
      if (pids.empty()) {
        log::warn("reload: no process of that name (is shareProcessNamespace set?)", {{"process", r.process_name}});
      } else {
        log::info("reload: signalled", {{"process", r.process_name}, {"signal", r.signal}, {"count", sent}});
      }
    }
    if (!r.command.empty()) {
      if (reload_pid > 0) {
        reload_pending = true;  // run once more when the current one ends
      } else {
        spawn_reload();
      }
    }
  }

  void spawn_reload() {
    const auto& cmd = options.reload.command;
    std::vector<std::string> args = cmd;
    std::vector<std::string> env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/",
                                    "TENANTDB_OUTPUT_DIR=" + options.output_dir.string()};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    // Listening sockets and the store's lock files must not leak into the command.
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
#endif
    sigset_t all;
    sigset_t none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setpgroup(&attr, 0);  // its own group, so a timeout kills its children too
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, args[0].c_str(), &actions, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      log::warn("reload command could not be started", {{"command", cmd[0]}, {"error", std::strerror(rc)}});
      return;
    }
    reload_pid = pid;
    reload_deadline = std::chrono::steady_clock::now() + options.reload.command_timeout;
    reload_killed = false;
    log::info("reload command started", {{"command", cmd[0]}, {"pid", static_cast<std::int64_t>(pid)}});
    poll_reload();
  }

  // Reaps the reload command without blocking the loop: a short self-re-arming timer.
  void poll_reload() {
    reload_timer.expires_after(milliseconds(50));
    reload_timer.async_wait([this](error_code ec) {
      if (ec == asio::error::operation_aborted || stopping || reload_pid <= 0) return;
      int status = 0;
      const pid_t done = ::waitpid(reload_pid, &status, WNOHANG);
      if (done == reload_pid || (done < 0 && errno == ECHILD)) {
        if (done == reload_pid && WIFEXITED(status)) {
          const int code = WEXITSTATUS(status);
          if (code == 0) {
            log::info("reload command finished", {{"exit_code", code}});
          } else {
            log::warn("reload command failed", {{"exit_code", code}});
          }
        } else if (done == reload_pid && WIFSIGNALED(status)) {
          log::warn(reload_killed ? "reload command killed after its time limit" : "reload command killed by a signal",
                    {{"signal", WTERMSIG(status)}});
        }
        reload_pid = -1;
        if (reload_pending) {
          reload_pending = false;
          spawn_reload();
        }
        return;
      }
      if (!reload_killed && std::chrono::steady_clock::now() > reload_deadline) {
        ::kill(-reload_pid, SIGKILL);
        ::kill(reload_pid, SIGKILL);
        reload_killed = true;
      }
      poll_reload();
    });
  }

  // --- HTTP ---------------------------------------------------------------------------------------

  static std::string path_of(const std::string& target) {
    return target.substr(0, target.find('?'));
  }

  static http::response method_not_allowed(const char* allow) {
    http::response r{405, "text/plain; charset=utf-8", "method not allowed\n", {}};
    r.headers.emplace_back("Allow", allow);
    return r;
  }

  http::response serve_main(const http::request& req) {
    const std::string path = path_of(req.target);
    const bool known = path == "/healthz" || path == "/readyz" || path == "/metrics";
    if (!known) return {404, "text/plain; charset=utf-8", "not found\n", {}};
    if (req.method != "GET" && req.method != "HEAD") return method_not_allowed("GET, HEAD");
    if (path == "/healthz") return {200, "text/plain; charset=utf-8", "ok\n", {}};
    if (path == "/readyz") {
      if (ready()) return {200, "text/plain; charset=utf-8", "ready\n", {}};
      return {503, "text/plain; charset=utf-8", "not ready: " + reason() + "\n", {}};
    }
    return {200, "text/plain; version=0.0.4; charset=utf-8", metrics(), {}};
  }

  http::response serve_admin(const http::request& req) {
    const std::string path = path_of(req.target);
    if (path != "/rotate") return {404, "text/plain; charset=utf-8", "not found\n", {}};
    if (req.method != "POST") return method_not_allowed("POST");
    admin_requested = true;
    log::info("rotation requested through the admin endpoint");
    schedule_sync(milliseconds(0));
    return {202, "text/plain; charset=utf-8", "rotation requested\n", {}};
  }

  std::string metrics() const {
    std::string out;
    const auto family = [&](const char* name, const char* type, const char* help) {
      out.append("# HELP ").append(name).append(" ").append(help).append("\n");
      out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
    };
    const auto sample = [&](const std::string& name, const std::string& value) {
      out.append(name).append(" ").append(value).append("\n");
    };
    family("tenantdb_rotations_total", "counter", "Rotation steps this replica ran, by result.");
    sample("tenantdb_rotations_total{result=\"rotated\"}", std::to_string(rotated_total));
    sample("tenantdb_rotations_total{result=\"lost_race\"}", std::to_string(lost_race_total));
    sample("tenantdb_rotations_total{result=\"failed\"}", std::to_string(failed_total));
    sample("tenantdb_rotations_total{result=\"recovered\"}", std::to_string(recovered_total));
    sample("tenantdb_rotations_total{result=\"retired\"}", std::to_string(retired_total));

    const auto now = options.now();
    std::optional<sys_clock::time_point> success = last_success;
    if (current)
      if (const std::string* last = annotation_of(*current, annotations::last_rotation))
        if (auto t = parse_rfc3339(*last); t && (!success || *t > *success)) success = t;
    family("tenantdb_last_rotation_success_timestamp_seconds", "gauge",
           "When the last rotation completed (Unix time; 0 if none is known).");
    sample("tenantdb_last_rotation_success_timestamp_seconds", format_number(success ? unix_seconds(*success) : 0.0));

    family("tenantdb_credential_age_seconds", "gauge", "How long the active credential has been active.");
    if (active_password)
      sample("tenantdb_credential_age_seconds",
             format_number(std::max(0.0, std::chrono::duration<double>(now - active_since).count())));

    family("tenantdb_next_rotation_timestamp_seconds", "gauge",
           "When the next scheduled rotation is due (Unix time; absent if rotation is not scheduled).");
    if (current && options.rotate_every)
      sample("tenantdb_next_rotation_timestamp_seconds",
             format_number(unix_seconds(rotator::next_due(*current, *options.rotate_every, options.jitter, started))));

    family("tenantdb_errors_total", "counter", "Failed operations, by what failed.");
    for (const char* source : {"api", "database", "files"}) {
      const auto it = errors_total.find(source);
      sample(std::string("tenantdb_errors_total{source=\"") + source + "\"}",
             std::to_string(it == errors_total.end() ? 0 : it->second));
    }
    family("tenantdb_files_published_total", "counter",
           "Times a new generation of the credential files was published.");
    sample("tenantdb_files_published_total", std::to_string(files_published_total));
    family("tenantdb_account_lockout", "gauge",
           "1 for an account that logs in with none of the passwords the store holds for it (reset it with "
           "tenantdb-init).");
    if (current) {
      const std::string locked = locked_out();
      bool named = false;
      for (const char* key : {keys::user, keys::standby_user}) {
        const secret* user = find_value(current->data, key);
        if (user == nullptr || !is_label_value(user->reveal())) continue;
        named = named || user->reveal() == locked;
        sample("tenantdb_account_lockout{account=\"" + user->reveal() + "\"}", user->reveal() == locked ? "1" : "0");
      }
      if (!locked.empty() && !named && is_label_value(locked))
        sample("tenantdb_account_lockout{account=\"" + locked + "\"}", "1");
    }
    family("tenantdb_ready", "gauge",
           "1 when the files are in place, the last login check passed, the store is tenantdb's and no account "
           "is locked out.");
    sample("tenantdb_ready", ready() ? "1" : "0");
    if (main_server) {
      // A connection flood against --listen shows here, not as failed probes.
      const auto c = main_server->stats();
      family("tenantdb_http_connections_closed_total", "counter",
             "Connections to --listen closed early: evicted (idle or slow, to make room for a new one), "
             "refused (no room), timeout (the request did not arrive in time).");
      sample("tenantdb_http_connections_closed_total{reason=\"evicted\"}", std::to_string(c.dropped));
      sample("tenantdb_http_connections_closed_total{reason=\"refused\"}", std::to_string(c.refused));
      sample("tenantdb_http_connections_closed_total{reason=\"timeout\"}", std::to_string(c.timed_out));
    }
    return out;
  }

  // --- run ------------------------------------------------------------------------------------------

  int run() {
    signals.add(SIGTERM);
    signals.add(SIGINT);
    signals.add(SIGHUP);
    wait_signal();
    if (main_server) main_server->start();
    if (admin_server) admin_server->start();
    log::info("sidecar started",
              {{"store", store.describe()},
               {"output_dir", options.output_dir.string()},
               {"listen", options.listen.to_string()},
               {"admin_listen", options.admin_listen.to_string()},
               {"holder", options.rotation.holder},
               {"rotate_every", options.rotate_every ? static_cast<std::int64_t>(options.rotate_every->count()) : 0}});
    schedule_sync(milliseconds(0));
    schedule_check(options.check_interval);
    io.run();
    log::info("stopped");
    return 0;
  }

  asio::io_context io;  // first: destroyed last, after everything that uses it
  agent_options options;
  observed_store store;
  rotator rot;
  asio::steady_timer sync_timer;
  asio::steady_timer check_timer;
  asio::steady_timer reload_timer;
  asio::signal_set signals;
  std::mt19937_64 rng;
  std::unique_ptr<http::server> main_server;
  std::unique_ptr<http::server> admin_server;

  bool stopping = false;
  sys_clock::time_point started;

  // What the store and the files hold.
  std::optional<stored_credentials> current;
  std::optional<credential_data> published;  ///< the workload's view now in the files
  std::string published_version;
  bool files_in_place = false;
  bool publish_failed = false;
  /// The last sync found a store that is not tenantdb's (foreign_store_error); why: the log.
  bool store_refused = false;
  bool missing_logged = false;
  std::string not_ready_reason = "starting";
  bool check_ok = false;
  std::string check_reason;
  std::string lockout_seen;  ///< the lockout last logged ("" for none)
  std::optional<secret> active_password;
  sys_clock::time_point active_since;

  // Rotation.
  bool admin_requested = false;
  std::chrono::steady_clock::time_point rotate_not_before{};
  milliseconds rotate_backoff{5000};
  std::optional<sys_clock::time_point> last_success;

  // Reload command.
  pid_t reload_pid = -1;
  bool reload_pending = false;
  bool reload_killed = false;
  std::chrono::steady_clock::time_point reload_deadline{};

  // Metrics.
  std::uint64_t rotated_total = 0;
  std::uint64_t lost_race_total = 0;
  std::uint64_t failed_total = 0;
  std::uint64_t recovered_total = 0;
  std::uint64_t retired_total = 0;
  std::uint64_t files_published_total = 0;
  std::map<std::string, std::uint64_t> errors_total;
};

agent::agent(credential_store& store, agent_options options)
    : impl_(std::make_unique<impl>(store, std::move(options))) {}

agent::~agent() = default;

std::uint16_t agent::port() const {
  return impl_->main_server ? impl_->main_server->port() : 0;
}

std::uint16_t agent::admin_port() const {
  return impl_->admin_server ? impl_->admin_server->port() : 0;
}

int agent::run() {
  return impl_->run();
}

void agent::stop() {
  asio::post(impl_->io, [this] { impl_->shutdown(); });
}

}  // namespace tenantdb
