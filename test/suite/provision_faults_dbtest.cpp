// The reliability and security suite, provisioning under kill -9: tenantdb-init is killed
// with SIGKILL at every named point of provisioning (tenantdb::provision_fault_points,
// through $TENANTDB_TEST_CRASH_AT), on both engines, in kube mode (the credentials Secret
// in the API stand-in, plus the credentials directory) and in local mode (the directory is
// the store). A plain rerun must then leave credentials that log in, files that equal the
// store, nothing half-written in the directory, and a third run must change nothing.

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <set>
#include <thread>

#include "credential_values.hpp"
#include "kube_standin.hpp"
#include "pod.hpp"
#include "process.hpp"
#include "suite.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/naming.hpp"
#include "tenantdb/provision.hpp"
#include "tenantdb/store.hpp"
#include "testdb.hpp"

namespace fs = std::filesystem;
using namespace tenantdb;
using namespace std::chrono_literals;
namespace points = tenantdb::provision_fault_points;

namespace {

[[maybe_unused]] const bool server_logs = test::dump_server_logs_on_failure({"pg", "mariadb"});

using fault_param = std::tuple<std::string, std::string>;  // engine, fault point

std::string param_name(const ::testing::TestParamInfo<fault_param>& info) {
  std::string n = std::get<0>(info.param) + "_" + std::get<1>(info.param);
  for (char& c : n)
    if (c == '-') c = '_';
  return n;
}

std::vector<std::string> all_points() {
  return {points::all.begin(), points::all.end()};
}

using test::value_of;

class ProvisionFaultFixture : public ::testing::TestWithParam<fault_param> {
protected:
  std::string engine() const { return std::get<0>(GetParam()); }
  std::string point() const { return std::get<1>(GetParam()); }

  void SetUp() override {
    conn_ = test::load_connector(engine());
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "." + info->name();
    for (char& c : name)
      if (c == '/') c = '_';
    work_ = fs::temp_directory_path() / ("tenantdb-pfaults-" + std::to_string(::getpid()) + "-" + name);
    fs::remove_all(work_);
    fs::create_directories(work_);
    who_ = test::unique_tenant("pf");
    who_.namespace_name = "team-a";
    names_ = derive_names(who_);
    secret_name_ = "vc-db-" + who_.name;
    test::set_up_pod(api_, pod_, engine(), secret_name_);
    kubeconfig_ = (work_ / "kubeconfig").string();
    test::write_kubeconfig(kubeconfig_, api_, pod_);
  }
  void TearDown() override { fs::remove_all(work_); }

  // tenantdb-init as a pod runs it; `crash_at` names the fault point to die at ("" none).
  test::process_result init(std::vector<std::string> args, const std::string& crash_at = "") {
    args.insert(args.begin(), TENANTDB_INIT_BIN);
    return test::run_process(args, {{"KUBECONFIG", ""}, {"POD_NAMESPACE", ""}, {"TENANTDB_TEST_CRASH_AT", crash_at}});
  }

  std::vector<std::string> kube_args(const fs::path& out) const {
    return {"--tenant",     who_.name,   "--namespace",  "team-a",     "--connector", "platform/db-connector",
            "--kubeconfig", kubeconfig_, "--output-dir", out.string(), "--timeout",   "60s"};
  }

  std::vector<std::string> local_args(const fs::path& out) const {
    return {"--local",
            "--connector-file",
            (test::testdb_dir() / (engine() + ".connector")).string(),
            "--tenant",
            who_.name,
            "--namespace",
            "team-a",
            "--output-dir",
            out.string(),
            "--timeout",
            "60s"};
  }

  // It died by SIGKILL at the named point, not earlier and not of something else.
  void expect_killed_at_point(const test::process_result& r) {
    ASSERT_EQ(r.exit_code, 128 + SIGKILL) << "did not die at " << point() << ":\n" << test::tail(r.err, 20);
    ASSERT_NE(r.err.find("\"fault_point\":\"" + point() + "\""), std::string::npos) << test::tail(r.err, 20);
  }

  bool logs_in(const std::string& user, const std::string& password) {
    try {
      db_timeouts t;
      t.connect = 20s;
      verify_login(conn_.server, login{user, secret(password)}, names_.database, t);
      return true;
    } catch (const error& e) {
      if (e.kind() != error_kind::verification) ADD_FAILURE() << "login check could not run: " << e.what();
      return false;
    }
  }

