// The Kubernetes API server stand-in's contract, checked over real HTTPS with libcurl:
// what kube-apiserver answers (codes, Status bodies, messages, watch events) is what the
// stand-in must answer, since other tests trust it to behave like the real server.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <rapidjson/document.h>
#include <rapidjson/pointer.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "eventually.hpp"
#include "kube_standin.hpp"
#include "process.hpp"

namespace tenantdb {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::KubeStandin;
using Clock = std::chrono::steady_clock;

const bool curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;

// --- A minimal libcurl client ------------------------------------------------------

struct Reply {
  CURLcode rc = CURLE_OK;
  long status = 0;
  long connects = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names

  [[nodiscard]] std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? "<absent>" : it->second;
  }
  [[nodiscard]] rapidjson::Document json() const {
    rapidjson::Document d;
    d.Parse(body.data(), body.size());
    EXPECT_FALSE(d.HasParseError()) << body;
    return d;
  }
};

std::string to_json(const rapidjson::Value& v) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  v.Accept(w);
  return buf.GetString();
}

/// The value at a JSON pointer as text: strings bare, anything else as JSON.
std::string at(const rapidjson::Value& doc, const char* pointer) {
  const rapidjson::Value* v = rapidjson::Pointer(pointer).Get(doc);
  if (v == nullptr) return "<absent>";
  if (v->IsString()) return {v->GetString(), v->GetStringLength()};
  return to_json(*v);
}

std::vector<std::string> item_names(const Reply& r) {
  std::vector<std::string> names;
  const auto d = r.json();
  const rapidjson::Value* items = rapidjson::Pointer("/items").Get(d);
  if (items == nullptr || !items->IsArray()) return {"<no items>"};
  for (const auto& item : items->GetArray()) names.push_back(at(item, "/metadata/name"));
  return names;
}

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* out) {
  auto& headers = *static_cast<std::map<std::string, std::string>*>(out);
  std::string line(data, size * n);
  if (line.starts_with("HTTP/")) headers.clear();  // a 100 Continue came first
  if (const auto colon = line.find(':'); colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ')) value.erase(0, 1);
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
    headers[name] = value;
  }
  return size * n;
}

class Client {
public:
  explicit Client(const KubeStandin& s, std::string token = {})
      : base_(s.url()), ca_(s.ca_pem()), token_(std::move(token)), handle_(curl_easy_init()) {}
  ~Client() { curl_easy_cleanup(handle_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  Client& cert(KubeStandin::ClientCert c) {
    cert_ = std::move(c);
    return *this;
  }
  Client& timeout(std::chrono::milliseconds t) {
    timeout_ = t;
    return *this;
  }
  Client& no_expect() {
    no_expect_ = true;
    return *this;
  }

  Reply send(const std::string& method, const std::string& path, const std::string& body = {},
             const std::string& content_type = "application/json") {
    Reply reply;
    curl_easy_reset(handle_);  // keeps the connection cache
    const std::string url = base_ + path;
    curl_easy_setopt(handle_, CURLOPT_URL, url.c_str());
    curl_blob ca{ca_.data(), ca_.size(), CURL_BLOB_COPY};
    curl_easy_setopt(handle_, CURLOPT_CAINFO_BLOB, &ca);
    curl_blob cert{cert_.cert_pem.data(), cert_.cert_pem.size(), CURL_BLOB_COPY};
    curl_blob key{cert_.key_pem.data(), cert_.key_pem.size(), CURL_BLOB_COPY};
    if (!cert_.cert_pem.empty()) {
      curl_easy_setopt(handle_, CURLOPT_SSLCERT_BLOB, &cert);
      curl_easy_setopt(handle_, CURLOPT_SSLCERTTYPE, "PEM");
      curl_easy_setopt(handle_, CURLOPT_SSLKEY_BLOB, &key);
      curl_easy_setopt(handle_, CURLOPT_SSLKEYTYPE, "PEM");
    }
    curl_easy_setopt(handle_, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_.count()));
    if (std::getenv("KUBE_STANDIN_TEST_VERBOSE") != nullptr) curl_easy_setopt(handle_, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt(handle_, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(handle_, CURLOPT_WRITEDATA, &reply.body);
    curl_easy_setopt(handle_, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(handle_, CURLOPT_HEADERDATA, &reply.headers);
    curl_slist* headers = curl_slist_append(nullptr, "Accept: application/json");
    const std::string auth = "Authorization: Bearer " + token_;
    if (!token_.empty()) headers = curl_slist_append(headers, auth.c_str());
    const std::string type = "Content-Type: " + content_type;
    if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
      headers = curl_slist_append(headers, type.c_str());
      if (no_expect_) headers = curl_slist_append(headers, "Expect:");
      curl_easy_setopt(handle_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
      curl_easy_setopt(handle_, CURLOPT_POSTFIELDS, body.data());
    }
    if (method != "GET" && method != "POST") curl_easy_setopt(handle_, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(handle_, CURLOPT_HTTPHEADER, headers);
    reply.rc = curl_easy_perform(handle_);
    curl_easy_getinfo(handle_, CURLINFO_RESPONSE_CODE, &reply.status);
    curl_easy_getinfo(handle_, CURLINFO_NUM_CONNECTS, &reply.connects);
    curl_easy_setopt(handle_, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(nullptr));
    curl_slist_free_all(headers);
    return reply;
  }

  Reply get(const std::string& path) { return send("GET", path); }

private:
  std::string base_, ca_, token_;
  KubeStandin::ClientCert cert_;
  std::chrono::milliseconds timeout_{10'000};
  bool no_expect_ = false;
  CURL* handle_;
};

/// A watch read on its own thread, line by line.
class WatchStream {
public:
  WatchStream(const KubeStandin& s, const std::string& token, const std::string& path)
      : url_(s.url() + path), ca_(s.ca_pem()), auth_("Authorization: Bearer " + token) {
    thread_ = std::thread([this] { run(); });
  }
  ~WatchStream() { stop(); }
  WatchStream(const WatchStream&) = delete;
  WatchStream& operator=(const WatchStream&) = delete;

  /// The next event line, or nullopt after `timeout` or at the end of the stream.
  std::optional<std::string> next(std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [this] { return !lines_.empty() || done_; });
    if (lines_.empty()) return std::nullopt;
    std::string line = std::move(lines_.front());
    lines_.pop_front();
    return line;
  }
  /// Hangs up (within about a second: libcurl's progress callback rate when idle).
  void stop() {
    abort_ = true;
    if (thread_.joinable()) thread_.join();
  }
  /// Waits for the server to end the stream; the transfer's result.
  CURLcode join() {
    if (thread_.joinable()) thread_.join();
    return rc_;
  }
  [[nodiscard]] long status() const { return status_; }

private:
  void run() {
    CURL* h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url_.c_str());
    curl_blob ca{ca_.data(), ca_.size(), CURL_BLOB_COPY};
    curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca);
    curl_slist* headers = curl_slist_append(nullptr, auth_.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(
        h, CURLOPT_WRITEFUNCTION, +[](char* data, std::size_t size, std::size_t n, void* self) {
          static_cast<WatchStream*>(self)->feed(std::string_view(data, size * n));
          return size * n;
        });
    curl_easy_setopt(h, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(
        h, CURLOPT_XFERINFOFUNCTION, +[](void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
          return static_cast<WatchStream*>(self)->abort_.load() ? 1 : 0;
        });
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, this);
    rc_ = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status_);
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    const std::lock_guard lock(mu_);
    done_ = true;
    cv_.notify_all();
  }

  void feed(std::string_view data) {
    const std::lock_guard lock(mu_);
    partial_.append(data);
    for (auto nl = partial_.find('\n'); nl != std::string::npos; nl = partial_.find('\n')) {
      lines_.push_back(partial_.substr(0, nl));
      partial_.erase(0, nl + 1);
    }
    cv_.notify_all();
  }

  std::string url_, ca_, auth_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> lines_;
  std::string partial_;
  bool done_ = false;
  std::atomic<bool> abort_{false};
  CURLcode rc_ = CURLE_OK;
  long status_ = 0;
};

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.data(), text.size());
  EXPECT_FALSE(d.HasParseError()) << text;
  return d;
}

using test::eventually;

std::string secret_json(const std::string& name, const std::string& ns = "ns", const std::string& labels = "{}") {
  return R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":")" + name + R"(","namespace":")" + ns +
         R"(","labels":)" + labels + R"(},"data":{"k":"dg=="}})";
}

class KubeStandinTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_TRUE(curl_ready);
    standin_.add_token(token_, user_);
    standin_.allow_all(user_);
  }

  void TearDown() override {
    // The request log is an audit log: never a token in it.
    for (const auto& r : standin_.requests()) {
      EXPECT_EQ(r.target.find(token_), std::string::npos) << r.target;
      EXPECT_EQ(r.user.find(token_), std::string::npos) << r.user;
    }
  }

  static std::string secrets(const std::string& ns = "ns") { return "/api/v1/namespaces/" + ns + "/secrets"; }
  static std::string leases(const std::string& ns = "ns") {
    return "/apis/coordination.k8s.io/v1/namespaces/" + ns + "/leases";
  }
  std::uint64_t rv_of(const std::string& resource, const std::string& name) const {
    const auto json = standin_.get_object(resource, "ns", name);
    return json ? std::stoull(at(parse(*json), "/metadata/resourceVersion")) : 0;
  }

  KubeStandin standin_;
  const std::string token_ = "tok-9f8e7d6c5b4a39281706f5e4d3c2b1a0";
  const std::string user_ = "system:serviceaccount:ns:admin";
};

// --- Authentication and authorization -------------------------------------------------

TEST_F(KubeStandinTest, MissingUnknownOrRemovedTokenIs401WithAStatusBody) {
  const std::string unauthorized =
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401})";
  Client anonymous(standin_);
  Reply r = anonymous.get(secrets() + "/x");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.body, unauthorized);
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_EQ(Client(standin_, "unknown-token").get(secrets() + "/x").body, unauthorized);

  const std::string rotated = "rotated-0123456789abcdef";
  standin_.add_token(rotated, user_);
  Client client(standin_, rotated);
  EXPECT_EQ(client.get(secrets() + "/x").status, 404);
  standin_.remove_token(rotated);
  r = client.get(secrets() + "/x");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.body, unauthorized);

  const auto log = standin_.requests();
  ASSERT_EQ(log.size(), 4U);
  EXPECT_EQ(log[0].status, 401U);
  EXPECT_EQ(log[0].user, "");
  EXPECT_EQ(log[2].user, user_);
  EXPECT_EQ(log[3].method, "GET");
  EXPECT_EQ(log[3].target, secrets() + "/x");
  for (const auto& rec : log) EXPECT_EQ(rec.target.find(rotated), std::string::npos);
}

TEST_F(KubeStandinTest, ForbiddenUsesKubeApiserversMessages) {
  standin_.add_token("limited-token", "u");
  standin_.allow("u", "get", "other", "secrets");
  Client c(standin_, "limited-token");
  Reply r = c.get("/api/v1/namespaces/ns/secrets/x");
  EXPECT_EQ(r.status, 403);
  auto d = r.json();
  EXPECT_EQ(
      at(d, "/message"),
      R"(secrets "x" is forbidden: User "u" cannot get resource "secrets" in API group "" in the namespace "ns")");
  EXPECT_EQ(at(d, "/reason"), "Forbidden");
  EXPECT_EQ(at(d, "/details"), R"({"name":"x","kind":"secrets"})");
  EXPECT_EQ(at(d, "/code"), "403");
  EXPECT_EQ(at(d, "/status"), "Failure");

  EXPECT_EQ(at(c.get(secrets()).json(), "/message"),
            R"(secrets is forbidden: User "u" cannot list resource "secrets" in API group "" in the namespace "ns")");
  d = c.get("/apis/coordination.k8s.io/v1/leases?watch=1").json();
  EXPECT_EQ(
      at(d, "/message"),
      R"(leases.coordination.k8s.io is forbidden: User "u" cannot watch resource "leases" in API group "coordination.k8s.io" at the cluster scope)");
  EXPECT_EQ(at(d, "/details"), R"({"group":"coordination.k8s.io","kind":"leases"})");
  EXPECT_EQ(
      at(c.send("DELETE", secrets() + "/x").json(), "/message"),
      R"(secrets "x" is forbidden: User "u" cannot delete resource "secrets" in API group "" in the namespace "ns")");
  d = c.get("/metrics").json();
  EXPECT_EQ(at(d, "/message"), R"(forbidden: User "u" cannot get path "/metrics")");
  EXPECT_EQ(at(d, "/details"), "{}");

  EXPECT_EQ(c.get("/api/v1/namespaces/other/secrets/x").status, 404);  // what the rule grants
  r = c.get("/healthz");                                               // public, as with system:public-info-viewer
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok");
}

TEST_F(KubeStandinTest, NamedRulesWorkLikeRbacResourceNames) {
  standin_.add_token("named-token", "n");
  standin_.allow("n", "*", "ns", "secrets", "a");
  standin_.put_object(secret_json("a"));
  standin_.put_object(secret_json("b"));
  Client c(standin_, "named-token");
  EXPECT_EQ(c.get(secrets() + "/a").status, 200);
  EXPECT_EQ(c.get(secrets() + "/b").status, 403);
  EXPECT_EQ(c.get(secrets()).status, 403);  // list without a name selector
  Reply r = c.get(secrets() + "?fieldSelector=metadata.name%3Da");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(item_names(r), std::vector<std::string>{"a"});
  EXPECT_EQ(c.get(secrets() + "?fieldSelector=metadata.name%3Db").status, 403);
  r = c.send("POST", secrets(), secret_json("a"));
  EXPECT_EQ(r.status, 403);  // create never matches a named rule
  EXPECT_EQ(at(r.json(), "/message"),
            R"(secrets is forbidden: User "n" cannot create resource "secrets" in API group "" in the namespace "ns")");
  EXPECT_EQ(c.send("PUT", secrets() + "/a", secret_json("a")).status, 200);
  standin_.revoke("n");
  EXPECT_EQ(c.get(secrets() + "/a").status, 403);
  EXPECT_THROW(standin_.allow("n", "read", "ns", "secrets"), std::invalid_argument);
}

