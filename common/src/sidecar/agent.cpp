#include "tenantdb/agent.hpp"

#include <algorithm>
#include <csignal>
#include <ctime>
#include <random>
#include <thread>

// GCC 12 reports a false "potential null pointer dereference" inside Asio's scheduler
// (Boost 1.74) once it is inlined here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#pragma GCC diagnostic pop

#include "sidecar/drift.hpp"
#include "sidecar/endpoints.hpp"
#include "sidecar/http_server.hpp"
#include "sidecar/outcome.hpp"
#include "sidecar/proxy_feed.hpp"
#include "sidecar/publisher.hpp"
#include "sidecar/reload_hook.hpp"
#include "sidecar/status.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/fault.hpp"
#include "tenantdb/log.hpp"
#include "tenantdb/memory.hpp"
#include "tenantdb/retry.hpp"
#include "tenantdb/time.hpp"

// The sidecar's main loop: timers, signals and the order of a sync. The pieces it drives
// live beside it in common/src/sidecar/: the file publisher (publisher.hpp), the reload
// hook (reload_hook.hpp), status and metrics (status.hpp), the HTTP endpoints
// (endpoints.hpp) and the local database proxy's feed (proxy_feed.hpp); the flags are
// options.cpp. Each piece reports an outcome and this loop
// decides what to schedule next.

namespace tenantdb {
namespace asio = boost::asio;
using boost::system::error_code;
using std::chrono::milliseconds;
using std::chrono::seconds;
using sys_clock = std::chrono::system_clock;

// ---------------------------------------------------------------------------------------
// Small parsers (the flag parsers are in options.cpp)

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

// +-10% on every timer, so replicas started together drift apart instead of hitting the
// API in step.
constexpr double timer_jitter = 0.1;

// After a failed rotation step the next one waits: the sync interval, doubling up to five
// minutes (never less than one sync interval), so an outage is not hammered every sync.
backoff_policy rotation_backoff(milliseconds sync_interval) {
  return backoff_policy{sync_interval, std::max<milliseconds>(sync_interval, std::chrono::minutes(5)), 2.0, 0.0};
}

}  // namespace

struct agent::impl {
  impl(credential_store& s, agent_options o)
      : options(std::move(o)),
        proxy(options.proxy.enabled() ? std::make_unique<sidecar::proxy_feed>(options.proxy) : nullptr),
        fed_store(s, proxy.get()),
        rotation_store(fed_store, sidecar::parse_error_source(options.store_source)),
        rot(*db, rotation_store, options.rotation, test_hooks(options)),
        started(options.now()),
        files(s, options),
        status(options, files, started),
        hook(io, options.reload, options.output_dir),
        sync_timer(io),
        check_timer(io),
        signals(io),
        rng(options.seed != 0 ? options.seed : std::random_device{}()),
        rotate_backoff(rotation_backoff(options.sync_interval)) {
    if (proxy) status.watch_proxy(proxy.get());
    status.watch_rotator(&rot);
    status.watch_drift(&drift);
    if (options.listen.enabled())
      main_server = bind(options.listen, "--listen",
                         [this](const http::request& r) { return sidecar::serve_probe(r, status, main_server.get()); });
    if (options.admin_listen.enabled())
      admin_server = bind(options.admin_listen, "--admin-listen", [this](const http::request& r) {
        sidecar::admin_answer answer = sidecar::serve_admin(r);
        if (answer.rotation_requested) {
          admin_requested = true;
          log::info("rotation requested through the admin endpoint");
          schedule_sync(milliseconds(0));
        }
        return answer.response;
      });
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

  milliseconds jittered(milliseconds base) { return with_jitter(base, timer_jitter, rng); }

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
    error_code ignored;
    signals.cancel(ignored);
    if (main_server) main_server->stop();
    if (admin_server) admin_server->stop();
    // After the probes (nothing reports ready any more), before exit: closes every
    // proxied connection and joins the proxy's thread.
    if (proxy) proxy->stop();
    hook.stop();
    io.stop();
  }

  // --- the sync job -------------------------------------------------------------------------

  // Reads the store and publishes the workload's files if the content moved on; a new
  // generation runs the reload hook, and new or first files get a login check at once.
  // Returns false if the store could not be read or holds nothing.
  bool load_and_publish() {
    const auto loaded = files.load();
    if (loaded.failed) status.count(*loaded.failed);
    if (!loaded.loaded) return false;
    // The proxy follows the store itself, not the files: the store is the source of truth,
    // and it holds the pending password an in-place rotation needs.
    if (proxy && files.current()) proxy->update(files.current()->data);
    status.observe_store();
    const auto published = files.publish();
    if (published.failed) {
      status.count(*published.failed);
      return true;
    }
    const bool changed = published.result == sidecar::file_publisher::publish_outcome::files::published;
    if (changed) status.files_published();
    if (published.first_in_place) schedule_check(milliseconds(0));
    if (changed) {
      (void)hook.run();
      schedule_check(milliseconds(0));
    }
    return true;
  }

  bool rotation_due(sys_clock::time_point now) const {
    const auto& current = files.current();
    if (!current) return false;
    // In flight: advance() owns it.
    if (annotation_value(current->annotations, annotations::rotation) != nullptr) return false;
    return rotation_wanted(now);
  }

  // Requested or due by the schedule, whatever is in flight: a previous account still
  // draining (--retire-when-drained) is retired then, as dual needs its slot.
  bool rotation_wanted(sys_clock::time_point now) const {
    const auto& current = files.current();
    if (!current) return false;
    // A locked-out account cannot take a rotation; trying would only fail again. The init
    // removes the record when it has reset the account.
    if (!status.locked_out().empty()) return false;
    if (admin_requested || rotator::rotation_requested(*current)) return true;
    if (!options.rotate_every) return false;
    return now >= rotator::next_due(*current, *options.rotate_every, options.jitter, started);
  }

