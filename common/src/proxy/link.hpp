#pragma once
// The proxy's byte links, shared by both engines' sessions: a plain TCP link and an
// upstream TLS link that drives OpenSSL directly on the non-blocking socket, plus the
// relay pump that moves bytes between two links holding a buffer only while bytes flow.
//
// Why not asio::ssl::stream: it keeps its own BIO pair and staging buffers (about 34 KiB)
// for the connection's whole life. tls_link keeps none while idle (the context sets
// SSL_MODE_RELEASE_BUFFERS), which is most of an idle proxied connection's budget.
//
// Both links read with non-blocking calls first and wait on the socket only when a read
// or write would block: a busy relay costs one syscall per direction per batch and no
// coroutine suspension, an idle one holds no relay buffer. Everything runs on the
// proxy's one thread.

#include <array>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>

#include <openssl/ssl.h>

#include "proxy/proxy.hpp"

namespace tenantdb::proxy {

/// A plain TCP link. Never used after its socket is closed (every call checks).
class plain_link {
public:
  explicit plain_link(tcp::socket& s) : socket_(s) {}
  /// Reads what is there now, at most n bytes; 0 when nothing is (the read would block).
  /// Throws boost::system::system_error at the end of the stream or on an error.
  std::size_t try_read(char* p, std::size_t n);
  /// Waits for bytes (without a relay buffer) and reads at most n of them.
  asio::awaitable<std::size_t> read_some(char* p, std::size_t n);
  asio::awaitable<void> read_exact(char* p, std::size_t n);
  asio::awaitable<void> write_all(const char* p, std::size_t n);
  tcp::socket& socket() { return socket_; }

private:
  tcp::socket& socket_;
};

/// TLS on an upstream socket with OpenSSL directly (a socket BIO on the non-blocking fd,
/// waiting on the socket when OpenSSL wants to read or write). Never used after the
/// socket is closed: the fd number could belong to another connection by then (every
/// call checks). OpenSSL's socket BIO writes with write(2), so the process must ignore
/// SIGPIPE (tenantdb-sidecar's main does).
class tls_link {
public:
  tls_link(tcp::socket& s, SSL* ssl) : socket_(s), ssl_(ssl) {}
  /// The client handshake: "" on success, else why it failed (no secret in it: the
  /// certificate verification error or OpenSSL's reason).
  asio::awaitable<std::string> handshake();
  std::size_t try_read(char* p, std::size_t n);
  asio::awaitable<std::size_t> read_some(char* p, std::size_t n);
  asio::awaitable<void> read_exact(char* p, std::size_t n);
  asio::awaitable<void> write_all(const char* p, std::size_t n);
  SSL* native_handle() const { return ssl_; }
  tcp::socket& socket() { return socket_; }

private:
  void check_open() const;
  asio::awaitable<void> wait(int ssl_error);
  tcp::socket& socket_;
  SSL* ssl_;
  /// Returns once decrypted bytes may be read: at once when OpenSSL holds some, else
  /// when the socket is readable (which may turn out to be a partial record).
  asio::awaitable<void> wait_readable();
  bool read_wants_write_ = false;  // the last SSL_read needs the socket writable
  bool drained_ = false;           // the last SSL_read returned less than it was asked for
};

using ssl_ptr = std::unique_ptr<SSL, decltype(&SSL_free)>;

/// A TLS session for the upstream socket `s` (set non-blocking), prepared for `server`
/// (prepare_tls: SNI and, with verify_full, the host check). Throws std::runtime_error
/// if OpenSSL cannot set it up.
ssl_ptr new_tls_session(asio::ssl::context& ctx, tcp::socket& s, const server_address& server);

/// A relay buffer from this thread's free list, counted in metrics::relay_buffers while
/// held. A relay takes one when a link becomes readable and gives it back when a read
/// would block, so an idle session holds none.
class relay_buffer {
public:
  static constexpr std::size_t size = 16 * 1024;
  explicit relay_buffer(metrics& m);
  ~relay_buffer();
  relay_buffer(const relay_buffer&) = delete;
  relay_buffer& operator=(const relay_buffer&) = delete;
  char* data() const { return p_.get(); }

private:
  metrics& stats_;
  std::unique_ptr<char[]> p_;
};

/// Bytes a pump reads before it takes a relay buffer: a typical query or short result
/// fits, and needs no buffer from the free list at all.
constexpr std::size_t first_read_size = 512;

/// Moves bytes from `from` to `to` until either ends or fails (it throws then). The wait
/// for the next bytes reads into a small array in the pump itself; only when that fills
/// does the pump take a relay buffer and read, without waiting, as much as is there (a
/// buffer's worth per write), giving the buffer back when a read would block.
template <class From, class To>
asio::awaitable<void> pump(From& from, To& to, metrics& stats) {
  std::array<char, first_read_size> first;
  for (;;) {
    const std::size_t n = co_await from.read_some(first.data(), first.size());
    if (n < first.size()) {
      co_await to.write_all(first.data(), n);
      continue;
    }
    const relay_buffer buf(stats);
    std::memcpy(buf.data(), first.data(), n);
    std::size_t have = n;
    for (;;) {
      const std::size_t more = from.try_read(buf.data() + have, relay_buffer::size - have);
      have += more;
      if (more == 0 || have == relay_buffer::size) {
        if (have > 0) co_await to.write_all(buf.data(), have);
        if (more == 0) break;
        have = 0;
      }
    }
  }
}

}  // namespace tenantdb::proxy
