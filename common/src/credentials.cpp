#include "tenantdb/credentials.hpp"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tenantdb/dsn.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/log.hpp"
#include "unique_fd.hpp"

namespace tenantdb {
namespace fs = std::filesystem;
namespace {

constexpr const char* data_link = "..data";
constexpr const char* data_link_tmp = "..data_tmp";
constexpr const char* lock_name = "..tenantdb.lock";

[[noreturn]] void fail_io(const std::string& what, const fs::path& path, int err) {
  throw error(error_kind::output, what + " " + path.string() + ": " + std::strerror(err)).about(path.string());
}

bool valid_key(const std::string& key) {
  if (key.empty() || key.size() > 253 || key.rfind("..", 0) == 0) return false;
  for (char c : key)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
      return false;
  return true;
}

void fsync_path(const fs::path& path) {
  unique_fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) fail_io("cannot open", path, errno);
  if (::fsync(fd.get()) != 0) fail_io("cannot fsync", path, errno);
}

void write_file(const fs::path& path, const std::string& content, mode_t mode) {
  unique_fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd) fail_io("cannot create", path, errno);
  if (::fchmod(fd.get(), mode) != 0) fail_io("cannot chmod", path, errno);  // umask must not widen or narrow it
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_io("cannot write", path, errno);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) fail_io("cannot fsync", path, errno);
}

// Replaces `link` with a symlink to `target` atomically (create beside it, rename over).
void swap_symlink(const fs::path& dir, const std::string& link, const std::string& target) {
  const fs::path tmp = dir / (std::string(data_link_tmp) + "." + link);
  ::unlink(tmp.c_str());
  if (::symlink(target.c_str(), tmp.c_str()) != 0) fail_io("cannot create symlink", tmp, errno);
  if (::rename(tmp.c_str(), (dir / link).c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail_io("cannot rename symlink to", dir / link, err);
  }
}

std::string read_link(const fs::path& link) {
  char buf[4096];
  const ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  if (n <= 0) return {};
  return std::string(buf, static_cast<std::size_t>(n));
}

std::string timestamp_dir_pattern() {
  const auto now = std::chrono::system_clock::now();
  const auto secs = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "..%Y_%m_%d_%H_%M_%S.", &tm);
  return std::string(buf) + "XXXXXX";
}

// Everything a crashed or finished publish may have left: its own timestamped data
// directories (other than the live one) and temporary links. Nothing else is touched:
// lock files belong to writers that may be waiting on them right now.
void remove_stale(const fs::path& dir, const std::string& live) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const bool data_dir = name.size() > 3 && name.rfind("..", 0) == 0 && name[2] >= '0' && name[2] <= '9';
    const bool temp_link = name.rfind(data_link_tmp, 0) == 0;
    if ((data_dir && name != live) || temp_link) fs::remove_all(entry.path(), ec);
  }
}

}  // namespace

mode_t parse_file_mode(std::string_view text) {
  bool ok = !text.empty() && text.size() <= 4;
  unsigned value = 0;
  for (char c : text) {
    ok = ok && c >= '0' && c <= '7';
    value = value * 8 + static_cast<unsigned>(c - '0');
  }
  if (!ok || (value & 0004) != 0 || (value & 0400) == 0)
    throw error(error_kind::usage, "--file-mode must be an octal mode that the owner can read and others cannot, e.g. 0440")
        .about("--file-mode");
  return static_cast<mode_t>(value);
}

credential_data to_data(const credentials& creds, const std::string& ca_file) {
  credential_data out;
  out[keys::database] = secret(creds.database);
  out[keys::user] = secret(creds.active.user);
  out[keys::password] = creds.active.password;
  out[keys::host] = secret(creds.server.host);
  out[keys::port] = secret(std::to_string(creds.server.port));
  out[keys::type] = secret(std::string(engine_name(creds.server)));
  out[keys::ssl_mode] = secret(std::string(to_string(creds.server.tls)));
  out[keys::data_source] = kine_data_source({creds.server, creds.database, creds.active.user, &creds.active.password, ca_file});
  if (!creds.server.ca_pem.empty()) out[keys::ca_cert] = secret(creds.server.ca_pem);
  if (creds.standby) {
    out[keys::standby_user] = secret(creds.standby->user);
    out[keys::standby_password] = creds.standby->password;
  }
  return out;
}

std::optional<credentials> from_data(const credential_data& data, const server_address& server) {
  const auto get = [&](const char* key) -> const secret* {
    const auto it = data.find(key);
    return it == data.end() || it->second.empty() ? nullptr : &it->second;
  };
  const secret* database = get(keys::database);
  const secret* user = get(keys::user);
  const secret* password = get(keys::password);
  if (database == nullptr || user == nullptr || password == nullptr) return std::nullopt;
  credentials out;
  out.server = server;
  out.database = database->reveal();
  out.active = login{user->reveal(), *password};
  const secret* standby_user = get(keys::standby_user);
  const secret* standby_password = get(keys::standby_password);
  if ((standby_user == nullptr) != (standby_password == nullptr)) return std::nullopt;  // half a pair: damaged
  if (standby_user != nullptr) out.standby = login{standby_user->reveal(), *standby_password};
  return out;
}

