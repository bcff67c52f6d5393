#pragma once
// The sidecar's local database proxy (issue 10). The workload connects on loopback with a
// static, secret-free data source; every upstream connection is opened here, over TLS
// verified as the init verifies it, with the credentials active at that moment. After
// the login both directions are relayed unchanged, so a rotation changes nothing a
// client can see: open sessions keep the account they logged in with, new ones use the
// new one.
//
// Layout: this header is what the engines' sessions share (the upstream snapshot, the
// options, the counters, the upstream TLS helper); postgres_session.cpp and
// mysql_session.cpp each serve one client connection of their wire protocol;
// service.cpp accepts, caps and runs everything on the proxy's own thread and
// io_context, so proxied traffic never waits on the sidecar's API or database calls.

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

// GCC 12 reports a false "potential null pointer dereference" inside Asio's scheduler
// (Boost 1.74) once it is inlined; <utility> must come before Boost 1.74's awaitable.hpp.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#pragma GCC diagnostic pop

#include "tenantdb/connector.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/secret.hpp"

namespace tenantdb::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

/// Where and as whom the proxy logs in upstream, as of now.
struct upstream {
  server_address server;  ///< type, host, port, sslMode, caCert
  std::string database;   ///< the tenant's database
  login account;          ///< the active account
  /// In-place rotation in flight: the password being set on `account` (the store's
  /// pendingPassword), empty if none. A session whose login with account.password is
  /// refused tries this one once before it gives up.
  secret pending_password;
};

/// The current upstream, shared between the sidecar's loop (which sets it whenever the
/// store moves on) and the proxy's sessions (which take a snapshot when they log in).
/// Thread-safe.
class upstream_source {
public:
  void set(std::shared_ptr<const upstream> next) {
    const std::lock_guard<std::mutex> lock(mu_);
    current_ = std::move(next);
  }
  /// The snapshot to log in with; nullptr while no credentials are known.
  std::shared_ptr<const upstream> get() const {
    const std::lock_guard<std::mutex> lock(mu_);
    return current_;
  }

private:
  mutable std::mutex mu_;
  std::shared_ptr<const upstream> current_;
};

/// Why a proxied connection failed (the label of tenantdb_proxy_failures_total).
enum class failure : std::size_t {
  client_protocol,       ///< the client sent something malformed, oversized or out of order
  client_timeout,        ///< the client did not finish its handshake in time
  local_auth,            ///< the client's local password was wrong or missing
  unsupported,           ///< the client asked for what the proxy refuses (replication, ...)
  no_credentials,        ///< the sidecar has no credentials yet
  connection_cap,        ///< --proxy-max-connections reached
  upstream_unreachable,  ///< connect refused, timed out, DNS
  upstream_tls,          ///< TLS refused or the certificate did not verify
  upstream_auth,         ///< the server refused the tenant's login
  upstream_refused,      ///< the server refused the session otherwise (too many connections, ...)
  internal,
  count_
};
/// The metric label for `f` ("client_protocol", ...).
const char* to_string(failure f) noexcept;

/// The proxy's counters. Updated from the proxy's thread, read from the sidecar's.
class metrics {
public:
  void opened(const std::string& account);  ///< a session logged in upstream as `account`
  void closed(const std::string& account);  ///< that session ended
  void accepted() { ++total_; }
  void failed(failure f) { ++failures_[static_cast<std::size_t>(f)]; }
  /// Time from the client's startup to the upstream's login completing.
  void observe_connect(std::chrono::microseconds took);
  /// A relay took a buffer (bytes are flowing) / gave it back (a read would block).
  void relay_buffer_taken() { ++relay_buffers_; }
  void relay_buffer_returned() { --relay_buffers_; }

  std::uint64_t open() const { return open_.load(); }
  std::uint64_t total() const { return total_.load(); }
  /// Relay buffers held now: 0 when every session is idle.
  std::uint64_t relay_buffers() const { return relay_buffers_.load(); }
  std::uint64_t failures(failure f) const { return failures_[static_cast<std::size_t>(f)].load(); }
  /// Open sessions per account (accounts with none are listed once seen, with 0).
  std::map<std::string, std::uint64_t> sessions_by_account() const;

  /// Prometheus text for every tenantdb_proxy_* metric.
  std::string render() const;

private:
  std::atomic<std::uint64_t> open_{0};
  std::atomic<std::uint64_t> total_{0};
  std::atomic<std::uint64_t> relay_buffers_{0};
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(failure::count_)> failures_{};
  mutable std::mutex mu_;  // guards the two below
  std::map<std::string, std::uint64_t> by_account_;
  std::array<std::uint64_t, 12> connect_buckets_{};  // see render()
  std::uint64_t connect_count_ = 0;
  double connect_sum_seconds_ = 0;
};

