// The sidecar's pieces on their own (common/src/sidecar): the outcomes the loop acts on.
// The publisher says what it did with the files and which source failed; the store's
// errors carry the store's source; the admin endpoint reports a request instead of
// scheduling it. The loop itself is agent_test's.

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <gtest/gtest.h>
#include <unistd.h>

#include "sidecar/endpoints.hpp"
#include "sidecar/outcome.hpp"
#include "sidecar/publisher.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/log.hpp"
#include "tenantdb/store.hpp"

namespace tenantdb::sidecar {
namespace {

namespace fs = std::filesystem;

// A store whose load() throws what it is given, or returns `held`.
class scripted_store final : public credential_store {
public:
  std::optional<stored_credentials> load() override {
    if (refuse) throw foreign_store_error(error_kind::connector, "not an Opaque Secret");
    if (fail) throw error(error_kind::unavailable, "API server unreachable");
    return held;
  }
  std::optional<std::string> create(const credential_data&, const std::map<std::string, std::string>&) override {
    throw error(error_kind::unavailable, "API server unreachable");
  }
  std::optional<std::string> replace(const credential_data&, const std::map<std::string, std::string>&,
                                     const std::string&) override {
    throw error(error_kind::output, "disk full");
  }
  std::string describe() const override { return "scripted store"; }

  bool refuse = false;
  bool fail = false;
  std::optional<stored_credentials> held;
};

credential_data sample_data(const std::string& password) {
  credential_data d;
  d[keys::type] = secret(std::string("postgres"));
  d[keys::host] = secret(std::string("127.0.0.1"));
  d[keys::port] = secret(std::string("5432"));
  d[keys::ssl_mode] = secret(std::string("disable"));
  d[keys::database] = secret(std::string("appdb"));
  d[keys::user] = secret(std::string("app_a"));
  d[keys::password] = secret(password);
  d[keys::standby_user] = secret(std::string("app_b"));
  d[keys::standby_password] = secret(std::string("standby-password"));
  return d;
}

class SidecarPieces : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tenantdb-pieces-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    options_.output_dir = dir_ / "out";
    options_.ca_file = (dir_ / "out" / "caCert").string();
    options_.store_source = "api";
    log::set_sink([](std::string_view) {});
  }
  void TearDown() override {
    log::set_sink({});
    fs::remove_all(dir_);
  }

  fs::path dir_;
  agent_options options_;
};

TEST_F(SidecarPieces, StoreErrorsCarryTheStoresSourceOthersTheirKinds) {
  scripted_store inner;
  inner.fail = true;
  sourced_store api(inner, error_source::api);
  try {
    (void)api.load();
    FAIL() << "load did not throw";
  } catch (const error& e) {
    EXPECT_EQ(source_of(e), error_source::api);
    EXPECT_EQ(e.kind(), error_kind::unavailable);  // the store's error, kept
  }
  // An output error of the store is still the store's failure, not the files'.
  sourced_store files(inner, error_source::files);
  try {
    (void)files.replace({}, {}, "1");
    FAIL() << "replace did not throw";
  } catch (const error& e) {
    EXPECT_EQ(source_of(e), error_source::files);
  }
  try {
    (void)api.replace({}, {}, "1");
    FAIL() << "replace did not throw";
  } catch (const error& e) {
    EXPECT_EQ(source_of(e), error_source::api);
    EXPECT_EQ(e.kind(), error_kind::output);
  }
  // Not through the store: the database, or the files for an output error.
  EXPECT_EQ(source_of(error(error_kind::unavailable, "database down")), error_source::database);
  EXPECT_EQ(source_of(error(error_kind::verification, "login refused")), error_source::database);
  EXPECT_EQ(source_of(error(error_kind::output, "cannot write")), error_source::files);
}

TEST_F(SidecarPieces, PublisherSaysNothingYetThenPublishedThenUnchanged) {
  scripted_store store;
  file_publisher files(store, options_);
  auto loaded = files.load();
  EXPECT_FALSE(loaded.loaded);
  EXPECT_FALSE(loaded.failed);
  EXPECT_EQ(files.not_ready_reason(), "no credentials yet");

  store.held = stored_credentials{sample_data("first-password"), "1", {}};
  loaded = files.load();
  EXPECT_TRUE(loaded.loaded);
  auto published = files.publish();
  EXPECT_EQ(published.result, file_publisher::publish_outcome::files::published);
  EXPECT_TRUE(published.first_in_place);
  EXPECT_FALSE(published.failed);
  EXPECT_TRUE(files.in_place());
  EXPECT_TRUE(files.up_to_date());
  ASSERT_TRUE(files.published());
  EXPECT_EQ(files.published()->count(keys::standby_password), 0u);  // never the standby's
  EXPECT_EQ(read_directory(options_.output_dir).at(keys::password).reveal(), "first-password");

  ASSERT_TRUE(files.load().loaded);
  published = files.publish();
  EXPECT_EQ(published.result, file_publisher::publish_outcome::files::unchanged);
  EXPECT_FALSE(published.first_in_place);

  store.held = stored_credentials{sample_data("second-password"), "2", {}};
  ASSERT_TRUE(files.load().loaded);
  published = files.publish();
  EXPECT_EQ(published.result, file_publisher::publish_outcome::files::published);
  EXPECT_FALSE(published.first_in_place);
  EXPECT_EQ(read_directory(options_.output_dir).at(keys::password).reveal(), "second-password");
}

TEST_F(SidecarPieces, PublisherNamesTheSourceThatFailed) {
  scripted_store store;
  options_.store_source = "files";  // a directory store
  file_publisher files(store, options_);
  store.fail = true;
  auto loaded = files.load();
  EXPECT_FALSE(loaded.loaded);
  ASSERT_TRUE(loaded.failed);
  EXPECT_EQ(loaded.failed->source, error_source::files);
  EXPECT_FALSE(files.store_refused());

  store.fail = false;
  store.refuse = true;
  loaded = files.load();
  ASSERT_TRUE(loaded.failed);
  EXPECT_TRUE(files.store_refused());

  // The output directory cannot be made: its parent is a file.
  store.refuse = false;
  store.held = stored_credentials{sample_data("first-password"), "1", {}};
  { std::ofstream(dir_ / "blocker") << "x"; }
  options_.output_dir = dir_ / "blocker" / "out";
  ASSERT_TRUE(files.load().loaded);
  EXPECT_FALSE(files.store_refused());
  const auto published = files.publish();
  EXPECT_EQ(published.result, file_publisher::publish_outcome::files::failed);
  ASSERT_TRUE(published.failed);
  EXPECT_EQ(published.failed->source, error_source::files);
  EXPECT_FALSE(files.up_to_date());
  EXPECT_FALSE(files.in_place());
  EXPECT_EQ(files.not_ready_reason(), "cannot write the credential files");
}

TEST_F(SidecarPieces, AdminEndpointReportsARequestAndSchedulesNothing) {
  auto answer = serve_admin({"POST", "/rotate"});
  EXPECT_EQ(answer.response.status, 202u);
  EXPECT_TRUE(answer.rotation_requested);
  answer = serve_admin({"GET", "/rotate"});
  EXPECT_EQ(answer.response.status, 405u);
  EXPECT_FALSE(answer.rotation_requested);
  answer = serve_admin({"POST", "/rotate-now"});
  EXPECT_EQ(answer.response.status, 404u);
  EXPECT_FALSE(answer.rotation_requested);
}

}  // namespace
}  // namespace tenantdb::sidecar
