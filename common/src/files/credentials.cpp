#include "tenantdb/credentials.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <optional>
#include <random>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "base/small_file.hpp"
#include "base/unique_fd.hpp"
#include "tenantdb/dsn.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/log.hpp"

namespace tenantdb {
namespace fs = std::filesystem;
namespace {

constexpr const char* data_link = "..data";
constexpr const char* data_link_tmp = "..data_tmp";
constexpr const char* lock_name = "..tenantdb.lock";

// What one read of a credential directory takes at most: a Secret holds at most 1 MiB,
// so no key of ours is bigger, and a directory with more entries is not ours.
constexpr std::size_t max_file_bytes = std::size_t{1} << 20;
constexpr std::size_t max_entries = 1024;

[[noreturn]] void fail_io(const std::string& what, const fs::path& path, int err) {
  throw error(error_kind::output, what + " " + path.string() + ": " + std::strerror(err)).about(path.string());
}

// The directory holds something tenantdb did not put there and will not touch.
[[noreturn]] void refuse(const fs::path& dir, const std::string& what) {
  throw error(error_kind::output, "refusing the credential directory " + dir.string() + ": " + what)
      .about(dir.string());
}

bool valid_key(const std::string& key) {
  if (key.empty() || key.size() > 253 || key.rfind("..", 0) == 0) return false;
  for (char c : key)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
          c == '.'))
      return false;
  return true;
}

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

}  // namespace

bool is_generation_name(std::string_view name) {
  // "..YYYY_MM_DD_HH_MM_SS." then a random suffix: what publish_directory and kubelet write.
  constexpr std::string_view shape = "..dddd_dd_dd_dd_dd_dd.";
  if (name.size() <= shape.size() || name.size() > shape.size() + 64) return false;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const char c = name[i];
    if (shape[i] == 'd' ? !(c >= '0' && c <= '9') : c != shape[i]) return false;
  }
  for (char c : name.substr(shape.size()))
    if (!is_alnum(c)) return false;
  return true;
}

namespace {

// The directory must be a directory this process's user owns that nobody else can write:
// whoever else can write it can swap ..data and its files under us.
void check_dir_safe(int fd, const fs::path& dir) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail_io("cannot stat", dir, errno);
  if (!S_ISDIR(st.st_mode)) refuse(dir, "it is not a directory");
  if (st.st_uid != ::geteuid())
    refuse(dir, "it is owned by uid " + std::to_string(st.st_uid) + ", not by this process's uid " +
                    std::to_string(::geteuid()) + "; give a directory this user owns (or one tenantdb creates)");
  if ((st.st_mode & 0022) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    refuse(dir, std::string("it is writable by group or others (mode ") + mode +
                    "); remove that write access (chmod go-w) or give a directory tenantdb creates");
  }
}

// Opens `dir` (following a symlink in the path the caller gave) and checks it is safe.
// Returns an invalid fd if it does not exist and `create` is false.
unique_fd open_dir(const fs::path& dir, bool create, mode_t dir_mode) {
  unique_fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd && errno == ENOENT && create) {
    int rc = ::mkdir(dir.c_str(), dir_mode);
    if (rc != 0 && errno == ENOENT) {
      std::error_code ec;  // missing parents, as mkdir -p makes them
      fs::create_directories(dir.parent_path(), ec);
      rc = ::mkdir(dir.c_str(), dir_mode);
    }
    if (rc != 0 && errno != EEXIST) fail_io("cannot create directory", dir, errno);
    fd.reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  }
  if (!fd) {
    if (errno == ENOENT && !create) return fd;
    fail_io("cannot open", dir, errno);
  }
  check_dir_safe(fd.get(), dir);
  return fd;
}

// The link's text, "" if there is no such entry. Refuses an entry that is not a symlink.
std::string read_link_at(int dirfd, const std::string& name, const fs::path& dir) {
  char buf[4096];
  const ssize_t n = ::readlinkat(dirfd, name.c_str(), buf, sizeof buf - 1);
  if (n < 0) {
    if (errno == ENOENT) return {};
    if (errno == EINVAL) refuse(dir, name + " is not a symlink");
    fail_io("cannot read link", dir / name, errno);
  }
  return std::string(buf, static_cast<std::size_t>(n));
}

// The generation ..data names, "" if there is none. Anything but a sibling of the shape
// this project (or kubelet) writes is refused: an absolute path, "../x" or "a/b" would
// make us read, and later delete, whatever it names.
std::string current_generation(int dirfd, const fs::path& dir) {
  std::string target = read_link_at(dirfd, data_link, dir);
  if (!target.empty() && !is_generation_name(target))
    refuse(dir, std::string(data_link) +
                    " points somewhere tenantdb never writes (only a sibling \"..<timestamp>.<suffix>\" directory is "
                    "accepted); remove the link if the directory is meant for tenantdb");
  return target;
}

