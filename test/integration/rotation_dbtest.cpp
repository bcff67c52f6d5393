// Password rotation against the real PostgreSQL and MariaDB test servers, with the
// directory store (local mode). Every rotator here is built from an engine, a store and
// options only: no connector and no admin password reaches it, as in the sidecar. The test's
// admin is used only to provision tenants and to break things on purpose.

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <rapidjson/document.h>

#include "tenantdb/credentials.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/log.hpp"
#include "tenantdb/provision.hpp"
#include "tenantdb/rotation.hpp"
#include "testdb.hpp"

namespace {
const bool server_logs = tenantdb::test::dump_server_logs_on_failure({"pg", "mariadb"});
}

namespace fs = std::filesystem;
using namespace tenantdb;
using namespace std::chrono_literals;
using clock_type = rotator::clock;

namespace {

/// Thrown by a fault hook: the rotating process "dies" at that point. Nothing is cleaned
/// up, exactly like kill -9: the store and the database stay as they were.
struct simulated_crash {
  std::string point;
};

std::string sanitized(std::string name) {
  for (char& c : name)
    if (c == '/' || c == ' ') c = '_';
  return name;
}

login active_of(const stored_credentials& s) {
  return login{s.data.at(keys::user).reveal(), s.data.at(keys::password)};
}

login standby_of(const stored_credentials& s) {
  return login{s.data.at(keys::standby_user).reveal(), s.data.at(keys::standby_password)};
}

// The store's readers treat an empty annotation as removed (see rotation.cpp).
bool has_annotation(const stored_credentials& s, const char* key) {
  const auto it = s.annotations.find(key);
  return it != s.annotations.end() && !it->second.empty();
}

bool in_flight(const stored_credentials& s) {
  return has_annotation(s, annotations::rotation) || s.data.count(pending_password_key) != 0;
}

rapidjson::Document rotation_json(const stored_credentials& s) {
  rapidjson::Document doc;
  const std::string& text = s.annotations.at(annotations::rotation);
  doc.Parse(text.data(), text.size());
  return doc;
}

std::string member(const rapidjson::Document& doc, const char* key) {
  const auto it = doc.FindMember(key);
  if (it == doc.MemberEnd() || !it->value.IsString()) return "<missing>";
  return {it->value.GetString(), it->value.GetStringLength()};
}

/// Fails if any password the store holds (or held) appears in an annotation.
void expect_no_secret_in_annotations(const stored_credentials& s, const std::vector<secret>& known) {
  std::vector<secret> all = known;
  for (const char* key : {keys::password, keys::standby_password, pending_password_key})
    if (const auto it = s.data.find(key); it != s.data.end()) all.push_back(it->second);
  for (const auto& [k, v] : s.annotations)
    for (const auto& pw : all)
      if (!pw.empty()) {
        EXPECT_EQ(v.find(pw.reveal()), std::string::npos) << "annotation " << k << " holds a password";
      }
}

// A tenant provisioned on one engine, with its directory store.
template <class Param>
class rotation_fixture : public ::testing::TestWithParam<Param> {
protected:
  virtual std::string engine() const = 0;

