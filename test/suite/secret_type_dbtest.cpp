// Issue 12, finding 4: the Secret permissions can be turned into a ServiceAccount token.
// With `create` in the namespace and `update` on its credentials Secret, the pod's token
// can have the Secret garbage-collected (an ownerReference to a missing object) and create
// it again as a `kubernetes.io/service-account-token` Secret for a privileged
// ServiceAccount; the token controller then puts that account's token into it. Each test
// performs the attack through the API stand-in, as the pod's ServiceAccount, against
// tenantdb-init and tenantdb-sidecar and a real PostgreSQL or MariaDB server:
//
//   * the init refuses such a Secret (or an Opaque one with the ServiceAccount
//     annotations) with one line and exit code 4, and writes nothing;
//   * the sidecar reports it (not ready, errors_total{source="api"}) and publishes
//     nothing new;
//   * of an Opaque Secret carrying extra keys, only tenantdb's keys reach the files, in
//     every format;
//   * with manifests/rbac.yaml's Role (no `create`) and its pre-created empty Secret, the
//     init fills the Secret, and the attacker cannot create the replacement.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <unistd.h>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <yaml-cpp/yaml.h>

#include "outages.hpp"
#include "suite.hpp"
#include "tenantdb/kube.hpp"
#include "testdb.hpp"

using namespace tenantdb;
using namespace tenantdb::test::outages;
using namespace std::chrono_literals;
using test::eventually;
using test::http;

namespace {

[[maybe_unused]] const bool server_logs = test::dump_server_logs_on_failure({"pg", "mariadb"});

constexpr const char* token_type = "kubernetes.io/service-account-token";

std::string to_json(const rapidjson::Value& v) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  v.Accept(writer);
  return {buffer.GetString(), buffer.GetSize()};
}

rapidjson::Value str(const std::string& s, rapidjson::Document::AllocatorType& a) {
  return rapidjson::Value(s.c_str(), static_cast<rapidjson::SizeType>(s.size()), a);
}

// The first file below `dir` (generation directories included, symlinks not followed)
// that holds `needle` raw or base64-encoded; "" if none does.
std::string file_holding(const fs::path& dir, const std::string& needle) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return {};
  const std::string encoded = test::base64(needle);
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_regular_file(ec) || it->is_symlink(ec)) continue;
    const std::string text = test::read_file(it->path().string());
    if (text.find(needle) != std::string::npos || text.find(encoded) != std::string::npos) return it->path().string();
  }
  return {};
}

class SecretTypeTest : public OutageFixture, public ::testing::WithParamInterface<std::string> {
protected:
  std::string engine() const override { return GetParam(); }

  // A value no test could produce by accident.
  std::string unique(const std::string& what) const {
    return what + "-" + std::to_string(::getpid()) + "-" + who_.name;
  }
  std::string path() const { return "/api/v1/namespaces/" + std::string(ns) + "/secrets/" + secret_name_; }

  // The attacker: the pod's own ServiceAccount token, through the API.
  kube_response as_pod(const std::string& method, const std::string& target, const std::string& body = {}) const {
    kube_client client(load_kubeconfig(kubeconfig_));
    return client.request(method, target, body);
  }

  // Step 1 of the attack: an ownerReference to an object that does not exist; the garbage
  // collector then deletes the Secret (the stand-in has none: the test deletes it as the
  // collector would). Returns the status of the PUT.
  long orphan_and_collect() {
    const auto got = as_pod("GET", path());
    if (got.status != 200) return got.status;
    rapidjson::Document doc;
    doc.Parse(got.body.data(), got.body.size());
    auto& a = doc.GetAllocator();
    rapidjson::Value owner(rapidjson::kObjectType);
    owner.AddMember("apiVersion", "v1", a);
    owner.AddMember("kind", "ConfigMap", a);
    owner.AddMember("name", "gone", a);
    owner.AddMember("uid", "0d2b7c4e-4a53-4f7e-9a57-5d1c9e0f0000", a);
    rapidjson::Value owners(rapidjson::kArrayType);
    owners.PushBack(owner, a);
    doc["metadata"].AddMember("ownerReferences", owners, a);
    const auto put = as_pod("PUT", path(), to_json(doc));
    if (put.status == 200) api_.delete_object("secrets", ns, secret_name_);
    return put.status;
  }