// Entry names of an open directory ("." and ".." left out), at most max_entries.
std::vector<std::string> list_dir(int fd, const fs::path& dir) {
  const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) fail_io("cannot read", dir, errno);
  DIR* d = ::fdopendir(copy);
  if (d == nullptr) {
    const int err = errno;
    ::close(copy);
    fail_io("cannot read", dir, err);
  }
  ::rewinddir(d);
  std::vector<std::string> out;
  errno = 0;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (out.size() == max_entries) {
      ::closedir(d);
      refuse(dir, "it holds more than " + std::to_string(max_entries) + " entries");
    }
    out.push_back(name);
  }
  const int err = errno;
  ::closedir(d);
  if (err != 0) fail_io("cannot read", dir, err);
  return out;
}

// Removes the entry `name` of `dirfd` without following any symlink: a link or a file is
// unlinked, a directory is emptied through its own descriptor (a few levels deep at most:
// ours are flat) and removed. Best effort: errors are left for the next publish.
void remove_tree_at(int dirfd, const std::string& name, int depth = 0) {
  if (::unlinkat(dirfd, name.c_str(), 0) == 0 || errno != EISDIR) return;
  if (depth < 4) {
    unique_fd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return;
    try {
      for (const auto& entry : list_dir(fd.get(), name)) remove_tree_at(fd.get(), entry, depth + 1);
    } catch (const error&) {
      return;
    }
  }
  ::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR);
}

void fsync_fd(int fd, const fs::path& path) {
  if (::fsync(fd) != 0) fail_io("cannot fsync", path, errno);
}

void write_file_at(int dirfd, const fs::path& dir, const std::string& name, const std::string& content, mode_t mode) {
  const fs::path path = dir / name;
  unique_fd fd(::openat(dirfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
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
  fsync_fd(fd.get(), path);
}

// Reads one key of a generation: a regular file (never a FIFO, device or symlink, which
// could block us or feed us without end) of at most max_file_bytes. std::nullopt if it
// vanished meanwhile.
std::optional<std::string> read_key_at(int dirfd, const fs::path& dir, const std::string& name) {
  unique_fd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return std::nullopt;
    if (errno == ELOOP) refuse(dir, name + " is a symlink, not a file");
    fail_io("cannot open", dir / name, errno);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) fail_io("cannot stat", dir / name, errno);
  if (!S_ISREG(st.st_mode)) refuse(dir, name + " is not a regular file");
  if (st.st_size < 0 || static_cast<std::size_t>(st.st_size) > max_file_bytes)
    refuse(dir, name + " is larger than " + std::to_string(max_file_bytes) + " bytes");
  std::string content;
  // read_small_fd keeps no unwiped copy of a password; the file may grow while we read.
  if (const int rc = read_small_fd(fd.get(), max_file_bytes, content); rc != 0) {
    if (rc == EFBIG) refuse(dir, name + " is larger than " + std::to_string(max_file_bytes) + " bytes");
    fail_io("cannot read", dir / name, rc);
  }
  return content;
}

// Replaces `link` with a symlink to `target` atomically (create beside it, rename over).
void swap_symlink(int dirfd, const fs::path& dir, const std::string& link, const std::string& target) {
  const std::string tmp = std::string(data_link_tmp) + "." + link;
  ::unlinkat(dirfd, tmp.c_str(), 0);
  if (::symlinkat(target.c_str(), dirfd, tmp.c_str()) != 0) fail_io("cannot create symlink", dir / tmp, errno);
  if (::renameat(dirfd, tmp.c_str(), dirfd, link.c_str()) != 0) {
    const int err = errno;
    ::unlinkat(dirfd, tmp.c_str(), 0);
    fail_io("cannot rename symlink to", dir / link, err);
  }
}

std::string timestamp_prefix() {
  const auto now = std::chrono::system_clock::now();
  const auto secs = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "..%Y_%m_%d_%H_%M_%S.", &tm);
  return buf;
}

// Creates a fresh, empty generation directory (mode 0700 until the caller sets its own)
// and returns its name.
std::string make_generation(int dirfd, const fs::path& dir) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string name = timestamp_prefix();
    for (int i = 0; i < 6; ++i) name.push_back(alphabet[rng() % (sizeof alphabet - 1)]);
    if (::mkdirat(dirfd, name.c_str(), 0700) == 0) return name;
    if (errno != EEXIST) fail_io("cannot create data directory in", dir, errno);
  }
  fail_io("cannot create data directory in", dir, EEXIST);
}

