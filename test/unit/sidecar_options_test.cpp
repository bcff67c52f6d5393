// tenantdb-sidecar's command line (tenantdb/sidecar_options.hpp): every flag's default,
// every refusal naming its flag with its exit kind, and the environment fallbacks, without
// running the binary.

#include "tenantdb/sidecar_options.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "expect_error.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/log.hpp"

namespace tenantdb {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// The variables the sidecar reads; each test starts without them and ends as it began.
class SidecarOptions : public ::testing::Test {
protected:
  void SetUp() override {
    for (const char* name : {"TENANTDB_TENANT", "POD_NAME", "TENANTDB_TEST_CRASH_AT", "TENANTDB_TEST_PAUSE_AT"}) {
      if (const char* v = std::getenv(name)) saved_.emplace_back(name, v);
      ::unsetenv(name);
    }
    dir_ = fs::temp_directory_path() / ("sidecar_options_test." + std::to_string(::getpid()));
    fs::create_directories(dir_);
    log::set_sink([this](std::string_view line) { logged_ += std::string(line) + "\n"; });
  }
  void TearDown() override {
    log::set_sink({});
    for (const char* name : {"TENANTDB_TENANT", "POD_NAME", "TENANTDB_TEST_CRASH_AT", "TENANTDB_TEST_PAUSE_AT"})
      ::unsetenv(name);
    for (const auto& [name, value] : saved_) ::setenv(name.c_str(), value.c_str(), 1);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  static command_line<sidecar_options> parse(std::vector<std::string> args) {
    args.insert(args.begin(), "tenantdb-sidecar");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    return parse_sidecar_command_line(static_cast<int>(argv.size()), argv.data());
  }

  // The least a sidecar needs: its output directory, its Secret and its name.
  static std::vector<std::string> minimal(std::vector<std::string> more = {}) {
    std::vector<std::string> args{"--output-dir", "/creds", "--tenant", "t1", "--pod-name", "pod-0"};
    args.insert(args.end(), more.begin(), more.end());
    return args;
  }

  static sidecar_options options(std::vector<std::string> args) {
    auto c = parse(std::move(args));
    EXPECT_TRUE(c.options.has_value()) << "exit " << c.exit_code;
    return c.options ? *c.options : sidecar_options{};
  }

  // A password file with `content` and `mode`.
  std::string password_file(const std::string& name, const std::string& content, fs::perms mode) const {
    const fs::path p = dir_ / name;
    {
      std::ofstream f(p, std::ios::binary | std::ios::trunc);
      f << content;
    }
    fs::permissions(p, mode, fs::perm_options::replace);
    return p.string();
  }

  fs::path dir_;
  std::string logged_;
  std::vector<std::pair<std::string, std::string>> saved_;
};

TEST_F(SidecarOptions, EveryFlagHasItsDocumentedDefault) {
  const sidecar_options o = options(minimal());
  EXPECT_EQ(o.log_level, log::level::info);
  EXPECT_FALSE(o.local);
  EXPECT_TRUE(o.store_dir.empty());
  EXPECT_EQ(o.secret_name, "vc-db-t1");
  EXPECT_EQ(o.namespace_name, "");
  EXPECT_EQ(o.kubeconfig, "");
  EXPECT_TRUE(o.watch) << "the Secret is watched by default";
  EXPECT_EQ(o.resync_interval, 1h);
  const agent_options& a = o.agent;
  EXPECT_EQ(a.output_dir, fs::path("/creds"));
  EXPECT_EQ(a.ca_file, "/creds/caCert");
  EXPECT_EQ(a.files.file_mode, 0440u);
  EXPECT_TRUE(a.formats.empty());
  ASSERT_TRUE(a.rotate_every.has_value());
  EXPECT_EQ(*a.rotate_every, 24h);
  EXPECT_DOUBLE_EQ(a.jitter, 0.1);
  EXPECT_EQ(a.sync_interval, 5s);
  EXPECT_EQ(a.check_interval, 60s);
  EXPECT_EQ(a.listen.to_string(), "0.0.0.0:8080");
  EXPECT_EQ(a.admin_listen.to_string(), "127.0.0.1:8081");
  EXPECT_EQ(a.reload.signal, 0);
  EXPECT_EQ(a.reload.process_name, "");
  EXPECT_TRUE(a.reload.command.empty());
  EXPECT_EQ(a.store_source, "api");
  EXPECT_EQ(a.crash_at, "");
  EXPECT_EQ(a.pause_at, "");
  EXPECT_FALSE(a.proxy.enabled()) << "the proxy is off by default";
  EXPECT_TRUE(a.proxy.local_password.empty());
  EXPECT_EQ(a.proxy.max_connections, 512u);
  EXPECT_EQ(a.proxy.connect_timeout, 10s);
  const rotation_options& r = a.rotation;
  EXPECT_EQ(r.strategy, rotation_strategy::dual);
  EXPECT_EQ(r.grace, 10min);
  EXPECT_EQ(r.password_length, 32u);
  EXPECT_EQ(r.holder, "pod-0");
  EXPECT_EQ(r.ca_file, "/creds/caCert");
}

TEST_F(SidecarOptions, EveryFlagIsRead) {
  const fs::path program = "/bin/true";
  const sidecar_options o = options({"--output-dir",
                                     "/creds",
                                     "--secret-name",
                                     "my-secret",
                                     "--namespace",
                                     "team-a",
                                     "--kubeconfig",
                                     "/kc",
                                     "--formats",
                                     "pgpass,env",
                                     "--rotate-every",
                                     "1h",
                                     "--jitter",
                                     "0.25",
                                     "--grace",
                                     "0",
                                     "--strategy",
                                     "in-place",
                                     "--sync-interval",
                                     "250ms",
                                     "--check-interval",
                                     "2s",
                                     "--listen",
                                     "[::1]:9090",
                                     "--admin-listen",
                                     "off",
                                     "--reload-signal",
                                     "USR1",
                                     "--reload-process",
                                     "kine",
                                     "--reload-command",
                                     program.string(),
                                     "--reload-command=-x",
                                     "--pod-name",
                                     "replica-1",
                                     "--ca-file",
                                     "/etc/ca.pem",
                                     "--file-mode",
                                     "0400",
                                     "--password-length",
                                     "40",
                                     "--log-level",
                                     "debug"});
  EXPECT_EQ(o.log_level, log::level::debug);
  EXPECT_EQ(o.secret_name, "my-secret");
  EXPECT_EQ(o.namespace_name, "team-a");
  EXPECT_EQ(o.kubeconfig, "/kc");
  const agent_options& a = o.agent;
  EXPECT_EQ(a.formats, (std::vector<credential_format>{credential_format::pgpass, credential_format::env}));
  EXPECT_EQ(a.rotate_every, std::optional<std::chrono::seconds>(1h));
  EXPECT_DOUBLE_EQ(a.jitter, 0.25);
  EXPECT_EQ(a.rotation.grace, 0s);
  EXPECT_EQ(a.rotation.strategy, rotation_strategy::in_place);
  EXPECT_EQ(a.sync_interval, 250ms);
  EXPECT_EQ(a.check_interval, 2s);
  EXPECT_EQ(a.listen.to_string(), "[::1]:9090");
  EXPECT_FALSE(a.admin_listen.enabled());
  EXPECT_EQ(a.reload.signal, SIGUSR1);
  EXPECT_EQ(a.reload.process_name, "kine");
  EXPECT_EQ(a.reload.command, (std::vector<std::string>{program.string(), "-x"}));
  EXPECT_EQ(a.rotation.holder, "replica-1");
  EXPECT_EQ(a.ca_file, "/etc/ca.pem");
  EXPECT_EQ(a.rotation.ca_file, "/etc/ca.pem");
  EXPECT_EQ(a.files.file_mode, 0400u);
  EXPECT_EQ(a.rotation.password_length, 40u);
}

TEST_F(SidecarOptions, WatchCanBeTurnedOffAndTheResyncSet) {
  EXPECT_FALSE(options(minimal({"--watch", "off"})).watch);
  EXPECT_TRUE(options(minimal({"--watch", "on"})).watch);
  EXPECT_EQ(options(minimal({"--resync-interval", "10m"})).resync_interval, 10min);
}

TEST_F(SidecarOptions, RotationCanBeTurnedOff) {
  for (const char* off : {"0", "never", "off"})
    EXPECT_FALSE(options(minimal({"--rotate-every", off})).agent.rotate_every.has_value()) << off;
}

TEST_F(SidecarOptions, LocalReadsTheStoreDirectoryAndCountsItsErrorsAsFiles) {
  const sidecar_options o = options({"--local", "--store-dir", (dir_ / "store").string(), "--output-dir",
                                     (dir_ / "out").string(), "--pod-name", "p"});
  EXPECT_TRUE(o.local);
  EXPECT_EQ(o.store_dir, dir_ / "store");
  EXPECT_EQ(o.agent.store_source, "files");
  EXPECT_EQ(o.secret_name, "");
}

TEST_F(SidecarOptions, EnvironmentFillsInTenantHolderAndTestHooks) {
  ::setenv("TENANTDB_TENANT", "from-env", 1);
  ::setenv("POD_NAME", "pod-from-env", 1);
  ::setenv("TENANTDB_TEST_CRASH_AT", "rotate.claimed", 1);
  ::setenv("TENANTDB_TEST_PAUSE_AT", "rotate.claimed:100", 1);
  const sidecar_options o = options({"--output-dir", "/creds"});
  EXPECT_EQ(o.secret_name, "vc-db-from-env");
  EXPECT_EQ(o.agent.rotation.holder, "pod-from-env");
  EXPECT_EQ(o.agent.crash_at, "rotate.claimed");
  EXPECT_EQ(o.agent.pause_at, "rotate.claimed:100");
  // A flag wins over its variable.
  const sidecar_options f = options({"--output-dir", "/creds", "--tenant", "flag", "--pod-name", "flag-pod"});
  EXPECT_EQ(f.secret_name, "vc-db-flag");
  EXPECT_EQ(f.agent.rotation.holder, "flag-pod");
}

TEST_F(SidecarOptions, HolderFallsBackToTheHostName) {
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof host - 1), 0);
  const sidecar_options o = options({"--output-dir", "/creds", "--tenant", "t1"});
  EXPECT_EQ(o.agent.rotation.holder, host);
}

