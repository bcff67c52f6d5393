// The proxy's PostgreSQL side in-process (proxy::service on a free loopback port) between
// real clients (libpq, the psql and pgbench binaries, and raw sockets for the hostile
// front door) and the real test PostgreSQL 15, which takes only scram-sha-256 over TLS.
// Every tenant is provisioned on that server by the test's admin; the proxy logs in as
// the tenant with verify-full against the test CA.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "eventually.hpp"
#include "ports.hpp"
#include "proxy/service.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/naming.hpp"
#include "tenantdb/password.hpp"
#include "testdb.hpp"

namespace tenantdb {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;
using steady = std::chrono::steady_clock;

const bool server_logs = test::dump_server_logs_on_failure({"pg"});

// ---------------------------------------------------------------------------------------
// libpq

struct pq_deleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using pq_conn = std::unique_ptr<PGconn, pq_deleter>;

pq_conn pq_connect(const std::string& conninfo) {
  pq_conn c(PQconnectdb(conninfo.c_str()));
  if (c)
    PQsetNoticeProcessor(
        c.get(), [](void*, const char*) {}, nullptr);
  return c;
}

bool ok(const pq_conn& c) {
  return c && PQstatus(c.get()) == CONNECTION_OK;
}

std::string error_of(const pq_conn& c) {
  return c ? PQerrorMessage(c.get()) : "no connection object";
}

/// The first value of the first row; throws with the server's message.
std::string one(const pq_conn& c, const std::string& sql) {
  std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(c.get(), sql.c_str()), &PQclear);
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) < 1)
    throw std::runtime_error(sql + ": " + PQresultErrorMessage(r.get()));
  return PQgetvalue(r.get(), 0, 0);
}

// ---------------------------------------------------------------------------------------
// Raw sockets, for what no well-behaved client sends

struct raw_socket {
  int fd = -1;
  explicit raw_socket(std::uint16_t port) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("socket failed");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      throw std::runtime_error("connect to the proxy failed");
    }
  }
  ~raw_socket() {
    if (fd >= 0) ::close(fd);
  }
  raw_socket(const raw_socket&) = delete;
  raw_socket& operator=(const raw_socket&) = delete;

  void send(const std::string& bytes) const {
    std::size_t at = 0;
    while (at < bytes.size()) {
      const ssize_t n = ::send(fd, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
      if (n <= 0) return;  // the proxy may have closed already: what it answered is what counts
      at += static_cast<std::size_t>(n);
    }
  }
  void shutdown_write() const { ::shutdown(fd, SHUT_WR); }

  /// Exactly `n` bytes; nullopt if the proxy closes or is silent for 10 s first.
  std::optional<std::string> read_exact(std::size_t n) const {
    std::string out;
    while (out.size() < n) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 10'000) <= 0) return std::nullopt;
      char buf[4096];
      const ssize_t got = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
      if (got <= 0) return std::nullopt;
      out.append(buf, static_cast<std::size_t>(got));
    }
    return out;
  }

  /// Everything the proxy sends until it closes; nullopt if it is still open at `timeout`.
  std::optional<std::string> read_to_close(std::chrono::milliseconds timeout = 10s) const {
    std::string out;
    const auto deadline = steady::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return out;  // EOF or reset: closed
      out.append(buf, static_cast<std::size_t>(n));
    }
  }
};

void put_u32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

/// A StartupMessage 3.0 with `params` given as "k\0v\0...".
std::string raw_startup(const std::string& params) {
  std::string body;
  put_u32(body, 196608);
  body += params;
  body += '\0';
  std::string out;
  put_u32(out, static_cast<std::uint32_t>(body.size() + 4));
  return out + body;
}

/// The fields of the first ErrorResponse in `bytes` (after any 'N' answer to SSLRequest).
std::map<char, std::string> error_fields(const std::string& bytes) {
  std::map<char, std::string> out;
  std::size_t at = bytes.find('E');
  if (at == std::string::npos || at + 5 > bytes.size()) return out;
  at += 5;
  while (at < bytes.size() && bytes[at] != '\0') {
    const char type = bytes[at];
    const std::size_t end = bytes.find('\0', at + 1);
    if (end == std::string::npos) break;
    out[type] = bytes.substr(at + 1, end - at - 1);
    at = end + 1;
  }
  return out;
}