// Everything a crashed or finished publish may have left: its own timestamped data
// directories (other than the live one) and temporary links. Nothing else is touched:
// lock files belong to writers that may be waiting on them right now.
void remove_stale(int dirfd, const fs::path& dir, const std::string& live) {
  for (const auto& name : list_dir(dirfd, dir)) {
    const bool data_dir = name.size() > 3 && name.rfind("..", 0) == 0 && name[2] >= '0' && name[2] <= '9';
    const bool temp_link = name.rfind(data_link_tmp, 0) == 0;
    if ((data_dir && name != live) || temp_link) remove_tree_at(dirfd, name);
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
    throw error(error_kind::usage,
                "--file-mode must be an octal mode that the owner can read and others cannot, e.g. 0440")
        .about("--file-mode");
  return static_cast<mode_t>(value);
}

rotation_strategy parse_strategy(std::string_view text) {
  if (text == "dual") return rotation_strategy::dual;
  if (text == "in-place") return rotation_strategy::in_place;
  throw error(error_kind::usage, "--strategy must be dual or in-place").about("--strategy");
}

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The CA path the init put into a PostgreSQL dataSource (its sslrootcert parameter), so
// a sidecar started without --ca-file does not drop it from the dataSource it rewrites:
// without it libpq would look for ~/.postgresql/root.crt and the workload could not log in.
std::string ca_file_in_data_source(const std::string& url) {
  const auto query = url.find('?');
  if (query == std::string::npos) return {};
  constexpr std::string_view param = "sslrootcert=";
  for (std::size_t pos = query + 1; pos < url.size();) {
    const auto end = std::min(url.find('&', pos), url.size());
    const std::string_view item(url.data() + pos, end - pos);
    if (item.substr(0, param.size()) == param) {
      std::string out;
      const std::string_view v = item.substr(param.size());
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (v[i] == '%' && i + 2 < v.size() && hex_value(v[i + 1]) >= 0 && hex_value(v[i + 2]) >= 0) {
          out.push_back(static_cast<char>(hex_value(v[i + 1]) * 16 + hex_value(v[i + 2])));
          i += 2;
        } else {
          out.push_back(v[i]);
        }
      }
      return out;
    }
    pos = end + 1;
  }
  return {};
}

bool has_control_character(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

}  // namespace

credential_record parse_record(const credential_data& data) {
  credential_record out;
  const auto value = [&](const char* key) -> const secret* {
    const auto it = data.find(key);
    return it == data.end() || it->second.empty() ? nullptr : &it->second;
  };
  // The server keys are single-line words: a control character makes the key unusable.
  const auto text = [&](const char* key) -> const std::string* {
    const secret* v = value(key);
    if (v == nullptr) return nullptr;
    if (has_control_character(v->reveal())) {
      out.invalid[key] = "contains a control character";
      return nullptr;
    }
    return &v->reveal();
  };

  if (const std::string* type = text(keys::type)) {
    out.engine = parse_engine_type(*type);
    if (!out.engine) out.invalid[keys::type] = "must be postgres, mysql or mariadb";
  }
  if (const std::string* host = text(keys::host)) out.host = *host;
  if (const std::string* port = text(keys::port)) {
    unsigned long number = 0;
    const bool digits =
        port->size() <= 5 && std::all_of(port->begin(), port->end(), [](char c) { return c >= '0' && c <= '9'; });
    if (digits) number = std::stoul(*port);
    if (digits && number >= 1 && number <= 65535) {
      out.port = static_cast<std::uint16_t>(number);
    } else {
      out.invalid[keys::port] = "must be a port number from 1 to 65535";
    }
  }
  if (const std::string* mode = text(keys::ssl_mode)) {
    static constexpr tls_mode modes[] = {tls_mode::disable, tls_mode::allow,     tls_mode::prefer,
                                         tls_mode::require, tls_mode::verify_ca, tls_mode::verify_full};
    const auto it = std::find_if(std::begin(modes), std::end(modes), [&](tls_mode m) { return to_string(m) == *mode; });
    if (it != std::end(modes)) {
      out.tls = *it;
    } else {
      out.invalid[keys::ssl_mode] = "must be one of disable, allow, prefer, require, verify-ca, verify-full";
    }
  }
  if (const secret* ca = value(keys::ca_cert)) out.ca_pem = ca->reveal();
  if (const secret* v = value(keys::database)) out.database = v->reveal();
  if (const secret* v = value(keys::user)) out.user = v->reveal();
  if (const secret* v = value(keys::password)) out.password = *v;
  if (const secret* v = value(keys::standby_user)) out.standby_user = v->reveal();
  if (const secret* v = value(keys::standby_password)) out.standby_password = *v;
  if (const secret* v = value(keys::pending_password)) out.pending_password = *v;
  if (const secret* v = value(keys::data_source)) out.data_source_ca_file = ca_file_in_data_source(v->reveal());
  return out;
}

