// One PostgreSQL client connection through the proxy: the front door (SSLRequest and
// GSSENCRequest declined, CancelRequest forwarded to the backend it names, the startup
// parsed and bounded), the optional local password (SCRAM-SHA-256, server side), the
// upstream login as the tenant (TLS as the connector says, SCRAM-SHA-256[-PLUS], md5 or
// password), then both directions relayed unchanged until either side closes.

#include <utility>  // before Boost 1.74's awaitable.hpp

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#pragma GCC diagnostic pop

#include "proxy/link.hpp"
#include "proxy/postgres_protocol.hpp"
#include "proxy/proxy.hpp"
#include "proxy/watchdog.hpp"
#include "tenantdb/log.hpp"

// GCC 12 at -O2 reports Asio's coroutine frame operator delete as mismatched with its
// operator new (both are Asio's awaitable_frame_base recycling allocator): a false positive.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace tenantdb::proxy {

namespace {

using clock = std::chrono::steady_clock;
constexpr std::size_t max_login_backlog = 65536;  // upstream messages held until ReadyForQuery

/// Why this session ends early. Thrown inside the session, answered in one place.
struct session_failure {
  failure why = failure::internal;
  std::string sqlstate;  ///< empty: close without an ErrorResponse
  std::string message;   ///< for the client and the log; never a secret
  bool password_refused = false;
};

std::string ms_text(std::chrono::milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

void close(tcp::socket& s) {
  boost::system::error_code ec;
  s.shutdown(tcp::socket::shutdown_both, ec);
  s.close(ec);
}

std::string where(const server_address& s) {
  return (s.host.find(':') != std::string::npos ? "[" + s.host + "]" : s.host) + ":" + std::to_string(s.port);
}

/// The TLS context for a snapshot, built once per snapshot on this thread (make_tls_context
/// parses the CA bundle).
std::shared_ptr<asio::ssl::context> tls_context_for(const std::shared_ptr<const upstream>& snap) {
  thread_local std::weak_ptr<const upstream> cached_for;
  thread_local std::shared_ptr<asio::ssl::context> cached;
  if (auto k = cached_for.lock(); k && k == snap && cached) return cached;
  cached = make_tls_context(snap->server);
  cached_for = snap;
  return cached;
}

/// The local password's SCRAM keys, derived once per password on this thread.
const pg::scram_verifier& local_verifier(const secret& password) {
  thread_local std::optional<secret> cached_for;
  thread_local pg::scram_verifier cached;
  if (!cached_for || !(*cached_for == password)) {
    std::string salt = pg::random_nonce(16);  // any bytes do; these are printable
    cached = pg::make_scram_verifier(password, std::move(salt), 4096);
    cached_for = password;
  }
  return cached;
}

// ---------------------------------------------------------------------------------------
// The upstream connection: TLS or not, decided by the server's answer to SSLRequest.

struct upstream_conn {
  std::shared_ptr<asio::ssl::context> tls_ctx;
  tcp::socket sock;
  ssl_ptr ssl{nullptr, &SSL_free};
  std::optional<tls_link> secure;  // set once TLS is up
  plain_link clear{sock};

  upstream_conn(const asio::any_io_executor& ex, std::shared_ptr<asio::ssl::context> c)
      : tls_ctx(std::move(c)), sock(ex) {}
  tcp::socket& socket() { return sock; }
  bool tls() const { return secure.has_value(); }
  void close() { proxy::close(sock); }

  asio::awaitable<void> read_exact(char* p, std::size_t n) {
    if (secure)
      co_await secure->read_exact(p, n);
    else
      co_await clear.read_exact(p, n);
  }
  asio::awaitable<void> write(std::string_view data) {
    if (secure)
      co_await secure->write_all(data.data(), data.size());
    else
      co_await clear.write_all(data.data(), data.size());
  }
  asio::awaitable<std::size_t> read_some(char* p, std::size_t n, boost::system::error_code& ec) {
    try {
      if (secure) co_return co_await secure->read_some(p, n);
      co_return co_await clear.read_some(p, n);
    } catch (const boost::system::system_error& e) {
      ec = e.code();
    }
    co_return 0;
  }
};

enum class phase { front_door, local_auth, upstream_connect, upstream_tls, upstream_login, relay };

/// What an upstream ErrorResponse during login tells the client: the server's SQLSTATE,
/// and what to check.
session_failure from_upstream_error(std::string_view body, const upstream& snap) {
  const auto fields = pg::parse_fields(body);
  std::string code = pg::field(fields, 'C');
  if (code.size() != 5) code = "08006";
  const std::string server_message = pg::field(fields, 'M');
  std::string hint = "check the server's log";
  failure why = failure::upstream_refused;
  bool password_refused = false;
  if (code == "28P01") {
    why = failure::upstream_auth;
    password_refused = true;
    hint =
        "the tenant's password was refused: the sidecar's credentials are stale or the account was changed by "
        "hand; check the sidecar's log";
  } else if (code.starts_with("28")) {
    why = failure::upstream_auth;
    hint = "check the server's pg_hba.conf and the tenant's account";
  } else if (code == "53300") {
    hint =
        "the server or the tenant's account has too many connections (the server's max_connections, the "
        "connector's maxConnections): close idle sessions or raise the limit";
  } else if (code == "3D000") {
    hint = "the tenant's database does not exist: check that tenantdb-init ran for this tenant";
  } else if (code == "57P03") {
    hint = "the server is starting up or shutting down: retry shortly";
  }
  return session_failure{why, code,
                         "tenantdb proxy: the server " + where(snap.server) + " refused the session of " +
                             snap.account.user + ": " + server_message + " (" + hint + ")",
                         password_refused};
}

class pg_session {
public:
  pg_session(tcp::socket client, context& ctx) : client_(std::move(client)), ctx_(ctx) {}

  asio::awaitable<void> run() {
    std::optional<session_failure> failed;
    try {
      co_await serve();
    } catch (const session_failure& f) {
      failed = f;
    } catch (const boost::system::system_error& e) {
      failed = from_io_error(e.code());
    } catch (const std::exception& e) {
      failed = session_failure{failure::internal, "XX000", std::string("tenantdb proxy: internal error: ") + e.what()};
    } catch (...) {
      failed = session_failure{failure::internal, "XX000", "tenantdb proxy: internal error"};
    }
    if (failed) co_await report(*failed);
    close(client_);
    if (up_) up_->close();
  }

  /// The front door only (the connection cap): read the startup, answer with the error.
  asio::awaitable<void> refuse(failure why, std::string message) {
    try {
      watchdog dog(client_.get_executor(), ctx_.opts.handshake_timeout, [this] { close(client_); });
      const pg::first_packet first = co_await read_first_packet();
      if (std::holds_alternative<pg::startup_message>(first)) {
        const std::string code = why == failure::connection_cap   ? "53300"
                                 : why == failure::no_credentials ? "08006"
                                 : why == failure::unsupported    ? "0A000"
                                                                  : "08006";
        const std::string packet = pg::error_response("FATAL", code, message);
        co_await asio::async_write(client_, asio::buffer(packet), asio::use_awaitable);
      }
    } catch (...) {  // the client went away or sent garbage: it is being refused anyway
    }
    close(client_);
  }

private:
  tcp::socket client_;
  context& ctx_;
  phase phase_ = phase::front_door;
  bool got_bytes_ = false;
  bool declined_tls_ = false;
  clock::time_point started_{};
  std::shared_ptr<const upstream> snap_;
  std::unique_ptr<upstream_conn> up_;
  std::optional<tcp::resolver> resolver_;
  std::unique_ptr<watchdog> client_dog_, upstream_dog_;

  // -------------------------------------------------------------------------------------
  // Front door

  asio::awaitable<pg::first_packet> read_first_packet() {
    for (int round = 0; round < 3; ++round) {
      char len_buf[4];
      co_await asio::async_read(client_, asio::buffer(len_buf, 1), asio::use_awaitable);
      if (!got_bytes_) started_ = clock::now();
      got_bytes_ = true;
      co_await asio::async_read(client_, asio::buffer(len_buf + 1, 3), asio::use_awaitable);
      const std::uint32_t length = pg::read_u32(len_buf);
      if (auto why = pg::check_startup_length(length))
        throw session_failure{failure::client_protocol, "08P01", "tenantdb proxy: " + *why};
      std::string body(length - 4, '\0');
      co_await asio::async_read(client_, asio::buffer(body), asio::use_awaitable);
      pg::first_packet packet = pg::parse_first_packet(body);
      if (std::holds_alternative<pg::ssl_request>(packet) || std::holds_alternative<pg::gssenc_request>(packet)) {
        // Loopback to the workload: no TLS and no GSSAPI here; the client goes on in clear.
        declined_tls_ = true;
        co_await asio::async_write(client_, asio::buffer("N", 1), asio::use_awaitable);
        continue;
      }
      if (const auto* bad = std::get_if<pg::bad_packet>(&packet))
        throw session_failure{failure::client_protocol, "08P01", "tenantdb proxy: " + bad->message};
      co_return packet;
    }
    throw session_failure{failure::client_protocol, "08P01",
                          "tenantdb proxy: too many SSLRequest/GSSENCRequest packets"};
  }

  session_failure from_io_error(const boost::system::error_code& ec) const {
    const std::string err = ec.message();
    switch (phase_) {
      case phase::front_door:
        if (client_dog_ && client_dog_->fired())
          return {failure::client_timeout, "",
                  "the client did not send its startup within " + ms_text(ctx_.opts.handshake_timeout)};
        if (!got_bytes_) return {failure::client_protocol, "", ""};  // connected and left: a probe
        return {failure::client_protocol, "",
                declined_tls_ ? "the client closed the connection after the proxy declined TLS (the proxy speaks "
                                "plain TCP on loopback: use sslmode=disable or prefer)"
                              : "the client closed the connection during its startup: " + err};
      case phase::local_auth:
        if (client_dog_ && client_dog_->fired())
          return {failure::client_timeout, "",
                  "the client did not authenticate within " + ms_text(ctx_.opts.handshake_timeout)};
        return {failure::local_auth, "",
                "the client closed the connection when asked for the local password (--proxy-password-file)"};
      case phase::upstream_connect:
        return {failure::upstream_unreachable, "08006",
                "tenantdb proxy: cannot connect to the server " + where(snap_->server) + ": " +
                    (upstream_dog_ && upstream_dog_->fired() ? "timed out after " + ms_text(ctx_.opts.connect_timeout)
                                                             : err) +
                    " (check the connector's host and port and the network)"};
      case phase::upstream_tls: {
        std::string detail = err;
        if (up_ && up_->ssl) {
          const long verify = SSL_get_verify_result(up_->ssl.get());
          if (verify != X509_V_OK) detail = X509_verify_cert_error_string(verify);
        }
        if (upstream_dog_ && upstream_dog_->fired()) detail = "timed out after " + ms_text(ctx_.opts.connect_timeout);
        return {failure::upstream_tls, "08006",
                "tenantdb proxy: TLS with the server " + where(snap_->server) + " failed: " + detail +
                    " (check caCert and sslMode in the connector)"};
      }
      case phase::upstream_login:
        if (upstream_dog_ && upstream_dog_->fired())
          return {failure::upstream_unreachable, "08006",
                  "tenantdb proxy: the server " + where(snap_->server) + " did not complete the login within " +
                      ms_text(ctx_.opts.connect_timeout)};
        return {failure::upstream_refused, "08006",
                "tenantdb proxy: the server " + where(snap_->server) +
                    " closed the connection during the login: " + err + " (check the server's log)"};
      case phase::relay: break;
    }
    return {failure::internal, "", ""};
  }

  asio::awaitable<void> report(const session_failure& f) {
    if (f.message.empty() && f.sqlstate.empty()) {
      log::debug("proxy: postgres client left before its startup");
      co_return;
    }
    ctx_.stats.failed(f.why);
    log::warn("proxy: postgres session failed", {{"reason", to_string(f.why)}, {"error", f.message}});
    if (f.sqlstate.empty() || !client_.is_open()) co_return;
    try {
      watchdog dog(client_.get_executor(), ctx_.opts.handshake_timeout, [this] { close(client_); });
      const std::string packet = pg::error_response("FATAL", f.sqlstate, f.message);
      co_await asio::async_write(client_, asio::buffer(packet), asio::use_awaitable);
    } catch (...) {  // the client is gone; it was failing anyway
    }
  }

  // -------------------------------------------------------------------------------------
  // The session

  asio::awaitable<void> serve() {
    client_dog_ =
        std::make_unique<watchdog>(client_.get_executor(), ctx_.opts.handshake_timeout, [this] { close(client_); });
    const pg::first_packet first = co_await read_first_packet();
    if (const auto* c = std::get_if<pg::cancel_request>(&first)) {
      client_dog_->disarm();
      co_await forward_cancel(*c);
      co_return;
    }
    const auto& startup = std::get<pg::startup_message>(first);
    if (startup.version != pg::protocol_3_0)
      throw session_failure{failure::unsupported, "0A000",
                            "tenantdb proxy: unsupported frontend protocol " + std::to_string(startup.version >> 16) +
                                "." + std::to_string(startup.version & 0xffff) + ": the proxy serves protocol 3.0"};
    if (pg::wants_replication(startup))
      throw session_failure{failure::unsupported, "0A000",
                            "tenantdb proxy: replication connections are not served through the proxy (it logs in "
                            "as the tenant, which has no replication privilege); connect without replication"};
    if (!ctx_.opts.local_password.empty()) {
      phase_ = phase::local_auth;
      co_await local_auth();
    }
    client_dog_->disarm();

    snap_ = ctx_.source.get();
    if (!snap_)
      throw session_failure{failure::no_credentials, "08006",
                            "tenantdb proxy: the tenantdb sidecar has no credentials yet; check the sidecar's log"};

    std::string prelude;  // NegotiateProtocolVersion, which belongs before AuthenticationOk
    std::string backlog;  // upstream messages after AuthenticationOk, up to ReadyForQuery
    std::optional<std::pair<std::uint32_t, std::uint32_t>> key;
    std::optional<session_failure> refused;
    try {
      co_await login(startup, snap_->account.password, prelude, backlog, key);
    } catch (const session_failure& f) {
      if (!f.password_refused) throw;
      refused = f;
    }
    if (refused) {
      // The password was refused: an in-place rotation is in flight (try the password it
      // is setting), or the store moved on while this session connected (a rotation's
      // claim and change landed between the snapshot and the login). Try the pending
      // password, then each newer snapshot's passwords as the store moves on, a few
      // times at most: rotations are seconds apart, logins milliseconds.
      std::shared_ptr<const upstream> tried = snap_;
      std::vector<std::pair<std::shared_ptr<const upstream>, secret>> more;
      if (!snap_->pending_password.empty()) more.emplace_back(snap_, snap_->pending_password);
      for (int attempts = 0;; ++attempts) {
        if (more.empty()) {
          auto fresh = ctx_.source.get();
          if (!fresh || fresh == tried || attempts >= 6) throw *refused;
          tried = fresh;
          more.emplace_back(fresh, fresh->account.password);
          if (!fresh->pending_password.empty()) more.emplace_back(fresh, fresh->pending_password);
        }
        if (up_) up_->close();
        up_.reset();
        prelude.clear();
        backlog.clear();
        key.reset();
        snap_ = more.front().first;
        const secret password = more.front().second;
        more.erase(more.begin());
        try {
          co_await login(startup, password, prelude, backlog, key);
          break;
        } catch (const session_failure& f) {
          if (!f.password_refused) throw;
          refused = f;
        }
      }
    }
    upstream_dog_->disarm();

    phase_ = phase::relay;
    const std::string hello = prelude + pg::authentication_ok() + backlog;
    co_await asio::async_write(client_, asio::buffer(hello), asio::use_awaitable);
    // Counted and registered until the relay ends, also when the io_context is torn down.
    struct open_session {
      context& ctx;
      std::string account;
      std::optional<std::pair<std::uint32_t, std::uint32_t>> key;
      open_session(context& c, std::shared_ptr<const upstream> snap,
                   std::optional<std::pair<std::uint32_t, std::uint32_t>> k)
          : ctx(c), account(snap->account.user), key(k) {
        if (key) ctx.cancels.add(key->first, key->second, cancel_registry::target{std::move(snap)});
        ctx.stats.opened(account);
      }
      ~open_session() {
        ctx.stats.closed(account);
        if (key) ctx.cancels.remove(key->first, key->second);
      }
      open_session(const open_session&) = delete;
      open_session& operator=(const open_session&) = delete;
    };
    const open_session counted(ctx_, snap_, key);
    co_await relay();
  }

  /// Reads one client message of type 'p' during the local password exchange.
  asio::awaitable<std::string> read_password_message() {
    char h[5];
    co_await asio::async_read(client_, asio::buffer(h, 5), asio::use_awaitable);
    const pg::header hd = pg::parse_header(h);
    const auto n = hd.body_length(pg::max_client_auth_length);
    if (hd.type != 'p' || !n)
      throw session_failure{failure::client_protocol, "08P01",
                            "tenantdb proxy: expected a password message, got something else or too long"};
    std::string body(*n, '\0');
    co_await asio::async_read(client_, asio::buffer(body), asio::use_awaitable);
    co_return body;
  }

  asio::awaitable<void> local_auth() {
    const session_failure wrong{failure::local_auth, "28P01",
                                "tenantdb proxy: password authentication failed: this proxy requires the password "
                                "in the sidecar's --proxy-password-file"};
    const pg::scram_verifier& v = local_verifier(ctx_.opts.local_password);
    co_await asio::async_write(client_, asio::buffer(pg::authentication_sasl_scram()), asio::use_awaitable);
    const std::string initial = co_await read_password_message();
    // SASLInitialResponse: mechanism, Int32 length, client-first-message.
    const std::size_t nul = initial.find('\0');
    if (nul == std::string::npos || initial.substr(0, nul) != "SCRAM-SHA-256" || initial.size() < nul + 5) throw wrong;
    const std::uint32_t len = pg::read_u32(initial.data() + nul + 1);
    if (len != initial.size() - nul - 5) throw wrong;
    pg::scram_server scram(v, pg::random_nonce());
    const auto server_first = scram.server_first(std::string_view(initial).substr(nul + 5));
    if (!server_first) throw wrong;
    co_await asio::async_write(client_, asio::buffer(pg::authentication(11, *server_first)), asio::use_awaitable);
    const std::string client_final = co_await read_password_message();
    const auto server_final = scram.server_final(client_final);
    if (!server_final) throw wrong;
    co_await asio::async_write(client_, asio::buffer(pg::authentication(12, *server_final)), asio::use_awaitable);
  }

  // -------------------------------------------------------------------------------------
  // Upstream

  /// Resolves, connects and negotiates TLS with `server` into up_, bounded by
  /// connect_timeout (upstream_dog_, which stays armed for the login).
  asio::awaitable<void> connect_upstream(const std::shared_ptr<const upstream>& snap) {
    const server_address& server = snap->server;
    std::shared_ptr<asio::ssl::context> tls_ctx;
    try {
      tls_ctx = tls_context_for(snap);
    } catch (const std::exception& e) {  // a CA that does not parse; the message names caCert
      throw session_failure{failure::upstream_tls, "08006",
                            std::string("tenantdb proxy: cannot use the connector's TLS settings: ") + e.what() +
                                " (check caCert and sslMode in the connector)"};
    }
    phase_ = phase::upstream_connect;
    auto ex = co_await asio::this_coro::executor;
    up_ = std::make_unique<upstream_conn>(ex, std::move(tls_ctx));
    resolver_.emplace(ex);
    upstream_dog_ = std::make_unique<watchdog>(ex, ctx_.opts.connect_timeout, [this] {
      if (resolver_) resolver_->cancel();
      if (up_) up_->close();
    });
    const auto endpoints =
        co_await resolver_->async_resolve(server.host, std::to_string(server.port), asio::use_awaitable);
    co_await asio::async_connect(up_->socket(), endpoints, asio::use_awaitable);
    tune_socket(up_->socket(), ctx_.opts);

    if (server.tls == tls_mode::disable) co_return;
    phase_ = phase::upstream_tls;
    co_await up_->write(pg::ssl_request_packet());
    char answer = 0;
    co_await up_->read_exact(&answer, 1);  // exactly one byte: nothing read past it in clear
    if (answer == 'S') {
      up_->ssl = new_tls_session(*up_->tls_ctx, up_->socket(), server);
      tls_link link(up_->socket(), up_->ssl.get());
      const std::string why = co_await link.handshake();
      if (!why.empty())
        throw session_failure{
            failure::upstream_tls, "08006",
            "tenantdb proxy: TLS with the server " + where(server) + " failed: " +
                (upstream_dog_ && upstream_dog_->fired() ? "timed out after " + ms_text(ctx_.opts.connect_timeout)
                                                         : why) +
                " (check caCert and sslMode in the connector)"};
      up_->secure.emplace(link);
      co_return;
    }
    if (answer == 'N' && (server.tls == tls_mode::allow || server.tls == tls_mode::prefer)) co_return;
    throw session_failure{failure::upstream_tls, "08006",
                          "tenantdb proxy: the server " + where(server) + " does not accept TLS, which sslMode " +
                              std::string(to_string(server.tls)) +
                              " requires (check sslMode in the connector and the server's ssl setting)"};
  }

  [[noreturn]] void refuse_unverified(const std::string& what) const {
    throw session_failure{failure::upstream_tls, "08006",
                          "tenantdb proxy: the server " + where(snap_->server) + " asks for " + what +
                              ", but with sslMode " + std::string(to_string(snap_->server.tls)) +
                              " the server is not verified and only SCRAM-SHA-256-PLUS (channel binding over TLS) "
                              "is safe; set sslMode verify-full (and caCert) in the connector, or have the server "
                              "use scram-sha-256 over TLS"};
  }

  asio::awaitable<std::pair<char, std::string>> read_upstream_message() {
    char h[5];
    co_await up_->read_exact(h, 5);
    const pg::header hd = pg::parse_header(h);
    const auto n = hd.body_length(pg::max_upstream_login_length);
    if (!n)
      throw session_failure{failure::upstream_refused, "08006",
                            "tenantdb proxy: the server " + where(snap_->server) +
                                " sent a malformed or oversized message during the login"};
    std::string body(*n, '\0');
    co_await up_->read_exact(body.data(), body.size());
    co_return std::pair<char, std::string>{hd.type, std::move(body)};
  }

  /// Connects and logs in as the tenant with `password`; on return up_ is at
  /// ReadyForQuery and `backlog` holds every message after AuthenticationOk.
  asio::awaitable<void> login(const pg::startup_message& startup, const secret& password, std::string& prelude,
                              std::string& backlog, std::optional<std::pair<std::uint32_t, std::uint32_t>>& key) {
    co_await connect_upstream(snap_);
    phase_ = phase::upstream_login;
    const server_address& server = snap_->server;
    const bool unverified =
        server.tls == tls_mode::allow || server.tls == tls_mode::prefer || server.tls == tls_mode::require;
    co_await up_->write(pg::startup_for(snap_->account.user, snap_->database, startup.params));

    std::optional<pg::scram_client> scram;
    bool scram_verified = false;
    for (bool authenticated = false; !authenticated;) {
      auto [type, body] = co_await read_upstream_message();
      if (type == 'E') throw from_upstream_error(body, *snap_);
      if (type == 'v') {  // NegotiateProtocolVersion: the client's business
        prelude += pg::message(type, body);
        continue;
      }
      if (type == 'N') continue;
      if (type != 'R' || body.size() < 4)
        throw session_failure{failure::upstream_refused, "08006",
                              "tenantdb proxy: the server " + where(server) +
                                  " sent an unexpected message during "
                                  "the login"};
      const std::uint32_t code = pg::read_u32(body.data());
      const std::string_view data = std::string_view(body).substr(4);
      switch (code) {
        case 0:  // AuthenticationOk
          // Without verification only a completed SCRAM-PLUS exchange proves the server.
          if ((unverified || scram) && !scram_verified) {
            if (unverified) refuse_unverified("no authentication");
            throw session_failure{failure::upstream_auth, "28000",
                                  "tenantdb proxy: the server " + where(server) +
                                      " ended SCRAM without proving it knows the password (check the connector's "
                                      "host and sslMode)"};
          }
          authenticated = true;
          break;
        case 3: {  // AuthenticationCleartextPassword
          if (unverified) refuse_unverified("the password in clear text");
          std::string clear = password.reveal();
          clear += '\0';
          std::string msg = pg::password_message(clear);
          wipe(clear);
          co_await up_->write(msg);
          wipe(msg);
          break;
        }
        case 5: {  // AuthenticationMD5Password
          if (unverified) refuse_unverified("an MD5 password");
          if (data.size() != 4)
            throw session_failure{failure::upstream_refused, "08006",
                                  "tenantdb proxy: malformed MD5 request from " + where(server)};
          co_await up_->write(
              pg::password_message(pg::md5_password(password, snap_->account.user, data) + std::string(1, '\0')));
          break;
        }
        case 10: {  // AuthenticationSASL
          const auto mechs = pg::parse_sasl_mechanisms(data);
          const auto offers = [&](std::string_view m) {
            for (const auto& x : mechs)
              if (x == m) return true;
            return false;
          };
          std::string mech, gs2, binding;
          if (up_->tls() && offers("SCRAM-SHA-256-PLUS")) {
            binding = tls_server_end_point(up_->ssl.get());
            if (binding.empty())
              throw session_failure{failure::upstream_tls, "08006",
                                    "tenantdb proxy: the server " + where(server) +
                                        " sent no certificate to bind SCRAM to (check sslMode)"};
            mech = "SCRAM-SHA-256-PLUS";
            gs2 = "p=tls-server-end-point,,";
          } else if (unverified) {
            refuse_unverified("SCRAM-SHA-256 without channel binding");
          } else if (offers("SCRAM-SHA-256")) {
            mech = "SCRAM-SHA-256";
            gs2 = up_->tls() ? "y,," : "n,,";
          } else {
            throw session_failure{failure::upstream_auth, "28000",
                                  "tenantdb proxy: the server " + where(server) +
                                      " offers no SASL mechanism the proxy supports (SCRAM-SHA-256)"};
          }
          scram.emplace(password, "", pg::random_nonce(), gs2, binding);
          co_await up_->write(pg::sasl_initial_response(mech, scram->client_first()));
          break;
        }
        case 11: {  // AuthenticationSASLContinue
          if (!scram)
            throw session_failure{failure::upstream_refused, "08006",
                                  "tenantdb proxy: SCRAM out of order from " + where(server)};
          thread_local pg::scram_key_cache keys;  // this thread's logins share the derived keys
          auto final_message = scram->client_final(data, &keys);
          if (!final_message)
            throw session_failure{
                failure::upstream_auth, "28000",
                "tenantdb proxy: SCRAM with the server " + where(server) + " failed: " + scram->error()};
          co_await up_->write(pg::password_message(*final_message));
          break;
        }
        case 12:  // AuthenticationSASLFinal
          if (!scram || !scram->verify_server_final(data))
            throw session_failure{failure::upstream_auth, "28000",
                                  "tenantdb proxy: the server " + where(server) +
                                      " did not prove it knows the tenant's password (a wrong SCRAM server "
                                      "signature: check the connector's host, sslMode and caCert)"};
          scram_verified = true;
          break;
        default:
          throw session_failure{failure::upstream_auth, "28000",
                                "tenantdb proxy: the server " + where(server) +
                                    " asks for an authentication method the proxy does not support (" +
                                    std::to_string(code) + "; supported: scram-sha-256, md5, password)"};
      }
    }
    ctx_.stats.observe_connect(std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - started_));

    // Up to ReadyForQuery: the server may still refuse (too many connections for the role,
    // a missing database), and the client should see that as the proxy's error.
    for (;;) {
      auto [type, body] = co_await read_upstream_message();
      if (type == 'E') throw from_upstream_error(body, *snap_);
      if (type == 'K' && body.size() == 8) key.emplace(pg::read_u32(body.data()), pg::read_u32(body.data() + 4));
      backlog += pg::message(type, body);
      if (type == 'Z') break;
      if (backlog.size() > max_login_backlog)
        throw session_failure{failure::upstream_refused, "08006",
                              "tenantdb proxy: the server " + where(server) + " sent too much before ReadyForQuery"};
    }
  }

  /// CancelRequest: only for a backend one of this proxy's sessions opened.
  asio::awaitable<void> forward_cancel(pg::cancel_request c) {
    const auto target = ctx_.cancels.find(c.pid, c.key);
    if (!target) {
      log::debug("proxy: CancelRequest for an unknown backend ignored");
      co_return;
    }
    snap_ = target->where;
    try {
      co_await connect_upstream(snap_);
      phase_ = phase::upstream_login;
      co_await up_->write(pg::cancel_request_packet(c.pid, c.key));
      // The server closes once it has the request; wait for that, within the deadline.
      char sink[64];
      boost::system::error_code ec;
      while (!ec) co_await up_->read_some(sink, sizeof sink, ec);
    } catch (const session_failure& f) {
      ctx_.stats.failed(f.why);
      log::warn("proxy: postgres cancel request failed", {{"reason", to_string(f.why)}, {"error", f.message}});
    } catch (const boost::system::system_error& e) {
      const session_failure f = from_io_error(e.code());
      ctx_.stats.failed(f.why);
      log::warn("proxy: postgres cancel request failed", {{"reason", to_string(f.why)}, {"error", f.message}});
    }
    if (upstream_dog_) upstream_dog_->disarm();
  }

  // -------------------------------------------------------------------------------------
  // Relay: both directions at once until either ends, each holding a relay buffer only
  // while its bytes flow (link.hpp's pump), so an idle session holds none.

  asio::awaitable<void> client_to_upstream() {
    plain_link client(client_);
    try {
      if (up_->secure)
        co_await pump(client, *up_->secure, ctx_.stats);
      else
        co_await pump(client, up_->clear, ctx_.stats);
    } catch (const boost::system::system_error&) {  // either side ended: the relay ends
    }
  }

  asio::awaitable<void> upstream_to_client() {
    plain_link client(client_);
    try {
      if (up_->secure)
        co_await pump(*up_->secure, client, ctx_.stats);
      else
        co_await pump(up_->clear, client, ctx_.stats);
    } catch (const boost::system::system_error&) {
    }
  }

  void close_both() {
    close(client_);
    if (up_) up_->close();
  }

  asio::awaitable<void> relay() {
    auto ex = co_await asio::this_coro::executor;
    bool other_done = false;
    asio::steady_timer done(ex, asio::steady_timer::time_point::max());
    asio::co_spawn(ex, upstream_to_client(), [this, &other_done, &done](std::exception_ptr) {
      other_done = true;
      close_both();
      done.cancel();
    });
    co_await client_to_upstream();
    close_both();
    if (!other_done) {
      boost::system::error_code ec;
      co_await done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }
};

}  // namespace

asio::awaitable<void> serve_postgres(tcp::socket client, context& ctx) {
  try {
    pg_session session(std::move(client), ctx);
    co_await session.run();
  } catch (...) {  // run() answers everything; this is the last guard of the contract
    ctx.stats.failed(failure::internal);
  }
}

asio::awaitable<void> refuse_postgres(tcp::socket client, context& ctx, failure why, std::string message) {
  // The caller (the service) has counted the failure.
  try {
    pg_session session(std::move(client), ctx);
    co_await session.refuse(why, std::move(message));
  } catch (...) {
  }
}

}  // namespace tenantdb::proxy
