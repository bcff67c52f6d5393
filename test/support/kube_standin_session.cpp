// The stand-in's HTTPS connections: TLS handshake, keep-alive request loop with
// beast::tcp_stream deadlines (idle_timeout between requests, io_timeout for each
// handshake, body read and write), 100-continue, 413 without reading the body, stalled
// answers on timers, and chunked watch streams with bookmarks and a disconnect probe.

#include "kube_standin_session.hpp"

// GCC 12 reports -Wnull-dereference inside Asio's epoll reactor
// (scheduler::compensating_work_started, inlined from perform_io) although it is a system
// header: a middle-end false positive, silenced for these includes only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#pragma GCC diagnostic pop

#include <cstdio>
#include <deque>
#include <limits>
#include <optional>

namespace tenantdb::test::standin {
namespace {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr std::size_t header_limit = 1024 * 1024;  // Go's http.DefaultMaxHeaderBytes

std::string chunk(std::string_view data) {
  char size[20];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  std::string out(size);
  out.append(data).append("\r\n");
  return out;
}

class Session final : public SessionHandle, public std::enable_shared_from_this<Session> {
public:
  Session(tcp::socket socket, asio::ssl::context& ssl, State& state)
      : stream_(std::move(socket), ssl),
        state_(state),
        opts_(state.options),
        stall_timer_(stream_.get_executor()),
        watch_timer_(stream_.get_executor()),
        bookmark_timer_(stream_.get_executor()),
        idle_timer_(stream_.get_executor()) {}
  ~Session() override { unsubscribe(); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start() {
    lowest().expires_after(opts_.io_timeout);
    stream_.async_handshake(asio::ssl::stream_base::server, [self = shared_from_this()](error_code ec) {
      if (ec) return self->close();
      self->peer_ = peer_cert(self->stream_.native_handle());
      self->read_request();
    });
  }

  /// stop(): end a watch with its terminating chunk, drop held answers, close.
  void shutdown() override {
    closing_ = true;
    stall_timer_.cancel();
    if (watching_) {
      end_watch(true);
    } else if (!responding_) {
      close();
    }
  }

  void abort() override {
    closing_ = true;
    close();
  }

private:
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void close() {
    if (closed_) return;
    closed_ = true;
    unsubscribe();
    for (auto* t : {&stall_timer_, &watch_timer_, &bookmark_timer_, &idle_timer_}) t->cancel();
    error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().close();
  }

  void unsubscribe() {
    if (watch_id_ == 0) return;
    const std::lock_guard lock(state_.mu);
    state_.unsubscribe(watch_id_);
    watch_id_ = 0;
  }

  void read_request() {
    if (closing_ || closed_) return close();
    parser_.emplace();
    parser_->header_limit(header_limit);
    // No body limit while the header is read (Beast would refuse a long Content-Length
    // before we have authenticated the request); on_header() checks the length and
    // read_body() applies the limit. Not boost::none: Beast 1.74 compares len > none.
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    lowest().expires_after(opts_.idle_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](error_code ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(error_code ec) {
    if (ec) return refuse(ec);
    auto& req = parser_->get();
    const auto length = parser_->content_length();
    if (length && *length > opts_.max_body_bytes) {
      // Answer 413 without reading the body, then close, as Go's server does.
      body_too_large_ = true;
      return dispatch();
    }
    if (beast::iequals(req[http::field::expect], "100-continue")) {
      auto cont = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
      lowest().expires_after(opts_.io_timeout);
      asio::async_write(stream_, asio::buffer(*cont), [self = shared_from_this(), cont](error_code wec, std::size_t) {
        if (wec) return self->close();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    parser_->body_limit(opts_.max_body_bytes);  // for chunked bodies
    lowest().expires_after(opts_.io_timeout);
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](error_code ec, std::size_t) {
      if (ec == http::error::body_limit) {
        self->body_too_large_ = true;
      } else if (ec) {
        return self->close();
      }
      self->dispatch();
    });
  }

  /// A request that did not parse: Go answers 400 (431 for huge headers) and closes.
  void refuse(error_code ec) {
    if (ec.category() != http::make_error_code(http::error::bad_method).category() ||
        ec == http::error::end_of_stream || ec == http::error::partial_message)
      return close();
    const bool too_big = ec == http::error::header_limit;
    {
      const std::lock_guard lock(state_.mu);
      state_.log.push_back({{}, {}, too_big ? 431U : 400U, {}});
    }
    const std::string text = too_big ? "431 Request Header Fields Too Large" : "400 Bad Request";
    auto out = std::make_shared<std::string>(
        "HTTP/1.1 " + text + "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n" + text);
    lowest().expires_after(opts_.io_timeout);
    asio::async_write(stream_, asio::buffer(*out),
                      [self = shared_from_this(), out](error_code, std::size_t) { self->close(); });
  }

  void dispatch() {
    auto& req = parser_->get();
    Request rq;
    rq.method = std::string(req.method_string());
    rq.target = std::string(req.target());
    rq.authorization = std::string(req[http::field::authorization]);
    rq.content_type = std::string(req[http::field::content_type]);
    if (!body_too_large_) rq.body = std::move(req.body());
    rq.body_too_large = body_too_large_;
    rq.cert = peer_;
    keep_alive_ = req.keep_alive() && !body_too_large_;
    WatchSink sink = [weak = weak_from_this(), ex = stream_.get_executor()](std::string line, std::uint64_t rv) {
      asio::post(ex, [weak, line = std::move(line), rv]() mutable {
        if (auto self = weak.lock()) self->on_event(std::move(line), rv);
      });
    };
    Outcome out = handle_request(state_, rq, sink);
    parser_.reset();
    responding_ = true;
    if (out.watch) start_watch(out);
    if (out.stall.count() > 0) {
      stall_timer_.expires_after(out.stall);
      stall_timer_.async_wait([self = shared_from_this(), out = std::move(out)](error_code ec) mutable {
        if (ec || self->closing_) return self->close();  // stop() drops held answers
        self->respond(std::move(out));
      });
      return;
    }
    respond(std::move(out));
  }

  void respond(Outcome out) {
    if (out.watch) return begin_streaming();
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(11);
    res->result(out.response.status);
    res->set("Audit-Id", new_uid());
    res->set(http::field::cache_control, "no-cache, private");
    res->set(http::field::content_type, out.response.content_type);
    res->set(http::field::date, http_date(std::chrono::system_clock::now()));
    for (const auto& [name, value] : out.response.headers) res->insert(name, value);
    res->body() = std::move(out.response.body);
    res->keep_alive(keep_alive_);
    res->prepare_payload();
    lowest().expires_after(opts_.io_timeout);
    http::async_write(stream_, *res, [self = shared_from_this(), res](error_code ec, std::size_t) {
      self->responding_ = false;
      if (ec) return self->close();
      if (self->body_too_large_) return self->drain();
      if (!self->keep_alive_ || self->closing_) return self->close();
      self->read_request();
    });
  }

  /// Reads and discards the unread body of a refused request for a moment, so the
  /// client sees the 413 instead of a connection reset.
  void drain() {
    auto scratch = std::make_shared<std::vector<char>>(64 * 1024);
    lowest().expires_after(std::min<std::chrono::milliseconds>(opts_.io_timeout, std::chrono::seconds(2)));
    stream_.async_read_some(asio::buffer(*scratch), [self = shared_from_this(), scratch](error_code ec, std::size_t) {
      if (ec || self->closing_) return self->close();
      self->drain();
    });
  }

  // --- Watches ------------------------------------------------------------------------

  /// Subscribed: queue the header and the backlog; writing starts in begin_streaming().
  void start_watch(Outcome& out) {
    const WatchStart& w = *out.watch;
    watching_ = true;
    hold_ = true;
    watch_id_ = w.subscription.id;
    seen_rv_ = w.subscription.rv;
    watch_resource_ = w.resource;
    watch_timeout_ = w.timeout;
    bookmarks_ = w.bookmarks;
    std::string head = "HTTP/1.1 200 OK\r\nAudit-Id: " + new_uid() +
                       "\r\nCache-Control: no-cache, private\r\nContent-Type: application/json\r\nDate: " +
                       http_date(std::chrono::system_clock::now()) + "\r\nTransfer-Encoding: chunked\r\n";
    if (!keep_alive_) head += "Connection: close\r\n";
    queue_.push_back(head + "\r\n");
    for (const auto& line : w.subscription.backlog) queue_.push_back(chunk(line));
    if (!w.subscription.error_line.empty()) {
      queue_.push_back(chunk(w.subscription.error_line));
      end_watch(false);
    }
  }

  void begin_streaming() {
    hold_ = false;
    responding_ = false;
    if (!watch_ending_) {
      watch_timer_.expires_after(watch_timeout_);
      watch_timer_.async_wait([self = shared_from_this()](error_code ec) {
        if (!ec) self->end_watch(false);
      });
      if (bookmarks_) arm_bookmark();
      // A pending read notices a client that goes away; its bytes, if any, begin the
      // next request.
      probe();
    }
    write_next();
  }

  void arm_bookmark() {
    bookmark_timer_.expires_after(opts_.bookmark_interval);
    bookmark_timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec || !self->watching_ || self->watch_ending_) return;
      self->enqueue(chunk(bookmark_line(*self->watch_resource_, self->seen_rv_)));
      self->arm_bookmark();
    });
  }

  void probe() {
    probe_pending_ = true;
    lowest().expires_never();
    stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](error_code ec, std::size_t n) {
      self->probe_pending_ = false;
      self->buffer_.commit(n);
      if (ec) return self->close();  // the client went away
      if (!self->watching_) {
        self->idle_timer_.cancel();
        self->read_request();
      }
      // Otherwise the bytes wait in buffer_ for the end of the watch.
    });
  }

