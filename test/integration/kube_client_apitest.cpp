// tenantdb::kube_client, load_kubeconfig and in_cluster_config against the Kubernetes API
// stand-in: real TLS with its own CA, bearer tokens, client certificates, RBAC, Status
// bodies and injected faults. No mocks.

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/pointer.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <openssl/evp.h>
#include <unistd.h>

#include "kube_standin.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/events.hpp"
#include "tenantdb/kube.hpp"
#include "tenantdb/log.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace std::string_literals;

namespace tenantdb {
namespace {

constexpr const char* ns = "tenants";
constexpr const char* sa_user = "system:serviceaccount:tenants:tenantdb";

std::string random_hex(std::size_t bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::random_device device;
  std::string out;
  for (std::size_t i = 0; i < bytes; ++i) {
    const auto byte = device() & 0xffU;
    out.push_back(digits[byte >> 4]);
    out.push_back(digits[byte & 0xfU]);
  }
  return out;
}

// Independent of the client's own encoder on purpose.
std::string b64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

void write_file(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  ASSERT_TRUE(out.good()) << path;
}

// Replaces a file the way the kubelet rotates projected tokens: write aside, rename over.
void replace_file(const fs::path& path, const std::string& content) {
  const fs::path temp = path.string() + ".new";
  write_file(temp, content);
  fs::rename(temp, path);
}

/// Runs `f`, expecting a tenantdb::error; returns it (or a placeholder after a failure).
template <class F>
error expect_error(F&& f) {
  try {
    f();
  } catch (const error& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-tenantdb exception: " << e.what();
    return error(error_kind::internal, "<wrong exception>");
  }
  ADD_FAILURE() << "did not throw";
  return error(error_kind::internal, "<no exception>");
}

std::string secret_value(const secret_object& object, const std::string& key) {
  const auto it = object.data.find(key);
  return it == object.data.end() ? "<absent>" : it->second.reveal();
}

class KubeClientTest : public ::testing::Test {
protected:
  void SetUp() override {
    char pattern[] = "/tmp/tenantdb-kube-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    token_ = "tok-" + random_hex(24);
    standin_.add_token(token_, sa_user);
    standin_.allow(sa_user, "*", ns, "secrets");
    log::set_level(log::level::debug);
    log::set_sink([this](std::string_view line) { log_lines_.emplace_back(line); });
  }

  void TearDown() override {
    log::set_sink(nullptr);
    log::set_level(log::level::info);
    for (const auto& line : log_lines_) {
      EXPECT_EQ(line.find(token_), std::string::npos) << "the token reached a log line: " << line;
      for (const auto& other : other_secrets_) EXPECT_EQ(line.find(other), std::string::npos) << line;
    }
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
    if (HasFailure()) {
      std::cerr << "stand-in request log:\n";
      for (const auto& r : standin_.requests())
        std::cerr << "  " << r.method << " " << r.target << " -> " << r.status << " (" << r.user << ")\n";
    }
  }

  kube_config config() const {
    kube_config c;
    c.server = standin_.url();
    c.ca_pem = standin_.ca_pem();
    c.token = secret(token_);
    c.namespace_name = ns;
    c.connect_timeout = 2000ms;
    c.request_timeout = 5000ms;
    return c;
  }

  /// Asserts that an error is well formed: it names the operation and object and quotes
  /// no credential.
  void expect_clean(const error& e, const std::string& operation) const {
    const std::string what = e.what();
    EXPECT_NE(what.find(operation), std::string::npos) << what;
    EXPECT_EQ(what.find(token_), std::string::npos) << "the token reached an error message: " << what;
    for (const auto& other : other_secrets_) EXPECT_EQ(what.find(other), std::string::npos) << what;
  }

  static secret_object sample(const std::string& name) {
    secret_object object;
    object.namespace_name = ns;
    object.name = name;
    object.labels = {{"app.kubernetes.io/managed-by", "tenantdb"}, {"tenantdb.io/tenant", "a"}};
    object.annotations = {{"tenantdb.io/note", "line one\nline \"two\" \xc3\xbc"}, {"empty", ""}};
    object.data.emplace("password", secret("p\0ss\xff\xfe\n word\r\n"s));
    object.data.emplace("empty", secret(""));
    object.data.emplace("utf8", secret("gr\xc3\xbc\xc3\x9f"));
    object.data.emplace("binary", secret("\x00\x01\x02\x80\x81\xfe\xff"s));
    return object;
  }

  std::string kubeconfig_yaml(const std::string& cluster_extra, const std::string& user_body,
                              const std::string& context_extra = "") const {
    return "apiVersion: v1\nkind: Config\ncurrent-context: main\n"
           "clusters:\n"
           "- name: other\n  cluster:\n    server: https://unused.invalid:6443\n"
           "- name: standin\n  cluster:\n    server: " +
           standin_.url() + "\n" + cluster_extra +
           "contexts:\n"
           "- name: main\n  context:\n    cluster: standin\n    user: tenantdb\n" +
           context_extra +
           "- name: second\n  context:\n    cluster: other\n    user: tenantdb\n    namespace: elsewhere\n"
           "users:\n"
           "- name: tenantdb\n  user:\n" +
           user_body;
  }

