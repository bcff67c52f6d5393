// The rotation state machine (rotation.hpp) on the fake server and store: every call of a
// rotate, retire or recovery failed in turn, with what each failure leaves behind; lost
// races; the lockout rule. And the tests that never needed a server (offline rotator,
// schedule). The same protocol against the real servers: test/integration/rotation_dbtest.cpp.

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

const clock_type::time_point t0 = std::chrono::sys_days{std::chrono::year{2026} / 12 / 1} + 12h;

rotation_options options(rotation_strategy strategy, std::string holder = "pod-a") {
  rotation_options o;
  o.strategy = strategy;
  o.holder = std::move(holder);
  o.grace = 10min;
  o.takeover_after = 2min;
  o.ca_file = "/creds/caCert";
  return o;
}

std::string rotation_member(const stored_credentials& s, const char* key) {
  if (!has_annotation(s, annotations::rotation)) return "<no rotation>";
  rapidjson::Document doc;
  const std::string& text = s.annotations.at(annotations::rotation);
  doc.Parse(text.data(), text.size());
  if (doc.HasParseError() || !doc.IsObject()) return "<unreadable>";
  const auto it = doc.FindMember(key);
  if (it == doc.MemberEnd() || !it->value.IsString()) return "<missing>";
  return {it->value.GetString(), it->value.GetStringLength()};
}

/// Thrown by a fault hook: the rotating process dies there (nothing cleaned up).
struct simulated_crash {};

fault_hook crash_at(std::string_view point) {
  return [point = std::string(point)](std::string_view reached) {
    if (reached == point) throw simulated_crash{};
  };
}

/// What the sidecar does on its next syncs once the failure is gone: finish what is in
/// flight, then rotate if no rotation completed yet.
void sync_until_rotated(tenant_world& w, rotator& r, clock_type::time_point now) {
  r.advance(now);
  if (!has_annotation(w.stored(), annotations::last_rotation)) {
    EXPECT_EQ(r.rotate(now), rotation_outcome::rotated);
  }
}

/// After one completed dual rotation from `before`: the standby holds the new active
/// credential, the previous one works until the grace period ends.
void expect_switched(const tenant_world& w, const stored_credentials& before, const std::string& when) {
  const auto& s = w.stored();
  EXPECT_EQ(active_of(s).user, standby_of(before)->user) << "the accounts did not switch " << when;
  EXPECT_FALSE(active_of(s).password == active_of(before).password) << when;
  EXPECT_EQ(pending_of(s), nullptr) << "a pending password is left " << when;
  EXPECT_EQ(rotation_member(s, "phase"), "grace") << when;
  EXPECT_TRUE(has_annotation(s, annotations::last_rotation)) << when;
  expect_workload_logs_in(w, when);
  ASSERT_TRUE(standby_of(s)) << when;
  EXPECT_EQ(standby_of(s)->user, active_of(before).user) << when;
  EXPECT_TRUE(standby_of(s)->password == active_of(before).password) << when;
  EXPECT_TRUE(logs_in(w, active_of(before))) << "the previous credential stopped before its grace period " << when;
}

// ---------------------------------------------------------------------------------------
// Every call failed in turn.

class RotationFailures : public ::testing::TestWithParam<bool> {
protected:
  bool after_the_work() const { return GetParam(); }
};

INSTANTIATE_TEST_SUITE_P(Rotation, RotationFailures, ::testing::Values(false, true),
                         [](const auto& test) { return test.param ? "AnswerLost" : "Refused"; });

TEST_P(RotationFailures, DualRotateFailingEachCallLeavesTheWorkloadWorkingAndARerunCompletes) {
  for (std::size_t n = 1;; ++n) {
    ASSERT_LT(n, 50u) << "rotate() never completed";
    tenant_world w;
    w.provision_tenant(rotation_strategy::dual);
    const stored_credentials before = w.stored();
    rotator r(w.server, w.store, options(rotation_strategy::dual));
    w.fail_nth(n, after_the_work());
    std::optional<rotation_outcome> outcome;
    try {
      outcome = r.rotate(t0);
    } catch (const error& e) {
      ASSERT_TRUE(w.failures.fired()) << "rotate() failed on its own: " << e.what();
    }
    const std::string when = "after call " + std::to_string(n) + " (" + w.failed_call() + ") failed";
    if (!w.failures.fired()) {
      EXPECT_EQ(outcome, rotation_outcome::rotated);
      expect_switched(w, before, "without a failure");
      EXPECT_GE(n, 4u) << "load, claim, change, switch: fewer calls than the protocol has steps";
      return;
    }
    EXPECT_FALSE(outcome) << "rotate() returned normally " << when << ": the failure was swallowed";
    expect_workload_logs_in(w, when);
    expect_no_unclaimed_password(w, when);

    w.no_failures();
    sync_until_rotated(w, r, t0 + 1min);
    expect_switched(w, before, "after the rerun, " + when);
  }
}

