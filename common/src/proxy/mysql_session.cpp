// One MySQL/MariaDB client connection through the proxy (issue 10).
//
// 1. Connect upstream first and read the server's HandshakeV10, so the client's greeting
//    can carry the server's version, capabilities and connection id (KILL QUERY <id>
//    from another client then names the right thread).
// 2. Greet the client with a fresh scramble and the server's capabilities minus what the
//    proxy cannot relay transparently (local TLS, compression); read its
//    HandshakeResponse41 and, with a local password, check it.
// 3. Log in upstream as the tenant: SSLRequest and TLS as the connector says, the
//    client's capabilities, charset and attributes, the tenant's user and database, the
//    server's plugin (mysql_native_password, caching_sha2_password; auth switches and
//    caching_sha2's "full authentication" only over verified TLS).
// 4. Relay both ways unchanged, except that COM_CHANGE_USER from the client is answered
//    with an ERR and never forwarded: the session stays the tenant's.

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <array>
#include <cstring>
#include <exception>
#include <functional>
#include <optional>
#include <utility>  // before Boost 1.74's awaitable.hpp

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#pragma GCC diagnostic pop

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "proxy/link.hpp"
#include "proxy/mysql_protocol.hpp"
#include "proxy/proxy.hpp"
#include "proxy/watchdog.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/log.hpp"
#include "tenantdb/password.hpp"

namespace tenantdb::proxy {

namespace {

namespace my = mysql;
using asio::use_awaitable;

constexpr const char* native_plugin = "mysql_native_password";
constexpr const char* caching_sha2_plugin = "caching_sha2_password";

// Error codes the proxy answers with itself (MySQL's own numbers, so clients and their
// retry logic recognise them).
constexpr std::uint16_t er_con_count_error = 1040;
constexpr std::uint16_t er_handshake_error = 1043;
constexpr std::uint16_t er_access_denied = 1045;
constexpr std::uint16_t er_unknown_com_error = 1047;
constexpr std::uint16_t er_not_supported_auth_mode = 1251;
// Not the client library's own 2003/2026: Connector/C takes a client-range code from a
// server for a malformed packet. ER_CONNECT_TO_FOREIGN_DATA_SOURCE says what happened.
constexpr std::uint16_t er_connect_to_foreign_data_source = 1429;
constexpr std::uint16_t upstream_unavailable = er_connect_to_foreign_data_source;
constexpr std::uint16_t upstream_tls_error = er_connect_to_foreign_data_source;

/// A session the proxy ends with an ERR to the client (when `code` != 0) and a count.
struct refusal {
  failure why;
  std::uint16_t code;
  std::string sqlstate;
  std::string message;  ///< for the client and the log: never a secret
};

/// One TLS client context per upstream snapshot (parsing the CA once, not per session).
/// Sessions all run on the proxy's one thread.
std::shared_ptr<asio::ssl::context> tls_context_for(const std::shared_ptr<const upstream>& snap) {
  thread_local std::weak_ptr<const upstream> cached_for;
  thread_local std::shared_ptr<asio::ssl::context> cached;
  if (cached && cached_for.lock() == snap) return cached;
  cached = make_tls_context(snap->server);
  cached_for = snap;
  return cached;
}

void set_close(tcp::socket& s) {
  boost::system::error_code ec;
  s.close(ec);
}

struct packet {
  std::uint8_t seq = 0;
  std::string payload;
};

asio::awaitable<void> read_exact(tcp::socket& s, asio::mutable_buffer b) {
  co_await asio::async_read(s, b, use_awaitable);
}
asio::awaitable<void> read_exact(tls_link& s, asio::mutable_buffer b) {
  co_await s.read_exact(static_cast<char*>(b.data()), b.size());
}
asio::awaitable<void> write_all(tcp::socket& s, asio::const_buffer b) {
  co_await asio::async_write(s, b, use_awaitable);
}
asio::awaitable<void> write_all(tls_link& s, asio::const_buffer b) {
  co_await s.write_all(static_cast<const char*>(b.data()), b.size());
}

/// One packet of at most `cap` bytes (the 3-byte length is checked before allocating).
template <class Stream>
asio::awaitable<packet> read_packet(Stream& s, std::uint32_t cap) {
  std::array<unsigned char, 4> h{};
  co_await read_exact(s, asio::buffer(h));
  const my::header hd = my::parse_header(h.data());
  if (hd.length > cap)
    throw my::protocol_error("a handshake packet of " + std::to_string(hd.length) + " bytes (at most " +
                             std::to_string(cap) + ")");
  packet p;
  p.seq = hd.seq;
  p.payload.resize(hd.length);
  if (hd.length > 0) co_await read_exact(s, asio::buffer(p.payload));
  co_return p;
}

template <class Stream>
asio::awaitable<void> write_packet(Stream& s, std::uint8_t seq, std::string_view payload) {
  const std::string framed = my::frame(seq, payload);
  co_await write_all(s, asio::buffer(framed));
}

/// The upstream connection: TCP, then TLS over it when the connector asks for it.
struct upstream_conn {
  tcp::resolver resolver;
  tcp::socket sock;
  ssl_ptr ssl{nullptr, &SSL_free};
  std::optional<tls_link> link;  // set once TLS is up
  my::greeting greeting;