std::optional<login> credential_record::active() const {
  if (user.empty() || password.empty()) return std::nullopt;
  return login{user, password};
}

std::optional<login> credential_record::standby() const {
  if (standby_user.empty() || standby_password.empty()) return std::nullopt;
  return login{standby_user, standby_password};
}

server_address credential_record::server() const {
  const auto bad_key = [](const char* key, const std::string& what) {
    return error(error_kind::connector, std::string("credentials key \"") + key + "\" " + what).about(key);
  };
  const auto usable = [&](const char* key) {
    if (const auto it = invalid.find(key); it != invalid.end()) throw bad_key(key, it->second);
  };
  server_address out;
  usable(keys::type);
  if (!engine) throw bad_key(keys::type, "is missing: the init writes postgres, mysql or mariadb");
  out.type = engine->type;
  out.mariadb = engine->mariadb;

  usable(keys::host);
  if (host.empty()) throw bad_key(keys::host, "is missing");
  if (host.size() > 253 || host.find_first_of(" /@?#") != std::string::npos)
    throw bad_key(keys::host, "is not a host name or address");
  out.host = host;

  usable(keys::port);
  if (port == 0) throw bad_key(keys::port, "is missing");
  out.port = port;

  // Absent means the safe default; to_data always writes it.
  usable(keys::ssl_mode);
  out.tls = tls.value_or(tls_mode::verify_full);

  if (!ca_pem.empty()) {
    try {
      validate_ca_pem(ca_pem, keys::ca_cert);
    } catch (const error&) {
      throw bad_key(keys::ca_cert, "does not hold a PEM X.509 CA certificate");
    }
    out.ca_pem = ca_pem;
  }
  return out;
}

std::optional<credentials> credential_record::to_credentials(const server_address& server) const {
  const auto current = active();
  if (database.empty() || !current) return std::nullopt;
  if (standby_user.empty() != standby_password.empty()) return std::nullopt;  // half a pair: damaged
  credentials out;
  out.server = server;
  out.database = database;
  out.active = *current;
  out.standby = standby();
  return out;
}

server_address server_from_data(const credential_data& data) {
  return parse_record(data).server();
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
  out[keys::data_source] =
      kine_data_source({creds.server, creds.database, creds.active.user, &creds.active.password, ca_file});
  if (!creds.server.ca_pem.empty()) out[keys::ca_cert] = secret(creds.server.ca_pem);
  if (creds.standby) {
    out[keys::standby_user] = secret(creds.standby->user);
    out[keys::standby_password] = creds.standby->password;
  }
  return out;
}