/// A fake PostgreSQL server without TLS for one connection: declines SSLRequest, reads the
/// startup, sends `auth` (an Authentication message), then records whatever the proxy
/// sends until it closes (10 s at most).
class fake_server {
public:
  explicit fake_server(std::string auth) : port_(test::unused_port()) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listener_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 || ::listen(listener_, 4) != 0)
      throw std::runtime_error("fake server cannot listen");
    thread_ = std::thread([this, auth = std::move(auth)] {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      const auto read_n = [fd](std::size_t n) {
        std::string out;
        while (out.size() < n) {
          pollfd p{fd, POLLIN, 0};
          if (::poll(&p, 1, 10'000) <= 0) break;
          char buf[4096];
          const ssize_t got = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
          if (got <= 0) break;
          out.append(buf, static_cast<std::size_t>(got));
        }
        return out;
      };
      if (read_n(8).size() == 8) {  // SSLRequest
        ::send(fd, "N", 1, MSG_NOSIGNAL);
        const std::string len = read_n(4);
        if (len.size() == 4) {
          const std::uint32_t n = (std::uint32_t{static_cast<unsigned char>(len[0])} << 24) |
                                  (std::uint32_t{static_cast<unsigned char>(len[1])} << 16) |
                                  (std::uint32_t{static_cast<unsigned char>(len[2])} << 8) |
                                  std::uint32_t{static_cast<unsigned char>(len[3])};
          if (n >= 8 && n <= 10000) read_n(n - 4);
          ::send(fd, auth.data(), auth.size(), MSG_NOSIGNAL);
          received_ = read_n(1 << 20);  // until the proxy closes
        }
      }
      ::close(fd);
    });
  }
  ~fake_server() {
    ::shutdown(listener_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    ::close(listener_);
  }
  fake_server(const fake_server&) = delete;
  fake_server& operator=(const fake_server&) = delete;

  std::uint16_t port() const { return port_; }
  /// What the proxy sent after the authentication request (valid once the thread ended).
  const std::string& received() {
    if (thread_.joinable()) thread_.join();
    return received_;
  }

private:
  std::uint16_t port_;
  int listener_ = -1;
  std::thread thread_;
  std::string received_;
};

/// An Authentication message with `code` and `data`.
std::string auth_message(std::uint32_t code, const std::string& data = {}) {
  std::string out = "R";
  put_u32(out, static_cast<std::uint32_t>(8 + data.size()));
  put_u32(out, code);
  return out + data;
}

// ---------------------------------------------------------------------------------------

class ProxyPostgres : public ::testing::Test {
protected:
  void SetUp() override {
    conn_ = test::load_connector("pg");
    admin_ = connect_admin(conn_.server, test::admin_login(conn_));
    names_ = derive_names(test::unique_tenant("proxy"));
    password_ = generate_password();
    admin_->ensure_database(names_);
    admin_->ensure_user(names_.user_a, password_);
    admin_->grant(names_, names_.user_a);
  }
  void TearDown() override {
    if (service_) service_->stop();
  }

  std::shared_ptr<const proxy::upstream> snapshot(const secret& password, const secret& pending = {}) const {
    auto s = std::make_shared<proxy::upstream>();
    s->server = conn_.server;
    s->database = names_.database;
    s->account = login{names_.user_a, password};
    s->pending_password = pending;
    return s;
  }

  proxy::options defaults() const {
    proxy::options o;
    o.address = "127.0.0.1";
    o.port = test::unused_port();
    o.handshake_timeout = 5s;
    o.connect_timeout = 5s;
    return o;
  }

  void start(proxy::options o, bool with_credentials = true) {
    service_ = std::make_unique<proxy::service>(std::move(o));
    if (with_credentials) service_->source().set(snapshot(password_));
    service_->start(engine_type::postgres);
  }

  /// A conninfo for the proxy that names some other user and database, and no password.
  std::string proxy_conninfo(const std::string& extra = "sslmode=disable") const {
    return "host=127.0.0.1 port=" + std::to_string(service_->port()) +
           " user=postgres dbname=postgres connect_timeout=10 passfile=/nonexistent " + extra;
  }

  std::uint64_t failures(proxy::failure f) const { return service_->stats().failures(f); }
  std::uint64_t sessions_of(const std::string& account) const {
    const auto m = service_->stats().sessions_by_account();
    const auto it = m.find(account);
    return it == m.end() ? 0 : it->second;
  }

  connector conn_;
  std::unique_ptr<admin_session> admin_;
  tenant_names names_;
  secret password_;
  std::unique_ptr<proxy::service> service_;
};

TEST_F(ProxyPostgres, ClientLandsInTheTenantsDatabaseAsTheTenantWhateverItAsksFor) {
  start(defaults());
  for (const char* mode : {"sslmode=prefer", "sslmode=disable"}) {
    auto c = pq_connect(proxy_conninfo(mode));
    ASSERT_TRUE(ok(c)) << mode << ": " << error_of(c);
    EXPECT_EQ(one(c, "SELECT session_user"), names_.user_a) << mode;
    EXPECT_EQ(one(c, "SELECT current_user"), names_.database) << mode;  // the login acts as the tenant's role
    EXPECT_EQ(one(c, "SELECT current_database()"), names_.database) << mode;
    EXPECT_EQ(sessions_of(names_.user_a), 1u);
  }
  EXPECT_TRUE(test::eventually([&] { return sessions_of(names_.user_a) == 0; }));
  EXPECT_EQ(service_->stats().open(), 0u);
  EXPECT_NE(service_->stats().render().find("tenantdb_proxy_upstream_connect_seconds_count 2\n"), std::string::npos)
      << service_->stats().render();
}

// The relay holds a buffer only while bytes flow: one while a result waits on a client
// that does not read, none once the client has read it and the session idles.
TEST_F(ProxyPostgres, ASessionHoldsRelayBuffersOnlyWhileBytesFlow) {
  start(defaults());
  auto c = pq_connect(proxy_conninfo());
  ASSERT_TRUE(ok(c)) << error_of(c);
  EXPECT_EQ(one(c, "SELECT 1"), "1");
  EXPECT_TRUE(test::eventually([&] { return service_->stats().relay_buffers() == 0; }, 30s));
  // 64 MB of result, far more than the sockets between the proxy and the client buffer:
  // the proxy's writer waits on the client, holding its buffer.
  ASSERT_EQ(PQsendQuery(c.get(), "SELECT repeat('x', 1000000) FROM generate_series(1, 64)"), 1) << error_of(c);
  EXPECT_TRUE(test::eventually([&] { return service_->stats().relay_buffers() >= 1; }, 30s));
  std::size_t rows = 0;
  while (PGresult* r = PQgetResult(c.get())) {
    if (PQresultStatus(r) == PGRES_TUPLES_OK) rows += static_cast<std::size_t>(PQntuples(r));
    PQclear(r);
  }
  EXPECT_EQ(rows, 64u);
  EXPECT_TRUE(test::eventually([&] { return service_->stats().relay_buffers() == 0; }, 30s));
  EXPECT_EQ(service_->stats().open(), 1u);
  EXPECT_EQ(one(c, "SELECT 2"), "2");
}

TEST_F(ProxyPostgres, SslAndGssEncRequestsAreDeclinedAndTheStartupThatFollowsIsServed) {
  start(defaults());
  raw_socket s(service_->port());
  std::string ssl, gss;
  put_u32(ssl, 8);
  put_u32(ssl, 80877103);
  put_u32(gss, 8);
  put_u32(gss, 80877104);
  s.send(gss);
  EXPECT_EQ(s.read_exact(1), "N");
  s.send(ssl);
  EXPECT_EQ(s.read_exact(1), "N");
  s.send(raw_startup("user\0x\0database\0y\0"s));
  EXPECT_EQ(s.read_exact(9), "R\0\0\0\x08\0\0\0\0"s);  // AuthenticationOk, no password asked
}

// In the unverified modes the proxy accepts only SCRAM-SHA-256-PLUS, so these logins bind
// SCRAM to the TLS session (tls-server-end-point) against the real server: a wrong binding
// is refused by the server.
TEST_F(ProxyPostgres, UnverifiedUpstreamTlsModesLogInOverTls) {
  start(defaults());
  for (const tls_mode mode : {tls_mode::require, tls_mode::prefer}) {
    auto s = std::make_shared<proxy::upstream>(*snapshot(password_));
    s->server.tls = mode;
    s->server.ca_pem = test::other_ca_pem();  // not consulted: nothing is verified
    service_->source().set(s);
    auto c = pq_connect(proxy_conninfo());
    ASSERT_TRUE(ok(c)) << error_of(c);
    one(c, "SELECT set_config('role', 'none', false)");  // pg_stat_ssl shows the login its own row
    EXPECT_EQ(one(c, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()"), "true");
  }
}

TEST_F(ProxyPostgres, ApplicationNameAndOptionsReachTheServer) {
  start(defaults());
  auto c = pq_connect(proxy_conninfo("sslmode=disable application_name=proxy-probe options='-c work_mem=4242kB'"));
  ASSERT_TRUE(ok(c)) << error_of(c);
  EXPECT_EQ(one(c, "SHOW application_name"), "proxy-probe");
  EXPECT_EQ(one(c, "SHOW work_mem"), "4242kB");
}

TEST_F(ProxyPostgres, PsqlWorksThroughTheProxy) {
  start(defaults());
  const std::string command =
      "psql -XAt -d \"" + proxy_conninfo() + "\" -c \"SELECT session_user || ' ' || current_database()\" 2>&1";
  FILE* p = ::popen(command.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
  const int status = ::pclose(p);
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(out, names_.user_a + " " + names_.database + "\n");
}

TEST_F(ProxyPostgres, SslRequireAgainstTheProxyFailsClearly) {
  start(defaults());
  auto c = pq_connect(proxy_conninfo("sslmode=require"));
  ASSERT_FALSE(ok(c));
  EXPECT_NE(error_of(c).find("does not support SSL"), std::string::npos) << error_of(c);
  c.reset();  // libpq closes its socket only now
  EXPECT_TRUE(test::eventually([&] { return failures(proxy::failure::client_protocol) == 1; }));
}

TEST_F(ProxyPostgres, ReplicationConnectionsAreRefusedWith0A000) {
  start(defaults());
  auto c = pq_connect(proxy_conninfo("sslmode=disable replication=database"));
  ASSERT_FALSE(ok(c));
  EXPECT_NE(error_of(c).find("replication connections are not served"), std::string::npos) << error_of(c);

  raw_socket s(service_->port());
  s.send(raw_startup("user\0x\0database\0y\0replication\0true\0"s));
  const auto answer = s.read_to_close();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(error_fields(*answer)['C'], "0A000") << *answer;
  EXPECT_EQ(failures(proxy::failure::unsupported), 2u);
  // replication=false is an ordinary session.
  auto plain = pq_connect(proxy_conninfo("sslmode=disable replication=false"));
  EXPECT_TRUE(ok(plain)) << error_of(plain);
}

TEST_F(ProxyPostgres, OpenSessionSurvivesAPasswordChangeAndNewSessionsUseTheNewOne) {
  start(defaults());
  auto before = pq_connect(proxy_conninfo());
  ASSERT_TRUE(ok(before)) << error_of(before);
  const secret next = generate_password();
  admin_->set_password(names_.user_a, next);
  service_->source().set(snapshot(next));
  EXPECT_EQ(one(before, "SELECT session_user"), names_.user_a);
  auto after = pq_connect(proxy_conninfo());
  ASSERT_TRUE(ok(after)) << error_of(after);
  EXPECT_EQ(one(after, "SELECT session_user"), names_.user_a);
  EXPECT_EQ(one(before, "SELECT 1"), "1");
}

TEST_F(ProxyPostgres, PendingPasswordLogsInWhileAnInPlaceRotationIsInFlight) {
  start(defaults());
  const secret next = generate_password();
  admin_->set_password(names_.user_a, next);
  // The store still says the old password: the server's 28P01 reaches the client as 28P01.
  raw_socket s(service_->port());
  s.send(raw_startup("user\0x\0database\0y\0"s));
  const auto answer = s.read_to_close();
  ASSERT_TRUE(answer.has_value());
  auto fields = error_fields(*answer);
  EXPECT_EQ(fields['C'], "28P01") << *answer;
  EXPECT_EQ(fields['M'].rfind("tenantdb proxy:", 0), 0u) << fields['M'];
  EXPECT_EQ(answer->find(password_.reveal()), std::string::npos);
  EXPECT_EQ(answer->find(next.reveal()), std::string::npos);
  EXPECT_EQ(failures(proxy::failure::upstream_auth), 1u);

  service_->source().set(snapshot(password_, next));
  auto c = pq_connect(proxy_conninfo());
  ASSERT_TRUE(ok(c)) << error_of(c);
  EXPECT_EQ(one(c, "SELECT session_user"), names_.user_a);
}

TEST_F(ProxyPostgres, CancelRequestCancelsTheRunningQuery) {
  start(defaults());
  auto c = pq_connect(proxy_conninfo());
  ASSERT_TRUE(ok(c)) << error_of(c);
  auto watcher = pq_connect(proxy_conninfo());
  ASSERT_TRUE(ok(watcher)) << error_of(watcher);
  one(watcher, "SELECT 1 FROM (SELECT set_config('role', 'none', false)) AS r");  // sees its own login's query
  const int pid = PQbackendPID(c.get());
  ASSERT_EQ(PQsendQuery(c.get(), "SELECT pg_sleep(30)"), 1);
  ASSERT_TRUE(test::eventually([&] {
    return one(watcher, "SELECT count(*) FROM pg_stat_activity WHERE pid = " + std::to_string(pid) +
                            " AND state = 'active' AND query LIKE '%pg_sleep%'") == "1";
  }));
  const auto sent = steady::now();
  std::unique_ptr<PGcancel, decltype(&PQfreeCancel)> cancel(PQgetCancel(c.get()), &PQfreeCancel);
  char err[256];
  ASSERT_EQ(PQcancel(cancel.get(), err, sizeof err), 1) << err;
  std::string sqlstate;
  while (PGresult* r = PQgetResult(c.get())) {
    if (const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE)) sqlstate = s;
    PQclear(r);
  }
  EXPECT_EQ(sqlstate, "57014");
  EXPECT_LT(steady::now() - sent, 5s);
  EXPECT_EQ(one(c, "SELECT 1"), "1");
}

TEST_F(ProxyPostgres, UpstreamWithAnotherCaFailsNamingCaCertAndSslMode) {
  start(defaults());
  auto s = std::make_shared<proxy::upstream>(*snapshot(password_));
  s->server.ca_pem = test::other_ca_pem();
  service_->source().set(s);
  const auto began = steady::now();
  auto c = pq_connect(proxy_conninfo());
  ASSERT_FALSE(ok(c));
  EXPECT_LT(steady::now() - began, 4s);
  const std::string e = error_of(c);
  EXPECT_NE(e.find("caCert"), std::string::npos) << e;
  EXPECT_NE(e.find("sslMode"), std::string::npos) << e;
  EXPECT_EQ(failures(proxy::failure::upstream_tls), 1u);
}

TEST_F(ProxyPostgres, UnreachableUpstreamGives08006NamingHostAndPort) {
  start(defaults());
  auto s = std::make_shared<proxy::upstream>(*snapshot(password_));
  s->server.host = "127.0.0.1";
  s->server.port = test::unused_port();
  service_->source().set(s);
  raw_socket client(service_->port());
  client.send(raw_startup("user\0x\0database\0y\0"s));
  const auto answer = client.read_to_close();
  ASSERT_TRUE(answer.has_value());
  auto fields = error_fields(*answer);
  EXPECT_EQ(fields['C'], "08006");
  EXPECT_NE(fields['M'].find("127.0.0.1:" + std::to_string(s->server.port)), std::string::npos) << fields['M'];
  EXPECT_EQ(failures(proxy::failure::upstream_unreachable), 1u);
}

// sslMode prefer to a server that declines TLS: nothing verifies the server, so the proxy
// must not hand it the password in any form, nor take its word that no login is needed.
TEST_F(ProxyPostgres, UnverifiedUpstreamAskingForThePasswordIsRefusedNamingSslMode) {
  start(defaults());
  int n = 0;
  for (const std::string& ask : {auth_message(3), auth_message(5, "\x01\x02\x03\x04"), auth_message(0),
                                 auth_message(10, "SCRAM-SHA-256\0\0"s)}) {
    fake_server fake(ask);
    auto s = std::make_shared<proxy::upstream>(*snapshot(password_));
    s->server.host = "127.0.0.1";
    s->server.port = fake.port();
    s->server.tls = tls_mode::prefer;
    service_->source().set(s);
    raw_socket client(service_->port());
    client.send(raw_startup("user\0x\0database\0y\0"s));
    const auto answer = client.read_to_close();
    ASSERT_TRUE(answer.has_value()) << n;
    auto fields = error_fields(*answer);
    EXPECT_EQ(fields['C'], "08006") << n;
    EXPECT_NE(fields['M'].find("sslMode prefer"), std::string::npos) << fields['M'];
    // Only the size on failure: the bytes could be the password.
    EXPECT_TRUE(fake.received().empty()) << n << ": the proxy sent an unverified server " << fake.received().size()
                                         << " bytes";
    EXPECT_EQ(failures(proxy::failure::upstream_tls), static_cast<std::uint64_t>(++n));
  }
}

TEST_F(ProxyPostgres, NoCredentialsYetGives08006) {
  start(defaults(), false);
  raw_socket s(service_->port());
  s.send(raw_startup("user\0x\0database\0y\0"s));
  const auto answer = s.read_to_close();
  ASSERT_TRUE(answer.has_value());
  auto fields = error_fields(*answer);
  EXPECT_EQ(fields['C'], "08006");
  EXPECT_NE(fields['M'].find("no credentials yet"), std::string::npos) << fields['M'];
  EXPECT_EQ(failures(proxy::failure::no_credentials), 1u);
  service_->source().set(snapshot(password_));
  auto c = pq_connect(proxy_conninfo());
  EXPECT_TRUE(ok(c)) << error_of(c);
}

TEST_F(ProxyPostgres, LocalPasswordIsRequiredWhenSet) {
  proxy::options o = defaults();
  const secret local = generate_password();
  o.local_password = local;
  start(std::move(o));

  auto none = pq_connect(proxy_conninfo());
  ASSERT_FALSE(ok(none));
  EXPECT_NE(error_of(none).find("no password supplied"), std::string::npos) << error_of(none);
  none.reset();  // libpq closes its socket only now
  EXPECT_TRUE(test::eventually([&] { return failures(proxy::failure::local_auth) == 1; }));

  auto wrong = pq_connect(proxy_conninfo("sslmode=disable password=" + generate_password().reveal()));
  ASSERT_FALSE(ok(wrong));
  EXPECT_NE(error_of(wrong).find("--proxy-password-file"), std::string::npos) << error_of(wrong);
  EXPECT_EQ(error_of(wrong).find(local.reveal()), std::string::npos);
  EXPECT_EQ(failures(proxy::failure::local_auth), 2u);

  auto right = pq_connect(proxy_conninfo("sslmode=disable password=" + local.reveal()));
  ASSERT_TRUE(ok(right)) << error_of(right);
  EXPECT_EQ(one(right, "SELECT session_user"), names_.user_a);
}

TEST_F(ProxyPostgres, ConnectionCapRefusesTheThirdWith53300AndKeepsTheFirstTwo) {
  proxy::options o = defaults();
  o.max_connections = 2;
  start(std::move(o));
  auto first = pq_connect(proxy_conninfo());
  auto second = pq_connect(proxy_conninfo());
  ASSERT_TRUE(ok(first)) << error_of(first);
  ASSERT_TRUE(ok(second)) << error_of(second);

  raw_socket s(service_->port());
  s.send(raw_startup("user\0x\0database\0y\0"s));
  const auto answer = s.read_to_close();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(error_fields(*answer)['C'], "53300") << *answer;
  auto third = pq_connect(proxy_conninfo());
  ASSERT_FALSE(ok(third));
  EXPECT_NE(error_of(third).find("--proxy-max-connections"), std::string::npos) << error_of(third);

  EXPECT_EQ(one(first, "SELECT 1"), "1");
  EXPECT_EQ(one(second, "SELECT 2"), "2");
  EXPECT_EQ(failures(proxy::failure::connection_cap), 2u);
}

TEST_F(ProxyPostgres, HostileFrontDoorGetsAnErrorOrACloseAndOthersAreStillServed) {
  proxy::options o = defaults();
  o.handshake_timeout = 1s;
  start(std::move(o));
  const std::uint16_t port = service_->port();

  {  // garbage: an HTTP request reads as a huge length
    raw_socket s(port);
    s.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto answer = s.read_to_close(5s);
    ASSERT_TRUE(answer.has_value());
    EXPECT_EQ(error_fields(*answer)['C'], "08P01") << *answer;
  }
  {  // a length field of 2^31
    raw_socket s(port);
    s.send("\x80\0\0\0\0\x03\0\0"s);
    const auto answer = s.read_to_close(5s);
    ASSERT_TRUE(answer.has_value());
    EXPECT_EQ(error_fields(*answer)['C'], "08P01") << *answer;
  }
  {  // a truncated startup: 100 bytes announced, 20 sent, then the client stops writing
    raw_socket s(port);
    std::string partial;
    put_u32(partial, 100);
    partial += raw_startup("user\0x\0"s).substr(4, 16);
    s.send(partial);
    s.shutdown_write();
    EXPECT_TRUE(s.read_to_close(5s).has_value());
  }
  {  // a client that stalls mid-handshake is closed after handshake_timeout
    raw_socket s(port);
    std::string partial;
    put_u32(partial, 100);
    s.send(partial);
    const auto began = steady::now();
    EXPECT_TRUE(s.read_to_close(10s).has_value());
    EXPECT_GE(steady::now() - began, 900ms);
    EXPECT_TRUE(test::eventually([&] { return failures(proxy::failure::client_timeout) == 1; }));
  }
  {  // 300 connects at once, each with one of the above
    std::vector<std::unique_ptr<raw_socket>> flood;
    for (int i = 0; i < 300; ++i) flood.push_back(std::make_unique<raw_socket>(port));
    for (std::size_t i = 0; i < flood.size(); ++i) {
      switch (i % 3) {
        case 0: flood[i]->send("\x80\0\0\0"s); break;
        case 1: flood[i]->send("garbage garbage garbage"); break;
        default: break;  // says nothing at all
      }
    }
    int closed = 0;
    for (const auto& s : flood)
      if (s->read_to_close(10s).has_value()) ++closed;
    EXPECT_EQ(closed, 300);
  }
  auto c = pq_connect(proxy_conninfo());
  ASSERT_TRUE(ok(c)) << error_of(c);
  EXPECT_EQ(one(c, "SELECT session_user"), names_.user_a);
}

TEST_F(ProxyPostgres, PgbenchRunsThroughTheProxy) {
  start(defaults());
  const auto run = [](const std::string& command) {
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    if (p == nullptr) return std::pair<int, std::string>{-1, ""};
    std::string out;
    char buf[512];
    while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
    return std::pair<int, std::string>{::pclose(p), out};
  };
  const std::string target = "\"" + proxy_conninfo() + "\"";
  const auto [init_status, init_out] = run("pgbench -i -s 1 -q " + target);
  ASSERT_EQ(init_status, 0) << init_out;
  const auto [status, out] = run("pgbench -T 2 -c 4 -j 2 " + target);
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("number of failed transactions: 0 "), std::string::npos) << out;
  EXPECT_EQ(out.find("number of transactions actually processed: 0/"), std::string::npos) << out;
}

}  // namespace
}  // namespace tenantdb
