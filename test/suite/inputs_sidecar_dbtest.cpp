// The reliability and security suite, bad input to tenantdb-sidecar: every flag is checked
// before the first file is read or request made, so a bad one ends the sidecar with one
// line naming it and exit code 2, having touched neither the API nor the output directory.

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

#include "inputs.hpp"
#include "kube_standin.hpp"
#include "pod.hpp"
#include "process.hpp"
#include "suite.hpp"

namespace fs = std::filesystem;
using namespace tenantdb;
using test::bad_input;
using test::drop;

namespace {

class SidecarBadInputTest : public ::testing::Test {
protected:
  void SetUp() override {
    work_ = fs::temp_directory_path() /
            ("tenantdb-suite-inputs-" + std::to_string(::getpid()) + "-" + test::sanitized_test_name());
    fs::remove_all(work_);
    fs::create_directories(work_);
    api_.add_token(pod_.token, pod_.user);
    for (const char* verb : {"get", "create", "update"}) api_.allow(pod_.user, verb, pod_.ns, "secrets");
    kubeconfig_ = (work_ / "kubeconfig").string();
    test::write_kubeconfig(kubeconfig_, api_, pod_);
  }
  void TearDown() override { fs::remove_all(work_); }

  // Valid flags: with nothing added the sidecar starts and reads the Secret. No ports, so
  // a case that were accepted by mistake binds nothing.
  std::vector<std::string> base_args(const fs::path& out) const {
    return {
        TENANTDB_SIDECAR_BIN, "--tenant",   "inputs",   "--namespace", pod_.ns,          "--kubeconfig", kubeconfig_,
        "--output-dir",       out.string(), "--listen", "off",         "--admin-listen", "off"};
  }
  static std::map<std::string, std::string> env() {
    return {{"KUBECONFIG", ""}, {"POD_NAMESPACE", ""}, {"TENANTDB_TENANT", ""}, {"POD_NAME", ""}};
  }