TEST_F(KubeStandinTest, ClientCertificatesAuthenticateAsCommonNameAndGroups) {
  const auto alice = standin_.issue_client_cert("alice", {"system:masters"});
  EXPECT_NE(alice.cert_pem.find("-----BEGIN CERTIFICATE-----"), std::string::npos);
  EXPECT_NE(alice.key_pem.find("-----BEGIN PRIVATE KEY-----"), std::string::npos);  // PKCS#8
  Client as_alice(standin_);
  as_alice.cert(alice);
  EXPECT_EQ(as_alice.send("POST", secrets(), secret_json("by-cert")).status, 201);
  EXPECT_EQ(standin_.requests().back().user, "alice");

  Client as_bob(standin_, "not-a-token");  // the certificate is tried first
  as_bob.cert(standin_.issue_client_cert("bob", {"devs", "ops"}));
  Reply r = as_bob.get(secrets() + "/by-cert");
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(at(r.json(), "/message").find(R"(User "bob" cannot get)"), std::string::npos) << r.body;
  standin_.allow("bob", "get", "ns", "secrets");
  EXPECT_EQ(as_bob.get(secrets() + "/by-cert").status, 200);

  KubeStandin other;
  Client mallory(standin_);
  mallory.cert(other.issue_client_cert("mallory", {"system:masters"}));
  r = mallory.get(secrets() + "/by-cert");
  EXPECT_EQ(r.status, 401) << "a certificate from another CA must not authenticate";

  KubeStandin::Options strict_options;
  strict_options.require_client_cert = true;
  KubeStandin strict(strict_options);
  r = Client(strict).get(secrets() + "/x");
  EXPECT_NE(r.rc, CURLE_OK);
  EXPECT_EQ(r.status, 0);
  Client with_cert(strict);
  with_cert.cert(strict.issue_client_cert("carol", {"system:masters"}));
  EXPECT_EQ(with_cert.get(secrets() + "/x").status, 404);
  EXPECT_EQ(strict.request_count(), 1U);
}

// --- Create, read, update, patch, delete -----------------------------------------------

