// The rotation state machine (rotation.hpp) without servers: the tests that never needed
// one (offline rotator, schedule). The same protocol against the real servers:
// test/integration/rotation_dbtest.cpp.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unistd.h>

#include <rapidjson/document.h>

#include "state_machines.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/rotation.hpp"
#include "tenantdb/store.hpp"

namespace fs = std::filesystem;
using namespace tenantdb;
using namespace tenantdb::test;
using namespace std::chrono_literals;
using clock_type = rotator::clock;

namespace {

// ---------------------------------------------------------------------------------------
// No server needed (moved from test/integration/rotation_dbtest.cpp). The fake engine
// proves these decide without logging in.

credential_data server_keys() {
  credential_data d;
  d[keys::type] = secret("mariadb");
  d[keys::host] = secret("db.example.internal");
  d[keys::port] = secret("3307");
  d[keys::ssl_mode] = secret("verify-ca");
  return d;
}

// A store with credentials for a server nobody listens on: the cases below must decide
// without logging in.
struct offline_store {
  fs::path dir = fs::temp_directory_path() / ("tenantdb-rotation-offline-" + std::to_string(::getpid()) + "-" +
                                              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::unique_ptr<credential_store> store;
  fail_count calls;
  fake_engine server{calls};
  offline_store() {
    fs::remove_all(dir);
    store = make_directory_store(dir);
  }
  ~offline_store() {
    fs::remove_all(dir);
    EXPECT_EQ(calls.count("engine.verify_login") + calls.count("engine.change_own_password"), 0u)
        << "the rotator logged in";
  }
  void put(const std::map<std::string, std::string>& annotations, bool with_pending) {
    credential_data d = server_keys();
    d[keys::database] = secret("db");
    d[keys::user] = secret("db_a");
    d[keys::password] = secret("PasswordPasswordPassword1");
    d[keys::standby_user] = secret("db_b");
    d[keys::standby_password] = secret("PasswordPasswordPassword2");
    if (with_pending) d[pending_password_key] = secret("PasswordPasswordPassword3");
    ASSERT_TRUE(store->create(d, annotations));
  }
};

TEST(RotatorOffline, AnEmptyStoreIsRetryableAndAdvanceHasNothingToDo) {
  offline_store o;
  rotator r(o.server, *o.store, rotation_options{});
  EXPECT_EQ(r.advance(clock_type::now()), rotation_outcome::nothing);
  try {
    r.rotate(clock_type::now());
    FAIL() << "rotate() on an empty store";
  } catch (const error& e) {
    EXPECT_EQ(e.kind(), error_kind::unavailable) << e.what();
    EXPECT_TRUE(e.is_retryable());
  }
}

TEST(RotatorOffline, AnUnreadableRotationRecordIsDroppedOnlyWithoutAPendingPassword) {
  {
    offline_store o;
    o.put({{annotations::rotation, "{garbage"}}, false);
    rotator r(o.server, *o.store, rotation_options{});
    EXPECT_EQ(r.rotate(clock_type::now()), rotation_outcome::nothing) << "in flight until cleared";
    EXPECT_EQ(r.advance(clock_type::now()), rotation_outcome::recovered);
    EXPECT_FALSE(in_flight(*o.store->load()));
  }
  {
    offline_store o;
    o.put({{annotations::rotation, "{garbage"}}, true);
    const auto before = o.store->load()->version;
    rotator r(o.server, *o.store, rotation_options{});
    EXPECT_EQ(r.advance(clock_type::now()), rotation_outcome::nothing);
    EXPECT_EQ(o.store->load()->version, before);
  }
}

std::string rfc3339(clock_type::time_point tp) {
  const auto t = std::chrono::floor<std::chrono::seconds>(tp);
  const auto days = std::chrono::floor<std::chrono::days>(t);
  const std::chrono::year_month_day ymd{days};
  const std::chrono::hh_mm_ss hms{t - days};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

TEST(RotatorOffline, ARotationHeldByALiveReplicaIsLeftAlone) {
  offline_store o;
  const auto now = clock_type::now();
  o.put(
      {{annotations::rotation, R"({"phase":"standby","holder":"pod-x","id":"1","started":")" + rfc3339(now) + R"("})"}},
      true);
  const auto before = o.store->load()->version;
  rotation_options opts;
  opts.holder = "pod-y";
  rotator r(o.server, *o.store, opts);
  EXPECT_EQ(r.advance(now + 10s), rotation_outcome::nothing);
  EXPECT_EQ(r.rotate(now + 10s), rotation_outcome::nothing);
  EXPECT_EQ(o.store->load()->version, before);
}

stored_credentials with_database(std::string name) {
  stored_credentials s;
  s.data[keys::database] = secret(std::move(name));
  return s;
}

TEST(Schedule, NextDueIsLastRotationPlusEveryWithADeterministicPerTenantOffset) {
  const auto fallback = clock_type::now();
  const auto every = std::chrono::seconds(24h);
  std::set<clock_type::time_point> distinct;
  for (int i = 0; i < 50; ++i) {
    const auto s = with_database("vcluster_tenant_" + std::to_string(i));
    const auto due = rotator::next_due(s, every, 0.1, fallback);
    EXPECT_EQ(due, rotator::next_due(s, every, 0.1, fallback)) << "not deterministic";
    EXPECT_GE(due, fallback + every - every / 10);
    EXPECT_LE(due, fallback + every + every / 10);
    distinct.insert(due);
  }
  EXPECT_GT(distinct.size(), 40u) << "tenants should spread out";

  auto s = with_database("x");
  EXPECT_EQ(rotator::next_due(s, every, 0.0, fallback), fallback + every);
  s.annotations[annotations::last_rotation] = "2024-05-01T12:00:00Z";
  const auto last = std::chrono::sys_days{std::chrono::year{2024} / 5 / 1} + 12h;
  EXPECT_EQ(rotator::next_due(s, every, 0.0, fallback), last + every);
  s.annotations[annotations::last_rotation] = "2024-05-01T14:00:00+02:00";
  EXPECT_EQ(rotator::next_due(s, every, 0.0, fallback), last + every);
  s.annotations[annotations::last_rotation] = "yesterday";
  EXPECT_EQ(rotator::next_due(s, every, 0.0, fallback), fallback + every);
}

TEST(Schedule, RotateNowAndGraceEndsReadTheAnnotations) {
  stored_credentials s;
  EXPECT_FALSE(rotator::rotation_requested(s));
  s.annotations[annotations::rotate_now] = "yes";
  EXPECT_TRUE(rotator::rotation_requested(s));
  s.annotations[annotations::rotate_now] = "";  // how a store that cannot delete annotations removes one
  EXPECT_FALSE(rotator::rotation_requested(s));

  EXPECT_FALSE(rotator::grace_ends(s));
  s.annotations[annotations::rotation] =
      R"({"phase":"grace","holder":"p","id":"1","started":"2024-05-01T12:00:00Z","graceUntil":"2024-05-01T12:10:00Z"})";
  const auto end = rotator::grace_ends(s);
  ASSERT_TRUE(end);
  EXPECT_EQ(*end, std::chrono::sys_days{std::chrono::year{2024} / 5 / 1} + 12h + 10min);
  s.annotations[annotations::rotation] =
      R"({"phase":"standby","holder":"p","id":"1","started":"2024-05-01T12:00:00Z"})";
  EXPECT_FALSE(rotator::grace_ends(s));
  s.annotations[annotations::rotation] = "{not json";
  EXPECT_FALSE(rotator::grace_ends(s));
}

}  // namespace