  // Runs one rotator call; on success re-reads the store if it changed. A failure is
  // counted against the source it happened in (sidecar::source_of) and backs off.
  bool rotator_step(const char* step, const std::function<rotation_outcome()>& call) {
    try {
      const rotation_outcome outcome = call();
      status.rotation_step(outcome, step);
      rotation_failures = 0;
      rotate_not_before = {};
      if (outcome != rotation_outcome::nothing) load_and_publish();
      emit_event(outcome);
      return true;
    } catch (const error& e) {
      status.rotation_failed();
      status.count(
          {sidecar::source_of(e), std::string(step) == "advance" ? "finishing an in-flight rotation" : "rotation", e});
      if (options.events != nullptr)
        options.events->warning_limited(event_reasons::failed, "Rotate", std::string("rotation failed: ") + e.what(),
                                        options.failed_event_interval);
      // Back off so a database or API outage is not hammered every sync.
      rotate_not_before = std::chrono::steady_clock::now() + backoff_delay(rotate_backoff, ++rotation_failures);
      return false;
    } catch (const std::exception& e) {
      status.rotation_failed();
      log::error(std::string(step) + " failed unexpectedly", {{"error", e.what()}});
      rotate_not_before = std::chrono::steady_clock::now() + backoff_delay(rotate_backoff, rotation_failures + 1);
      return false;
    }
  }

  // An Event for a rotation step that changed the store; names only, never a password.
  void emit_event(rotation_outcome outcome) {
    if (options.events == nullptr) return;
    const auto& current = files.current();
    const credential_record record = current ? parse_record(current->data) : credential_record{};
    const std::string store = files.describe_store();
    switch (outcome) {
      case rotation_outcome::rotated:
        options.events->normal(event_reasons::rotated, "Rotate",
                               "rotated the password: " + record.user + " is now the active account (" + store + ")");
        break;
      case rotation_outcome::retired:
        options.events->normal(event_reasons::retired, "Retire",
                               "retired the previous password" +
                                   (record.standby_user.empty() ? std::string() : " of " + record.standby_user) +
                                   " after its grace period (" + store + ")");
        break;
      default: break;
    }
  }

  void sync() {
    // A proxy that could not bind tries again, even while the store cannot be read.
    if (proxy) proxy->retry();
    // The files first: after a restart they reflect the store before anything else runs.
    if (!load_and_publish()) return;
    // The files may still hold a password the store has moved on from (the previous
    // active one, in its grace period); a retire or a new rotation would lock the workload
    // out with it. Nothing rotates until the files have caught up.
    if (!files.up_to_date()) {
      log::debug("not rotating: the credential files are not up to date",
                 {{"output_dir", options.output_dir.string()}});
      return;
    }
    if (std::chrono::steady_clock::now() < rotate_not_before) return;
    const auto now = options.now();
    if (!rotator_step("advance", [&] { return rot.advance(now, rotation_wanted(now)); })) return;
    if (!rotation_due(now)) return;
    const bool requested = admin_requested || rotator::rotation_requested(*files.current());
    log::info(requested ? "rotation requested" : "rotation due", {{"store", files.describe_store()}});
    if (rotator_step("rotate", [&] { return rot.rotate(now); })) admin_requested = false;
  }

  // --- the login check ------------------------------------------------------------------------

  void check() {
    const sidecar::login_check result = sidecar::check_login(files.published(), options.rotation.timeouts);
    status.login_checked(result);
    if (result.failed) status.count(*result.failed);
    // Drift the tenant's own login sees (drift.hpp), at most every few minutes.
    if (result.passed)
      if (auto f = drift.after_login_check(files.published(), options.rotation.timeouts)) status.count(*f);
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
              {{"store", files.describe_store()},
               {"output_dir", options.output_dir.string()},
               {"listen", options.listen.to_string()},
               {"admin_listen", options.admin_listen.to_string()},
               {"proxy_listen", options.proxy.listen.enabled()
                                    ? (options.proxy.listen.port != 0 ? options.proxy.listen.to_string()
                                                                      : options.proxy.listen.host + " (engine's port)")
                                    : std::string("off")},
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
  std::unique_ptr<sidecar::proxy_feed> proxy;  ///< --proxy-listen; null when off
  /// The store as the rotator writes it: every write reaches the proxy at once.
  sidecar::feeding_store fed_store;
  sidecar::sourced_store rotation_store;                  ///< the store as the rotator sees it
  std::unique_ptr<engine> db = make_engine_by_address();  // the store names the server type
  rotator rot;
  sys_clock::time_point started;
  sidecar::file_publisher files;
  sidecar::sidecar_status status;
  sidecar::drift_watch drift;
  sidecar::reload_hook hook;
  asio::steady_timer sync_timer;
  asio::steady_timer check_timer;
  asio::signal_set signals;
  std::mt19937_64 rng;
  std::unique_ptr<http::server> main_server;
  std::unique_ptr<http::server> admin_server;
  bool stopping = false;

  // Rotation.
  bool admin_requested = false;
  std::chrono::steady_clock::time_point rotate_not_before{};
  backoff_policy rotate_backoff;
  unsigned rotation_failures = 0;  ///< failed steps since the last one that succeeded
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

void agent::sync_now() {
  asio::post(impl_->io, [this] { impl_->schedule_sync(milliseconds(0)); });
}

}  // namespace tenantdb
