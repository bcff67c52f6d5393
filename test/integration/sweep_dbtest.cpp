// Issue 11, item 2: the orphan sweep (tenantdb-init --sweep --grace), run as a process
// against the real PostgreSQL and MariaDB servers and the Kubernetes API stand-in. Each
// test sweeps only its own namespace (--namespace), as other tests share the servers.
// The grace period is never waited out: a test backdates the records' orphanedSince.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sstream>

#include "kube_standin.hpp"
#include "pod.hpp"
#include "process.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/lifecycle.hpp"
#include "tenantdb/naming.hpp"
#include "tenantdb/time.hpp"
#include "testdb.hpp"

namespace fs = std::filesystem;
using namespace tenantdb;

namespace {

[[maybe_unused]] const bool server_logs = test::dump_server_logs_on_failure({"pg", "mariadb"});

constexpr int exit_usage = 2;
constexpr int exit_kubernetes = 4;
constexpr int exit_unavailable = 6;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::vector<std::string> error_lines(const std::string& err) {
  std::vector<std::string> out;
  for (const auto& l : lines_of(err))
    if (l.find("\"level\":\"error\"") != std::string::npos) out.push_back(l);
  return out;
}

class SweepTest : public ::testing::TestWithParam<std::string> {
protected:
  bool pg() const { return GetParam() == "pg"; }

  void SetUp() override {
    conn_ = test::load_connector(GetParam());
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "." + info->name();
    for (char& c : name)
      if (c == '/') c = '_';
    work_ = fs::temp_directory_path() / ("tenantdb-sweep-" + std::to_string(::getpid()) + "-" + name);
    fs::remove_all(work_);
    fs::create_directories(work_);
    ns_ = test::unique_tenant("sw").name;
    // The provisioner may do anything; the sweeper has what manifests/sweep-cronjob.yaml
    // grants: get on Secrets, cluster-wide, and nothing else.
    provisioner_.ns = ns_;
    provisioner_.user = "system:serviceaccount:" + ns_ + ":tenantdb";
    test::set_up_pod(api_, provisioner_, GetParam(), "unused");
    api_.allow_all(provisioner_.user);
    test::write_kubeconfig(work_ / "provisioner", api_, provisioner_);
    sweeper_.token = "sweeper-token-7c2d";
    sweeper_.user = "system:serviceaccount:platform:tenantdb-sweep";
    sweeper_.ns = "platform";
    api_.add_token(sweeper_.token, sweeper_.user);
    api_.allow(sweeper_.user, "get", "", "secrets");
    test::write_kubeconfig(work_ / "sweeper", api_, sweeper_);
  }
  void TearDown() override {
    // Whatever a test left on the shared servers goes (the policy is forced to delete).
    for (const auto& name : made_) {
      const auto r =
          init({"--deprovision", "--policy", "delete", "--tenant", name, "--namespace", ns_, "--connector",
                "platform/db-connector", "--kubeconfig", (work_ / "provisioner").string(), "--timeout", "60s"});
      EXPECT_EQ(r.exit_code, 0) << test::tail(r.err, 10);
    }
    fs::remove_all(work_);
  }

  test::process_result init(std::vector<std::string> args, const std::string& crash_at = "") {
    args.insert(args.begin(), TENANTDB_INIT_BIN);
    return test::run_process(args, {{"KUBECONFIG", ""}, {"POD_NAMESPACE", ""}, {"TENANTDB_TEST_CRASH_AT", crash_at}});
  }

  tenant provision(const std::string& name) {
    const auto r = init({"--tenant", name, "--namespace", ns_, "--connector", "platform/db-connector", "--kubeconfig",
                         (work_ / "provisioner").string(), "--timeout", "60s"});
    EXPECT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
    made_.push_back(name);
    return tenant{name, ns_};
  }

  std::string secret_of(const tenant& t) const { return "vc-db-" + t.name; }

  // The sweep of this test's namespace as the sweeper.
  test::process_result sweep(std::vector<std::string> extra, const std::string& crash_at = "") {
    std::vector<std::string> args{"--sweep",   "--namespace", ns_, "--kubeconfig", (work_ / "sweeper").string(),
                                  "--timeout", "60s"};
    if (std::find(extra.begin(), extra.end(), "--connector-file") == extra.end()) {
      args.push_back("--connector");
      args.push_back("platform/db-connector");
    }
    args.insert(args.end(), extra.begin(), extra.end());
    return init(args, crash_at);
  }

  // A connector file with deletionPolicy delete.
  std::string delete_connector() {
    const fs::path dir = work_ / "delete.connector";
    if (!fs::exists(dir)) {
      fs::copy(test::testdb_dir() / (GetParam() + ".connector"), dir);
      std::ofstream(dir / "deletionPolicy") << "delete\n";
    }
    return dir.string();
  }

