// tenantdb-init as a process, the way a pod runs it: against the Kubernetes API
// stand-in (TLS, bearer token, RBAC, Status bodies) and the real database servers.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <rapidjson/document.h>
#include <set>
#include <thread>

#include "kube_standin.hpp"
#include "pod.hpp"
#include "ports.hpp"
#include "process.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/dsn.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/limits.hpp"
#include "tenantdb/naming.hpp"
#include "testdb.hpp"

namespace fs = std::filesystem;
using namespace tenantdb;

namespace {

[[maybe_unused]] const bool server_logs = test::dump_server_logs_on_failure({"pg", "mariadb"});

class InitCliTest : public ::testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    conn_ = test::load_connector(GetParam());
    work_ = fs::temp_directory_path() / ("tenantdb-init-cli-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(work_);
    fs::create_directories(work_);
    who_ = test::unique_tenant("cli");
    who_.namespace_name = "team-a";
    secret_name_ = "vc-db-" + who_.name;
    test::set_up_pod(api_, pod_, GetParam(), secret_name_);
    kubeconfig_ = (work_ / "kubeconfig").string();
    test::write_kubeconfig(kubeconfig_, api_, pod_);
  }
  void TearDown() override { fs::remove_all(work_); }

  test::process_result init(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    args.insert(args.begin(), TENANTDB_INIT_BIN);
    env.emplace("KUBECONFIG", "");
    env.emplace("POD_NAMESPACE", "");
    return test::run_process(args, env);
  }

  std::vector<std::string> kube_args(const fs::path& out) const {
    return {"--tenant",     who_.name,   "--namespace",  "team-a",     "--connector", "platform/db-connector",
            "--kubeconfig", kubeconfig_, "--output-dir", out.string(), "--timeout",   "60s"};
  }

  std::string stored(const std::string& key) const {
    return api_.secret_value("team-a", secret_name_, key).value_or("<missing>");
  }

  connector conn_;
  fs::path work_;
  tenant who_;
  std::string secret_name_;
  std::string kubeconfig_;
  test::KubeStandin api_;
  test::pod_identity pod_;
};