TEST_F(KubeStandinTest, CreateAnswers201WithServerFieldsThenAlreadyExists) {
  Client c(standin_, token_);
  Reply r = c.send(
      "POST", secrets(),
      R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s1","labels":{"app":"x"}},"data":{"k":"dmFsdWU="}})");
  ASSERT_EQ(r.status, 201) << r.body;
  const auto d = r.json();
  EXPECT_EQ(at(d, "/kind"), "Secret");
  EXPECT_EQ(at(d, "/apiVersion"), "v1");
  EXPECT_EQ(at(d, "/metadata/namespace"), "ns");
  EXPECT_TRUE(std::regex_match(at(d, "/metadata/uid"),
                               std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")))
      << at(d, "/metadata/uid");
  EXPECT_TRUE(std::regex_match(at(d, "/metadata/creationTimestamp"), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")));
  EXPECT_EQ(at(d, "/metadata/resourceVersion"), std::to_string(standin_.resource_version()));
  EXPECT_EQ(at(d, "/type"), "Opaque");
  EXPECT_EQ(standin_.secret_value("ns", "s1", "k"), "value");
  EXPECT_EQ(c.get(secrets() + "/s1").body, r.body);

  r = c.send("POST", secrets(), secret_json("s1"));
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(
      r.body,
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"secrets \"s1\" already exists","reason":"AlreadyExists","details":{"name":"s1","kind":"secrets"},"code":409})");

  r = c.send("POST", secrets(), R"({"metadata":{"generateName":"gen-"},"stringData":{"a":"b"}})");
  EXPECT_EQ(r.status, 201);
  EXPECT_TRUE(std::regex_match(at(r.json(), "/metadata/name"), std::regex("gen-[b-z2-9]{5}"))) << r.body;

  r = c.send("POST", secrets(), R"({"metadata":{"name":"with-rv","resourceVersion":"5"}})");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(at(r.json(), "/message"), "resourceVersion should not be set on objects to be created");
}

TEST_F(KubeStandinTest, PutIsConditionalOnResourceVersionAndUnconditionalWithoutIt) {
  Client c(standin_, token_);
  const auto created = c.send("POST", secrets(), secret_json("s")).json();
  const std::string rv1 = at(created, "/metadata/resourceVersion");
  const auto put = [&](const std::string& rv, const std::string& value) {
    const std::string meta = rv.empty() ? R"({"name":"s"})" : R"({"name":"s","resourceVersion":")" + rv + R"("})";
    return c.send("PUT", secrets() + "/s",
                  R"({"kind":"Secret","apiVersion":"v1","metadata":)" + meta + R"(,"data":{"k":")" + value + R"("}})");
  };
  Reply r = put(rv1, "b25l");
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string rv2 = at(r.json(), "/metadata/resourceVersion");
  EXPECT_GT(std::stoull(rv2), std::stoull(rv1));
  EXPECT_EQ(at(r.json(), "/metadata/uid"), at(created, "/metadata/uid"));
  EXPECT_EQ(at(r.json(), "/metadata/creationTimestamp"), at(created, "/metadata/creationTimestamp"));

  r = put(rv1, "c3RhbGU=");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(
      r.body,
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be fulfilled on secrets \"s\": the object has been modified; please apply your changes to the latest version and try again","reason":"Conflict","details":{"name":"s","kind":"secrets"},"code":409})");
  EXPECT_EQ(standin_.secret_value("ns", "s", "k"), "one");

  r = put("", "dHdv");
  EXPECT_EQ(r.status, 200);
  const std::string rv3 = at(r.json(), "/metadata/resourceVersion");
  EXPECT_GT(std::stoull(rv3), std::stoull(rv2));
  r = put("", "dHdv");  // no change: no new resourceVersion, like the real store
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(at(r.json(), "/metadata/resourceVersion"), rv3);

  EXPECT_EQ(c.send("PUT", secrets() + "/missing", secret_json("missing")).status, 404);
  r = c.send("PUT", secrets() + "/s", secret_json("other"));
  EXPECT_EQ(at(r.json(), "/message"), "the name of the object (other) does not match the name on the URL (s)");
  r = c.send("PUT", secrets() + "/s", secret_json("s", "elsewhere"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(at(r.json(), "/message"),
            "the namespace of the object (elsewhere) does not match the namespace on the URL (ns)");
}

TEST_F(KubeStandinTest, MergePatchFollowsRfc7386WithResourceVersionAsPrecondition) {
  Client c(standin_, token_);
  const auto created =
      c.send("POST", secrets(), R"({"metadata":{"name":"p","labels":{"x":"1"}},"data":{"a":"YQ==","b":"Yg=="}})")
          .json();
  const std::string rv = at(created, "/metadata/resourceVersion");
  const auto patch = [&](const std::string& body, const std::string& type = "application/merge-patch+json") {
    return c.send("PATCH", secrets() + "/p", body, type);
  };
  Reply r = patch(R"({"data":{"a":null,"c":"Yw=="},"metadata":{"labels":{"y":"2"}},"stringData":{"d":"D"}})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto d = r.json();
  EXPECT_EQ(at(d, "/data"), R"({"b":"Yg==","c":"Yw==","d":"RA=="})");
  EXPECT_EQ(at(d, "/metadata/labels"), R"({"x":"1","y":"2"})");
  EXPECT_EQ(at(d, "/stringData"), "<absent>");

  r = patch(R"({"metadata":{"resourceVersion":")" + rv + R"("},"data":{"e":"ZQ=="}})");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(at(r.json(), "/reason"), "Conflict");
  r = patch(R"({"metadata":{"resourceVersion":")" + at(d, "/metadata/resourceVersion") + R"("},"data":{"e":"ZQ=="}})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(standin_.secret_value("ns", "p", "e"), "e");

  r = patch(R"([{"op":"remove","path":"/data/b"}])", "application/json-patch+json");
  EXPECT_EQ(r.status, 415);
  EXPECT_EQ(at(r.json(), "/reason"), "UnsupportedMediaType");
  EXPECT_EQ(patch("{not json").status, 400);
  EXPECT_EQ(c.send("PATCH", secrets() + "/absent", "{}", "application/merge-patch+json").status, 404);
  r = patch(R"({"metadata":{"name":"renamed"}})");
  EXPECT_EQ(r.status, 400);
}

TEST_F(KubeStandinTest, DeleteAnswersSuccessStatusAndHonoursPreconditions) {
  Client c(standin_, token_);
  const auto created = c.send("POST", secrets(), secret_json("d")).json();
  const std::string uid = at(created, "/metadata/uid");
  const std::string rv = at(created, "/metadata/resourceVersion");
  Reply r = c.send("DELETE", secrets() + "/d", R"({"preconditions":{"resourceVersion":"999"}})");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(at(r.json(), "/message"),
            "Operation cannot be fulfilled on secrets \"d\": Precondition failed: "
            "ResourceVersion in precondition: 999, ResourceVersion in object meta: " +
                rv);
  r = c.send("DELETE", secrets() + "/d", R"({"preconditions":{"uid":"nope"}})");
  EXPECT_EQ(r.status, 409);
  r = c.send("DELETE", secrets() + "/d");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(
      r.body,
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","details":{"name":"d","kind":"secrets","uid":")" +
          uid + R"("}})");
  EXPECT_EQ(c.get(secrets() + "/d").status, 404);
  r = c.send("DELETE", secrets() + "/d");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(at(r.json(), "/message"), R"(secrets "d" not found)");
}

TEST_F(KubeStandinTest, StringDataIsMergedIntoDataAndDropped) {
  Client c(standin_, token_);
  Reply r = c.send("POST", secrets(),
                   R"({"metadata":{"name":"sd"},"data":{"a":"YQ==","b":"Yg=="},"stringData":{"b":"B","c":"C"}})");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(at(r.json(), "/data"), R"({"a":"YQ==","b":"Qg==","c":"Qw=="})");
  EXPECT_EQ(at(r.json(), "/stringData"), "<absent>");
  EXPECT_EQ(standin_.secret_value("ns", "sd", "b"), "B");
}

// --- Validation ---------------------------------------------------------------------------

TEST_F(KubeStandinTest, BodiesAreDecodedAndValidatedLikeTheApiserver) {
  Client c(standin_, token_);
  // kube-apiserver rejects bad base64 while decoding (400), not in validation.
  Reply r = c.send("POST", secrets(), R"({"metadata":{"name":"b64"},"data":{"k":"not*base64"}})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(at(r.json(), "/message"),
            R"(Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 3)");
  EXPECT_EQ(at(r.json(), "/reason"), "BadRequest");

  r = c.send("POST", secrets(), R"({"metadata":{"name":"Bad_Name"}})");
  EXPECT_EQ(r.status, 422);
  auto d = r.json();
  EXPECT_EQ(
      at(d, "/message"),
      "Secret \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain "
      "must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an "
      "alphanumeric character (e.g. 'example.com', regex used for validation is "
      "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')");
  EXPECT_EQ(at(d, "/reason"), "Invalid");
  EXPECT_EQ(at(d, "/details/kind"), "Secret");
  EXPECT_EQ(at(d, "/details/causes/0/reason"), "FieldValueInvalid");
  EXPECT_EQ(at(d, "/details/causes/0/field"), "metadata.name");

  r = c.send("POST", secrets(), R"({"metadata":{"name":"keys"},"data":{"not a valid key!":"eA=="}})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(at(r.json(), "/details/causes/0/field"), "data[not a valid key!]");
  EXPECT_NE(at(r.json(), "/message").find("a valid config key must consist of alphanumeric characters"),
            std::string::npos);

  r = c.send("POST", secrets(), R"({"metadata":{"name":"x","namespace":"elsewhere"}})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(at(r.json(), "/message"),
            "the namespace of the provided object does not match the namespace sent on the request");

  r = c.send("POST", secrets(), R"({"metadata":{"name":"x",}})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(at(r.json(), "/message")
                .rfind("the object provided is unrecognized (must be of type Secret): couldn't get "
                       "version/kind; json parse error: ",
                       0),
            0U)
      << r.body;
  EXPECT_EQ(c.send("POST", secrets(), R"({"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"x"}})").status, 400);
  EXPECT_EQ(c.send("POST", secrets(), R"({"metadata":{"name":"x","labels":{"a":1}}})").status, 400);
  EXPECT_EQ(c.send("POST", secrets(), "name: x", "application/yaml").status, 415);

  std::string big(1024 * 1024 + 1, 'x');
  r = c.send("POST", secrets(), R"({"metadata":{"name":"big"},"stringData":{"k":")" + big + R"("}})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(at(r.json(), "/message"), "Secret \"big\" is invalid: data: Too long: must have at most 1048576 bytes");

  r = c.send("POST", secrets(), R"({"metadata":{"name":"unknown","bogus":1},"extra":true})");
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.header("warning"), R"(299 - "unknown field \"extra\"")");  // the last of two warnings
  EXPECT_EQ(standin_.request_count("POST", "/secrets"), 10U);
}

TEST_F(KubeStandinTest, BodyOverTheLimitIs413) {
  KubeStandin::Options options;
  options.max_body_bytes = 1024;
  KubeStandin small(options);
  small.add_token(token_, user_);
  small.allow_all(user_);
  Client c(small, token_);
  c.no_expect();
  Reply r = c.send("POST", secrets(),
                   R"({"metadata":{"name":"x"},"stringData":{"k":")" + std::string(64 * 1024, 'x') + "\"}}");
  EXPECT_EQ(r.rc, CURLE_OK) << curl_easy_strerror(r.rc);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(
      r.body,
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Request entity too large: limit is 1024","reason":"RequestEntityTooLarge","code":413})");
  EXPECT_EQ(c.get(secrets() + "/x").status, 404);  // a new connection serves on
  // Unauthenticated senders are refused before their body matters.
  EXPECT_EQ(Client(small).send("POST", secrets(), std::string(4096, ' ')).status, 401);

  // The default limit (3 MiB, kube-apiserver's) with libcurl's own Expect: 100-continue.
  Client d(standin_, token_);
  r = d.send("POST", secrets(), R"({"metadata":{"name":"x"},"stringData":{"k":")" + std::string(4 << 20, 'x') + "\"}}");
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(at(r.json(), "/message"), "Request entity too large: limit is 3145728");
}

// --- Injected faults ----------------------------------------------------------------------