TEST_P(RotationFailures, InPlaceRotateFailingEachCallKeepsAWorkingPasswordInTheStoreAndARerunCompletes) {
  for (std::size_t n = 1;; ++n) {
    ASSERT_LT(n, 50u) << "rotate() never completed";
    tenant_world w;
    w.provision_tenant(rotation_strategy::in_place);
    const login before = active_of(w.stored());
    rotator r(w.server, w.store, options(rotation_strategy::in_place));
    w.fail_nth(n, after_the_work());
    std::optional<rotation_outcome> outcome;
    try {
      outcome = r.rotate(t0);
    } catch (const error& e) {
      ASSERT_TRUE(w.failures.fired()) << "rotate() failed on its own: " << e.what();
    }
    const std::string when = "after call " + std::to_string(n) + " (" + w.failed_call() + ") failed";
    const auto expect_done = [&](const std::string& how) {
      const auto& s = w.stored();
      EXPECT_EQ(active_of(s).user, before.user) << how;
      EXPECT_FALSE(active_of(s).password == before.password) << "the password did not change " << how;
      EXPECT_FALSE(in_flight(s)) << how;
      EXPECT_TRUE(has_annotation(s, annotations::last_rotation)) << how;
      expect_workload_logs_in(w, how);
      EXPECT_FALSE(logs_in(w, before)) << "the previous password still works " << how;
    };
    if (!w.failures.fired()) {
      EXPECT_EQ(outcome, rotation_outcome::rotated);
      expect_done("without a failure");
      return;
    }
    EXPECT_FALSE(outcome) << "rotate() returned normally " << when << ": the failure was swallowed";
    // Between the change and the store write the stored password is stale; the pending
    // one works then, and recovery stores it.
    const auto& s = w.stored();
    const bool stored_works = logs_in(w, active_of(s));
    const bool pending_works = pending_of(s) != nullptr && logs_in(w, login{before.user, *pending_of(s)});
    EXPECT_TRUE(stored_works || pending_works) << "no password the store holds logs in " << when;
    expect_no_unclaimed_password(w, when);

    w.no_failures();
    sync_until_rotated(w, r, t0 + 1min);
    expect_done("after the rerun, " + when);
  }
}

TEST_P(RotationFailures, RetireFailingEachCallKeepsTheWorkloadWorkingAndARerunRetires) {
  for (std::size_t n = 1;; ++n) {
    ASSERT_LT(n, 50u) << "the retire never completed";
    tenant_world w;
    w.provision_tenant(rotation_strategy::dual);
    rotator r(w.server, w.store, options(rotation_strategy::dual));
    ASSERT_EQ(r.rotate(t0), rotation_outcome::rotated);
    const stored_credentials switched = w.stored();
    const login previous = *standby_of(switched);  // the old active, in its grace period
    w.fail_nth(n, after_the_work());
    std::optional<rotation_outcome> outcome;
    try {
      outcome = r.advance(t0 + 11min);
    } catch (const error& e) {
      ASSERT_TRUE(w.failures.fired()) << "advance() failed on its own: " << e.what();
    }
    const std::string when = "after call " + std::to_string(n) + " (" + w.failed_call() + ") failed";
    const auto expect_retired = [&](const std::string& how) {
      const auto& s = w.stored();
      EXPECT_FALSE(in_flight(s)) << how;
      EXPECT_EQ(active_of(s).user, active_of(switched).user) << how;
      EXPECT_TRUE(active_of(s).password == active_of(switched).password) << "the active credential changed " << how;
      expect_workload_logs_in(w, how);
      ASSERT_TRUE(standby_of(s)) << how;
      EXPECT_TRUE(logs_in(w, *standby_of(s))) << "the standby does not log in with its stored password " << how;
      EXPECT_FALSE(logs_in(w, previous)) << "the previous credential still works after its grace period " << how;
    };
    if (!w.failures.fired()) {
      EXPECT_EQ(outcome, rotation_outcome::retired);
      expect_retired("without a failure");
      return;
    }
    EXPECT_FALSE(outcome) << "advance() returned normally " << when << ": the failure was swallowed";
    expect_workload_logs_in(w, when);
    expect_no_unclaimed_password(w, when);

    w.no_failures();
    const bool unfinished = in_flight(w.stored());
    const auto again = r.advance(t0 + 12min);
    if (unfinished) {
      EXPECT_TRUE(again == rotation_outcome::retired || again == rotation_outcome::recovered) << when;
    } else {
      EXPECT_EQ(again, rotation_outcome::nothing) << when;
    }
    expect_retired("after the rerun, " + when);
  }
}

