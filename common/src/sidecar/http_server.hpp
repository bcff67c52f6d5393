#pragma once
// A small HTTP/1.1 server on Boost.Beast for the sidecar's probes, metrics and admin
// endpoint. It runs on the caller's io_context (one thread): every connection has a
// deadline for its request to arrive, header and body limits, keep-alive, and caps on how
// many connections are open at once, in all and from one source address. Under pressure
// it closes the oldest idle connection of the busiest source rather than refuse the new
// one, so idle or slow ("slowloris") connections cannot keep a probe out.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

// GCC 12 reports a false "potential null pointer dereference" inside Asio's scheduler
// (Boost 1.74) once it is inlined here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/io_context.hpp>
#pragma GCC diagnostic pop

namespace tenantdb::http {

/// What a handler sees of a request.
struct request {
  std::string method;  ///< "GET", "POST", ...
  std::string target;  ///< path and query as sent
};

/// What a handler answers.
struct response {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

/// Answers one request; runs on the io_context thread and must not throw.
using handler = std::function<response(const request&)>;

/// Per-connection limits.
struct limits {
  /// The whole request (head and its small body) must arrive within this, counted from the
  /// accept or, on a keep-alive connection, from the previous answer.
  std::chrono::milliseconds request_deadline{5'000};
  std::chrono::milliseconds deadline{10'000};  ///< to write one answer
  std::size_t header_bytes = 8 * 1024;
  std::size_t body_bytes = 4 * 1024;
  /// Connections open at once. A new one over the cap closes the oldest idle connection
  /// (one waiting for or part-way through a request) of the source with the most.
  std::size_t max_connections = 64;
  /// Connections open at once from one source address. A new one over it closes that
  /// source's oldest idle connection.
  std::size_t max_per_source = 8;
};

/// One listening socket and the connections it accepted.
class server {
public:
  /// Binds and listens on `address` (an IP literal) and `port` at once. Throws
  /// boost::system::system_error when it cannot.
  server(boost::asio::io_context& io, const std::string& address, std::uint16_t port, handler on_request, limits lim,
         std::string name);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Starts accepting.
  void start();
  /// Closes the listening socket and every open connection.
  void stop();
  /// The port actually bound (useful with port 0).
  std::uint16_t port() const;

  /// What the connection caps did since start (call on the io_context's thread).
  struct counters {
    std::uint64_t accepted = 0;   ///< connections taken on
    std::uint64_t dropped = 0;    ///< idle connections closed to make room for a new one
    std::uint64_t refused = 0;    ///< new connections closed because nothing could make room
    std::uint64_t timed_out = 0;  ///< connections whose request did not arrive in time
  };
  counters stats() const;
  /// Connections open now (call on the io_context's thread).
  std::size_t open_connections() const;

  struct impl;  ///< the acceptor and its connections (opaque)

private:
  std::shared_ptr<impl> impl_;
};

}  // namespace tenantdb::http