TEST_F(KubeStandinTest, FailNextAnswersLikeTheApiserverAfterAuthentication) {
  Client c(standin_, token_);
  standin_.fail_next(1, 429, "/secrets/x", 2);
  EXPECT_EQ(Client(standin_).get(secrets() + "/x").status, 401);  // not consumed before authentication
  EXPECT_EQ(c.get(secrets() + "/y").status, 404);                 // filtered out
  Reply r = c.get(secrets() + "/x");
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.header("retry-after"), "2");
  EXPECT_EQ(
      r.body,
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Too many requests, please try again later.","reason":"TooManyRequests","details":{"retryAfterSeconds":2},"code":429})");
  EXPECT_EQ(c.get(secrets() + "/x").status, 404);  // spent

  KubeStandin::Fault plain;
  plain.status = 429;
  plain.plain_text = true;
  plain.method_filter = "POST";
  plain.retry_after_seconds = 1;
  standin_.fail_next(plain);
  EXPECT_EQ(c.get(secrets() + "/x").status, 404);
  r = c.send("POST", secrets(), secret_json("x"));
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.header("content-type"), "text/plain; charset=utf-8");
  EXPECT_EQ(r.header("retry-after"), "1");
  EXPECT_EQ(r.body, "Too many requests, please try again later.\n");
  EXPECT_FALSE(standin_.get_object("secrets", "ns", "x").has_value());

  standin_.fail_next(2, 503);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(at(c.get(secrets()).json(), "/reason"), "ServiceUnavailable");
  standin_.fail_next(1, 500);
  EXPECT_EQ(at(c.get(secrets()).json(), "/message"), "Internal error occurred: injected fault");
  standin_.fail_next(1, 504);
  EXPECT_EQ(at(c.get(secrets()).json(), "/reason"), "Timeout");
  EXPECT_EQ(c.get(secrets()).status, 200);
  standin_.fail_next(5, 500);
  standin_.stall_next(5, 10s);
  standin_.conflict_next(5);
  standin_.clear_faults();
  EXPECT_EQ(c.get(secrets()).status, 200);
}

TEST_F(KubeStandinTest, StallHoldsTheAnswerAfterTheWriteWithoutBlockingOthers) {
  Client slow(standin_, token_);
  slow.timeout(300ms);
  standin_.stall_next(1, 1500ms, "/secrets");
  const auto started = Clock::now();
  Reply r = slow.send("POST", secrets(), secret_json("stalled"));
  EXPECT_EQ(r.rc, CURLE_OPERATION_TIMEDOUT);
  EXPECT_LT(Clock::now() - started, 1200ms);
  EXPECT_TRUE(standin_.get_object("secrets", "ns", "stalled").has_value()) << "the write happened";
  EXPECT_EQ(standin_.requests().back().status, 201U);

  standin_.stall_next(1, 1s, "/secrets/held");
  std::thread held([&] {
    Client c(standin_, token_);
    const auto t0 = Clock::now();
    EXPECT_EQ(c.get(secrets() + "/held").status, 404);
    EXPECT_GE(Clock::now() - t0, 950ms);
  });
  std::this_thread::sleep_for(100ms);
  Client fast(standin_, token_);
  const auto t1 = Clock::now();
  EXPECT_EQ(fast.get(secrets() + "/stalled").status, 200);
  EXPECT_LT(Clock::now() - t1, 500ms) << "a stall must not block the server";
  held.join();
}

TEST_F(KubeStandinTest, ConflictNextActsAsARacingWriter) {
  Client c(standin_, token_);
  const std::string rv = at(c.send("POST", secrets(), secret_json("race")).json(), "/metadata/resourceVersion");
  standin_.conflict_next(1, "/secrets/race");
  EXPECT_EQ(c.get(secrets() + "/race").status, 200);  // reads do not trigger it
  EXPECT_EQ(rv_of("secrets", "race"), std::stoull(rv));
  const std::string body = R"({"metadata":{"name":"race","resourceVersion":")" + rv + R"("},"data":{"k":"bWluZQ=="}})";
  Reply r = c.send("PUT", secrets() + "/race", body);
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(rv_of("secrets", "race"), std::stoull(rv) + 1);
  EXPECT_EQ(standin_.secret_value("ns", "race", "k"), "v");

  standin_.conflict_next(1, "/secrets/race");
  r = c.send("PUT", secrets() + "/race", R"({"metadata":{"name":"race"},"data":{"k":"bWluZQ=="}})");
  EXPECT_EQ(r.status, 200) << "an unconditional update wins against the racer";
  EXPECT_EQ(standin_.secret_value("ns", "race", "k"), "mine");

  const std::string current = std::to_string(rv_of("secrets", "race"));
  standin_.conflict_next(1);
  r = c.send("PATCH", secrets() + "/race", R"({"metadata":{"resourceVersion":")" + current + R"("}})",
             "application/merge-patch+json");
  EXPECT_EQ(r.status, 409);
}

// --- Lists and watches ----------------------------------------------------------------

TEST_F(KubeStandinTest, ListFiltersWithFieldAndLabelSelectors) {
  standin_.put_object(secret_json("a", "ns", R"({"app":"x","tier":"db"})"));
  standin_.put_object(secret_json("b", "ns", R"({"app":"y"})"));
  standin_.put_object(secret_json("c"));
  standin_.put_object(secret_json("d", "other", R"({"app":"x"})"));
  Client c(standin_, token_);
  Reply r = c.get(secrets());
  ASSERT_EQ(r.status, 200);
  auto d = r.json();
  EXPECT_EQ(at(d, "/kind"), "SecretList");
  EXPECT_EQ(at(d, "/metadata/resourceVersion"), std::to_string(standin_.resource_version()));
  EXPECT_EQ(at(d, "/items/0/kind"), "<absent>");  // list items carry no kind/apiVersion
  EXPECT_EQ(at(d, "/items/0/metadata/name"), "a");
  using names = std::vector<std::string>;
  const auto list = [&](const std::string& query) { return item_names(c.get(secrets() + "?" + query)); };
  EXPECT_EQ(list("labelSelector=app%3Dx"), names{"a"});
  EXPECT_EQ(list("labelSelector=app%21%3Dx"), (names{"b", "c"}));
  EXPECT_EQ(list("labelSelector=app"), (names{"a", "b"}));
  EXPECT_EQ(list("labelSelector=%21app"), names{"c"});
  EXPECT_EQ(list("labelSelector=app+in+(x,y)"), (names{"a", "b"}));
  EXPECT_EQ(list("labelSelector=app+notin+(x)"), (names{"b", "c"}));
  EXPECT_EQ(list("labelSelector=app%3D%3Dx,tier%3Ddb"), names{"a"});
  EXPECT_EQ(list("fieldSelector=metadata.name%3Db"), names{"b"});
  EXPECT_EQ(list("fieldSelector=metadata.name!%3Db"), (names{"a", "c"}));
  EXPECT_EQ(list("fieldSelector=type%3DOpaque&labelSelector=tier"), names{"a"});
  EXPECT_EQ(item_names(c.get("/api/v1/secrets")), (names{"a", "b", "c", "d"}));
  r = c.get(secrets() + "?fieldSelector=spec.foo%3D1");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(at(r.json(), "/message"), "field label not supported: spec.foo");
  r = c.get(leases() + "?fieldSelector=type%3Dx");
  EXPECT_EQ(at(r.json(), "/message"),
            R"("type" is not a known field selector: only "metadata.name", "metadata.namespace")");
  EXPECT_EQ(c.get(secrets() + "?labelSelector=app+in+(x").status, 400);
  r = c.get(leases());
  EXPECT_EQ(r.body, R"({"kind":"LeaseList","apiVersion":"coordination.k8s.io/v1","metadata":{"resourceVersion":")" +
                        std::to_string(standin_.resource_version()) + R"("},"items":[]})");
}