  std::string ca_data_line() const { return "    certificate-authority-data: " + b64(standin_.ca_pem()) + "\n"; }

  fs::path write_kubeconfig(const std::string& yaml, const std::string& name = "kubeconfig") const {
    const fs::path path = dir_ / name;
    write_file(path, yaml);
    return path;
  }

  test::KubeStandin standin_;
  fs::path dir_;
  std::string token_;
  std::vector<std::string> other_secrets_;
  std::vector<std::string> log_lines_;
};

// --- Secrets --------------------------------------------------------------------------

TEST_F(KubeClientTest, GetMissingSecretIsNullopt) {
  kube_client client(config());
  EXPECT_FALSE(client.get_secret(ns, "absent").has_value());
  EXPECT_EQ(standin_.request_count("GET", "/api/v1/namespaces/tenants/secrets/absent"), 1U);
  EXPECT_FALSE(log_lines_.empty());  // requests are logged at debug (TearDown checks for the token)
}

TEST_F(KubeClientTest, CreateThenGetRoundTripsBytesLabelsAndAnnotations) {
  kube_client client(config());
  const secret_object wanted = sample("roundtrip");
  const secret_object created = client.create_secret(wanted);
  EXPECT_FALSE(created.resource_version.empty());
  EXPECT_FALSE(created.uid.empty());
  EXPECT_EQ(created.type, "Opaque");

  const auto got = client.get_secret(ns, "roundtrip");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->name, "roundtrip");
  EXPECT_EQ(got->namespace_name, ns);
  EXPECT_EQ(got->resource_version, created.resource_version);
  EXPECT_EQ(got->uid, created.uid);
  EXPECT_EQ(got->labels, wanted.labels);
  EXPECT_EQ(got->annotations, wanted.annotations);
  ASSERT_EQ(got->data.size(), wanted.data.size());
  for (const auto& [key, value] : wanted.data) {
    EXPECT_EQ(secret_value(*got, key), value.reveal()) << key;
    // What the server stored, decoded by the stand-in rather than by us.
    EXPECT_EQ(standin_.secret_value(ns, "roundtrip", key), value.reveal()) << key;
  }
}

TEST_F(KubeClientTest, LargeSecretRoundTrips) {
  kube_client client(config());
  secret_object object = sample("large");
  std::string big(700 * 1024, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 % 251);
  object.data.insert_or_assign("big", secret(big));
  client.create_secret(object);
  const auto got = client.get_secret(ns, "large");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(secret_value(*got, "big"), big);
}

TEST_F(KubeClientTest, CreateExistingIsConflict) {
  kube_client client(config());
  client.create_secret(sample("twice"));
  const error e = expect_error([&] { client.create_secret(sample("twice")); });
  EXPECT_EQ(e.kind(), error_kind::kubernetes);
  EXPECT_EQ(e.http_status(), 409);
  EXPECT_FALSE(e.is_retryable());
  EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos) << e.what();
  expect_clean(e, "create secret \"tenants/twice\"");
}

TEST_F(KubeClientTest, UpdateWithCurrentResourceVersionSucceedsAndBumpsIt) {
  kube_client client(config());
  const secret_object created = client.create_secret(sample("update"));
  secret_object changed = created;
  changed.data.insert_or_assign("password", secret("new\0value"s));
  changed.annotations["tenantdb.io/rotated"] = "yes";
  const secret_object updated = client.update_secret(changed);
  EXPECT_NE(updated.resource_version, created.resource_version);
  EXPECT_GT(std::stoull(updated.resource_version), std::stoull(created.resource_version));
  EXPECT_EQ(updated.uid, created.uid);

  const auto got = client.get_secret(ns, "update");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->resource_version, updated.resource_version);
  EXPECT_EQ(secret_value(*got, "password"), "new\0value"s);
  EXPECT_EQ(got->annotations.at("tenantdb.io/rotated"), "yes");
}

TEST_F(KubeClientTest, UpdateWithStaleResourceVersionIsConflictAndChangesNothing) {
  kube_client client(config());
  const secret_object created = client.create_secret(sample("stale"));
  secret_object first = created;
  first.data.insert_or_assign("password", secret("first"));
  const secret_object after_first = client.update_secret(first);

  secret_object stale = created;  // still carries the original resourceVersion
  stale.data.insert_or_assign("password", secret("second"));
  const error e = expect_error([&] { client.update_secret(stale); });
  EXPECT_EQ(e.kind(), error_kind::kubernetes);
  EXPECT_EQ(e.http_status(), 409);
  EXPECT_FALSE(e.is_retryable());
  expect_clean(e, "update secret \"tenants/stale\"");

  const auto got = client.get_secret(ns, "stale");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->resource_version, after_first.resource_version);
  EXPECT_EQ(secret_value(*got, "password"), "first");
}