  // The tenant's active and standby accounts, as `data` names them, log in with its passwords.
  void expect_credentials_log_in(const credential_data& data) {
    EXPECT_EQ(value_of(data, keys::database), names_.database);
    const std::string user = value_of(data, keys::user);
    const std::string standby = value_of(data, keys::standby_user);
    EXPECT_TRUE((user == names_.user_a && standby == names_.user_b) ||
                (user == names_.user_b && standby == names_.user_a))
        << "active " << user << ", standby " << standby;
    EXPECT_EQ(data.count(keys::pending_password), 0u);
    EXPECT_TRUE(logs_in(user, value_of(data, keys::password))) << "the active account " << user;
    EXPECT_TRUE(logs_in(standby, value_of(data, keys::standby_password))) << "the standby account " << standby;
    EXPECT_NE(value_of(data, keys::data_source).find(value_of(data, keys::password)), std::string::npos)
        << "the dataSource holds another password";
  }

  // The Secret's data as the API stand-in holds it.
  credential_data secret_data() const {
    credential_data out;
    const auto object = api_.get_object("secrets", "team-a", secret_name_);
    if (!object) return out;
    rapidjson::Document doc;
    doc.Parse(object->c_str());
    if (doc.HasParseError() || !doc.HasMember("data")) return out;
    for (const auto& m : doc["data"].GetObject()) {
      const std::string key = m.name.GetString();
      out[key] = secret(api_.secret_value("team-a", secret_name_, key).value_or(""));
    }
    return out;
  }

  // Exactly one live generation holding `keys`' files, the `locks`, and nothing else: no
  // half-written data directory, no temporary link, no dangling key.
  static void expect_clean_directory(const fs::path& dir, const credential_data& keys, std::set<std::string> expected) {
    std::error_code ec;
    const std::string target = fs::read_symlink(dir / "..data", ec).string();
    ASSERT_FALSE(ec) << dir << " has no ..data";
    expected.insert({"..data", target});
    for (const auto& [key, value] : keys) {
      expected.insert(key);
      EXPECT_EQ(fs::read_symlink(dir / key, ec).string(), "..data/" + key) << key;
    }
    std::set<std::string> found;
    for (const auto& entry : fs::directory_iterator(dir)) found.insert(entry.path().filename().string());
    EXPECT_EQ(found, expected) << "stray or missing entries in " << dir;
  }

  // Kube mode: the Secret logs in, and the directory is its workload view, cleanly published.
  void expect_recovered_kube(const fs::path& out) {
    const auto stored = secret_data();
    ASSERT_FALSE(stored.empty()) << "no credentials Secret";
    ASSERT_NO_FATAL_FAILURE(expect_credentials_log_in(stored));
    const auto files = read_directory(out);
    EXPECT_TRUE(same_data(files, workload_view(stored))) << "the files differ from the Secret's workload view";
    EXPECT_TRUE(logs_in(value_of(files, keys::user), value_of(files, keys::password))) << "the files' credential";
    EXPECT_EQ(files.count(keys::standby_password), 0u);
    expect_clean_directory(out, files, {"..tenantdb.lock"});
  }

  // Kube mode: a further run writes nothing, to the API or to the directory.
  void expect_kube_rerun_changes_nothing(const fs::path& out) {
    const auto version = api_.resource_version();
    const auto data_dir = fs::read_symlink(out / "..data");
    api_.clear_requests();
    const auto r = init(kube_args(out));
    ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
    EXPECT_EQ(api_.resource_version(), version) << "the Secret was rewritten";
    EXPECT_EQ(api_.request_count("PUT") + api_.request_count("POST"), 0u);
    EXPECT_EQ(fs::read_symlink(out / "..data"), data_dir) << "the credential directory was rewritten";
  }

  connector conn_;
  fs::path work_;
  tenant who_;
  tenant_names names_;
  std::string secret_name_;
  std::string kubeconfig_;
  test::KubeStandin api_;
  test::pod_identity pod_;
};

// ---------------------------------------------------------------------------------------
// Kube mode

class KubeProvisionFaultTest : public ProvisionFaultFixture {
protected:
  // store-updated is reached only when working stored credentials lack something: a clean
  // run, then another writer drops caCert from the Secret.
  void prepare_for_point(const fs::path& out) {
    if (point() != points::store_updated) return;
    const auto r = init(kube_args(out));
    ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
    const auto object = api_.get_object("secrets", "team-a", secret_name_);
    ASSERT_TRUE(object);
    rapidjson::Document doc;
    doc.Parse(object->c_str());
    ASSERT_FALSE(doc.HasParseError());
    ASSERT_TRUE(doc["data"].EraseMember(keys::ca_cert)) << *object;
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buf);
    doc.Accept(writer);
    api_.put_object(buf.GetString());
  }
};

