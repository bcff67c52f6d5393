// The watch of one Secret (kube_client::watch_secret, secret_watcher and the watched
// Secret store) against the Kubernetes API stand-in: events, bookmarks, resuming after the
// API server restarts, relisting on 410 Gone (as an ERROR event and as the HTTP status),
// renewing a watch the server ended, and a 403 on the verb. No mocks.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <openssl/evp.h>

#include "eventually.hpp"
#include "kube_standin.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/kube.hpp"
#include "tenantdb/log.hpp"
#include "tenantdb/secret_watch.hpp"
#include "tenantdb/store.hpp"

using namespace std::chrono_literals;

namespace tenantdb {
namespace {

constexpr const char* ns = "tenants";
constexpr const char* name = "vc-db-watched";
constexpr const char* user = "system:serviceaccount:tenants:tenantdb";
constexpr const char* token = "watch-test-token-4f1a";

using test::eventually;

std::string b64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// Writes the Secret as another client would; watchers see ADDED or MODIFIED.
void put_secret(test::KubeStandin& api, const std::string& secret_name, const std::string& value) {
  api.put_object(R"({"apiVersion":"v1","kind":"Secret","type":"Opaque","metadata":{"name":")" + secret_name +
                 R"(","namespace":")" + ns + R"("},"data":{"password":")" + b64(value) + R"("}})");
}

std::string value_in(const std::optional<secret_object>& object) {
  if (!object) return "<no secret>";
  const auto it = object->data.find("password");
  return it == object->data.end() ? "<no key>" : it->second.reveal();
}

// Log lines, captured for the duration of a test.
struct captured_log {
  std::mutex mutex;
  std::vector<std::string> lines;
  captured_log() {
    log::set_sink([this](std::string_view line) {
      const std::lock_guard lock(mutex);
      lines.emplace_back(line);
    });
  }
  ~captured_log() { log::set_sink(nullptr); }
  std::size_t count(const std::string& needle) {
    const std::lock_guard lock(mutex);
    std::size_t n = 0;
    for (const auto& l : lines) n += l.find(needle) != std::string::npos ? 1 : 0;
    return n;
  }
};

class WatchTest : public ::testing::Test {
protected:
  static test::KubeStandinOptions standin_options() {
    test::KubeStandinOptions o;
    o.bookmark_interval = 200ms;
    o.watch_history = 3;  // a few events: a watch that falls further behind gets 410
    return o;
  }

  WatchTest() : api_(standin_options()) {
    api_.add_token(token, user);
    api_.allow(user, "get", ns, "secrets", name);
    api_.allow(user, "update", ns, "secrets", name);
    api_.allow(user, "watch", ns, "secrets", name);
    put_secret(api_, name, "first");
  }

  kube_config config() const {
    kube_config c;
    c.server = api_.url();
    c.ca_pem = api_.ca_pem();
    c.token = secret(token);
    c.namespace_name = ns;
    return c;
  }

  // A watcher that lists first, counting the changes it reports.
  std::unique_ptr<secret_watcher> watcher(secret_watch_options o = {}) {
    o.start_after_first_read = false;
    o.backoff = backoff_policy{50ms, 500ms, 2.0, 0.25};  // reconnects quickly after a restart
    auto w = std::make_unique<secret_watcher>(config(), ns, name, o, [this] { ++changes_; });
    w->start();
    return w;
  }

  static bool holds(const secret_watcher& w, const std::string& value) {
    const auto snap = w.current();
    return snap.live && value_in(snap.object) == value;
  }

  test::KubeStandin api_;
  std::atomic<int> changes_{0};
};

TEST_F(WatchTest, ClientStreamsEventsAndBookmarksWithTheRealQuery) {
  kube_client client(config());
  const auto first = client.get_secret(ns, name);
  ASSERT_TRUE(first);
  std::atomic<bool> stop{false};
  std::atomic<bool> opened{false};
  std::mutex mutex;
  std::vector<secret_watch_event::kind> kinds;
  std::string modified_value;
  std::string bookmark_version;
  std::exception_ptr failure;
  std::thread streaming([&] {
    try {
      client.watch_secret(
          ns, name, first->resource_version, 60s, [&] { opened = true; },
          [&](secret_watch_event& e) {
            const std::lock_guard lock(mutex);
            kinds.push_back(e.type);
            if (e.type == secret_watch_event::kind::modified) modified_value = value_in(e.object);
            if (e.type == secret_watch_event::kind::bookmark) bookmark_version = e.resource_version;
            return true;
          },
          &stop);
    } catch (...) {
      failure = std::current_exception();
    }
  });
  ASSERT_TRUE(eventually([&] { return opened.load(); }, 30s));
  put_secret(api_, name, "second");
  // Another Secret's change is filtered out by the field selector, but moves the bookmarks on.
  put_secret(api_, "someone-else", "x");
  const std::string latest = std::to_string(api_.resource_version());
  EXPECT_TRUE(eventually(
      [&] {
        const std::lock_guard lock(mutex);
        return modified_value == "second" && bookmark_version == latest;
      },
      30s))
      << "modified=" << modified_value << " bookmark=" << bookmark_version << " latest=" << latest;
  stop = true;
  streaming.join();  // the stop flag ends the watch
  if (failure) std::rethrow_exception(failure);
  {
    const std::lock_guard lock(mutex);
    for (const auto k : kinds) EXPECT_NE(k, secret_watch_event::kind::added) << "resumed from the listed version";
  }
  // The request is the real API's watch of one Secret.
  const auto requests = api_.requests();
  bool seen = false;
  for (const auto& r : requests)
    if (r.target.find("/api/v1/namespaces/tenants/secrets?watch=1&fieldSelector=metadata.name%3Dvc-db-watched"
                      "&resourceVersion=" +
                      first->resource_version + "&allowWatchBookmarks=true&timeoutSeconds=60") == 0 &&
        r.status == 200)
      seen = true;
  EXPECT_TRUE(seen) << "no watch request with the expected query";
}