  void SetUp() override {
    conn_ = test::load_connector(engine());
    db_ = make_engine(conn_.server.type);
    dir_ = fs::temp_directory_path() / ("tenantdb-rotation-" + std::to_string(::getpid()) + "-" +
                                        sanitized(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    store_ = make_directory_store(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  provision_result provision_tenant(rotation_strategy strategy, std::string_view prefix = "rot") {
    provision_options o;
    o.who = test::unique_tenant(prefix);
    o.strategy = strategy;
    o.deadline = std::chrono::steady_clock::now() + 60s;
    o.ca_file = (dir_ / "caCert").string();
    return provision(conn_, *db_, *store_, o);
  }

  rotation_options options(rotation_strategy strategy, std::string holder = "pod-a",
                           std::chrono::seconds grace = 2s) const {
    rotation_options o;
    o.strategy = strategy;
    o.holder = std::move(holder);
    o.grace = grace;
    o.takeover_after = 30s;
    o.timeouts.connect = 5s;
    o.timeouts.statement = 10s;
    o.ca_file = (dir_ / "caCert").string();
    return o;
  }

  stored_credentials stored() const {
    auto s = store_->load();
    if (!s) throw std::runtime_error("the store is empty");
    return std::move(*s);
  }

  bool logs_in(const login& l, const std::string& db) const {
    try {
      verify_login(conn_.server, l, db);
      return true;
    } catch (const error& e) {
      if (e.kind() != error_kind::verification) throw;
      return false;
    }
  }

  void expect_login(const login& l, const std::string& db, const std::string& when = "") const {
    EXPECT_TRUE(logs_in(l, db)) << "user " << l.user << " does not log in " << when;
  }
  void expect_refused(const login& l, const std::string& db, const std::string& when = "") const {
    EXPECT_FALSE(logs_in(l, db)) << "user " << l.user << " still logs in " << when;
  }

  connector conn_;
  std::unique_ptr<tenantdb::engine> db_;
  fs::path dir_;
  std::unique_ptr<credential_store> store_;
};

class RotationTest : public rotation_fixture<std::string> {
protected:
  std::string engine() const override { return GetParam(); }
};

TEST_P(RotationTest, DualSwitchesAccountsThenRetiresThePreviousAfterTheGracePeriod) {
  const auto prov = provision_tenant(rotation_strategy::dual);
  const std::string db = prov.names.database;
  const auto before = stored();
  const login a = active_of(before);
  const login b = standby_of(before);
  // The store holds nothing of the admin: the rotator cannot use it even by accident.
  for (const char* key : {"adminUser", "adminPassword"}) EXPECT_EQ(before.data.count(key), 0u);

  // A user asks for a rotation.
  auto annotated = before.annotations;
  annotated[annotations::rotate_now] = "please";
  ASSERT_TRUE(store_->replace(before.data, annotated, before.version));
  EXPECT_TRUE(rotator::rotation_requested(stored()));

  // Every line the rotation logs, to check that none holds a password.
  auto lines = std::make_shared<std::vector<std::string>>();
  log::set_sink([lines](std::string_view line) { lines->emplace_back(line); });
  struct restore_sink {
    ~restore_sink() { log::set_sink({}); }
  } restore;

  rotator r(*db_, *store_, options(rotation_strategy::dual));
  const auto now = clock_type::now();
  ASSERT_EQ(r.rotate(now), rotation_outcome::rotated);

  const auto switched = stored();
  const login active = active_of(switched);
  EXPECT_EQ(active.user, b.user);
  EXPECT_FALSE(active.password == b.password);
  EXPECT_FALSE(active.password == a.password);
  EXPECT_EQ(standby_of(switched).user, a.user);
  EXPECT_TRUE(standby_of(switched).password == a.password);
  EXPECT_EQ(switched.data.count(pending_password_key), 0u);
  EXPECT_NE(switched.data.at(keys::data_source).reveal().find(b.user), std::string::npos)
      << "the dataSource must name the new active account";
  EXPECT_FALSE(rotator::rotation_requested(switched));
  EXPECT_TRUE(has_annotation(switched, annotations::last_rotation));
  const auto doc = rotation_json(switched);
  EXPECT_EQ(member(doc, "phase"), "grace");
  EXPECT_EQ(member(doc, "holder"), "pod-a");
  EXPECT_NE(member(doc, "id"), "<missing>");
  EXPECT_NE(member(doc, "started"), "<missing>");
  EXPECT_NE(member(doc, "graceUntil"), "<missing>");
  const auto grace_end = rotator::grace_ends(switched);
  ASSERT_TRUE(grace_end);
  EXPECT_GE(*grace_end, now + 2s);
  EXPECT_LT(*grace_end, now + 3s);
  expect_no_secret_in_annotations(switched, {a.password, b.password});

  expect_login(active, db, "after the switch");
  expect_login(a, db, "during the grace period");
  expect_refused(b, db, "with the standby's previous password");

  EXPECT_EQ(r.advance(now + 1s), rotation_outcome::nothing) << "the grace period has not ended";
  EXPECT_EQ(r.rotate(now + 1s), rotation_outcome::nothing) << "a rotation is in flight";
  ASSERT_EQ(r.advance(now + 3s), rotation_outcome::retired);

  const auto retired = stored();
  EXPECT_FALSE(in_flight(retired));
  EXPECT_FALSE(rotator::grace_ends(retired));
  EXPECT_EQ(active_of(retired).user, active.user);
  EXPECT_TRUE(active_of(retired).password == active.password);
  const login r_login = standby_of(retired);
  EXPECT_EQ(r_login.user, a.user);
  EXPECT_FALSE(r_login.password == a.password);
  expect_no_secret_in_annotations(retired, {a.password, b.password, active.password});
  expect_refused(a, db, "after the grace period");
  expect_login(r_login, db, "with the retired account's new password");
  expect_login(active_of(retired), db, "after retiring");
  EXPECT_EQ(r.advance(now + 1h), rotation_outcome::nothing);

  // One JSON line per event, naming phase, user and rotation id, never a password.
  int events = 0;
  for (const auto& line : *lines) {
    rapidjson::Document event;
    event.Parse(line.data(), line.size());
    ASSERT_TRUE(event.IsObject()) << line;
    for (const secret* pw : {&a.password, &b.password, &active.password, &r_login.password})
      EXPECT_EQ(line.find(pw->reveal()), std::string::npos) << "a log line holds a password: " << line;
    if (event.HasMember("phase")) {
      ++events;
      EXPECT_TRUE(event.HasMember("user")) << line;
      EXPECT_TRUE(event.HasMember("id")) << line;
    }
  }
  EXPECT_GE(events, 4) << "claim, change, switch, retire";

  // The next rotation switches back to the first account.
  ASSERT_EQ(r.rotate(now + 2h), rotation_outcome::rotated);
  EXPECT_EQ(active_of(stored()).user, a.user);
  expect_login(active_of(stored()), db);
}

TEST_P(RotationTest, InPlaceReplacesThePasswordAndTheOldOneStopsAtOnce) {
  const auto prov = provision_tenant(rotation_strategy::in_place);
  const std::string db = prov.names.database;
  const auto before = stored();
  const login old = active_of(before);

  // Without --ca-file the rotator keeps the CA path the init put into the dataSource.
  auto o = options(rotation_strategy::in_place);
  o.ca_file.clear();
  rotator r(*db_, *store_, o);
  const auto now = clock_type::now();
  ASSERT_EQ(r.rotate(now), rotation_outcome::rotated);

  const auto after = stored();
  const auto query = [](const stored_credentials& st) {
    const std::string& ds = st.data.at(keys::data_source).reveal();
    const auto q = ds.find('?');
    return q == std::string::npos ? std::string() : ds.substr(q);
  };
  EXPECT_EQ(query(after), query(before));
  if (GetParam() == "pg") {
    EXPECT_NE(query(after).find("sslrootcert="), std::string::npos);
  }
  EXPECT_EQ(active_of(after).user, old.user);
  EXPECT_FALSE(active_of(after).password == old.password);
  EXPECT_EQ(after.data.count(keys::standby_user), 0u);
  EXPECT_FALSE(in_flight(after));
  EXPECT_TRUE(has_annotation(after, annotations::last_rotation));
  expect_no_secret_in_annotations(after, {old.password});
  expect_login(active_of(after), db);
  expect_refused(old, db);
  EXPECT_EQ(r.advance(now + 1h), rotation_outcome::nothing);
}

TEST_P(RotationTest, DualStrategyAgainstAnInPlaceStoreIsAUsageErrorAndChangesNothing) {
  provision_tenant(rotation_strategy::in_place);
  const auto before = stored();
  rotator r(*db_, *store_, options(rotation_strategy::dual));
  try {
    r.rotate(clock_type::now());
    FAIL() << "rotate() accepted a store without a standby account";
  } catch (const error& e) {
    EXPECT_EQ(e.kind(), error_kind::usage) << e.what();
    EXPECT_NE(std::string(e.what()).find("strategy"), std::string::npos) << e.what();
  }
  EXPECT_EQ(stored().version, before.version);
}

TEST_P(RotationTest, RefusedStandbyRollsTheClaimBackAndKeepsTheActiveCredential) {
  const auto prov = provision_tenant(rotation_strategy::dual);
  const auto before = stored();
  {
    auto admin = connect_admin(conn_.server, test::admin_login(conn_));
    admin->set_password(standby_of(before).user, secret("SomebodyElsesPassword12345"));
  }
  rotator r(*db_, *store_, options(rotation_strategy::dual));
  try {
    r.rotate(clock_type::now());
    FAIL() << "rotate() succeeded although the standby cannot log in";
  } catch (const error& e) {
    EXPECT_EQ(e.kind(), error_kind::verification) << e.what();
  }
  const auto after = stored();
  EXPECT_FALSE(in_flight(after));
  EXPECT_EQ(active_of(after).user, active_of(before).user);
  EXPECT_TRUE(active_of(after).password == active_of(before).password);
  expect_login(active_of(after), prov.names.database);
  EXPECT_EQ(rotator::locked_out_account(after), standby_of(before).user) << "the lockout is not recorded";
}

TEST_P(RotationTest, RecoveryThatFindsNeitherPasswordWorkingRecordsTheLockoutOnceAndChangesNothingElse) {
  const auto prov = provision_tenant(rotation_strategy::dual);
  const auto initial = stored();
  {
    rotator dying(*db_, *store_, options(rotation_strategy::dual), [](std::string_view point) {
      if (point == fault_points::claimed) throw simulated_crash{std::string(point)};
    });
    EXPECT_THROW(dying.rotate(clock_type::now()), simulated_crash);
  }
  {
    auto admin = connect_admin(conn_.server, test::admin_login(conn_));
    admin->set_password(standby_of(initial).user, secret("SomebodyElsesPassword12345"));
  }
  const auto crashed = stored();
  rotator r(*db_, *store_, options(rotation_strategy::dual));
  EXPECT_EQ(r.advance(clock_type::now()), rotation_outcome::nothing);
  const auto marked = stored();
  EXPECT_EQ(rotator::locked_out_account(marked), standby_of(initial).user) << "the lockout is not recorded";
  EXPECT_TRUE(same_data(marked.data, crashed.data)) << "only the lockout record may be written";
  EXPECT_EQ(r.advance(clock_type::now()), rotation_outcome::nothing);
  EXPECT_EQ(stored().version, marked.version) << "a rotation that cannot complete must not be rewritten on every call";
  EXPECT_TRUE(in_flight(stored()));
  expect_login(active_of(stored()), prov.names.database, "while the rotation is stuck");
  EXPECT_EQ(r.rotate(clock_type::now()), rotation_outcome::nothing);
}

TEST_P(RotationTest, TwoRotatorsRacingElectExactlyOne) {
  const auto prov = provision_tenant(rotation_strategy::dual);
  auto t = clock_type::now();
  for (int round = 0; round < 3; ++round) {
    std::atomic<int> ready{0};
    rotation_outcome outcomes[2] = {rotation_outcome::nothing, rotation_outcome::nothing};
    std::string failures[2];
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i)
      threads.emplace_back([&, i] {
        try {
          auto store = make_directory_store(dir_);
          rotator r(*db_, *store, options(rotation_strategy::dual, i == 0 ? "pod-a" : "pod-b"));
          ready.fetch_add(1);
          while (ready.load() < 2) std::this_thread::yield();
          outcomes[i] = r.rotate(t);
        } catch (const std::exception& e) {
          failures[i] = e.what();
        }
      });
    for (auto& th : threads) th.join();
    ASSERT_EQ(failures[0], "");
    ASSERT_EQ(failures[1], "");
    const int rotated = (outcomes[0] == rotation_outcome::rotated) + (outcomes[1] == rotation_outcome::rotated);
    EXPECT_EQ(rotated, 1) << "round " << round;
    for (auto o : outcomes)
      EXPECT_TRUE(o == rotation_outcome::rotated || o == rotation_outcome::lost_race || o == rotation_outcome::nothing);

    const auto s = stored();
    EXPECT_EQ(member(rotation_json(s), "phase"), "grace");
    expect_login(active_of(s), prov.names.database, "after a raced rotation");
    expect_login(standby_of(s), prov.names.database, "(previous active, during grace)");

    // Both retire at once: again exactly one does it.
    t += 1h;
    std::atomic<int> ready2{0};
    std::vector<std::thread> retirers;
    for (int i = 0; i < 2; ++i)
      retirers.emplace_back([&, i] {
        try {
          auto store = make_directory_store(dir_);
          rotator r(*db_, *store, options(rotation_strategy::dual, i == 0 ? "pod-a" : "pod-b"));
          ready2.fetch_add(1);
          while (ready2.load() < 2) std::this_thread::yield();
          outcomes[i] = r.advance(t);
        } catch (const std::exception& e) {
          failures[i] = e.what();
        }
      });
    for (auto& th : retirers) th.join();
    ASSERT_EQ(failures[0], "");
    ASSERT_EQ(failures[1], "");
    EXPECT_EQ((outcomes[0] == rotation_outcome::retired) + (outcomes[1] == rotation_outcome::retired), 1);
    const auto done = stored();
    EXPECT_FALSE(in_flight(done));
    expect_login(active_of(done), prov.names.database);
    expect_login(standby_of(done), prov.names.database);
    t += 1h;
  }
}

TEST_P(RotationTest, AClientLoggingInThroughFiveRotationsSeesNoAuthenticationFailure) {
  const auto prov = provision_tenant(rotation_strategy::dual, "client");
  const std::string db = prov.names.database;
  std::atomic<bool> stop{false};
  std::atomic<int> logins{0};
  std::atomic<int> refused{0};
  std::set<std::string> users_seen;
  std::string client_error;
  std::thread client([&] {
    try {
      while (!stop.load()) {
        // What the workload does: read the mounted directory, then log in.
        const auto data = read_directory(dir_);
        const login l{data.at(keys::user).reveal(), data.at(keys::password)};
        users_seen.insert(l.user);
        try {
          verify_login(conn_.server, l, db);
          logins.fetch_add(1);
        } catch (const error& e) {
          if (e.kind() != error_kind::verification) throw;
          refused.fetch_add(1);
        }
      }
    } catch (const std::exception& e) {
      client_error = e.what();
    }
  });

  rotator r(*db_, *store_, options(rotation_strategy::dual, "pod-a", 3s));
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(r.rotate(clock_type::now()), rotation_outcome::rotated) << "rotation " << i;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    rotation_outcome o = rotation_outcome::nothing;
    while ((o = r.advance(clock_type::now())) == rotation_outcome::nothing &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(100ms);
    ASSERT_EQ(o, rotation_outcome::retired) << "rotation " << i;
  }
  stop = true;
  client.join();
  EXPECT_EQ(client_error, "");
  EXPECT_EQ(refused.load(), 0) << "the workload was locked out " << refused.load() << " times";
  EXPECT_GT(logins.load(), 10);
  EXPECT_EQ(users_seen.size(), 2u) << "the client should have seen both accounts active";
  const auto s = stored();
  expect_login(active_of(s), db);
  expect_login(standby_of(s), db);
}

INSTANTIATE_TEST_SUITE_P(Engines, RotationTest, ::testing::Values("pg", "mariadb"),
                         [](const auto& param_info) { return param_info.param; });

// ---------------------------------------------------------------------------------------
// Crash safety: the rotating process dies at each fault point; a fresh process (the same
// pod after a restart, or another replica once takeover_after has passed) finishes.

struct crash_case {
  rotation_strategy strategy;
  std::string_view point;
};

void PrintTo(const crash_case& c, std::ostream* os) {
  *os << (c.strategy == rotation_strategy::dual ? "dual" : "in-place") << " crashing at " << c.point;
}

using crash_param = std::tuple<std::string, crash_case, bool /*another holder recovers*/>;

class RotationCrashTest : public rotation_fixture<crash_param> {
protected:
  std::string engine() const override { return std::get<0>(GetParam()); }
};

TEST_P(RotationCrashTest, AnotherProcessCompletesTheRotationAndTheActiveCredentialAlwaysWorks) {
  const crash_case c = std::get<1>(GetParam());
  const bool other_holder = std::get<2>(GetParam());
  const bool dual = c.strategy == rotation_strategy::dual;
  const auto prov = provision_tenant(c.strategy, "crash");
  const std::string db = prov.names.database;
  const auto initial = stored();

  const auto t0 = clock_type::now();
  const bool retire_point = c.point == fault_points::retire_claimed || c.point == fault_points::retire_changed ||
                            c.point == fault_points::retired;
  {
    auto store = make_directory_store(dir_);
    rotator dying(*db_, *store, options(c.strategy, "pod-a"), [&](std::string_view point) {
      if (point == c.point) throw simulated_crash{std::string(point)};
    });
    if (retire_point) {
      ASSERT_EQ(dying.rotate(t0), rotation_outcome::rotated);
      EXPECT_THROW(dying.advance(t0 + 1h), simulated_crash);
    } else {
      EXPECT_THROW(dying.rotate(t0), simulated_crash);
    }
  }
  const auto crash_time = retire_point ? t0 + 1h : t0;

  // Right after the crash the workload's credential still logs in. The one exception is
  // in-place between its change and its store step: with a single account the store
  // necessarily lags the database there; the pending password (recorded before the
  // change) works and recovery stores it.
  const auto crashed = stored();
  if (!dual && c.point == fault_points::changed) {
    expect_refused(active_of(crashed), db, "(in-place, crashed after the change)");
    ASSERT_EQ(crashed.data.count(pending_password_key), 1u);
    expect_login(login{active_of(crashed).user, crashed.data.at(pending_password_key)}, db,
                 "with the pending password (in-place, crashed after the change)");
  } else {
    expect_login(active_of(crashed), db, "right after the crash");
  }

  auto store = make_directory_store(dir_);
  rotator fresh(*db_, *store, options(c.strategy, other_holder ? "pod-b" : "pod-a"));
  auto t = crash_time;
  const bool held =
      has_annotation(crashed, annotations::rotation) && member(rotation_json(crashed), "phase") != "grace";
  if (other_holder && held) {
    // Another replica waits for takeover_after before it touches a rotation it does not hold.
    EXPECT_EQ(fresh.advance(t + 1s), rotation_outcome::nothing);
    EXPECT_EQ(stored().version, crashed.version);
    t += 31s;
  }
  for (int i = 0; i < 6; ++i) {
    const auto outcome = fresh.advance(t);
    const auto now_stored = stored();
    if (outcome != rotation_outcome::nothing || in_flight(now_stored))
      expect_login(active_of(now_stored), db, "during recovery step " + std::to_string(i));
    if (outcome == rotation_outcome::nothing && !in_flight(now_stored)) break;
    t += 1h;
  }

  const auto done = stored();
  EXPECT_FALSE(in_flight(done)) << "a rotation is still recorded";
  expect_login(active_of(done), db, "at the end");
  if (dual) {
    expect_login(standby_of(done), db, "(standby) at the end");
    // The rotation completed: the standby became active.
    EXPECT_EQ(active_of(done).user, standby_of(initial).user);
    expect_no_secret_in_annotations(done, {active_of(initial).password, standby_of(initial).password});
  } else {
    EXPECT_FALSE(active_of(done).password == active_of(initial).password);
    expect_refused(active_of(initial), db, "(old in-place password) at the end");
  }
}

std::vector<crash_case> crash_cases() {
  std::vector<crash_case> out;
  for (auto p : {fault_points::claimed, fault_points::changed, fault_points::switched, fault_points::retire_claimed,
                 fault_points::retire_changed, fault_points::retired})
    out.push_back({rotation_strategy::dual, p});
  for (auto p : {fault_points::claimed, fault_points::changed, fault_points::switched})
    out.push_back({rotation_strategy::in_place, p});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Engines, RotationCrashTest,
                         ::testing::Combine(::testing::Values("pg", "mariadb"), ::testing::ValuesIn(crash_cases()),
                                            ::testing::Bool()),
                         [](const auto& param_info) {
                           const crash_case& c = std::get<1>(param_info.param);
                           const bool other = std::get<2>(param_info.param);
                           std::string name = std::get<0>(param_info.param) + "_" +
                                              (c.strategy == rotation_strategy::dual ? "dual" : "inplace") + "_" +
                                              std::string(c.point) + (other ? "_takeover" : "_restart");
                           for (char& ch : name)
                             if (ch == '-') ch = '_';
                           return name;
                         });

}  // namespace
