// Upstream TLS for the proxy: the same rules as the init's libpq and Connector/C settings.

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "proxy/proxy.hpp"
#include "tenantdb/error.hpp"

namespace tenantdb::proxy {

std::shared_ptr<asio::ssl::context> make_tls_context(const server_address& server) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  // Idle proxied sessions keep no read/write buffers (the per-connection memory budget).
  SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
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

void prepare_tls(asio::ssl::stream<tcp::socket>& stream, const server_address& server) {
  prepare_tls(stream.native_handle(), server);
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

}  // namespace tenantdb::proxy