bool same_data(const credential_data& a, const credential_data& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [key, value] : a) {
    const auto it = b.find(key);
    if (it == b.end() || !(it->second == value)) return false;
  }
  return true;
}

credential_data workload_view(const credential_data& data) {
  // Only the keys tenantdb defines, whatever else the store holds: anyone who can update
  // the Secret (or a Secret put in its place) must not choose what lands in the
  // workload's files. Never the standby account nor a pending password.
  static constexpr const char* published[] = {keys::database, keys::user,        keys::password,
                                              keys::host,     keys::port,        keys::type,
                                              keys::ssl_mode, keys::data_source, keys::ca_cert};
  credential_data out;
  for (const char* key : published)
    if (const auto it = data.find(key); it != data.end()) out.emplace(key, it->second);
  return out;
}

void publish_directory(const fs::path& dir, const credential_data& data, const directory_options& options) {
  for (const auto& [key, value] : data)
    if (!valid_key(key)) throw error(error_kind::internal, "invalid credential key \"" + key + "\"");
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    if (::mkdir(dir.c_str(), options.dir_mode) != 0 && errno != EEXIST) fail_io("cannot create directory", dir, errno);
  }
  // One writer at a time: the sidecar, or an init that runs again after a crash.
  const fs::path lock_path = dir / lock_name;
  unique_fd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!lock) fail_io("cannot open lock file", lock_path, errno);
  if (::flock(lock.get(), LOCK_EX) != 0) fail_io("cannot lock", lock_path, errno);

  const std::string old_target = read_link(dir / data_link);
  remove_stale(dir, old_target);

  std::string pattern = (dir / timestamp_dir_pattern()).string();
  if (::mkdtemp(pattern.data()) == nullptr) fail_io("cannot create data directory in", dir, errno);
  const fs::path new_dir(pattern);
  const std::string new_name = new_dir.filename().string();
  try {
    if (::chmod(new_dir.c_str(), options.dir_mode) != 0) fail_io("cannot chmod", new_dir, errno);
    for (const auto& [key, value] : data) write_file(new_dir / key, value.reveal(), options.file_mode);
    fsync_path(new_dir);
    if (options.fault) options.fault(publish_fault_point);
    swap_symlink(dir, data_link, new_name);
    for (const auto& [key, value] : data) {
      const fs::path link = dir / key;
      if (read_link(link) != std::string(data_link) + "/" + key) swap_symlink(dir, key, std::string(data_link) + "/" + key);
    }
    // Keys that are gone: their links point into ..data and would dangle.
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("..", 0) == 0 || data.count(name) != 0) continue;
      if (read_link(entry.path()) == std::string(data_link) + "/" + name) ::unlink(entry.path().c_str());
    }
    fsync_path(dir);
  } catch (...) {
    if (read_link(dir / data_link) != new_name) fs::remove_all(new_dir, ec);
    throw;
  }
  if (!old_target.empty() && old_target != new_name) fs::remove_all(dir / old_target, ec);
  fsync_path(dir);
}

credential_data read_directory(const fs::path& dir) {
  credential_data out;
  // Resolve ..data once so every key comes from the same generation. If that generation
  // is removed while we read, start over with the new one.
  for (int attempt = 0; attempt < 50; ++attempt) {
    out.clear();
    const std::string target = read_link(dir / data_link);
    if (target.empty()) return out;
    const fs::path data_dir = dir / target;
    std::error_code ec;
    bool vanished = false;
    for (const auto& entry : fs::directory_iterator(data_dir, ec)) {
      const std::string name = entry.path().filename().string();
      unique_fd fd(::open(entry.path().c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
      if (!fd) {
        vanished = true;
        break;
      }
      std::string content;
      char buf[4096];
      ssize_t n;
      while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) content.append(buf, static_cast<std::size_t>(n));
      out[name] = secret(std::move(content));
    }
    if (ec) vanished = true;
    // A generation is deleted only after ..data moved away from it: if the link still
    // points where it did, nothing we read was being deleted.
    if (!vanished && read_link(dir / data_link) == target) return out;
  }
  throw error(error_kind::output, "the credential directory " + dir.string() + " kept changing while being read");
}

secret to_json(const credential_data& data) {
  std::string out = "{";
  bool first = true;
  for (const auto& [key, value] : data) {
    if (!first) out.push_back(',');
    first = false;
    log::append_json_string(out, key);
    out.push_back(':');
    log::append_json_string(out, value.reveal());
  }
  out.push_back('}');
  return secret(std::move(out));
}

}  // namespace tenantdb