TEST_F(KubeStandinTest, WatchStreamsAddedModifiedDeletedInResourceVersionOrder) {
  Client c(standin_, token_);
  c.send("POST", secrets(), secret_json("w0"));
  const std::string from = std::to_string(standin_.resource_version());
  WatchStream all(standin_, token_, secrets() + "?watch=true");  // current state first
  WatchStream since(standin_, token_, secrets() + "?watch=1&resourceVersion=" + from);
  ASSERT_TRUE(eventually([&] { return standin_.active_watches() == 2; }, 3s));
  EXPECT_EQ(c.send("POST", secrets(), secret_json("w1")).status, 201);
  EXPECT_EQ(c.send("PATCH", secrets() + "/w1", R"({"data":{"k":"dHdv"}})", "application/merge-patch+json").status, 200);
  EXPECT_EQ(c.send("DELETE", secrets() + "/w1").status, 200);

  auto line = all.next();
  ASSERT_TRUE(line);
  EXPECT_EQ(at(parse(*line), "/type"), "ADDED");
  EXPECT_EQ(at(parse(*line), "/object/metadata/name"), "w0");
  std::uint64_t last = std::stoull(from);
  for (const char* type : {"ADDED", "MODIFIED", "DELETED"}) {
    for (WatchStream* w : {&all, &since}) {
      line = w->next();
      ASSERT_TRUE(line) << type;
      const auto event = parse(*line);
      EXPECT_EQ(at(event, "/type"), type);
      EXPECT_EQ(at(event, "/object/kind"), "Secret");
      EXPECT_EQ(at(event, "/object/metadata/name"), "w1");
      const auto rv = std::stoull(at(event, "/object/metadata/resourceVersion"));
      if (w == &all) {
        EXPECT_GT(rv, last);
        last = rv;
      }
    }
  }
  EXPECT_EQ(last, standin_.resource_version()) << "DELETED carries the deletion's resourceVersion";
  EXPECT_EQ(standin_.requests().back().status, 200U);
  all.stop();
  since.stop();
  EXPECT_TRUE(eventually([&] { return standin_.active_watches() == 0; }, 3s)) << "hung-up watches are noticed";
}

TEST_F(KubeStandinTest, WatchEndsAfterTimeoutSecondsAndKeepsTheConnection) {
  const auto started = Clock::now();
  WatchStream w(standin_, token_, secrets() + "?watch=1&timeoutSeconds=1");
  EXPECT_EQ(w.join(), CURLE_OK);
  EXPECT_EQ(w.status(), 200);
  const auto elapsed = Clock::now() - started;
  EXPECT_GE(elapsed, 900ms);
  EXPECT_LT(elapsed, 3s);
  EXPECT_EQ(standin_.active_watches(), 0U);
}

TEST_F(KubeStandinTest, WatchFromAnEvictedResourceVersionGets410Expired) {
  KubeStandin::Options options;
  options.watch_history = 2;
  KubeStandin s(options);
  s.add_token(token_, user_);
  s.allow_all(user_);
  for (const char* name : {"e1", "e2", "e3", "e4"}) s.put_object(secret_json(name));
  WatchStream old(s, token_, secrets() + "?watch=1&resourceVersion=1");
  const auto line = old.next();
  ASSERT_TRUE(line);
  EXPECT_EQ(
      *line,
      R"j({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (2)","reason":"Expired","code":410}})j");
  EXPECT_EQ(old.join(), CURLE_OK);
  EXPECT_EQ(old.status(), 200);

  WatchStream recent(s, token_, secrets() + "?watch=1&resourceVersion=2");
  for (const char* name : {"e3", "e4"}) {
    const auto event = recent.next();
    ASSERT_TRUE(event);
    EXPECT_EQ(at(parse(*event), "/object/metadata/name"), name);
  }
}

TEST_F(KubeStandinTest, WatchSendsBookmarksAndSelectorTransitions) {
  KubeStandin::Options options;
  options.bookmark_interval = 200ms;
  KubeStandin s(options);
  s.add_token(token_, user_);
  s.allow_all(user_);
  s.put_object(secret_json("m", "ns", R"({"app":"y"})"));
  WatchStream w(s, token_,
                secrets() + "?watch=1&allowWatchBookmarks=true&labelSelector=app%3Dx&resourceVersion=" +
                    std::to_string(s.resource_version()));
  auto line = w.next();
  ASSERT_TRUE(line);
  auto event = parse(*line);
  EXPECT_EQ(at(event, "/type"), "BOOKMARK");
  EXPECT_EQ(at(event, "/object"), R"({"kind":"Secret","apiVersion":"v1","metadata":{"resourceVersion":")" +
                                      std::to_string(s.resource_version()) + R"(","creationTimestamp":null}})");
  std::vector<std::string> types;
  s.put_object(secret_json("m", "ns", R"({"app":"x"})"));  // enters the selector
  s.put_object(secret_json("m", "ns", R"({"app":"z"})"));  // leaves it
  s.put_object(secret_json("other", "ns", R"({"app":"z"})"));
  while (types.size() < 2) {
    line = w.next();
    ASSERT_TRUE(line);
    event = parse(*line);
    if (at(event, "/type") == "BOOKMARK") continue;
    types.push_back(at(event, "/type"));
    EXPECT_EQ(at(event, "/object/metadata/name"), "m");
  }
  EXPECT_EQ(types, (std::vector<std::string>{"ADDED", "DELETED"}));
}

TEST_F(KubeStandinTest, StopEndsWatchesWithTheTerminatingChunkAndIsIdempotent) {
  auto s = std::make_unique<KubeStandin>();
  s->add_token(token_, user_);
  s->allow_all(user_);
  WatchStream w(*s, token_, secrets() + "?watch=1");
  ASSERT_TRUE(eventually([&] { return s->active_watches() == 1; }, 3s));
  s->stop();
  EXPECT_EQ(w.join(), CURLE_OK);
  s->stop();
  EXPECT_EQ(s->request_count("GET", "watch=1"), 1U);
  EXPECT_NE(Client(*s, token_).get(secrets()).rc, CURLE_OK);
  s.reset();
}

// --- Leases, namespaces, paths ----------------------------------------------------------

TEST_F(KubeStandinTest, LeasesUseMicroTimeAndCreateOnUpdate) {
  Client c(standin_, token_);
  Reply r =
      c.send("POST", leases(),
             R"({"metadata":{"name":"l"},"spec":{"holderIdentity":"a","renewTime":"2024-05-01T12:00:00.5+02:00"}})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(
      at(r.json(), "/message"),
      R"(Lease in version "v1" cannot be handled as a Lease: parsing time "2024-05-01T12:00:00.5+02:00" as "2006-01-02T15:04:05.000000Z07:00": cannot parse ".5+02:00" as ".000000")");
  r = c.send(
      "POST", leases(),
      R"({"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"l"},"spec":{"holderIdentity":"a","leaseDurationSeconds":15,"renewTime":"2024-05-01T12:00:00.500000+02:00"}})");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(at(r.json(), "/spec/renewTime"), "2024-05-01T10:00:00.500000Z");
  EXPECT_EQ(at(r.json(), "/apiVersion"), "coordination.k8s.io/v1");

  r = c.send("POST", leases(), R"({"metadata":{"name":"l2"},"spec":{"leaseDurationSeconds":0}})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(
      at(r.json(), "/message"),
      R"(Lease.coordination.k8s.io "l2" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0)");
  EXPECT_EQ(at(r.json(), "/details/group"), "coordination.k8s.io");

  r = c.send("PUT", leases() + "/l3", R"({"metadata":{"name":"l3"},"spec":{"holderIdentity":"b"}})");
  EXPECT_EQ(r.status, 201) << "Leases allow create-on-update";
  r = c.get(leases() + "/nope");
  EXPECT_EQ(
      r.body,
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"leases.coordination.k8s.io \"nope\" not found","reason":"NotFound","details":{"name":"nope","group":"coordination.k8s.io","kind":"leases"},"code":404})");
}