TEST_F(SidecarOptions, HelpAndVersionEndTheProcessWithZero) {
  for (const char* flag : {"--help", "--version"}) {
    const auto c = parse({flag});
    EXPECT_FALSE(c.options.has_value()) << flag;
    EXPECT_EQ(c.exit_code, 0) << flag;
  }
}

TEST_F(SidecarOptions, UnparsableCommandLinesExitTwoWithOneLineNamingTheFlag) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--tenant", "t1"}, "--output-dir"},  // required
      {minimal({"--password-length", "abc"}), "--password-length"},
      {minimal({"--jitter", "much"}), "--jitter"},
      {minimal({"--no-such-flag"}), "--no-such-flag"},
  };
  for (const auto& [args, flag] : cases) {
    logged_.clear();
    const auto c = parse(args);
    EXPECT_FALSE(c.options.has_value()) << flag;
    EXPECT_EQ(c.exit_code, 2) << flag;
    EXPECT_NE(logged_.find(flag), std::string::npos) << logged_;
    EXPECT_NE(logged_.find("\"exit_code\":2"), std::string::npos) << logged_;
  }
}

struct refusal {
  std::vector<std::string> args;
  std::vector<std::pair<const char*, const char*>> env;
  std::string flag;
};

TEST_F(SidecarOptions, EveryBadValueIsRefusedNamingItsFlagWithExitTwo) {
  const std::string out = (dir_ / "out").string();
  const std::vector<refusal> cases = {
      {minimal({"--log-level", "loud"}), {}, "--log-level"},
      {minimal({"--strategy", "triple"}), {}, "--strategy"},
      {minimal({"--password-length", "15"}), {}, "--password-length"},
      {minimal({"--password-length", "81"}), {}, "--password-length"},
      {minimal({"--password-length=-5"}), {}, "--password-length"},  // CLI11 wraps it round
      {minimal({"--grace", "500ms"}), {}, "--grace"},
      {minimal({"--grace", "1500ms"}), {}, "--grace"},
      {minimal({"--grace", "soon"}), {}, "--grace"},
      {minimal({"--rotate-every", "500ms"}), {}, "--rotate-every"},
      {minimal({"--rotate-every", "90500ms"}), {}, "--rotate-every"},
      {minimal({"--jitter", "0.6"}), {}, "--jitter"},
      {minimal({"--jitter", "-0.1"}), {}, "--jitter"},
      {minimal({"--sync-interval", "50ms"}), {}, "--sync-interval"},
      {minimal({"--check-interval", "99ms"}), {}, "--check-interval"},
      {minimal({"--watch", "sometimes"}), {}, "--watch"},
      {minimal({"--resync-interval", "500ms"}), {}, "--resync-interval"},
      {minimal({"--listen", "localhost:8080"}), {}, "--listen"},
      {minimal({"--listen", "0.0.0.0:70000"}), {}, "--listen"},
      {minimal({"--admin-listen", "0.0.0.0:8081"}), {}, "--admin-listen"},
      {minimal({"--admin-listen", "8081"}), {}, "--admin-listen"},
      {minimal({"--file-mode", "0444"}), {}, "--file-mode"},
      {minimal({"--formats", "pgpass"}), {}, "--file-mode"},  // 0440: libpq ignores it
      {minimal({"--formats", "ini"}), {}, "--formats"},
      {minimal({"--reload-signal", "NOPE", "--reload-process", "kine"}), {}, "--reload-signal"},
      {minimal({"--reload-signal", "HUP"}), {}, "--reload-signal"},
      {minimal({"--reload-process", "kine"}), {}, "--reload-process"},
      {minimal({"--reload-command", "true"}), {}, "--reload-command"},
      {minimal({"--reload-command", "/nonexistent/program"}), {}, "--reload-command"},
      {{"--output-dir", "", "--tenant", "t1", "--pod-name", "p"}, {}, "--output-dir"},
      {{"--output-dir", "/creds", "--tenant", "t1", "--pod-name", "a\"b"}, {}, "--pod-name"},
      {{"--output-dir", "/creds", "--tenant", "t1", "--pod-name", "line\nbreak"}, {}, "--pod-name"},
      {{"--output-dir", "/creds", "--tenant", "t1", "--pod-name", std::string(254, 'p')}, {}, "--pod-name"},
      {{"--output-dir", "/creds", "--tenant", "t1"}, {{"POD_NAME", "bad\"name"}}, "--pod-name"},
      {minimal(), {{"TENANTDB_TEST_PAUSE_AT", "rotate.claimed"}}, "TENANTDB_TEST_PAUSE_AT"},
      {{"--local", "--output-dir", out, "--pod-name", "p"}, {}, "--local"},
      {{"--local", "--store-dir", (dir_ / "s").string(), "--secret-name", "x", "--output-dir", out, "--pod-name", "p"},
       {},
       "--local"},
      {{"--local", "--store-dir", (dir_ / "s").string(), "--kubeconfig", "/kc", "--output-dir", out, "--pod-name", "p"},
       {},
       "--local"},
      {{"--local", "--store-dir", out, "--output-dir", out, "--pod-name", "p"}, {}, "--store-dir"},
      {{"--local", "--store-dir", out + "/store", "--output-dir", out, "--pod-name", "p"}, {}, "--store-dir"},
      {minimal({"--store-dir", "/store"}), {}, "--store-dir"},
      {{"--output-dir", "/creds", "--pod-name", "p"}, {}, "--secret-name"},
      {minimal({"--secret-name", "Not_A_Name"}), {}, "--secret-name"},
      {{"--output-dir", "/creds", "--tenant", "Upper Case", "--pod-name", "p"}, {}, "--secret-name"},
      {minimal({"--namespace", "Team.A"}), {}, "--namespace"},
  };
  for (const auto& c : cases) {
    for (const auto& [name, value] : c.env) ::setenv(name, value, 1);
    const auto caught = test::catch_error([&] { (void)parse(c.args); });
    for (const auto& [name, value] : c.env) ::unsetenv(name);
    std::string shown;
    for (const auto& a : c.args) shown += a + " ";
    if (!caught) {
      ADD_FAILURE() << "not refused: " << shown;
      continue;
    }
    EXPECT_EQ(caught->key(), c.flag) << shown << ": " << caught->what();
    EXPECT_NE(std::string(caught->what()).find(c.flag), std::string::npos) << shown << ": " << caught->what();
    EXPECT_EQ(caught->code(), exit_code::usage) << shown << ": " << caught->what();
  }
}