  // Step 2: the Secret created again as a ServiceAccount token Secret of a privileged
  // account (type and annotations as `kubectl create` would send them); when the create
  // is allowed, the token controller fills in token, ca.crt and namespace. Returns the
  // status of the POST.
  long create_token_secret(const std::string& token, const std::string& type = token_type) {
    rapidjson::Document doc(rapidjson::kObjectType);
    auto& a = doc.GetAllocator();
    doc.AddMember("apiVersion", "v1", a);
    doc.AddMember("kind", "Secret", a);
    rapidjson::Value meta(rapidjson::kObjectType);
    meta.AddMember("name", str(secret_name_, a), a);
    meta.AddMember("namespace", str(ns, a), a);
    rapidjson::Value annotations(rapidjson::kObjectType);
    annotations.AddMember("kubernetes.io/service-account.name", "cluster-admin-bot", a);
    annotations.AddMember("kubernetes.io/service-account.uid", "6f1e0c55-3b7a-4f0e-8d55-000000000001", a);
    meta.AddMember("annotations", annotations, a);
    doc.AddMember("metadata", meta, a);
    doc.AddMember("type", str(type, a), a);
    const auto r = as_pod("POST", "/api/v1/namespaces/" + std::string(ns) + "/secrets", to_json(doc));
    if (r.status != 201) return r.status;
    // The token controller, or (for an Opaque Secret) the attacker's own update.
    const auto stored = api_.get_object("secrets", ns, secret_name_);
    rapidjson::Document obj;
    obj.Parse(stored->data(), stored->size());
    auto& oa = obj.GetAllocator();
    rapidjson::Value data(rapidjson::kObjectType);
    data.AddMember("token", str(test::base64(token), oa), oa);
    data.AddMember("ca.crt", str(test::base64(api_.ca_pem()), oa), oa);
    data.AddMember("namespace", str(test::base64(ns), oa), oa);
    obj.AddMember("data", data, oa);
    api_.put_object(to_json(obj));
    return r.status;
  }

  std::string stored_type() const {
    const auto object = api_.get_object("secrets", ns, secret_name_);
    if (!object) return {};
    rapidjson::Document doc;
    doc.Parse(object->data(), object->size());
    return doc.HasMember("type") && doc["type"].IsString() ? doc["type"].GetString() : "";
  }

  std::vector<std::string> format_args() const {
    return {"--formats", GetParam() == "pg" ? "pgpass,env,json" : "mycnf,env,json", "--file-mode", "0600"};
  }
};

// The whole chain of the finding against a provisioned tenant, then the init runs again
// (a pod restart): it must refuse the token Secret with one line and exit 4, write nothing
// to the API, and put the token into no file.
TEST_P(SecretTypeTest, InitRefusesAServiceAccountTokenSecretInPlaceOfTheCredentials) {
  test::suite_tally tally;
  const fs::path out = work_ / "out";
  ASSERT_EQ(init(out).exit_code, 0);
  const credential_data before = read_directory(out);
  const std::string token = unique("eyJhbGciOiJSUzI1NiJ9.stolen-token");

  ASSERT_EQ(orphan_and_collect(), 200);
  ASSERT_EQ(create_token_secret(token), 201) << "the fixture's Role (with create) lets the pod create it";
  ++tally.attacks;
  const auto writes = api_.request_count("PUT") + api_.request_count("POST");

  const auto r = init(out, {"--print-json"});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  const auto errors = error_lines(r.err);
  ASSERT_EQ(errors.size(), 1u) << r.err;
  EXPECT_NE(errors[0].find(token_type), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find(secret_name_), std::string::npos) << errors[0];
  EXPECT_EQ(file_holding(out, token), "") << "the token reached the workload's files";
  EXPECT_EQ(r.out.find(token), std::string::npos) << "the token reached stdout";
  EXPECT_EQ(r.err.find(token), std::string::npos) << "the token reached the log";
  EXPECT_TRUE(same_data(read_directory(out), before)) << "the files changed";
  EXPECT_EQ(api_.request_count("PUT") + api_.request_count("POST"), writes) << "the init wrote to the API";
  EXPECT_EQ(stored_type(), token_type);
  EXPECT_EQ(api_.secret_value(ns, secret_name_, "token").value_or(""), token) << "the Secret was changed";
  if (!HasFailure()) ++tally.held;
}

