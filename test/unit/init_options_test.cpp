// tenantdb-init's command line (tenantdb/init_options.hpp): every flag's default, every
// refusal naming its flag with its exit kind, and the environment fallbacks, without
// running the binary.

#include "tenantdb/init_options.hpp"

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>

#include "expect_error.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/log.hpp"

namespace tenantdb {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* variables[] = {"TENANTDB_TENANT", "POD_NAMESPACE", "TENANTDB_TEST_CRASH_AT"};

// The variables the init reads; each test starts without them and ends as it began.
class InitOptions : public ::testing::Test {
protected:
  void SetUp() override {
    for (const char* name : variables) {
      if (const char* v = std::getenv(name)) saved_.emplace_back(name, v);
      ::unsetenv(name);
    }
    dir_ = fs::temp_directory_path() / ("init_options_test." + std::to_string(::getpid()));
    fs::create_directories(dir_);
    log::set_sink([this](std::string_view line) { logged_ += std::string(line) + "\n"; });
  }
  void TearDown() override {
    log::set_sink({});
    for (const char* name : variables) ::unsetenv(name);
    for (const auto& [name, value] : saved_) ::setenv(name.c_str(), value.c_str(), 1);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  static command_line<init_options> parse(std::vector<std::string> args) {
    args.insert(args.begin(), "tenantdb-init");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    return parse_init_command_line(static_cast<int>(argv.size()), argv.data());
  }

  static init_options options(std::vector<std::string> args) {
    auto c = parse(std::move(args));
    EXPECT_TRUE(c.options.has_value()) << "exit " << c.exit_code;
    return c.options ? *c.options : init_options{};
  }

  // Through the API: a tenant and a connector Secret.
  static std::vector<std::string> api(std::vector<std::string> more = {}) {
    std::vector<std::string> args{"--tenant", "t1", "--connector", "db-connector"};
    args.insert(args.end(), more.begin(), more.end());
    return args;
  }

  // Local: a tenant, a connector file and the output directory.
  std::vector<std::string> local(std::vector<std::string> more = {}) const {
    std::vector<std::string> args{
        "--local", "--tenant", "t1", "--connector-file", "/connector.yaml", "--output-dir", (dir_ / "out").string()};
    args.insert(args.end(), more.begin(), more.end());
    return args;
  }

  fs::path dir_;
  std::string logged_;
  std::vector<std::pair<std::string, std::string>> saved_;
};

TEST_F(InitOptions, EveryFlagHasItsDocumentedDefault) {
  init_options o = options(api());
  EXPECT_EQ(o.log_level, log::level::info);
  EXPECT_EQ(o.timeout, 5min);
  EXPECT_EQ(o.provision.who.name, "t1");
  EXPECT_EQ(o.provision.name_prefix, "vcluster_");
  EXPECT_EQ(o.provision.strategy, rotation_strategy::dual);
  EXPECT_EQ(o.provision.password_length, 32u);
  EXPECT_FALSE(o.provision.adopt_existing);
  // No limit flag: the connector's limits (or their documented defaults) apply.
  EXPECT_FALSE(o.provision.limits.max_connections);
  EXPECT_FALSE(o.provision.limits.statement_timeout);
  EXPECT_FALSE(o.provision.limits.idle_in_transaction_timeout);
  EXPECT_EQ(o.provision.ca_file, "");  // no --output-dir: the workload's path is unknown
  EXPECT_FALSE(o.provision.fault);
  EXPECT_EQ(o.files.file_mode, 0440u);
  EXPECT_FALSE(o.files.fault);
  EXPECT_EQ(o.namespace_name, "");
  EXPECT_FALSE(o.local);
  EXPECT_EQ(o.connector, "db-connector");
  EXPECT_EQ(o.connector_file, "");
  EXPECT_EQ(o.output_dir, "");
  EXPECT_EQ(o.store_dir, "");
  EXPECT_EQ(o.kubeconfig, "");
  EXPECT_FALSE(o.print_json);
  EXPECT_FALSE(o.print_names);
  EXPECT_EQ(o.secret_name, "");  // until the namespace is known
  resolve_tenant(o, "from-kubeconfig");
  EXPECT_EQ(o.secret_name, "vc-db-t1");
  EXPECT_EQ(o.provision.who.namespace_name, "from-kubeconfig");
}

TEST_F(InitOptions, EveryFlagIsRead) {
  init_options o = options({"--tenant",          "t2",      "--namespace",      "team-a",
                            "--name-prefix",     "app_",    "--connector-file", "/c.yaml",
                            "--secret-name",     "creds",   "--output-dir",     "/out",
                            "--ca-file",         "/ca.pem", "--file-mode",      "0400",
                            "--kubeconfig",      "/kc",     "--strategy",       "in-place",
                            "--password-length", "20",      "--timeout",        "30s",
                            "--log-level",       "warn",    "--print-json",     "--adopt-existing"});
  EXPECT_EQ(o.log_level, log::level::warn);
  EXPECT_EQ(o.timeout, 30s);
  EXPECT_EQ(o.provision.who.name, "t2");
  EXPECT_EQ(o.namespace_name, "team-a");
  EXPECT_EQ(o.provision.name_prefix, "app_");
  EXPECT_EQ(o.connector_file, "/c.yaml");
  EXPECT_EQ(o.output_dir, "/out");
  EXPECT_EQ(o.provision.ca_file, "/ca.pem");
  EXPECT_EQ(o.files.file_mode, 0400u);
  EXPECT_EQ(o.kubeconfig, "/kc");
  EXPECT_EQ(o.provision.strategy, rotation_strategy::in_place);
  EXPECT_EQ(o.provision.password_length, 20u);
  EXPECT_TRUE(o.print_json);
  EXPECT_TRUE(o.provision.adopt_existing);
  ::setenv("POD_NAMESPACE", "ignored", 1);
  resolve_tenant(o, "from-kubeconfig");
  EXPECT_EQ(o.provision.who.namespace_name, "team-a");
  EXPECT_EQ(o.secret_name, "creds");
}

TEST_F(InitOptions, LimitFlagsOverrideTheConnectorAndZeroOrNoneMeansNoLimit) {
  init_options o =
      options(api({"--max-connections", "50", "--statement-timeout", "90s", "--idle-in-transaction-timeout", "1h30m"}));
  EXPECT_EQ(o.provision.limits.max_connections, 50);
  EXPECT_EQ(o.provision.limits.statement_timeout, 90s);
  EXPECT_EQ(o.provision.limits.idle_in_transaction_timeout, 90min);
  const tenant_limits merged = apply_overrides(default_limits(), o.provision.limits);
  EXPECT_EQ(merged, (tenant_limits{50, 90s, 90min}));

  for (const char* none : {"0", "none"}) {
    o = options(api({"--max-connections", none, "--statement-timeout", none, "--idle-in-transaction-timeout", none}));
    EXPECT_EQ(o.provision.limits.max_connections, 0) << none;
    EXPECT_EQ(o.provision.limits.statement_timeout, 0ms) << none;
    EXPECT_EQ(o.provision.limits.idle_in_transaction_timeout, 0ms) << none;
    EXPECT_EQ(apply_overrides(default_limits(), o.provision.limits), tenant_limits{}) << none;
  }
  // One flag overrides only its own limit.
  o = options(api({"--max-connections", "2"}));
  EXPECT_EQ(apply_overrides(default_limits(), o.provision.limits),
            (tenant_limits{2, default_statement_timeout, default_idle_in_transaction_timeout}));
}

TEST_F(InitOptions, CaFileDefaultsToCaCertInTheOutputDirectory) {
  EXPECT_EQ(options(api({"--output-dir", "/out"})).provision.ca_file, "/out/caCert");
  EXPECT_EQ(options(local()).provision.ca_file, (dir_ / "out" / "caCert").string());
}

TEST_F(InitOptions, LocalResolvesTheTenantAtOnceInNamespaceDefault) {
  const init_options o = options(local({"--store-dir", (dir_ / "store").string()}));
  EXPECT_TRUE(o.local);
  EXPECT_EQ(o.provision.who.namespace_name, "default");
  EXPECT_EQ(o.store_dir, (dir_ / "store").string());
  EXPECT_EQ(o.secret_name, "");
}

TEST_F(InitOptions, PrintNamesNeedsOnlyTenantAndNamespaceAndResolvesThemAtOnce) {
  // No connector, no output directory: nothing is read or touched.
  init_options o = options({"--print-names", "--tenant", "my-vc", "--namespace", "vcluster-my-vc"});
  EXPECT_TRUE(o.print_names);
  EXPECT_EQ(o.provision.who.namespace_name, "vcluster-my-vc");
  EXPECT_EQ(o.provision.who.name, "my-vc");
  // Without a namespace there is nothing to derive from (no API is asked).
  const auto no_namespace = test::catch_error([&] { (void)parse({"--print-names", "--tenant", "my-vc"}); });
  ASSERT_TRUE(no_namespace.has_value());
  EXPECT_EQ(no_namespace->key(), "--namespace") << no_namespace->what();
  EXPECT_EQ(no_namespace->code(), exit_code::usage);
  ::setenv("POD_NAMESPACE", "pod-ns", 1);
  EXPECT_EQ(options({"--print-names", "--tenant", "my-vc"}).provision.who.namespace_name, "pod-ns");
  // A bad prefix is refused as always.
  const auto bad = test::catch_error([&] {
    (void)parse({"--print-names", "--tenant", "my-vc", "--namespace", "n", "--name-prefix", "Bad-"});
  });
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->key(), "--name-prefix");
}

TEST_F(InitOptions, ListAndDeprovisionAreModesWithTheirOwnFlags) {
  const init_options list = options({"--list", "--connector-file", "/c.yaml", "--output", "json"});
  EXPECT_EQ(list.mode, init_mode::list);
  EXPECT_EQ(list.output, "json");
  EXPECT_EQ(options({"--list", "--local", "--connector-file", "/c.yaml"}).output, "table");

  const init_options d = options(api({"--deprovision", "--policy", "Delete", "--dry-run"}));
  EXPECT_EQ(d.mode, init_mode::deprovision);
  EXPECT_EQ(d.policy, "delete");
  EXPECT_TRUE(d.dry_run);
  EXPECT_EQ(options(api({"--deprovision"})).policy, "") << "the Secret, the connector or retain decide";

  const init_options l = options({"--local", "--deprovision", "--tenant", "t1", "--connector-file", "/c.yaml",
                                  "--store-dir", (dir_ / "store").string()});
  EXPECT_EQ(l.provision.who.namespace_name, "default");
  EXPECT_EQ(options(api()).mode, init_mode::provision);

  // --dry-run on a normal run plans provisioning; with --deprovision it plans that.
  const init_options plan = options(api({"--dry-run"}));
  EXPECT_EQ(plan.mode, init_mode::provision);
  EXPECT_TRUE(plan.provision.dry_run);
  EXPECT_FALSE(d.provision.dry_run) << "deprovisioning's dry run is its own";
}

TEST_F(InitOptions, TheLifecycleFlagsRefuseWhatTheyCannotUseNamingTheFlag) {
  const struct {
    std::vector<std::string> args;
    const char* flag;
  } cases[] = {
      {api({"--deprovision", "--policy", "purge"}), "--policy"},
      {api({"--policy", "delete"}), "--policy"},
      {{"--list", "--connector-file", "/c.yaml", "--dry-run"}, "--dry-run"},
      {api({"--output", "json"}), "--output"},
      {{"--list", "--connector-file", "/c.yaml", "--output", "yaml"}, "--output"},
      {api({"--list", "--deprovision"}), "--deprovision"},
      {{"--deprovision", "--connector-file", "/c.yaml"}, "--tenant"},
      {{"--local", "--deprovision", "--tenant", "t1", "--connector-file", "/c.yaml"}, "--store-dir"},
      {{"--list", "--tenant", "t1"}, "--connector"},
  };
  for (const auto& c : cases) {
    const auto e = test::catch_error([&] { (void)parse(c.args); });
    ASSERT_TRUE(e.has_value()) << c.flag;
    EXPECT_EQ(e->kind(), error_kind::usage) << e->what();
    EXPECT_EQ(e->key(), c.flag) << e->what();
  }
}

TEST_F(InitOptions, EnvironmentFillsInTenantNamespaceAndCrashHook) {
  ::setenv("TENANTDB_TENANT", "from-env", 1);
  ::setenv("POD_NAMESPACE", "pod-ns", 1);
  ::setenv("TENANTDB_TEST_CRASH_AT", "provision.provisioned", 1);
  init_options o = options({"--connector", "c"});
  EXPECT_EQ(o.provision.who.name, "from-env");
  EXPECT_TRUE(o.provision.fault);
  EXPECT_TRUE(o.files.fault);
  resolve_tenant(o, "from-kubeconfig");
  EXPECT_EQ(o.provision.who.namespace_name, "pod-ns");
  EXPECT_EQ(o.secret_name, "vc-db-from-env");
  EXPECT_EQ(options(local()).provision.who.namespace_name, "pod-ns");
  // A flag wins over its variable.
  EXPECT_EQ(options({"--tenant", "flag", "--connector", "c"}).provision.who.name, "flag");
}

TEST_F(InitOptions, HelpAndVersionEndTheProcessWithZero) {
  for (const char* flag : {"--help", "--version"}) {
    const auto c = parse({flag});
    EXPECT_FALSE(c.options.has_value()) << flag;
    EXPECT_EQ(c.exit_code, 0) << flag;
  }
}

TEST_F(InitOptions, UnparsableCommandLinesExitTwoWithOneLineNamingTheFlag) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {api({"--password-length", "abc"}), "--password-length"},
      {api({"--no-such-flag"}), "--no-such-flag"},
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

TEST_F(InitOptions, EveryBadValueIsRefusedNamingItsFlagWithExitTwo) {
  const std::string out = (dir_ / "out").string();
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {api({"--log-level", "loud"}), "--log-level"},
      {api({"--timeout", "soon"}), "--timeout"},
      {api({"--strategy", "triple"}), "--strategy"},
      {api({"--password-length", "15"}), "--password-length"},
      {api({"--password-length", "81"}), "--password-length"},
      {api({"--password-length=-5"}), "--password-length"},  // CLI11 wraps it round
      {api({"--file-mode", "0444"}), "--file-mode"},
      {api({"--max-connections=-1"}), "--max-connections"},
      {api({"--max-connections", "1"}), "--max-connections"},  // no room for the sidecar's check
      {api({"--max-connections", "10001"}), "--max-connections"},
      {api({"--max-connections", "99999999999999999999"}), "--max-connections"},
      {api({"--max-connections", "twenty"}), "--max-connections"},
      {api({"--max-connections", "20s"}), "--max-connections"},
      {api({"--statement-timeout", "5"}), "--statement-timeout"},  // no unit
      {api({"--statement-timeout=-5s"}), "--statement-timeout"},
      {api({"--statement-timeout", "500ms"}), "--statement-timeout"},
      {api({"--statement-timeout", "25h"}), "--statement-timeout"},
      {api({"--statement-timeout", "never"}), "--statement-timeout"},
      {api({"--idle-in-transaction-timeout", "2d"}), "--idle-in-transaction-timeout"},
      {api({"--idle-in-transaction-timeout", "1x"}), "--idle-in-transaction-timeout"},
      {{"--local", "--tenant", "t1", "--output-dir", out}, "--connector-file"},
      {{"--local", "--tenant", "t1", "--connector-file", "/c.yaml"}, "--output-dir"},
      {local({"--connector", "c"}), "--local"},
      {local({"--secret-name", "s"}), "--local"},
      {{"--local", "--connector-file", "/c.yaml", "--output-dir", out}, "--tenant"},
      {local({"--namespace", "Team.A"}), "--namespace"},
      {local({"--name-prefix", "9bad"}), "--name-prefix"},
      {local({"--store-dir", out}), "--store-dir"},
      {local({"--store-dir", out + "/store"}), "--store-dir"},
      {api({"--store-dir", "/store"}), "--store-dir"},
      {{"--tenant", "t1"}, "--connector"},
      {api({"--connector-file", "/c.yaml"}), "--connector"},
  };
  for (const auto& [args, flag] : cases) {
    const auto caught = test::catch_error([&] { (void)parse(args); });
    std::string shown;
    for (const auto& a : args) shown += a + " ";
    if (!caught) {
      ADD_FAILURE() << "not refused: " << shown;
      continue;
    }
    EXPECT_EQ(caught->key(), flag) << shown << ": " << caught->what();
    EXPECT_NE(std::string(caught->what()).find(flag), std::string::npos) << shown << ": " << caught->what();
    EXPECT_EQ(caught->code(), exit_code::usage) << shown << ": " << caught->what();
  }
}

