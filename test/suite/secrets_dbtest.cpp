// Secrets (issue 5, reliability and security suite): everything runs at the most verbose
// log level, and no tenant or admin password may appear in any output, in
// /proc/PID/cmdline or /proc/PID/environ of any process the tools start, or in the
// database servers' logs - neither raw nor base64- or URL-encoded.
//
// init_cli_dbtest (DebugLogsNeverHoldAPassword) and sidecar_dbtest
// (NoPasswordInCmdlineEnvironOrDebugLogs) check the raw password in one init's logs and in
// one dual sidecar. This suite adds: the init's /proc while it is alive (held there by a
// stalled API) in kube and local mode, in-place rotations, every extra file format, the
// reload command's own cmdline and environment, the server logs, and encoded forms.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>
#include <unistd.h>

#include "kube_standin.hpp"
#include "metrics.hpp"
#include "pod.hpp"
#include "process.hpp"
#include "suite.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/dsn.hpp"
#include "tenantdb/rotation.hpp"
#include "testdb.hpp"

namespace fs = std::filesystem;
using namespace tenantdb;
using namespace std::chrono_literals;

namespace {

[[maybe_unused]] const bool server_logs = test::dump_server_logs_on_failure({"pg", "mariadb"});

constexpr const char* ns = "team-a";

// ---------------------------------------------------------------------------------------
// The passwords that existed, and the places they must not be.
// ---------------------------------------------------------------------------------------

// Base64 of `pw` as it appears inside a longer encoded text: for each of the three byte
// alignments, the characters that depend on the password's bytes alone.
std::vector<std::string> base64_cores(const std::string& pw) {
  std::vector<std::string> out;
  for (std::size_t shift = 0; shift < 3; ++shift) {
    const std::string encoded = test::base64(std::string(shift, '\0') + pw);
    const std::size_t head = shift == 0 ? 0 : 4;
    if (encoded.size() < head + 4 + 8) continue;
    out.push_back(encoded.substr(head, encoded.size() - head - 4));
  }
  return out;
}

class leak_scanner {
public:
  explicit leak_scanner(test::suite_tally& tally) : tally_(tally) {}

  /// Remembers a password (once); `tenant` ones are also looked for in the server logs.
  void add(const std::string& label, const std::string& value, bool tenant) {
    if (value.empty()) return;
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& k : known_)
      if (k.value == value) return;
    known_.push_back({label + " #" + std::to_string(known_.size() + 1), value, tenant});
  }

  std::size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return known_.size();
  }

  /// Searches `text` for every password in every form; names `place` and the form on a
  /// find, never the password.
  void scan(const std::string& place, const std::string& text, bool tenant_only = false) {
    std::lock_guard<std::mutex> lock(mu_);
    ++tally_.scanned;
    for (const auto& k : known_) {
      if (tenant_only && !k.tenant) continue;
      std::vector<std::pair<std::string, std::string>> forms = {{"raw", k.value}};
      if (const std::string url = percent_encode(k.value); url != k.value) forms.emplace_back("URL-encoded", url);
      for (const auto& core : base64_cores(k.value)) forms.emplace_back("base64", core);
      for (const auto& [form, needle] : forms) {
        if (text.find(needle) == std::string::npos) continue;
        ++tally_.leaks;
        ADD_FAILURE() << "the " << k.label << " appears " << form << " in " << place;
        break;
      }
    }
  }

private:
  struct known {
    std::string label;
    std::string value;
    bool tenant;
  };
  test::suite_tally& tally_;
  mutable std::mutex mu_;
  std::vector<known> known_;
};

// Reads /proc/PID/cmdline and /proc/PID/environ of a running process until stopped,
// keeping every distinct content (a process may rewrite its argv or environment).
class proc_watch {
public:
  explicit proc_watch(pid_t pid) : pid_(pid), thread_([this] { run(); }) {}
  ~proc_watch() { stop(); }

  void stop() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
  }
  const std::set<std::string>& cmdlines() const { return cmdlines_; }
  const std::set<std::string>& environs() const { return environs_; }

private:
  void run() {
    const std::string dir = "/proc/" + std::to_string(pid_) + "/";
    while (!done_) {
      std::string c = test::read_file(dir + "cmdline");
      std::string e = test::read_file(dir + "environ");
      if (!c.empty()) cmdlines_.insert(std::move(c));  // empty once it is a zombie
      if (!e.empty()) environs_.insert(std::move(e));
      std::this_thread::sleep_for(2ms);
    }
  }

  pid_t pid_;
  std::atomic<bool> done_{false};
  std::set<std::string> cmdlines_;
  std::set<std::string> environs_;
  std::thread thread_;
};

