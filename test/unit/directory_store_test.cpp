#include "tenantdb/store.hpp"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>

#include "temp_dir.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/error.hpp"

namespace tenantdb {
namespace {

namespace fs = std::filesystem;
using annotations = std::map<std::string, std::string>;

using test::temp_dir;

credential_data make_data(const std::map<std::string, std::string>& plain) {
  credential_data out;
  for (const auto& [k, v] : plain) out[k] = secret(v);
  return out;
}

std::map<std::string, std::string> reveal_all(const credential_data& data) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : data) out[k] = v.reveal();
  return out;
}

credential_data generation(const std::string& tag) {
  return make_data({{"database", "db"}, {"user", "user_" + tag}, {"password", "pw_" + tag}});
}

class DirectoryStore : public ::testing::Test {
protected:
  fs::path dir() const { return tmp_.path() / "store"; }
  temp_dir tmp_{"tenantdb-store"};
};

TEST_F(DirectoryStore, EmptyStoreLoadsNothing) {
  const auto store = make_directory_store(dir());
  EXPECT_FALSE(store->load().has_value());
}

TEST_F(DirectoryStore, CreateReturnsTheVersionAndLoadReturnsTheContent) {
  const auto store = make_directory_store(dir());
  const annotations notes = {{"tenantdb.io/rotated-at", "2024-05-01T10:00:00Z"}};
  const auto version = store->create(generation("a"), notes);
  ASSERT_TRUE(version.has_value());
  EXPECT_FALSE(version->empty());
  // Contract: the version is the name of the data directory ..data points at.
  EXPECT_EQ(*version, fs::read_symlink(dir() / "..data").string());
  const auto loaded = store->load();
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->version, *version);
  EXPECT_EQ(reveal_all(loaded->data), reveal_all(generation("a")));
  EXPECT_EQ(loaded->annotations, notes);
}

TEST_F(DirectoryStore, SecondCreateChangesNothing) {
  const auto store = make_directory_store(dir());
  const auto first = store->create(generation("a"), {});
  ASSERT_TRUE(first.has_value());
  EXPECT_FALSE(store->create(generation("b"), {{"k", "v"}}).has_value());
  const auto loaded = store->load();
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->version, *first);
  EXPECT_EQ(reveal_all(loaded->data), reveal_all(generation("a")));
  EXPECT_TRUE(loaded->annotations.empty());
}

TEST_F(DirectoryStore, ReplaceWithTheCurrentVersionWrites) {
  const auto store = make_directory_store(dir());
  const auto v1 = store->create(generation("a"), {});
  ASSERT_TRUE(v1.has_value());
  const auto v2 = store->replace(generation("b"), {}, *v1);
  ASSERT_TRUE(v2.has_value());
  EXPECT_NE(*v2, *v1);
  const auto loaded = store->load();
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->version, *v2);
  EXPECT_EQ(reveal_all(loaded->data), reveal_all(generation("b")));
}

TEST_F(DirectoryStore, ReplaceWithAStaleVersionChangesNothing) {
  const auto store = make_directory_store(dir());
  const auto v1 = store->create(generation("a"), {});
  ASSERT_TRUE(v1.has_value());
  const auto v2 = store->replace(generation("b"), {{"n", "2"}}, *v1);
  ASSERT_TRUE(v2.has_value());
  EXPECT_FALSE(store->replace(generation("c"), {{"n", "3"}}, *v1).has_value());
  EXPECT_FALSE(store->replace(generation("c"), {}, "not-a-version").has_value());
  EXPECT_FALSE(store->replace(generation("c"), {}, "").has_value());
  const auto loaded = store->load();
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->version, *v2);
  EXPECT_EQ(reveal_all(loaded->data), reveal_all(generation("b")));
  EXPECT_EQ(loaded->annotations, (annotations{{"n", "2"}}));
}

TEST_F(DirectoryStore, ReplaceOnAnEmptyStoreChangesNothing) {
  const auto store = make_directory_store(dir());
  EXPECT_FALSE(store->replace(generation("a"), {}, "..2024_01_01_00_00_00.abcdef").has_value());
  EXPECT_FALSE(store->load().has_value());
}

TEST_F(DirectoryStore, AnnotationsRoundTrip) {
  const auto store = make_directory_store(dir());
  const annotations first = {{"tenantdb.io/rotated-at", "2024-05-01T10:00:00Z"},
                             {"tenantdb.io/generation", "7"},
                             {"with-equals", "a=b=c"},
                             {"empty", ""}};
  const auto v1 = store->create(generation("a"), first);
  ASSERT_TRUE(v1.has_value());
  auto loaded = store->load();
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->annotations, first);
  EXPECT_EQ(reveal_all(loaded->data), reveal_all(generation("a"))) << "annotations must not show up as data";

  // replace merges (store.hpp): the named annotation changes, the others stay.
  const annotations second = {{"tenantdb.io/generation", "8"}};
  ASSERT_TRUE(store->replace(generation("b"), second, *v1).has_value());
  loaded = store->load();
  ASSERT_TRUE(loaded.has_value());
  annotations merged = first;
  merged["tenantdb.io/generation"] = "8";
  EXPECT_EQ(loaded->annotations, merged);
}