  fs::path work_;
  std::string kubeconfig_;
  test::KubeStandin api_;
  test::pod_identity pod_;
};

// The base arguments do reach the API, so "no request" below is the bad flag's doing.
TEST_F(SidecarBadInputTest, TheBaseArgumentsReachTheApi) {
  test::child_process sidecar(base_args(work_ / "out"), env(), (work_ / "sidecar").string());
  EXPECT_TRUE(test::eventually([&] { return api_.request_count("GET", "vc-db-inputs") > 0; }, std::chrono::seconds(30)))
      << sidecar.err();
  EXPECT_TRUE(sidecar.running()) << sidecar.err();
  sidecar.kill(SIGTERM);
  EXPECT_NE(sidecar.wait(std::chrono::seconds(30)), -1);
}

TEST_F(SidecarBadInputTest, BadFlagsEndTheSidecarBeforeItDoesAnything) {
  test::suite_tally tally;
  const std::string store = (work_ / "store").string();
  const std::vector<bad_input> cases = {
      {"--rotate-every not a duration", {"--rotate-every", "soon"}, {}, 2, "--rotate-every"},
      {"--rotate-every below a second", {"--rotate-every", "500ms"}, {}, 2, "--rotate-every"},
      {"--rotate-every with a fraction of a second", {"--rotate-every", "1500ms"}, {}, 2, "--rotate-every"},
      {"negative --rotate-every", {"--rotate-every=-1h"}, {}, 2, "--rotate-every"},
      {"--grace not a duration", {"--grace", "forever"}, {}, 2, "--grace"},
      {"--grace with a decimal point", {"--grace", "1.5s"}, {}, 2, "--grace"},
      {"negative --grace", {"--grace=-10m"}, {}, 2, "--grace"},
      {"--jitter above 0.5", {"--jitter", "0.9"}, {}, 2, "--jitter"},
      {"negative --jitter", {"--jitter=-0.1"}, {}, 2, "--jitter"},
      {"--jitter not a number", {"--jitter", "abc"}, {}, 2, "--jitter"},
      {"--jitter NaN", {"--jitter", "nan"}, {}, 2, "--jitter"},
      {"--jitter of 3000 digits", {"--jitter", "0." + test::repeat("9", 3000) + "x"}, {}, 2, "--jitter"},
      {"--listen port out of range", {"--listen", "0.0.0.0:99999"}, {}, 2, "--listen"},
      {"--listen without a port", {"--listen", "nohost"}, {}, 2, "--listen"},
      {"--listen with a space", {"--listen", " 8080"}, {}, 2, "--listen"},
      {"--listen with a negative port", {"--listen", "127.0.0.1:-1"}, {}, 2, "--listen"},
      {"--admin-listen not on loopback", {"--admin-listen", "0.0.0.0:8081"}, {}, 2, "--admin-listen"},
      {"world-readable --file-mode", {"--file-mode", "0666"}, {}, 2, "--file-mode"},
      {"--file-mode not octal", {"--file-mode", "rw-r-----"}, {}, 2, "--file-mode"},
      {"unknown --formats", {"--formats", "xml"}, {}, 2, "--formats"},
      {"--formats pgpass with group-readable files", {"--formats", "pgpass"}, {}, 2, "--file-mode"},
      {"unknown --strategy", {"--strategy", "triple"}, {}, 2, "--strategy"},
      {"--password-length 8", {"--password-length", "8"}, {}, 2, "--password-length"},
      {"--password-length 81", {"--password-length", "81"}, {}, 2, "--password-length"},
      {"--password-length not a number", {"--password-length", "abc"}, {}, 2, "--password-length"},
      {"unknown --reload-signal", {"--reload-signal", "SIGFOO", "--reload-process", "nginx"}, {}, 2, "--reload-signal"},
      {"--reload-signal 65", {"--reload-signal", "65", "--reload-process", "nginx"}, {}, 2, "--reload-signal"},
      {"--reload-signal without --reload-process", {"--reload-signal", "HUP"}, {}, 2, "--reload-signal"},
      {"--reload-process without --reload-signal", {"--reload-process", "nginx"}, {}, 2, "--reload-process"},
      {"relative --reload-command", {"--reload-command", "reload.sh"}, {}, 2, "--reload-command"},
      {"--reload-command that does not exist", {"--reload-command", "/nonexistent/reload"}, {}, 2, "--reload-command"},
      {"--sync-interval below 100ms", {"--sync-interval", "10ms"}, {}, 2, "--sync-interval"},
      {"zero --check-interval", {"--check-interval", "0"}, {}, 2, "--check-interval"},
      {"unknown --log-level", {"--log-level", "chatty"}, {}, 2, "--log-level"},
      {"uppercase --namespace", {"--namespace", "Team-A"}, {}, 2, "--namespace"},
      {"invalid --secret-name", {"--secret-name", "Bad_Name"}, {}, 2, "--secret-name"},
      {"SQL-looking tenant: no valid Secret name", {"--tenant", "x'; DROP TABLE t; --"}, {}, 2, "--secret-name"},
      {"--pod-name with a control character", {"--pod-name", "pod\x01"}, {}, 2, "--pod-name"},
      {"--pod-name of 300 bytes", {"--pod-name", test::repeat("p", 300)}, {}, 2, "--pod-name"},
      {"--store-dir without --local", {"--store-dir", store}, {}, 2, "--store-dir"},
      {"--local without --store-dir", {"--kubeconfig", drop, "--local"}, {}, 2, "--local"},
      {"--local with --kubeconfig", {"--local", "--store-dir", store}, {}, 2, "--local"},
      {"no --output-dir", {"--output-dir", drop}, {}, 2, "--output-dir"},
      {"unknown flag", {"--frobnicate"}, {}, 2, "frobnicate"},
  };
  for (std::size_t n = 0; n < cases.size(); ++n) {
    const bad_input& c = cases[n];
    SCOPED_TRACE("case " + std::to_string(n) + ": " + c.label);
    const fs::path out = work_ / ("out-" + std::to_string(n));
    api_.clear_requests();
    const auto r = test::run_process(test::with_flags(base_args(out), c.flags), env(), std::chrono::seconds(30));
    ++tally.inputs;
    test::expect_one_clear_line(c, r, "", tally);
    EXPECT_EQ(api_.request_count(), 0u) << "the API was called";
    EXPECT_FALSE(fs::exists(out)) << "the output directory was created";
    EXPECT_FALSE(fs::exists(store)) << "the store directory was created";
  }
}

}  // namespace