std::optional<credentials> from_data(const credential_data& data, const server_address& server) {
  return parse_record(data).to_credentials(server);
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
  // Everything below works relative to this descriptor and follows no symlink inside it.
  const unique_fd dirfd = open_dir(dir, true, options.dir_mode);
  current_generation(dirfd.get(), dir);  // refuses a foreign ..data before the lock file is made
  // One writer at a time: the sidecar, or an init that runs again after a crash.
  unique_fd lock(::openat(dirfd.get(), lock_name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600));
  if (!lock) fail_io("cannot open lock file", dir / lock_name, errno);
  struct stat lock_st {};
  if (::fstat(lock.get(), &lock_st) != 0 || !S_ISREG(lock_st.st_mode))
    refuse(dir, std::string(lock_name) + " is not a regular file");
  if (::flock(lock.get(), LOCK_EX) != 0) fail_io("cannot lock", dir / lock_name, errno);

  const std::string old_target = current_generation(dirfd.get(), dir);
  remove_stale(dirfd.get(), dir, old_target);

  const std::string new_name = make_generation(dirfd.get(), dir);
  const fs::path new_dir = dir / new_name;
  try {
    const unique_fd gen(::openat(dirfd.get(), new_name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!gen) fail_io("cannot open", new_dir, errno);
    if (::fchmod(gen.get(), options.dir_mode) != 0) fail_io("cannot chmod", new_dir, errno);
    for (const auto& [key, value] : data) write_file_at(gen.get(), new_dir, key, value.reveal(), options.file_mode);
    fsync_fd(gen.get(), new_dir);
    if (options.fault) options.fault(publish_fault_point);
    swap_symlink(dirfd.get(), dir, data_link, new_name);
    for (const auto& [key, value] : data) {
      const std::string want = std::string(data_link) + "/" + key;
      char buf[4096];
      const ssize_t n = ::readlinkat(dirfd.get(), key.c_str(), buf, sizeof buf - 1);
      if (n < 0 || std::string(buf, static_cast<std::size_t>(n)) != want) swap_symlink(dirfd.get(), dir, key, want);
    }
    // Keys that are gone: their links point into ..data and would dangle.
    for (const auto& name : list_dir(dirfd.get(), dir)) {
      if (name.rfind("..", 0) == 0 || data.count(name) != 0) continue;
      char buf[4096];
      const ssize_t n = ::readlinkat(dirfd.get(), name.c_str(), buf, sizeof buf - 1);
      if (n > 0 && std::string(buf, static_cast<std::size_t>(n)) == std::string(data_link) + "/" + name)
        ::unlinkat(dirfd.get(), name.c_str(), 0);
    }
    fsync_fd(dirfd.get(), dir);
  } catch (...) {
    char buf[4096];
    const ssize_t n = ::readlinkat(dirfd.get(), data_link, buf, sizeof buf - 1);
    if (n < 0 || std::string(buf, static_cast<std::size_t>(n)) != new_name) remove_tree_at(dirfd.get(), new_name);
    throw;
  }
  if (!old_target.empty() && old_target != new_name) remove_tree_at(dirfd.get(), old_target);
  fsync_fd(dirfd.get(), dir);
}

bool same_or_inside(const fs::path& path, const fs::path& dir) {
  const auto resolve = [](const fs::path& p) {
    std::error_code ec;
    fs::path abs = fs::absolute(p, ec);
    fs::path out = fs::weakly_canonical(abs, ec);
    if (ec) out = abs;
    out = out.lexically_normal();
    if (!out.empty() && out.filename().empty()) out = out.parent_path();  // "a/b/" -> "a/b"
    return out;
  };
  const fs::path inner = resolve(path);
  const fs::path outer = resolve(dir);
  auto it = inner.begin();
  bool prefix = true;
  for (const auto& part : outer) {
    if (it == inner.end() || *it != part) {
      prefix = false;
      break;
    }
    ++it;
  }
  if (prefix) return true;
  struct stat a {
  }, b{};
  return ::stat(path.c_str(), &a) == 0 && ::stat(dir.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

void check_store_apart(const fs::path& store_dir, const fs::path& output_dir) {
  if (same_or_inside(store_dir, output_dir))
    throw error(error_kind::usage,
                "--store-dir must be apart from --output-dir (not the same directory, not inside it): "
                "the store holds the standby and pending passwords, which the workload must never read")
        .about("--store-dir");
}

void check_credential_directory(const fs::path& dir, bool create, mode_t dir_mode) {
  open_dir(dir, create, dir_mode);
}

credential_data read_directory(const fs::path& dir) {
  credential_data out;
  const unique_fd dirfd = open_dir(dir, false, 0);
  if (!dirfd) return out;
  // Resolve ..data once so every key comes from the same generation. If that generation
  // is removed while we read, start over with the new one.
  for (int attempt = 0; attempt < 50; ++attempt) {
    out.clear();
    const std::string target = current_generation(dirfd.get(), dir);
    if (target.empty()) return out;
    const fs::path data_dir = dir / target;
    bool vanished = false;
    unique_fd gen(::openat(dirfd.get(), target.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!gen) {
      if (errno == ELOOP || errno == ENOTDIR) refuse(dir, target + " is not a directory");
      if (errno != ENOENT) fail_io("cannot open", data_dir, errno);
      vanished = true;
    } else {
      check_dir_safe(gen.get(), data_dir);
      std::vector<std::string> names;
      try {
        names = list_dir(gen.get(), data_dir);
      } catch (const error&) {
        vanished = true;  // deleted under us; refusals of a live generation repeat below
        if (read_link_at(dirfd.get(), data_link, dir) == target) throw;
      }
      for (const auto& name : names) {
        auto content = read_key_at(gen.get(), data_dir, name);
        if (!content) {
          vanished = true;
          break;
        }
        out[name] = secret(std::move(*content));
      }
    }
    // A generation is deleted only after ..data moved away from it: if the link still
    // points where it did, nothing we read was being deleted.
    if (!vanished && read_link_at(dirfd.get(), data_link, dir) == target) return out;
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
