// Provisioning end to end against the real PostgreSQL and MariaDB test servers, with the
// directory store (local mode). The Kubernetes Secret store is covered in init_cli_test.

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "tenantdb/credentials.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/provision.hpp"
#include "testdb.hpp"

namespace {
[[maybe_unused]] const bool server_logs = tenantdb::test::dump_server_logs_on_failure({"pg", "mariadb"});
}

namespace fs = std::filesystem;
using namespace tenantdb;

namespace {

class ProvisionTest : public ::testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    conn_ = test::load_connector(GetParam());
    dir_ = fs::temp_directory_path() / ("tenantdb-provision-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  provision_options options(const tenant& who, rotation_strategy strategy = rotation_strategy::dual) const {
    provision_options o;
    o.who = who;
    o.strategy = strategy;
    o.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    o.ca_file = (dir_ / "caCert").string();
    return o;
  }

  static login active(const credential_data& data) {
    return login{data.at(keys::user).reveal(), data.at(keys::password)};
  }

  void expect_login(const login& l, const std::string& db) const {
    EXPECT_NO_THROW(verify_login(conn_.server, l, db)) << "user " << l.user;
  }

  void expect_refused(const login& l, const std::string& db) const {
    try {
      verify_login(conn_.server, l, db);
      ADD_FAILURE() << "login as " << l.user << " to " << db << " succeeded";
    } catch (const error& e) {
      EXPECT_EQ(e.kind(), error_kind::verification) << e.what();
    }
  }

  connector conn_;
  fs::path dir_;
};

TEST_P(ProvisionTest, CreatesDatabaseAccountsAndCredentialsThatLogIn) {
  const tenant who = test::unique_tenant("prov");
  auto store = make_directory_store(dir_);
  const auto result = provision(conn_, *make_engine(conn_.server.type), *store, options(who));
  const auto names = derive_names(who);

  const auto& d = result.data;
  EXPECT_EQ(d.at(keys::database).reveal(), names.database);
  EXPECT_EQ(d.at(keys::user).reveal(), names.user_a);
  EXPECT_EQ(d.at(keys::standby_user).reveal(), names.user_b);
  EXPECT_EQ(d.at(keys::host).reveal(), conn_.server.host);
  EXPECT_EQ(d.at(keys::port).reveal(), std::to_string(conn_.server.port));
  EXPECT_EQ(d.at(keys::password).size(), 32u);
  EXPECT_EQ(d.at(keys::ca_cert).reveal(), conn_.server.ca_pem);
  EXPECT_TRUE(result.store_written);

  // What the store holds is what the run reported, and both accounts log in.
  const auto on_disk = read_directory(dir_);
  EXPECT_TRUE(on_disk.at(keys::password) == d.at(keys::password));
  expect_login(active(d), names.database);
  expect_login(login{names.user_b, d.at(keys::standby_password)}, names.database);
}

TEST_P(ProvisionTest, SecondRunChangesNothing) {
  const tenant who = test::unique_tenant("idem");
  auto store = make_directory_store(dir_);
  const auto first = provision(conn_, *make_engine(conn_.server.type), *store, options(who));
  const auto version = store->load()->version;

  const auto second = provision(conn_, *make_engine(conn_.server.type), *store, options(who));
  EXPECT_FALSE(second.store_written);
  EXPECT_FALSE(second.password_set);
  EXPECT_EQ(store->load()->version, version);
  EXPECT_TRUE(second.data.at(keys::password) == first.data.at(keys::password));
  expect_login(active(second.data), second.names.database);
}

