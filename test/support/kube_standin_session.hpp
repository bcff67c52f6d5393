// Private to the kube-apiserver stand-in: the HTTPS connection handler, split from the
// listener (kube_standin.cpp) so each stays small. Needs Asio, unlike the other pieces.
#pragma once

// GCC 12 reports -Wnull-dereference inside Asio's epoll reactor
// (scheduler::compensating_work_started, inlined from perform_io) although it is a system
// header: a middle-end false positive, silenced for these includes only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#pragma GCC diagnostic pop

#include <memory>

#include "kube_standin_internal.hpp"

namespace tenantdb::test::standin {

/// What the listener keeps of a connection: enough to end it on stop().
class SessionHandle {
public:
  SessionHandle() = default;
  virtual ~SessionHandle() = default;
  SessionHandle(const SessionHandle&) = delete;
  SessionHandle& operator=(const SessionHandle&) = delete;
  SessionHandle(SessionHandle&&) = delete;
  SessionHandle& operator=(SessionHandle&&) = delete;

  /// Ends a watch with its terminating chunk, drops a held answer, closes; on the io thread.
  virtual void shutdown() = 0;
  /// Closes the connection at once, mid-watch or mid-answer, as a server that dies does
  /// (no terminating chunk); on the io thread.
  virtual void abort() = 0;
};

/// Starts serving an accepted connection (TLS handshake first) on the socket's executor.
std::shared_ptr<SessionHandle> start_session(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context& ssl,
                                             State& state);

}  // namespace tenantdb::test::standin
