#include "http_server.hpp"

#include <list>
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
  void close_all();

  asio::io_context& io;
  tcp::acceptor acceptor;
  handler on_request;
  limits lim;
  std::string name;
  bool stopped = false;
  std::list<std::weak_ptr<session>> sessions;
};

namespace {

class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket socket, std::shared_ptr<server::impl> owner)
      : stream_(std::move(socket)), owner_(std::move(owner)) {}

  void start() { read(); }

  void close() {
    error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

private:
  void read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(owner_->lim.header_bytes));
    parser_->body_limit(owner_->lim.body_bytes);
    // One deadline covers a keep-alive connection's idle time and the whole request.
    stream_.expires_after(owner_->lim.deadline);
    bhttp::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&session::on_read, shared_from_this()));
  }

  void on_read(error_code ec, std::size_t) {
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
      self->sessions.remove_if([](const std::weak_ptr<session>& s) { return s.expired(); });
      if (self->sessions.size() >= self->lim.max_connections) {
        // Over the cap: refuse rather than queue, so a flood cannot starve the loop.
        error_code ignored;
        socket.close(ignored);
      } else {
        auto s = std::make_shared<session>(std::move(socket), self);
        self->sessions.push_back(s);
        s->start();
      }
    } else {
      log::warn("http accept failed", {{"listener", self->name}, {"error", ec.message()}});
    }
    self->accept();
  });
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

void server::start() { impl_->accept(); }

void server::stop() { impl_->close_all(); }

std::uint16_t server::port() const {
  error_code ec;
  return impl_->acceptor.local_endpoint(ec).port();
}

}  // namespace tenantdb::http
