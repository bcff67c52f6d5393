#include "outages.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <sys/mount.h>
#include <unistd.h>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "tenantdb/engine.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/rotation.hpp"
#include "testdb.hpp"

namespace tenantdb::test::outages {

using namespace std::chrono_literals;

std::vector<std::string> error_lines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    const auto end = text.find('\n', start);
    const std::string line = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (line.find("\"level\":\"error\"") != std::string::npos) out.push_back(line);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

// ---------------------------------------------------------------------------------------

file_client::file_client(fs::path dir) : dir_(std::move(dir)), thread_([this] { loop(); }) {}

file_client::~file_client() {
  stop();
}

void file_client::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::vector<file_client::attempt> file_client::failures() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failures_;
}

void file_client::loop() {
  db_timeouts t;
  t.connect = 3s;
  t.statement = 5s;
  while (!stop_) {
    const auto start = steady::now();
    std::string what;
    try {
      const credential_data d = read_directory(dir_);
      const server_address server = server_from_data(d);
      verify_login(server, login{value_of(d, keys::user), secret(value_of(d, keys::password))},
                   value_of(d, keys::database), t);
      ++logins_;
    } catch (const std::exception& e) {
      what = e.what();
    }
    if (!what.empty()) {
      std::lock_guard<std::mutex> lock(mu_);
      failures_.push_back({start, steady::now(), what});
    }
    std::this_thread::sleep_for(20ms);
  }
}

// ---------------------------------------------------------------------------------------

void OutageFixture::SetUp() {
  conn_ = load_connector(engine());
  std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  for (char& c : name)
    if (c == '/') c = '_';
  work_ = fs::temp_directory_path() / ("tenantdb-outage-" + std::to_string(::getpid()) + "-" + name);
  fs::remove_all(work_);
  fs::create_directories(work_);
  who_ = unique_tenant("out");
  who_.namespace_name = ns;
  secret_name_ = "vc-db-" + who_.name;
  set_up_pod(api_, pod_, engine(), secret_name_);
  kubeconfig_ = (work_ / "kubeconfig").string();
  write_kubeconfig(kubeconfig_, api_, pod_);
}

void OutageFixture::TearDown() {
  for (auto& s : sidecars_) {
    if (HasFailure() && s->proc)
      std::cerr << "--- " << s->name << " (last lines of stderr)\n" << tail(s->proc->err(), 40) << "\n";
    if (s->proc) {
      s->proc->kill(SIGKILL);
      s->proc->wait(10s);
    }
  }
  sidecars_.clear();
  for (const auto& m : mounts_)
    if (::umount2(m.c_str(), MNT_DETACH) != 0)
      std::cerr << "cannot unmount " << m << ": " << std::strerror(errno) << "\n";
  mounts_.clear();
  std::error_code ec;
  fs::remove_all(work_, ec);
}

process_result OutageFixture::init(const fs::path& out, const std::vector<std::string>& extra) const {
  std::vector<std::string> args = {
      TENANTDB_INIT_BIN,       "--tenant",     who_.name,  "--namespace", ns, "--connector",
      "platform/db-connector", "--kubeconfig", kubeconfig_};
  if (!out.empty()) args.insert(args.end(), {"--output-dir", out.string()});
  if (std::find(extra.begin(), extra.end(), "--timeout") == extra.end()) args.insert(args.end(), {"--timeout", "60s"});
  args.insert(args.end(), extra.begin(), extra.end());
  return run_process(args, {{"KUBECONFIG", ""}, {"POD_NAMESPACE", ""}, {"TENANTDB_TENANT", ""}});
}

sidecar& OutageFixture::start(const std::string& name, const fs::path& out, const std::vector<std::string>& extra,
                              const std::map<std::string, std::string>& env) {
  auto s = std::make_unique<sidecar>();
  s->name = name;
  s->out = out;
  s->port = unused_port();
  s->admin = unused_port();
  std::vector<std::string> args = {TENANTDB_SIDECAR_BIN,
                                   "--tenant",
                                   who_.name,
                                   "--namespace",
                                   ns,
                                   "--kubeconfig",
                                   kubeconfig_,
                                   "--output-dir",
                                   out.string(),
                                   "--listen",
                                   "127.0.0.1:" + std::to_string(s->port),
                                   "--admin-listen",
                                   "127.0.0.1:" + std::to_string(s->admin),
                                   "--pod-name",
                                   name,
                                   "--sync-interval",
                                   "300ms",
                                   "--check-interval",
                                   "1s",
                                   "--log-level",
                                   "debug"};
  args.insert(args.end(), extra.begin(), extra.end());
  std::map<std::string, std::string> e = {
      {"KUBECONFIG", ""},      {"POD_NAMESPACE", ""},          {"POD_NAME", ""},
      {"TENANTDB_TENANT", ""}, {"TENANTDB_TEST_CRASH_AT", ""}, {"TENANTDB_TEST_PAUSE_AT", ""}};
  for (const auto& [k, v] : env) e[k] = v;
  s->proc = std::make_unique<child_process>(args, e, (work_ / name).string() + "-" + std::to_string(++launches_));
  sidecars_.push_back(std::move(s));
  return *sidecars_.back();
}

