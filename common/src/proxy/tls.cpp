// Upstream TLS for the proxy: the same rules as the init's libpq and Connector/C settings.

#include <sys/socket.h>

#include <cerrno>
#include <stdexcept>
#include <utility>  // before Boost 1.74's awaitable.hpp
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/use_awaitable.hpp>
#pragma GCC diagnostic pop

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "proxy/link.hpp"
#include "proxy/proxy.hpp"
#include "tenantdb/error.hpp"

namespace tenantdb::proxy {

std::shared_ptr<asio::ssl::context> make_tls_context(const server_address& server) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  // Idle proxied sessions keep no read/write buffers (the per-connection memory budget).
  SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
  // A record's header and body in one read(2), and several records when they are there
  // (the relay's syscalls are most of its cost). Safe: nothing follows the server's
  // answer to the SSLRequest in clear, so nothing is read past it.
  SSL_CTX_set_read_ahead(native, 1);
  if (!verified(server)) {
    ctx->set_verify_mode(asio::ssl::verify_none);
    return ctx;
  }
  ctx->set_verify_mode(asio::ssl::verify_peer);
  if (server.ca_pem.empty()) {
    if (SSL_CTX_load_verify_locations(native, system_ca_file().c_str(), nullptr) != 1)
      throw error(error_kind::connector,
                  "the system CA bundle " + system_ca_file() + " cannot be read: set caCert in the connector")
          .about("caCert");
    return ctx;
  }
  validate_ca_pem(server.ca_pem, "caCert");
  X509_STORE* store = SSL_CTX_get_cert_store(native);
  BIO* bio = BIO_new_mem_buf(server.ca_pem.data(), static_cast<int>(server.ca_pem.size()));
  if (bio == nullptr) throw error(error_kind::internal, "out of memory reading caCert");
  int added = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    if (X509_STORE_add_cert(store, cert) == 1) ++added;
    X509_free(cert);
  }
  BIO_free(bio);
  ERR_clear_error();  // the loop ends on a "no start line" error
  if (added == 0) throw error(error_kind::connector, "caCert holds no usable certificate").about("caCert");
  return ctx;
}

void prepare_tls(SSL* ssl, const server_address& server) {
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(server.host, ec);
  if (ec)  // SSL_set_tlsext_host_name, without its C cast
    SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(server.host.c_str()));  // SNI for names only (RFC 6066)
  if (server.tls != tls_mode::verify_full) return;
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  const int ok = ec ? X509_VERIFY_PARAM_set1_host(param, server.host.c_str(), server.host.size())
                    : X509_VERIFY_PARAM_set1_ip_asc(param, server.host.c_str());
  if (ok != 1) throw error(error_kind::internal, "cannot set the TLS host name check");
  (void)ip;
}

std::string tls_server_end_point(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return {};
  int md_nid = NID_undef;
  if (OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, nullptr) != 1) md_nid = NID_undef;
  // RFC 5929 4.1: MD5 and SHA-1 become SHA-256; PostgreSQL does the same.
  if (md_nid == NID_md5 || md_nid == NID_sha1 || md_nid == NID_undef) md_nid = NID_sha256;
  const EVP_MD* md = EVP_get_digestbynid(md_nid);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  std::string out;
  if (md != nullptr && X509_digest(cert, md, digest, &n) == 1) out.assign(reinterpret_cast<char*>(digest), n);
  X509_free(cert);
  return out;
}

// ---------------------------------------------------------------------------------------
// Links

namespace {
using asio::use_awaitable;

[[noreturn]] void throw_errno(int e) {
  throw boost::system::system_error(boost::system::error_code(e, boost::system::system_category()));
}
}  // namespace

std::size_t plain_link::try_read(char* p, std::size_t n) {
  // native_handle() is -1 once the socket is closed: recv fails with EBADF, never
  // touching a reused fd number.
  for (;;) {
    const ssize_t got = ::recv(socket_.native_handle(), p, n, MSG_DONTWAIT);
    if (got > 0) return static_cast<std::size_t>(got);
    if (got == 0) throw boost::system::system_error(asio::error::eof);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    throw_errno(errno);
  }
}

asio::awaitable<std::size_t> plain_link::read_some(char* p, std::size_t n) {
  // Asio's own read: it tries the socket first and waits without re-arming epoll.
  co_return co_await socket_.async_read_some(asio::buffer(p, n), use_awaitable);
}

asio::awaitable<void> plain_link::read_exact(char* p, std::size_t n) {
  while (n > 0) {
    const std::size_t got = co_await read_some(p, n);
    p += got;
    n -= got;
  }
}

asio::awaitable<void> plain_link::write_all(const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t put = ::send(socket_.native_handle(), p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (put > 0) {
      p += put;
      n -= static_cast<std::size_t>(put);
      continue;
    }
    if (put < 0 && errno == EINTR) continue;
    if (put < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      co_await socket_.async_wait(tcp::socket::wait_write, use_awaitable);
      continue;
    }
    throw_errno(put < 0 ? errno : EPIPE);
  }
}

void tls_link::check_open() const {
  if (!socket_.is_open()) throw boost::system::system_error(asio::error::bad_descriptor);
}