  // The output line of tenant `t`.
  std::string line_of(const test::process_result& r, const tenant& t) const {
    for (const auto& l : lines_of(r.out))
      if (l.rfind(ns_ + "/" + t.name + " (", 0) == 0) return l;
    return "<no line for " + t.name + " in:\n" + r.out + ">";
  }

  std::vector<recorded_object> records_of(const tenant& t) {
    const auto names = derive_names(t);
    std::vector<recorded_object> out;
    for (auto& o : connect_admin(conn_.server, test::admin_login(conn_))->recorded_objects(&names))
      if (!(pg() && o.kind == "database")) out.push_back(std::move(o));
    return out;
  }

  // orphanedSince of every record of `t` ("" where absent), asserting they agree.
  std::string orphaned_since(const tenant& t) {
    const auto records = records_of(t);
    EXPECT_FALSE(records.empty());
    if (records.empty()) return "<no records>";
    for (const auto& o : records) EXPECT_EQ(o.record.orphaned_since, records[0].record.orphaned_since) << o.name;
    return records[0].record.orphaned_since;
  }

  // As if the sweep had first seen the owner gone `ago` before now.
  void backdate(const tenant& t, std::chrono::seconds ago) {
    auto admin = connect_admin(conn_.server, test::admin_login(conn_));
    for (auto o : records_of(t)) {
      o.record.orphaned_since = format_rfc3339(std::chrono::system_clock::now() - ago);
      admin->write_record(o);
    }
  }

  struct server_state {
    bool database = false;
    bool users = false;  // both accounts exist
    bool login = false;  // the active account may log in
    std::size_t records = 0;
  };
  server_state state_of(const tenant& t) {
    const auto names = derive_names(t);
    auto admin = connect_admin(conn_.server, test::admin_login(conn_));
    server_state s;
    s.database = admin->database_exists(names.database);
    s.users = admin->user_exists(names.user_a) && admin->user_exists(names.user_b);
    s.login = admin->login_allowed(names.user_a).value_or(false);
    s.records = admin->recorded_objects(&names).size();
    return s;
  }

  void annotate(const tenant& t, const std::string& policy) {
    auto secret = api_.get_object("secrets", ns_, secret_of(t));
    ASSERT_TRUE(secret);
    rapidjson::Document doc;
    doc.Parse(secret->c_str());
    auto& meta = doc["metadata"];
    if (!meta.HasMember("annotations"))
      meta.AddMember("annotations", rapidjson::Value(rapidjson::kObjectType), doc.GetAllocator());
    meta["annotations"].AddMember("tenantdb.io/deletion-policy", rapidjson::Value(policy.c_str(), doc.GetAllocator()),
                                  doc.GetAllocator());
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    doc.Accept(w);
    api_.put_object(buf.GetString());
  }