// --- the local database proxy (issue 10) -------------------------------------------------

TEST_F(SidecarOptions, ProxyListenTakesAnIpLiteralWithOrWithoutAPort) {
  const std::vector<std::tuple<std::string, std::string, std::uint16_t>> cases = {
      {"127.0.0.1", "127.0.0.1", 0},  // 0: the engine's usual port, once the store's type is known
      {"127.0.0.1:6432", "127.0.0.1", 6432}, {"127.0.0.2:5432", "127.0.0.2", 5432}, {"[::1]", "::1", 0},
      {"[::1]:13306", "::1", 13306},
  };
  for (const auto& [text, host, port] : cases) {
    const proxy_settings p = options(minimal({"--proxy-listen", text})).agent.proxy;
    EXPECT_TRUE(p.enabled()) << text;
    EXPECT_EQ(p.listen.host, host) << text;
    EXPECT_EQ(p.listen.port, port) << text;
    EXPECT_TRUE(p.local_password.empty()) << text;
  }
  EXPECT_FALSE(options(minimal({"--proxy-listen", "off"})).agent.proxy.enabled());
}

TEST_F(SidecarOptions, ProxyFlagsAreRead) {
  const std::string file = password_file("proxy-pw", "local-proxy-password-0123\n", fs::perms::owner_read);
  const proxy_settings p = options(minimal({"--proxy-listen", "0.0.0.0:15432", "--proxy-password-file", file,
                                            "--proxy-max-connections", "40", "--proxy-connect-timeout", "2500ms"}))
                               .agent.proxy;
  EXPECT_EQ(p.listen.host, "0.0.0.0");
  EXPECT_EQ(p.listen.port, 15432);
  EXPECT_EQ(p.local_password.reveal(), "local-proxy-password-0123") << "the trailing newline is stripped";
  EXPECT_EQ(p.max_connections, 40u);
  EXPECT_EQ(p.connect_timeout, 2500ms);
}

