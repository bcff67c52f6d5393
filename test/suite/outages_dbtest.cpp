// Faults of the outside world, issue 5 part 2: the database server restarted in the middle
// of a rotation, and the Kubernetes API answering 409, 429, 500 or not at all. Each ends
// with working credentials in the Secret and the files, or with a documented exit code and
// a clean rerun that succeeds: nothing lost, nobody locked out. The output directory's
// faults are in outages_files_dbtest.cpp.

#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>

#include "outages.hpp"
#include "suite.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/rotation.hpp"
#include "testdb.hpp"

using namespace tenantdb;
using namespace tenantdb::test::outages;
using namespace std::chrono_literals;
using test::eventually;
using test::http;

namespace {

[[maybe_unused]] const bool server_logs = test::dump_server_logs_on_failure({"pg", "mariadb"});

// ---------------------------------------------------------------------------------------
// The database server restarted mid-rotation.

// A private server for this test alone: the shared ones serve the tests running next to
// it, which a restart would fail. The state directory sits next to the shared one (short
// enough for the server's Unix socket, and traversable by the postgres/mysql users).
class DatabaseRestartTest : public OutageFixture, public ::testing::WithParamInterface<std::string> {
protected:
  std::string engine() const override { return GetParam(); }

  void SetUp() override {
    shared_ = test::testdb_dir();
    private_ = shared_.parent_path() / ("outage-" + GetParam());
    ASSERT_LE(private_.string().size(), 90u) << "the private server's state directory path is too long: " << private_;
    const auto r = testdb("start");
    ASSERT_EQ(r.exit_code, 0) << "cannot start a private " << GetParam() << " server:\n" << r.err;
    ::setenv("TENANTDB_TESTDB_DIR", private_.c_str(), 1);
    OutageFixture::SetUp();
  }

  void TearDown() override {
    OutageFixture::TearDown();
    if (!private_.empty()) {
      const auto r = testdb("stop");
      EXPECT_EQ(r.exit_code, 0) << r.err;
      if (!HasFailure()) fs::remove_all(private_);
    }
    ::setenv("TENANTDB_TESTDB_DIR", shared_.c_str(), 1);
  }

  test::process_result testdb(const std::string& verb) const {
    return test::run_process({"/bin/bash", TENANTDB_SOURCE_DIR "/test/tools/testdb.sh", verb, GetParam()},
                             {{"TENANTDB_TESTDB_DIR", private_.string()}}, 180s);
  }