  explicit upstream_conn(const asio::any_io_executor& ex) : resolver(ex), sock(ex) {}
  tcp::socket& socket() { return sock; }
  void close() {
    resolver.cancel();
    set_close(sock);
  }
};

std::string where(const upstream& u) {
  return u.server.host + ":" + std::to_string(u.server.port);
}

/// The auth response `plugin` expects for `password` and the server's `scramble`.
std::string auth_response(const std::string& plugin, const secret& password, std::string_view scramble,
                          const upstream& u) {
  const std::string_view nonce = scramble.substr(0, 20);
  if (plugin == native_plugin) return my::native_password_response(password.reveal(), nonce);
  if (plugin == caching_sha2_plugin) return my::caching_sha2_response(password.reveal(), nonce);
  throw refusal{failure::upstream_auth, er_not_supported_auth_mode, "08004",
                "tenantdb proxy: the server at " + where(u) + " asks for the authentication plugin '" +
                    plugin.substr(0, 64) +
                    "', which the proxy does not speak: give the tenant's accounts mysql_native_password (or "
                    "caching_sha2_password with sslMode verify-ca or verify-full)"};
}

/// The server's ERR during login, as the client should see it: the server's code and
/// SQLSTATE kept, a message that says what to check.
refusal upstream_refusal(const my::err_info& e, const upstream& u) {
  const std::string server = "the server at " + where(u) + " said: " + e.message.substr(0, 256);
  refusal r{failure::upstream_refused, e.code, e.sqlstate.size() == 5 ? e.sqlstate : "HY000", ""};
  switch (e.code) {
    case 1045:
    case 1044:
    case 1698:
      r.why = failure::upstream_auth;
      r.message =
          "tenantdb proxy: the server refused the tenant's login; check the sidecar's log (are its "
          "credentials current?) (" +
          server + ")";
      break;
    case 1040:
      r.message = "tenantdb proxy: the server has too many connections; check its max_connections (" + server + ")";
      break;
    case 1226:
    case 1203:
      r.message =
          "tenantdb proxy: the tenant's account has reached a resource limit; check maxConnections in the "
          "connector (" +
          server + ")";
      break;
    case 1049:
      r.message = "tenantdb proxy: the tenant's database does not exist; check that tenantdb-init ran (" + server + ")";
      break;
    default: r.message = "tenantdb proxy: the server refused the session (" + server + ")"; break;
  }
  return r;
}

/// Reads the packet that should be the server's greeting.
asio::awaitable<void> read_greeting(upstream_conn& up, const upstream& u) {
  packet p = co_await read_packet(up.socket(), my::handshake_packet_cap);
  if (!p.payload.empty() && static_cast<unsigned char>(p.payload[0]) == 0xFF) {
    refusal r = upstream_refusal(my::parse_err(p.payload), u);
    r.why = r.why == failure::upstream_auth ? failure::upstream_auth : failure::upstream_refused;
    throw r;
  }
  up.greeting = my::parse_greeting(p.payload);
}

/// TCP connect (every address of the host in turn) and the server's greeting.
asio::awaitable<void> connect_upstream(upstream_conn& up, const upstream& u, const options& o) {
  const auto results = co_await up.resolver.async_resolve(u.server.host, std::to_string(u.server.port), use_awaitable);
  co_await asio::async_connect(up.socket(), results, use_awaitable);
  tune_socket(up.socket(), o);
  co_await read_greeting(up, u);
}

/// The auth exchange after the HandshakeResponse41: AuthSwitchRequest, AuthMoreData, OK.
/// Returns the server's OK payload.
template <class Stream>
asio::awaitable<std::string> auth_exchange(Stream& s, std::uint8_t seq, std::string plugin, const secret& password,
                                           const upstream& u, bool tls) {
  for (int round = 0; round < 8; ++round) {
    packet p = co_await read_packet(s, my::handshake_packet_cap);
    seq = static_cast<std::uint8_t>(p.seq + 1);
    if (p.payload.empty()) throw my::protocol_error("an empty packet during login");
    const auto kind = static_cast<unsigned char>(p.payload[0]);
    if (kind == 0x00) co_return std::move(p.payload);
    if (kind == 0xFF) throw upstream_refusal(my::parse_err(p.payload), u);
    if (kind == 0xFE) {
      const my::auth_switch sw = my::parse_auth_switch(p.payload);
      plugin = sw.plugin;
      co_await write_packet(s, seq, auth_response(plugin, password, sw.data, u));
      continue;
    }
    if (kind == 0x01 && plugin == caching_sha2_plugin && p.payload.size() == 2) {
      if (p.payload[1] == 3) continue;  // fast authentication succeeded; the OK follows
      if (p.payload[1] == 4) {          // full authentication: the password itself
        if (!tls || !verified(u.server))
          throw refusal{failure::upstream_tls, er_not_supported_auth_mode, "08004",
                        "tenantdb proxy: the server at " + where(u) +
                            " wants the tenant's password itself (caching_sha2_password full authentication), "
                            "which the proxy sends only over verified TLS: set sslMode verify-full (or verify-ca) "
                            "and caCert in the connector, or give the account mysql_native_password"};
        std::string clear = password.reveal();
        clear.push_back('\0');
        co_await write_packet(s, seq, clear);
        std::fill(clear.begin(), clear.end(), '\0');
        continue;
      }
    }
    throw my::protocol_error("an unexpected packet during login");
  }
  throw my::protocol_error("too many authentication rounds");
}

/// SSLRequest and TLS as the connector says, then the HandshakeResponse41 and the auth
/// exchange as the tenant. Returns the server's OK payload.
asio::awaitable<std::string> login_upstream(upstream_conn& up, const upstream& u, const my::handshake_response& client,
                                            std::uint32_t caps, std::uint32_t mariadb_caps, const secret& password,
                                            asio::ssl::context& tls_ctx) {
  const my::greeting& g = up.greeting;
  const tls_mode mode = u.server.tls;
  const bool server_tls = (g.capabilities & my::client_ssl) != 0;
  bool want_tls = mode == tls_mode::require || mode == tls_mode::verify_ca || mode == tls_mode::verify_full;
  if (want_tls && !server_tls)
    throw refusal{failure::upstream_tls, upstream_tls_error, "HY000",
                  "tenantdb proxy: the server at " + where(u) + " does not offer TLS, which sslMode " +
                      std::string(to_string(mode)) +
                      " requires: enable TLS on the server or check sslMode in the connector"};
  if (mode == tls_mode::prefer && server_tls) want_tls = true;

  my::handshake_response r;
  r.capabilities = caps | my::client_protocol_41 | my::client_secure_connection | my::client_plugin_auth |
                   my::client_connect_with_db;
  r.capabilities &= g.capabilities | my::client_connect_with_db;
  r.mariadb_capabilities = mariadb_caps;
  r.max_packet = client.max_packet;
  r.charset = client.charset;
  std::uint8_t seq = static_cast<std::uint8_t>(1);
  if (want_tls) {
    my::handshake_response ssl = r;
    ssl.capabilities |= my::client_ssl;
    ssl.ssl_request = true;
    co_await write_packet(up.socket(), seq++, my::build_handshake_response(ssl));
    up.ssl = new_tls_session(tls_ctx, up.socket(), u.server);
    tls_link link(up.socket(), up.ssl.get());
    const std::string why = co_await link.handshake();
    if (!why.empty())
      throw refusal{failure::upstream_tls, upstream_tls_error, "HY000",
                    "tenantdb proxy: TLS with the server at " + where(u) + " failed (" + why +
                        "): check caCert and sslMode in the connector"};
    up.link.emplace(link);
    r.capabilities |= my::client_ssl;
  }
  r.database = u.database;
  r.attributes = (r.capabilities & my::client_connect_attrs) != 0 ? client.attributes : std::string();
  r.plugin = g.plugin.empty() ? native_plugin : g.plugin;
  const std::string plugin = r.plugin;
  r.user = u.account.user;
  r.auth_response = auth_response(plugin, password, g.scramble, u);
  const std::string payload = my::build_handshake_response(r);
  if (up.link) {
    co_await write_packet(*up.link, seq++, payload);
    co_return co_await auth_exchange(*up.link, seq, plugin, password, u, true);
  }
  co_await write_packet(up.socket(), seq++, payload);
  co_return co_await auth_exchange(up.socket(), seq, plugin, password, u, false);
}

/// Only one writer on the client socket at a time: the server->client pump and the
/// COM_CHANGE_USER answer never interleave their bytes. Free (no suspension) unless a
/// write is waiting on the socket.
struct write_gate {
  bool busy = false;
  asio::steady_timer wake;
  explicit write_gate(const asio::any_io_executor& ex) : wake(ex) {}
  asio::awaitable<void> wait() {
    while (busy) {
      wake.expires_at(asio::steady_timer::time_point::max());
      boost::system::error_code ec;
      co_await wake.async_wait(asio::redirect_error(use_awaitable, ec));
    }
  }
  void unlock() {
    busy = false;
    wake.cancel();
  }
};

/// The client's link for writers that share it through the gate.
struct gated_client {
  plain_link& link;
  write_gate& gate;
  asio::awaitable<void> write_all(const char* p, std::size_t n) {
    if (gate.busy) co_await gate.wait();
    gate.busy = true;
    std::exception_ptr failed;
    try {
      co_await link.write_all(p, n);
    } catch (...) {
      failed = std::current_exception();
    }
    gate.unlock();
    if (failed) std::rethrow_exception(failed);
  }
};

/// Forwards the whole packets and commands in buf[0, end) and answers refused ones;
/// returns the bytes left (a partial header, at most 4), moved to the front of buf.
template <class Up>
asio::awaitable<std::size_t> forward_commands(my::command_framer& framer, char* buf, std::size_t end, Up& up,
                                              gated_client& to_client) {
  std::size_t begin = 0;
  for (;;) {
    const my::command_framer::step s = framer.next(reinterpret_cast<const unsigned char*>(buf) + begin, end - begin);
    if (s.consumed == 0) break;
    if (s.forward) co_await up.write_all(buf + begin, s.consumed);
    begin += s.consumed;
    if (s.refuse) {
      const std::string err =
          my::frame(s.err_seq, my::err_payload(er_unknown_com_error, "08S01",
                                               s.command == my::com_change_user
                                                   ? "tenantdb proxy: COM_CHANGE_USER is not supported; the session "
                                                     "stays the tenant's"
                                                   : "tenantdb proxy: COM_MULTI is not supported"));
      co_await to_client.write_all(err.data(), err.size());
    }
  }
  if (begin > 0 && begin < end) std::memmove(buf, buf + begin, end - begin);
  co_return end - begin;
}

/// Client -> server: forwards every packet, except refused commands (answered here).
/// Like pump (link.hpp): the wait reads into a small array in the pump, and a relay
/// buffer is held only while more than that flows. A partial packet header (at most 4
/// bytes) waits at the front of that array for the rest.
template <class Up>
asio::awaitable<void> pump_up(plain_link& client, Up& up, gated_client& to_client, metrics& stats) {
  my::command_framer framer;
  std::array<char, first_read_size> first;
  std::size_t carried = 0;
  for (;;) {
    std::size_t end = carried + co_await client.read_some(first.data() + carried, first.size() - carried);
    if (end < first.size()) {
      carried = co_await forward_commands(framer, first.data(), end, up, to_client);
      continue;
    }
    const relay_buffer lease(stats);
    char* const buf = lease.data();
    std::memcpy(buf, first.data(), end);
    for (;;) {
      const std::size_t more = client.try_read(buf + end, relay_buffer::size - end);
      end += more;
      if (more == 0 || end == relay_buffer::size) {
        end = co_await forward_commands(framer, buf, end, up, to_client);
        if (more == 0) break;
      }
    }
    if (end >= first.size()) throw my::protocol_error("a partial packet header longer than a header");
    std::memcpy(first.data(), buf, end);
    carried = end;
  }
}

template <class Up>
asio::awaitable<void> relay(tcp::socket& client_socket, Up& up, upstream_conn& conn, metrics& stats) {
  const auto ex = co_await asio::this_coro::executor;
  plain_link client(client_socket);
  write_gate gate(ex);
  gated_client to_client{client, gate};
  asio::steady_timer down_done(ex, asio::steady_timer::time_point::max());
  bool down_finished = false;
  asio::co_spawn(
      ex,
      [&]() -> asio::awaitable<void> {
        try {
          co_await pump(up, to_client, stats);
        } catch (const std::exception&) {
        }
        down_finished = true;
        set_close(client_socket);
        conn.close();
        down_done.cancel();
      },
      asio::detached);
  try {
    co_await pump_up(client, up, to_client, stats);
  } catch (const std::exception&) {
  }
  set_close(client_socket);
  conn.close();
  while (!down_finished) {
    boost::system::error_code ec;
    co_await down_done.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

template <class Stream>
asio::awaitable<void> send_err(Stream& s, std::uint8_t seq, const refusal& r) {
  boost::system::error_code ec;
  const std::string framed = my::frame(seq, my::err_payload(r.code, r.sqlstate, r.message));
  co_await asio::async_write(s, asio::buffer(framed), asio::redirect_error(use_awaitable, ec));
}

void log_failure(const refusal& r) {
  log::warn("proxy: mysql session failed", {{"reason", to_string(r.why)}, {"error", r.message}});
}

enum class phase { start, client_handshake, upstream_connect, upstream_login, relay };

asio::awaitable<void> serve(tcp::socket& client, context& ctx) {
  const auto started = std::chrono::steady_clock::now();
  const auto ex = co_await asio::this_coro::executor;
  std::uint8_t client_seq = 0;  // the sequence id of our next packet to the client
  phase at = phase::start;
  bool client_timed_out = false;
  bool upstream_timed_out = false;
  std::shared_ptr<const upstream> snap;
  std::optional<refusal> failed;  // co_await is not allowed in a handler: answered below
  bool tell = true;
  try {
    snap = ctx.source.get();
    if (!snap)
      throw refusal{failure::no_credentials, upstream_unavailable, "08004",
                    "tenantdb proxy: the sidecar has no credentials yet; check the sidecar's log"};
    std::shared_ptr<asio::ssl::context> tls_ctx;
    try {
      tls_ctx = tls_context_for(snap);
    } catch (const std::exception& e) {
      throw refusal{failure::upstream_tls, upstream_tls_error, "HY000",
                    std::string("tenantdb proxy: the upstream TLS settings do not work: ") + e.what() +
                        " (check caCert and sslMode in the connector)"};
    }
    const upstream& u = *snap;

    // 1. Upstream first: its greeting shapes the client's.
    auto up = std::make_unique<upstream_conn>(ex);
    at = phase::upstream_connect;
    {
      watchdog dog(ex, ctx.opts.connect_timeout, [&up] { up->close(); });
      try {
        co_await connect_upstream(*up, u, ctx.opts);
      } catch (const boost::system::system_error& e) {
        throw refusal{failure::upstream_unreachable, upstream_unavailable, "HY000",
                      "tenantdb proxy: cannot reach the database server at " + where(u) + " (" +
                          (dog.fired() ? std::string("no answer within the connect timeout") : e.code().message()) +
                          "); check the connector's host and port and the network"};
      }
    }

    // 2. The client's handshake.
    at = phase::client_handshake;
    watchdog client_dog(ex, ctx.opts.handshake_timeout, [&client, &client_timed_out] {
      client_timed_out = true;
      set_close(client);
    });
    my::greeting ours = up->greeting;
    ours.capabilities = (ours.capabilities & ~my::never_offered) | my::client_plugin_auth;
    ours.mariadb_capabilities &= ~my::never_offered_mariadb;
    ours.scramble = generate_password(20).reveal().substr(0, 20);
    ours.plugin = native_plugin;
    co_await write_packet(client, client_seq, my::build_greeting(ours));
    packet first = co_await read_packet(client, my::handshake_packet_cap);
    client_seq = static_cast<std::uint8_t>(first.seq + 1);
    my::handshake_response hello;
    try {
      hello = my::parse_handshake_response(first.payload);
    } catch (const my::protocol_error& e) {
      throw refusal{failure::client_protocol, er_handshake_error, "08S01",
                    std::string("tenantdb proxy: bad handshake: ") + e.what()};
    }
    if (hello.ssl_request)
      throw refusal{failure::unsupported, er_handshake_error, "08S01",
                    "tenantdb proxy: the proxy has no local TLS; connect without TLS (it listens on loopback: "
                    "--skip-ssl, ssl-mode=DISABLED, tls=false)"};
    if (!ctx.opts.local_password.empty()) {
      std::string response = hello.auth_response;
      if (!hello.plugin.empty() && hello.plugin != native_plugin) {
        // Ask for mysql_native_password against our scramble.
        co_await write_packet(client, client_seq, my::auth_switch_payload(native_plugin, ours.scramble));
        packet again = co_await read_packet(client, my::handshake_packet_cap);
        client_seq = static_cast<std::uint8_t>(again.seq + 1);
        response = std::move(again.payload);
      }
      if (!my::native_password_matches(ctx.opts.local_password.reveal(), ours.scramble, response))
        throw refusal{failure::local_auth, er_access_denied, "28000",
                      "tenantdb proxy: access denied: the proxy wants the password in its --proxy-password-file"};
    }
    client_dog.disarm();

    // 3. The tenant's login upstream.
    const std::uint32_t caps = hello.capabilities & ours.capabilities;
    const std::uint32_t mariadb_caps = hello.mariadb_capabilities & ours.mariadb_capabilities;
    at = phase::upstream_login;
    std::string ok;
    // The password was refused: an in-place rotation is in flight (try the password it is
    // setting), or the store moved on while this session connected (a rotation's claim
    // and change landed between the snapshot and the login: try the newest snapshot, its
    // password and then its pending one, on the same server).
    std::vector<std::pair<std::shared_ptr<const upstream>, secret>> candidates{{snap, u.account.password}};
    if (!u.pending_password.empty()) candidates.emplace_back(snap, u.pending_password);
    std::shared_ptr<const upstream> tried = snap;
    std::shared_ptr<const upstream> logged_in = snap;
    for (std::size_t attempt = 0;; ++attempt) {
      const std::shared_ptr<const upstream> who = candidates[attempt].first;
      const secret password = candidates[attempt].second;
      try {
        watchdog dog(ex, ctx.opts.connect_timeout, [&up, &upstream_timed_out] {
          upstream_timed_out = true;
          up->close();
        });
        if (attempt > 0) {  // a fresh connection: the server closed the refused one
          up = std::make_unique<upstream_conn>(ex);
          co_await connect_upstream(*up, *who, ctx.opts);
        }
        ok = co_await login_upstream(*up, *who, hello, caps, mariadb_caps, password, *tls_ctx);
        logged_in = who;
        break;
      } catch (const refusal& r) {
        if (r.why != failure::upstream_auth) throw;
        // Each newer snapshot's passwords as the store moves on, a few times at most:
        // rotations are seconds apart, logins milliseconds.
        if (attempt + 1 == candidates.size() && attempt < 6) {
          auto fresh = ctx.source.get();
          if (fresh && fresh != tried && fresh->server.host == u.server.host && fresh->server.port == u.server.port) {
            tried = fresh;
            candidates.emplace_back(fresh, fresh->account.password);
            if (!fresh->pending_password.empty()) candidates.emplace_back(fresh, fresh->pending_password);
          }
        }
        if (attempt + 1 < candidates.size()) {
          up->close();
          continue;
        }
        throw;
      }
    }
    // 4. Logged in: the client gets the server's OK, then the bytes flow.
    co_await write_packet(client, client_seq, ok);
    // An idle session keeps only its relay buffers: drop what the handshake read.
    ok = std::string();
    first = packet{};
    hello = my::handshake_response{};
    up->greeting = my::greeting{};
    ours = my::greeting{};
    ctx.stats.observe_connect(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started));
    // Counted until the relay ends, also when it throws or the io_context is torn down.
    struct open_session {
      metrics& stats;
      std::string account;
      open_session(metrics& m, std::string a) : stats(m), account(std::move(a)) { stats.opened(account); }
      ~open_session() { stats.closed(account); }
      open_session(const open_session&) = delete;
      open_session& operator=(const open_session&) = delete;
    };
    const open_session counted(ctx.stats, logged_in->account.user);
    at = phase::relay;
    log::debug("proxy: mysql session logged in", {{"account", counted.account}});
    if (up->link) {
      co_await relay(client, *up->link, *up, ctx.stats);
    } else {
      plain_link upstream_link(up->socket());
      co_await relay(client, upstream_link, *up, ctx.stats);
    }
    co_return;
  } catch (const refusal& r) {
    failed = r;
    tell = !client_timed_out && r.code != 0;
  } catch (const std::exception& e) {
    refusal r{failure::internal, er_handshake_error, "08S01", ""};
    if (at == phase::client_handshake) {
      // The client went away, stalled, or sent something malformed.
      r.why = client_timed_out ? failure::client_timeout : failure::client_protocol;
      r.message = client_timed_out ? "tenantdb proxy: the client did not finish its handshake in time"
                                   : std::string("tenantdb proxy: bad handshake: ") + e.what();
      tell = !client_timed_out && dynamic_cast<const my::protocol_error*>(&e) != nullptr;
    } else if (at == phase::upstream_login || at == phase::upstream_connect) {
      r.why = failure::upstream_unreachable;
      r.code = upstream_unavailable;
      r.sqlstate = "HY000";
      const std::string target = snap ? where(*snap) : std::string("the server");
      r.message = upstream_timed_out
                      ? "tenantdb proxy: the database server at " + target + " did not finish the login in time"
                      : "tenantdb proxy: the login at the database server at " + target + " failed (" + e.what() + ")";
    } else {
      r.message = std::string("tenantdb proxy: internal error: ") + e.what();
    }
    failed = std::move(r);
  }
  if (!failed) co_return;
  ctx.stats.failed(failed->why);
  log_failure(*failed);
  if (tell) co_await send_err(client, client_seq, *failed);
  set_close(client);
}

}  // namespace

asio::awaitable<void> serve_mysql(tcp::socket client, context& ctx) {
  try {
    co_await serve(client, ctx);
  } catch (...) {  // never let an exception escape into the acceptor's coroutine
    ctx.stats.failed(failure::internal);
    log::warn("proxy: mysql session failed", {{"reason", "internal"}});
  }
}

asio::awaitable<void> refuse_mysql(tcp::socket client, context& ctx, failure why, std::string message) {
  (void)ctx;  // the service counted it already
  (void)why;
  try {
    const std::uint16_t code = why == failure::connection_cap ? er_con_count_error : er_handshake_error;
    const std::string framed = my::frame(0, my::err_payload(code, "08004", "tenantdb proxy: " + message));
    boost::system::error_code ec;
    // One small packet into an empty socket buffer: never waits on the client.
    co_await asio::async_write(client, asio::buffer(framed), asio::redirect_error(use_awaitable, ec));
    client.shutdown(tcp::socket::shutdown_send, ec);
    client.close(ec);
  } catch (...) {
  }
}

}  // namespace tenantdb::proxy
