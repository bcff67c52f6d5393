#pragma once
/// \file
/// Follows one Secret with a Kubernetes watch on a thread of its own, keeping its latest
/// state in memory, so readers learn of a change when it happens instead of polling the
/// API server (kube_client::watch_secret).
///
/// The thread starts from the store's first read (or lists: GETs the Secret), then
/// watches from that resourceVersion with
/// bookmarks, resuming from the last resourceVersion it saw (an event's or a bookmark's)
/// whenever a watch ends: at once when the server ended it normally (its timeoutSeconds),
/// after a backoff with jitter on an error. A 410 Gone/Expired, as the HTTP status or as
/// an ERROR event, means the resourceVersion is too old: it lists again and watches from
/// the new one, so no change is lost. A 403 on the watch (the Role lacks `watch`) is
/// logged once, naming the missing verb; the watch is tried again after
/// `forbidden_retry`. While the watch is not streaming, current() says so and the reader
/// reads the API itself (polls).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "tenantdb/kube.hpp"
#include "tenantdb/retry.hpp"

namespace tenantdb {

struct secret_watch_options {
  /// timeoutSeconds of each watch; the server ends it then and it is renewed at once.
  std::chrono::seconds watch_timeout{std::chrono::hours(1)};
  /// Reconnecting after an error: 1 s doubling up to 1 min, +-25%.
  backoff_policy backoff{std::chrono::seconds(1), std::chrono::minutes(1), 2.0, 0.25};
  /// After a 403 on the watch, how long until it is tried again.
  std::chrono::milliseconds forbidden_retry{std::chrono::hours(1)};
  /// true: the first watch starts from the first observe() (the store's first read)
  /// instead of a GET of its own; false: the thread lists first.
  bool start_after_first_read = true;
};

/// Where the watch stands.
enum class watch_state {
  starting,   ///< not streaming yet
  live,       ///< streaming: current() is the Secret as the API has it
  down,       ///< an error; reconnecting with backoff
  forbidden,  ///< 403 on the watch: RBAC lacks the verb; tried again after forbidden_retry
  stopped,
};

const char* to_string(watch_state state) noexcept;

/// Counters for tests, metrics and benchmarks.
struct secret_watch_counters {
  std::uint64_t watches = 0;    ///< watch requests sent
  std::uint64_t lists = 0;      ///< GETs of the Secret (the first list and every relist)
  std::uint64_t changes = 0;    ///< ADDED, MODIFIED, DELETED events
  std::uint64_t bookmarks = 0;  ///< BOOKMARK events
  std::uint64_t expired = 0;    ///< 410s (HTTP status or ERROR event)
  std::uint64_t errors = 0;     ///< watches that ended in an error other than 410
};

class secret_watcher {
public:
  /// Gets its own client (a watch holds its connection): `config` as the store's client
  /// has it. `on_change` runs on the watch thread after the Secret changed (an event, or
  /// a list that found it changed); keep it short and non-blocking (post to a loop).
  secret_watcher(kube_config config, std::string namespace_name, std::string name, secret_watch_options options,
                 std::function<void()> on_change);
  ~secret_watcher();  ///< stop()
  secret_watcher(const secret_watcher&) = delete;
  secret_watcher& operator=(const secret_watcher&) = delete;

  /// Starts the thread (a list, then the watch). Once only.
  void start();
  /// Ends the watch (within about a second) and joins the thread. Idempotent.
  void stop();

  /// The Secret as the watch last saw it.
  struct snapshot {
    bool live = false;                    ///< false: the cache may be behind; read the API instead
    bool known = false;                   ///< a list or an event has been seen
    std::optional<secret_object> object;  ///< std::nullopt: no such Secret
  };
  snapshot current() const;

  /// Tells the cache what this process learned otherwise: a GET's answer (`object`, or
  /// std::nullopt for a 404) or its own write's. Kept unless the cache already holds a
  /// later resourceVersion (resourceVersions are compared as numbers when both are,
  /// which etcd's are; otherwise the newer arrival wins).
  void observe(const std::optional<secret_object>& object);

  watch_state state() const;
  /// The resourceVersion the next watch resumes from.
  std::string resource_version() const;
  secret_watch_counters counters() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// True unless `candidate` is older than `current`: both decimal numbers and
/// candidate < current. Exposed for tests.
bool not_older_version(const std::string& candidate, const std::string& current) noexcept;

}  // namespace tenantdb
