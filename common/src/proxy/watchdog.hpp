#pragma once
// A deadline for one step of a proxied session (the client's handshake, the upstream
// login): runs `on_fire` once if `after` passes before disarm(), typically closing the
// sockets so the step's pending I/O ends. Destroy it before what it closes (declare it
// after them). One thread (the proxy's), so the flags need no lock; the handler holds the
// shared state, never the session, so a late one touches nothing that is gone.

#include <chrono>
#include <functional>
#include <memory>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#pragma GCC diagnostic pop

namespace tenantdb::proxy {

class watchdog {
public:
  watchdog(const boost::asio::any_io_executor& ex, std::chrono::milliseconds after, std::function<void()> on_fire)
      : state_(std::make_shared<state>()), timer_(ex, after) {
    state_->on_fire = std::move(on_fire);
    timer_.async_wait([st = state_](const boost::system::error_code& ec) {
      if (ec || !st->armed) return;
      st->fired = true;
      st->armed = false;
      st->on_fire();
    });
  }
  ~watchdog() { disarm(); }
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;
  void disarm() {
    state_->armed = false;
    state_->on_fire = nullptr;
    timer_.cancel();
  }
  bool fired() const { return state_->fired; }

private:
  struct state {
    bool armed = true;
    bool fired = false;
    std::function<void()> on_fire;
  };
  std::shared_ptr<state> state_;
  boost::asio::steady_timer timer_;
};

}  // namespace tenantdb::proxy
