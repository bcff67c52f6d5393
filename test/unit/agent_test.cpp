// The sidecar's agent in-process with a directory store and no database: flag parsers,
// publishing (keys + formats, never the standby or a pending password), the HTTP
// endpoints and their limits, the reload command's environment, and a prompt stop.
// The database parts (login checks, rotations) are covered by sidecar_dbtest.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <csignal>
#include <filesystem>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include "eventually.hpp"
#include "expect_error.hpp"
#include "metrics.hpp"
#include "pod.hpp"
#include "ports.hpp"
#include "process.hpp"
#include "tenantdb/agent.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/store.hpp"
#include "tenantdb/time.hpp"

namespace fs = std::filesystem;
using namespace tenantdb;
using namespace std::chrono_literals;

namespace {

using test::http;

using test::eventually;
using test::metric;

TEST(AgentParsers, ListenAddresses) {
  auto a = parse_listen_address("0.0.0.0:8080", "--listen");
  EXPECT_EQ(a.host, "0.0.0.0");
  EXPECT_EQ(a.port, 8080);
  a = parse_listen_address("[::1]:81", "--admin-listen");
  EXPECT_EQ(a.host, "::1");
  EXPECT_TRUE(is_loopback(a));
  a = parse_listen_address(":9000", "--listen");
  EXPECT_EQ(a.host, "0.0.0.0");
  EXPECT_FALSE(is_loopback(a));
  EXPECT_TRUE(is_loopback(parse_listen_address("127.0.0.2:1", "--admin-listen")));
  EXPECT_FALSE(parse_listen_address("off", "--listen").enabled());
  EXPECT_TENANTDB_ERROR(parse_listen_address("localhost:80", "--listen"), error_kind::usage, "--listen");
  EXPECT_TENANTDB_ERROR(parse_listen_address("1.2.3.4", "--listen"), error_kind::usage, "--listen");
  EXPECT_TENANTDB_ERROR(parse_listen_address("1.2.3.4:70000", "--listen"), error_kind::usage, "--listen");
  EXPECT_TENANTDB_ERROR(parse_listen_address("::1:80", "--admin-listen"), error_kind::usage, "--admin-listen");
}

TEST(AgentParsers, Signals) {
  EXPECT_EQ(parse_signal("HUP"), SIGHUP);
  EXPECT_EQ(parse_signal("SIGUSR1"), SIGUSR1);
  EXPECT_EQ(parse_signal("15"), 15);
  EXPECT_TENANTDB_ERROR(parse_signal("SIGFOO"), error_kind::usage, "--reload-signal");
  EXPECT_TENANTDB_ERROR(parse_signal("0"), error_kind::usage, "--reload-signal");
}

TEST(AgentParsers, PauseAtHookSleepsOnlyAtItsPoint) {
  EXPECT_FALSE(pause_at_hook(""));
  const fault_hook hook = pause_at_hook("claimed:200");
  ASSERT_TRUE(hook);
  auto start = std::chrono::steady_clock::now();
  hook("switched");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 150ms);
  start = std::chrono::steady_clock::now();
  hook("claimed");
  EXPECT_GE(std::chrono::steady_clock::now() - start, 200ms);
  for (const char* bad : {"claimed", "claimed:", ":100", "claimed:0", "claimed:ten", "claimed:600001", "claimed:-5"})
    EXPECT_TENANTDB_ERROR(pause_at_hook(bad), error_kind::usage, "TENANTDB_TEST_PAUSE_AT");
}

