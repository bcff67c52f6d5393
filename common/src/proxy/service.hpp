#pragma once
// The proxy's front door: one listening socket on the proxy's own thread and io_context,
// so proxied traffic never waits on the sidecar's loop (its API calls, login checks and
// rotations run on another thread). Connections over the cap are answered with the
// protocol's "too many connections" error, not dropped.

#include <memory>
#include <thread>

#include "proxy/proxy.hpp"

namespace tenantdb::proxy {

class service {
public:
  explicit service(options opts);
  ~service();
  service(const service&) = delete;
  service& operator=(const service&) = delete;

  /// Binds opts.address and opts.port (tenantdb::default_port(engine), the engine's usual port, when 0) for `engine`'s
  /// wire protocol and starts the proxy's thread. Throws tenantdb::error (usage, about
  /// "--proxy-listen") naming the address when it cannot bind. Once only.
  void start(engine_type engine);
  /// Closes the listener and every client and upstream connection; joins the thread.
  void stop();

  bool running() const noexcept { return running_; }
  engine_type engine() const noexcept { return engine_; }
  /// The port bound (after start).
  std::uint16_t port() const noexcept { return port_; }

  /// Where new sessions log in; the sidecar sets it whenever the store moves on.
  upstream_source& source() noexcept { return source_; }
  const metrics& stats() const noexcept { return stats_; }
  const options& opts() const noexcept { return opts_; }

  struct impl;

private:
  options opts_;
  upstream_source source_;
  metrics stats_;
  cancel_registry cancels_;
  engine_type engine_ = engine_type::postgres;
  std::uint16_t port_ = 0;
  bool running_ = false;
  std::shared_ptr<impl> impl_;
  std::thread thread_;
};

}  // namespace tenantdb::proxy
