#include "sidecar/http_server.hpp"

#include <algorithm>
#include <array>
#include <list>
#include <map>
#include <optional>

// GCC 12 reports a false "potential null pointer dereference" inside Asio's scheduler
// (Boost 1.74) once it is inlined here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#pragma GCC diagnostic pop

#include "tenantdb/log.hpp"

namespace tenantdb::http {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

class session;

// Whom a connection counts against: an IPv4 address, or an IPv6 /64 (one host usually
// holds a whole /64, so counting single IPv6 addresses would be no cap at all).
using source_key = std::array<unsigned char, 16>;

source_key source_of(const asio::ip::address& a) {
  source_key key{};
  if (a.is_v4() || (a.is_v6() && a.to_v6().is_v4_mapped())) {
    const auto v4 = a.is_v4() ? a.to_v4() : asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
    const auto bytes = v4.to_bytes();
    std::copy(bytes.begin(), bytes.end(), key.begin());
  } else {
    const auto bytes = a.to_v6().to_bytes();
    std::copy(bytes.begin(), bytes.begin() + 8, key.begin() + 8);
    key[0] = 6;  // apart from every IPv4 key, whose last 12 bytes are zero
  }
  return key;
}

}  // namespace

struct server::impl : std::enable_shared_from_this<server::impl> {
  impl(asio::io_context& context, const std::string& address, std::uint16_t port, handler h, limits l, std::string n)
      : io(context), acceptor(context), on_request(std::move(h)), lim(l), name(std::move(n)) {
    const tcp::endpoint endpoint(asio::ip::make_address(address), port);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    if (endpoint.protocol() == tcp::v6()) acceptor.set_option(asio::ip::v6_only(false));
    acceptor.bind(endpoint);
    acceptor.listen(asio::socket_base::max_listen_connections);
  }

  void accept();
  void admit(tcp::socket socket);
  void close_all();

  asio::io_context& io;
  tcp::acceptor acceptor;
  handler on_request;
  limits lim;
  std::string name;
  bool stopped = false;
  std::list<std::weak_ptr<session>> sessions;
  std::uint64_t reads_started = 0;  ///< orders idle connections: lower is idle for longer
  server::counters counts;
};

namespace {

class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket socket, source_key source, std::shared_ptr<server::impl> owner)
      : stream_(std::move(socket)), source_(source), owner_(std::move(owner)) {}

  void start() { read(); }

  void close() {
    if (closed_) return;
    closed_ = true;
    error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  bool open() const { return !closed_; }
  /// Waiting for a request, or part-way through one: nothing of ours is in flight.
  bool idle() const { return idle_; }
  /// When it became idle, in the server's order (lower: idle for longer).
  std::uint64_t idle_since() const { return idle_since_; }
  const source_key& source() const { return source_; }

private:
  void read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(owner_->lim.header_bytes));
    parser_->body_limit(owner_->lim.body_bytes);
    // One short deadline for the whole request, counted from now: it covers a keep-alive
    // connection's idle time and a client that sends its head a byte at a time.
    stream_.expires_after(owner_->lim.request_deadline);
    idle_ = true;
    idle_since_ = ++owner_->reads_started;
    bhttp::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&session::on_read, shared_from_this()));
  }

  void on_read(error_code ec, std::size_t) {
    idle_ = false;
    if (closed_) return;
    if (ec == beast::error::timeout) ++owner_->counts.timed_out;
    if (ec == bhttp::error::end_of_stream) {
      error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      return;
    }
    if (ec == bhttp::error::body_limit || ec == bhttp::error::header_limit) {
      response r;
      r.status = ec == bhttp::error::body_limit ? 413 : 431;
      r.body = ec == bhttp::error::body_limit ? "request body too large\n" : "request header too large\n";
      write(std::move(r), 11, false);
      return;
    }
    if (ec) return;  // timeout, reset, malformed request: drop the connection
    const auto& req = parser_->get();
    request in{std::string(req.method_string()), std::string(req.target())};
    response out;
    try {
      out = owner_->on_request(in);
    } catch (const std::exception& e) {
      log::error("http handler failed", {{"listener", owner_->name}, {"error", e.what()}});
      out = response{500, "text/plain; charset=utf-8", "internal error\n", {}};
    }
    if (in.method == "HEAD") out.body.clear();
    write(std::move(out), req.version(), req.keep_alive());
  }

  void write(response r, unsigned version, bool keep_alive) {
    res_ = {};
    res_.version(version);
    res_.result(static_cast<bhttp::status>(r.status));
    res_.set(bhttp::field::server, "tenantdb-sidecar");
    res_.set(bhttp::field::content_type, r.content_type);
    res_.set(bhttp::field::cache_control, "no-store");
    for (auto& [k, v] : r.headers) res_.set(k, v);
    res_.body() = std::move(r.body);
    res_.keep_alive(keep_alive);
    res_.prepare_payload();
    stream_.expires_after(owner_->lim.deadline);
    bhttp::async_write(stream_, res_, beast::bind_front_handler(&session::on_write, shared_from_this()));
  }

  void on_write(error_code ec, std::size_t) {
    if (ec) return;
    if (!res_.keep_alive() || owner_->stopped) {
      error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      return;
    }
    read();
  }

  beast::tcp_stream stream_;
  source_key source_;
  bool closed_ = false;
  bool idle_ = false;
  std::uint64_t idle_since_ = 0;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bhttp::response<bhttp::string_body> res_;
  std::shared_ptr<server::impl> owner_;
};

}  // namespace