TEST_P(KubeProvisionFaultTest, KillNineThenRerunLeavesWorkingSecretAndDirectory) {
  test::suite_tally tally;
  const fs::path out = work_ / "creds";
  ASSERT_NO_FATAL_FAILURE(prepare_for_point(out));
  ASSERT_NO_FATAL_FAILURE(expect_killed_at_point(init(kube_args(out), point())));
  ++tally.faults;

  const auto r = init(kube_args(out));
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 30);
  ASSERT_NO_FATAL_FAILURE(expect_recovered_kube(out));
  ASSERT_NO_FATAL_FAILURE(expect_kube_rerun_changes_nothing(out));
  if (!HasFailure()) ++tally.recoveries;
}

INSTANTIATE_TEST_SUITE_P(FaultPoints, KubeProvisionFaultTest,
                         ::testing::Combine(::testing::Values("pg", "mariadb"), ::testing::ValuesIn(all_points())),
                         param_name);

// The pod restarts after the kill while a second pod's init provisions the same tenant:
// both end with the one Secret's credentials.
class KubeProvisionRaceTest : public KubeProvisionFaultTest {};

TEST_P(KubeProvisionRaceTest, KillNineThenRestartRacingASecondInitAgreeOnOneWorkingSecret) {
  test::suite_tally tally;
  const fs::path out = work_ / "creds";
  const fs::path other = work_ / "other-pod";
  ASSERT_NO_FATAL_FAILURE(expect_killed_at_point(init(kube_args(out), point())));
  ++tally.faults;

  // The other pod mounts the files elsewhere here, but where the workload finds caCert
  // (the dataSource's sslrootcert) is the same in every replica of a real pod.
  auto other_args = kube_args(other);
  other_args.insert(other_args.end(), {"--ca-file", (out / "caCert").string()});
  test::process_result restarted;
  test::process_result second;
  std::thread racer([&] { second = init(other_args); });
  restarted = init(kube_args(out));
  racer.join();
  ASSERT_EQ(restarted.exit_code, 0) << test::tail(restarted.err, 30);
  ASSERT_EQ(second.exit_code, 0) << test::tail(second.err, 30);
  ASSERT_NO_FATAL_FAILURE(expect_recovered_kube(out));
  ASSERT_NO_FATAL_FAILURE(expect_recovered_kube(other));
  ASSERT_NO_FATAL_FAILURE(expect_kube_rerun_changes_nothing(out));
  if (!HasFailure()) ++tally.recoveries;
}

INSTANTIATE_TEST_SUITE_P(FaultPoints, KubeProvisionRaceTest,
                         ::testing::Combine(::testing::Values("pg", "mariadb"),
                                            ::testing::Values(std::string(points::store_claimed),
                                                              std::string(points::active_account_created),
                                                              std::string(points::directory_written))),
                         param_name);

// ---------------------------------------------------------------------------------------
// Local mode: the directory is the store

class LocalProvisionFaultTest : public ProvisionFaultFixture {
protected:
  // As in kube mode, store-updated needs working credentials that lack caCert.
  void prepare_for_point(const fs::path& out) {
    if (point() != points::store_updated) return;
    const auto r = init(local_args(out));
    ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
    auto store = make_directory_store(out);
    auto stored = store->load();
    ASSERT_TRUE(stored);
    ASSERT_EQ(stored->data.erase(keys::ca_cert), 1u);
    ASSERT_TRUE(store->replace(stored->data, stored->annotations, stored->version));
  }
};

TEST_P(LocalProvisionFaultTest, KillNineThenRerunLeavesAWorkingStoreDirectory) {
  test::suite_tally tally;
  const fs::path out = work_ / "store";
  ASSERT_NO_FATAL_FAILURE(prepare_for_point(out));
  ASSERT_NO_FATAL_FAILURE(expect_killed_at_point(init(local_args(out), point())));
  ++tally.faults;

  const auto r = init(local_args(out));
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 30);
  const auto stored = read_directory(out);
  ASSERT_NO_FATAL_FAILURE(expect_credentials_log_in(stored));
  EXPECT_EQ(value_of(stored, keys::ca_cert), conn_.server.ca_pem);
  expect_clean_directory(out, stored, {"..tenantdb.lock", "..tenantdb.store.lock"});

  // A further run writes nothing.
  const auto data_dir = fs::read_symlink(out / "..data");
  const auto third = init(local_args(out));
  ASSERT_EQ(third.exit_code, 0) << test::tail(third.err, 20);
  EXPECT_EQ(fs::read_symlink(out / "..data"), data_dir) << "the store was rewritten";
  EXPECT_TRUE(same_data(read_directory(out), stored));
  if (!HasFailure()) ++tally.recoveries;
}

INSTANTIATE_TEST_SUITE_P(FaultPoints, LocalProvisionFaultTest,
                         ::testing::Combine(::testing::Values("pg", "mariadb"), ::testing::ValuesIn(all_points())),
                         param_name);

}  // namespace