asio::awaitable<void> tls_link::wait(int ssl_error) {
  if (ssl_error == SSL_ERROR_WANT_READ) {
    co_await socket_.async_wait(tcp::socket::wait_read, use_awaitable);
  } else if (ssl_error == SSL_ERROR_WANT_WRITE) {
    co_await socket_.async_wait(tcp::socket::wait_write, use_awaitable);
  } else if (ssl_error == SSL_ERROR_ZERO_RETURN) {
    throw boost::system::system_error(asio::error::eof);
  } else {
    ERR_clear_error();
    throw boost::system::system_error(asio::error::connection_reset);
  }
}

asio::awaitable<std::string> tls_link::handshake() {
  for (;;) {
    check_open();
    ERR_clear_error();
    const int rc = SSL_connect(ssl_);
    if (rc == 1) co_return std::string();
    const int e = SSL_get_error(ssl_, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      co_await wait(e);
      continue;
    }
    const long verify = SSL_get_verify_result(ssl_);
    if (verify != X509_V_OK) co_return std::string(X509_verify_cert_error_string(verify));
    const unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (code != 0) {
      std::array<char, 256> text{};
      ERR_error_string_n(code, text.data(), text.size());
      co_return std::string(text.data());
    }
    co_return std::string("the server ended the TLS handshake");
  }
}

asio::awaitable<void> tls_link::wait_readable() {
  check_open();
  if (SSL_has_pending(ssl_) == 1) co_return;
  if (read_wants_write_)
    co_await socket_.async_wait(tcp::socket::wait_write, use_awaitable);
  else
    co_await socket_.async_wait(tcp::socket::wait_read, use_awaitable);
}

std::size_t tls_link::try_read(char* p, std::size_t n) {
  check_open();
  ERR_clear_error();
  read_wants_write_ = false;
  const int got = SSL_read(ssl_, p, static_cast<int>(std::min<std::size_t>(n, 1 << 30)));
  drained_ = got > 0 && static_cast<std::size_t>(got) < n;
  if (got > 0) return static_cast<std::size_t>(got);
  const int e = SSL_get_error(ssl_, got);
  if (e == SSL_ERROR_WANT_READ) return 0;
  if (e == SSL_ERROR_WANT_WRITE) {
    read_wants_write_ = true;
    return 0;
  }
  if (e == SSL_ERROR_ZERO_RETURN) throw boost::system::system_error(asio::error::eof);
  ERR_clear_error();
  throw boost::system::system_error(asio::error::connection_reset);
}

asio::awaitable<std::size_t> tls_link::read_some(char* p, std::size_t n) {
  // After a read that left OpenSSL nothing, the socket is most likely drained (read-ahead
  // asked it for a whole buffer): wait first instead of a read(2) that would block. The
  // wait re-arms epoll, which reports bytes that came in meanwhile at once.
  if (drained_ && SSL_has_pending(ssl_) != 1) co_await wait_readable();
  for (;;) {
    if (const std::size_t got = try_read(p, n)) co_return got;
    co_await wait_readable();
  }
}

asio::awaitable<void> tls_link::read_exact(char* p, std::size_t n) {
  while (n > 0) {
    const std::size_t got = co_await read_some(p, n);
    p += got;
    n -= got;
  }
}

asio::awaitable<void> tls_link::write_all(const char* p, std::size_t n) {
  while (n > 0) {
    check_open();
    ERR_clear_error();
    const int put = SSL_write(ssl_, p, static_cast<int>(std::min<std::size_t>(n, 1 << 30)));
    if (put > 0) {
      p += put;
      n -= static_cast<std::size_t>(put);
      continue;
    }
    co_await wait(SSL_get_error(ssl_, put));
  }
}

ssl_ptr new_tls_session(asio::ssl::context& ctx, tcp::socket& s, const server_address& server) {
  ssl_ptr ssl(SSL_new(ctx.native_handle()), &SSL_free);
  if (!ssl) throw std::runtime_error("cannot create a TLS session");
  boost::system::error_code ec;
  s.non_blocking(true, ec);
  if (ec || SSL_set_fd(ssl.get(), s.native_handle()) != 1)
    throw std::runtime_error("cannot set up TLS on the upstream socket");
  prepare_tls(ssl.get(), server);
  return ssl;
}

namespace {
/// This thread's idle relay buffers: a few are kept for the next readable spell, the
/// rest go back to the allocator.
std::vector<std::unique_ptr<char[]>>& free_buffers() {
  thread_local std::vector<std::unique_ptr<char[]>> list;
  return list;
}
constexpr std::size_t kept_free_buffers = 16;
}  // namespace

relay_buffer::relay_buffer(metrics& m) : stats_(m) {
  auto& list = free_buffers();
  if (list.empty()) {
    p_ = std::make_unique_for_overwrite<char[]>(size);
  } else {
    p_ = std::move(list.back());
    list.pop_back();
  }
  stats_.relay_buffer_taken();
}

relay_buffer::~relay_buffer() {
  stats_.relay_buffer_returned();
  auto& list = free_buffers();
  if (list.size() < kept_free_buffers) {
    try {
      list.push_back(std::move(p_));
    } catch (...) {  // no room to keep it: it is freed
    }
  }
}

}  // namespace tenantdb::proxy