// An Opaque Secret carrying the ServiceAccount annotations is refused as well (the pod's
// update permission is enough to add them), before the first init.
TEST_P(SecretTypeTest, InitRefusesAnOpaqueSecretWithServiceAccountAnnotations) {
  test::suite_tally tally;
  const fs::path out = work_ / "out";
  const std::string token = unique("opaque-token");
  ASSERT_EQ(create_token_secret(token, "Opaque"), 201);
  ++tally.attacks;

  const auto r = init(out);
  EXPECT_EQ(r.exit_code, 4) << r.err;
  const auto errors = error_lines(r.err);
  ASSERT_EQ(errors.size(), 1u) << r.err;
  EXPECT_NE(errors[0].find("kubernetes.io/service-account.name"), std::string::npos) << errors[0];
  EXPECT_TRUE(read_directory(out).empty()) << "the init published files";
  EXPECT_EQ(file_holding(out, token), "");
  EXPECT_EQ(api_.request_count("PUT"), 0u) << "the init adopted the Secret";
  if (!HasFailure()) ++tally.held;
}

// The same chain while a sidecar runs: it reports the Secret (not ready, an API error) and
// publishes nothing from it; the files keep the working credentials. Once the Secret is
// restored, it is ready again.
TEST_P(SecretTypeTest, SidecarReportsAServiceAccountTokenSecretAndPublishesNothingNew) {
  test::suite_tally tally;
  ASSERT_EQ(init({}).exit_code, 0);
  const fs::path out = work_ / "out";
  auto args = format_args();
  args.insert(args.end(), {"--rotate-every", "never"});
  auto& sc = start("pod-token", out, args);
  ASSERT_TRUE(eventually([&] { return sc.ready() == 200; }, 30s)) << "the sidecar never became ready";
  const credential_data before = read_directory(out);
  const auto original = api_.get_object("secrets", ns, secret_name_);
  const std::string m0 = sc.metrics();
  const auto published0 = metric(m0, "tenantdb_files_published_total");
  const auto api_errors0 = metric(m0, "tenantdb_errors_total{source=\"api\"}");
  ASSERT_TRUE(published0.has_value()) << m0;
  ASSERT_TRUE(api_errors0.has_value()) << m0;
  const std::string token = unique("eyJhbGciOiJSUzI1NiJ9.stolen-token");

  ASSERT_EQ(orphan_and_collect(), 200);
  ASSERT_EQ(create_token_secret(token), 201);
  ++tally.attacks;

  EXPECT_TRUE(eventually(
      [&] { return sc.ready() == 503 && metric(sc.metrics(), "tenantdb_errors_total{source=\"api\"}") > *api_errors0; },
      15s))
      << "the sidecar did not report the replaced Secret:\n"
      << sc.metrics();
  // Several more syncs while the token Secret is in place.
  const auto gets = api_.request_count("GET", secret_name_);
  ASSERT_TRUE(eventually([&] { return api_.request_count("GET", secret_name_) >= gets + 3; }, 15s));
  EXPECT_EQ(sc.ready(), 503);
  const std::string m1 = sc.metrics();
  EXPECT_EQ(metric(m1, "tenantdb_files_published_total"), *published0) << m1;
  EXPECT_TRUE(same_data(read_directory(out), before)) << "the files changed";
  EXPECT_EQ(file_holding(out, token), "") << "the token reached the workload's files";
  EXPECT_EQ(sc.proc->err().find(token), std::string::npos) << "the token reached the log";
  EXPECT_NE(sc.proc->err().find(token_type), std::string::npos) << "no log line names the Secret's type";
  EXPECT_EQ(stored_type(), token_type) << "the sidecar changed the Secret";
  if (!HasFailure()) ++tally.held;

  // An administrator restores the credentials Secret: ready again, same files.
  ASSERT_TRUE(api_.delete_object("secrets", ns, secret_name_));
  api_.put_object(*original);
  EXPECT_TRUE(eventually([&] { return sc.ready() == 200; }, 15s)) << "not ready after the Secret was restored";
  EXPECT_TRUE(working_everywhere(out));
}

