// Issue 12, finding "a leaked tenant password survives rotation": with the dual strategy the
// previous account keeps working for the grace period, and whoever holds its password can
// set a password of their own for it (PostgreSQL: ALTER ROLE CURRENT_USER; MariaDB: SET
// PASSWORD). These tests perform that attack against a real sidecar and the real init on
// both engines, and check that the product reports it (not ready, a lockout gauge, a
// record in the Secret), never breaks the workload's active credential, and that the init
// (with the connector's admin) takes the login back: a fresh password, the attacker's open
// session ended, the sidecar ready again and rotations working again.

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <random>
#include <string>

#include "isolation_clients.hpp"
#include "outages.hpp"
#include "suite.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/rotation.hpp"
#include "testdb.hpp"

namespace tenantdb::test::outages {
namespace {

using namespace std::chrono_literals;

[[maybe_unused]] const bool server_logs = dump_server_logs_on_failure({"pg", "mariadb"});

// Someone holding a leaked password, with a session of their own on the tenant's database.
class attacker {
public:
  attacker(const std::string& engine, const server_address& server, const std::string& user,
           const std::string& password, const std::string& database) {
    const login l{user, secret(password)};
    if (engine == "pg") {
      pg_ = std::make_unique<isolation::pg_client>(server, l, database);
    } else {
      my_ = std::make_unique<isolation::my_client>(server, l, database);
    }
  }

  // Sets the session's own account's password, as any login may.
  void change_own_password(const std::string& password) {
    if (pg_) {
      // The tenant's logins act as the group role; back to the login role first.
      pg_->exec("SET ROLE NONE");
      pg_->exec("ALTER ROLE CURRENT_USER PASSWORD '" + password + "'");
    } else {
      my_->exec("SET PASSWORD = PASSWORD('" + password + "')");
    }
  }

  // True while the session still answers.
  bool alive() {
    try {
      return (pg_ ? pg_->value("SELECT 1") : my_->value("SELECT 1")) == "1";
    } catch (const isolation::sql_failure&) {
      return false;
    }
  }

private:
  std::unique_ptr<isolation::pg_client> pg_;
  std::unique_ptr<isolation::my_client> my_;
};

std::string lockout_gauge(const std::string& user) {
  return "tenantdb_account_lockout{account=\"" + user + "\"}";
}

// Letters and digits only: it goes into a SQL literal above.
std::string attacker_password() {
  static constexpr char alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
  std::random_device rd;
  std::string out = "Attacker";
  for (int i = 0; i < 16; ++i) out.push_back(alphabet[rd() % (sizeof alphabet - 1)]);
  return out;
}

class LockoutTest : public OutageFixture, public ::testing::WithParamInterface<std::string> {
protected:
  std::string engine() const override { return GetParam(); }

