// Process memory (issue 12, finding 7; reliability and security suite).
//
// A process of the same user (the workload in a pod that shares the process namespace,
// say) opens /proc/PID/mem of a running tenantdb-init or tenantdb-sidecar, which hold the
// admin and tenant passwords; or the process dumps core. Both binaries must be
// non-dumpable (their /proc/PID files then belong to root and only a process with
// CAP_SYS_PTRACE gets in) and run with RLIMIT_CORE 0. The binaries run as nobody here, as
// in a pod with runAsUser; the attack runs as nobody too.
//
// The crash behind the core of the finding: with HOME unset, libpq looked the user up
// (getpwuid_r) to find ~/.postgresql, which crashed the static binary where the UID has no
// passwd entry and nsswitch.conf names systemd (tools/static-smoke.sh runs that case).
// Here an LD_PRELOAD aborts on any passwd lookup, against the real servers.
//
// Every attack performed counts in the suite_tally (attacks), and once the test has checked
// that the product withstood it, in held.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "pod.hpp"
#include "process.hpp"
#include "suite.hpp"
#include "testdb.hpp"

namespace fs = std::filesystem;
using namespace tenantdb;
using namespace std::chrono_literals;

namespace {

/// A fresh work directory that nobody can traverse, removed at the end.
class work_dir {
public:
  explicit work_dir(const std::string& label)
      : path_(fs::temp_directory_path() / ("tenantdb-memory-" + std::to_string(::getpid()) + "-" + label)) {
    fs::remove_all(path_);
    fs::create_directories(path_);
    fs::permissions(path_, fs::perms::owner_all | fs::perms::others_exec);
  }
  ~work_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

private:
  fs::path path_;
};

std::map<std::string, std::string> clean_env() {
  return {{"KUBECONFIG", ""},
          {"POD_NAMESPACE", ""},
          {"POD_NAME", ""},
          {"TENANTDB_TENANT", ""},
          {"TENANTDB_TEST_CRASH_AT", ""}};
}

constexpr uid_t nobody = 65534;

/// The first (real) uid on the Uid: line of /proc/PID/status.
std::optional<uid_t> real_uid(pid_t pid) {
  std::istringstream in(test::read_file("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Uid:", 0) == 0) return static_cast<uid_t>(std::stoul(line.substr(4)));
  return std::nullopt;
}

/// The soft and hard limits of "Max core file size" in /proc/PID/limits.
std::string core_limits(pid_t pid) {
  std::istringstream in(test::read_file("/proc/" + std::to_string(pid) + "/limits"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Max core file size", 0) != 0) continue;
    std::istringstream fields(line.substr(std::strlen("Max core file size")));
    std::string soft, hard;
    fields >> soft >> hard;
    return soft + " " + hard;
  }
  return "?";
}

/// The attack: a process of the same user opens /proc/PID/mem. Returns 0 if it could,
/// else the errno it got.
int open_mem_as(uid_t uid, pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/mem";
  const pid_t child = ::fork();
  if (child == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(uid) != 0 || ::setuid(uid) != 0) ::_exit(250);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    ::_exit(fd >= 0 ? 0 : (errno & 0xff));
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

/// Waits until `text` shows up in the child's stderr (its first log lines are written
/// after main's first statement), or it exits.
bool await_log(test::child_process& p, const std::string& text, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (p.err().find(text) != std::string::npos) return true;
    if (!p.running()) return false;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

/// Checks a running product process as `nobody` would attack it; counts the attack.
void attack_memory(test::suite_tally& tally, test::child_process& p, const std::string& what) {
  const pid_t pid = p.pid();
  ASSERT_EQ(real_uid(pid), std::optional<uid_t>(nobody)) << what << " does not run as nobody";
  struct stat st {};
  ASSERT_EQ(::stat(("/proc/" + std::to_string(pid) + "/mem").c_str(), &st), 0);
  const std::string core = core_limits(pid);
  const int opened = open_mem_as(nobody, pid);
  ASSERT_NE(opened, 250) << "could not become nobody to attack " << what;
  ++tally.attacks;
  // A non-dumpable process's /proc/PID files belong to root, whoever runs it.
  EXPECT_EQ(st.st_uid, 0u) << what << " is dumpable: its /proc/PID/mem belongs to its own user";
  EXPECT_NE(opened, 0) << "a process of the same user opened " << what << "'s /proc/PID/mem";
  EXPECT_TRUE(opened == EACCES || opened == EPERM || opened == 0) << "unexpected errno " << opened;
  EXPECT_EQ(core, "0 0") << what << " may dump core (RLIMIT_CORE soft hard)";
  if (st.st_uid == 0 && opened != 0 && core == "0 0") ++tally.held;
}

std::vector<std::string> as_nobody(std::vector<std::string> argv) {
  argv.insert(argv.begin(), {"/usr/bin/setpriv", "--reuid=" + std::to_string(nobody),
                             "--regid=" + std::to_string(nobody), "--clear-groups"});
  return argv;
}

void give_to_nobody(const fs::path& p) {
  ASSERT_EQ(::chown(p.c_str(), nobody, nobody), 0) << p << ": " << std::strerror(errno);
}

// The init, held in its first connection by a server that never answers, is attacked
// while it holds the admin password.
TEST(ProcessMemory, InitIsNotDumpableAndHasNoCoreLimit) {
  test::suite_tally tally;
  work_dir work("init-mem");
  // A listening socket that is never accepted: the connection completes in the backlog
  // and the init waits for the server's first byte.
  const int silent = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(silent, 16), 0);
  ASSERT_EQ(::getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &len), 0);

  const fs::path connector = work.path() / "connector";
  fs::create_directories(connector);
  const std::map<std::string, std::string> keys = {{"type", "postgres"},
                                                   {"host", "127.0.0.1"},
                                                   {"port", std::to_string(ntohs(addr.sin_port))},
                                                   {"adminUser", "platform_admin"},
                                                   {"adminPassword", "Adm1nMemoryTarget0123456789abcd"},
                                                   {"sslMode", "require"}};
  for (const auto& [k, v] : keys) std::ofstream(connector / k) << v;
  for (const auto& e : fs::directory_iterator(connector)) give_to_nobody(e.path());
  give_to_nobody(connector);
  const fs::path out = work.path() / "out";
  fs::create_directories(out);
  give_to_nobody(out);

  test::child_process init(as_nobody({TENANTDB_INIT_BIN, "--local", "--connector-file", connector.string(),
                                      "--output-dir", out.string(), "--tenant", "mem-target", "--timeout", "60s"}),
                           clean_env(), (work.path() / "init").string());
  const bool started = await_log(init, "\"msg\":\"provisioning\"", 30s);
  if (started) attack_memory(tally, init, "tenantdb-init");
  ::close(silent);
  ASSERT_TRUE(started) << "the init did not start: " << init.err();
}

// The sidecar, waiting for its store, is attacked the same way.
TEST(ProcessMemory, SidecarIsNotDumpableAndHasNoCoreLimit) {
  test::suite_tally tally;
  work_dir work("sidecar-mem");
  const fs::path store = work.path() / "store";
  const fs::path out = work.path() / "out";
  fs::create_directories(store);
  fs::create_directories(out);
  give_to_nobody(store);
  give_to_nobody(out);
  test::child_process sidecar(
      as_nobody({TENANTDB_SIDECAR_BIN, "--local", "--store-dir", store.string(), "--output-dir", out.string(),
                 "--tenant", "mem-target", "--listen", "off", "--admin-listen", "off", "--rotate-every", "never"}),
      clean_env(), (work.path() / "sidecar").string());
  const bool started = await_log(sidecar, "the store holds no credentials yet", 30s);
  ASSERT_TRUE(started) << "the sidecar did not start: " << sidecar.err();
  attack_memory(tally, sidecar, "tenantdb-sidecar");
  sidecar.kill(SIGTERM);
  EXPECT_EQ(sidecar.wait(15s), 0) << sidecar.err();
}

// HOME unset, every passwd lookup fatal: the init provisions a tenant on the real server
// with the TLS it verifies by default (a CA file, so libpq's other TLS files would be
// looked for under ~), and logs in as it.
class NoPasswdLookup : public ::testing::TestWithParam<std::string> {};

TEST_P(NoPasswdLookup, InitProvisionsWithHomeUnsetAndNoPasswdLookup) {
  work_dir work("nopw-" + GetParam());
  const fs::path connector = test::testdb_dir() / (GetParam() + ".connector");
  ASSERT_TRUE(fs::is_directory(connector)) << connector << ": run test/tools/testdb.sh start";
  auto env = clean_env();
  env["HOME"] = "";
  env["LD_PRELOAD"] = TENANTDB_NO_PASSWD_LOOKUP;
  const auto tenant = test::unique_tenant("nopw");
  const auto r = test::run_process({TENANTDB_INIT_BIN, "--local", "--connector-file", connector.string(),
                                    "--output-dir", (work.path() / "out").string(), "--tenant", tenant.name,
                                    "--namespace", tenant.namespace_name, "--timeout", "60s"},
                                   env);
  EXPECT_EQ(r.err.find("no_passwd_lookup: the process called"), std::string::npos) << test::tail(r.err, 5);
  EXPECT_EQ(r.exit_code, 0) << test::tail(r.err, 10);
  EXPECT_TRUE(fs::exists(work.path() / "out" / "password"));
}

INSTANTIATE_TEST_SUITE_P(Engines, NoPasswdLookup, ::testing::Values("pg", "mariadb"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
