#include "kinelike.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <rapidjson/document.h>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "process.hpp"
#include "temp_dir.hpp"

#ifndef TENANTDB_KINELIKE_BIN
#error "TENANTDB_KINELIKE_BIN must name the kinelike binary (test/clients/CMakeLists.txt)"
#endif
#ifndef TENANTDB_KINELIKE_GO_FOUND
#define TENANTDB_KINELIKE_GO_FOUND 0
#endif

namespace tenantdb::test {

namespace {

void write_private_file(const std::filesystem::path& path, std::string_view content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) throw std::runtime_error("cannot create " + path.string() + ": " + std::strerror(errno));
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = errno;
      ::close(fd);
      throw std::runtime_error("cannot write " + path.string() + ": " + std::strerror(e));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) throw std::runtime_error("cannot write " + path.string() + ": " + std::strerror(errno));
}

std::string millis(std::chrono::milliseconds d) {
  return std::to_string(d.count()) + "ms";
}

std::int64_t int_field(const rapidjson::Value& v, const char* name) {
  const auto it = v.FindMember(name);
  if (it == v.MemberEnd() || !it->value.IsInt64())
    throw std::runtime_error(std::string("kinelike's JSON has no integer ") + name);
  return it->value.GetInt64();
}

std::string string_field(const rapidjson::Value& v, const char* name) {
  const auto it = v.FindMember(name);
  if (it == v.MemberEnd() || !it->value.IsString())
    throw std::runtime_error(std::string("kinelike's JSON has no string ") + name);
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

std::string tail(const std::string& text, std::size_t n) {
  return text.size() <= n ? text : "..." + text.substr(text.size() - n);
}

}  // namespace

kinelike_driver kinelike_driver_for(engine_type type) noexcept {
  return type == engine_type::postgres ? kinelike_driver::pgx : kinelike_driver::mysql;
}

std::filesystem::path kinelike_path() {
  const std::filesystem::path path = TENANTDB_KINELIKE_BIN;
  if (!TENANTDB_KINELIKE_GO_FOUND)
    throw std::runtime_error(
        "the kinelike test client was not built: go was not found when the build was configured. Run "
        "tools/install-deps.sh (it installs golang-go and Kine's drivers), then configure and build again");
  if (::access(path.c_str(), X_OK) != 0)
    throw std::runtime_error("the kinelike test client " + path.string() +
                             " is missing: build the `kinelike` target (go comes from tools/install-deps.sh)");
  return path;
}

std::string kinelike_result::describe() const {
  return "exit " + std::to_string(exit_code) + ", mode " + mode + ", queries " + std::to_string(queries) +
         ", failures " + std::to_string(failures) + ", committed_rows " + std::to_string(committed_rows) +
         ", connections_opened " + std::to_string(connections_opened) + ", connect_failures " +
         std::to_string(connect_failures) + ", first_error [" + first_error + "], stderr [" + tail(err, 2000) + "]";
}

kinelike_result run_kinelike(kinelike_driver driver, const secret& dsn, const kinelike_options& options) {
  const auto bin = kinelike_path();
  const temp_dir dir("tenantdb-kinelike");
  const auto dsn_file = dir.path() / "dsn";
  write_private_file(dsn_file, dsn.reveal());

  std::vector<std::string> argv = {bin.string(),
                                   "-driver",
                                   driver == kinelike_driver::pgx ? "pgx" : "mysql",
                                   "-dsn-file",
                                   dsn_file.string(),
                                   "-duration",
                                   millis(options.duration),
                                   "-workers",
                                   std::to_string(options.workers),
                                   "-max-idle-time",
                                   millis(options.max_idle_time),
                                   "-max-lifetime",
                                   millis(options.max_lifetime)};
  if (!options.ca_file.empty()) argv.insert(argv.end(), {"-ca-file", options.ca_file});
  if (!options.name_prefix.empty()) argv.insert(argv.end(), {"-name-prefix", options.name_prefix});
  if (options.verify_rows) argv.insert(argv.end(), {"-verify-rows", std::to_string(*options.verify_rows)});

  const auto ran = run_process(argv, {}, options.timeout);
  kinelike_result r;
  r.exit_code = ran.exit_code;
  r.out = ran.out;
  r.err = ran.err;

  // The JSON is the last non-empty line of stdout.
  std::string line = ran.out;
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (const auto nl = line.rfind('\n'); nl != std::string::npos) line.erase(0, nl + 1);
  rapidjson::Document doc;
  doc.Parse(line.c_str(), line.size());
  const bool parsed = !line.empty() && !doc.HasParseError() && doc.IsObject();
  if (!parsed && ran.exit_code == 2) return r;  // bad usage: one line on stderr, no JSON
  if (!parsed)
    throw std::runtime_error("kinelike printed no JSON line (exit " + std::to_string(ran.exit_code) + "); stdout [" +
                             tail(ran.out, 2000) + "] stderr [" + tail(ran.err, 2000) + "]");
  r.mode = string_field(doc, "mode");
  r.duration_ms = int_field(doc, "duration_ms");
  r.queries = int_field(doc, "queries");
  r.failures = int_field(doc, "failures");
  r.first_error = string_field(doc, "first_error");
  r.last_failure_ms = int_field(doc, "last_failure_ms");
  r.last_failure_unix_ms = int_field(doc, "last_failure_unix_ms");
  r.committed_rows = int_field(doc, "committed_rows");
  r.connections_opened = int_field(doc, "connections_opened");
  r.connect_failures = int_field(doc, "connect_failures");
  r.max_idle_time_closed = int_field(doc, "max_idle_time_closed");
  r.max_lifetime_closed = int_field(doc, "max_lifetime_closed");
  r.name_prefix = string_field(doc, "name_prefix");
  r.setup_warnings = int_field(doc, "setup_warnings");
  r.verified_rows = int_field(doc, "verified_rows");
  return r;
}

}  // namespace tenantdb::test