TEST_F(InitOptions, ResolvingTheTenantRefusesBadNamesNamingTheFlag) {
  init_options no_tenant = options({"--connector", "c"});
  EXPECT_TENANTDB_ERROR(resolve_tenant(no_tenant, "ns"), error_kind::usage, "--tenant");
  init_options bad_namespace = options(api());
  EXPECT_TENANTDB_ERROR(resolve_tenant(bad_namespace, "Not A Namespace"), error_kind::usage, "--namespace");
  init_options bad_prefix = options(api({"--name-prefix", "9bad"}));
  EXPECT_TENANTDB_ERROR(resolve_tenant(bad_prefix, "ns"), error_kind::usage, "--name-prefix");

  // The default name is shown as the rule it follows; a long name given is cut short.
  init_options bad_default = options({"--tenant", "Upper Case", "--connector", "c"});
  auto e = test::catch_error([&] { resolve_tenant(bad_default, "ns"); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->key(), "--secret-name");
  EXPECT_NE(std::string(e->what()).find("\"vc-db-<tenant>\""), std::string::npos) << e->what();
  init_options long_name = options(api({"--secret-name", std::string(300, 'x') + "_"}));
  e = test::catch_error([&] { resolve_tenant(long_name, "ns"); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->key(), "--secret-name");
  EXPECT_NE(std::string(e->what()).find("\"" + std::string(40, 'x') + "...\""), std::string::npos) << e->what();
  EXPECT_EQ(e->code(), exit_code::usage);
}

}  // namespace
}  // namespace tenantdb