std::string joined(const std::set<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += p + "\n";
  return out;
}

std::uintmax_t file_size_or_zero(const fs::path& p) {
  std::error_code ec;
  const auto n = fs::file_size(p, ec);
  return ec ? 0 : n;
}

// ---------------------------------------------------------------------------------------
// Fixture: one tenant per test, a pod's view of the API stand-in.
// ---------------------------------------------------------------------------------------

class SecretsTest : public ::testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    conn_ = test::load_connector(GetParam());
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '_');
    work_ = fs::temp_directory_path() / ("tenantdb-secrets-" + std::to_string(::getpid()) + "-" + name);
    fs::remove_all(work_);
    fs::create_directories(work_);
    who_ = test::unique_tenant("sec");
    who_.namespace_name = ns;
    secret_name_ = "vc-db-" + who_.name;
    test::set_up_pod(api_, pod_, GetParam(), secret_name_);
    kubeconfig_ = (work_ / "kubeconfig").string();
    test::write_kubeconfig(kubeconfig_, api_, pod_);
    server_log_ = test::testdb_dir() / (GetParam() == "pg" ? "pg/log/postgresql.log" : "mariadb/log/mariadbd.err");
    server_log_offset_ = file_size_or_zero(server_log_);
  }
  void TearDown() override { fs::remove_all(work_); }

  static std::map<std::string, std::string> clean_env() {
    return {{"KUBECONFIG", ""},
            {"POD_NAMESPACE", ""},
            {"POD_NAME", ""},
            {"TENANTDB_TENANT", ""},
            {"TENANTDB_TEST_CRASH_AT", ""}};
  }

  std::vector<std::string> kube_init_args(const std::string& strategy) const {
    return {TENANTDB_INIT_BIN,
            "--tenant",
            who_.name,
            "--namespace",
            ns,
            "--connector",
            "platform/db-connector",
            "--kubeconfig",
            kubeconfig_,
            "--output-dir",
            (work_ / "init-out").string(),
            "--strategy",
            strategy,
            "--timeout",
            "60s",
            "--log-level",
            "debug"};
  }

  // Runs a process to its end while its /proc entries are watched; scans everything.
  test::process_result run_watched(const std::string& label, const std::vector<std::string>& argv,
                                   std::set<std::string>& cmdlines, std::set<std::string>& environs) {
    test::child_process proc(argv, clean_env(), (work_ / label).string());
    proc_watch watch(proc.pid());
    const int code = proc.wait(120s);
    watch.stop();
    cmdlines = watch.cmdlines();
    environs = watch.environs();
    return {code, proc.out(), proc.err()};
  }

  void scan_run(leak_scanner& scan, const std::string& label, const test::process_result& r,
                const std::set<std::string>& cmdlines, const std::set<std::string>& environs) {
    scan.scan(label + " stdout", r.out);
    scan.scan(label + " stderr", r.err);
    EXPECT_NE(r.err.find("\"level\":\"debug\""), std::string::npos) << label << ": debug logging was not on";
    EXPECT_FALSE(cmdlines.empty()) << label << ": /proc/PID/cmdline was never read while it ran";
    EXPECT_FALSE(environs.empty()) << label << ": /proc/PID/environ was never read while it ran";
    if (!cmdlines.empty()) scan.scan(label + " /proc/PID/cmdline", joined(cmdlines));
    if (!environs.empty()) scan.scan(label + " /proc/PID/environ", joined(environs));
  }

  // The server's log as written during this test, for the tenant passwords.
  void scan_server_log(leak_scanner& scan) {
    std::string log = test::read_file(server_log_.string());
    ASSERT_FALSE(log.empty()) << "no server log at " << server_log_;
    scan.scan(server_log_.string(), log.size() > server_log_offset_ ? log.substr(server_log_offset_) : log, true);
  }

  void add_stored(leak_scanner& scan) const {
    for (const char* key : {keys::password, keys::standby_password, pending_password_key})
      scan.add(std::string("stored ") + key, api_.secret_value(ns, secret_name_, key).value_or(""), true);
  }

  std::string stored(const char* key) const { return api_.secret_value(ns, secret_name_, key).value_or(""); }

  connector conn_;
  fs::path work_;
  tenant who_;
  std::string secret_name_;
  std::string kubeconfig_;
  test::KubeStandin api_;
  test::pod_identity pod_;
  fs::path server_log_;
  std::uintmax_t server_log_offset_ = 0;
};