TEST_P(InitCliTest, KubeModeWritesTheCredentialsSecretAndDirectoryThatLogIn) {
  const fs::path out = work_ / "creds";
  const auto r = init(kube_args(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;

  const auto names = derive_names(who_);
  EXPECT_EQ(stored("database"), names.database);
  EXPECT_EQ(stored("user"), names.user_a);
  EXPECT_EQ(stored("host"), conn_.server.host);
  EXPECT_EQ(stored("port"), std::to_string(conn_.server.port));
  EXPECT_EQ(stored("caCert"), conn_.server.ca_pem);
  const std::string password = stored("password");
  ASSERT_EQ(password.size(), 32u);
  const std::string ds = stored("dataSource");
  if (GetParam() == "pg") {
    EXPECT_EQ(stored("type"), "postgres");
    EXPECT_EQ(ds, "postgres://" + names.user_a + ":" + password + "@" + conn_.server.host + ":" +
                      std::to_string(conn_.server.port) + "/" + names.database +
                      "?sslmode=verify-full&sslrootcert=" + percent_encode((out / "caCert").string()));
  } else {
    EXPECT_EQ(stored("type"), "mariadb");
    EXPECT_EQ(ds, "mysql://" + names.user_a + ":" + password + "@tcp(" + conn_.server.host + ":" +
                      std::to_string(conn_.server.port) + ")/" + names.database + "?tls=true");
  }
  const auto object = api_.get_object("secrets", "team-a", secret_name_);
  ASSERT_TRUE(object);
  EXPECT_NE(object->find(R"("app.kubernetes.io/managed-by":"tenantdb")"), std::string::npos) << *object;

  // The directory holds the workload's view: the same values, no standby account.
  const auto files = read_directory(out);
  EXPECT_EQ(files.at("password").reveal(), password);
  EXPECT_EQ(files.at("dataSource").reveal(), ds);
  EXPECT_EQ(files.count("standbyPassword"), 0u);
  EXPECT_EQ(fs::status(out / "..data" / "password").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::group_read);
  EXPECT_NO_THROW(verify_login(conn_.server, login{names.user_a, secret(password)}, names.database));
}

/// The Events stored in team-a, as JSON.
rapidjson::Document parse_json(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.data(), text.size());
  return d;
}

std::string json_text(const rapidjson::Value& v, const char* key, const char* sub = nullptr) {
  const auto it = v.FindMember(key);
  if (it == v.MemberEnd()) return "<absent>";
  const rapidjson::Value* value = &it->value;
  if (sub != nullptr) {
    if (!value->IsObject() || !value->HasMember(sub)) return "<absent>";
    value = &(*value)[sub];
  }
  return value->IsString() ? value->GetString() : "<not a string>";
}

TEST_P(InitCliTest, ProvisionEmitsANormalProvisionedEventOnThePodWithNoSecretInIt) {
  const fs::path out = work_ / "creds";
  const auto r = init(kube_args(out), {{"POD_NAME", "app-0"}, {"POD_NAMESPACE", "team-a"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  const auto events = api_.list_objects("events", "team-a");
  ASSERT_EQ(events.size(), 1u) << r.err;
  const auto e = parse_json(events[0]);
  EXPECT_EQ(json_text(e, "type"), "Normal");
  EXPECT_EQ(json_text(e, "reason"), "Provisioned");
  EXPECT_EQ(json_text(e, "involvedObject", "kind"), "Pod");
  EXPECT_EQ(json_text(e, "involvedObject", "name"), "app-0");
  EXPECT_EQ(json_text(e, "involvedObject", "namespace"), "team-a");
  EXPECT_EQ(json_text(e, "source", "component"), "tenantdb-init");
  EXPECT_EQ(json_text(e, "reportingComponent"), "tenantdb-init");
  const std::string message = json_text(e, "message");
  EXPECT_NE(message.find(derive_names(who_).database), std::string::npos) << message;
  EXPECT_NE(message.find(secret_name_), std::string::npos) << message;

  const std::vector<std::string> passwords{stored("password"), stored("standbyPassword"),
                                           conn_.admin_password.reveal()};
  ASSERT_EQ(passwords[0].size(), 32u);
  for (const auto& event : events) EXPECT_EQ(test::find_password(event, passwords), "") << "in an Event";

  // A run that changes nothing sends no Event; without a pod name the Secret is the object.
  ASSERT_EQ(init(kube_args(out), {{"POD_NAME", "app-0"}, {"POD_NAMESPACE", "team-a"}}).exit_code, 0);
  EXPECT_EQ(api_.list_objects("events", "team-a").size(), 1u);
  api_.put_object(R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":")" + secret_name_ +
                  R"(","namespace":"team-a"},"type":"Opaque"})");  // emptied: provisioned again
  ASSERT_EQ(init(kube_args(out)).exit_code, 0);
  const auto all = api_.list_objects("events", "team-a");
  ASSERT_EQ(all.size(), 3u) << "Provisioned and Repaired (unusable stored credentials replaced)";
  std::set<std::string> reasons;
  for (const auto& event : all) {
    const auto d = parse_json(event);
    if (json_text(d, "involvedObject", "kind") != "Secret") continue;
    EXPECT_EQ(json_text(d, "involvedObject", "name"), secret_name_);
    reasons.insert(json_text(d, "reason"));
  }
  EXPECT_EQ(reasons, (std::set<std::string>{"Provisioned", "Repaired"}));
  const std::vector<std::string> now{stored("password"), stored("standbyPassword"), passwords[0], passwords[1],
                                     conn_.admin_password.reveal()};
  for (const auto& event : all) EXPECT_EQ(test::find_password(event, now), "") << "in an Event";
}

TEST_P(InitCliTest, WithoutRbacOnEventsTheInitStillSucceeds) {
  api_.revoke(pod_.user);
  api_.allow(pod_.user, "get", pod_.connector_ns, "secrets", pod_.connector_name);
  api_.allow(pod_.user, "get", "team-a", "secrets", secret_name_);
  api_.allow(pod_.user, "update", "team-a", "secrets", secret_name_);
  api_.allow(pod_.user, "create", "team-a", "secrets");
  const fs::path out = work_ / "creds";
  const auto r = init(kube_args(out), {{"POD_NAME", "app-0"}, {"POD_NAMESPACE", "team-a"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(stored("password").size(), 32u);
  EXPECT_TRUE(api_.list_objects("events", "team-a").empty());
  EXPECT_EQ(api_.request_count("POST", "/events"), 1u) << "tried once, no retries";
  EXPECT_NE(r.err.find("could not create a Kubernetes Event"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("forbidden"), std::string::npos) << r.err;
}

TEST_P(InitCliTest, ARunTimeFailureEmitsAWarningFailedEventAndRefusedInputNone) {
  // Refused input changes nothing, not even an Event: a connector without adminPassword.
  api_.put_object(R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"db-connector","namespace":"platform"},)"
                  R"("type":"Opaque","stringData":{"type":"postgres","host":"db.invalid","adminUser":"admin"}})");
  auto refused = init(kube_args(work_ / "creds"), {{"POD_NAME", "app-0"}, {"POD_NAMESPACE", "team-a"}});
  ASSERT_EQ(refused.exit_code, 3) << refused.err;
  EXPECT_TRUE(api_.list_objects("events", "team-a").empty()) << "refused input created an Event";

  // A server that does not answer until the deadline is a run-time failure: one Warning.
  const std::string port = std::to_string(test::unused_port());
  api_.put_object(R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"db-connector","namespace":"platform"},)"
                  R"("type":"Opaque","stringData":{"type":"postgres","host":"127.0.0.1","port":")" +
                  port + R"(","adminUser":"admin","adminPassword":"not-a-real-password-0123456789"}})");
  auto args = kube_args(work_ / "creds");
  args.back() = "3s";  // --timeout
  const auto r = init(args, {{"POD_NAME", "app-0"}, {"POD_NAMESPACE", "team-a"}});
  ASSERT_NE(r.exit_code, 0) << r.err;
  const auto events = api_.list_objects("events", "team-a");
  ASSERT_EQ(events.size(), 1u) << r.err;
  const auto e = parse_json(events[0]);
  EXPECT_EQ(json_text(e, "type"), "Warning");
  EXPECT_EQ(json_text(e, "reason"), "Failed");
  EXPECT_EQ(json_text(e, "involvedObject", "name"), "app-0");
  EXPECT_NE(json_text(e, "message").find("127.0.0.1"), std::string::npos) << json_text(e, "message");
  EXPECT_EQ(json_text(e, "message").find("not-a-real-password"), std::string::npos) << "a password in an Event";
}