TEST_F(WatchTest, ClientRefusesAForbiddenWatchWithTheHttpStatus) {
  api_.revoke(user);
  api_.allow(user, "get", ns, "secrets", name);
  kube_client client(config());
  try {
    client.watch_secret(ns, name, "", 60s, {}, [](secret_watch_event&) { return true; });
    FAIL() << "a forbidden watch did not throw";
  } catch (const error& e) {
    EXPECT_EQ(e.http_status(), 403) << e.what();
  }
}

TEST_F(WatchTest, WatcherFollowsChangesAndBookmarksAdvanceItsResourceVersion) {
  auto w = watcher();
  ASSERT_TRUE(eventually([&] { return holds(*w, "first"); }, 30s));
  const int before = changes_;
  put_secret(api_, name, "second");
  EXPECT_TRUE(eventually([&] { return holds(*w, "second"); }, 30s));
  EXPECT_GT(changes_, before) << "on_change was not called";
  // Changes elsewhere reach the watcher only as bookmarks, which move its resume point.
  put_secret(api_, "someone-else", "x");
  put_secret(api_, "someone-else", "y");
  const std::string latest = std::to_string(api_.resource_version());
  EXPECT_TRUE(eventually([&] { return w->resource_version() == latest; }, 30s))
      << w->resource_version() << " vs " << latest;
  EXPECT_GE(w->counters().bookmarks, 1u);
  EXPECT_TRUE(holds(*w, "second"));
}

TEST_F(WatchTest, WatcherResumesAfterTheApiServerRestartsWithoutRelisting) {
  auto w = watcher();
  ASSERT_TRUE(eventually([&] { return holds(*w, "first"); }, 30s));
  const auto lists = w->counters().lists;
  // Changed while the server is away: the resumed watch replays it from history.
  api_.restart([&] { put_secret(api_, name, "while-down"); });
  EXPECT_TRUE(eventually([&] { return holds(*w, "while-down"); }, 30s)) << to_string(w->state());
  EXPECT_GE(w->counters().watches, 2u);
  EXPECT_EQ(w->counters().expired, 0u);
  EXPECT_EQ(w->counters().lists, lists) << "resumed by relisting, not from its resourceVersion";
  // And it keeps following.
  put_secret(api_, name, "after");
  EXPECT_TRUE(eventually([&] { return holds(*w, "after"); }, 30s));
}

TEST_F(WatchTest, WatcherRelistsOnAnExpiredErrorEventAndLosesNoChange) {
  auto w = watcher();
  ASSERT_TRUE(eventually([&] { return holds(*w, "first"); }, 30s));
  const auto lists = w->counters().lists;
  // While the server is away, more changes than its history keeps: the resumed watch's
  // resourceVersion is too old (ERROR event, 410 Expired).
  api_.restart([&] {
    put_secret(api_, name, "lost-from-history");
    for (int i = 0; i < 5; ++i) put_secret(api_, "someone-else", std::to_string(i));
    put_secret(api_, name, "latest");
    for (int i = 0; i < 5; ++i) put_secret(api_, "someone-else", "again-" + std::to_string(i));
  });
  EXPECT_TRUE(eventually([&] { return holds(*w, "latest"); }, 30s)) << to_string(w->state());
  EXPECT_GE(w->counters().expired, 1u);
  EXPECT_GT(w->counters().lists, lists);
  put_secret(api_, name, "after");
  EXPECT_TRUE(eventually([&] { return holds(*w, "after"); }, 30s));
}

TEST_F(WatchTest, WatcherRelistsOnHttp410) {
  auto w = watcher();
  ASSERT_TRUE(eventually([&] { return holds(*w, "first"); }, 30s));
  const auto lists = w->counters().lists;
  test::KubeStandin::Fault gone;
  gone.status = 410;
  gone.path_filter = "watch=1";
  api_.fail_next(gone);
  api_.restart([&] { put_secret(api_, name, "while-down"); });
  EXPECT_TRUE(eventually([&] { return holds(*w, "while-down"); }, 30s)) << to_string(w->state());
  EXPECT_GE(w->counters().expired, 1u);
  EXPECT_GT(w->counters().lists, lists);
}