TEST_F(KubeClientTest, RacingWriterMakesUpdateConflict) {
  kube_client client(config());
  const secret_object created = client.create_secret(sample("race"));
  standin_.conflict_next(1, "/secrets/race");
  secret_object mine = created;
  mine.data.insert_or_assign("password", secret("mine"));
  const error e = expect_error([&] { client.update_secret(mine); });
  EXPECT_EQ(e.http_status(), 409);
  EXPECT_NE(standin_.secret_value(ns, "race", "password"), "mine");
}

TEST_F(KubeClientTest, InvalidObjectIsRejectedWithTheApiMessage) {
  kube_client client(config());
  secret_object object = sample("invalid");
  object.data.emplace("not a valid key!", secret("x"));
  const error e = expect_error([&] { client.create_secret(object); });
  EXPECT_EQ(e.kind(), error_kind::kubernetes);
  EXPECT_TRUE(e.http_status() == 422 || e.http_status() == 400) << e.http_status();
  EXPECT_FALSE(e.is_retryable());
  EXPECT_NE(std::string(e.what()).find("rejected the object"), std::string::npos) << e.what();
  expect_clean(e, "create secret \"tenants/invalid\"");
}

TEST_F(KubeClientTest, OversizedAnswerIsRefused) {
  // Seeded behind the API's back: kube-apiserver itself would refuse a Secret this big.
  const std::string huge = b64(std::string(7 * 1024 * 1024, 'x'));
  standin_.put_object(R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"huge","namespace":"tenants"},)"
                      R"("type":"Opaque","data":{"a":")" +
                      huge + R"("}})");
  kube_client client(config());
  const error e = expect_error([&] { client.get_secret(ns, "huge"); });
  EXPECT_EQ(e.kind(), error_kind::kubernetes);
  EXPECT_FALSE(e.is_retryable());
  EXPECT_NE(std::string(e.what()).find("larger than 8 MiB"), std::string::npos) << e.what();
  expect_clean(e, "get secret \"tenants/huge\"");
  // The client is still usable afterwards.
  EXPECT_FALSE(client.get_secret(ns, "absent").has_value());
}

TEST_F(KubeClientTest, ConcurrentCallersShareOneClient) {
  kube_client client(config());
  client.create_secret(sample("shared"));
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i)
        if (client.get_secret(ns, "shared")) ++ok;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), 40);
}

TEST_F(KubeClientTest, RequestReturnsAnyHttpStatus) {
  kube_client client(config());
  kube_response response = client.request("GET", "/api/v1/namespaces/tenants/secrets/absent");
  EXPECT_EQ(response.status, 404);
  const error e = expect_error([&] { throw_api_error(response, "get thing \"x\""); });
  EXPECT_EQ(e.kind(), error_kind::kubernetes);
  EXPECT_EQ(e.http_status(), 404);
  expect_clean(e, "get thing \"x\"");
}

// --- Authentication and authorization -------------------------------------------------

TEST_F(KubeClientTest, WrongTokenIsUnauthorized) {
  kube_config c = config();
  const std::string wrong = "wrong-" + random_hex(16);
  other_secrets_.push_back(wrong);
  c.token = secret(wrong);
  kube_client client(std::move(c));
  const error e = expect_error([&] { client.get_secret(ns, "x"); });
  EXPECT_EQ(e.kind(), error_kind::kubernetes);
  EXPECT_EQ(e.http_status(), 401);
  EXPECT_FALSE(e.is_retryable());
  EXPECT_NE(std::string(e.what()).find("the API server rejected our credentials (Unauthorized): the service-account "
                                       "token is missing, expired or not accepted"),
            std::string::npos)
      << e.what();
  expect_clean(e, "get secret \"tenants/x\"");
}

TEST_F(KubeClientTest, RotatedTokenFileIsReadBeforeEachRequest) {
  kube_config c = config();
  c.token = secret();
  c.token_file = dir_ / "token";
  write_file(c.token_file, token_ + "\n");
  kube_client client(std::move(c));
  EXPECT_FALSE(client.get_secret(ns, "x").has_value());

  // The kubelet rotates the token; the API server stops accepting the old one.
  const std::string rotated = "rotated-" + random_hex(24);
  other_secrets_.push_back(rotated);
  standin_.remove_token(token_);
  const error e = expect_error([&] { client.get_secret(ns, "x"); });
  EXPECT_EQ(e.http_status(), 401);
  expect_clean(e, "get secret \"tenants/x\"");

  standin_.add_token(rotated, sa_user);
  replace_file(dir_ / "token", rotated + "\r\n");
  EXPECT_FALSE(client.get_secret(ns, "x").has_value());
  const auto log = standin_.requests();
  ASSERT_FALSE(log.empty());
  EXPECT_EQ(log.back().status, 404U);
  EXPECT_EQ(log.back().user, sa_user);
}