  test::KubeStandin api_;
  test::pod_identity provisioner_;
  test::pod_identity sweeper_;
  connector conn_;
  fs::path work_;
  std::string ns_;
  std::vector<std::string> made_;
};

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST_P(SweepTest, WaitsOutTheGraceThenAppliesTheRecordedPolicyAndLeavesAPresentOwnerAlone) {
  const tenant gone = provision("gone");
  const tenant stays = provision("stays");
  // The platform marks `gone` for deletion; a sweep that sees its Secret remembers that.
  annotate(gone, "delete");
  auto r = sweep({"--grace", "1h"});
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  EXPECT_TRUE(contains(line_of(r, gone), "owner present; recorded its deletion policy delete")) << r.out;
  EXPECT_EQ(line_of(r, stays).substr(line_of(r, stays).find("): ") + 3), "owner present") << r.out;
  ASSERT_TRUE(api_.delete_object("secrets", ns_, secret_of(gone)));

  // A dry run says it would wait, and writes nothing, not even orphanedSince.
  r = sweep({"--grace", "1h", "--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  EXPECT_TRUE(contains(r.out, "# plan: orphan sweep")) << r.out;
  EXPECT_TRUE(contains(line_of(r, gone), "waiting until")) << r.out;
  EXPECT_TRUE(contains(line_of(r, gone), "orphanedSince not recorded")) << r.out;
  EXPECT_EQ(orphaned_since(gone), "");

  // The first real sweep records when the owner was first seen gone, and waits.
  r = sweep({"--grace", "1h"});
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  EXPECT_TRUE(contains(line_of(r, gone), "waiting until")) << r.out;
  const std::string first = orphaned_since(gone);
  ASSERT_TRUE(parse_rfc3339(first)) << first;
  EXPECT_EQ(orphaned_since(stays), "");
  // Again: still waiting, and the first sighting is kept, not moved forward.
  r = sweep({"--grace", "1h"});
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  EXPECT_TRUE(contains(line_of(r, gone), "waiting until")) << r.out;
  EXPECT_EQ(orphaned_since(gone), first);
  EXPECT_TRUE(state_of(gone).database && state_of(gone).login);

  // Gone for two hours, grace one: a dry run prints the plan and changes nothing.
  backdate(gone, std::chrono::hours(2));
  const std::string backdated = orphaned_since(gone);
  r = sweep({"--grace", "1h", "--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  EXPECT_TRUE(contains(line_of(r, gone), "would act: would delete (policy delete from the Secret's annotation"))
      << r.out;
  EXPECT_TRUE(contains(r.out, "SQL DROP DATABASE IF EXISTS")) << r.out;
  EXPECT_TRUE(contains(r.out, derive_names(gone).database)) << r.out;
  auto s = state_of(gone);
  EXPECT_TRUE(s.database && s.users && s.login);
  EXPECT_EQ(orphaned_since(gone), backdated);

  // The real run deletes it: no database, account or record; the other tenant untouched.
  r = sweep({"--grace", "1h"});
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  EXPECT_TRUE(contains(line_of(r, gone), "acted: deleted")) << r.out;
  s = state_of(gone);
  EXPECT_FALSE(s.database || s.users);
  EXPECT_EQ(s.records, 0u);
  s = state_of(stays);
  EXPECT_TRUE(s.database && s.users && s.login);
  EXPECT_EQ(orphaned_since(stays), "");
  // Done: a rerun finds only the other tenant.
  r = sweep({"--grace", "1h"});
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  EXPECT_FALSE(contains(r.out, ns_ + "/" + gone.name + " (")) << r.out;
}

TEST_P(SweepTest, RetainIsTheDefaultAndAnOwnerWhoComesBackClearsOrphanedSince) {
  const tenant t = provision("back");
  const auto saved = api_.get_object("secrets", ns_, secret_of(t));
  ASSERT_TRUE(saved);
  ASSERT_TRUE(api_.delete_object("secrets", ns_, secret_of(t)));
  auto r = sweep({"--grace", "1h"});
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  const std::string since = orphaned_since(t);
  ASSERT_FALSE(since.empty());

  // The Secret is back: the next sweep clears the mark.
  api_.put_object(*saved);
  r = sweep({"--grace", "1h"});
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  EXPECT_TRUE(contains(line_of(r, t), "owner present; cleared orphanedSince " + since)) << r.out;
  EXPECT_EQ(orphaned_since(t), "");

  // Gone again, long ago: no annotation and no connector policy, so it is retained.
  ASSERT_TRUE(api_.delete_object("secrets", ns_, secret_of(t)));
  ASSERT_EQ(sweep({"--grace", "1h"}).exit_code, 0);
  backdate(t, std::chrono::hours(2));
  r = sweep({"--grace", "1h"});
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  EXPECT_TRUE(contains(line_of(r, t), "acted: retained (policy retain from default)")) << r.out;
  auto s = state_of(t);
  EXPECT_TRUE(s.database && s.users);
  EXPECT_FALSE(s.login);
  // Idempotent: the next sweep finds it retained already.
  r = sweep({"--grace", "1h"});
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  EXPECT_TRUE(contains(line_of(r, t), "acted: already retained")) << r.out;
}

TEST_P(SweepTest, AnOwnerTheApiCannotVouchForIsNeverDeleted) {
  const tenant t = provision("unsure");
  const tenant other = provision("other");
  ASSERT_TRUE(api_.delete_object("secrets", ns_, secret_of(t)));
  ASSERT_EQ(sweep({"--grace", "1h", "--connector-file", delete_connector()}).exit_code, 0);
  backdate(t, std::chrono::hours(2));
  const std::string backdated = orphaned_since(t);

  // 403 on the Secret: unknown, nothing changed, exit 4; the other tenant is still decided.
  test::KubeStandin::Fault forbidden;
  forbidden.count = 5;
  forbidden.status = 403;
  forbidden.path_filter = "/secrets/" + secret_of(t);
  api_.fail_next(forbidden);
  auto r = sweep({"--grace", "1h", "--connector-file", delete_connector()});
  api_.clear_faults();
  EXPECT_EQ(r.exit_code, exit_kubernetes) << test::tail(r.err, 20);
  EXPECT_TRUE(contains(line_of(r, t), "unknown: ")) << r.out;
  EXPECT_TRUE(contains(line_of(r, other), "owner present")) << r.out;
  EXPECT_TRUE(state_of(t).database);
  EXPECT_EQ(orphaned_since(t), backdated);

  // 500: the same, exit 6.
  api_.fail_next(5, 500, "/secrets/" + secret_of(t));
  r = sweep({"--grace", "1h", "--connector-file", delete_connector()});
  api_.clear_faults();
  EXPECT_EQ(r.exit_code, exit_unavailable) << test::tail(r.err, 20);
  EXPECT_TRUE(contains(line_of(r, t), "unknown: ")) << r.out;
  EXPECT_TRUE(state_of(t).database);
  EXPECT_TRUE(state_of(t).users);

  // A 404 that is not the API's NotFound Status for that Secret (a proxy's page): the same.
  test::KubeStandin::Fault foreign;
  foreign.count = 5;
  foreign.status = 404;
  foreign.plain_text = true;
  foreign.path_filter = "/secrets/" + secret_of(t);
  api_.fail_next(foreign);
  r = sweep({"--grace", "1h", "--connector-file", delete_connector()});
  api_.clear_faults();
  EXPECT_EQ(r.exit_code, exit_kubernetes) << test::tail(r.err, 20);
  EXPECT_TRUE(contains(line_of(r, t), "unknown: ")) << r.out;
  EXPECT_TRUE(state_of(t).database);

  // Only a clean 404 lets the policy (here the connector's) apply.
  r = sweep({"--grace", "1h", "--connector-file", delete_connector()});
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  EXPECT_TRUE(contains(line_of(r, t), "acted: deleted (policy delete from connector deletionPolicy)")) << r.out;
  EXPECT_FALSE(state_of(t).database);
  EXPECT_TRUE(state_of(other).database && state_of(other).login);
}

// kill -9 at the first sighting and in the middle of a delete, then a rerun completes.
TEST_P(SweepTest, AKillMidSweepIsCompletedByTheNextRun) {
  const tenant t = provision("killed");
  ASSERT_TRUE(api_.delete_object("secrets", ns_, secret_of(t)));
  const std::vector<std::string> args{"--grace", "1h", "--connector-file", delete_connector()};
  auto r = sweep(args, std::string(sweep_fault_points::orphan_recorded));
  ASSERT_EQ(r.exit_code, 128 + SIGKILL) << test::tail(r.err, 20);
  const std::string since = orphaned_since(t);
  ASSERT_FALSE(since.empty());
  r = sweep(args);
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  EXPECT_EQ(orphaned_since(t), since);

  backdate(t, std::chrono::hours(2));
  for (const auto point : {deprovision_fault_points::logins_revoked, deprovision_fault_points::database_dropped}) {
    SCOPED_TRACE(std::string(point));
    r = sweep(args, std::string(point));
    if (r.exit_code == 0) continue;  // the point was passed already by the previous kill's rerun
    ASSERT_EQ(r.exit_code, 128 + SIGKILL) << test::tail(r.err, 20);
  }
  r = sweep(args);
  ASSERT_EQ(r.exit_code, 0) << test::tail(r.err, 20);
  EXPECT_TRUE(contains(line_of(r, t), "acted: deleted")) << r.out;
  const auto s = state_of(t);
  EXPECT_FALSE(s.database || s.users);
  EXPECT_EQ(s.records, 0u);
}

TEST_P(SweepTest, BadInputIsOneLineNamingTheFlagAndChangesNothing) {
  const tenant t = provision("bad");
  ASSERT_TRUE(api_.delete_object("secrets", ns_, secret_of(t)));
  const struct {
    std::vector<std::string> args;
    std::string names;
  } cases[] = {
      {{}, "--grace"},
      {{"--grace", "soon"}, "--grace"},
      {{"--grace", "0s"}, "--grace"},
      {{"--grace", "1h", "--tenant", "x"}, "--tenant"},
      {{"--grace", "1h", "--local"}, "--local"},
      {{"--grace", "1h", "--policy", "delete"}, "--policy"},
      {{"--grace", "1h", "--list"}, "--sweep"},
  };
  for (const auto& c : cases) {
    const auto r = sweep(c.args);
    EXPECT_EQ(r.exit_code, exit_usage) << test::tail(r.err, 10);
    const auto errors = error_lines(r.err);
    ASSERT_EQ(errors.size(), 1u) << r.err;
    EXPECT_TRUE(contains(errors[0], c.names)) << errors[0];
  }
  const auto r = init({"--grace", "1h", "--tenant", t.name, "--namespace", ns_, "--connector", "platform/db-connector",
                       "--kubeconfig", (work_ / "provisioner").string()});
  EXPECT_EQ(r.exit_code, exit_usage) << test::tail(r.err, 10);
  EXPECT_TRUE(contains(r.err, "--grace is for --sweep only")) << r.err;
  // Nothing was recorded or changed.
  EXPECT_EQ(orphaned_since(t), "");
  EXPECT_TRUE(state_of(t).login);
}

INSTANTIATE_TEST_SUITE_P(Engines, SweepTest, ::testing::Values("pg", "mariadb"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