TEST_P(ProvisionTest, ConcurrentRunsConvergeOnOneWorkingCredentialSet) {
  const tenant who = test::unique_tenant("race");
  constexpr int runs = 3;
  std::vector<provision_result> results(runs);
  std::vector<std::string> failures(runs);
  std::vector<std::thread> threads;
  for (int i = 0; i < runs; ++i)
    threads.emplace_back([&, i] {
      try {
        auto store = make_directory_store(dir_);
        results[i] = provision(conn_, *make_engine(conn_.server.type), *store, options(who));
      } catch (const std::exception& e) {
        failures[i] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& f : failures) ASSERT_EQ(f, "");

  const auto final_data = read_directory(dir_);
  for (const auto& r : results) {
    EXPECT_TRUE(r.data.at(keys::password) == final_data.at(keys::password));
    EXPECT_TRUE(r.data.at(keys::standby_password) == final_data.at(keys::standby_password));
  }
  expect_login(active(final_data), results[0].names.database);
}

TEST_P(ProvisionTest, LostStoreGetsAFreshPasswordAndTheOldOneStopsWorking) {
  const tenant who = test::unique_tenant("lost");
  const auto first = [&] {
    auto store = make_directory_store(dir_);
    return provision(conn_, *make_engine(conn_.server.type), *store, options(who));
  }();
  fs::remove_all(dir_);  // the credentials Secret is gone; the accounts remain

  auto store = make_directory_store(dir_);
  const auto second = provision(conn_, *make_engine(conn_.server.type), *store, options(who));
  EXPECT_TRUE(second.store_written);
  EXPECT_FALSE(second.data.at(keys::password) == first.data.at(keys::password));
  expect_login(active(second.data), second.names.database);
  expect_refused(active(first.data), first.names.database);
}

TEST_P(ProvisionTest, PasswordChangedBehindOurBackIsReplacedWithAFreshOne) {
  const tenant who = test::unique_tenant("broken");
  auto store = make_directory_store(dir_);
  const auto first = provision(conn_, *make_engine(conn_.server.type), *store, options(who));
  {
    auto admin = connect_admin(conn_.server, login{conn_.admin_user, conn_.admin_password});
    admin->set_password(first.names.user_a, secret("SomethingElseEntirely123"));
  }
  expect_refused(active(first.data), first.names.database);

  const auto second = provision(conn_, *make_engine(conn_.server.type), *store, options(who));
  EXPECT_TRUE(second.store_written);
  EXPECT_FALSE(second.data.at(keys::password) == first.data.at(keys::password));
  EXPECT_TRUE(read_directory(dir_).at(keys::password) == second.data.at(keys::password));
  expect_login(active(second.data), second.names.database);
}

TEST_P(ProvisionTest, DamagedStoreIsReplacedNotTrusted) {
  const tenant who = test::unique_tenant("damaged");
  auto store = make_directory_store(dir_);
  credential_data junk;
  junk[keys::database] = secret("someone_elses_db");
  junk[keys::user] = secret("root");
  junk[keys::password] = secret("x");
  ASSERT_TRUE(store->create(junk, {}));

  const auto result = provision(conn_, *make_engine(conn_.server.type), *store, options(who));
  EXPECT_EQ(result.data.at(keys::user).reveal(), result.names.user_a);
  expect_login(active(result.data), result.names.database);
}

TEST_P(ProvisionTest, InPlaceStrategyMakesOneAccountAndNoStandby) {
  const tenant who = test::unique_tenant("inplace");
  auto store = make_directory_store(dir_);
  const auto result =
      provision(conn_, *make_engine(conn_.server.type), *store, options(who, rotation_strategy::in_place));
  EXPECT_EQ(result.data.count(keys::standby_user), 0u);
  EXPECT_EQ(result.data.count(keys::standby_password), 0u);
  auto admin = connect_admin(conn_.server, login{conn_.admin_user, conn_.admin_password});
  EXPECT_TRUE(admin->user_exists(result.names.user_a));
  EXPECT_FALSE(admin->user_exists(result.names.user_b));
  EXPECT_TRUE(admin->database_exists(result.names.database));
  expect_login(active(result.data), result.names.database);
}

TEST_P(ProvisionTest, HostileTenantNamesProvisionAndStayApart) {
  const std::string suffix = test::unique_tenant("x").name;
  const std::vector<std::string> hostile = {"quote'\"`\\;--" + suffix, "pct%_under_" + suffix, "ümlaut-ñ-" + suffix,
                                            std::string(200, 'a') + suffix, "DROP DATABASE x;" + suffix};
  std::vector<provision_result> results;
  for (std::size_t i = 0; i < hostile.size(); ++i) {
    const tenant who{hostile[i], "default"};
    auto store = make_directory_store(dir_ / std::to_string(i));
    results.push_back(
        provision(conn_, *make_engine(conn_.server.type), *store, options(who, rotation_strategy::in_place)));
    expect_login(active(results.back().data), results.back().names.database);
  }
  // Each tenant reaches its own database and not the others'.
  for (std::size_t i = 0; i < results.size(); ++i)
    for (std::size_t j = 0; j < results.size(); ++j)
      if (i != j) expect_refused(active(results[i].data), results[j].names.database);
}

TEST_P(ProvisionTest, UnreachableServerIsRetriedUntilTheDeadlineThenUnavailable) {
  connector dead = conn_;
  dead.server.port = test::unused_port();
  auto store = make_directory_store(dir_);
  auto o = options(test::unique_tenant("dead"));
  o.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  try {
    provision(dead, *make_engine(dead.server.type), *store, o);
    FAIL() << "provision succeeded against a closed port";
  } catch (const error& e) {
    EXPECT_EQ(e.kind(), error_kind::unavailable) << e.what();
    EXPECT_EQ(e.code(), exit_code::unavailable);
    EXPECT_NE(std::string(e.what()).find("gave up after"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(store->load()) << "nothing may be stored when nothing was provisioned";
}

TEST_P(ProvisionTest, WrongAdminPasswordFailsAtOnceAndCreatesNothing) {
  connector bad = conn_;
  bad.admin_password = secret("definitely-not-the-admin-password");
  const tenant who = test::unique_tenant("badadmin");
  auto store = make_directory_store(dir_);
  const auto start = std::chrono::steady_clock::now();
  try {
    provision(bad, *make_engine(bad.server.type), *store, options(who));
    FAIL() << "provision succeeded with a wrong admin password";
  } catch (const error& e) {
    EXPECT_EQ(e.code(), exit_code::database) << e.what();
    EXPECT_EQ(std::string(e.what()).find("definitely-not"), std::string::npos) << "message leaks the password";
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20))
      << "a refused login must not be retried";
  EXPECT_FALSE(store->load());
  auto admin = connect_admin(conn_.server, login{conn_.admin_user, conn_.admin_password});
  EXPECT_FALSE(admin->user_exists(derive_names(who).user_a));
  EXPECT_FALSE(admin->database_exists(derive_names(who).database));
}

TEST_P(ProvisionTest, BadPasswordLengthIsRejectedBeforeAnythingIsCreated) {
  const tenant who = test::unique_tenant("badlen");
  auto store = make_directory_store(dir_);
  auto o = options(who);
  o.password_length = 8;
  try {
    provision(conn_, *make_engine(conn_.server.type), *store, o);
    FAIL() << "provision accepted an 8-character password length";
  } catch (const error& e) {
    EXPECT_EQ(e.code(), exit_code::usage) << e.what();
  }
  auto admin = connect_admin(conn_.server, login{conn_.admin_user, conn_.admin_password});
  EXPECT_FALSE(admin->database_exists(derive_names(who).database));
  EXPECT_FALSE(store->load());
}

TEST_P(ProvisionTest, WrongCertificateAuthorityIsAConnectorErrorNotRetried) {
  connector wrong = conn_;
  wrong.server.ca_pem = test::other_ca_pem();
  auto store = make_directory_store(dir_);
  try {
    provision(wrong, *make_engine(wrong.server.type), *store, options(test::unique_tenant("wrongca")));
    FAIL() << "provision succeeded although the server's certificate does not verify";
  } catch (const error& e) {
    EXPECT_EQ(e.code(), exit_code::connector) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, ProvisionTest, ::testing::Values("pg", "mariadb"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
