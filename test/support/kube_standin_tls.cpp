// In-memory PKI of the kube-apiserver stand-in: a CA, the server certificate for
// 127.0.0.1/localhost and client certificates (CN = user, O = groups), with OpenSSL 3's
// EVP APIs; plus the client-certificate side of the TLS handshake.

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "kube_standin_internal.hpp"

namespace tenantdb::test::standin {
namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
  void operator()(X509_NAME* p) const { X509_NAME_free(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Free>;
using Cert = std::unique_ptr<X509, Free>;
using Bio = std::unique_ptr<BIO, Free>;

[[noreturn]] void fail(const std::string& what) {
  std::string detail;
  while (const unsigned long code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    detail += detail.empty() ? ": " : "; ";
    detail += buf;
  }
  throw std::runtime_error("kube-standin: " + what + detail);
}

void check(int ok, const char* what) {
  if (ok != 1) fail(what);
}

Key new_key() {
  Key key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) fail("cannot generate an EC P-256 key");
  return key;
}

std::string key_pem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio) fail("out of memory");
  // PKCS#8, unencrypted ("BEGIN PRIVATE KEY").
  check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr), "cannot write a key");
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<std::size_t>(n)};
}

std::string cert_pem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio) fail("out of memory");
  check(PEM_write_bio_X509(bio.get(), cert), "cannot write a certificate");
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<std::size_t>(n)};
}

Key read_key(const std::string& pem, const std::string& origin) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) fail("out of memory");
  Key key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) fail("no usable private key in " + origin);
  return key;
}

Cert read_cert(const std::string& pem, const std::string& origin) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) fail("out of memory");
  Cert cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) fail("no usable certificate in " + origin);
  return cert;
}

std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("kube-standin: cannot read " + path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, Free> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext) fail(std::string("cannot build extension ") + OBJ_nid2sn(nid) + "=" + value);
  check(X509_add_ext(cert, ext.get(), -1), "cannot add an extension");
}

void add_name_entry(X509_NAME* name, const char* field, std::string_view value) {
  check(X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value.data()),
                                   static_cast<int>(value.size()), -1, 0),
        "cannot build a subject name");
}

enum class Usage { ca, server, client };

/// A certificate for `key` with `subject`, signed by issuer/issuer_key (self-signed when
/// issuer is null).
Cert make_cert(EVP_PKEY* key, X509_NAME* subject, X509* issuer, EVP_PKEY* issuer_key, Usage usage,
               const std::string& san) {
  Cert cert(X509_new());
  if (!cert) fail("out of memory");
  check(X509_set_version(cert.get(), 2), "cannot set the version");
  std::unique_ptr<BIGNUM, Free> serial(BN_new());
  if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1) fail("cannot draw a serial");
  if (BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) fail("cannot set the serial");
  // Backdated an hour against clock skew, as kubeadm does; valid for a year.
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), 365L * 24 * 3600) == nullptr)
    fail("cannot set the validity");
  check(X509_set_subject_name(cert.get(), subject), "cannot set the subject");
  check(X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : subject),
        "cannot set the issuer");
  check(X509_set_pubkey(cert.get(), key), "cannot set the public key");
  X509* ext_issuer = issuer != nullptr ? issuer : cert.get();
  add_ext(cert.get(), ext_issuer, NID_subject_key_identifier, "hash");
  switch (usage) {
    case Usage::ca:
      add_ext(cert.get(), ext_issuer, NID_basic_constraints, "critical,CA:TRUE");
      add_ext(cert.get(), ext_issuer, NID_key_usage, "critical,digitalSignature,keyCertSign,cRLSign");
      break;
    case Usage::server:
      add_ext(cert.get(), ext_issuer, NID_basic_constraints, "critical,CA:FALSE");
      add_ext(cert.get(), ext_issuer, NID_key_usage, "critical,digitalSignature,keyEncipherment");
      add_ext(cert.get(), ext_issuer, NID_ext_key_usage, "serverAuth");
      add_ext(cert.get(), ext_issuer, NID_authority_key_identifier, "keyid:always");
      add_ext(cert.get(), ext_issuer, NID_subject_alt_name, san.c_str());
      break;
    case Usage::client:
      add_ext(cert.get(), ext_issuer, NID_basic_constraints, "critical,CA:FALSE");
      add_ext(cert.get(), ext_issuer, NID_key_usage, "critical,digitalSignature,keyEncipherment");
      add_ext(cert.get(), ext_issuer, NID_ext_key_usage, "clientAuth");
      add_ext(cert.get(), ext_issuer, NID_authority_key_identifier, "keyid:always");
      break;
  }
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) <= 0) fail("cannot sign a certificate");
  return cert;
}

