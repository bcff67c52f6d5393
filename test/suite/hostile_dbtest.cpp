// Hostile servers (issue 12, finding 6; reliability and security suite).
//
// With an unverified TLS mode a man in the middle answers in the database server's place
// and asks for the password in clear text. Here the man in the middle is a fake server: it
// speaks just enough of the PostgreSQL or MySQL protocol over TLS with a certificate nobody
// signed, and asks for the password in clear text (PostgreSQL:
// AuthenticationCleartextPassword; MariaDB: an auth switch to mysql_clear_password). The
// product (tenantdb-init, and the library's tenant login check and own-password change
// that the sidecar's rotation uses) must send no password, and fail with one line naming
// sslMode; with a verifying mode it must refuse the certificate before anything else.
//
// Every attack performed counts in the suite_tally (attacks), and once the test has checked
// that the product withstood it, in held.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "pod.hpp"
#include "process.hpp"
#include "suite.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/error.hpp"
#include "testdb.hpp"

namespace fs = std::filesystem;
using namespace tenantdb;
using namespace std::chrono_literals;

namespace {

std::string random_hex(std::size_t n) {
  static std::mt19937_64 rng{std::random_device{}()};
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += digits[rng() % 16];
  return out;
}

/// A fresh work directory, removed at the end; traversable by other users (the
/// dumpability tests run the binaries as nobody).
class work_dir {
public:
  explicit work_dir(const std::string& label) {
    path_ = fs::temp_directory_path() /
            ("tenantdb-hostile-" + std::to_string(::getpid()) + "-" + label + "-" + random_hex(6));
    fs::remove_all(path_);
    fs::create_directories(path_);
    fs::permissions(path_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                               fs::perms::others_read | fs::perms::others_exec);
  }
  ~work_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

private:
  fs::path path_;
};

/// A self-signed certificate for 127.0.0.1, as anyone can make one: what a man in the
/// middle presents.
struct self_signed {
  std::string cert_file;
  std::string key_file;
  std::string pem() const { return test::read_file(cert_file); }
};

self_signed make_self_signed(const fs::path& dir, const std::string& name) {
  self_signed s{(dir / (name + ".crt")).string(), (dir / (name + ".key")).string()};
  const auto r =
      test::run_process({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", s.key_file, "-out", s.cert_file, "-days",
                         "2", "-subj", "/CN=" + name, "-addext", "subjectAltName=IP:127.0.0.1"});
  if (r.exit_code != 0) throw std::runtime_error("openssl req failed: " + r.err);
  return s;
}

// ---------------------------------------------------------------------------------------
// The man in the middle: a fake PostgreSQL or MariaDB server.
// ---------------------------------------------------------------------------------------

enum class flavour { postgres, mariadb };
void PrintTo(flavour f, std::ostream* os) {
  *os << (f == flavour::postgres ? "postgres" : "mariadb");
}

class hostile_server {
public:
  hostile_server(flavour f, const self_signed& cert) : flavour_(f) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    if (ctx_ == nullptr || SSL_CTX_use_certificate_chain_file(ctx_, cert.cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx_, cert.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
      throw std::runtime_error("hostile server: cannot load its certificate");
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 16) != 0 || ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      throw std::runtime_error(std::string("hostile server: cannot listen: ") + std::strerror(errno));
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~hostile_server() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    ::close(listen_fd_);
    SSL_CTX_free(ctx_);
  }
  hostile_server(const hostile_server&) = delete;
  hostile_server& operator=(const hostile_server&) = delete;

  std::uint16_t port() const { return port_; }
  /// Everything the clients sent, TLS removed, all connections.
  std::string received() const {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }
  int connections() const { return connections_; }
  int tls_handshakes() const { return tls_handshakes_; }
  /// How often this server asked a client for the password in clear text.
  int cleartext_requests() const { return cleartext_requests_; }

private:
  // One connection's transport: the raw socket, then TLS once accepted.
  struct link {
    int fd = -1;
    SSL* ssl = nullptr;
    hostile_server* owner = nullptr;