TEST_F(WatchTest, WatcherRenewsAWatchTheServerEnded) {
  secret_watch_options o;
  o.watch_timeout = 1s;
  auto w = watcher(o);
  ASSERT_TRUE(eventually([&] { return holds(*w, "first"); }, 30s));
  EXPECT_TRUE(eventually([&] { return w->counters().watches >= 3; }, 60s));
  EXPECT_EQ(w->counters().errors, 0u);
  put_secret(api_, name, "after-renewals");
  EXPECT_TRUE(eventually([&] { return holds(*w, "after-renewals"); }, 30s));
}

TEST_F(WatchTest, ForbiddenWatchIsLoggedOnceNamingTheVerbAndIsNotLive) {
  captured_log logs;
  api_.revoke(user);
  api_.allow(user, "get", ns, "secrets", name);
  auto w = watcher();
  ASSERT_TRUE(eventually([&] { return w->state() == watch_state::forbidden; }, 30s)) << to_string(w->state());
  EXPECT_FALSE(w->current().live);
  EXPECT_EQ(logs.count(R"(lacks the verb \"watch\" on secrets for resourceNames [vc-db-watched])"), 1u);
}

TEST_F(WatchTest, WatchedStoreReadsFromTheWatchAndGetsOnlyToResync) {
  kube_client client(config());
  secret_watch_options o;  // starts from the store's first read
  o.backoff = backoff_policy{50ms, 500ms, 2.0, 0.25};
  secret_watcher w(config(), ns, name, o, [this] { ++changes_; });
  w.start();
  auto store = make_watched_secret_store(client, ns, name, {}, w, std::chrono::hours(1));
  ASSERT_TRUE(store->load());  // a GET: the watch is not up yet
  ASSERT_TRUE(eventually([&] { return w.state() == watch_state::live; }, 30s));
  EXPECT_EQ(w.counters().lists, 0u) << "the watch started from the store's read, not a GET of its own";
  api_.clear_requests();
  put_secret(api_, name, "second");
  ASSERT_TRUE(eventually([&] { return holds(w, "second"); }, 30s));
  for (int i = 0; i < 3; ++i) {
    const auto loaded = store->load();
    ASSERT_TRUE(loaded);
    EXPECT_EQ(loaded->data.at("password").reveal(), "second");
  }
  EXPECT_EQ(api_.request_count("GET", "/secrets/vc-db-watched"), 0u) << "loads went to the API";

  // The store's own write reaches its next load at once, before the watch reports it.
  const auto loaded = store->load();
  credential_data next = loaded->data;
  next.insert_or_assign("password", secret("third"));
  ASSERT_TRUE(store->replace(next, {}, loaded->version));
  EXPECT_EQ(store->load()->data.at("password").reveal(), "third");
  EXPECT_EQ(api_.request_count("GET", "/secrets/vc-db-watched"), 0u);

  // With a resync interval of zero every load is a GET.
  auto resyncing = make_watched_secret_store(client, ns, name, {}, w, 0ms);
  ASSERT_TRUE(resyncing->load());
  ASSERT_TRUE(resyncing->load());
  EXPECT_EQ(api_.request_count("GET", "/secrets/vc-db-watched"), 2u);
}

// A watch from the current resourceVersion may send nothing for a long time (no change,
// no bookmark yet): it is live, and the store reads from it, once the API accepted it.
TEST(WatchIdle, AWatchIsLiveFromItsAnswerNotFromItsFirstEvent) {
  test::KubeStandinOptions o;
  o.bookmark_interval = std::chrono::hours(1);
  test::KubeStandin api(o);
  api.add_token(token, user);
  api.allow(user, "get", ns, "secrets", name);
  api.allow(user, "watch", ns, "secrets", name);
  put_secret(api, name, "first");
  kube_config c;
  c.server = api.url();
  c.ca_pem = api.ca_pem();
  c.token = secret(token);
  kube_client client(c);
  secret_watcher w(c, ns, name, {}, {});
  w.start();
  auto store = make_watched_secret_store(client, ns, name, {}, w, std::chrono::hours(1));
  ASSERT_TRUE(store->load());
  ASSERT_TRUE(eventually([&] { return api.active_watches() == 1; }, 30s));
  EXPECT_TRUE(eventually([&] { return w.state() == watch_state::live; }, 30s)) << to_string(w.state());
  api.clear_requests();
  ASSERT_TRUE(store->load());
  EXPECT_EQ(api.request_count("GET"), 0u) << "an idle watch was not taken as live";
}

TEST(WatchVersions, NumericVersionsAreComparedAndOthersAreNot) {
  EXPECT_TRUE(not_older_version("10", "9"));
  EXPECT_TRUE(not_older_version("10", "10"));
  EXPECT_FALSE(not_older_version("9", "10"));
  EXPECT_TRUE(not_older_version("abc", "10"));
  EXPECT_TRUE(not_older_version("", "10"));
}

}  // namespace
}  // namespace tenantdb