TEST_F(SidecarOptions, ProxyPasswordFileIsOneLineOfAtLeastSixteenCharactersOthersCannotRead) {
  const auto read = [&](const std::string& content, fs::perms mode) {
    return read_proxy_password_file(password_file("pw", content, mode)).reveal();
  };
  const fs::perms owner = fs::perms::owner_read;
  const fs::perms group = fs::perms::owner_read | fs::perms::group_read;  // a Secret volume with fsGroup
  EXPECT_EQ(read("0123456789abcdef", owner), "0123456789abcdef");         // exactly 16, no newline
  EXPECT_EQ(read("0123456789abcdef\n", group), "0123456789abcdef");
  EXPECT_EQ(read("0123456789abcdef\r\n", owner), "0123456789abcdef");
  EXPECT_EQ(read("pass word with spaces!", owner), "pass word with spaces!");
  EXPECT_EQ(read(std::string(1024, 'x'), owner), std::string(1024, 'x'));

  // A Secret volume's key is a symlink into ..data: followed.
  const std::string target = password_file("target", "0123456789abcdef-linked\n", owner);
  fs::create_symlink(target, dir_ / "link");
  EXPECT_EQ(read_proxy_password_file(dir_ / "link").reveal(), "0123456789abcdef-linked");
}

TEST_F(SidecarOptions, ProxyFlagsAreRefusedNamingTheFlagWithExitTwoAndNeverThePassword) {
  const fs::perms owner = fs::perms::owner_read;
  const std::string secret_text = "S3cretProxyPassw0rd-never-shown";
  const std::string good = password_file("good", secret_text + "\n", owner);
  const std::string world = password_file("world", secret_text + "\n", owner | fs::perms::others_read);
  const std::string world_write = password_file("world-write", secret_text, owner | fs::perms::others_write);
  const std::string short_pw = password_file("short", "0123456789abcde\n", owner);  // 15
  const std::string two_lines = password_file("two-lines", secret_text + "\n" + secret_text + "\n", owner);
  const std::string control = password_file("control", secret_text + "\t", owner);
  const std::string empty = password_file("empty", "", owner);
  const std::string too_long = password_file("too-long", std::string(1025, 'x'), owner);
  const std::string fifo = (dir_ / "fifo").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);  // must be refused, not waited on
  fs::create_directories(dir_ / "a-directory");
  const std::string directory = (dir_ / "a-directory").string();
  const std::string missing = (dir_ / "missing").string();

  const std::vector<refusal> cases = {
      {minimal({"--proxy-listen", "localhost"}), {}, "--proxy-listen"},
      {minimal({"--proxy-listen", "localhost:5432"}), {}, "--proxy-listen"},
      {minimal({"--proxy-listen", "::1"}), {}, "--proxy-listen"},  // IPv6 in brackets
      {minimal({"--proxy-listen", "::1:5432"}), {}, "--proxy-listen"},
      {minimal({"--proxy-listen", "[::1"}), {}, "--proxy-listen"},
      {minimal({"--proxy-listen", "[::1]5432"}), {}, "--proxy-listen"},
      {minimal({"--proxy-listen", ":5432"}), {}, "--proxy-listen"},
      {minimal({"--proxy-listen", ""}), {}, "--proxy-listen"},
      {minimal({"--proxy-listen", "127.0.0.1:0"}), {}, "--proxy-listen"},
      {minimal({"--proxy-listen", "127.0.0.1:70000"}), {}, "--proxy-listen"},
      {minimal({"--proxy-listen", "127.0.0.1:"}), {}, "--proxy-listen"},
      {minimal({"--proxy-listen", "127.0.0.1:54x"}), {}, "--proxy-listen"},
      {minimal({"--proxy-listen", "0.0.0.0"}), {}, "--proxy-listen"},  // not loopback, no password
      {minimal({"--proxy-listen", "10.1.2.3:5432"}), {}, "--proxy-listen"},
      {minimal({"--proxy-listen", "[::]:5432"}), {}, "--proxy-listen"},
      {minimal({"--proxy-listen", "127.0.0.1", "--proxy-max-connections", "0"}), {}, "--proxy-max-connections"},
      {minimal({"--proxy-listen", "127.0.0.1", "--proxy-max-connections", "100001"}), {}, "--proxy-max-connections"},
      {minimal({"--proxy-listen", "127.0.0.1", "--proxy-max-connections=-5"}), {}, "--proxy-max-connections"},
      {minimal({"--proxy-listen", "127.0.0.1", "--proxy-connect-timeout", "50ms"}), {}, "--proxy-connect-timeout"},
      {minimal({"--proxy-listen", "127.0.0.1", "--proxy-connect-timeout", "6m"}), {}, "--proxy-connect-timeout"},
      {minimal({"--proxy-listen", "127.0.0.1", "--proxy-connect-timeout", "soon"}), {}, "--proxy-connect-timeout"},
      {minimal({"--proxy-password-file", good}), {}, "--proxy-password-file"},  // the proxy is off
      {minimal({"--proxy-listen", "127.0.0.1", "--proxy-password-file", world}), {}, "--proxy-password-file"},
      {minimal({"--proxy-listen", "127.0.0.1", "--proxy-password-file", world_write}), {}, "--proxy-password-file"},
      {minimal({"--proxy-listen", "127.0.0.1", "--proxy-password-file", short_pw}), {}, "--proxy-password-file"},
      {minimal({"--proxy-listen", "127.0.0.1", "--proxy-password-file", two_lines}), {}, "--proxy-password-file"},
      {minimal({"--proxy-listen", "127.0.0.1", "--proxy-password-file", control}), {}, "--proxy-password-file"},
      {minimal({"--proxy-listen", "127.0.0.1", "--proxy-password-file", empty}), {}, "--proxy-password-file"},
      {minimal({"--proxy-listen", "127.0.0.1", "--proxy-password-file", too_long}), {}, "--proxy-password-file"},
      {minimal({"--proxy-listen", "127.0.0.1", "--proxy-password-file", fifo}), {}, "--proxy-password-file"},
      {minimal({"--proxy-listen", "127.0.0.1", "--proxy-password-file", directory}), {}, "--proxy-password-file"},
      {minimal({"--proxy-listen", "127.0.0.1", "--proxy-password-file", missing}), {}, "--proxy-password-file"},
      {minimal({"--proxy-listen", "0.0.0.0", "--proxy-password-file", world}), {}, "--proxy-password-file"},
  };
  for (const auto& c : cases) {
    const auto caught = test::catch_error([&] { (void)parse(c.args); });
    std::string shown;
    for (const auto& a : c.args) shown += a + " ";
    if (!caught) {
      ADD_FAILURE() << "not refused: " << shown;
      continue;
    }
    const std::string what = caught->what();
    EXPECT_EQ(caught->key(), c.flag) << shown << ": " << what;
    EXPECT_NE(what.find(c.flag), std::string::npos) << shown << ": " << what;
    EXPECT_EQ(caught->code(), exit_code::usage) << shown << ": " << what;
    EXPECT_EQ(what.find(secret_text), std::string::npos) << shown << ": the password is in the message";
    EXPECT_EQ(what.find("0123456789abcde"), std::string::npos) << shown << ": the password is in the message";
  }

  // A non-loopback address names both flags: the one to add and the one to change.
  for (const std::string address : {"0.0.0.0", "10.1.2.3:5432", "[::]:5432"}) {
    const auto caught = test::catch_error([&] { (void)parse(minimal({"--proxy-listen", address})); });
    ASSERT_TRUE(caught) << address;
    EXPECT_NE(std::string(caught->what()).find("--proxy-password-file"), std::string::npos) << caught->what();
    EXPECT_NE(std::string(caught->what()).find("--proxy-listen"), std::string::npos) << caught->what();
  }
  // ...and is accepted with it.
  EXPECT_EQ(options(minimal({"--proxy-listen", "0.0.0.0", "--proxy-password-file", good}))
                .agent.proxy.local_password.reveal(),
            secret_text);

  // Unparsable numbers end like every other unparsable flag: one line, exit 2.
  logged_.clear();
  const auto c = parse(minimal({"--proxy-listen", "127.0.0.1", "--proxy-max-connections", "many"}));
  EXPECT_FALSE(c.options.has_value());
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_NE(logged_.find("--proxy-max-connections"), std::string::npos) << logged_;
}