    std::optional<std::string> read(std::size_t n) {
      std::string out;
      while (out.size() < n) {
        char buf[4096];
        const std::size_t want = std::min(sizeof buf, n - out.size());
        const int got =
            ssl != nullptr ? SSL_read(ssl, buf, static_cast<int>(want)) : static_cast<int>(::recv(fd, buf, want, 0));
        if (got <= 0) return std::nullopt;
        out.append(buf, static_cast<std::size_t>(got));
        owner->record(std::string_view(buf, static_cast<std::size_t>(got)));
      }
      return out;
    }
    /// Reads until the client closes (or goes quiet for the socket's timeout).
    void drain() {
      char buf[4096];
      for (;;) {
        const int got =
            ssl != nullptr ? SSL_read(ssl, buf, sizeof buf) : static_cast<int>(::recv(fd, buf, sizeof buf, 0));
        if (got <= 0) return;
        owner->record(std::string_view(buf, static_cast<std::size_t>(got)));
      }
    }
    bool write(const std::string& bytes) {
      if (ssl != nullptr)
        return SSL_write(ssl, bytes.data(), static_cast<int>(bytes.size())) == static_cast<int>(bytes.size());
      return ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
    }
    bool start_tls(SSL_CTX* ctx) {
      ssl = SSL_new(ctx);
      SSL_set_fd(ssl, fd);
      if (SSL_accept(ssl) != 1) {
        ERR_clear_error();
        return false;
      }
      ++owner->tls_handshakes_;
      return true;
    }
  };

  void record(std::string_view bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    received_.append(bytes);
  }

  void run() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      ++connections_;
      const timeval tv{5, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      link l{fd, nullptr, this};
      if (flavour_ == flavour::postgres)
        serve_postgres(l);
      else
        serve_mariadb(l);
      if (l.ssl != nullptr) {
        SSL_shutdown(l.ssl);
        SSL_free(l.ssl);
      }
      ERR_clear_error();
      ::close(fd);
    }
  }

  static std::uint32_t be32(const std::string& s, std::size_t at) {
    return (std::uint32_t(std::uint8_t(s[at])) << 24) | (std::uint32_t(std::uint8_t(s[at + 1])) << 16) |
           (std::uint32_t(std::uint8_t(s[at + 2])) << 8) | std::uint32_t(std::uint8_t(s[at + 3]));
  }

  // SSLRequest -> 'S', TLS with the self-signed certificate, StartupMessage ->
  // AuthenticationCleartextPassword; then whatever the client answers is recorded.
  void serve_postgres(link& l) {
    for (;;) {
      const auto head = l.read(8);
      if (!head) return;
      const std::uint32_t length = be32(*head, 0);
      const std::uint32_t code = be32(*head, 4);
      if (length == 8 && code == 80877103) {  // SSLRequest
        if (l.ssl != nullptr || !l.write("S") || !l.start_tls(ctx_)) return;
        continue;
      }
      if (length == 8 && code == 80877104) {  // GSSENCRequest
        if (!l.write("N")) return;
        continue;
      }
      if (length < 8 || length > 10000 || !l.read(length - 8)) return;  // StartupMessage
      break;
    }
    const std::string cleartext_request{'R', 0, 0, 0, 8, 0, 0, 0, 3};
    if (!l.write(cleartext_request)) return;
    ++cleartext_requests_;
    l.drain();
  }

  static std::string mysql_packet(std::uint8_t seq, const std::string& payload) {
    std::string out;
    out += static_cast<char>(payload.size() & 0xff);
    out += static_cast<char>((payload.size() >> 8) & 0xff);
    out += static_cast<char>((payload.size() >> 16) & 0xff);
    out += static_cast<char>(seq);
    return out + payload;
  }

  // Handshake v10 offering TLS and mysql_native_password; after the client's TLS request
  // and handshake response, an auth switch to mysql_clear_password.
  void serve_mariadb(link& l) {
    const std::uint32_t caps =
        0x1 /* LONG_PASSWORD */ | 0x4 /* LONG_FLAG */ | 0x8 /* CONNECT_WITH_DB */ | 0x200 /* PROTOCOL_41 */ |
        0x800 /* SSL */ | 0x2000 /* TRANSACTIONS */ | 0x8000 /* SECURE_CONNECTION */ | 0x10000 /* MULTI_STATEMENTS */ |
        0x20000 /* MULTI_RESULTS */ | 0x80000 /* PLUGIN_AUTH */ | 0x200000 /* PLUGIN_AUTH_LENENC_CLIENT_DATA */;
    const std::string scramble = "0123456789abcdefghij";  // 20 bytes
    std::string hello;
    hello += '\x0a';
    hello += std::string("5.5.5-10.11.99-MariaDB-hostile") + '\0';
    hello += std::string("\x01\x00\x00\x00", 4);
    hello += scramble.substr(0, 8) + '\0';
    hello += static_cast<char>(caps & 0xff);
    hello += static_cast<char>((caps >> 8) & 0xff);
    hello += '\x2d';  // utf8mb4_general_ci
    hello += std::string("\x02\x00", 2);
    hello += static_cast<char>((caps >> 16) & 0xff);
    hello += static_cast<char>((caps >> 24) & 0xff);
    hello += static_cast<char>(21);
    hello += std::string(10, '\0');
    hello += scramble.substr(8) + '\0';
    hello += std::string("mysql_native_password") + '\0';
    if (!l.write(mysql_packet(0, hello))) return;

    auto read_packet = [&l]() -> std::optional<std::pair<std::uint8_t, std::string>> {
      const auto head = l.read(4);
      if (!head) return std::nullopt;
      const std::size_t n = std::size_t(std::uint8_t((*head)[0])) | (std::size_t(std::uint8_t((*head)[1])) << 8) |
                            (std::size_t(std::uint8_t((*head)[2])) << 16);
      auto body = l.read(n);
      if (!body) return std::nullopt;
      return std::make_pair(std::uint8_t((*head)[3]), std::move(*body));
    };
    auto packet = read_packet();
    if (!packet) return;
    if (packet->second.size() == 32) {  // SSL request: TLS, then the real handshake response
      if (!l.start_tls(ctx_)) return;
      packet = read_packet();
      if (!packet) return;
    }
    const std::string auth_switch = std::string("\xfe") + "mysql_clear_password" + '\0' + scramble + '\0';
    if (!l.write(mysql_packet(static_cast<std::uint8_t>(packet->first + 1), auth_switch))) return;
    ++cleartext_requests_;
    l.drain();
  }