// An Opaque Secret with keys tenantdb does not define (a token, a CA, a namespace,
// anything): only tenantdb's keys reach the files, in every format, from the sidecar and
// from the init.
TEST_P(SecretTypeTest, OnlyTenantdbKeysReachTheFilesWhenTheSecretCarriesMore) {
  test::suite_tally tally;
  ASSERT_EQ(init({}).exit_code, 0);
  const std::map<std::string, std::string> injected = {{"token", unique("stolen-token")},
                                                       {"ca.crt", unique("attacker-ca")},
                                                       {"namespace", unique("kube-system")},
                                                       {"foo", unique("attacker-foo")}};
  {  // The pod's own update permission is enough.
    const auto got = as_pod("GET", path());
    ASSERT_EQ(got.status, 200);
    rapidjson::Document doc;
    doc.Parse(got.body.data(), got.body.size());
    auto& a = doc.GetAllocator();
    for (const auto& [k, v] : injected) doc["data"].AddMember(str(k, a), str(test::base64(v), a), a);
    ASSERT_EQ(as_pod("PUT", path(), to_json(doc)).status, 200);
  }
  const std::set<std::string> allowed = {keys::database,    keys::user, keys::password, keys::host,
                                         keys::port,        keys::type, keys::ssl_mode, keys::data_source,
                                         keys::ca_cert,     "pgpass",   "my.cnf",       "credentials.env",
                                         "credentials.json"};
  const auto check_dir = [&](const fs::path& dir, const std::string& who) {
    const credential_data files = read_directory(dir);
    EXPECT_FALSE(files.empty()) << who << " published nothing";
    for (const auto& [key, value] : files) EXPECT_TRUE(allowed.count(key)) << who << " published " << key;
    for (const auto& [key, value] : injected)
      EXPECT_EQ(file_holding(dir, value), "") << who << ": the injected " << key << " reached a file";
  };

  const fs::path out = work_ / "sidecar-out";
  auto& sc = start("pod-keys", out, format_args());
  ++tally.attacks;
  ASSERT_TRUE(eventually([&] { return sc.ready() == 200; }, 30s)) << "the sidecar never became ready";
  check_dir(out, "the sidecar");
  if (!HasFailure()) ++tally.held;

  const bool failed_before = HasFailure();
  const fs::path init_out = work_ / "init-out";
  ++tally.attacks;
  const auto r = init(init_out, {"--print-json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  check_dir(init_out, "the init");
  for (const auto& [key, value] : injected)
    EXPECT_EQ(r.out.find(value), std::string::npos) << key << " in --print-json";
  if (HasFailure() == failed_before) ++tally.held;
}

// manifests/rbac.yaml as it ships, applied to this tenant: its Role (granted rule by rule
// to a fresh ServiceAccount, the example's Secret name mapped to this tenant's) and its
// pre-created empty Secret. The init fills that Secret with no create; the attacker's
// replacement is forbidden.
TEST_P(SecretTypeTest, ManifestRoleWithThePreCreatedSecretNeedsNoCreateAndStopsTheAttack) {
  test::suite_tally tally;
  const std::string example_ns = "tenant-a";
  const std::string example_secret = "vc-db-my-app";
  test::pod_identity pod;
  pod.token = "manifest-pod-token-" + std::to_string(::getpid());
  pod.user = "system:serviceaccount:team-a:tenantdb-manifests";
  api_.add_token(pod.token, pod.user);
  api_.allow(pod.user, "get", pod.connector_ns, "secrets", pod.connector_name);  // as rbac-connector-api.yaml
  const auto docs = YAML::LoadAllFromFile((fs::path(TENANTDB_SOURCE_DIR) / "manifests/rbac.yaml").string());
  bool role = false;
  bool secret = false;
  for (const auto& doc : docs) {
    const std::string kind = doc["kind"].as<std::string>("");
    if (kind == "Role" && doc["metadata"]["name"].as<std::string>("") == "tenantdb-credentials") {
      role = true;
      for (const auto& rule : doc["rules"])
        for (const auto& verb : rule["verbs"])
          for (const auto& resource : rule["resources"]) {
            if (!rule["resourceNames"]) {
              api_.allow(pod.user, verb.as<std::string>(), ns, resource.as<std::string>());
              continue;
            }
            for (const auto& name : rule["resourceNames"]) {
              const std::string n = name.as<std::string>();
              api_.allow(pod.user, verb.as<std::string>(), ns, resource.as<std::string>(),
                         n == example_secret ? secret_name_ : n);
            }
          }
    } else if (kind == "Secret" && doc["metadata"]["name"].as<std::string>("") == example_secret &&
               doc["metadata"]["namespace"].as<std::string>("") == example_ns) {
      secret = true;
      EXPECT_FALSE(doc["data"] || doc["stringData"]) << "the pre-created Secret must hold no data";
      // As `kubectl apply` would create it, in this tenant's namespace under its name.
      rapidjson::Document obj(rapidjson::kObjectType);
      auto& a = obj.GetAllocator();
      obj.AddMember("apiVersion", "v1", a);
      obj.AddMember("kind", "Secret", a);
      rapidjson::Value meta(rapidjson::kObjectType);
      meta.AddMember("name", str(secret_name_, a), a);
      meta.AddMember("namespace", str(ns, a), a);
      for (const char* field : {"labels", "annotations"}) {
        if (!doc["metadata"][field]) continue;
        rapidjson::Value m(rapidjson::kObjectType);
        for (const auto& kv : doc["metadata"][field])
          m.AddMember(str(kv.first.Scalar(), a), str(kv.second.Scalar(), a), a);
        meta.AddMember(rapidjson::StringRef(field), m, a);
      }
      obj.AddMember("metadata", meta, a);
      if (doc["type"]) obj.AddMember("type", str(doc["type"].as<std::string>(), a), a);
      api_.put_object(to_json(obj));
    }
  }
  ASSERT_TRUE(role) << "manifests/rbac.yaml has no Role tenantdb-credentials";
  ASSERT_TRUE(secret) << "manifests/rbac.yaml does not pre-create " << example_ns << "/" << example_secret;
  kubeconfig_ = (work_ / "kubeconfig-manifests").string();
  test::write_kubeconfig(kubeconfig_, api_, pod);

  // The init fills the pre-created Secret with a conditional update; it creates nothing.
  const fs::path out = work_ / "out";
  const auto r = init(out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // (Its only POSTs are Events, which the Role allows: no Secret is created.)
  EXPECT_EQ(api_.request_count("POST", "/secrets"), 0u);
  EXPECT_EQ(stored_type(), "Opaque");
  EXPECT_TRUE(working_everywhere(out));
  // Run again: nothing to change.
  const auto version = api_.resource_version();
  ASSERT_EQ(init(out).exit_code, 0);
  EXPECT_EQ(api_.resource_version(), version) << "a second run rewrote the Secret";

  // The attack with this Role: the orphaning update is allowed (update by name), and the
  // garbage collector deletes the Secret, but creating the token Secret is forbidden.
  const std::string token = unique("eyJhbGciOiJSUzI1NiJ9.stolen-token");
  ASSERT_EQ(orphan_and_collect(), 200);
  ++tally.attacks;
  EXPECT_EQ(create_token_secret(token), 403) << "the manifests' Role lets the pod create Secrets";
  EXPECT_FALSE(api_.get_object("secrets", ns, secret_name_).has_value());
  EXPECT_EQ(file_holding(out, token), "");
  if (!HasFailure()) ++tally.held;

  // What is left is a denial of service: without the Secret and without create the init
  // stops with one line and exit code 4 until the Secret is re-applied.
  const auto gone = init(out, {"--timeout", "5s"});
  EXPECT_EQ(gone.exit_code, 4) << gone.err;
  EXPECT_EQ(error_lines(gone.err).size(), 1u) << gone.err;
}

INSTANTIATE_TEST_SUITE_P(Engines, SecretTypeTest, ::testing::Values("pg", "mariadb"));

}  // namespace