TEST_F(DirectoryStore, AnnotationsAreNotAVisibleFile) {
  // In local mode the store's directory is the workload's --output-dir: the workload
  // should find its credential keys there, not the store's bookkeeping.
  const auto store = make_directory_store(dir());
  ASSERT_TRUE(store->create(generation("a"), {{"tenantdb.io/generation", "1"}}).has_value());
  std::vector<std::string> visible;
  for (const auto& e : fs::directory_iterator(dir())) {
    const std::string name = e.path().filename().string();
    if (name.front() != '.') visible.push_back(name);
  }
  std::sort(visible.begin(), visible.end());
  EXPECT_EQ(visible, (std::vector<std::string>{"database", "password", "user"}));
}

TEST_F(DirectoryStore, SeparateInstancesShareTheDirectory) {
  const auto a = make_directory_store(dir());
  const auto b = make_directory_store(dir());
  const auto v1 = a->create(generation("a"), {});
  ASSERT_TRUE(v1.has_value());
  EXPECT_FALSE(b->create(generation("b"), {}).has_value());
  const auto seen = b->load();
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->version, *v1);
  const auto v2 = b->replace(generation("b"), {}, seen->version);
  ASSERT_TRUE(v2.has_value());
  EXPECT_FALSE(a->replace(generation("c"), {}, *v1).has_value());
  EXPECT_EQ(reveal_all(a->load()->data), reveal_all(generation("b")));
}

TEST_F(DirectoryStore, DescribeNamesTheDirectory) {
  const auto store = make_directory_store(dir());
  EXPECT_NE(store->describe().find(dir().string()), std::string::npos) << store->describe();
}

TEST_F(DirectoryStore, RacingCreatesHaveExactlyOneWinner) {
  constexpr int rounds = 40;
  constexpr int threads_per_round = 4;
  for (int round = 0; round < rounds; ++round) {
    const fs::path round_dir = tmp_.path() / ("race-" + std::to_string(round));
    std::atomic<int> ready{0};
    std::vector<std::optional<std::string>> results(threads_per_round);
    std::vector<std::thread> threads;
    for (int t = 0; t < threads_per_round; ++t) {
      threads.emplace_back([&, t] {
        const auto store = make_directory_store(round_dir);  // one instance per "process"
        ++ready;
        while (ready.load() < threads_per_round) std::this_thread::yield();
        results[t] = store->create(generation("t" + std::to_string(t)), {{"winner", std::to_string(t)}});
      });
    }
    for (auto& th : threads) th.join();
    int winners = 0;
    int winner = -1;
    for (int t = 0; t < threads_per_round; ++t)
      if (results[t]) {
        ++winners;
        winner = t;
      }
    ASSERT_EQ(winners, 1) << "round " << round;
    const auto loaded = make_directory_store(round_dir)->load();
    ASSERT_TRUE(loaded.has_value());
    EXPECT_EQ(loaded->version, *results[winner]);
    EXPECT_EQ(reveal_all(loaded->data), reveal_all(generation("t" + std::to_string(winner))));
  }
}

TEST_F(DirectoryStore, RacingReplacesNeverBothWinOnOneVersion) {
  // Optimistic concurrency: of all replaces conditioned on the same version, at most one
  // may succeed, or an update is lost.
  ASSERT_TRUE(make_directory_store(dir())->create(generation("init"), {}).has_value());
  constexpr int writers = 4;
  constexpr int attempts = 60;
  std::mutex mutex;
  std::map<std::string, int> wins_per_base;
  int total_wins = 0;
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      const auto store = make_directory_store(dir());
      for (int i = 0; i < attempts; ++i) {
        const auto current = store->load();
        if (!current) continue;
        const auto next =
            store->replace(generation("w" + std::to_string(w) + "-" + std::to_string(i)), {}, current->version);
        if (next) {
          std::lock_guard lock(mutex);
          ++wins_per_base[current->version];
          ++total_wins;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_GT(total_wins, 0);
  for (const auto& [base, wins] : wins_per_base)
    EXPECT_EQ(wins, 1) << "version " << base << " was replaced " << wins << " times";
}

}  // namespace
}  // namespace tenantdb
