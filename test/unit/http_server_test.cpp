// The probe server's connection policy (issue 12, finding 5): idle and slow connections
// cannot hold its connection cap, a flood from one source displaces only its own
// connections, and a request head must arrive within the request deadline. Real sockets
// on loopback; 127.0.0.2, 127.0.0.3, ... are distinct loopback sources on Linux.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#pragma GCC diagnostic pop

#include "pod.hpp"
#include "sidecar/http_server.hpp"

using namespace std::chrono_literals;
namespace http = tenantdb::http;
using tenantdb::test::connect_from;
using steady = std::chrono::steady_clock;

namespace {

struct fd_set_guard {
  std::vector<int> fds;
  ~fd_set_guard() {
    for (const int fd : fds) ::close(fd);
  }
};

// Sends one request on `fd` and reads the status line of its answer within `timeout`
// (the kubelet's default probe timeout is 1 s). 0 if none came.
int exchange(int fd, const std::string& path, std::chrono::milliseconds timeout, bool close_after = true) {
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const std::string req =
      "GET " + path + " HTTP/1.1\r\nHost: probe\r\n" + (close_after ? "Connection: close\r\n" : "") + "\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) return 0;
  std::string raw;
  char buf[1024];
  const auto deadline = steady::now() + timeout;
  while (raw.find("\r\n\r\n") == std::string::npos && steady::now() < deadline) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    raw.append(buf, static_cast<std::size_t>(n));
  }
  if (raw.size() < 12 || raw.find("\r\n\r\n") == std::string::npos) return 0;
  return std::stoi(raw.substr(9, 3));
}

// A probe as the kubelet sends it: a fresh connection from `source`, one request, 1 s.
int probe(const std::string& source, std::uint16_t port) {
  const int fd = connect_from(source, port);
  if (fd < 0) return 0;
  const int status = exchange(fd, "/healthz", 1s);
  ::close(fd);
  return status;
}

// True once the server has closed `fd` (EOF or reset), waiting at most `timeout`.
bool closed_by_server(int fd, std::chrono::milliseconds timeout) {
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char c;
  const ssize_t n = ::recv(fd, &c, 1, 0);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

class HttpServerPolicy : public ::testing::Test {
protected:
  void start(http::limits lim) {
    server_ = std::make_unique<http::server>(
        io_, "127.0.0.1", 0,
        [](const http::request&) {
          return http::response{200, "text/plain", "ok\n", {}};
        },
        lim, "test");
    server_->start();
    work_.emplace(io_.get_executor());
    thread_ = std::thread([this] { io_.run(); });
  }

  // Runs `f` on the server's thread and returns its result.
  template <class F>
  auto on_io(F f) {
    std::promise<decltype(f())> p;
    auto fut = p.get_future();
    boost::asio::post(io_, [&] { p.set_value(f()); });
    return fut.get();
  }

  void TearDown() override {
    if (thread_.joinable()) {
      on_io([this] {
        server_->stop();
        return 0;
      });
      work_.reset();
      io_.stop();
      thread_.join();
    }
  }

  http::server::counters stats() {
    return on_io([this] { return server_->stats(); });
  }
  std::size_t open() {
    return on_io([this] { return server_->open_connections(); });
  }

  // Opens `n` connections from `source` that send nothing, and waits until the server has
  // taken each of them on (or displaced it).
  void flood(fd_set_guard& held, const std::string& source, int n) {
    const auto before = stats();
    for (int i = 0; i < n; ++i) {
      const int fd = connect_from(source, server_->port());
      ASSERT_GE(fd, 0) << source;
      held.fds.push_back(fd);
    }
    const auto deadline = steady::now() + 10s;
    while (steady::now() < deadline) {
      const auto now = stats();
      if (now.accepted + now.refused - before.accepted - before.refused >= static_cast<std::uint64_t>(n)) return;
      std::this_thread::sleep_for(10ms);
    }
    FAIL() << "the server did not take on " << n << " connections from " << source;
  }

  boost::asio::io_context io_;
  std::unique_ptr<http::server> server_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
};

TEST_F(HttpServerPolicy, IdleConnectionsOverTheCapDisplaceEachOtherNotTheNextProbe) {
  start(http::limits{});
  fd_set_guard held;
  flood(held, "127.0.0.1", 200);
  EXPECT_LE(open(), http::limits{}.max_per_source) << "one source holds more than its cap";
  EXPECT_EQ(probe("127.0.0.1", server_->port()), 200) << "a probe from the flooding address itself";
  EXPECT_EQ(probe("127.0.0.77", server_->port()), 200) << "a probe from another address";
  EXPECT_EQ(stats().refused, 0u);
}

TEST_F(HttpServerPolicy, AFloodFromManySourcesEvictsTheBusiestAndSparesAQuietKeepAliveClient) {
  start(http::limits{});
  // A keep-alive client (the monitoring's scraper, say), connected before the flood: the
  // oldest idle connection of all.
  const int quiet = connect_from("127.0.0.100", server_->port());
  ASSERT_GE(quiet, 0);
  fd_set_guard held{{quiet}};
  ASSERT_EQ(exchange(quiet, "/metrics", 1s, false), 200);
  for (int i = 2; i < 10; ++i) flood(held, "127.0.0." + std::to_string(i), 25);
  EXPECT_LE(open(), http::limits{}.max_connections);
  EXPECT_EQ(probe("127.0.0.50", server_->port()), 200);
  EXPECT_EQ(exchange(quiet, "/metrics", 1s, false), 200) << "the quiet client's connection was displaced";
  EXPECT_GT(stats().dropped, 0u);
}

TEST_F(HttpServerPolicy, ASlowRequestHeadIsCutOffAtTheRequestDeadline) {
  http::limits lim;
  lim.request_deadline = 300ms;
  start(lim);
  const int fd = connect_from("127.0.0.1", server_->port());
  ASSERT_GE(fd, 0);
  fd_set_guard held{{fd}};
  // Slowloris: a byte every 50 ms, never finishing the head. Each byte would renew an
  // idle timeout; only a deadline for the whole head ends it.
  const std::string head = "GET /healthz HTTP/1.1\r\nHost: probe\r\nX-Slow: ";
  ASSERT_EQ(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  const auto began = steady::now();
  bool cut = false;
  while (!cut && steady::now() - began < 3s) {
    (void)!::send(fd, "a", 1, MSG_NOSIGNAL);
    cut = closed_by_server(fd, 50ms);
  }
  EXPECT_TRUE(cut) << "a request head trickling in for 3 s was not cut off";
  EXPECT_LT(steady::now() - began, 2s);
  EXPECT_GE(stats().timed_out, 1u);
}

TEST_F(HttpServerPolicy, ASourceOverItsCapLosesItsOwnOldestIdleConnection) {
  http::limits lim;
  lim.max_per_source = 4;
  start(lim);
  fd_set_guard held;
  flood(held, "127.0.0.2", 4);
  flood(held, "127.0.0.2", 1);
  EXPECT_TRUE(closed_by_server(held.fds.front(), 2s)) << "the source's oldest connection is still open";
  EXPECT_EQ(exchange(held.fds.back(), "/healthz", 1s), 200) << "the newest one was not served";
  EXPECT_EQ(stats().dropped, 1u);
}

}  // namespace