TEST(AgentParsers, Rfc3339) {
  using namespace std::chrono;
  const auto t = parse_rfc3339("2024-05-01T12:00:00Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(duration_cast<seconds>(t->time_since_epoch()).count(), 1714564800);
  EXPECT_EQ(parse_rfc3339("2024-05-01T14:00:00+02:00"), t);
  EXPECT_FALSE(parse_rfc3339("2024-05-01 12:00"));
  EXPECT_FALSE(parse_rfc3339(""));
}

class AgentTest : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tenantdb-agent-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    store_ = make_directory_store(dir_ / "store");
    db_port_ = test::unused_port();  // nothing listens: login checks and rotations fail fast
    ASSERT_TRUE(store_->create(data("first-password"), {}));
  }
  void TearDown() override {
    if (agent_) {
      agent_->stop();
      if (thread_.joinable()) thread_.join();
    }
    fs::remove_all(dir_);
  }

  credential_data data(const std::string& password) const {
    credential_data d;
    d[keys::type] = secret(std::string("postgres"));
    d[keys::host] = secret(std::string("127.0.0.1"));
    d[keys::port] = secret(std::to_string(db_port_));
    d[keys::ssl_mode] = secret(std::string("disable"));
    d[keys::database] = secret(std::string("appdb"));
    d[keys::user] = secret(std::string("app_a"));
    d[keys::password] = secret(password);
    d[keys::standby_user] = secret(std::string("app_b"));
    d[keys::standby_password] = secret(std::string("standby-password"));
    d[keys::data_source] = secret("postgres://app_a:" + password + "@127.0.0.1/appdb");
    return d;
  }

  agent_options options() const {
    agent_options o;
    o.output_dir = dir_ / "out";
    o.formats = {credential_format::json, credential_format::env};
    o.ca_file = (dir_ / "out" / "caCert").string();
    o.rotate_every.reset();
    o.sync_interval = 100ms;
    o.check_interval = 200ms;
    o.listen = {"127.0.0.1", 0};
    o.admin_listen = {"127.0.0.1", 0};
    o.store_source = "files";
    o.rotation.holder = "unit-test";
    o.rotation.timeouts.connect = std::chrono::seconds(2);
    return o;
  }

  void start(agent_options o) {
    agent_ = std::make_unique<agent>(*store_, std::move(o));
    thread_ = std::thread([this] { exit_code_ = agent_->run(); });
  }

  fs::path dir_;
  std::uint16_t db_port_ = 0;
  std::unique_ptr<credential_store> store_;
  std::unique_ptr<agent> agent_;
  std::thread thread_;
  int exit_code_ = -1;
};

TEST_F(AgentTest, PublishesTheWorkloadViewWithFormatsAndFollowsTheStore) {
  start(options());
  const fs::path out = dir_ / "out";
  ASSERT_TRUE(eventually([&] { return read_directory(out).count(keys::password) == 1; }));
  auto files = read_directory(out);
  EXPECT_EQ(files.at(keys::password).reveal(), "first-password");
  EXPECT_EQ(files.count(keys::standby_password), 0u);
  EXPECT_EQ(files.count(keys::standby_user), 0u);
  EXPECT_NE(files.at("credentials.json").reveal().find("first-password"), std::string::npos);
  EXPECT_NE(files.at("credentials.env").reveal().find("DB_PASSWORD='first-password'"), std::string::npos);

  // The store moves on (as after a rotation by another replica): the files follow, all
  // in one generation.
  const auto loaded = store_->load();
  ASSERT_TRUE(loaded);
  auto next = data("second-password");
  next[pending_password_key] = secret(std::string("pending-secret"));
  ASSERT_TRUE(store_->replace(next, {{annotations::rotation, "{}"}}, loaded->version));
  ASSERT_TRUE(eventually([&] { return read_directory(out).at(keys::password).reveal() == "second-password"; }));
  files = read_directory(out);
  EXPECT_NE(files.at("credentials.env").reveal().find("second-password"), std::string::npos);
  EXPECT_NE(files.at("credentials.json").reveal().find("second-password"), std::string::npos);
  EXPECT_EQ(files.count(pending_password_key), 0u) << "a pending password must never reach the workload";
  for (const auto& [k, v] : files) EXPECT_EQ(v.reveal().find("pending-secret"), std::string::npos) << k;

  const auto m = http(agent_->port(), "GET", "/metrics").body;
  EXPECT_GE(metric(m, "tenantdb_files_published_total"), 2u) << m;
}

