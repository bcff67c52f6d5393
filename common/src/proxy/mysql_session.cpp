// Placeholder until the mysql session lands: every client gets the protocol's error.

#include "proxy/proxy.hpp"

namespace tenantdb::proxy {

asio::awaitable<void> serve_mysql(tcp::socket client, context& ctx) {
  co_await refuse_mysql(std::move(client), ctx, failure::unsupported, "this build has no mysql proxy yet");
}

asio::awaitable<void> refuse_mysql(tcp::socket client, context& ctx, failure why, std::string message) {
  ctx.stats.failed(why);
  (void)message;
  boost::system::error_code ec;
  client.close(ec);
  co_return;
}

}  // namespace tenantdb::proxy