std::unique_ptr<X509_NAME, Free> name_of(std::string_view cn, const std::vector<std::string>& organizations) {
  std::unique_ptr<X509_NAME, Free> name(X509_NAME_new());
  if (!name) fail("out of memory");
  for (const auto& o : organizations) add_name_entry(name.get(), "O", o);
  add_name_entry(name.get(), "CN", cn);
  return name;
}

std::string utf8_entry(X509_NAME_ENTRY* entry) {
  unsigned char* out = nullptr;
  const int n = ASN1_STRING_to_UTF8(&out, X509_NAME_ENTRY_get_data(entry));
  if (n < 0) return {};
  std::string value(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
  OPENSSL_free(out);
  return value;
}

/// Lets the handshake finish with an untrusted client certificate: like kube-apiserver
/// (tls.RequestClientCert), the x509 authenticator judges it later and answers 401.
int accept_any_client_cert(int /*preverify_ok*/, X509_STORE_CTX* /*ctx*/) {
  return 1;
}

}  // namespace

Pki make_pki(const KubeStandinOptions& options) {
  Pki pki;
  const bool have_server = !options.server_cert_file.empty() || !options.server_key_file.empty();
  if (have_server && (options.server_cert_file.empty() || options.server_key_file.empty()))
    throw std::runtime_error("kube-standin: server_cert_file and server_key_file go together");
  if (!options.ca_key_file.empty() && options.ca_cert_file.empty())
    throw std::runtime_error("kube-standin: ca_key_file needs ca_cert_file");

  if (!options.ca_cert_file.empty()) {
    pki.ca_cert_pem = read_whole_file(options.ca_cert_file);
    const Cert ca = read_cert(pki.ca_cert_pem, options.ca_cert_file);
    if (!options.ca_key_file.empty()) {
      pki.ca_key_pem = read_whole_file(options.ca_key_file);
      const Key key = read_key(pki.ca_key_pem, options.ca_key_file);
      if (X509_check_private_key(ca.get(), key.get()) != 1)
        fail(options.ca_key_file + " is not the key of " + options.ca_cert_file);
    } else if (!have_server) {
      throw std::runtime_error("kube-standin: ca_cert_file without ca_key_file needs server_cert_file/server_key_file");
    }
  } else if (!have_server) {
    const Key key = new_key();
    const auto subject = name_of("kube-standin-ca-" + random_hex(4), {});
    const Cert ca = make_cert(key.get(), subject.get(), nullptr, key.get(), Usage::ca, {});
    pki.ca_cert_pem = cert_pem(ca.get());
    pki.ca_key_pem = key_pem(key.get());
  }

  if (have_server) {
    pki.server_cert_pem = read_whole_file(options.server_cert_file);
    pki.server_key_pem = read_whole_file(options.server_key_file);
    const Cert cert = read_cert(pki.server_cert_pem, options.server_cert_file);
    const Key key = read_key(pki.server_key_pem, options.server_key_file);
    if (X509_check_private_key(cert.get(), key.get()) != 1)
      fail(options.server_key_file + " is not the key of " + options.server_cert_file);
  } else {
    const Cert ca = read_cert(pki.ca_cert_pem, "the CA certificate");
    const Key ca_key = read_key(pki.ca_key_pem, "the CA key");
    const Key key = new_key();
    // The names kube-apiserver's serving certificate carries, plus loopback.
    const std::string san =
        "IP:127.0.0.1,IP:::1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
        "DNS:kubernetes.default.svc.cluster.local";
    const auto subject = name_of("kube-apiserver", {});
    const Cert cert = make_cert(key.get(), subject.get(), ca.get(), ca_key.get(), Usage::server, san);
    pki.server_cert_pem = cert_pem(cert.get());
    pki.server_key_pem = key_pem(key.get());
  }
  return pki;
}

