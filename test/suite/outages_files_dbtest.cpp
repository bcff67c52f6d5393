// Faults of the output directory, issue 5 part 2: the volume the workload reads its files
// from is read-only or full. As root, permissions stop no write, so the directory is a
// tmpfs mounted read-only, or a small one filled up. The init exits 7 with one line and
// changes nothing else; the sidecar reports not ready and never retires the password the
// files still hold; both catch up once the volume is fixed.

#include <gtest/gtest.h>

#include <tuple>

#include "outages.hpp"
#include "suite.hpp"
#include "tenantdb/rotation.hpp"
#include "testdb.hpp"

using namespace tenantdb;
using namespace tenantdb::test::outages;
using namespace std::chrono_literals;
using test::eventually;
using test::http;

namespace {

[[maybe_unused]] const bool server_logs = test::dump_server_logs_on_failure({"pg", "mariadb"});

constexpr const char* volume_size = "1m";

class OutputDirTest : public OutageFixture, public ::testing::WithParamInterface<std::tuple<std::string, std::string>> {
protected:
  std::string engine() const override { return std::get<0>(GetParam()); }
  bool read_only() const { return std::get<1>(GetParam()) == "read_only"; }

  // The directory the files go to, on its own tmpfs; false (with the reason) if this
  // process cannot mount one.
  bool make_volume(const fs::path& dir, std::string& why) { return mount_tmpfs(dir, volume_size, false, why); }

  void break_volume(const fs::path& dir) {
    if (read_only()) {
      remount(dir, volume_size, true);
    } else {
      filler_ = fill(dir);
    }
  }

  void fix_volume(const fs::path& dir) {
    if (read_only()) {
      remount(dir, volume_size, false);
    } else {
      fs::remove(filler_);
    }
  }

  fs::path filler_;
};

TEST_P(OutputDirTest, InitExitsSevenKeepsTheSecretAndARerunWritesTheSameCredentials) {
  test::suite_tally tally;
  const fs::path out = work_ / "out";
  std::string why;
  if (!make_volume(out, why)) GTEST_SKIP() << why;
  break_volume(out);
  ++tally.faults;

  const auto r = init(out);
  EXPECT_EQ(r.exit_code, 7) << r.err;
  const auto errors = error_lines(r.err);
  ASSERT_EQ(errors.size(), 1u) << r.err;
  EXPECT_NE(errors[0].find(out.string()), std::string::npos) << "the line does not name the directory: " << errors[0];
  EXPECT_NE(errors[0].find(read_only() ? "Read-only file system" : "No space left on device"), std::string::npos)
      << errors[0];
  // The Secret and the database are intact: the credentials the init stored log in.
  const std::string user = stored(keys::user);
  const std::string password = stored(keys::password);
  ASSERT_FALSE(password.empty()) << "the init stored no credentials";
  EXPECT_TRUE(logs_in(user, password));
  EXPECT_TRUE(read_directory(out).empty()) << "a failed run left files for the workload";

  fix_volume(out);
  const auto again = init(out);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(stored(keys::password), password) << "the rerun changed the credentials";
  EXPECT_EQ(value_of(read_directory(out), keys::password), password);
  if (working_everywhere(out)) ++tally.recoveries;
}

// A rotation switches while the files cannot be updated: they still hold the previous
// active password, valid only for the grace period. Retiring it then would lock the
// workload out; the sidecar must wait until the files have caught up.
TEST_P(OutputDirTest, SidecarNeverRetiresThePasswordTheFilesStillHold) {
  test::suite_tally tally;
  const fs::path out = work_ / "out";
  std::string why;
  if (!make_volume(out, why)) GTEST_SKIP() << why;
  ASSERT_EQ(init({}).exit_code, 0);
  constexpr auto grace = 2s;
  auto& sc = start("pod-files", out, {"--rotate-every", "never", "--grace", "2s"});
  ASSERT_TRUE(eventually([&] { return sc.ready() == 200; }, 30s)) << "the sidecar never became ready";
  const std::string user0 = stored(keys::user);
  const std::string password0 = stored(keys::password);
  ASSERT_EQ(value_of(read_directory(out), keys::password), password0);
  file_client client(out);

  break_volume(out);
  ++tally.faults;
  ASSERT_EQ(http(sc.admin, "POST", "/rotate").status, 202);
  ASSERT_TRUE(eventually([&] { return stored(keys::password) != password0; }, 30s)) << "the rotation never switched";
  const auto switched = steady::now();
  EXPECT_TRUE(eventually(
      [&] { return sc.ready() == 503 && metric(sc.metrics(), "tenantdb_errors_total{source=\"files\"}") > 0; }, 10s))
      << "the sidecar did not report that it cannot update the files:\n"
      << sc.metrics();

  // Well past the grace period, a retire would have run (the sync runs every 300 ms).
  while (steady::now() < switched + grace + 3s) {
    ASSERT_EQ(value_of(read_directory(out), keys::password), password0) << "the files changed on a broken volume";
    ASSERT_TRUE(logs_in(user0, password0)) << "the password the files hold was retired while they could not be updated";
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_FALSE(annotation(annotations::rotation).empty()) << "the grace period ended without a retire";

  fix_volume(out);
  const bool working = eventually_working(out, 30s);
  EXPECT_FALSE(logs_in(user0, password0)) << "the previous password was never retired";
  EXPECT_TRUE(eventually([&] { return sc.ready() == 200; }, 10s)) << "the sidecar stayed not ready";
  client.stop();
  EXPECT_TRUE(client.failures().empty()) << client.failures().size()
                                         << " logins from the files failed, first: " << client.failures().front().what;
  EXPECT_GT(client.logins(), 0);
  if (working && client.failures().empty()) ++tally.recoveries;
}

INSTANTIATE_TEST_SUITE_P(Volumes, OutputDirTest,
                         ::testing::Combine(::testing::Values("pg", "mariadb"), ::testing::Values("read_only", "full")),
                         [](const auto& param_info) {
                           return std::get<0>(param_info.param) + "_" + std::get<1>(param_info.param);
                         });

}  // namespace
