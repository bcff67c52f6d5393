// The credential_store contract (store.hpp) held by both stores alike: the Secret store
// through the Kubernetes API stand-in (real TLS, real PUT semantics), the directory store
// in a temporary directory. No mocks.

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include <unistd.h>

#include "kube_standin.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/kube.hpp"
#include "tenantdb/store.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace tenantdb {
namespace {

constexpr const char* ns = "tenants";
constexpr const char* sa_user = "system:serviceaccount:tenants:tenantdb";
constexpr const char* token = "store-contract-token-0123456789abcdef";

credential_data generation(const std::string& tag) {
  credential_data out;
  out[keys::database] = secret(std::string("db"));
  out[keys::user] = secret("user_" + tag);
  out[keys::password] = secret("pw_" + tag);
  return out;
}

enum class kind { secret_store, directory_store };

std::string name_of(const ::testing::TestParamInfo<kind>& info) {
  return info.param == kind::secret_store ? "Secret" : "Directory";
}

class StoreContract : public ::testing::TestWithParam<kind> {
protected:
  void SetUp() override {
    char pattern[] = "/tmp/tenantdb-store-contract-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    if (GetParam() == kind::secret_store) {
      standin_ = std::make_unique<test::KubeStandin>();
      standin_->add_token(token, sa_user);
      standin_->allow(sa_user, "*", ns, "secrets");
      kube_config c;
      c.server = standin_->url();
      c.ca_pem = standin_->ca_pem();
      c.token = secret(std::string(token));
      c.namespace_name = ns;
      c.connect_timeout = 2000ms;
      c.request_timeout = 5000ms;
      client_ = std::make_unique<kube_client>(c);
      store_ = make_secret_store(*client_, ns, "vc-db-contract", {{"app.kubernetes.io/managed-by", "tenantdb"}});
    } else {
      store_ = make_directory_store(dir_ / "store");
    }
  }

  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  fs::path dir_;
  std::unique_ptr<test::KubeStandin> standin_;
  std::unique_ptr<kube_client> client_;
  std::unique_ptr<credential_store> store_;
};

TEST_P(StoreContract, ReplaceSetsTheNamedAnnotationsAndKeepsTheOthers) {
  const auto v1 = store_->create(generation("a"), {{"keep", "1"}, {"change", "old"}, {"drop", "x"}});
  ASSERT_TRUE(v1.has_value());
  annotation_map next{{"change", "new"}, {"add", "2"}};
  next["drop"] = "x";
  remove_annotation(next, "drop");
  ASSERT_TRUE(store_->replace(generation("b"), next, *v1).has_value());

  const auto loaded = store_->load();
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->data.at(keys::user).reveal(), "user_b") << "the data is replaced whole";
  ASSERT_NE(annotation_value(loaded->annotations, "keep"), nullptr) << "an annotation not named is kept";
  EXPECT_EQ(*annotation_value(loaded->annotations, "keep"), "1");
  ASSERT_NE(annotation_value(loaded->annotations, "change"), nullptr);
  EXPECT_EQ(*annotation_value(loaded->annotations, "change"), "new");
  ASSERT_NE(annotation_value(loaded->annotations, "add"), nullptr);
  EXPECT_EQ(*annotation_value(loaded->annotations, "add"), "2");
  EXPECT_EQ(annotation_value(loaded->annotations, "drop"), nullptr) << "written empty: removed";
}

TEST_P(StoreContract, AReplaceNamingNoAnnotationKeepsThemAll) {
  const annotation_map notes{{annotations::last_rotation, "2024-05-01T12:00:00Z"}, {annotations::lockout, "db_b"}};
  const auto v1 = store_->create(generation("a"), notes);
  ASSERT_TRUE(v1.has_value());
  ASSERT_TRUE(store_->replace(generation("b"), {}, *v1).has_value());
  const auto loaded = store_->load();
  ASSERT_TRUE(loaded.has_value());
  for (const auto& [key, value] : notes) {
    ASSERT_NE(annotation_value(loaded->annotations, key), nullptr) << key;
    EXPECT_EQ(*annotation_value(loaded->annotations, key), value) << key;
  }
}

TEST_P(StoreContract, AStaleVersionChangesNeitherDataNorAnnotations) {
  const auto v1 = store_->create(generation("a"), {{"n", "1"}});
  ASSERT_TRUE(v1.has_value());
  const auto v2 = store_->replace(generation("b"), {{"n", "2"}}, *v1);
  ASSERT_TRUE(v2.has_value());
  EXPECT_FALSE(store_->replace(generation("c"), {{"n", "3"}}, *v1).has_value());
  const auto loaded = store_->load();
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->version, *v2);
  EXPECT_EQ(loaded->data.at(keys::user).reveal(), "user_b");
  EXPECT_EQ(loaded->annotations.at("n"), "2");
}

INSTANTIATE_TEST_SUITE_P(BothStores, StoreContract, ::testing::Values(kind::secret_store, kind::directory_store),
                         name_of);

TEST(Annotations, EmptyMeansAbsentAndRemovingWritesEmpty) {
  annotation_map a{{"set", "v"}, {"empty", ""}};
  ASSERT_NE(annotation_value(a, "set"), nullptr);
  EXPECT_EQ(*annotation_value(a, "set"), "v");
  EXPECT_EQ(annotation_value(a, "empty"), nullptr);
  EXPECT_EQ(annotation_value(a, "missing"), nullptr);
  remove_annotation(a, "set");
  EXPECT_EQ(a.at("set"), "") << "kept as an empty value, so a merging replace removes it";
  remove_annotation(a, "missing");
  EXPECT_EQ(a.count("missing"), 0u) << "removing what is not there adds nothing";
}

}  // namespace
}  // namespace tenantdb
