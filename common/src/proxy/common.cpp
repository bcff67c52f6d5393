// The proxy's counters and cancel keys.

#include <cmath>
#include <sstream>

#include "proxy/proxy.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>

namespace tenantdb::proxy {

const char* to_string(failure f) noexcept {
  switch (f) {
    case failure::client_protocol: return "client_protocol";
    case failure::client_timeout: return "client_timeout";
    case failure::local_auth: return "local_auth";
    case failure::unsupported: return "unsupported";
    case failure::no_credentials: return "no_credentials";
    case failure::connection_cap: return "connection_cap";
    case failure::upstream_unreachable: return "upstream_unreachable";
    case failure::upstream_tls: return "upstream_tls";
    case failure::upstream_auth: return "upstream_auth";
    case failure::upstream_refused: return "upstream_refused";
    case failure::internal: return "internal";
    case failure::count_: break;
  }
  return "internal";
}

namespace {
// Upper bounds of the connect-latency histogram, in seconds.
constexpr std::array<double, 12> connect_bounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                   0.05,   0.1,   0.25,   0.5,   1.0,  2.5};
}  // namespace

void metrics::opened(const std::string& account) {
  ++open_;
  const std::lock_guard<std::mutex> lock(mu_);
  ++by_account_[account];
}

void metrics::closed(const std::string& account) {
  --open_;
  const std::lock_guard<std::mutex> lock(mu_);
  auto it = by_account_.find(account);
  if (it != by_account_.end() && it->second > 0) --it->second;
}

void metrics::observe_connect(std::chrono::microseconds took) {
  const double s = static_cast<double>(took.count()) / 1e6;
  const std::lock_guard<std::mutex> lock(mu_);
  for (std::size_t i = 0; i < connect_bounds.size(); ++i)
    if (s <= connect_bounds[i]) ++connect_buckets_[i];
  ++connect_count_;
  connect_sum_seconds_ += s;
}

std::map<std::string, std::uint64_t> metrics::sessions_by_account() const {
  const std::lock_guard<std::mutex> lock(mu_);
  return by_account_;
}

std::string metrics::render() const {
  std::ostringstream out;
  out << "# HELP tenantdb_proxy_connections_open Client connections the proxy serves now.\n"
         "# TYPE tenantdb_proxy_connections_open gauge\n"
      << "tenantdb_proxy_connections_open " << open() << "\n"
      << "# HELP tenantdb_proxy_connections_total Client connections accepted.\n"
         "# TYPE tenantdb_proxy_connections_total counter\n"
      << "tenantdb_proxy_connections_total " << total() << "\n"
      << "# HELP tenantdb_proxy_relay_buffers Relay buffers held now (sessions moving bytes; 0 when all are "
         "idle).\n"
         "# TYPE tenantdb_proxy_relay_buffers gauge\n"
      << "tenantdb_proxy_relay_buffers " << relay_buffers() << "\n"
      << "# HELP tenantdb_proxy_failures_total Proxied connections that failed, by reason.\n"
         "# TYPE tenantdb_proxy_failures_total counter\n";
  for (std::size_t i = 0; i < static_cast<std::size_t>(failure::count_); ++i)
    out << "tenantdb_proxy_failures_total{reason=\"" << to_string(static_cast<failure>(i)) << "\"} "
        << failures_[i].load() << "\n";
  const std::lock_guard<std::mutex> lock(mu_);
  out << "# HELP tenantdb_proxy_sessions Open proxied sessions per upstream account (the previous account has "
         "drained at 0).\n"
         "# TYPE tenantdb_proxy_sessions gauge\n";
  for (const auto& [account, n] : by_account_)
    out << "tenantdb_proxy_sessions{account=\"" << account << "\"} " << n << "\n";
  out << "# HELP tenantdb_proxy_upstream_connect_seconds From a client's startup to its upstream login.\n"
         "# TYPE tenantdb_proxy_upstream_connect_seconds histogram\n";
  for (std::size_t i = 0; i < connect_bounds.size(); ++i)
    out << "tenantdb_proxy_upstream_connect_seconds_bucket{le=\"" << connect_bounds[i] << "\"} " << connect_buckets_[i]
        << "\n";
  out << "tenantdb_proxy_upstream_connect_seconds_bucket{le=\"+Inf\"} " << connect_count_ << "\n"
      << "tenantdb_proxy_upstream_connect_seconds_sum " << connect_sum_seconds_ << "\n"
      << "tenantdb_proxy_upstream_connect_seconds_count " << connect_count_ << "\n";
  return out.str();
}

void tune_socket(tcp::socket& s, const options& opts) {
  boost::system::error_code ec;
  s.set_option(tcp::no_delay(true), ec);
  s.set_option(asio::socket_base::keep_alive(true), ec);
  const int idle = static_cast<int>(opts.keepalive_idle.count());
  const int interval = 10;
  const int count = 6;
  ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
}

void cancel_registry::add(std::uint32_t pid, std::uint32_t key, target t) {
  const std::lock_guard<std::mutex> lock(mu_);
  keys_[{pid, key}] = std::move(t);
}

void cancel_registry::remove(std::uint32_t pid, std::uint32_t key) {
  const std::lock_guard<std::mutex> lock(mu_);
  keys_.erase({pid, key});
}

std::optional<cancel_registry::target> cancel_registry::find(std::uint32_t pid, std::uint32_t key) const {
  const std::lock_guard<std::mutex> lock(mu_);
  auto it = keys_.find({pid, key});
  if (it == keys_.end()) return std::nullopt;
  return it->second;
}

}  // namespace tenantdb::proxy