TEST_F(KubeClientTest, UnreadableOrEmptyTokenFileIsAClearError) {
  kube_config c = config();
  c.token_file = dir_ / "token";
  write_file(c.token_file, "  \n");
  kube_client client(std::move(c));
  error e = expect_error([&] { client.get_secret(ns, "x"); });
  EXPECT_EQ(e.kind(), error_kind::kubernetes);
  EXPECT_NE(std::string(e.what()).find("is empty"), std::string::npos) << e.what();
  fs::remove(dir_ / "token");
  e = expect_error([&] { client.get_secret(ns, "x"); });
  EXPECT_NE(std::string(e.what()).find((dir_ / "token").string()), std::string::npos) << e.what();
  expect_clean(e, "get secret \"tenants/x\"");
}

TEST_F(KubeClientTest, ForbiddenNamesVerbResourceNamespaceAndPointsAtManifests) {
  const std::string limited = "limited-" + random_hex(16);
  standin_.add_token(limited, "system:serviceaccount:tenants:limited");
  standin_.allow("system:serviceaccount:tenants:limited", "get", ns, "secrets");
  other_secrets_.push_back(limited);
  kube_config c = config();
  c.token = secret(limited);
  kube_client client(std::move(c));
  EXPECT_FALSE(client.get_secret(ns, "x").has_value());

  const error e = expect_error([&] { client.create_secret(sample("x")); });
  EXPECT_EQ(e.kind(), error_kind::kubernetes);
  EXPECT_EQ(e.http_status(), 403);
  EXPECT_FALSE(e.is_retryable());
  const std::string what = e.what();
  EXPECT_NE(what.find("create"), std::string::npos) << what;
  EXPECT_NE(what.find("\"secrets\""), std::string::npos) << what;
  EXPECT_NE(what.find("\"tenants\""), std::string::npos) << what;
  EXPECT_NE(what.find("manifests/"), std::string::npos) << what;
  expect_clean(e, "create secret \"tenants/x\"");
}

// --- Events ---------------------------------------------------------------------------

/// The Events in namespace `ns` of the stand-in, as JSON documents.
std::vector<rapidjson::Document> list_events(kube_client& client) {
  const kube_response r = client.request("GET", "/api/v1/namespaces/" + std::string(ns) + "/events");
  EXPECT_EQ(r.status, 200) << r.body;
  rapidjson::Document list;
  list.Parse(r.body.data(), r.body.size());
  std::vector<rapidjson::Document> out;
  if (list.HasParseError() || !list.HasMember("items")) return out;
  for (const auto& item : list["items"].GetArray()) {
    rapidjson::Document d;
    d.CopyFrom(item, d.GetAllocator());
    out.push_back(std::move(d));
  }
  return out;
}

std::string text_at(const rapidjson::Value& v, const char* pointer) {
  const rapidjson::Value* found = rapidjson::Pointer(pointer).Get(v);
  if (found == nullptr) return "<absent>";
  if (found->IsString()) return found->GetString();
  if (found->IsInt()) return std::to_string(found->GetInt());
  return "<not a string>";
}

TEST_F(KubeClientTest, CreateEventPostsACoreV1EventAboutTheInvolvedObject) {
  standin_.allow(sa_user, "*", ns, "events");
  kube_client client(config());
  event_object e;
  e.namespace_name = ns;
  e.involved_kind = "Pod";
  e.involved_name = "app-7f9c";
  e.type = "Warning";
  e.reason = "Failed";
  e.action = "Provision";
  e.message = std::string(1100, 'x') + "\xc3\xbc";  // over the limit: cut, still accepted
  e.component = "tenantdb-init";
  e.instance = "app-7f9c";
  ASSERT_NO_THROW(client.create_event(e));
  e.message = "second";
  ASSERT_NO_THROW(client.create_event(e));

  const auto events = list_events(client);
  ASSERT_EQ(events.size(), 2u) << "each Event gets its own generated name";
  // Listed by name, and the names are random: find the first one by its message.
  const bool first_is_long = text_at(events[0], "/message") != "second";
  const auto& d = events[first_is_long ? 0 : 1];
  EXPECT_EQ(text_at(d, "/metadata/name").rfind("app-7f9c.", 0), 0u) << text_at(d, "/metadata/name");
  EXPECT_EQ(text_at(d, "/involvedObject/kind"), "Pod");
  EXPECT_EQ(text_at(d, "/involvedObject/name"), "app-7f9c");
  EXPECT_EQ(text_at(d, "/involvedObject/namespace"), ns);
  EXPECT_EQ(text_at(d, "/type"), "Warning");
  EXPECT_EQ(text_at(d, "/reason"), "Failed");
  EXPECT_EQ(text_at(d, "/action"), "Provision");
  EXPECT_EQ(text_at(d, "/reportingComponent"), "tenantdb-init");
  EXPECT_EQ(text_at(d, "/reportingInstance"), "app-7f9c");
  EXPECT_EQ(text_at(d, "/source/component"), "tenantdb-init");
  EXPECT_EQ(text_at(d, "/count"), "1");
  EXPECT_NE(text_at(d, "/eventTime"), "<absent>");
  EXPECT_NE(text_at(d, "/firstTimestamp"), "<absent>");
  EXPECT_EQ(text_at(d, "/message").size(), 1024u);
  EXPECT_EQ(text_at(events[first_is_long ? 1 : 0], "/message"), "second");
}

