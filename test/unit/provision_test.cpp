// Provisioning's reconcile rounds (provision.hpp) on the fake server and store: every call
// of a run failed in turn, with what each failure leaves behind and a rerun that
// completes; a racing init; lost credentials; ownership. The same against the real
// servers: test/integration/provision_dbtest.cpp and the suite's provision faults.

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <tuple>

#include "state_machines.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/naming.hpp"
#include "tenantdb/ownership.hpp"
#include "tenantdb/provision.hpp"
#include "tenantdb/rotation.hpp"

using namespace tenantdb;
using namespace tenantdb::test;

namespace {

/// What a completed run leaves: the store holds what the run returned, every account it
/// names logs in with its stored password, and no lockout is recorded.
void expect_provisioned(const tenant_world& w, const provision_result& result, rotation_strategy strategy,
                        const std::string& when) {
  ASSERT_TRUE(w.store.content) << "nothing stored " << when;
  const auto& s = w.stored();
  EXPECT_TRUE(same_data(result.data, s.data)) << "the result is not what the store holds " << when;
  EXPECT_EQ(value_of(s, keys::database), result.names.database) << when;
  EXPECT_TRUE(w.server.databases.count(result.names.database)) << "no database " << when;
  expect_workload_logs_in(w, when);
  const auto standby = standby_of(s);
  if (strategy == rotation_strategy::dual) {
    ASSERT_TRUE(standby) << "no standby account stored " << when;
    EXPECT_TRUE(logs_in(w, *standby)) << "the standby does not log in with its stored password " << when;
  } else {
    EXPECT_FALSE(standby) << when;
  }
  EXPECT_TRUE(rotator::locked_out_account(s).empty()) << when;
  expect_no_unclaimed_password(w, when);
}

class ProvisionFailures : public ::testing::TestWithParam<std::tuple<rotation_strategy, bool>> {
protected:
  rotation_strategy strategy() const { return std::get<0>(GetParam()); }
  bool after_the_work() const { return std::get<1>(GetParam()); }
};

INSTANTIATE_TEST_SUITE_P(Provision, ProvisionFailures,
                         ::testing::Combine(::testing::Values(rotation_strategy::dual, rotation_strategy::in_place),
                                            ::testing::Values(false, true)),
                         [](const auto& test) {
                           return std::string(std::get<0>(test.param) == rotation_strategy::dual ? "Dual" : "InPlace") +
                                  (std::get<1>(test.param) ? "AnswerLost" : "Refused");
                         });

TEST_P(ProvisionFailures, ANewTenantFailingEachCallNeverHasAPasswordTheStoreLacksAndARerunCompletes) {
  for (std::size_t n = 1;; ++n) {
    ASSERT_LT(n, 80u) << "provision() never completed";
    tenant_world w;
    w.fail_nth(n, after_the_work());
    std::optional<provision_result> result;
    try {
      result = w.provision_tenant(strategy());
    } catch (const error& e) {
      ASSERT_TRUE(w.failures.fired()) << "provision() failed on its own: " << e.what();
    }
    const std::string when = "after call " + std::to_string(n) + " (" + w.failed_call() + ") failed";
    if (!w.failures.fired()) {
      ASSERT_TRUE(result);
      expect_provisioned(w, *result, strategy(), "without a failure");
      EXPECT_TRUE(result->store_written);
      EXPECT_TRUE(result->password_set);
      EXPECT_GE(n, 8u) << "fewer calls than a new tenant needs";
      return;
    }
    EXPECT_FALSE(result) << "provision() returned normally " << when << ": the failure was swallowed";
    expect_no_unclaimed_password(w, when);

    w.no_failures();
    const auto again = w.provision_tenant(strategy());
    expect_provisioned(w, again, strategy(), "after the rerun, " + when);
  }
}

TEST_P(ProvisionFailures, AWorkingTenantFailingEachCallKeepsItsCredentials) {
  for (std::size_t n = 1;; ++n) {
    ASSERT_LT(n, 80u) << "provision() never completed";
    tenant_world w;
    w.provision_tenant(strategy());
    const stored_credentials before = w.stored();
    w.fail_nth(n, after_the_work());
    std::optional<provision_result> result;
    try {
      result = w.provision_tenant(strategy());
    } catch (const error& e) {
      ASSERT_TRUE(w.failures.fired()) << "provision() failed on its own: " << e.what();
    }
    const std::string when = "after call " + std::to_string(n) + " (" + w.failed_call() + ") failed";
    if (!w.failures.fired()) {
      ASSERT_TRUE(result);
      EXPECT_FALSE(result->store_written) << "working credentials were rewritten";
      EXPECT_FALSE(result->password_set) << "working passwords were set again";
      break;
    }
    EXPECT_FALSE(result) << "provision() returned normally " << when << ": the failure was swallowed";
    EXPECT_EQ(w.stored().version, before.version) << "the store was written " << when;
    expect_workload_logs_in(w, when);
    expect_no_unclaimed_password(w, when);

    w.no_failures();
    const auto again = w.provision_tenant(strategy());
    expect_provisioned(w, again, strategy(), "after the rerun, " + when);
    EXPECT_TRUE(same_data(again.data, before.data)) << "the credentials changed " << when;
  }
}

TEST(ProvisionRounds, EveryLoginGetsTheConnectorsLimitsWithTheTenantsOverridesAndARerunRepairsThem) {
  using namespace std::chrono_literals;
  for (const auto strategy : {rotation_strategy::dual, rotation_strategy::in_place}) {
    tenant_world w;
    w.conn.limits = tenant_limits{30, 10s, 0ms};
    provision_options options = w.provision_options_for(strategy);
    options.limits.max_connections = 5;  // the tenant's --max-connections
    const auto result = provision(w.conn, w.server, w.store, options);
    const tenant_limits want{5, 10s, 0ms};
    EXPECT_EQ(w.server.accounts.at(result.names.user_a).limits, want);
    if (strategy == rotation_strategy::dual) {
      EXPECT_EQ(w.server.accounts.at(result.names.user_b).limits, want);
    }

    // Someone lifted the limit: the next run puts it back, and a new connector default
    // reaches the tenant where no override names it.
    w.server.accounts.at(result.names.user_a).limits = tenant_limits{};
    w.conn.limits.statement_timeout = 20s;
    provision(w.conn, w.server, w.store, options);
    EXPECT_EQ(w.server.accounts.at(result.names.user_a).limits, (tenant_limits{5, 20s, 0ms}));
    EXPECT_EQ(w.failures.count("admin.apply_limits"), strategy == rotation_strategy::dual ? 4u : 2u);
  }
}

TEST(ProvisionRounds, TimeoutsAreDroppedOnMysqlAndTheConnectionLimitStays) {
  using namespace std::chrono_literals;
  tenant_world w;
  w.conn.server.type = engine_type::mysql;
  w.conn.limits = tenant_limits{20, 0ms, 0ms};
  provision_options options = w.provision_options_for(rotation_strategy::dual);
  options.limits.statement_timeout = 30s;  // a shared pod template's flag
  const auto result = provision(w.conn, w.server, w.store, options);
  EXPECT_EQ(w.server.accounts.at(result.names.user_a).limits, (tenant_limits{20, 0ms, 0ms}));
}

TEST(ProvisionRounds, AnInitThatLosesTheClaimAdoptsTheWinnersCredentials) {
  tenant_world w;
  std::optional<provision_result> winner;
  // Another init provisions the tenant between this one's load and its claim.
  w.store.before_next_write = [&] { winner = w.provision_tenant(rotation_strategy::dual); };
  const auto loser = w.provision_tenant(rotation_strategy::dual);
  ASSERT_TRUE(winner);
  EXPECT_TRUE(same_data(loser.data, winner->data)) << "the inits ended with different credentials";
  EXPECT_FALSE(loser.store_written);
  expect_provisioned(w, loser, rotation_strategy::dual, "after the race");
  EXPECT_EQ(w.failures.count("store.create"), 2u);
  EXPECT_EQ(w.failures.count("store.replace"), 0u) << "the loser overwrote the winner";
}

TEST(ProvisionRounds, ALostActivePasswordGetsAFreshOneClaimedBeforeTheDatabaseChanges) {
  for (std::size_t n = 1;; ++n) {
    ASSERT_LT(n, 80u) << "provision() never completed";
    tenant_world w;
    w.provision_tenant(rotation_strategy::in_place);
    const login before = active_of(w.stored());
    const secret changed("ChangedBehindOurBackChangedBehind1");
    w.server.accounts.at(before.user).password = changed;
    w.fail_nth(n);
    std::optional<provision_result> result;
    try {
      result = w.provision_tenant(rotation_strategy::in_place);
    } catch (const error& e) {
      ASSERT_TRUE(w.failures.fired()) << "provision() failed on its own: " << e.what();
    }
    const std::string when = "after call " + std::to_string(n) + " (" + w.failed_call() + ") failed";
    const auto expect_fresh = [&](const provision_result& r, const std::string& how) {
      expect_provisioned(w, r, rotation_strategy::in_place, how);
      EXPECT_FALSE(active_of(w.stored()).password == before.password) << "the lost password was set again " << how;
      EXPECT_FALSE(logs_in(w, login{before.user, changed})) << "the unknown password still works " << how;
    };
    if (!w.failures.fired()) {
      ASSERT_TRUE(result);
      expect_fresh(*result, "without a failure");
      return;
    }
    EXPECT_FALSE(result) << "provision() returned normally " << when << ": the failure was swallowed";
    // The account keeps the unknown password, or has one the store holds.
    const auto& account = w.server.accounts.at(before.user);
    if (!(account.password == changed)) expect_no_unclaimed_password(w, when);

    w.no_failures();
    expect_fresh(w.provision_tenant(rotation_strategy::in_place), "after the rerun, " + when);
  }
}

TEST(ProvisionRounds, ADatabaseOfAnotherOwnerIsRefusedWithNothingChanged) {
  tenant_world w;
  const auto o = w.provision_options_for(rotation_strategy::dual);
  const tenant_names names = derive_names(o.who, o.name_prefix);
  owner_record other;
  other.namespace_name = "team-b";
  other.name = "someone-else";
  other.store = "secret team-b/vc-db-someone-else";
  other.database = names.database;
  w.server.databases[names.database] = owner_record_json(other);
  try {
    w.provision_tenant(rotation_strategy::dual);
    FAIL() << "provisioned over another owner's database";
  } catch (const error& e) {
    EXPECT_EQ(e.kind(), error_kind::ownership) << e.what();
  }
  EXPECT_FALSE(w.store.content) << "the store was written";
  EXPECT_TRUE(w.server.accounts.empty()) << "accounts were created";
  EXPECT_EQ(w.server.databases.at(names.database), owner_record_json(other)) << "the record was changed";
}

}  // namespace
