#include "tenantdb/secret_watch.hpp"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include "tenantdb/error.hpp"
#include "tenantdb/log.hpp"

namespace tenantdb {

const char* to_string(watch_state state) noexcept {
  switch (state) {
    case watch_state::starting: return "starting";
    case watch_state::live: return "live";
    case watch_state::down: return "down";
    case watch_state::forbidden: return "forbidden";
    case watch_state::stopped: return "stopped";
  }
  return "unknown";
}

namespace {

bool decimal(const std::string& text) {
  return !text.empty() && text.size() <= 19 &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

bool not_older_version(const std::string& candidate, const std::string& current) noexcept {
  if (!decimal(candidate) || !decimal(current)) return true;
  return std::stoull(candidate) >= std::stoull(current);
}

struct secret_watcher::impl {
  impl(kube_config config, std::string ns_, std::string name_, secret_watch_options o, std::function<void()> f)
      : client(std::move(config)),
        ns(std::move(ns_)),
        name(std::move(name_)),
        options(o),
        on_change(std::move(f)),
        label(ns + "/" + name) {}

  kube_client client;
  const std::string ns;
  const std::string name;
  const secret_watch_options options;
  const std::function<void()> on_change;
  const std::string label;

  mutable std::mutex mutex;
  std::condition_variable wake;
  bool stop_requested = false;
  std::atomic<bool> stop_flag{false};
  std::thread thread;

  // Under `mutex`.
  watch_state state = watch_state::starting;
  bool known = false;
  std::optional<secret_object> object;
  std::string object_version;  ///< the cache's resourceVersion (a DELETED event's too)
  std::string resume_version;  ///< where the next watch starts
  secret_watch_counters counters;

  // Sets the cache unless it holds a later version; true if what readers see changed.
  bool apply_locked(std::optional<secret_object> candidate, const std::string& version) {
    if (known && !not_older_version(version, object_version)) return false;
    const bool changed = !known || version != object_version || candidate.has_value() != object.has_value();
    known = true;
    object = std::move(candidate);
    object_version = version;
    return changed;
  }

  void set_state(watch_state s) {
    const std::lock_guard lock(mutex);
    state = s;
  }

  // False if stop() was called meanwhile.
  bool pause(std::chrono::milliseconds delay) {
    std::unique_lock lock(mutex);
    return !wake.wait_for(lock, delay, [this] { return stop_requested; });
  }

  void changed() {
    if (on_change) on_change();
  }

  // Waits until the store's first read (observe) says where to start watching, so
  // starting costs no request of its own. False if stop() was called meanwhile.
  bool wait_for_first_read() {
    std::unique_lock lock(mutex);
    wake.wait(lock, [this] { return stop_requested || known; });
    if (stop_requested) return false;
    resume_version = object_version;
    return true;
  }

  void run() {
    std::mt19937_64 rng{std::random_device{}()};
    bool need_list = !options.start_after_first_read;
    if (!need_list && !wait_for_first_read()) {
      set_state(watch_state::stopped);
      return;
    }
    bool forbidden_logged = false;
    unsigned failures = 0;
    while (!stop_flag.load()) {
      if (need_list) {
        try {
          auto listed = client.get_secret(ns, name);
          bool moved = false;
          {
            const std::lock_guard lock(mutex);
            ++counters.lists;
            const std::string version = listed ? listed->resource_version : std::string();
            resume_version = version;
            moved = apply_locked(std::move(listed), version);
          }
          need_list = false;
          if (moved) changed();
        } catch (const std::exception& e) {
          set_state(watch_state::down);
          ++failures;
          log::write(failures == 1 ? log::level::warn : log::level::debug,
                     "cannot list the credentials Secret for its watch; trying again",
                     {{"secret", label}, {"error", e.what()}, {"attempt", failures}});
          if (!pause(with_jitter(backoff_delay(options.backoff, failures), options.backoff.jitter, rng))) break;
          continue;
        }
      }

      std::string from;
      {
        const std::lock_guard lock(mutex);
        from = resume_version;
        ++counters.watches;
      }
      bool expired = false;
      std::string failure;
      int status = 0;
      try {
        client.watch_secret(
            ns, name, from, options.watch_timeout,
            [this, &failures, &forbidden_logged] {
              watch_state before = watch_state::starting;
              {
                const std::lock_guard lock(mutex);
                before = state;
                state = watch_state::live;
              }
              if (before == watch_state::down || before == watch_state::forbidden)
                log::info("watching the credentials Secret again", {{"secret", label}});
              failures = 0;
              forbidden_logged = false;
            },
            [this, &expired, &failure](secret_watch_event& event) { return on_event(event, expired, failure); },
            &stop_flag);
      } catch (const error& e) {
        status = e.http_status();
        failure = e.what();
      } catch (const std::exception& e) {
        failure = e.what();
      }
      if (stop_flag.load()) break;

      if (status == 410 || expired) {
        // Too old a resourceVersion: list again and watch from the new one.
        {
          const std::lock_guard lock(mutex);
          ++counters.expired;
        }
        log::info("the watch's resourceVersion expired (410); listing the Secret again",
                  {{"secret", label}, {"resource_version", from}});
        need_list = true;
        continue;
      }
      if (status == 403) {
        set_state(watch_state::forbidden);
        if (!forbidden_logged)
          log::warn(
              "cannot watch the credentials Secret (403): the Role lacks the verb \"watch\" on secrets for "
              "resourceNames [" +
                  name + "] (see manifests/rbac.yaml); reading it every --sync-interval instead",
              {{"secret", label}, {"error", failure}});
        forbidden_logged = true;
        if (!pause(options.forbidden_retry)) break;
        need_list = true;
        continue;
      }
      if (!failure.empty()) {
        {
          const std::lock_guard lock(mutex);
          ++counters.errors;
          state = watch_state::down;
        }
        ++failures;
        const auto delay = with_jitter(backoff_delay(options.backoff, failures), options.backoff.jitter, rng);
        // One warning per outage; the retries after it at debug level.
        log::write(failures == 1 ? log::level::warn : log::level::debug,
                   "the watch of the credentials Secret failed; reading the Secret every --sync-interval until it "
                   "is back",
                   {{"secret", label},
                    {"error", failure},
                    {"attempt", failures},
                    {"retry_in_ms", static_cast<std::int64_t>(delay.count())}});
        if (!pause(delay)) break;
        continue;
      }
      // The server ended the watch (its timeoutSeconds): renew it at once from where it was.
      log::debug("the watch ended; renewing it", {{"secret", label}});
    }
    set_state(watch_state::stopped);
  }

  bool on_event(secret_watch_event& event, bool& expired, std::string& failure) {
    using kind = secret_watch_event::kind;
    bool moved = false;
    switch (event.type) {
      case kind::added:
      case kind::modified:
      case kind::deleted: {
        const std::lock_guard lock(mutex);
        ++counters.changes;
        resume_version = event.resource_version;
        std::optional<secret_object> next;
        if (event.type != kind::deleted) next = std::move(event.object);
        moved = apply_locked(std::move(next), event.resource_version);
        break;
      }
      case kind::bookmark: {
        const std::lock_guard lock(mutex);
        ++counters.bookmarks;
        resume_version = event.resource_version;
        return true;
      }
      case kind::error:
        if (event.code == 410) {
          expired = true;
        } else {
          failure = "ERROR event: " + std::to_string(event.code) + " " + event.reason + ": " + event.message;
        }
        return false;
    }
    if (moved) changed();
    return true;
  }
};

secret_watcher::secret_watcher(kube_config config, std::string namespace_name, std::string name,
                               secret_watch_options options, std::function<void()> on_change)
    : impl_(std::make_unique<impl>(std::move(config), std::move(namespace_name), std::move(name), options,
                                   std::move(on_change))) {}

secret_watcher::~secret_watcher() {
  stop();
}

void secret_watcher::start() {
  if (impl_->thread.joinable()) return;
  impl_->thread = std::thread([this] {
    try {
      impl_->run();
    } catch (const std::exception& e) {
      log::error("the watch of the credentials Secret stopped unexpectedly", {{"error", e.what()}});
      impl_->set_state(watch_state::stopped);
    }
  });
}

void secret_watcher::stop() {
  {
    const std::lock_guard lock(impl_->mutex);
    impl_->stop_requested = true;
  }
  impl_->stop_flag = true;
  impl_->wake.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

secret_watcher::snapshot secret_watcher::current() const {
  const std::lock_guard lock(impl_->mutex);
  snapshot out;
  out.live = impl_->state == watch_state::live;
  out.known = impl_->known;
  out.object = impl_->object;
  return out;
}

void secret_watcher::observe(const std::optional<secret_object>& object) {
  {
    const std::lock_guard lock(impl_->mutex);
    impl_->apply_locked(object, object ? object->resource_version : std::string());
  }
  impl_->wake.notify_all();
}

watch_state secret_watcher::state() const {
  const std::lock_guard lock(impl_->mutex);
  return impl_->state;
}

std::string secret_watcher::resource_version() const {
  const std::lock_guard lock(impl_->mutex);
  return impl_->resume_version;
}

secret_watch_counters secret_watcher::counters() const {
  const std::lock_guard lock(impl_->mutex);
  return impl_->counters;
}

}  // namespace tenantdb