  flavour flavour_;
  SSL_CTX* ctx_ = nullptr;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> tls_handshakes_{0};
  std::atomic<int> cleartext_requests_{0};
  mutable std::mutex mu_;
  std::string received_;
  std::thread thread_;
};

/// A connector directory (one file per key) for the hostile server.
void write_connector(const fs::path& dir, flavour f, std::uint16_t port, const std::string& password,
                     const std::string& ssl_mode, const std::string& ca_pem = {}) {
  fs::create_directories(dir);
  const std::map<std::string, std::string> keys = {
      {"type", f == flavour::postgres ? "postgres" : "mariadb"},
      {"host", "127.0.0.1"},
      {"port", std::to_string(port)},
      {"adminUser", "platform_admin"},
      {"adminPassword", password},
      {"sslMode", ssl_mode},
  };
  for (const auto& [k, v] : keys) std::ofstream(dir / k) << v;
  if (!ca_pem.empty()) std::ofstream(dir / "caCert") << ca_pem;
}

std::map<std::string, std::string> clean_env() {
  return {{"KUBECONFIG", ""},      {"POD_NAMESPACE", ""},          {"POD_NAME", ""},
          {"TENANTDB_TENANT", ""}, {"TENANTDB_TEST_CRASH_AT", ""}, {"PGCHANNELBINDING", ""},
          {"PGSSLMODE", ""}};
}

bool dir_is_empty_or_missing(const fs::path& p) {
  std::error_code ec;
  return !fs::exists(p, ec) || fs::is_empty(p, ec);
}

class HostileServerTest : public ::testing::TestWithParam<flavour> {
protected:
  void SetUp() override {
    work_.emplace(GetParam() == flavour::postgres ? "pg" : "mariadb");
    mitm_cert_ = make_self_signed(work_->path(), "mitm");
    password_ = "Adm1n" + random_hex(27);
  }

  test::process_result run_init(std::uint16_t port, const std::string& ssl_mode, const std::string& ca_pem = {}) {
    const fs::path connector = work_->path() / ("connector-" + ssl_mode);
    write_connector(connector, GetParam(), port, password_, ssl_mode, ca_pem);
    return test::run_process({TENANTDB_INIT_BIN, "--local", "--connector-file", connector.string(), "--output-dir",
                              out().string(), "--tenant", "mitm-target", "--timeout", "5s"},
                             clean_env(), 60s);
  }
  fs::path out() const { return work_->path() / "out"; }

  server_address unverified(std::uint16_t port) const {
    server_address s;
    s.type = GetParam() == flavour::postgres ? engine_type::postgres : engine_type::mysql;
    s.mariadb = GetParam() == flavour::mariadb;
    s.host = "127.0.0.1";
    s.port = port;
    s.tls = tls_mode::require;
    s.admin_database = "postgres";
    return s;
  }

  std::optional<work_dir> work_;
  self_signed mitm_cert_;
  std::string password_;
};