  void on_event(std::string line, std::uint64_t rv) {
    if (!watching_ || watch_ending_ || closed_) return;
    seen_rv_ = rv;
    if (!line.empty()) enqueue(chunk(line));
  }

  void enqueue(std::string data) {
    queue_.push_back(std::move(data));
    if (!writing_) write_next();
  }

  void write_next() {
    if (writing_ || hold_ || closed_) return;
    if (queue_.empty()) {
      if (watch_ending_) finish_watch();
      return;
    }
    writing_ = true;
    const auto deadline =
        closing_ ? std::min<std::chrono::milliseconds>(opts_.io_timeout, std::chrono::seconds(1)) : opts_.io_timeout;
    lowest().expires_after(deadline);
    asio::async_write(stream_, asio::buffer(queue_.front()), [self = shared_from_this()](error_code ec, std::size_t) {
      self->writing_ = false;
      if (ec) return self->close();
      self->queue_.pop_front();
      self->write_next();
    });
  }

  void end_watch(bool close_after) {
    if (watch_ending_) return;
    watch_ending_ = true;
    close_after_watch_ = close_after || !keep_alive_;
    unsubscribe();
    watch_timer_.cancel();
    bookmark_timer_.cancel();
    enqueue("0\r\n\r\n");
  }

  void finish_watch() {
    watching_ = false;
    watch_ending_ = false;
    if (close_after_watch_ || closing_) return close();
    if (!probe_pending_) return read_request();
    idle_timer_.expires_after(opts_.idle_timeout);
    idle_timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec && self->probe_pending_) self->close();
    });
  }

  beast::ssl_stream<beast::tcp_stream> stream_;
  State& state_;
  const KubeStandinOptions& opts_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  PeerCert peer_;
  asio::steady_timer stall_timer_, watch_timer_, bookmark_timer_, idle_timer_;
  bool keep_alive_ = true, body_too_large_ = false, closing_ = false, closed_ = false, responding_ = false;
  // Watch state.
  bool watching_ = false, watch_ending_ = false, close_after_watch_ = false, hold_ = false, writing_ = false;
  bool probe_pending_ = false, bookmarks_ = false;
  std::uint64_t watch_id_ = 0, seen_rv_ = 0;
  const Resource* watch_resource_ = nullptr;
  std::chrono::milliseconds watch_timeout_{0};
  std::deque<std::string> queue_;
};

}  // namespace

std::shared_ptr<SessionHandle> start_session(tcp::socket socket, asio::ssl::context& ssl, State& state) {
  auto session = std::make_shared<Session>(std::move(socket), ssl, state);
  session->start();
  return session;
}

}  // namespace tenantdb::test::standin