// ---------------------------------------------------------------------------------------

TEST_P(SecretsTest, InitInKubeModeShowsNoPasswordInOutputProcOrServerLog) {
  test::suite_tally tally;
  leak_scanner scan(tally);
  scan.add("admin password", conn_.admin_password.reveal(), false);
  // Every request on the tenant's Secret (lookup, create, re-read) is held, so the init
  // lives long enough to be read from /proc at each of those points.
  api_.stall_next(4, 1500ms, std::string("/namespaces/") + ns + "/secrets");
  std::set<std::string> cmdlines, environs;
  const auto r = run_watched("init-kube", kube_init_args("dual"), cmdlines, environs);
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  add_stored(scan);
  ASSERT_GE(scan.size(), 3u) << "admin, active and standby passwords";
  scan_run(scan, "tenantdb-init (kube mode)", r, cmdlines, environs);
  scan_server_log(scan);
  EXPECT_GE(cmdlines.size() + environs.size(), 2u);
}

TEST_P(SecretsTest, InitInLocalModeShowsNoPasswordInOutputProcOrServerLog) {
  test::suite_tally tally;
  leak_scanner scan(tally);
  scan.add("admin password", conn_.admin_password.reveal(), false);
  const fs::path store = work_ / "store";
  // An unknown connector key: the only debug line local mode has, proof the level is on.
  const fs::path connector_dir = work_ / "connector";
  fs::copy(test::testdb_dir() / (GetParam() + ".connector"), connector_dir);
  std::ofstream(connector_dir / "comment") << "not a connector key";
  std::set<std::string> cmdlines, environs;
  const auto r =
      run_watched("init-local",
                  {TENANTDB_INIT_BIN, "--local", "--connector-file", connector_dir.string(), "--tenant", who_.name,
                   "--namespace", ns, "--output-dir", store.string(), "--timeout", "60s", "--log-level", "debug"},
                  cmdlines, environs);
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  const auto files = read_directory(store);
  for (const char* key : {keys::password, keys::standby_password}) {
    const auto it = files.find(key);
    ASSERT_NE(it, files.end()) << key << " missing from the local store";
    scan.add(std::string("local store ") + key, it->second.reveal(), true);
  }
  scan_run(scan, "tenantdb-init (local mode)", r, cmdlines, environs);
  scan_server_log(scan);
}

// ---------------------------------------------------------------------------------------
// The sidecar, rotating with every extra file format and a reload command that records
// its own /proc/self/cmdline and /proc/self/environ.

