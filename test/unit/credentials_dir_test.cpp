#include "tenantdb/credentials.hpp"

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "temp_dir.hpp"
#include "tenantdb/dsn.hpp"
#include "tenantdb/error.hpp"

namespace tenantdb {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;

// ---------------------------------------------------------------------------------------
// Helpers

using test::temp_dir;

credential_data make_data(const std::map<std::string, std::string>& plain) {
  credential_data out;
  for (const auto& [k, v] : plain) out[k] = secret(v);
  return out;
}

std::map<std::string, std::string> reveal_all(const credential_data& data) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : data) out[k] = v.reveal();
  return out;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string content;
  char buf[4096];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) content.append(buf, static_cast<std::size_t>(in.gcount()));
  return content;
}

std::string link_target(const fs::path& link) {
  std::error_code ec;
  const fs::path target = fs::read_symlink(link, ec);
  return ec ? std::string() : target.string();
}

bool is_link(const fs::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

bool exists_no_follow(const fs::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

std::set<std::string> entries(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

// A fixed umask, so the directory publish_directory creates has a predictable mode.
class CredentialsDir : public ::testing::Test {
protected:
  void SetUp() override { saved_umask_ = ::umask(022); }
  void TearDown() override { ::umask(saved_umask_); }

  // The layout invariants for `dir` holding exactly `expected`.
  void expect_layout(const fs::path& dir, const std::map<std::string, std::string>& expected,
                     const directory_options& options = {}) {
    ASSERT_TRUE(is_link(dir / "..data"));
    const std::string target = link_target(dir / "..data");
    EXPECT_EQ(target.rfind("..", 0), 0U) << "data directory must be hidden: " << target;
    EXPECT_EQ(target.find('/'), std::string::npos) << "..data must point at a sibling: " << target;
    ASSERT_TRUE(fs::is_directory(dir / target));
    EXPECT_EQ(mode_of(dir / target), options.dir_mode) << std::oct << mode_of(dir / target);
    std::set<std::string> files;
    for (const auto& e : fs::directory_iterator(dir / target)) files.insert(e.path().filename().string());
    std::set<std::string> keys;
    for (const auto& [k, v] : expected) keys.insert(k);
    EXPECT_EQ(files, keys) << "the data directory holds exactly the keys";
    for (const auto& [key, value] : expected) {
      SCOPED_TRACE(key);
      ASSERT_TRUE(is_link(dir / key));
      EXPECT_EQ(link_target(dir / key), "..data/" + key);
      struct stat st {};
      ASSERT_EQ(::lstat((dir / target / key).c_str(), &st), 0);
      EXPECT_TRUE(S_ISREG(st.st_mode));
      EXPECT_EQ(st.st_mode & 07777, options.file_mode) << std::oct << (st.st_mode & 07777);
      EXPECT_EQ(read_file(dir / key), value);
    }
    // Visible entries are exactly the keys; hidden ones are ..data, the live data
    // directory and at most a lock file; no temporaries.
    for (const auto& name : entries(dir)) {
      if (name.rfind("..", 0) != 0) {
        EXPECT_EQ(keys.count(name), 1U) << "unexpected visible entry " << name;
      } else {
        EXPECT_NE(name.rfind("..data_tmp", 0), 0U) << "temporary left behind: " << name;
        if (name != "..data" && name != target) {
          EXPECT_TRUE(fs::is_regular_file(dir / name)) << "stale hidden entry: " << name;
        }
      }
    }
  }

  temp_dir tmp_{"tenantdb-credentials"};
  mode_t saved_umask_ = 022;
};

// ---------------------------------------------------------------------------------------
// publish_directory / read_directory

TEST_F(CredentialsDir, PublishCreatesTheSecretVolumeLayout) {
  const fs::path dir = tmp_.path() / "creds";
  const std::map<std::string, std::string> plain = {{"user", "u1"}, {"password", "p1"}, {"database", "d1"}};
  publish_directory(dir, make_data(plain));
  expect_layout(dir, plain);
  EXPECT_EQ(mode_of(dir), 0750U) << "a directory publish_directory creates gets dir_mode";
}

TEST_F(CredentialsDir, HonoursRequestedModesWhateverTheUmask) {
  ::umask(077);
  const fs::path dir = tmp_.path() / "creds";
  directory_options options;
  options.file_mode = 0444;
  options.dir_mode = 0755;
  const std::map<std::string, std::string> plain = {{"user", "u1"}, {"password", "p1"}};
  publish_directory(dir, make_data(plain), options);
  expect_layout(dir, plain, options);
  options.file_mode = 0400;
  options.dir_mode = 0700;
  publish_directory(dir, make_data(plain), options);
  expect_layout(dir, plain, options);
}

TEST_F(CredentialsDir, ReadDirectoryReadsBackExactly) {
  const fs::path dir = tmp_.path() / "creds";
  std::string big(1 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 % 251);
  const std::map<std::string, std::string> plain = {
      {"binary", "a\0b\xFF\n"s},
      {"empty", ""},
      {"newline", "line\n"},
      {"big", big},
      {"caCert", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
      {"dotted.key-1_x", "v"}};
  publish_directory(dir, make_data(plain));
  EXPECT_EQ(reveal_all(read_directory(dir)), plain);
}

TEST_F(CredentialsDir, ReadDirectoryWithoutDataLinkIsEmpty) {
  EXPECT_TRUE(read_directory(tmp_.path()).empty());
  EXPECT_TRUE(read_directory(tmp_.path() / "does-not-exist").empty());
}

TEST_F(CredentialsDir, RepublishReplacesAllKeysAndDropsMissingOnes) {
  const fs::path dir = tmp_.path() / "creds";
  publish_directory(dir, make_data({{"a", "1"}, {"b", "2"}, {"c", "3"}}));
  const std::string first_target = link_target(dir / "..data");
  const std::map<std::string, std::string> second = {{"a", "10"}, {"d", "40"}};
  publish_directory(dir, make_data(second));
  expect_layout(dir, second);
  EXPECT_FALSE(exists_no_follow(dir / "b"));
  EXPECT_FALSE(exists_no_follow(dir / "c"));
  EXPECT_NE(link_target(dir / "..data"), first_target);
  EXPECT_FALSE(exists_no_follow(dir / first_target)) << "old data directory must be removed";
  EXPECT_EQ(reveal_all(read_directory(dir)), second);
}

TEST_F(CredentialsDir, RepublishingTheSameDataIsHarmless) {
  const fs::path dir = tmp_.path() / "creds";
  const std::map<std::string, std::string> plain = {{"user", "u"}, {"password", "p"}};
  for (int i = 0; i < 5; ++i) publish_directory(dir, make_data(plain));
  expect_layout(dir, plain);
}

TEST_F(CredentialsDir, LeavesOtherVisibleFilesAlone) {
  // Only links this layout made (key -> ..data/key) are removed when a key goes away.
  const fs::path dir = tmp_.path() / "creds";
  fs::create_directories(dir);
  { std::ofstream(dir / "README") << "mine"; }
  publish_directory(dir, make_data({{"a", "1"}}));
  publish_directory(dir, make_data({{"b", "2"}}));
  EXPECT_EQ(read_file(dir / "README"), "mine");
}

TEST_F(CredentialsDir, CleansStaleEntriesFromACrashedPublish) {
  const fs::path dir = tmp_.path() / "creds";
  publish_directory(dir, make_data({{"user", "u1"}}));
  // What a crash between mkdtemp and the ..data swap leaves behind.
  const fs::path stale = dir / "..2020_01_01_00_00_00.AbCdEf";
  fs::create_directories(stale);
  { std::ofstream(stale / "user") << "half-written"; }
  fs::create_symlink("..2020_01_01_00_00_00.AbCdEf", dir / "..data_tmp");
  fs::create_symlink("..data/user", dir / "..data_tmp.user");
  const std::map<std::string, std::string> next = {{"user", "u2"}};
  publish_directory(dir, make_data(next));
  EXPECT_FALSE(exists_no_follow(stale));
  EXPECT_FALSE(exists_no_follow(dir / "..data_tmp"));
  EXPECT_FALSE(exists_no_follow(dir / "..data_tmp.user"));
  expect_layout(dir, next);
}

TEST_F(CredentialsDir, CleansAStaleDataDirectoryBeforeTheFirstPublish) {
  const fs::path dir = tmp_.path() / "creds";
  const fs::path stale = dir / "..2020_01_01_00_00_00.XyZ123";
  fs::create_directories(stale);
  { std::ofstream(stale / "password") << "old"; }
  const std::map<std::string, std::string> plain = {{"password", "new"}};
  publish_directory(dir, make_data(plain));
  EXPECT_FALSE(exists_no_follow(stale));
  expect_layout(dir, plain);
}

TEST_F(CredentialsDir, ReaderNeverSeesAMixedOrPartialGeneration) {
  const fs::path dir = tmp_.path() / "creds";
  constexpr int generations = 500;
  std::atomic<bool> done{false};
  std::atomic<int> reads{0};
  std::atomic<int> bad{0};
  std::string first_bad;
  std::thread reader([&] {
    while (!done.load()) {
      credential_data data;
      try {
        data = read_directory(dir);
      } catch (const error& e) {
        if (bad.fetch_add(1) == 0) first_bad = "read_directory threw: "s + e.what();
        continue;
      }
      ++reads;
      if (data.empty()) continue;  // before the first publish
      // Every value is "gen-N of M": all must agree and there must be M of them.
      const std::string value = data.begin()->second.reveal();
      const auto of = value.find(" of ");
      const std::size_t count = of == std::string::npos ? 0 : std::stoul(value.substr(of + 4));
      bool ok = data.size() == count;
      for (const auto& [k, v] : data) ok = ok && v.reveal() == value;
      if (!ok && bad.fetch_add(1) == 0) {
        first_bad = "saw " + std::to_string(data.size()) + " keys:";
        for (const auto& [k, v] : data) first_bad += " " + k + "=" + v.reveal();
      }
    }
  });
  for (int g = 0; g < generations && bad.load() == 0; ++g) {  // stop early once it failed
    // 12 to 20 keys, so some generations also drop keys.
    const int count = 12 + g % 9;
    credential_data data;
    const std::string value = "gen-" + std::to_string(g) + " of " + std::to_string(count);
    for (int k = 0; k < count; ++k) data["key" + std::to_string(k)] = secret(value);
    publish_directory(dir, data);
  }
  done = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0) << first_bad;
  EXPECT_GT(reads.load(), 0);
}

TEST_F(CredentialsDir, PublishUnderARegularFileFailsWithOutputError) {
  const fs::path file = tmp_.path() / "not-a-dir";
  { std::ofstream(file) << "x"; }
  const fs::path dir = file / "creds";
  try {
    publish_directory(dir, make_data({{"user", "u"}}));
    FAIL() << "publish into " << dir << " succeeded";
  } catch (const error& e) {
    EXPECT_STREQ(to_string(e.kind()), "output");
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
    EXPECT_NE(e.key().find(file.string()), std::string::npos) << e.key();
  }
}

// Limits the size of files this process writes (root is not exempt), making write()
// fail with EFBIG instead of raising SIGXFSZ. Restored on destruction.
class file_size_limit {
public:
  explicit file_size_limit(rlim_t bytes) {
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    ::getrlimit(RLIMIT_FSIZE, &old_);
    const rlimit limit{bytes, old_.rlim_max};
    ::setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~file_size_limit() {
    ::setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, old_handler_);
  }
  file_size_limit(const file_size_limit&) = delete;
  file_size_limit& operator=(const file_size_limit&) = delete;

private:
  rlimit old_{};
  void (*old_handler_)(int) = nullptr;
};

TEST_F(CredentialsDir, FailedPublishLeavesThePreviousGenerationIntact) {
  const fs::path dir = tmp_.path() / "creds";
  const std::map<std::string, std::string> first = {{"user", "u1"}, {"password", "p1"}, {"database", "d1"}};
  publish_directory(dir, make_data(first));
  const std::string first_target = link_target(dir / "..data");

  // The second generation adds a key and has a value too big to write.
  const auto second = make_data({{"user", "u2"}, {"password", std::string(64 * 1024, 'p')}, {"extra", "e"}});
  std::optional<error> caught;
  {
    const file_size_limit limit(1024);
    try {
      publish_directory(dir, second);
    } catch (const error& e) {
      caught = e;
    }
  }
  ASSERT_TRUE(caught.has_value()) << "publish succeeded despite the write failure";
  EXPECT_STREQ(to_string(caught->kind()), "output");
  EXPECT_NE(std::string(caught->what()).find(dir.string()), std::string::npos) << caught->what();
  EXPECT_EQ(link_target(dir / "..data"), first_target);
  EXPECT_EQ(reveal_all(read_directory(dir)), first);
  EXPECT_FALSE(exists_no_follow(dir / "extra"));
  expect_layout(dir, first);  // also: the half-written data directory was removed
}

// Where tests kill -9 a publish: the new generation is complete on disk, ..data not moved.
TEST_F(CredentialsDir, FaultHookRunsBetweenTheNewGenerationAndTheSwap) {
  const fs::path dir = tmp_.path() / "creds";
  const std::map<std::string, std::string> first = {{"user", "u1"}, {"password", "p1"}};
  const std::map<std::string, std::string> second = {{"user", "u2"}, {"password", "p2"}};
  publish_directory(dir, make_data(first));
  const std::string first_target = link_target(dir / "..data");
  std::vector<std::string> points;
  directory_options options;
  options.fault = [&](std::string_view point) {
    points.emplace_back(point);
    EXPECT_EQ(link_target(dir / "..data"), first_target) << "..data moved before the fault point";
    std::set<std::string> generations;
    for (const auto& name : entries(dir))
      if (name.size() > 2 && name[2] >= '0' && name[2] <= '9' && name != first_target) generations.insert(name);
    ASSERT_EQ(generations.size(), 1U) << "the new data directory is not there yet";
    const fs::path fresh = dir / *generations.begin();
    for (const auto& [key, value] : second) EXPECT_EQ(read_file(fresh / key), value) << key;
  };
  publish_directory(dir, make_data(second), options);
  EXPECT_EQ(points, std::vector<std::string>{std::string(publish_fault_point)});
  expect_layout(dir, second);
}

TEST_F(CredentialsDir, RefusesKeysThatCouldEscapeOrClash) {
  const fs::path dir = tmp_.path() / "creds";
  const std::map<std::string, std::string> good = {{"user", "u1"}};
  publish_directory(dir, make_data(good));
  for (const std::string& bad :
       std::vector<std::string>{"../escape", "a/b", "..data", "..hidden", "", "sp ace", "new\nline", "/abs"}) {
    EXPECT_THROW(publish_directory(dir, make_data({{"user", "u2"}, {bad, "x"}})), error) << "key \"" << bad << "\"";
  }
  EXPECT_FALSE(exists_no_follow(tmp_.path() / "escape"));
  EXPECT_EQ(reveal_all(read_directory(dir)), good);
}

TEST_F(CredentialsDir, ForeignDataLinkIsRefusedAndItsTargetLeftAlone) {
  const fs::path victim = tmp_.path() / "victim";
  fs::create_directories(victim);
  { std::ofstream(victim / "password") << "keep"; }
  for (const std::string& target :
       {victim.string(), "../victim"s, "..2020_01_01_00_00_00.AbCdEf/../../victim"s, "a/b"s}) {
    SCOPED_TRACE(target);
    const fs::path dir = tmp_.path() / "creds";
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::create_symlink(target, dir / "..data");
    EXPECT_THROW(read_directory(dir), error);
    try {
      publish_directory(dir, make_data({{"password", "new"}}));
      ADD_FAILURE() << "published over a foreign ..data";
    } catch (const error& e) {
      EXPECT_STREQ(to_string(e.kind()), "output");
      EXPECT_NE(std::string(e.what()).find("..data"), std::string::npos) << e.what();
    }
    EXPECT_EQ(read_file(victim / "password"), "keep");
    EXPECT_EQ(link_target(dir / "..data"), target);
    EXPECT_EQ(entries(dir), std::set<std::string>{"..data"}) << "the refused publish left something behind";
  }
}

TEST_F(CredentialsDir, KeysThatAreNotSmallRegularFilesAreRefusedWithoutBlocking) {
  const fs::path dir = tmp_.path() / "creds";
  publish_directory(dir, make_data({{"user", "u"}, {"password", "p"}}));
  const fs::path password = dir / link_target(dir / "..data") / "password";
  fs::remove(password);
  ASSERT_EQ(::mkfifo(password.c_str(), 0600), 0);
  EXPECT_THROW(read_directory(dir), error);  // blocks forever if the FIFO is opened for reading
  fs::remove(password);
  fs::create_symlink("/dev/zero", password);
  EXPECT_THROW(read_directory(dir), error);
  fs::remove(password);
  { std::ofstream(password) << std::string((1 << 20) + 1, 'x'); }
  EXPECT_THROW(read_directory(dir), error);
}

TEST_F(CredentialsDir, DirectoryOthersCanWriteIsRefused) {
  const fs::path dir = tmp_.path() / "creds";
  fs::create_directories(dir);
  for (mode_t mode : {0777, 0770, 0757, 01777}) {
    ASSERT_EQ(::chmod(dir.c_str(), mode), 0);
    EXPECT_THROW(publish_directory(dir, make_data({{"user", "u"}})), error) << std::oct << mode;
    EXPECT_THROW(read_directory(dir), error) << std::oct << mode;
    EXPECT_TRUE(entries(dir).empty()) << std::oct << mode;
  }
  ASSERT_EQ(::chmod(dir.c_str(), 0750), 0);
  publish_directory(dir, make_data({{"user", "u"}}));
  EXPECT_EQ(reveal_all(read_directory(dir)), (std::map<std::string, std::string>{{"user", "u"}}));
}

TEST(CredentialPaths, GenerationNamesAreOnlyTheShapeWeWrite) {
  EXPECT_TRUE(is_generation_name("..2020_01_01_00_00_00.AbCdEf"));
  EXPECT_TRUE(is_generation_name("..2024_12_31_23_59_59.1234567890"));  // kubelet's suffix
  for (const char* bad : {"", "..data", "/tmp/x", "../x", "..2020_01_01_00_00_00.", "..2020_01_01_00_00_00.a/b",
                          "..2020_01_01_00_00_00.ab/../../x", "..2020_01_01_00_00.abc", "x..2020_01_01_00_00_00.abc"})
    EXPECT_FALSE(is_generation_name(bad)) << bad;
}

TEST_F(CredentialsDir, SameOrInsideSeesThroughSymlinksAndSpelling) {
  const fs::path a = tmp_.path() / "a";
  fs::create_directories(a);
  fs::create_directory_symlink(a, tmp_.path() / "link");
  EXPECT_TRUE(same_or_inside(a, a));
  EXPECT_TRUE(same_or_inside(tmp_.path() / "link", a));
  EXPECT_TRUE(same_or_inside(a, tmp_.path() / "link"));
  EXPECT_TRUE(same_or_inside(fs::path(a.string() + "/./"), a));
  EXPECT_TRUE(same_or_inside(a / "store", a));
  EXPECT_FALSE(same_or_inside(a, a / "out"));
  EXPECT_FALSE(same_or_inside(tmp_.path() / "ab", a));
  EXPECT_FALSE(same_or_inside(tmp_.path() / "b", a));
}

// ---------------------------------------------------------------------------------------
// to_data / from_data / workload_view / to_json

credentials sample_credentials(bool with_standby, bool with_ca) {
  credentials c;
  c.server.type = engine_type::postgres;
  c.server.host = "db.example.com";
  c.server.port = 6543;
  c.server.tls = tls_mode::verify_full;
  if (with_ca) c.server.ca_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  c.server.admin_database = "postgres";
  c.database = "vcluster_app_abcdefghij";
  c.active = login{"vcluster_app_abcdefghij_a", secret("ActivePassword123"s)};
  if (with_standby) c.standby = login{"vcluster_app_abcdefghij_b", secret("StandbyPassword456"s)};
  return c;
}

TEST(CredentialData, ToDataWritesEveryDocumentedKey) {
  const credentials c = sample_credentials(true, true);
  const auto plain = reveal_all(to_data(c, "/etc/tenantdb/caCert"));
  EXPECT_EQ(plain.at(keys::database), "vcluster_app_abcdefghij");
  EXPECT_EQ(plain.at(keys::user), "vcluster_app_abcdefghij_a");
  EXPECT_EQ(plain.at(keys::password), "ActivePassword123");
  EXPECT_EQ(plain.at(keys::host), "db.example.com");
  EXPECT_EQ(plain.at(keys::port), "6543");
  EXPECT_EQ(plain.at(keys::type), "postgres");
  EXPECT_EQ(plain.at(keys::ssl_mode), "verify-full");
  EXPECT_EQ(plain.at(keys::ca_cert), c.server.ca_pem);
  EXPECT_EQ(plain.at(keys::standby_user), "vcluster_app_abcdefghij_b");
  EXPECT_EQ(plain.at(keys::standby_password), "StandbyPassword456");
  const data_source_parts parts{c.server, c.database, c.active.user, &c.active.password, "/etc/tenantdb/caCert"};
  EXPECT_EQ(plain.at(keys::data_source), kine_data_source(parts).reveal());
  EXPECT_NE(plain.at(keys::data_source).find("sslrootcert="), std::string::npos);
  EXPECT_EQ(plain.size(), 11U);
}

TEST(CredentialData, ToDataOmitsAbsentCaAndStandby) {
  const auto plain = reveal_all(to_data(sample_credentials(false, false), "/ca"));
  EXPECT_EQ(plain.count(keys::ca_cert), 0U);
  EXPECT_EQ(plain.count(keys::standby_user), 0U);
  EXPECT_EQ(plain.count(keys::standby_password), 0U);
  EXPECT_EQ(plain.count(keys::password), 1U);
}

TEST(CredentialData, TypeNamesMariadb) {
  credentials c = sample_credentials(false, false);
  c.server.type = engine_type::mysql;
  c.server.mariadb = true;
  EXPECT_EQ(to_data(c, "").at(keys::type).reveal(), "mariadb");
  c.server.mariadb = false;
  EXPECT_EQ(to_data(c, "").at(keys::type).reveal(), "mysql");
}

TEST(CredentialData, RoundTripsThroughFromData) {
  for (const bool standby : {false, true}) {
    const credentials c = sample_credentials(standby, true);
    const auto back = from_data(to_data(c, "/ca"), c.server);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->database, c.database);
    EXPECT_EQ(back->active.user, c.active.user);
    EXPECT_TRUE(back->active.password == c.active.password);
    EXPECT_EQ(back->server.host, c.server.host);
    EXPECT_EQ(back->server.port, c.server.port);
    ASSERT_EQ(back->standby.has_value(), standby);
    if (standby) {
      EXPECT_EQ(back->standby->user, c.standby->user);
      EXPECT_TRUE(back->standby->password == c.standby->password);
    }
  }
}

TEST(CredentialData, FromDataRejectsMissingOrEmptyRequiredKeys) {
  const credentials c = sample_credentials(true, true);
  for (const char* key : {keys::database, keys::user, keys::password}) {
    auto missing = to_data(c, "/ca");
    missing.erase(key);
    EXPECT_FALSE(from_data(missing, c.server).has_value()) << "without " << key;
    auto empty = to_data(c, "/ca");
    empty[key] = secret();
    EXPECT_FALSE(from_data(empty, c.server).has_value()) << "empty " << key;
  }
  EXPECT_FALSE(from_data({}, c.server).has_value());
}

TEST(CredentialData, WorkloadViewDropsTheStandbyAndPendingKeysOnly) {
  auto data = to_data(sample_credentials(true, true), "/ca");
  data[keys::pending_password] = secret("rotation-in-flight");
  auto expected = reveal_all(data);
  expected.erase(keys::standby_user);
  expected.erase(keys::standby_password);
  expected.erase(keys::pending_password);
  EXPECT_EQ(reveal_all(workload_view(data)), expected);
  EXPECT_EQ(reveal_all(data).size(), expected.size() + 3) << "the input is not modified";
}

TEST(CredentialData, ToJsonIsValidJsonWithEveryKey) {
  const auto data = make_data({{"password", "p\"w\\d\n\t\x01"},
                               {"caCert", "-----BEGIN-----\nabc\n"},
                               {"nul", "a\0b"s},
                               {"unicode", "\xC3\xBC\xE2\x98\x95"},
                               {"empty", ""}});
  const std::string json = to_json(data).reveal();
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(json.data(), json.size());
  ASSERT_FALSE(doc.HasParseError()) << json;
  ASSERT_TRUE(doc.IsObject());
  EXPECT_EQ(doc.MemberCount(), data.size());
  for (const auto& [key, value] : data) {
    ASSERT_TRUE(doc.HasMember(key.c_str())) << key;
    const auto& v = doc[key.c_str()];
    ASSERT_TRUE(v.IsString());
    EXPECT_EQ(std::string(v.GetString(), v.GetStringLength()), value.reveal()) << key;
  }
  EXPECT_EQ(to_json({}).reveal(), "{}");
}

}  // namespace
}  // namespace tenantdb