KubeStandin::ClientCert issue_client_cert(const Pki& pki, std::string_view cn,
                                          const std::vector<std::string>& organizations) {
  if (pki.ca_key_pem.empty()) throw std::logic_error("kube-standin: issue_client_cert needs the CA key (ca_key_file)");
  if (cn.empty()) throw std::invalid_argument("kube-standin: issue_client_cert needs a common name");
  const Cert ca = read_cert(pki.ca_cert_pem, "the CA certificate");
  const Key ca_key = read_key(pki.ca_key_pem, "the CA key");
  const Key key = new_key();
  const auto subject = name_of(cn, organizations);
  const Cert cert = make_cert(key.get(), subject.get(), ca.get(), ca_key.get(), Usage::client, {});
  return {cert_pem(cert.get()), key_pem(key.get())};
}

void configure_client_auth(SSL_CTX* ctx, const std::string& ca_pem, bool require) {
  // Without a session id context, resuming a session (curl does on reconnect) fails
  // with an internal-error alert once peer verification is on.
  static constexpr unsigned char session_context[] = "kube-standin";
  check(SSL_CTX_set_session_id_context(ctx, session_context, sizeof session_context - 1),
        "cannot set the session id context");
  if (ca_pem.empty()) {
    if (require) throw std::runtime_error("kube-standin: require_client_cert needs a CA certificate");
    return;
  }
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  Bio bio(BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size())));
  if (!bio) fail("out of memory");
  STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null();
  if (names == nullptr) fail("out of memory");
  int count = 0;
  while (X509* raw = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    const Cert ca(raw);
    check(X509_STORE_add_cert(store, ca.get()), "cannot trust the CA");
    if (X509_NAME* dup = X509_NAME_dup(X509_get_subject_name(ca.get())); dup != nullptr) sk_X509_NAME_push(names, dup);
    ++count;
  }
  ERR_clear_error();  // the loop ends on "no start line"
  if (count == 0) {
    sk_X509_NAME_pop_free(names, X509_NAME_free);
    fail("no certificate in the CA PEM");
  }
  SSL_CTX_set_client_CA_list(ctx, names);  // takes ownership
  if (require)
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  else
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any_client_cert);
}

PeerCert peer_cert(SSL* ssl) {
  PeerCert out;
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr) return out;
  out.presented = true;
  out.verified = SSL_get_verify_result(ssl) == X509_V_OK;
  X509_NAME* subject = X509_get_subject_name(cert);
  for (int i = -1; (i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) >= 0;)
    out.identity.user = utf8_entry(X509_NAME_get_entry(subject, i));  // the last CN wins, as in Go
  for (int i = -1; (i = X509_NAME_get_index_by_NID(subject, NID_organizationName, i)) >= 0;)
    out.identity.groups.push_back(utf8_entry(X509_NAME_get_entry(subject, i)));
  if (out.identity.user.empty()) out.verified = false;  // kube-apiserver: "common name is empty"
  return out;
}

std::string random_hex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) fail("RAND_bytes");
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes * 2);
  for (const char c : raw) {
    const auto b = static_cast<unsigned char>(c);
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 0xfU]);
  }
  return out;
}

std::string new_uid() {
  std::string h = random_hex(16);
  h[12] = '4';
  static constexpr char variant[] = "89ab";
  h[16] = variant[static_cast<unsigned char>(h[16]) % 4];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" + h.substr(20);
}

std::string random_name_suffix() {
  // k8s.io/apiserver/pkg/storage/names: utilrand.String(5) over "bcdfghjklmnpqrstvwxz2456789".
  static constexpr std::string_view alphabet = "bcdfghjklmnpqrstvwxz2456789";
  unsigned char raw[5];
  if (RAND_bytes(raw, sizeof raw) != 1) fail("RAND_bytes");
  std::string out;
  for (const unsigned char b : raw) out.push_back(alphabet[b % alphabet.size()]);
  return out;
}

}  // namespace tenantdb::test::standin
