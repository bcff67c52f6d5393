#include "proxy/service.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#pragma GCC diagnostic pop

#include "tenantdb/error.hpp"
#include "tenantdb/log.hpp"

namespace tenantdb::proxy {

struct service::impl {
  // ctx first: sessions destroyed with the io_context may still reach it.
  context ctx;
  engine_type engine;
  std::size_t open = 0;  // client connections open now (proxy thread only)
  asio::io_context io{1};
  tcp::acceptor acceptor{io};

  impl(context c, engine_type e) : ctx(c), engine(e) {}

  asio::awaitable<void> serve(tcp::socket client) {
    ++open;
    ctx.stats.accepted();
    tune_socket(client, ctx.opts);
    if (open > ctx.opts.max_connections) {
      ctx.stats.failed(failure::connection_cap);
      const std::string message = "the tenantdb proxy serves at most " + std::to_string(ctx.opts.max_connections) +
                                  " connections at once (--proxy-max-connections)";
      if (engine == engine_type::postgres)
        co_await refuse_postgres(std::move(client), ctx, failure::connection_cap, message);
      else
        co_await refuse_mysql(std::move(client), ctx, failure::connection_cap, message);
    } else if (engine == engine_type::postgres) {
      co_await serve_postgres(std::move(client), ctx);
    } else {
      co_await serve_mysql(std::move(client), ctx);
    }
    --open;
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket client = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      if (ec) {
        // EMFILE and friends: wait a little rather than spin.
        log::warn("proxy: accept failed", {{"error", ec.message()}});
        asio::steady_timer t(io, std::chrono::milliseconds(100));
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      asio::co_spawn(io, serve(std::move(client)), asio::detached);
    }
  }
};

service::service(options opts) : opts_(std::move(opts)) {}

service::~service() {
  stop();
}

void service::start(engine_type engine) {
  if (running_) return;
  engine_ = engine;
  const std::uint16_t want = opts_.port != 0 ? opts_.port : tenantdb::default_port(engine);
  impl_ = std::make_shared<impl>(context{opts_, source_, stats_, cancels_}, engine);
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(opts_.address, ec);
  if (ec)
    throw error(error_kind::usage, "--proxy-listen: " + opts_.address + " is not an IP address")
        .about("--proxy-listen");
  const tcp::endpoint at(address, want);
  auto& acc = impl_->acceptor;
  acc.open(at.protocol(), ec);
  if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(at, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw error(error_kind::usage,
                "--proxy-listen: cannot listen on " + opts_.address + ":" + std::to_string(want) + ": " + ec.message())
        .about("--proxy-listen");
  port_ = acc.local_endpoint().port();
  asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
  auto keep = impl_;
  thread_ = std::thread([keep] { keep->io.run(); });
  running_ = true;
  log::info("proxy listening", {{"address", opts_.address},
                                {"port", static_cast<std::int64_t>(port_)},
                                {"protocol", engine == engine_type::postgres ? "postgresql" : "mysql"}});
}

void service::stop() {
  if (!impl_) return;
  auto keep = impl_;
  keep->io.stop();  // abandons open sessions: their sockets close with the io_context
  if (thread_.joinable()) thread_.join();
  // The proxy's thread is gone, so the listener is closed here. (A handler posted to the
  // stopped io_context would never run, and one holding `keep` would keep the impl, its
  // listener and every session alive for good.)
  boost::system::error_code ec;
  keep->acceptor.close(ec);
  running_ = false;
  impl_.reset();
}

}  // namespace tenantdb::proxy