// --- retire when drained (issue 10, clients that do not use the proxy) --------------------

TEST_F(SidecarOptions, RetireWhenDrainedIsOffByDefaultAndTakesAWholeNumberOfSecondsUpToSevenDays) {
  EXPECT_EQ(options(minimal()).agent.rotation.drain_max, 0s) << "off by default: retire when --grace ends";
  for (const char* off : {"0", "off"})
    EXPECT_EQ(options(minimal({"--retire-when-drained", off})).agent.rotation.drain_max, 0s) << off;
  EXPECT_EQ(options(minimal({"--retire-when-drained", "30m"})).agent.rotation.drain_max, 30min);
  EXPECT_EQ(options(minimal({"--retire-when-drained=1h30m"})).agent.rotation.drain_max, 90min);
  EXPECT_EQ(options(minimal({"--retire-when-drained", "7d"})).agent.rotation.drain_max, 168h);

  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {"--retire-when-drained", "soon"},
           {"--retire-when-drained", "5 minutes"},
           {"--retire-when-drained", "500ms"},
           {"--retire-when-drained", "1500ms"},
           {"--retire-when-drained", "8d"},
           {"--retire-when-drained", "10m", "--strategy", "in-place"},
       }) {
    std::string shown;
    for (const auto& a : bad) shown += a + " ";
    const auto caught = test::catch_error([&] { (void)parse(minimal(bad)); });
    if (!caught) {
      ADD_FAILURE() << "not refused: " << shown;
      continue;
    }
    EXPECT_EQ(caught->key(), "--retire-when-drained") << shown << ": " << caught->what();
    EXPECT_NE(std::string(caught->what()).find("--retire-when-drained"), std::string::npos) << caught->what();
    EXPECT_EQ(caught->code(), exit_code::usage) << shown << ": " << caught->what();
  }
}

}  // namespace
}  // namespace tenantdb