TEST_F(AgentTest, RepublishesFilesRemovedBehindItsBack) {
  start(options());
  const fs::path out = dir_ / "out";
  ASSERT_TRUE(eventually([&] { return read_directory(out).count(keys::password) == 1; }));
  // The publisher may still be adding key links right after ..data moved: retry.
  ASSERT_TRUE(eventually([&] {
    std::error_code ec;
    fs::remove_all(out, ec);
    return !ec && !fs::exists(out);
  }));
  EXPECT_TRUE(eventually([&] { return read_directory(out).count(keys::password) == 1; }, 5s));
}

TEST_F(AgentTest, ServesProbesMetricsAndTheAdminEndpoint) {
  start(options());
  ASSERT_TRUE(eventually([&] { return http(agent_->port(), "GET", "/healthz").status == 200; }));
  EXPECT_EQ(http(agent_->port(), "GET", "/healthz").body, "ok\n");

  // Files are in place but nothing answers on the database port: not ready, with a reason
  // class only (anyone who reaches --listen reads it): no host, no port, no server text.
  ASSERT_TRUE(eventually(
      [&] { return http(agent_->port(), "GET", "/readyz").body.find("not ready: login check failed") == 0; }));
  const auto ready = http(agent_->port(), "GET", "/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_EQ(ready.body, "not ready: login check failed: database unreachable\n");
  EXPECT_EQ(ready.body.find(std::to_string(db_port_)), std::string::npos) << ready.body;

  const auto m = http(agent_->port(), "GET", "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.headers.find("text/plain; version=0.0.4"), std::string::npos) << m.headers;
  for (const char* name :
       {"tenantdb_rotations_total{result=\"rotated\"}", "tenantdb_rotations_total{result=\"lost_race\"}",
        "tenantdb_rotations_total{result=\"failed\"}", "tenantdb_rotations_total{result=\"recovered\"}",
        "tenantdb_rotations_total{result=\"retired\"}", "tenantdb_last_rotation_success_timestamp_seconds",
        "tenantdb_credential_age_seconds", "tenantdb_errors_total{source=\"api\"}",
        "tenantdb_errors_total{source=\"database\"}", "tenantdb_errors_total{source=\"files\"}",
        "tenantdb_files_published_total", "tenantdb_ready"})
    EXPECT_NE(m.body.find(std::string("\n") + name + " "), std::string::npos) << name << "\n" << m.body;
  EXPECT_NE(m.body.find("# TYPE tenantdb_rotations_total counter"), std::string::npos);
  EXPECT_EQ(metric(m.body, "tenantdb_ready"), 0u);
  EXPECT_GE(metric(m.body, "tenantdb_errors_total{source=\"database\"}"), 1u);
  // Rotation is not scheduled: no next-rotation sample.
  EXPECT_EQ(m.body.find("\ntenantdb_next_rotation_timestamp_seconds "), std::string::npos);

  EXPECT_EQ(http(agent_->port(), "GET", "/nope").status, 404);
  EXPECT_EQ(http(agent_->port(), "POST", "/healthz", "Content-Length: 0\r\n").status, 405);
  EXPECT_EQ(http(agent_->port(), "POST", "/rotate", "Content-Length: 0\r\n").status, 404) << "admin only";

  // Admin: GET is refused, POST asks for a rotation (which fails here: no database).
  const auto get = http(agent_->admin_port(), "GET", "/rotate");
  EXPECT_EQ(get.status, 405);
  EXPECT_NE(get.headers.find("Allow: POST"), std::string::npos);
  EXPECT_EQ(http(agent_->admin_port(), "POST", "/rotate", "Content-Length: 0\r\n").status, 202);
  EXPECT_TRUE(eventually([&] {
    return metric(http(agent_->port(), "GET", "/metrics").body, "tenantdb_rotations_total{result=\"failed\"}") >= 1;
  }));
  // The intent the failed rotation left in the store never reaches the files.
  EXPECT_EQ(read_directory(dir_ / "out").count(pending_password_key), 0u);
}

TEST_F(AgentTest, RequestLimitsAndKeepAlive) {
  start(options());
  ASSERT_TRUE(eventually([&] { return http(agent_->port(), "GET", "/healthz").status == 200; }));
  // A body over the limit is refused without being read.
  const std::string big(64 * 1024, 'x');
  const auto r =
      http(agent_->admin_port(), "POST", "/rotate", "Content-Length: " + std::to_string(big.size()) + "\r\n");
  EXPECT_EQ(r.status, 413);
  // Two requests on one connection.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(agent_->port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string two =
      "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(fd, two.data(), two.size(), MSG_NOSIGNAL), static_cast<ssize_t>(two.size()));
  std::string raw;
  char buf[4096];
  ssize_t n;
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) raw.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  std::size_t count = 0;
  for (auto pos = raw.find("HTTP/1.1 200"); pos != std::string::npos; pos = raw.find("HTTP/1.1 200", pos + 1)) ++count;
  EXPECT_EQ(count, 2u) << raw;
}

TEST_F(AgentTest, ReloadCommandRunsAfterAChangeWithoutSecretsInItsEnvironment) {
  auto o = options();
  const fs::path record = dir_ / "reload-env";
  o.reload.command = {"/bin/sh", "-c", "env > \"$0\"; echo run >> \"$0.count\"", record.string()};
  start(std::move(o));
  // The count file is written after `env` has finished writing the record.
  ASSERT_TRUE(eventually([&] { return !test::read_file(record.string() + ".count").empty(); }));
  const std::string env = test::read_file(record.string());
  EXPECT_NE(env.find("TENANTDB_OUTPUT_DIR=" + (dir_ / "out").string()), std::string::npos) << env;
  EXPECT_EQ(env.find("first-password"), std::string::npos) << env;
  EXPECT_EQ(env.find("standby-password"), std::string::npos) << env;
  // Only what the agent passes (plus what sh itself sets), nothing inherited.
  std::size_t start = 0;
  while (start < env.size()) {
    const auto end = env.find('\n', start);
    const std::string line = env.substr(start, end - start);
    const std::string name = line.substr(0, line.find('='));
    EXPECT_TRUE(name == "PATH" || name == "HOME" || name == "TENANTDB_OUTPUT_DIR" || name == "PWD" || name == "SHLVL" ||
                name == "OLDPWD" || name == "_")
        << "unexpected variable " << name;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  // Nothing changes, nothing runs again.
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(test::read_file(record.string() + ".count"), "run\n");
}

TEST_F(AgentTest, SighupSyncsAtOnce) {
  auto o = options();
  o.sync_interval = std::chrono::hours(1);  // only the first sync, unless told
  start(std::move(o));
  const fs::path out = dir_ / "out";
  ASSERT_TRUE(eventually([&] { return read_directory(out).count(keys::password) == 1; }));
  const auto loaded = store_->load();
  ASSERT_TRUE(store_->replace(data("after-hup"), {}, loaded->version));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(read_directory(out).at(keys::password).reveal(), "first-password");
  ::raise(SIGHUP);  // the agent's signal_set owns SIGHUP while it runs
  EXPECT_TRUE(eventually([&] { return read_directory(out).at(keys::password).reveal() == "after-hup"; }, 5s));
}

TEST_F(AgentTest, StopsPromptly) {
  start(options());
  ASSERT_TRUE(eventually([&] { return http(agent_->port(), "GET", "/healthz").status == 200; }));
  const auto t0 = std::chrono::steady_clock::now();
  agent_->stop();
  thread_.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  EXPECT_EQ(exit_code_, 0);
  EXPECT_EQ(http(agent_->port(), "GET", "/healthz").status, 0) << "the listener is closed";
}

TEST_F(AgentTest, ABusyPortIsAUsageErrorNamingTheFlag) {
  auto o = options();
  agent first(*store_, o);
  o.listen.port = first.port();
  EXPECT_TENANTDB_ERROR(agent(*store_, o), error_kind::usage, "--listen");
}

}  // namespace