class SidecarSecretsTest : public SecretsTest {
protected:
  void rotate_and_scan(test::suite_tally& tally, const std::string& strategy) {
    leak_scanner scan(tally);
    scan.add("admin password", conn_.admin_password.reveal(), false);

    std::set<std::string> init_cmdlines, init_environs;
    const auto init = run_watched("init", kube_init_args(strategy), init_cmdlines, init_environs);
    ASSERT_EQ(init.exit_code, 0) << test::tail(init.err, 20);

    // Every password the Secret ever holds, pending ones included: the stand-in is read
    // in-process far more often than a rotation step takes.
    std::atomic<bool> stop{false};
    std::thread collector([&] {
      while (!stop) {
        add_stored(scan);
        std::this_thread::sleep_for(1ms);
      }
    });
    struct joiner {
      std::atomic<bool>& stop;
      std::thread& t;
      ~joiner() {
        stop = true;
        if (t.joinable()) t.join();
      }
    } join_collector{stop, collector};

    const fs::path dumps = work_ / "reload-dumps";
    fs::create_directories(dumps);
    const fs::path script = work_ / "reload.sh";
    // Each dump appears whole (written aside, then renamed), so the scan below never
    // reads a file the shell has opened but cat has not written yet.
    const std::string d = "'" + dumps.string() + "'";
    std::ofstream(script) << "#!/bin/sh\n"
                          << "cat /proc/$$/cmdline > " << d << "/.cmdline.$$ && mv " << d << "/.cmdline.$$ " << d
                          << "/cmdline.$$\n"
                          << "cat /proc/$$/environ > " << d << "/.environ.$$ && mv " << d << "/.environ.$$ " << d
                          << "/environ.$$\n";
    fs::permissions(script, fs::perms::owner_all);

    const fs::path out = work_ / "out";
    const std::uint16_t port = test::unused_port();
    const std::uint16_t admin = test::unused_port();
    test::child_process sidecar({TENANTDB_SIDECAR_BIN,
                                 "--tenant",
                                 who_.name,
                                 "--namespace",
                                 ns,
                                 "--kubeconfig",
                                 kubeconfig_,
                                 "--output-dir",
                                 out.string(),
                                 "--listen",
                                 "127.0.0.1:" + std::to_string(port),
                                 "--admin-listen",
                                 "127.0.0.1:" + std::to_string(admin),
                                 "--pod-name",
                                 "pod-secrets",
                                 "--sync-interval",
                                 "300ms",
                                 "--check-interval",
                                 "1s",
                                 "--rotate-every",
                                 "never",
                                 "--grace",
                                 "1s",
                                 "--strategy",
                                 strategy,
                                 "--formats",
                                 "pgpass,mycnf,env,json",
                                 "--file-mode",
                                 "0400",
                                 "--reload-command",
                                 script.string(),
                                 "--log-level",
                                 "debug"},
                                clean_env(), (work_ / "sidecar").string());
    proc_watch sidecar_watch(sidecar.pid());

    const auto rotations = [&](const std::string& result) {
      return test::metric(test::http(port, "GET", "/metrics").body,
                          "tenantdb_rotations_total{result=\"" + result + "\"}");
    };
    // The reload command runs once per publish; one still running when the next publish
    // comes runs once more after it, so each step waits for its own run.
    const auto reloads = [&] {
      int n = 0;
      for (const auto& e : fs::directory_iterator(dumps)) n += e.path().filename().string().starts_with("environ.");
      return n;
    };
    ASSERT_TRUE(test::eventually([&] { return test::http(port, "GET", "/readyz").status == 200; }, 20s))
        << test::tail(sidecar.err(), 20);
    ASSERT_TRUE(test::eventually([&] { return reloads() >= 1; }, 10s)) << "the first publish ran no reload command";
    // Two rotations; dual ones also retire the previous credential after the grace.
    const char* done = strategy == "dual" ? "retired" : "rotated";
    for (int i = 1; i <= 2; ++i) {
      const int before = reloads();
      ASSERT_EQ(test::http(admin, "POST", "/rotate").status, 202);
      ASSERT_TRUE(test::eventually([&] { return rotations(done) >= i; }, 30s))
          << "rotation " << i << " did not complete: " << test::tail(sidecar.err(), 20);
      ASSERT_TRUE(test::eventually([&] { return reloads() > before; }, 10s))
          << "rotation " << i << " ran no reload command";
      for (const auto& [key, value] : read_directory(out))
        if (std::string(key).find("assword") != std::string::npos) scan.add("published " + key, value.reveal(), true);
    }
    sidecar.kill(SIGTERM);
    EXPECT_EQ(sidecar.wait(15s), 0);
    sidecar_watch.stop();
    stop = true;
    collector.join();

    // Initial, two new and (dual) the retired records: each rotation added at least one.
    EXPECT_GE(scan.size(), strategy == "dual" ? 6u : 4u) << "fewer passwords seen than the rotations made";
    scan_run(scan, "tenantdb-init (" + strategy + ")", init, init_cmdlines, init_environs);
    scan_run(scan, "tenantdb-sidecar (" + strategy + ")", test::process_result{0, sidecar.out(), sidecar.err()},
             sidecar_watch.cmdlines(), sidecar_watch.environs());
    for (const auto& e : fs::directory_iterator(dumps)) {
      if (e.path().filename().string().starts_with(".")) continue;  // a dump still being written
      const std::string text = test::read_file(e.path().string());
      EXPECT_FALSE(text.empty()) << e.path();
      scan.scan("the reload command's /proc/self/" + e.path().filename().string(), text);
    }
    scan_server_log(scan);
  }
};

TEST_P(SidecarSecretsTest, DualRotationsShowNoPasswordInLogsProcTheReloadCommandOrServerLog) {
  test::suite_tally tally;
  rotate_and_scan(tally, "dual");
}

TEST_P(SidecarSecretsTest, InPlaceRotationsShowNoPasswordInLogsProcTheReloadCommandOrServerLog) {
  test::suite_tally tally;
  rotate_and_scan(tally, "in-place");
}

INSTANTIATE_TEST_SUITE_P(Engines, SecretsTest, ::testing::Values("pg", "mariadb"),
                         [](const auto& param_info) { return param_info.param; });
INSTANTIATE_TEST_SUITE_P(Engines, SidecarSecretsTest, ::testing::Values("pg", "mariadb"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
