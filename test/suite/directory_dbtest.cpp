// Attacks on the credential directories (issue 12, findings 2 and 8b), performed against
// the real binaries, a real database server and the Kubernetes API stand-in:
//
//   * a planted `..data` symlink that leads out of the directory (absolute, "../x", more
//     than one component): nothing outside is read or deleted, the run is refused with one
//     line (exit 7) and the link is left as it was;
//   * hostile entries in the generation `..data` names (a FIFO named password, a huge
//     file, symlinks to /proc/self/mem and /dev/zero): nothing hangs, SIGTERM still ends
//     the sidecar at once, nothing is read without bound;
//   * an output or store directory another user owns, or group/other can write: refused
//     before anything is changed;
//   * a store directory that is the workload's directory (or inside it): refused, so the
//     standby and pending passwords never reach the workload's files.
//
// Each attack counts in the suite's `attacks`, and in `held` once the product withstood it.

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <set>
#include <tuple>

#include "outages.hpp"
#include "suite.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/error.hpp"
#include "testdb.hpp"

using namespace tenantdb;
using namespace tenantdb::test::outages;
using namespace std::chrono_literals;
using test::eventually;
using test::http;

namespace {

[[maybe_unused]] const bool server_logs = test::dump_server_logs_on_failure({"pg", "mariadb"});

// Everything under `dir`, with file contents and link targets, for "untouched" checks.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const fs::path p = it->path();
    struct stat st {};
    ::lstat(p.c_str(), &st);
    std::string what = "mode " + std::to_string(st.st_mode) + " uid " + std::to_string(st.st_uid);
    if (S_ISLNK(st.st_mode)) what += " -> " + fs::read_symlink(p, ec).string();
    if (S_ISREG(st.st_mode)) what += " = " + test::read_file(p.string());
    out[p.lexically_relative(dir).string()] = what;
  }
  return out;
}

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.insert(e.path().filename().string());
  return out;
}

// The generation name a planted directory uses: the shape tenantdb itself writes.
constexpr const char* planted_generation = "..2020_01_01_00_00_00.AbCdEf";

// Counts one attack; held only if every check passed. Checks report as test failures.
class attack {
public:
  attack(test::suite_tally& tally, std::string what) : tally_(tally), what_(std::move(what)) { ++tally_.attacks; }
  ~attack() {
    if (ok_) ++tally_.held;
  }
  attack(const attack&) = delete;
  attack& operator=(const attack&) = delete;

  void check(bool condition, const std::string& failure) {
    if (condition) return;
    ok_ = false;
    ADD_FAILURE() << what_ << ": " << failure;
  }

  // One error line, the documented exit code, naming `names`.
  void refused(const test::process_result& r, int code, const std::string& names) {
    check(r.exit_code == code,
          "exit " + std::to_string(r.exit_code) + ", not " + std::to_string(code) + ":\n" + test::tail(r.err, 10));
    const auto errors = error_lines(r.err);
    check(errors.size() == 1, std::to_string(errors.size()) + " error lines:\n" + test::tail(r.err, 10));
    if (!errors.empty())
      check(errors[0].find(names) != std::string::npos, "the line does not name " + names + ": " + errors[0]);
  }

private:
  test::suite_tally& tally_;
  std::string what_;
  bool ok_ = true;
};

class DirectoryAttackTest : public OutageFixture, public ::testing::WithParamInterface<std::string> {
protected:
  std::string engine() const override { return GetParam(); }

  std::string connector_path() const { return (test::testdb_dir() / (engine() + ".connector")).string(); }

  std::map<std::string, std::string> clean_env() const {
    return {{"KUBECONFIG", ""}, {"POD_NAMESPACE", ""}, {"POD_NAME", ""}, {"TENANTDB_TENANT", ""}};
  }

  // tenantdb-init in Kubernetes mode; a short timeout so a hang fails the test quickly.
  test::process_result init_kube(const fs::path& out) const {
    return test::run_process(
        {TENANTDB_INIT_BIN, "--tenant", who_.name, "--namespace", ns, "--connector", "platform/db-connector",
         "--kubeconfig", kubeconfig_, "--output-dir", out.string(), "--timeout", "60s"},
        clean_env(), 60s);
  }