TEST_P(InitCliTest, SecondRunWritesNothing) {
  const fs::path out = work_ / "creds";
  ASSERT_EQ(init(kube_args(out)).exit_code, 0);
  const auto version = api_.resource_version();
  const auto data_dir = fs::read_symlink(out / "..data");
  api_.clear_requests();

  const auto r = init(kube_args(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(api_.resource_version(), version);
  EXPECT_EQ(api_.request_count("PUT"), 0u);
  EXPECT_EQ(api_.request_count("POST"), 0u);
  EXPECT_EQ(fs::read_symlink(out / "..data"), data_dir) << "the credential directory was rewritten";
}

TEST_P(InitCliTest, ConcurrentInitsEndWithOneSecretThatAllOfThemReport) {
  constexpr int runs = 3;
  std::vector<test::process_result> results(runs);
  std::vector<std::thread> threads;
  for (int i = 0; i < runs; ++i)
    threads.emplace_back([&, i] { results[i] = init(kube_args(work_ / ("creds" + std::to_string(i)))); });
  for (auto& t : threads) t.join();
  const std::string password = stored("password");
  for (int i = 0; i < runs; ++i) {
    ASSERT_EQ(results[i].exit_code, 0) << results[i].err;
    EXPECT_EQ(read_directory(work_ / ("creds" + std::to_string(i))).at("password").reveal(), password);
  }
  const auto names = derive_names(who_);
  EXPECT_NO_THROW(verify_login(conn_.server, login{names.user_a, secret(password)}, names.database));
}

TEST_P(InitCliTest, TransientApiFailuresAreRetried) {
  api_.fail_next(2, 503, "db-connector");
  api_.fail_next(1, 429, secret_name_, 1);
  api_.fail_next(1, 500, secret_name_);
  const auto r = init(kube_args(work_ / "creds"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(stored("user"), derive_names(who_).user_a);
}

TEST_P(InitCliTest, ForbiddenIsExitFourAndPointsAtTheManifests) {
  api_.revoke(pod_.user);
  api_.allow(pod_.user, "get", "platform", "secrets", "db-connector");
  const auto r = init(kube_args(work_ / "creds"));
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("forbidden"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("manifests"), std::string::npos) << r.err;
}

TEST_P(InitCliTest, MissingConnectorSecretIsExitThree) {
  api_.delete_object("secrets", "platform", "db-connector");
  const auto r = init(kube_args(work_ / "creds"));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("platform/db-connector"), std::string::npos) << r.err;
}

TEST_P(InitCliTest, WrongTokenIsExitFour) {
  api_.remove_token(pod_.token);
  const auto r = init(kube_args(work_ / "creds"));
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_EQ(r.err.find(pod_.token), std::string::npos) << "the token leaked into the log";
}

TEST_P(InitCliTest, DebugLogsNeverHoldAPassword) {
  auto args = kube_args(work_ / "creds");
  args.insert(args.end(), {"--log-level", "debug"});
  const auto r = init(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string tenant_password = stored("password");
  const std::string standby_password = stored("standbyPassword");
  for (const auto* text : {&r.out, &r.err}) {
    EXPECT_EQ(text->find(conn_.admin_password.reveal()), std::string::npos);
    EXPECT_EQ(text->find(tenant_password), std::string::npos);
    EXPECT_EQ(text->find(standby_password), std::string::npos);
    EXPECT_EQ(text->find(pod_.token), std::string::npos);
  }
  EXPECT_NE(r.err.find("\"level\":\"debug\""), std::string::npos) << "debug logging was not on";
}

TEST_P(InitCliTest, LocalModePrintsTheCredentialsAsJson) {
  const fs::path out = work_ / "local";
  const auto r =
      init({"--local", "--connector-file", (test::testdb_dir() / (GetParam() + ".connector")).string(), "--tenant",
            who_.name, "--namespace", "team-a", "--output-dir", out.string(), "--print-json", "--timeout", "60s"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  rapidjson::Document doc;
  ASSERT_FALSE(doc.Parse(r.out.c_str()).HasParseError()) << r.out;
  ASSERT_TRUE(doc.IsObject());
  for (const char* key : {"database", "user", "password", "host", "port", "type", "dataSource", "caCert"})
    EXPECT_TRUE(doc.HasMember(key)) << key;
  EXPECT_EQ(std::string(doc["password"].GetString()), read_directory(out).at("password").reveal());
}

TEST_P(InitCliTest, UnreachableDatabaseIsExitSixAfterTheTimeout) {
  const fs::path dir = work_ / "dead.connector";
  fs::copy(test::testdb_dir() / (GetParam() + ".connector"), dir);
  fs::remove(dir / "port");
  std::ofstream(dir / "port") << test::unused_port();
  const auto start = std::chrono::steady_clock::now();
  const auto r = init({"--local", "--connector-file", dir.string(), "--tenant", who_.name, "--output-dir",
                       (work_ / "out").string(), "--timeout", "3s"});
  EXPECT_EQ(r.exit_code, 6) << r.err;
  // It waited for the database instead of failing at once: several attempts, then gave up.
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_NE(r.err.find("retrying after a transient failure"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("gave up after"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(work_ / "out" / "..data"));
}

// Issue 11, item 9: a connector in the vCluster Platform's keys only (endpoint, user,
// password), without caCert and without sslMode, works as the Platform's does: TLS
// without verification (the test servers' certificate is not in any bundle the init
// sees), one warning saying so, and credentials that log in. On MariaDB the type is left
// out too: the Platform reads a blank type as mysql.
TEST_P(InitCliTest, PlatformConnectorWithoutCaCertOrSslModeProvisionsAndLogsIn) {
  const fs::path dir = work_ / "platform.connector";
  fs::create_directories(dir);
  const auto put = [&](const char* key, const std::string& value) { std::ofstream(dir / key) << value; };
  put("endpoint", conn_.server.host + ":" + std::to_string(conn_.server.port));
  put("user", conn_.admin_user);
  put("password", conn_.admin_password.reveal());
  if (GetParam() == "pg") put("type", "postgres");
  const fs::path out = work_ / "out";
  // No system bundle either: nothing may depend on one.
  const auto r = init({"--local", "--connector-file", dir.string(), "--tenant", who_.name, "--namespace", "team-a",
                       "--output-dir", out.string(), "--timeout", "60s"},
                      {{"SSL_CERT_FILE", (work_ / "no-such-bundle.crt").string()}});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // One warning: verification is off, and sslMode turns it on.
  std::vector<std::string> warnings;
  for (std::size_t pos = 0, end; pos < r.err.size(); pos = end + 1) {
    end = std::min(r.err.find('\n', pos), r.err.size());
    const std::string line = r.err.substr(pos, end - pos);
    if (line.find("\"level\":\"warn\"") != std::string::npos) warnings.push_back(line);
  }
  ASSERT_EQ(warnings.size(), 1u) << r.err;
  EXPECT_NE(warnings[0].find("not verified"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("set sslMode: verify-full"), std::string::npos) << warnings[0];
  EXPECT_NE(r.err.find("the vCluster Platform's keys without sslMode"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(conn_.admin_password.reveal()), std::string::npos) << "the admin password was logged";

  const auto files = read_directory(out);
  const auto names = derive_names(who_);
  EXPECT_EQ(files.at("type").reveal(), GetParam() == "pg" ? "postgres" : "mysql");
  EXPECT_EQ(files.at("sslMode").reveal(), "require");
  EXPECT_EQ(files.count("caCert"), 0u);
  const std::string ds = files.at("dataSource").reveal();
  if (GetParam() == "pg") {
    EXPECT_NE(ds.find("?sslmode=require"), std::string::npos) << mask_dsn(ds);
    EXPECT_EQ(ds.find("sslrootcert"), std::string::npos) << mask_dsn(ds);
  } else {
    EXPECT_EQ(ds.substr(ds.rfind('/')), "/" + names.database + "?tls=skip-verify") << mask_dsn(ds);
  }

  // The workload's credentials log in, over TLS that does not verify (as the files say).
  server_address server = conn_.server;
  server.tls = tls_mode::require;
  server.ca_pem.clear();
  EXPECT_NO_THROW(verify_login(server, login{files.at("user").reveal(), files.at("password")}, names.database));
}

// Issue 11, item 7: the connector's limits land on every login account, a flag overrides
// one per tenant, and a later run brings an existing tenant to the current limits, saying
// what it changed. What was set is read back through the admin engine: applying the
// expected limits again must change nothing (the engine suite checks that reading against
// the servers' own catalogs, and that the limits are hit).
TEST_P(InitCliTest, ConnectorLimitsAndAFlagOverrideLandOnEveryLoginAccount) {
  using namespace std::chrono_literals;
  const bool pg = GetParam() == "pg";
  const fs::path dir = work_ / "limits.connector";
  fs::copy(test::testdb_dir() / (GetParam() + ".connector"), dir);
  std::ofstream(dir / "maxConnections") << "7\n";
  if (pg) std::ofstream(dir / "statementTimeout") << "45s";
  const fs::path out = work_ / "out";
  const std::vector<std::string> base{"--local",    "--connector-file", dir.string(), "--tenant",
                                      who_.name,    "--namespace",      "team-a",     "--output-dir",
                                      out.string(), "--timeout",        "60s"};
  const auto names = derive_names(who_);
  const auto unchanged = [&](const tenant_limits& want) {
    auto admin = connect_admin(conn_.server, test::admin_login(conn_));
    return admin->apply_limits(names, names.user_a, want).empty() &&
           admin->apply_limits(names, names.user_b, want).empty();
  };

  auto r = init(base);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(unchanged(pg ? tenant_limits{7, 45s, default_idle_in_transaction_timeout} : tenant_limits{7, 0ms, 0ms}));

  // The tenant's flags override the connector: a larger pool, no idle-in-transaction timeout.
  auto args = base;
  args.insert(args.end(), {"--max-connections", "9"});
  if (pg) args.insert(args.end(), {"--idle-in-transaction-timeout", "none"});
  r = init(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("\"change\":\"maxConnections 7 -> 9\""), std::string::npos) << r.err;
  if (pg) {
    EXPECT_NE(r.err.find("\"change\":\"idleInTransactionTimeout 1m -> none\""), std::string::npos) << r.err;
  }
  EXPECT_TRUE(unchanged(pg ? tenant_limits{9, 45s, 0ms} : tenant_limits{9, 0ms, 0ms}));

  // The same run again changes nothing and says nothing about limits.
  r = init(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("set limit"), std::string::npos) << r.err;
}

// Bad input (flags, tenant inputs, malformed connectors) is tested in the reliability and
// security suite: test/suite/inputs_dbtest.cpp.

INSTANTIATE_TEST_SUITE_P(Engines, InitCliTest, ::testing::Values("pg", "mariadb"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