  fs::path shared_;
  fs::path private_;
};

TEST_P(DatabaseRestartTest, RestartInsideARotationEndsWithWorkingCredentialsAndFailuresOnlyWhileDown) {
  test::suite_tally tally;
  ASSERT_EQ(init({}).exit_code, 0);
  constexpr auto pause = 2500ms;
  for (const std::string point : {"claimed", "switched"}) {
    SCOPED_TRACE("restart while paused at " + point);
    const fs::path out = work_ / ("out-" + point);
    // The grace outlasts the pause, so the previous password is still valid whenever a
    // late reader of the old files logs in.
    auto& sc = start("pod-" + point, out, {"--rotate-every", "never", "--grace", "5s"},
                     {{"TENANTDB_TEST_PAUSE_AT", point + ":" + std::to_string(pause.count())}});
    ASSERT_TRUE(eventually([&] { return sc.ready() == 200; }, 30s)) << "the sidecar never became ready";
    const std::string before = stored(keys::password);
    file_client client(out);
    ASSERT_TRUE(eventually([&] { return client.logins() > 0; }, 10s)) << "the files never logged in";

    ASSERT_EQ(http(sc.admin, "POST", "/rotate").status, 202);
    ASSERT_TRUE(eventually([&] { return sc.proc->err().find("pausing at a fault point") != std::string::npos; }, 20s))
        << "the rotation never reached " << point;
    const auto paused = steady::now();
    const auto down_from = steady::now();
    const auto r = testdb("restart");
    const auto down_until = steady::now();
    ++tally.faults;
    ASSERT_EQ(r.exit_code, 0) << "the restart failed:\n" << r.err;
    EXPECT_LT(down_from - paused, pause - 500ms) << "the server went down after the rotation went on";

    ASSERT_TRUE(eventually([&] { return stored(keys::password) != before; }, 60s)) << "the rotation never switched";
    const bool working = eventually_working(out, 60s);
    client.stop();
    int outside = 0;
    for (const auto& f : client.failures()) {
      if (f.start <= down_until && f.end >= down_from) continue;
      ++outside;
      ADD_FAILURE() << "a login from the files failed while the server was up: " << f.what;
    }
    EXPECT_GT(client.logins(), 0);
    stop(sc);
    if (working && outside == 0) ++tally.recoveries;
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, DatabaseRestartTest, ::testing::Values("pg", "mariadb"),
                         [](const auto& param_info) { return param_info.param; });

// ---------------------------------------------------------------------------------------
// The Kubernetes API answering 409, 429, 500 and timing out.

class ApiFaultTest : public OutageFixture, public ::testing::WithParamInterface<std::string> {
protected:
  std::string engine() const override { return GetParam(); }

  // Answers with `status` so far, to requests with `method` (empty: any) on the tenant's
  // credentials Secret (its name, or the collection for a create).
  std::size_t answered(unsigned status, const std::string& method = {}) const {
    std::size_t n = 0;
    for (const auto& r : api_.requests())
      if (r.status == status && (method.empty() || r.method == method) &&
          (r.target.find(secret_name_) != std::string::npos || r.target.ends_with("/namespaces/team-a/secrets")))
        ++n;
    return n;
  }

  static std::size_t occurrences(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
    return n;
  }

  static test::KubeStandin::Fault fault(int count, unsigned status, std::string path, std::string method,
                                        int retry_after = 0) {
    test::KubeStandin::Fault f;
    f.count = count;
    f.status = status;
    f.path_filter = std::move(path);
    f.method_filter = std::move(method);
    f.retry_after_seconds = retry_after;
    return f;
  }
};

constexpr const char* timed_out = "did not answer in time";

// init_cli_dbtest covers 503 on the connector and one 429/500 on the Secret; here the
// create is refused as a conflict, fails, and finally is applied while its answer is lost.
TEST_P(ApiFaultTest, InitRetriesThroughConflictThrottlingErrorsAndALostAnswer) {
  test::suite_tally tally;
  api_.fail_next(fault(1, 429, secret_name_, "GET", 1));
  api_.fail_next(fault(1, 409, "/namespaces/team-a/secrets", "POST"));
  api_.fail_next(fault(1, 500, "/namespaces/team-a/secrets", "POST"));
  api_.stall_next(1, 16s, "/namespaces/team-a/secrets", "POST");  // beyond the client's 15 s
  const fs::path out = work_ / "out";
  const auto r = init(out);
  const std::size_t injected =
      answered(429, "GET") + answered(409, "POST") + answered(500, "POST") + occurrences(r.err, timed_out);
  tally.faults += static_cast<int>(injected);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(injected, 4u) << "not every fault reached the init:\n" << r.err;
  EXPECT_TRUE(error_lines(r.err).empty()) << r.err;
  EXPECT_EQ(api_.request_count("POST", "/namespaces/team-a/secrets"), 3u)
      << "one create per attempt, none after the lost answer";
  if (working_everywhere(out)) tally.recoveries += static_cast<int>(injected);
}

TEST_P(ApiFaultTest, InitOutlastedByTheApiExitsSixAndACleanRerunSucceeds) {
  test::suite_tally tally;
  api_.fail_next(1000, 503, "/secrets");
  ++tally.faults;
  const fs::path out = work_ / "out";
  const auto r = init(out, {"--timeout", "3s"});
  EXPECT_EQ(r.exit_code, 6) << r.err;
  const auto errors = error_lines(r.err);
  ASSERT_EQ(errors.size(), 1u) << r.err;
  EXPECT_NE(errors[0].find("--timeout"), std::string::npos) << errors[0];
  EXPECT_FALSE(api_.get_object("secrets", ns, secret_name_)) << "a Secret was written by a run that failed";
  EXPECT_TRUE(read_directory(out).empty()) << "files were written by a run that failed";

  api_.clear_faults();
  const auto again = init(out);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  if (working_everywhere(out)) ++tally.recoveries;
}

// The stored password stops working behind the init's back; its replacement write then
// races a writer that changes the Secret first (a real resourceVersion conflict).
TEST_P(ApiFaultTest, InitRetriesARealResourceVersionConflict) {
  test::suite_tally tally;
  const fs::path out = work_ / "out";
  ASSERT_EQ(init(out).exit_code, 0);
  const std::string user = stored(keys::user);
  const std::string lost = stored(keys::password);
  connect_admin(conn_.server, test::admin_login(conn_))->set_password(user, secret("lost-" + lost));
  ASSERT_FALSE(logs_in(user, lost));

  const std::size_t conflicts = answered(409, "PUT");
  api_.conflict_next(1, secret_name_);
  const auto r = init(out);
  tally.faults += static_cast<int>(answered(409, "PUT") - conflicts);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(answered(409, "PUT") - conflicts, 1u) << "the replacement write never met the conflict";
  EXPECT_NE(stored(keys::password), lost);
  if (working_everywhere(out)) tally.recoveries += static_cast<int>(answered(409, "PUT") - conflicts);
}

// The sidecar keeps serving, rotates when asked and the files keep working while
// the API fails reads, throttles, refuses writes, races them and loses an answer.
TEST_P(ApiFaultTest, SidecarKeepsServingAndRotatingThroughApiFaults) {
  test::suite_tally tally;
  ASSERT_EQ(init({}).exit_code, 0);
  const fs::path out = work_ / "out";
  auto& sc = start("pod-api", out, {"--rotate-every", "never", "--grace", "1s"});
  ASSERT_TRUE(eventually([&] { return sc.ready() == 200; }, 30s)) << "the sidecar never became ready";
  file_client client(out);

  // Each round: the fault, what counts its answers, and how many it has.
  struct round {
    const char* what;
    std::function<void()> inject;
    std::function<std::size_t()> count;
    std::size_t answers;
  };
  const std::vector<round> rounds = {
      {"500 on reads", [&] { api_.fail_next(fault(3, 500, secret_name_, "GET")); }, [&] { return answered(500); }, 3},
      {"429 with Retry-After", [&] { api_.fail_next(fault(2, 429, secret_name_, "", 1)); },
       [&] { return answered(429); }, 2},
      {"409 on a write", [&] { api_.fail_next(fault(1, 409, secret_name_, "PUT")); },
       [&] { return answered(409, "PUT"); }, 1},
      {"resourceVersion conflicts", [&] { api_.conflict_next(2, secret_name_); }, [&] { return answered(409, "PUT"); },
       2},
      {"a write whose answer is lost", [&] { api_.stall_next(1, 16s, secret_name_, "PUT"); },
       [&] { return occurrences(sc.proc->err(), timed_out); }, 1},
  };
  for (const auto& rd : rounds) {
    SCOPED_TRACE(rd.what);
    // Between rotations, so the next write is a claim.
    ASSERT_TRUE(eventually([&] { return !intent_left(); }, 30s));
    const std::size_t base = rd.count();
    const std::string password = stored(keys::password);
    rd.inject();
    ++tally.faults;
    request_rotation();
    ASSERT_TRUE(eventually([&] { return rd.count() >= base + rd.answers; }, 40s))
        << "the fault never reached the sidecar";
    ASSERT_TRUE(eventually([&] { return stored(keys::password) != password && !intent_left(); }, 60s))
        << "no rotation completed after the fault";
    if (eventually_working(out, 20s)) ++tally.recoveries;
  }
  client.stop();
  EXPECT_TRUE(client.failures().empty()) << client.failures().size()
                                         << " logins from the files failed, first: " << client.failures().front().what;
  EXPECT_GT(client.logins(), 0);
  EXPECT_EQ(http(sc.port, "GET", "/healthz").status, 200);
  EXPECT_TRUE(eventually([&] { return sc.ready() == 200; }, 10s));
  const std::string m = sc.metrics();
  EXPECT_GT(metric(m, "tenantdb_errors_total{source=\"api\"}"), 0) << m;
  // The refused and raced claims were lost races, the claim whose answer was lost was
  // taken up again by this replica.
  EXPECT_GE(metric(m, "tenantdb_rotations_total{result=\"lost_race\"}"), 3) << m;
  EXPECT_GE(metric(m, "tenantdb_rotations_total{result=\"recovered\"}"), 1) << m;
}

INSTANTIATE_TEST_SUITE_P(Engines, ApiFaultTest, ::testing::Values("pg", "mariadb"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