  test::process_result init_local(const fs::path& out, const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> args = {TENANTDB_INIT_BIN, "--local",    "--connector-file", connector_path(),
                                     "--tenant",        who_.name,    "--namespace",      ns,
                                     "--output-dir",    out.string(), "--timeout",        "60s"};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_process(args, clean_env(), 60s);
  }

  // A sidecar in either mode that is expected to refuse at start.
  test::process_result sidecar_once(const std::vector<std::string>& args_in) const {
    std::vector<std::string> args = {TENANTDB_SIDECAR_BIN, "--listen",
                                     "127.0.0.1:" + std::to_string(test::unused_port()), "--admin-listen", "off"};
    args.insert(args.end(), args_in.begin(), args_in.end());
    return test::run_process(args, clean_env(), 30s);
  }

  // The Secret exists and holds working credentials: what a sidecar starts from.
  void provision() {
    const auto r = init_kube(work_ / "provisioned");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  // A directory only this user can write, holding `..data -> target`.
  fs::path planted(const std::string& name, const std::string& target) {
    const fs::path out = work_ / name;
    fs::create_directories(out);
    fs::permissions(out, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
    fs::create_symlink(target, out / "..data");
    return out;
  }

  // A victim directory with a file that must survive.
  fs::path victim(const std::string& name) {
    const fs::path v = work_ / name;
    fs::create_directories(v / "nested");
    std::ofstream(v / "password") << "the victim's own file";
    std::ofstream(v / "nested" / "keep") << "keep me";
    return v;
  }

  // A sidecar that met a hostile directory: it reports not ready while /healthz answers,
  // logs the refusal, and SIGTERM ends it promptly with 0.
  void expect_sidecar_refuses_and_stops(attack& a, sidecar& s, const std::string& names) {
    const bool logged = eventually([&] { return s.proc->err().find(names) != std::string::npos; }, 20s);
    a.check(logged, "the sidecar never logged a refusal naming " + names + ":\n" + test::tail(s.proc->err(), 10));
    a.check(http(s.port, "GET", "/healthz").status == 200, "/healthz does not answer: the loop is stuck");
    a.check(s.ready() == 503, "ready with a hostile output directory");
    const auto files_errors = metric(s.metrics(), "tenantdb_errors_total{source=\"files\"}");
    a.check(files_errors.has_value() && *files_errors >= 1, "no files error counted");
    s.proc->kill(SIGTERM);
    const int code = s.proc->wait(5s);
    a.check(code == 0, "SIGTERM did not end the sidecar within 5 s (exit " + std::to_string(code) + ")");
    if (code == -1) {
      s.proc->kill(SIGKILL);
      s.proc->wait(10s);
    }
  }
};

// ---------------------------------------------------------------------------------------
// ..data leading out of the directory

TEST_P(DirectoryAttackTest, PlantedDataLinkLeadingOutsideIsRefusedAndNothingOutsideIsTouched) {
  test::suite_tally tally;
  provision();
  const fs::path v = victim("victim");
  const auto before = snapshot(v);
  const std::vector<std::pair<std::string, std::string>> targets = {
      {"absolute", v.string()},
      {"parent", "../victim"},
      {"multi-component", std::string(planted_generation) + "/../../victim"},
      {"subdirectory", "sub/dir"},
  };
  int n = 0;
  for (const auto& [label, target] : targets) {
    SCOPED_TRACE(label + " ..data -> " + target);
    for (const std::string binary : {"init-kube", "init-local", "sidecar"}) {
      SCOPED_TRACE(binary);
      const fs::path out = planted("out-" + std::to_string(++n), target);
      if (label == "subdirectory") {
        fs::create_directories(out / "sub" / "dir");
        std::ofstream(out / "sub" / "dir" / "password") << "planted";
      }
      const auto out_before = snapshot(out);
      attack a(tally, binary + " with ..data -> " + label);
      if (binary == "sidecar") {
        auto& s = start("pod-" + std::to_string(n), out, {"--rotate-every", "never"});
        expect_sidecar_refuses_and_stops(a, s, "..data");
      } else {
        a.refused(binary == "init-kube" ? init_kube(out) : init_local(out), 7, "..data");
      }
      a.check(snapshot(v) == before, "the victim directory changed");
      a.check(fs::exists(v / "nested" / "keep"), "the victim's file is gone");
      a.check(snapshot(out) == out_before, "the planted directory was changed (the link must stay for a human to see)");
    }
  }
}

// ---------------------------------------------------------------------------------------
// Hostile entries in the generation ..data names

TEST_P(DirectoryAttackTest, HostileKeyFilesNeitherHangNorFloodTheBinaries) {
  test::suite_tally tally;
  provision();
  struct hostile {
    std::string label;
    std::function<void(const fs::path& password)> make;
  };
  const std::vector<hostile> cases = {
      {"a FIFO named password", [](const fs::path& p) { ASSERT_EQ(::mkfifo(p.c_str(), 0600), 0); }},
      {"a 4 GiB (sparse) password file",
       [](const fs::path& p) {
         const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0400);
         ASSERT_GE(fd, 0);
         ASSERT_EQ(::ftruncate(fd, off_t{4} << 30), 0);
         ::close(fd);
       }},
      {"password -> /proc/self/mem", [](const fs::path& p) { fs::create_symlink("/proc/self/mem", p); }},
      {"password -> /dev/zero", [](const fs::path& p) { fs::create_symlink("/dev/zero", p); }},
  };
  int n = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    for (const std::string binary : {"init-kube", "init-local", "sidecar"}) {
      SCOPED_TRACE(binary);
      const fs::path out = planted("hostile-" + std::to_string(++n), planted_generation);
      fs::create_directory(out / planted_generation);
      c.make(out / planted_generation / "password");
      fs::create_symlink("..data/password", out / "password");
      attack a(tally, binary + " reading " + c.label);
      if (binary == "sidecar") {
        auto& s = start("pod-" + std::to_string(n), out, {"--rotate-every", "never"});
        const bool logged = eventually(
            [&] {
              return s.proc->err().find("password") != std::string::npos &&
                     s.proc->err().find("refusing") != std::string::npos;
            },
            20s);
        a.check(logged, "no refusal logged:\n" + test::tail(s.proc->err(), 10));
        // It read nothing without bound: its peak memory stays that of an idle sidecar.
        const std::string status = test::read_file("/proc/" + std::to_string(s.proc->pid()) + "/status");
        const auto hwm = status.find("VmHWM:");
        const long kib = hwm == std::string::npos ? -1 : std::stol(status.substr(hwm + 6));
        a.check(kib > 0 && kib < 128 * 1024, "peak RSS " + std::to_string(kib) + " KiB");
        expect_sidecar_refuses_and_stops(a, s, "password");
      } else {
        const auto start_time = steady::now();
        const auto r = binary == "init-kube" ? init_kube(out) : init_local(out);
        a.refused(r, 7, "password");
        a.check(steady::now() - start_time < 30s, "the init took longer than 30 s");
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Directories someone else can write

TEST_P(DirectoryAttackTest, DirectoryOfAnotherUserOrWritableByOthersIsRefusedBeforeAnythingChanges) {
  test::suite_tally tally;
  struct unsafe {
    std::string label;
    std::function<bool(const fs::path&)> make;  // false: cannot be made by this process
    std::string names;
  };
  const std::vector<unsafe> cases = {
      {"owned by nobody", [](const fs::path& d) { return ::geteuid() == 0 && ::chown(d.c_str(), 65534, 65534) == 0; },
       "owned by uid 65534"},
      {"mode 0777", [](const fs::path& d) { return ::chmod(d.c_str(), 0777) == 0; }, "writable by group or others"},
      {"mode 0770", [](const fs::path& d) { return ::chmod(d.c_str(), 0770) == 0; }, "writable by group or others"},
      {"mode 1777 (sticky)", [](const fs::path& d) { return ::chmod(d.c_str(), 01777) == 0; },
       "writable by group or others"},
  };
  int n = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    for (const std::string binary : {"init-kube", "init-local", "sidecar", "sidecar-local-store"}) {
      SCOPED_TRACE(binary);
      const fs::path dir = work_ / ("unsafe-" + std::to_string(++n));
      fs::create_directories(dir);
      ::chmod(dir.c_str(), 0750);
      if (!c.make(dir)) {
        std::cerr << "skipping " << c.label << ": this process cannot make it (not root?)\n";
        continue;
      }
      attack a(tally, binary + " with a directory " + c.label);
      if (binary == "init-kube") {
        a.refused(init_kube(dir), 7, c.names);
        a.check(stored(keys::password).empty(), "the credentials Secret was written");
      } else if (binary == "init-local") {
        a.refused(init_local(dir), 7, c.names);
      } else if (binary == "sidecar") {
        a.refused(sidecar_once({"--tenant", who_.name, "--namespace", ns, "--kubeconfig", kubeconfig_, "--output-dir",
                                dir.string()}),
                  7, c.names);
      } else {
        a.refused(sidecar_once({"--local", "--store-dir", dir.string(), "--output-dir",
                                (work_ / ("ok-" + std::to_string(n))).string()}),
                  7, c.names);
      }
      a.check(names_in(dir).empty(), "something was created in the refused directory");
    }
  }
}

// ---------------------------------------------------------------------------------------
// The store is the workload's directory

TEST_P(DirectoryAttackTest, StoreDirectoryThatIsTheWorkloadsDirectoryIsRefused) {
  test::suite_tally tally;
  const fs::path shared = work_ / "shared";
  fs::create_directories(shared);
  ::chmod(shared.c_str(), 0750);
  fs::create_directory_symlink(shared, work_ / "shared-link");
  const std::vector<std::tuple<std::string, fs::path, fs::path>> cases = {
      {"the same directory", shared, shared},
      {"the same directory through a symlink", shared, work_ / "shared-link"},
      {"a store inside the workload's directory", shared / "store", shared},
      {"the same directory, spelled with a trailing slash and dots", shared, fs::path(shared.string() + "/./")},
  };
  for (const auto& [label, store, out] : cases) {
    SCOPED_TRACE(label);
    {
      attack a(tally, "sidecar --local with --store-dir " + label);
      a.refused(sidecar_once({"--local", "--store-dir", store.string(), "--output-dir", out.string()}), 2,
                "--store-dir");
    }
    {
      attack a(tally, "init --local with --store-dir " + label);
      a.refused(init_local(out, {"--store-dir", store.string()}), 2, "--store-dir");
    }
    EXPECT_TRUE(names_in(shared).empty()) << "a refused run wrote into " << shared;
  }

  // Apart, the workload's directory gets the workload's keys only.
  attack a(tally, "init --local with a store apart: the standby password stays out of the workload's files");
  const fs::path store = work_ / "store";
  const fs::path out = work_ / "out";
  const auto r = init_local(out, {"--store-dir", store.string(), "--strategy", "dual"});
  a.check(r.exit_code == 0, "init failed: " + test::tail(r.err, 10));
  const auto files = read_directory(out);
  const auto stored_data = read_directory(store);
  a.check(!value_of(stored_data, keys::standby_password).empty(), "the store has no standby password");
  a.check(value_of(files, keys::password) == value_of(stored_data, keys::password), "the files hold another password");
  for (const char* key : {keys::standby_user, keys::standby_password, keys::pending_password})
    a.check(files.count(key) == 0, std::string("the workload's files hold ") + key);
  for (const auto& name : names_in(out))
    a.check(name.find("standby") == std::string::npos && name.find("pending") == std::string::npos &&
                name.find("annotations") == std::string::npos,
            "the workload's directory holds " + name);
  bool login_ok = false;
  try {
    db_timeouts t;
    t.connect = 10s;
    verify_login(conn_.server, login{value_of(files, keys::user), secret(value_of(files, keys::password))},
                 value_of(files, keys::database), t);
    login_ok = true;
  } catch (const error& e) {
    ADD_FAILURE() << e.what();
  }
  a.check(login_ok, "the workload's credentials do not log in");
}

INSTANTIATE_TEST_SUITE_P(Engines, DirectoryAttackTest, ::testing::Values("pg", "mariadb"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