void OutageFixture::stop(sidecar& s) {
  s.proc->kill(SIGTERM);
  EXPECT_EQ(s.proc->wait(20s), 0) << s.name << ": " << tail(s.proc->err(), 20);
}

std::string OutageFixture::stored(const std::string& key) const {
  return api_.secret_value(ns, secret_name_, key).value_or("");
}

std::string OutageFixture::annotation(const std::string& key) const {
  return test::secret_annotation(api_, ns, secret_name_, key);
}

bool OutageFixture::intent_left() const {
  return !annotation(annotations::rotation).empty() || api_.secret_value(ns, secret_name_, pending_password_key);
}

void OutageFixture::request_rotation() {
  const auto object = api_.get_object("secrets", ns, secret_name_);
  ASSERT_TRUE(object) << "no credentials Secret to annotate";
  rapidjson::Document doc;
  doc.Parse(object->data(), object->size());
  ASSERT_FALSE(doc.HasParseError());
  auto& alloc = doc.GetAllocator();
  auto& meta = doc["metadata"];
  if (!meta.HasMember("annotations")) meta.AddMember("annotations", rapidjson::Value(rapidjson::kObjectType), alloc);
  auto& a = meta["annotations"];
  a.RemoveMember(annotations::rotate_now);
  a.AddMember(rapidjson::Value(annotations::rotate_now, alloc), rapidjson::Value("1"), alloc);
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  doc.Accept(writer);
  api_.put_object(std::string_view(buffer.GetString(), buffer.GetSize()));
}

bool OutageFixture::logs_in(const std::string& user, const std::string& password) const {
  try {
    db_timeouts t;
    t.connect = 10s;
    verify_login(conn_.server, login{user, secret(password)}, stored(keys::database), t);
    return true;
  } catch (const error& e) {
    if (e.kind() != error_kind::verification) ADD_FAILURE() << "login check could not run: " << e.what();
    return false;
  }
}

std::vector<std::string> OutageFixture::problems(const fs::path& out) const {
  std::vector<std::string> found;
  if (intent_left())
    found.push_back("a rotation is still recorded in the Secret: " + annotation(annotations::rotation));
  const std::string user = stored(keys::user);
  const std::string password = stored(keys::password);
  if (user.empty() || password.empty()) found.push_back("the Secret holds no active account");
  if (!logs_in(user, password)) found.push_back("the Secret's active account " + user + " is refused");
  const std::string standby = stored(keys::standby_user);
  if (!standby.empty() && !logs_in(standby, stored(keys::standby_password)))
    found.push_back("the Secret's standby account " + standby + " is refused");
  const credential_data files = read_directory(out);
  for (const char* key : {keys::user, keys::password, keys::database, keys::host, keys::port, keys::data_source})
    if (value_of(files, key) != stored(key))
      found.push_back(std::string("the files' ") + key + " differs from the Secret's");
  for (const char* key : {keys::standby_user, keys::standby_password, keys::pending_password})
    if (files.count(key) != 0) found.push_back(std::string("the files hold ") + key);
  return found;
}

bool OutageFixture::working_everywhere(const fs::path& out) const {
  const auto found = problems(out);
  for (const auto& p : found) ADD_FAILURE() << p;
  return found.empty();
}

bool OutageFixture::eventually_working(const fs::path& out, std::chrono::milliseconds timeout) const {
  // A sidecar that keeps rotating is between steps now and then: all must hold at once.
  std::vector<std::string> found;
  if (eventually([&] { return (found = problems(out)).empty(); }, timeout)) return true;
  ADD_FAILURE() << "the Secret and the files did not settle within " << timeout.count() << " ms";
  for (const auto& p : found) ADD_FAILURE() << p;
  return false;
}

bool OutageFixture::mount_tmpfs(const fs::path& dir, const std::string& size, bool read_only, std::string& why) {
  fs::create_directories(dir);
  const unsigned long flags = MS_NOSUID | MS_NODEV | MS_NOEXEC | (read_only ? MS_RDONLY : 0);
  const std::string data = "size=" + size + ",mode=0755";
  if (::mount("tmpfs", dir.c_str(), "tmpfs", flags, data.c_str()) != 0) {
    why = std::string("cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): ") + std::strerror(errno);
    return false;
  }
  mounts_.push_back(dir);
  return true;
}

void OutageFixture::remount(const fs::path& dir, const std::string& size, bool read_only) {
  const unsigned long flags = MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC | (read_only ? MS_RDONLY : 0);
  const std::string data = "size=" + size + ",mode=0755";
  if (::mount("tmpfs", dir.c_str(), "tmpfs", flags, data.c_str()) != 0)
    ADD_FAILURE() << "cannot remount " << dir << (read_only ? " read-only: " : " read-write: ") << std::strerror(errno);
}

fs::path OutageFixture::fill(const fs::path& dir) {
  const fs::path filler = dir / "..filler";
  const int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    ADD_FAILURE() << "cannot create " << filler << ": " << std::strerror(errno);
    return filler;
  }
  const std::string block(4096, 'x');
  while (::write(fd, block.data(), block.size()) > 0) {
  }
  const int err = errno;
  ::close(fd);
  if (err != ENOSPC) ADD_FAILURE() << "filling " << dir << " ended with " << std::strerror(err) << ", not ENOSPC";
  return filler;
}

}  // namespace tenantdb::test::outages
