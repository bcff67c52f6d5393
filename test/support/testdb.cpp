#include "testdb.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <deque>
#include <fstream>
#include <iostream>
#include <random>
#include <stdexcept>
#include <vector>

#include "tenantdb/error.hpp"

namespace tenantdb::test {
namespace {

const std::string start_hint = "run test/tools/testdb.sh start";

std::string hint_for_dir() {
  return start_hint + " (with TENANTDB_TESTDB_DIR=" + testdb_dir().string() + ")";
}

/// True if something accepts TCP connections on 127.0.0.1/host:port within ~2 s.
bool accepts_tcp(const std::string& host, std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return true;  // not an IPv4 literal: let the engine try
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

std::filesystem::path log_path(const std::string& which) {
  if (which.starts_with("pg")) return testdb_dir() / "pg" / "log" / "postgresql.log";
  if (which.starts_with("mariadb") || which.starts_with("mysql"))
    return testdb_dir() / "mariadb" / "log" / "mariadbd.err";
  throw std::invalid_argument("unknown test server \"" + which + "\" (expected pg, pg-super, mariadb, mariadb-super)");
}

class server_log_listener final : public ::testing::EmptyTestEventListener {
public:
  explicit server_log_listener(std::vector<std::string> which) : which_(std::move(which)) {}
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result() == nullptr || !info.result()->Failed()) return;
    for (const auto& w : which_) dump_server_log(w);
  }

private:
  std::vector<std::string> which_;
};

}  // namespace

std::filesystem::path testdb_dir() {
  if (const char* env = std::getenv("TENANTDB_TESTDB_DIR"); env != nullptr && *env != '\0') return env;
#ifdef TENANTDB_TESTDB_DEFAULT_DIR
  return TENANTDB_TESTDB_DEFAULT_DIR;
#else
  return std::filesystem::current_path() / "build" / "testdb";
#endif
}

connector load_connector(const std::string& which) {
  const std::filesystem::path dir = testdb_dir() / (which + ".connector");
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw std::runtime_error("test server connector " + dir.string() +
                             " does not exist: the test databases are not "
                             "set up; " +
                             hint_for_dir());
  connector c;
  try {
    c = parse_connector(read_connector_path(dir));
  } catch (const tenantdb::error& e) {
    throw std::runtime_error("test server connector " + dir.string() + " is unusable (" + e.what() + "); " +
                             hint_for_dir());
  }
  if (!accepts_tcp(c.server.host, c.server.port))
    throw std::runtime_error("the " + which + " test server at " + c.server.host + ":" + std::to_string(c.server.port) +
                             " is not running; " + hint_for_dir());
  return c;
}

login admin_login(const connector& c) {
  return login{c.admin_user, c.admin_password};
}

std::filesystem::path ca_pem_path() {
  return testdb_dir() / "ca" / "ca.pem";
}

std::string other_ca_pem() {
  const std::filesystem::path path = testdb_dir() / "ca" / "other-ca.pem";
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string() + "; " + hint_for_dir());
  std::string pem;
  char buffer[4096];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) pem.append(buffer, static_cast<std::size_t>(in.gcount()));
  if (pem.empty()) throw std::runtime_error(path.string() + " is empty; " + hint_for_dir());
  return pem;
}

tenant unique_tenant(std::string_view prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char hex[] = "0123456789abcdef";
  std::string suffix;
  std::uint64_t bits = rng();
  for (int i = 0; i < 12; ++i, bits >>= 4) suffix += hex[bits & 0xf];
  return tenant{std::string(prefix) + "-" + suffix, "tenantdb-test"};
}

void dump_server_log(const std::string& which, std::size_t lines) {
  const std::filesystem::path path = log_path(which);
  std::ifstream in(path);
  if (!in) {
    std::cerr << "[testdb] no server log at " << path.string() << '\n';
    return;
  }
  std::deque<std::string> tail;
  for (std::string line; std::getline(in, line);) {
    tail.push_back(std::move(line));
    if (tail.size() > lines) tail.pop_front();
  }
  std::cerr << "[testdb] last " << tail.size() << " lines of " << path.string() << ":\n";
  for (const auto& line : tail) std::cerr << "  " << line << '\n';
}

bool dump_server_logs_on_failure(std::initializer_list<std::string> which) {
  ::testing::UnitTest::GetInstance()->listeners().Append(new server_log_listener(std::vector<std::string>(which)));
  return true;
}

}  // namespace tenantdb::test