TEST_F(KubeClientTest, EventRecorderSurvivesForbiddenAndCountsWithOneWarning) {
  // Secrets only, as a Role without the optional events rule.
  kube_client client(config());
  event_recorder recorder(&client, "tenantdb-sidecar", {"Secret", ns, "vc-db-a"});
  EXPECT_FALSE(recorder.normal("Rotated", "Rotate", "rotated"));
  EXPECT_FALSE(recorder.warning("Failed", "Rotate", "rotation failed"));
  EXPECT_EQ(recorder.failed(), 2u);
  EXPECT_EQ(recorder.sent(), 0u);
  EXPECT_EQ(standin_.request_count("POST", "/events"), 2u) << "no retries";
  std::size_t warnings = 0;
  for (const auto& line : log_lines_)
    if (line.find("could not create a Kubernetes Event") != std::string::npos &&
        line.find("\"level\":\"warn\"") != std::string::npos) {
      ++warnings;
      EXPECT_NE(line.find("forbidden"), std::string::npos) << line;
    }
  EXPECT_EQ(warnings, 1u) << "one warning, later failures at debug";

  // The Secret work goes on with the same client.
  EXPECT_NO_THROW(client.create_secret(sample("after")));
  standin_.allow(sa_user, "create", ns, "events");
  standin_.allow(sa_user, "list", ns, "events");  // for the test to look
  EXPECT_TRUE(recorder.normal("Rotated", "Rotate", "rotated"));
  EXPECT_EQ(recorder.sent(), 1u);
  const auto events = list_events(client);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(text_at(events[0], "/involvedObject/kind"), "Secret");
  EXPECT_EQ(text_at(events[0], "/involvedObject/name"), "vc-db-a");
}

TEST_F(KubeClientTest, EventRecorderGivesUpAfterItsShortTimeoutAndRateLimitsWarnings) {
  standin_.allow(sa_user, "create", ns, "events");
  kube_client client(config());  // request timeout 5 s
  event_recorder recorder(&client, "tenantdb-sidecar", {"Pod", ns, "p"}, 300ms);
  standin_.stall_next(1, 3s, "/events");
  const auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(recorder.normal("Rotated", "Rotate", "rotated"));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2500ms) << "an Event never holds up the work";
  EXPECT_EQ(recorder.failed(), 1u);
  // The client's own timeout is back for the next request: a 1 s stall is waited out.
  standin_.stall_next(1, 1s, "/secrets");
  EXPECT_FALSE(client.get_secret(ns, "x").has_value());

  EXPECT_TRUE(recorder.warning_limited("Failed", "Rotate", "rotation failed", std::chrono::minutes(10)));
  const auto posts = standin_.request_count("POST", "/events");
  EXPECT_FALSE(recorder.warning_limited("Failed", "Rotate", "rotation failed", std::chrono::minutes(10)));
  EXPECT_EQ(standin_.request_count("POST", "/events"), posts) << "held back, not sent";
  EXPECT_TRUE(recorder.warning_limited("Other", "Rotate", "another reason", std::chrono::minutes(10)));
  EXPECT_TRUE(recorder.warning_limited("Failed", "Rotate", "rotation failed", 0ms)) << "after the interval";
}

TEST_F(KubeClientTest, ClientCertificateFromKubeconfigAuthenticates) {
  const auto cert = standin_.issue_client_cert("alice", {"system:masters"});
  other_secrets_.push_back(cert.key_pem);
  write_file(dir_ / "ca.crt", standin_.ca_pem());
  const fs::path path = write_kubeconfig(kubeconfig_yaml(
      "    certificate-authority: ca.crt\n",
      "    client-certificate-data: " + b64(cert.cert_pem) + "\n    client-key-data: " + b64(cert.key_pem) + "\n"));
  kube_client client(load_kubeconfig(path));
  client.create_secret(sample("by-cert"));
  EXPECT_TRUE(client.get_secret(ns, "by-cert").has_value());
  const auto log = standin_.requests();
  ASSERT_FALSE(log.empty());
  EXPECT_EQ(log.back().user, "alice");
}

TEST_F(KubeClientTest, ClientCertificateFilesAreRelativeToTheKubeconfig) {
  const auto cert = standin_.issue_client_cert("bob", {"system:masters"});
  fs::create_directories(dir_ / "conf" / "pki");
  write_file(dir_ / "conf" / "pki" / "bob.crt", cert.cert_pem);
  write_file(dir_ / "conf" / "pki" / "bob.key", cert.key_pem);
  const fs::path path = write_kubeconfig(
      kubeconfig_yaml(ca_data_line(), "    client-certificate: pki/bob.crt\n    client-key: pki/bob.key\n"),
      "conf/kubeconfig");
  const kube_config c = load_kubeconfig(path);
  EXPECT_EQ(c.client_cert_pem, cert.cert_pem);
  EXPECT_EQ(c.client_key_pem.reveal(), cert.key_pem);
  kube_client client(c);
  EXPECT_FALSE(client.get_secret(ns, "x").has_value());
  EXPECT_EQ(standin_.requests().back().user, "bob");
}