// The admin connector with sslMode require: the fake server asks for the admin password
// in clear text; tenantdb-init must refuse before sending it, exit 3 naming sslMode, and
// create nothing.
TEST_P(HostileServerTest, InitWithSslModeRequireSendsNoPasswordToACleartextRequest) {
  test::suite_tally tally;
  hostile_server mitm(GetParam(), mitm_cert_);
  const auto r = run_init(mitm.port(), "require");

  ASSERT_GE(mitm.tls_handshakes(), 1) << "the init never completed TLS with the fake server: " << r.err;
  ASSERT_GE(mitm.cleartext_requests(), 1) << "the fake server never got to ask for the password: " << r.err;
  ++tally.attacks;

  const bool leaked = mitm.received().find(password_) != std::string::npos;
  EXPECT_FALSE(leaked) << "the init sent the admin password to a server that asked for it in clear text";
  EXPECT_EQ(r.exit_code, 3) << test::tail(r.err, 10);
  EXPECT_NE(r.err.find("\"about\":\"sslMode\",\"exit_code\":3"), std::string::npos)
      << "the error line must name sslMode: " << test::tail(r.err, 5);
  EXPECT_EQ(r.err.find(password_), std::string::npos) << "the admin password is in the init's log";
  EXPECT_TRUE(dir_is_empty_or_missing(out())) << "the init wrote credentials although it failed";
  // The warning that says how to turn verification on, before any connection.
  EXPECT_NE(
      r.err.find("\"level\":\"warn\",\"component\":\"init\",\"msg\":\"TLS to the database server is not verified"),
      std::string::npos)
      << test::tail(r.err, 10);
  EXPECT_NE(r.err.find("set sslMode: verify-full"), std::string::npos) << test::tail(r.err, 10);
  if (!leaked && r.exit_code == 3) ++tally.held;
}

// The same fake server with a verifying mode: the init refuses its certificate (the
// connector's caCert did not sign it), so the server never gets to ask.
TEST_P(HostileServerTest, InitWithSslModeVerifyFullRefusesTheCertificateFirst) {
  test::suite_tally tally;
  hostile_server mitm(GetParam(), mitm_cert_);
  const self_signed real_ca = make_self_signed(work_->path(), "real-ca");
  const auto r = run_init(mitm.port(), "verify-full", real_ca.pem());

  ASSERT_GE(mitm.connections(), 1) << "the init never reached the fake server: " << r.err;
  ++tally.attacks;

  const bool leaked = mitm.received().find(password_) != std::string::npos;
  EXPECT_FALSE(leaked);
  EXPECT_EQ(mitm.tls_handshakes(), 0) << "the init accepted a certificate its caCert did not sign";
  EXPECT_EQ(mitm.cleartext_requests(), 0);
  EXPECT_EQ(r.exit_code, 3) << test::tail(r.err, 10);
  EXPECT_NE(r.err.find("caCert"), std::string::npos) << test::tail(r.err, 5);
  EXPECT_TRUE(dir_is_empty_or_missing(out()));
  if (!leaked && mitm.tls_handshakes() == 0 && r.exit_code == 3) ++tally.held;
}

// The tenant's own connections (the init's login check, the sidecar's login checks and
// rotation, which change the password as the tenant) go through the same refusal.
TEST_P(HostileServerTest, TenantLoginCheckAndOwnPasswordChangeSendNoPasswordToACleartextRequest) {
  test::suite_tally tally;
  hostile_server mitm(GetParam(), mitm_cert_);
  const db_timeouts timeouts{2s, 2s};
  const login tenant{"vcluster_mitm_a", secret(password_)};
  const std::string next = "Next" + random_hex(28);

  const auto attempt = [&](const char* what, const std::function<void()>& call) {
    const int asked_before = mitm.cleartext_requests();
    std::optional<error_kind> kind;
    std::string message;
    try {
      call();
    } catch (const error& e) {
      kind = e.kind();
      message = e.what();
    }
    ASSERT_GT(mitm.cleartext_requests(), asked_before) << what << ": the fake server never got to ask: " << message;
    ++tally.attacks;
    const std::string got = mitm.received();
    const bool leaked = got.find(password_) != std::string::npos || got.find(next) != std::string::npos;
    EXPECT_FALSE(leaked) << what << " sent a password to a server that asked for it in clear text";
    EXPECT_EQ(kind, error_kind::connector) << what << ": " << message;
    EXPECT_NE(message.find("sslMode"), std::string::npos) << what << ": " << message;
    if (!leaked && kind == error_kind::connector) ++tally.held;
  };
  attempt("verify_login", [&] { verify_login(unverified(mitm.port()), tenant, "vcluster_mitm", timeouts); });
  attempt("change_own_password",
          [&] { change_own_password(unverified(mitm.port()), tenant, "vcluster_mitm", secret(next), timeouts); });
}

INSTANTIATE_TEST_SUITE_P(Engines, HostileServerTest, ::testing::Values(flavour::postgres, flavour::mariadb),
                         [](const ::testing::TestParamInfo<flavour>& p) {
                           return std::string(p.param == flavour::postgres ? "pg" : "mariadb");
                         });

}  // namespace