TEST_P(RotationFailures, RecoveryOfACrashedRotationFailingEachCallCompletesOnARerun) {
  // pod-a died after its claim; pod-b takes the rotation over once takeover_after passed.
  for (const auto point : {fault_points::claimed, fault_points::changed}) {
    for (std::size_t n = 1;; ++n) {
      ASSERT_LT(n, 50u) << "the recovery never completed";
      tenant_world w;
      w.provision_tenant(rotation_strategy::dual);
      const stored_credentials before = w.stored();
      rotator dying(w.server, w.store, options(rotation_strategy::dual, "pod-a"), crash_at(point));
      ASSERT_THROW(dying.rotate(t0), simulated_crash);
      rotator r(w.server, w.store, options(rotation_strategy::dual, "pod-b"));
      EXPECT_EQ(r.advance(t0 + 1min), rotation_outcome::nothing) << "taken over before takeover_after";
      w.fail_nth(n, after_the_work());
      std::optional<rotation_outcome> outcome;
      try {
        outcome = r.advance(t0 + 3min);
      } catch (const error& e) {
        ASSERT_TRUE(w.failures.fired()) << "advance() failed on its own: " << e.what();
      }
      const std::string when =
          "crashed at " + std::string(point) + ", call " + std::to_string(n) + " (" + w.failed_call() + ") failed";
      if (!w.failures.fired()) {
        EXPECT_EQ(outcome, rotation_outcome::recovered) << when;
        expect_switched(w, before, when);
        break;
      }
      EXPECT_FALSE(outcome) << "advance() returned normally " << when << ": the failure was swallowed";
      expect_workload_logs_in(w, when);
      expect_no_unclaimed_password(w, when);

      w.no_failures();
      r.advance(t0 + 6min);
      expect_switched(w, before, "after the rerun, " + when);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Lost races.

TEST(RotationRaces, AReplicaThatLosesTheClaimChangesNothing) {
  tenant_world w;
  w.provision_tenant(rotation_strategy::dual);
  const stored_credentials before = w.stored();
  rotator a(w.server, w.store, options(rotation_strategy::dual, "pod-a"));
  rotator b(w.server, w.store, options(rotation_strategy::dual, "pod-b"));
  // pod-b rotates between pod-a's load and pod-a's claim.
  w.store.before_next_write = [&] { EXPECT_EQ(b.rotate(t0), rotation_outcome::rotated); };
  EXPECT_EQ(a.rotate(t0), rotation_outcome::lost_race);
  EXPECT_EQ(w.failures.count("engine.change_own_password"), 1u) << "the loser changed a password too";
  EXPECT_EQ(rotation_member(w.stored(), "holder"), "pod-b");
  expect_switched(w, before, "after the lost race");
}

TEST(RotationRaces, OfTwoReplicasTakingOverACrashedRotationOneCompletesItAndTheOtherStandsBack) {
  tenant_world w;
  w.provision_tenant(rotation_strategy::dual);
  const stored_credentials before = w.stored();
  rotator dying(w.server, w.store, options(rotation_strategy::dual, "pod-a"), crash_at(fault_points::claimed));
  ASSERT_THROW(dying.rotate(t0), simulated_crash);
  rotator b(w.server, w.store, options(rotation_strategy::dual, "pod-b"));
  rotator c(w.server, w.store, options(rotation_strategy::dual, "pod-c"));
  std::optional<rotation_outcome> c_outcome;
  w.store.before_next_write = [&] { c_outcome = c.advance(t0 + 3min); };
  EXPECT_EQ(b.advance(t0 + 3min), rotation_outcome::lost_race);
  EXPECT_EQ(c_outcome, rotation_outcome::recovered);
  EXPECT_EQ(w.failures.count("engine.change_own_password"), 1u) << "both replicas changed the password";
  expect_switched(w, before, "after the takeover race");
}

TEST(RotationRaces, AnUnrelatedWriteDuringTheSwitchIsKept) {
  tenant_world w;
  w.provision_tenant(rotation_strategy::dual);
  rotator r(w.server, w.store, options(rotation_strategy::dual));
  const stored_credentials start = w.stored();
  // Someone adds an annotation between the change and the switch: the switch is written
  // again onto the new version, and keeps it.
  int writes = 0;
  std::function<void()> meddle = [&] {
    if (++writes == 2) {  // the switch (the claim is the first write)
      auto notes = w.stored().annotations;
      notes["example.com/note"] = "kept";
      w.store.put(w.stored().data, notes);
    } else {
      w.store.before_next_write = meddle;
    }
  };
  w.store.before_next_write = meddle;
  EXPECT_EQ(r.rotate(t0), rotation_outcome::rotated);
  EXPECT_EQ(writes, 2);
  expect_switched(w, start, "after a write between change and switch");
  EXPECT_EQ(w.stored().annotations.at("example.com/note"), "kept");
}

// ---------------------------------------------------------------------------------------
// The lockout rule.

TEST(RotationLockout, AStandbyChangedBehindOurBackIsRolledBackAndRecordedAndTheActiveIsUntouched) {
  tenant_world w;
  w.provision_tenant(rotation_strategy::dual);
  const stored_credentials before = w.stored();
  const std::string standby = standby_of(before)->user;
  w.server.accounts.at(standby).password = secret("SomeoneElsesPasswordSomeoneElse1");
  rotator r(w.server, w.store, options(rotation_strategy::dual));
  try {
    r.rotate(t0);
    FAIL() << "rotate() succeeded with a locked-out standby";
  } catch (const error& e) {
    EXPECT_EQ(e.kind(), error_kind::verification) << e.what();
  }
  const auto& s = w.stored();
  EXPECT_EQ(rotator::locked_out_account(s), standby);
  EXPECT_FALSE(in_flight(s)) << "the claim was not rolled back";
  EXPECT_TRUE(active_of(s).password == active_of(before).password);
  expect_workload_logs_in(w, "after the lockout");
  EXPECT_TRUE(w.server.accounts.at(standby).password == secret("SomeoneElsesPasswordSomeoneElse1"))
      << "the rotator changed a locked-out account";
}

TEST(RotationLockout, ALockoutFoundInRecoveryIsRecordedOnceAndNotProbedAgain) {
  tenant_world w;
  w.provision_tenant(rotation_strategy::dual);
  rotator dying(w.server, w.store, options(rotation_strategy::dual), crash_at(fault_points::claimed));
  ASSERT_THROW(dying.rotate(t0), simulated_crash);
  const std::string standby = standby_of(w.stored())->user;
  w.server.accounts.at(standby).password = secret("SomeoneElsesPasswordSomeoneElse1");

  rotator r(w.server, w.store, options(rotation_strategy::dual));
  EXPECT_EQ(r.advance(t0 + 1s), rotation_outcome::nothing);
  const stored_credentials marked = w.stored();
  EXPECT_EQ(rotator::locked_out_account(marked), standby) << "the lockout is not recorded";
  EXPECT_TRUE(in_flight(marked)) << "a recovery must not roll back a claim";
  expect_workload_logs_in(w, "after the lockout was found");

  const auto probes = w.failures.count("engine.verify_login");
  const auto writes = w.failures.count("store.replace");
  EXPECT_EQ(r.advance(t0 + 2s), rotation_outcome::nothing);
  EXPECT_EQ(r.rotate(t0 + 2s), rotation_outcome::nothing);
  EXPECT_EQ(w.failures.count("engine.verify_login"), probes) << "a recorded lockout was probed again";
  EXPECT_EQ(w.failures.count("store.replace"), writes) << "the lockout was written again";
  EXPECT_EQ(w.stored().version, marked.version);
}

TEST(RotationLockout, TheInitResetsALockedOutStandbyAndTheNextRotationWorks) {
  tenant_world w;
  w.provision_tenant(rotation_strategy::dual);
  const stored_credentials before = w.stored();
  const std::string standby = standby_of(before)->user;
  w.server.accounts.at(standby).password = secret("SomeoneElsesPasswordSomeoneElse1");
  ASSERT_TRUE(
      w.server.open_session(standby, secret("SomeoneElsesPasswordSomeoneElse1"), value_of(before, keys::database)));
  rotator r(w.server, w.store, options(rotation_strategy::dual));
  EXPECT_THROW(r.rotate(t0), error);
  ASSERT_EQ(rotator::locked_out_account(w.stored()), standby);

  w.provision_tenant(rotation_strategy::dual);
  const auto& s = w.stored();
  EXPECT_TRUE(rotator::locked_out_account(s).empty()) << "the init did not remove the lockout record";
  EXPECT_TRUE(logs_in(w, *standby_of(s))) << "the standby was not reset to its stored password";
  EXPECT_FALSE(standby_of(s)->password == standby_of(before)->password) << "the leaked password was set again";
  EXPECT_EQ(w.server.accounts.at(standby).sessions, 0) << "the intruder's session was not ended";
  EXPECT_TRUE(active_of(s).password == active_of(before).password) << "the init touched the active account";
  EXPECT_EQ(r.rotate(t0 + 1min), rotation_outcome::rotated);
}

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