// --- Transient failures ---------------------------------------------------------------

TEST_F(KubeClientTest, TooManyRequestsAndServerErrorsAreRetryable) {
  kube_client client(config());
  for (const unsigned status : {429U, 500U, 503U, 504U}) {
    standin_.fail_next(1, status);
    const error e = expect_error([&] { client.get_secret(ns, "x"); });
    EXPECT_EQ(e.kind(), error_kind::unavailable) << status << ": " << e.what();
    EXPECT_TRUE(e.is_retryable()) << status;
    EXPECT_EQ(e.http_status(), static_cast<int>(status));
    expect_clean(e, "get secret \"tenants/x\"");
    if (status == 503) {  // the API's own message is kept
      EXPECT_NE(std::string(e.what()).find("unable to handle the request"), std::string::npos) << e.what();
    }
  }
  test::KubeStandin::Fault plain;
  plain.status = 429;
  plain.plain_text = true;
  standin_.fail_next(plain);
  const error e = expect_error([&] { client.get_secret(ns, "x"); });
  EXPECT_EQ(e.kind(), error_kind::unavailable);
  EXPECT_TRUE(e.is_retryable());
  EXPECT_NE(std::string(e.what()).find("429"), std::string::npos) << e.what();
  // The fault is spent: the same client recovers.
  EXPECT_FALSE(client.get_secret(ns, "x").has_value());
}

TEST_F(KubeClientTest, StalledAnswerHitsTheRequestTimeoutAndIsRetryable) {
  kube_config c = config();
  c.request_timeout = 300ms;
  kube_client client(std::move(c));
  standin_.stall_next(1, 3s);
  const auto started = std::chrono::steady_clock::now();
  const error e = expect_error([&] { client.get_secret(ns, "x"); });
  const auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(e.kind(), error_kind::unavailable) << e.what();
  EXPECT_TRUE(e.is_retryable());
  EXPECT_LT(elapsed, 2500ms);
  expect_clean(e, "get secret \"tenants/x\"");
  EXPECT_FALSE(client.get_secret(ns, "x").has_value());
}

TEST_F(KubeClientTest, RefusedConnectionIsRetryable) {
  kube_config c = config();
  {
    test::KubeStandin gone;
    c.server = gone.url();
    gone.stop();
  }
  kube_client client(std::move(c));
  const error e = expect_error([&] { client.get_secret(ns, "x"); });
  EXPECT_EQ(e.kind(), error_kind::unavailable) << e.what();
  EXPECT_TRUE(e.is_retryable());
  EXPECT_EQ(e.http_status(), 0);
  expect_clean(e, "get secret \"tenants/x\"");
}

// --- TLS ------------------------------------------------------------------------------