// core/v1 Events as kube-apiserver serves them to tenantdb: created (a generated name),
// read and listed; refused with 422 when the involved object is in another namespace or
// a "new" Event (eventTime set) lacks its reporter fields or exceeds the length limits
// (pkg/apis/core/validation/events.go); 403 through the same RBAC as Secrets.
TEST_F(KubeStandinTest, EventsAreValidatedAndAuthorizedLikeCoreV1) {
  const std::string events = "/api/v1/namespaces/ns/events";
  const auto event = [](const std::string& meta, const std::string& involved_ns, const std::string& extra = {}) {
    return R"({"apiVersion":"v1","kind":"Event","metadata":)" + meta +
           R"(,"involvedObject":{"apiVersion":"v1","kind":"Pod","name":"pod-a","namespace":")" + involved_ns +
           R"("},"reason":"Provisioned","message":"database ready","type":"Normal","source":{"component":"tenantdb-init"},"count":1)" +
           extra + "}";
  };
  Client c(standin_, token_);
  Reply r = c.send("POST", events, event(R"({"generateName":"pod-a."})", "ns"));
  ASSERT_EQ(r.status, 201) << r.body;
  auto d = r.json();
  const std::string name = at(d, "/metadata/name");
  EXPECT_TRUE(name.starts_with("pod-a.") && name.size() > 6) << name;
  EXPECT_EQ(at(d, "/metadata/namespace"), "ns");
  EXPECT_EQ(at(d, "/involvedObject/name"), "pod-a");
  EXPECT_EQ(at(d, "/source/component"), "tenantdb-init");
  EXPECT_NE(at(d, "/metadata/uid"), "<absent>");
  EXPECT_EQ(c.get(events + "/" + name).status, 200);
  r = c.get(events);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(at(r.json(), "/kind"), "EventList");
  EXPECT_EQ(item_names(r), std::vector<std::string>{name});
  ASSERT_TRUE(standin_.get_object("events", "ns", name));

  // The involved object must be in the Event's namespace.
  r = c.send("POST", events, event(R"({"name":"e1"})", "other"));
  EXPECT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(
      at(r.json(), "/message"),
      R"(Event "e1" is invalid: involvedObject.namespace: Invalid value: "other": does not match event.namespace)");
  EXPECT_EQ(at(r.json(), "/reason"), "Invalid");
  r = c.send("POST", events, R"({"metadata":{"name":"e2"},"reason":"X"})");
  EXPECT_EQ(r.status, 422) << "no involvedObject outside the default namespace";
  EXPECT_EQ(at(r.json(), "/message"),
            R"(Event "e2" is invalid: involvedObject.namespace: Invalid value: "": does not match event.namespace)");
  // The Event's own namespace against the URL's: a 400, as for every namespaced object.
  EXPECT_EQ(c.send("POST", events, event(R"({"name":"e3","namespace":"other"})", "other")).status, 400);

  // A "new" Event (eventTime set) must name its reporter and action; reason and message
  // have limits.
  const std::string reporter =
      R"(,"eventTime":"2024-05-01T12:00:00.000000Z","reportingComponent":"tenantdb-init","reportingInstance":"pod-a")";
  r = c.send("POST", events, event(R"({"name":"e4"})", "ns", reporter));
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(at(r.json(), "/message"), R"(Event "e4" is invalid: action: Required value)");
  EXPECT_EQ(c.send("POST", events, event(R"({"name":"e5"})", "ns", reporter + R"(,"action":"Provision")")).status, 201);
  const auto with = [](std::string json, const std::string& from, const std::string& to) {
    json.replace(json.find(from), from.size(), to);
    return json;
  };
  r = c.send("POST", events,
             with(event(R"({"name":"e6"})", "ns", reporter + R"(,"action":"Provision")"), "database ready",
                  std::string(1025, 'm')));
  EXPECT_EQ(r.status, 422) << "message over 1024 characters";
  EXPECT_EQ(at(r.json(), "/message"),
            R"(Event "e6" is invalid: message: Invalid value: "": can have at most 1024 characters)");
  r = c.send("POST", events,
             with(event(R"({"name":"e7"})", "ns", reporter + R"(,"action":"Provision")"), "Provisioned",
                  std::string(129, 'R')));
  EXPECT_EQ(r.status, 422) << "reason over 128 characters";
  EXPECT_EQ(at(r.json(), "/message"),
            R"(Event "e7" is invalid: reason: Invalid value: "": can have at most 128 characters)");
  r = c.send("POST", events, with(event(R"({"name":"e8"})", "ns"), R"("count":1)", R"("count":"one")"));
  EXPECT_EQ(r.status, 400) << "count is an int32";

  // RBAC: a Role without events gets 403 with a Status body.
  standin_.add_token("no-events-token", "u");
  standin_.allow("u", "*", "ns", "secrets");
  Client limited(standin_, "no-events-token");
  r = limited.send("POST", events, event(R"({"generateName":"pod-a."})", "ns"));
  EXPECT_EQ(r.status, 403);
  d = r.json();
  EXPECT_EQ(at(d, "/kind"), "Status");
  EXPECT_EQ(at(d, "/message"),
            R"(events is forbidden: User "u" cannot create resource "events" in API group "" in the namespace "ns")");
  standin_.allow("u", "create", "ns", "events");
  EXPECT_EQ(limited.send("POST", events, event(R"({"generateName":"pod-a."})", "ns")).status, 201);
  EXPECT_EQ(limited.get(events).status, 403) << "create does not grant list";
}

