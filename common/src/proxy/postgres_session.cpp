// Placeholder until the postgres session lands: every client gets the protocol's error.

#include "proxy/proxy.hpp"

namespace tenantdb::proxy {

asio::awaitable<void> serve_postgres(tcp::socket client, context& ctx) {
  co_await refuse_postgres(std::move(client), ctx, failure::unsupported, "this build has no postgres proxy yet");
}

asio::awaitable<void> refuse_postgres(tcp::socket client, context& ctx, failure why, std::string message) {
  ctx.stats.failed(why);
  (void)message;
  boost::system::error_code ec;
  client.close(ec);
  co_return;
}

}  // namespace tenantdb::proxy