TEST_F(KubeClientTest, WrongCaIsANonRetryableTlsError) {
  test::KubeStandin other;
  kube_config c = config();
  c.ca_pem = other.ca_pem();
  kube_client client(std::move(c));
  const error e = expect_error([&] { client.get_secret(ns, "x"); });
  EXPECT_EQ(e.kind(), error_kind::kubernetes) << e.what();
  EXPECT_FALSE(e.is_retryable());
  EXPECT_NE(std::string(e.what()).find("certificate"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("did not verify against the CA"), std::string::npos) << e.what();
  expect_clean(e, "get secret \"tenants/x\"");
  EXPECT_EQ(standin_.request_count(), 0U);  // the token was never sent
}

TEST_F(KubeClientTest, PlainHttpIsRefused) {
  kube_config c = config();
  c.server = "http://127.0.0.1:" + std::to_string(standin_.port());
  const error e = expect_error([&] { kube_client client(std::move(c)); });
  EXPECT_EQ(e.kind(), error_kind::kubernetes);
  EXPECT_NE(std::string(e.what()).find("https://"), std::string::npos) << e.what();
}

// --- kubeconfig -----------------------------------------------------------------------

TEST_F(KubeClientTest, KubeconfigWithTokenAndCaData) {
  const fs::path path =
      write_kubeconfig(kubeconfig_yaml(ca_data_line(), "    token: " + token_ + "\n", "    namespace: tenants\n"));
  const kube_config c = load_kubeconfig(path);
  EXPECT_EQ(c.server, standin_.url());
  EXPECT_EQ(c.ca_pem, standin_.ca_pem());
  EXPECT_EQ(c.token.reveal(), token_);
  EXPECT_TRUE(c.token_file.empty());
  EXPECT_EQ(c.namespace_name, "tenants");
  kube_client client(c);
  EXPECT_FALSE(client.get_secret(ns, "x").has_value());
}

TEST_F(KubeClientTest, KubeconfigTokenFileAndCaPathAreRelativeToIt) {
  fs::create_directories(dir_ / "conf");
  write_file(dir_ / "conf" / "ca.crt", standin_.ca_pem());
  write_file(dir_ / "conf" / "token", token_ + "\n");
  const fs::path path = write_kubeconfig(
      kubeconfig_yaml("    certificate-authority: ca.crt\n", "    tokenFile: token\n"), "conf/kubeconfig");
  const kube_config c = load_kubeconfig(path);
  EXPECT_EQ(c.ca_pem, standin_.ca_pem());
  EXPECT_EQ(c.token_file, dir_ / "conf" / "token");
  EXPECT_EQ(c.namespace_name, "default");
  kube_client client(c);
  EXPECT_FALSE(client.get_secret(ns, "x").has_value());
}

TEST_F(KubeClientTest, KubeconfigPicksTheGivenContext) {
  const fs::path path = write_kubeconfig(kubeconfig_yaml(ca_data_line(), "    token: " + token_ + "\n"));
  const kube_config c = load_kubeconfig(path, "second");
  EXPECT_EQ(c.server, "https://unused.invalid:6443");
  EXPECT_EQ(c.namespace_name, "elsewhere");
}

TEST_F(KubeClientTest, KubeconfigMissingContextIsNamed) {
  const fs::path path = write_kubeconfig(kubeconfig_yaml(ca_data_line(), "    token: " + token_ + "\n"));
  const error e = expect_error([&] { (void)load_kubeconfig(path, "nowhere"); });
  EXPECT_EQ(e.kind(), error_kind::kubernetes);
  EXPECT_EQ(e.key(), "contexts");
  EXPECT_NE(std::string(e.what()).find("\"nowhere\""), std::string::npos) << e.what();
  expect_clean(e, path.string());

  std::string yaml = kubeconfig_yaml(ca_data_line(), "    token: " + token_ + "\n");
  yaml.replace(yaml.find("current-context: main"), 21, "current-context: gone");
  const error e2 = expect_error([&] { (void)load_kubeconfig(write_kubeconfig(yaml, "k2")); });
  EXPECT_NE(std::string(e2.what()).find("\"gone\""), std::string::npos) << e2.what();
  EXPECT_NE(std::string(e2.what()).find("current-context"), std::string::npos) << e2.what();
  expect_clean(e2, "kubeconfig");

  yaml.replace(yaml.find("current-context: gone"), 21, "preferences: {}");
  const error e3 = expect_error([&] { (void)load_kubeconfig(write_kubeconfig(yaml, "k3")); });
  EXPECT_EQ(e3.key(), "current-context");
}

TEST_F(KubeClientTest, KubeconfigInsecureSkipTlsVerifyIsRefused) {
  const fs::path path =
      write_kubeconfig(kubeconfig_yaml("    insecure-skip-tls-verify: true\n", "    token: " + token_ + "\n"));
  const error e = expect_error([&] { (void)load_kubeconfig(path); });
  EXPECT_EQ(e.kind(), error_kind::kubernetes);
  EXPECT_EQ(e.key(), "clusters[name=\"standin\"].cluster.insecure-skip-tls-verify");
  EXPECT_NE(std::string(e.what()).find("always verifies"), std::string::npos) << e.what();
  expect_clean(e, "insecure-skip-tls-verify");
}

TEST_F(KubeClientTest, KubeconfigExecAndAuthProviderAreRefused) {
  const fs::path exec =
      write_kubeconfig(kubeconfig_yaml(ca_data_line(),
                                       "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
                                       "      command: aws\n      args: [eks, get-token]\n"),
                       "exec");
  const error e = expect_error([&] { (void)load_kubeconfig(exec); });
  EXPECT_EQ(e.key(), "users[name=\"tenantdb\"].user.exec");
  EXPECT_NE(std::string(e.what()).find("only token"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("client-certificate"), std::string::npos) << e.what();

  const fs::path provider =
      write_kubeconfig(kubeconfig_yaml(ca_data_line(), "    auth-provider:\n      name: gcp\n"), "provider");
  const error e2 = expect_error([&] { (void)load_kubeconfig(provider); });
  EXPECT_EQ(e2.key(), "users[name=\"tenantdb\"].user.auth-provider");
}

TEST_F(KubeClientTest, KubeconfigBadValuesNameTheirKey) {
  struct bad_case {
    std::string cluster_extra;
    std::string user_body;
    std::string key;
  };
  const std::string token_line = "    token: " + token_ + "\n";
  const std::vector<bad_case> cases = {
      {"    certificate-authority-data: not*base64\n", token_line,
       "clusters[name=\"standin\"].cluster.certificate-authority-data"},
      {"    certificate-authority: missing.crt\n", token_line,
       "clusters[name=\"standin\"].cluster.certificate-authority"},
      {ca_data_line() + "    certificate-authority: ca.crt\n", token_line,
       "clusters[name=\"standin\"].cluster.certificate-authority"},
      {ca_data_line(), "    client-certificate-data: " + b64("cert") + "\n",
       "users[name=\"tenantdb\"].user.client-key"},
      {ca_data_line(), "    tokenFile: no-such-token\n", "users[name=\"tenantdb\"].user.tokenFile"},
      {ca_data_line(), "    username: admin\n    password: hunter2\n", "users[name=\"tenantdb\"].user.username"},
      {ca_data_line(), "    {}\n", "users[name=\"tenantdb\"].user"},
  };
  for (const auto& c : cases) {
    const error e =
        expect_error([&] { (void)load_kubeconfig(write_kubeconfig(kubeconfig_yaml(c.cluster_extra, c.user_body))); });
    EXPECT_EQ(e.kind(), error_kind::kubernetes) << e.what();
    EXPECT_EQ(e.key(), c.key) << e.what();
    expect_clean(e, "kubeconfig");
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
  }

  std::string yaml = kubeconfig_yaml(ca_data_line(), token_line);
  yaml.replace(yaml.find("server: https://127") + 8, 8, "http://");
  const error e = expect_error([&] { (void)load_kubeconfig(write_kubeconfig(yaml)); });
  EXPECT_EQ(e.key(), "clusters[name=\"standin\"].cluster.server") << e.what();

  const error missing = expect_error([&] { (void)load_kubeconfig(dir_ / "nope"); });
  EXPECT_EQ(missing.key(), "--kubeconfig");
  EXPECT_NE(std::string(missing.what()).find((dir_ / "nope").string()), std::string::npos);

  const error not_yaml = expect_error([&] { (void)load_kubeconfig(write_kubeconfig("clusters: [\n  - {")); });
  EXPECT_EQ(not_yaml.key(), "--kubeconfig");
}

// --- In-cluster configuration ---------------------------------------------------------

class InClusterConfigTest : public KubeClientTest {
protected:
  void SetUp() override {
    KubeClientTest::SetUp();
    for (const char* name : {"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"}) {
      if (const char* value = std::getenv(name)) saved_.emplace_back(name, value);
    }
    sa_dir_ = dir_ / "serviceaccount";
    fs::create_directories(sa_dir_);
    write_file(sa_dir_ / "token", token_ + "\n");
    write_file(sa_dir_ / "ca.crt", standin_.ca_pem());
    write_file(sa_dir_ / "namespace", "tenants");
    ::setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
    ::setenv("KUBERNETES_SERVICE_PORT", std::to_string(standin_.port()).c_str(), 1);
  }
  void TearDown() override {
    ::unsetenv("KUBERNETES_SERVICE_HOST");
    ::unsetenv("KUBERNETES_SERVICE_PORT");
    for (const auto& [name, value] : saved_) ::setenv(name.c_str(), value.c_str(), 1);
    KubeClientTest::TearDown();
  }

  fs::path sa_dir_;
  std::vector<std::pair<std::string, std::string>> saved_;
};

TEST_F(InClusterConfigTest, ReadsTheServiceAccountDirectory) {
  const kube_config c = in_cluster_config(sa_dir_);
  EXPECT_EQ(c.server, standin_.url());
  EXPECT_EQ(c.ca_pem, standin_.ca_pem());
  EXPECT_EQ(c.token_file, sa_dir_ / "token");
  EXPECT_TRUE(c.token.empty());  // read before each request instead
  EXPECT_EQ(c.namespace_name, "tenants");
  kube_client client(c);
  client.create_secret(sample("in-cluster"));
  EXPECT_TRUE(client.get_secret(ns, "in-cluster").has_value());
}

TEST_F(InClusterConfigTest, BracketsAnIpv6ServiceHost) {
  ::setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  ::setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  EXPECT_EQ(in_cluster_config(sa_dir_).server, "https://[fd00::1]:443");
}

TEST_F(InClusterConfigTest, EachMissingPieceIsNamed) {
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  error e = expect_error([&] { (void)in_cluster_config(sa_dir_); });
  EXPECT_EQ(e.kind(), error_kind::kubernetes);
  EXPECT_NE(std::string(e.what()).find("not running in a cluster: KUBERNETES_SERVICE_HOST is not set; pass "
                                       "--kubeconfig"),
            std::string::npos)
      << e.what();
  ::setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);

  ::unsetenv("KUBERNETES_SERVICE_PORT");
  e = expect_error([&] { (void)in_cluster_config(sa_dir_); });
  EXPECT_NE(std::string(e.what()).find("KUBERNETES_SERVICE_PORT is not set"), std::string::npos) << e.what();
  ::setenv("KUBERNETES_SERVICE_PORT", "https", 1);
  e = expect_error([&] { (void)in_cluster_config(sa_dir_); });
  EXPECT_EQ(e.key(), "KUBERNETES_SERVICE_PORT");
  ::setenv("KUBERNETES_SERVICE_PORT", std::to_string(standin_.port()).c_str(), 1);

  for (const char* file : {"token", "ca.crt", "namespace"}) {
    const fs::path path = sa_dir_ / file;
    const fs::path aside = dir_ / file;
    fs::rename(path, aside);
    e = expect_error([&] { (void)in_cluster_config(sa_dir_); });
    EXPECT_EQ(e.kind(), error_kind::kubernetes);
    EXPECT_EQ(e.key(), file);
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--kubeconfig"), std::string::npos) << e.what();
    expect_clean(e, "not running in a cluster");
    fs::rename(aside, path);
  }
  EXPECT_NO_THROW((void)in_cluster_config(sa_dir_));
}

}  // namespace
}  // namespace tenantdb