TEST_F(KubeStandinTest, UnknownPathsMethodsAndNamespaces) {
  Client c(standin_, token_);
  const std::string not_found =
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","details":{},"code":404})";
  for (const std::string path :
       {"/api/v1/namespaces/ns/configmaps", "/apis/coordination.k8s.io/v2/namespaces/ns/leases",
        "/api/v1/namespaces/ns/secrets/x/status", "/nothing/here"}) {
    const Reply r = c.get(path);
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_EQ(r.body, not_found) << path;
  }
  Reply r = c.send("POST", secrets() + "/x", secret_json("x"));
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(at(r.json(), "/reason"), "MethodNotAllowed");

  KubeStandin::Options options;
  options.implicit_namespaces = false;
  KubeStandin strict(options);
  strict.add_token(token_, user_);
  strict.allow_all(user_);
  Client s(strict, token_);
  r = s.send("POST", secrets("ghost"), secret_json("x", "ghost"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(at(r.json(), "/message"), R"(namespaces "ghost" not found)");
  strict.add_namespace("ghost");
  EXPECT_EQ(s.send("POST", secrets("ghost"), secret_json("x", "ghost")).status, 201);
}

// --- Connections ----------------------------------------------------------------------

TEST_F(KubeStandinTest, KeepAliveAndDeadlines) {
  KubeStandin::Options options;
  options.idle_timeout = 300ms;
  options.io_timeout = 300ms;
  KubeStandin s(options);
  s.add_token(token_, user_);
  s.allow_all(user_);
  Client c(s, token_);
  EXPECT_EQ(c.get(secrets()).connects, 1);
  EXPECT_EQ(c.get(secrets()).connects, 0) << "keep-alive reuses the connection";
  std::this_thread::sleep_for(700ms);
  const Reply r = c.get(secrets());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.connects, 1) << "the idle connection was closed";

  // A client that never starts the TLS handshake is cut off after io_timeout.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(s.port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  timeval tv{3, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const auto started = Clock::now();
  char byte = 0;
  EXPECT_EQ(::recv(fd, &byte, 1, 0), 0) << "closed, not timed out on our side";
  EXPECT_LT(Clock::now() - started, 2s);
  ::close(fd);
}

TEST_F(KubeStandinTest, ConcurrentWritersAndTheTestThreadShareOneOrder) {
  WatchStream w(standin_, token_, "/api/v1/secrets?watch=1");
  ASSERT_TRUE(eventually([&] { return standin_.active_watches() == 1; }, 3s));
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t)
    writers.emplace_back([&, t] {
      Client c(standin_, token_);
      for (int i = 0; i < 15; ++i)
        EXPECT_EQ(c.send("POST", secrets(), secret_json("t" + std::to_string(t) + "-" + std::to_string(i))).status,
                  201);
    });
  for (int i = 0; i < 15; ++i) standin_.put_object(secret_json("direct-" + std::to_string(i), "other"));
  for (auto& t : writers) t.join();
  std::uint64_t last = 0;
  for (int i = 0; i < 60; ++i) {
    const auto line = w.next();
    ASSERT_TRUE(line) << i;
    const auto rv = std::stoull(at(parse(*line), "/object/metadata/resourceVersion"));
    EXPECT_GT(rv, last);
    last = rv;
  }
  EXPECT_EQ(last, standin_.resource_version());
  EXPECT_EQ(standin_.request_count("POST"), 45U);
}

// --- Test-side API ------------------------------------------------------------------------

TEST_F(KubeStandinTest, SeedingInspectingAndTheRequestLog) {
  const std::string stored = standin_.put_object(
      R"({"kind":"Secret","apiVersion":"v1","metadata":{"name":"seed","namespace":"ns","uid":"u-1","creationTimestamp":"2020-01-02T03:04:05Z","resourceVersion":"77"},"stringData":{"k":"v"}})");
  const auto d = parse(stored);
  EXPECT_EQ(at(d, "/metadata/uid"), "u-1");
  EXPECT_EQ(at(d, "/metadata/creationTimestamp"), "2020-01-02T03:04:05Z");
  EXPECT_EQ(at(d, "/metadata/resourceVersion"), std::to_string(standin_.resource_version()));
  EXPECT_EQ(standin_.get_object("secrets", "ns", "seed"), stored);
  EXPECT_EQ(standin_.secret_value("ns", "seed", "k"), "v");
  EXPECT_FALSE(standin_.secret_value("ns", "seed", "absent"));
  const auto replaced = parse(standin_.put_object(secret_json("seed")));
  EXPECT_EQ(at(replaced, "/metadata/uid"), "u-1") << "replacing keeps the identity";
  standin_.put_object(R"({"kind":"Lease","metadata":{"name":"seed","namespace":"ns"}})");
  EXPECT_TRUE(standin_.get_object("leases", "ns", "seed"));
  EXPECT_EQ(standin_.resource_version(), 3U);
  EXPECT_TRUE(standin_.delete_object("secrets", "ns", "seed"));
  EXPECT_FALSE(standin_.delete_object("secrets", "ns", "seed"));
  EXPECT_EQ(standin_.resource_version(), 4U);
  for (const char* bad : {"not json", R"({"kind":"ConfigMap","metadata":{"name":"x","namespace":"ns"}})",
                          R"({"kind":"Secret","metadata":{"name":"x"}})",
                          R"({"kind":"Secret","metadata":{"name":"x","namespace":"ns"},"data":{"k":"%%"}})"})
    EXPECT_THROW(standin_.put_object(bad), std::invalid_argument) << bad;

  Client c(standin_, token_);
  c.get(secrets() + "/x");
  c.get(leases() + "/x");
  c.send("DELETE", secrets() + "/x");
  EXPECT_EQ(standin_.request_count(), 3U);
  EXPECT_EQ(standin_.request_count("GET"), 2U);
  EXPECT_EQ(standin_.request_count("", "/secrets/"), 2U);
  EXPECT_EQ(standin_.request_count("DELETE", "/leases/"), 0U);
  standin_.clear_requests();
  EXPECT_TRUE(standin_.requests().empty());
}

// --- The kube-standin executable ------------------------------------------------------

TEST(KubeStandinProcess, WritesKubeconfigServesAndExitsOnSigterm) {
#ifndef TENANTDB_KUBE_STANDIN_BIN
  FAIL() << "TENANTDB_KUBE_STANDIN_BIN is not defined (see test/CMakeLists.txt)";
#else
  char pattern[] = "/tmp/kube-standin-test-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const fs::path dir = pattern;
  test::child_process child({TENANTDB_KUBE_STANDIN_BIN, "--dir", (dir / "state").string(), "--allow-all"}, {},
                            (dir / "log").string());
  ASSERT_TRUE(eventually([&] { return child.out() == "ready\n"; }, 20s)) << child.err();
  const std::string port = test::read_file(dir / "state" / "port");
  const std::string token = test::read_file(dir / "state" / "token");
  const std::string kubeconfig = test::read_file(dir / "state" / "kubeconfig");
  ASSERT_FALSE(port.empty());
  ASSERT_EQ(token.size(), 65U);
  for (const char* file : {"ca.pem", "kubeconfig", "port", "token"}) {
    struct stat st {};
    ASSERT_EQ(::stat((dir / "state" / file).c_str(), &st), 0) << file;
    EXPECT_EQ(st.st_mode & 0777, 0600U) << file;
  }
  const std::string server = "https://127.0.0.1:" + port.substr(0, port.size() - 1);
  EXPECT_NE(kubeconfig.find("server: " + server + "\n"), std::string::npos) << kubeconfig;
  EXPECT_NE(kubeconfig.find("certificate-authority: \"" + (dir / "state" / "ca.pem").string() + "\"\n"),
            std::string::npos);
  EXPECT_NE(kubeconfig.find("token: " + token), std::string::npos);
  EXPECT_NE(kubeconfig.find("namespace: default\n"), std::string::npos);
  EXPECT_NE(kubeconfig.find("current-context: kube-standin\n"), std::string::npos);

  CURL* h = curl_easy_init();
  const std::string url = server + "/api/v1/namespaces/default/secrets/x";
  const std::string ca = (dir / "state" / "ca.pem").string();
  const std::string auth = "Authorization: Bearer " + token.substr(0, 64);
  curl_slist* headers = curl_slist_append(nullptr, auth.c_str());
  std::string body;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_CAINFO, ca.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  EXPECT_EQ(curl_easy_perform(h), CURLE_OK);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  EXPECT_EQ(status, 404) << body;
  curl_slist_free_all(headers);
  curl_easy_cleanup(h);

  child.kill(SIGTERM);
  EXPECT_EQ(child.wait(10s), 0) << child.err();
  std::error_code ignored;
  fs::remove_all(dir, ignored);
#endif
}

}  // namespace
}  // namespace tenantdb