/// The front door's settings (the sidecar's --proxy-* flags).
struct options {
  std::string address = "127.0.0.1";  ///< IP literal to listen on
  std::uint16_t port = 0;             ///< 0: the engine's usual port (5432, 3306); tests pass one
  /// The password clients must give; empty: none (loopback only, enforced by the options).
  secret local_password;
  std::size_t max_connections = 512;                    ///< client connections open at once
  std::chrono::milliseconds handshake_timeout{10'000};  ///< client: connect to logged in
  std::chrono::milliseconds connect_timeout{10'000};    ///< upstream: TCP connect + TLS + login
  std::chrono::seconds keepalive_idle{60};              ///< TCP keepalive on both sockets
};

/// Cancel keys seen on PostgreSQL sessions, so a CancelRequest (which arrives on a new
/// client connection) reaches the backend it names, and only a backend the proxy opened.
class cancel_registry {
public:
  struct target {
    std::shared_ptr<const upstream> where;  ///< the server the session is on
  };
  void add(std::uint32_t pid, std::uint32_t key, target t);
  void remove(std::uint32_t pid, std::uint32_t key);
  std::optional<target> find(std::uint32_t pid, std::uint32_t key) const;

private:
  mutable std::mutex mu_;
  std::map<std::pair<std::uint32_t, std::uint32_t>, target> keys_;
};

/// What one session needs; owned by the service, outlives every session.
struct context {
  const options& opts;
  upstream_source& source;
  metrics& stats;
  cancel_registry& cancels;
};

/// Serves one PostgreSQL client connection to its end (postgres_session.cpp). Never
/// throws: every failure is answered with an ErrorResponse where the protocol allows,
/// counted, and logged without secrets.
asio::awaitable<void> serve_postgres(tcp::socket client, context& ctx);

/// Serves one MySQL/MariaDB client connection to its end (mysql_session.cpp). Same
/// contract, ERR packets instead of ErrorResponse.
asio::awaitable<void> serve_mysql(tcp::socket client, context& ctx);

/// Answers a client the proxy will not serve (the connection cap) with the protocol's
/// error (PostgreSQL SQLSTATE 53300 after reading its startup, answering an SSLRequest
/// with 'N' first; MySQL ER_CON_COUNT_ERROR 1040 in place of the greeting) and closes.
/// Bounded by opts.handshake_timeout. Never throws.
asio::awaitable<void> refuse_postgres(tcp::socket client, context& ctx, failure why, std::string message);
asio::awaitable<void> refuse_mysql(tcp::socket client, context& ctx, failure why, std::string message);

/// TCP_NODELAY and keepalive (after opts.keepalive_idle, then every 10 s, 6 probes) on a
/// client or upstream socket. Failures are ignored: the session works without them.
void tune_socket(tcp::socket& s, const options& opts);

// ---------------------------------------------------------------------------------------
// Upstream TLS (tls.cpp), shared by both engines: the same rules as the init's libpq and
// Connector/C settings for server.tls.

/// A client TLS context for `server`: verify_full and verify_ca check the chain against
/// server.ca_pem (or the system bundle when empty); require and prefer encrypt without
/// verifying; TLS 1.2 at least. Throws tenantdb::error (connector, about "caCert") for a
/// CA that does not parse.
std::shared_ptr<asio::ssl::context> make_tls_context(const server_address& server);

/// Prepares `ssl` for its handshake with `server`: SNI (for a host name), and with
/// verify_full the host name (or IP address) check. See also new_tls_session (link.hpp).
void prepare_tls(SSL* ssl, const server_address& server);

/// True when the server's certificate is verified (verify_ca, verify_full). The unverified
/// modes must defend against a man in the middle the way the init does: PostgreSQL
/// SCRAM-SHA-256-PLUS only, MySQL/MariaDB no plugin that sends the password itself.
inline bool verified(const server_address& server) {
  return server.tls == tls_mode::verify_ca || server.tls == tls_mode::verify_full;
}

/// The tls-server-end-point channel binding data (RFC 5929) of the server certificate on
/// `ssl`: the certificate hashed with its signature's hash (SHA-256 for MD5 and SHA-1).
/// Empty if there is no certificate.
std::string tls_server_end_point(SSL* ssl);

}  // namespace tenantdb::proxy