void server::impl::accept() {
  acceptor.async_accept([self = shared_from_this()](error_code ec, tcp::socket socket) {
    if (self->stopped || ec == asio::error::operation_aborted) return;
    if (!ec) {
      self->admit(std::move(socket));
    } else {
      log::warn("http accept failed", {{"listener", self->name}, {"error", ec.message()}});
    }
    self->accept();
  });
}

// Makes room for a new connection under the caps: over its source's cap it closes that
// source's oldest idle connection; over the total cap, the oldest idle connection of the
// source holding the most. A flood of idle or slow connections thus only ever pushes out
// its own, and a probe's fresh connection, which sends its request at once, gets in.
// Refuses the newcomer only when every connection it could displace is busy answering.
void server::impl::admit(tcp::socket socket) {
  error_code ec;
  const auto peer = socket.remote_endpoint(ec);
  if (ec) return;  // already gone
  const source_key source = source_of(peer.address());

  sessions.remove_if([](const std::weak_ptr<session>& w) {
    const auto s = w.lock();
    return !s || !s->open();
  });
  std::map<source_key, std::size_t> open_by_source;
  for (const auto& w : sessions)
    if (const auto s = w.lock()) ++open_by_source[s->source()];

  std::optional<source_key> evict_from;
  if (open_by_source[source] >= lim.max_per_source) {
    evict_from = source;
  } else if (sessions.size() >= lim.max_connections) {
    // The busiest source that has an idle connection to give up.
    std::size_t most = 0;
    for (const auto& w : sessions)
      if (const auto s = w.lock(); s && s->idle() && open_by_source[s->source()] > most) {
        most = open_by_source[s->source()];
        evict_from = s->source();
      }
    if (!evict_from) {
      ++counts.refused;
      socket.close(ec);
      return;
    }
  }
  if (evict_from) {
    std::shared_ptr<session> victim;
    for (const auto& w : sessions)
      if (const auto s = w.lock();
          s && s->idle() && s->source() == *evict_from && (!victim || s->idle_since() < victim->idle_since()))
        victim = s;
    if (!victim) {
      ++counts.refused;
      socket.close(ec);
      return;
    }
    victim->close();
    ++counts.dropped;
  }
  auto s = std::make_shared<session>(std::move(socket), source, shared_from_this());
  sessions.push_back(s);
  ++counts.accepted;
  s->start();
}

void server::impl::close_all() {
  stopped = true;
  error_code ignored;
  acceptor.close(ignored);
  for (auto& weak : sessions)
    if (auto s = weak.lock()) s->close();
  sessions.clear();
}

server::server(asio::io_context& io, const std::string& address, std::uint16_t port, handler on_request, limits lim,
               std::string name)
    : impl_(std::make_shared<impl>(io, address, port, std::move(on_request), lim, std::move(name))) {}

server::~server() {
  if (impl_ && !impl_->stopped) impl_->close_all();
}

void server::start() {
  impl_->accept();
}

void server::stop() {
  impl_->close_all();
}

server::counters server::stats() const {
  return impl_->counts;
}

std::size_t server::open_connections() const {
  std::size_t n = 0;
  for (const auto& w : impl_->sessions)
    if (const auto s = w.lock(); s && s->open()) ++n;
  return n;
}

std::uint16_t server::port() const {
  error_code ec;
  return impl_->acceptor.local_endpoint(ec).port();
}

}  // namespace tenantdb::http