  // Starts a rotation through the sidecar's admin endpoint and waits for the switch: the
  // account that was active is the standby now, in its grace period. Then waits until the
  // workload has moved on: the files hold the new account and a login that began after
  // they did has finished (the attacker can break a client that still uses the previous
  // password; the grace period exists for those, and nothing can keep it working for
  // them once its password is changed).
  void rotate_and_wait_for_switch(sidecar& sc, const std::string& previous_user, const file_client& workload) {
    ASSERT_EQ(http(sc.admin, "POST", "/rotate").status, 202);
    ASSERT_TRUE(eventually([&] { return stored(keys::user) != previous_user; }, 20s)) << "no switch";
    ASSERT_EQ(stored(keys::standby_user), previous_user);
    ASSERT_TRUE(eventually([&] { return value_of(read_directory(sc.out), keys::user) == stored(keys::user); }, 10s))
        << "the files did not move on";
    const int logins = workload.logins();
    ASSERT_TRUE(eventually([&] { return workload.logins() >= logins + 2; }, 10s)) << "the workload stopped logging in";
  }
};

TEST_P(LockoutTest, PreviousPasswordChangedDuringTheGraceIsReportedAndTheInitTakesTheLoginBack) {
  suite_tally tally;
  ASSERT_EQ(init({}).exit_code, 0);
  const fs::path out = work_ / "out";
  auto& sc = start("pod-a", out, {"--rotate-every", "never", "--grace", "4s"});
  ASSERT_TRUE(eventually([&] { return sc.ready() == 200; }, 20s)) << http(sc.port, "GET", "/readyz").body;
  file_client workload(out);  // a workload logging in from the files the whole time

  // The leak: the attacker holds the active credential and keeps a session open with it.
  const std::string user0 = stored(keys::user);
  const std::string pw0 = stored(keys::password);
  attacker thief(engine(), conn_.server, user0, pw0, stored(keys::database));

  rotate_and_wait_for_switch(sc, user0, workload);
  if (HasFatalFailure()) return;
  const std::string user1 = stored(keys::user);
  const std::string pw1 = stored(keys::password);

  // The attack, inside the grace period: the previous account gets the attacker's password.
  const std::string stolen = attacker_password();
  ++tally.attacks;
  thief.change_own_password(stolen);
  ASSERT_TRUE(logs_in(user0, stolen)) << "the attack did not take";

  // Reported: the retire at the end of the grace period finds the account locked out.
  ASSERT_TRUE(eventually([&] { return annotation(annotations::lockout) == user0; }, 30s))
      << "no lockout recorded in the Secret";
  EXPECT_TRUE(eventually([&] { return sc.ready() == 503; }, 10s)) << "the sidecar stays ready";
  EXPECT_TRUE(eventually([&] { return metric(sc.metrics(), lockout_gauge(user0)) == 1; }, 5s)) << sc.metrics();
  EXPECT_EQ(metric(sc.metrics(), lockout_gauge(user1)), 0) << sc.metrics();
  EXPECT_EQ(metric(sc.metrics(), "tenantdb_ready"), 0);
  EXPECT_NE(sc.proc->err().find("account locked out"), std::string::npos) << "no error line says what happened";
  // The workload's credential was never touched.
  EXPECT_EQ(stored(keys::user), user1);
  EXPECT_EQ(stored(keys::password), pw1);
  EXPECT_TRUE(logs_in(user1, pw1));

  // The repair: tenantdb-init, with the connector's admin.
  const auto repaired = init({});
  ASSERT_EQ(repaired.exit_code, 0) << repaired.err;
  EXPECT_FALSE(logs_in(user0, stolen)) << "the attacker's password still logs in";
  EXPECT_FALSE(logs_in(user0, pw0)) << "the leaked password logs in again";
  EXPECT_TRUE(logs_in(user0, stored(keys::standby_password))) << "the standby's fresh password";
  EXPECT_NE(stored(keys::standby_password), pw0);
  EXPECT_EQ(stored(keys::user), user1) << "the repair touched the active account";
  EXPECT_EQ(stored(keys::password), pw1) << "the repair touched the active password";
  EXPECT_EQ(annotation(annotations::lockout), "");
  EXPECT_FALSE(thief.alive()) << "the attacker's open session survived the reset";

  // Ready again, and rotations work again (switch and retire).
  EXPECT_TRUE(eventually([&] { return sc.ready() == 200; }, 15s)) << http(sc.port, "GET", "/readyz").body;
  EXPECT_EQ(metric(sc.metrics(), lockout_gauge(user0)), 0) << sc.metrics();
  rotate_and_wait_for_switch(sc, user1, workload);
  if (HasFatalFailure()) return;
  EXPECT_TRUE(
      eventually([&] { return metric(sc.metrics(), "tenantdb_rotations_total{result=\"retired\"}") >= 1; }, 30s))
      << sc.metrics();
  EXPECT_TRUE(eventually_working(out, 30s));

  // What the sidecar and the init said about it named no password.
  const std::string said = sc.proc->err() + sc.proc->out() + repaired.err + repaired.out;
  for (const std::string& pw : {pw0, pw1, stolen, stored(keys::standby_password), stored(keys::password)})
    EXPECT_EQ(said.find(pw), std::string::npos) << "a password in the logs";

  workload.stop();
  EXPECT_GT(workload.logins(), 0);
  for (const auto& f : workload.failures()) ADD_FAILURE() << "the workload's login failed: " << f.what;
  if (!HasFailure()) ++tally.held;
}

// The same attack, but the init runs while the grace period still lasts (before any
// sidecar noticed): it finds the account itself.
TEST_P(LockoutTest, InitDuringTheGraceFindsTheChangedPreviousPasswordAndTakesTheLoginBack) {
  suite_tally tally;
  ASSERT_EQ(init({}).exit_code, 0);
  const fs::path out = work_ / "out";
  auto& sc = start("pod-b", out, {"--rotate-every", "never", "--grace", "10m"});
  ASSERT_TRUE(eventually([&] { return sc.ready() == 200; }, 20s)) << http(sc.port, "GET", "/readyz").body;
  file_client workload(out);

  const std::string user0 = stored(keys::user);
  const std::string pw0 = stored(keys::password);
  attacker thief(engine(), conn_.server, user0, pw0, stored(keys::database));
  rotate_and_wait_for_switch(sc, user0, workload);
  if (HasFatalFailure()) return;
  ASSERT_FALSE(annotation(annotations::rotation).empty()) << "the grace period is not recorded";
  const std::string user1 = stored(keys::user);
  const std::string pw1 = stored(keys::password);

  const std::string stolen = attacker_password();
  ++tally.attacks;
  thief.change_own_password(stolen);
  ASSERT_TRUE(logs_in(user0, stolen)) << "the attack did not take";

  const auto repaired = init({});
  ASSERT_EQ(repaired.exit_code, 0) << repaired.err;
  EXPECT_FALSE(logs_in(user0, stolen)) << "the attacker's password still logs in";
  EXPECT_FALSE(logs_in(user0, pw0)) << "the leaked password logs in again";
  EXPECT_TRUE(logs_in(user0, stored(keys::standby_password)));
  EXPECT_EQ(stored(keys::user), user1) << "the repair touched the active account";
  EXPECT_EQ(stored(keys::password), pw1) << "the repair touched the active password";
  EXPECT_FALSE(thief.alive()) << "the attacker's open session survived the reset";
  // The reset ended the grace period: nothing is left for a retire to do.
  EXPECT_FALSE(intent_left()) << annotation(annotations::rotation);

  EXPECT_TRUE(eventually([&] { return sc.ready() == 200; }, 15s)) << http(sc.port, "GET", "/readyz").body;
  rotate_and_wait_for_switch(sc, user1, workload);
  if (HasFatalFailure()) return;
  EXPECT_TRUE(logs_in(stored(keys::user), stored(keys::password)));

  workload.stop();
  EXPECT_GT(workload.logins(), 0);
  for (const auto& f : workload.failures()) ADD_FAILURE() << "the workload's login failed: " << f.what;
  if (!HasFailure()) ++tally.held;
}

INSTANTIATE_TEST_SUITE_P(Engines, LockoutTest, ::testing::Values("pg", "mariadb"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace tenantdb::test::outages
