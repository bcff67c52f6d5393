// Retire when drained (rotation_options::drain_max, the sidecar's --retire-when-drained)
// on the fake server and store: after the grace period the previous account is retired
// only once it has no open sessions, or once the recorded deadline has passed, or at once
// when the next rotation is waiting; the deadline lives in the store, so a restarted
// rotator keeps it. The same against the real servers: test/integration/drain_dbtest.cpp.

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include <rapidjson/document.h>

#include "state_machines.hpp"
#include "tenantdb/rotation.hpp"

using namespace tenantdb;
using namespace tenantdb::test;
using namespace std::chrono_literals;
using clock_type = rotator::clock;

namespace {

const clock_type::time_point t0 = std::chrono::sys_days{std::chrono::year{2026} / 12 / 1} + 12h;

rotation_options drain_options(std::chrono::seconds drain_max) {
  rotation_options o;
  o.strategy = rotation_strategy::dual;
  o.holder = "pod-a";
  o.grace = 10min;
  o.takeover_after = 2min;
  o.ca_file = "/creds/caCert";
  o.drain_max = drain_max;
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

// A dual tenant rotated once at t0: the previous account (the standby now) is in its grace
// period until t0 + 10min, with `sessions` sessions open on it.
struct drained_world {
  tenant_world w;
  login previous;

  explicit drained_world(const rotation_options& o, int sessions) {
    w.provision_tenant(rotation_strategy::dual);
    previous = active_of(w.stored());
    for (int i = 0; i < sessions; ++i) EXPECT_TRUE(w.server.open_session(previous.user, previous.password, database()));
    rotator r(w.server, w.store, o);
    EXPECT_EQ(r.rotate(t0), rotation_outcome::rotated);
    EXPECT_EQ(standby_of(w.stored())->user, previous.user);
  }
  std::string database() const { return value_of(w.stored(), keys::database); }
  void close_sessions() { w.server.accounts.at(previous.user).sessions = 0; }
  bool previous_logs_in() const { return logs_in(w, previous); }
};

TEST(RetireWhenDrained, OpenSessionsKeepThePreviousAccountWorkingUntilTheyClose) {
  const auto o = drain_options(1h);
  drained_world d(o, 1);
  rotator r(d.w.server, d.w.store, o);

  EXPECT_EQ(r.advance(t0 + 5min), rotation_outcome::nothing) << "still in the grace period";
  EXPECT_EQ(d.w.failures.count("engine.count_own_sessions"), 0u) << "counted before the grace period ended";
  EXPECT_EQ(r.drain().sessions, 0);

  EXPECT_EQ(r.advance(t0 + 11min), rotation_outcome::nothing) << "retired with a session open";
  EXPECT_EQ(r.drain().sessions, 1);
  EXPECT_EQ(r.drain().deferred_total, 1u);
  EXPECT_TRUE(d.previous_logs_in()) << "the previous account stopped while it had a session";
  EXPECT_EQ(rotation_member(d.w.stored(), "phase"), "grace");
  EXPECT_EQ(r.advance(t0 + 12min), rotation_outcome::nothing);
  EXPECT_EQ(r.drain().deferred_total, 2u);

  d.close_sessions();
  EXPECT_EQ(r.advance(t0 + 13min), rotation_outcome::retired);
  EXPECT_EQ(r.drain().sessions, 0);
  EXPECT_FALSE(d.previous_logs_in()) << "the drained account was not retired";
  EXPECT_FALSE(in_flight(d.w.stored()));
  EXPECT_EQ(r.drain().forced_max_wait_total + r.drain().forced_next_rotation_total, 0u);
  expect_workload_logs_in(d.w, "after the retirement");
}

TEST(RetireWhenDrained, AnAccountWithoutSessionsIsRetiredWhenTheGracePeriodEnds) {
  const auto o = drain_options(1h);
  drained_world d(o, 0);
  rotator r(d.w.server, d.w.store, o);
  EXPECT_EQ(r.advance(t0 + 10min), rotation_outcome::retired);
  EXPECT_FALSE(d.previous_logs_in());
  EXPECT_EQ(r.drain().deferred_total, 0u);
}

TEST(RetireWhenDrained, TheSwitchRecordsTheDeadlineAndARestartedRotatorKeepsIt) {
  drained_world d(drain_options(30min), 1);
  EXPECT_EQ(rotation_member(d.w.stored(), "drainUntil"), "2026-12-01T12:40:00Z") << "graceUntil + the maximum wait";

  // A restart with another maximum (or a replica with another flag): the store decides.
  rotator restarted(d.w.server, d.w.store, drain_options(5h));
  EXPECT_EQ(restarted.advance(t0 + 39min), rotation_outcome::nothing);
  EXPECT_TRUE(d.previous_logs_in());
  EXPECT_EQ(restarted.advance(t0 + 40min), rotation_outcome::retired) << "the recorded deadline was not kept";
  EXPECT_FALSE(d.previous_logs_in());
  EXPECT_EQ(restarted.drain().forced_max_wait_total, 1u);
  EXPECT_EQ(restarted.drain().sessions, 0);
  EXPECT_EQ(d.w.server.accounts.at(d.previous.user).sessions, 1) << "a retirement ends no session";
}

TEST(RetireWhenDrained, AGracePeriodRecordedWithoutADeadlineWaitsTheReplicasOwnMaximum) {
  drained_world d(drain_options(0s), 1);  // switched by a sidecar without the flag
  EXPECT_EQ(rotation_member(d.w.stored(), "drainUntil"), "<missing>");
  rotator r(d.w.server, d.w.store, drain_options(20min));
  EXPECT_EQ(r.advance(t0 + 29min), rotation_outcome::nothing);
  EXPECT_EQ(r.advance(t0 + 30min), rotation_outcome::retired);
}

TEST(RetireWhenDrained, WithoutTheFlagThePreviousAccountIsRetiredWithSessionsOpenAndNothingIsCounted) {
  drained_world d(drain_options(1h), 1);
  rotator r(d.w.server, d.w.store, drain_options(0s));
  EXPECT_EQ(r.advance(t0 + 10min), rotation_outcome::retired);
  EXPECT_EQ(d.w.failures.count("engine.count_own_sessions"), 0u);
  EXPECT_FALSE(d.previous_logs_in());
}

TEST(RetireWhenDrained, TheNextRotationWaitingEndsTheWait) {
  const auto o = drain_options(1h);
  drained_world d(o, 2);
  rotator r(d.w.server, d.w.store, o);
  EXPECT_EQ(r.advance(t0 + 11min), rotation_outcome::nothing);
  EXPECT_EQ(r.drain().sessions, 2);
  EXPECT_EQ(r.advance(t0 + 12min, true), rotation_outcome::retired);
  EXPECT_EQ(r.drain().forced_next_rotation_total, 1u);
  EXPECT_EQ(r.drain().sessions, 0);
  EXPECT_FALSE(d.previous_logs_in());
  EXPECT_EQ(r.rotate(t0 + 12min), rotation_outcome::rotated) << "the next rotation found its slot taken";
}

TEST(RetireWhenDrained, AFailedCountChangesNothingAndKeepsTheLastCount) {
  const auto o = drain_options(1h);
  drained_world d(o, 1);
  rotator r(d.w.server, d.w.store, o);
  EXPECT_EQ(r.advance(t0 + 11min), rotation_outcome::nothing);
  const auto version = d.w.stored().version;
  d.w.failures = fail_count(1, transient_failure(), "engine.count_own_sessions");
  EXPECT_THROW(r.advance(t0 + 12min), error);
  EXPECT_EQ(r.drain().sessions, 1);
  EXPECT_EQ(d.w.stored().version, version) << "the wait wrote to the store";
  EXPECT_TRUE(d.previous_logs_in());
  d.w.no_failures();
  d.close_sessions();
  EXPECT_EQ(r.advance(t0 + 13min), rotation_outcome::retired);
}

TEST(RetireWhenDrained, APreviousAccountThatIsRefusedGoesToTheRetireStepWhichRecordsTheLockout) {
  const auto o = drain_options(1h);
  drained_world d(o, 1);
  d.w.server.accounts.at(d.previous.user).password = secret("SomebodyElsesPassword12345");
  rotator r(d.w.server, d.w.store, o);
  EXPECT_THROW(r.advance(t0 + 11min), error);
  EXPECT_EQ(rotator::locked_out_account(d.w.stored()), d.previous.user);
}

}  // namespace
