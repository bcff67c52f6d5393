// A stand-in for kube-apiserver, serving the slice of the API that tenantdb's client uses
// (core/v1 Secrets and Events, coordination.k8s.io/v1 Leases) over HTTPS with the real server's
// status codes, Status bodies and watch semantics, so client tests exercise the contract
// rather than a convenience fake.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tenantdb::test {

/// How a KubeStandin is started. The defaults give an ephemeral port on 127.0.0.1 and a
/// fresh in-memory CA, which is what almost every test wants.
struct KubeStandinOptions {
  /// Port to listen on; 0 picks an ephemeral port (read it back with port()).
  std::uint16_t port = 0;
  /// PEM files of a CA to use instead of generating one. With a CA key the server
  /// certificate and client certificates are issued from it.
  std::string ca_cert_file;
  /// PEM private key of ca_cert_file; without it issue_client_cert() is unavailable.
  std::string ca_key_file;
  /// PEM server certificate chain and key to use as-is (needs ca_cert_file for ca_pem()).
  std::string server_cert_file;
  /// Private key matching server_cert_file.
  std::string server_key_file;
  /// Refuse the TLS handshake without a client certificate signed by the CA. By default,
  /// like kube-apiserver with --client-ca-file, a certificate is asked for but optional.
  bool require_client_cert = false;
  /// Largest request body accepted; larger ones get 413 (kube-apiserver's limit is 3 MiB).
  std::size_t max_body_bytes = 3 * 1024 * 1024;
  /// Watch events kept per resource for resuming watches; watching from an older
  /// resourceVersion gets an ERROR event with a 410 Expired Status.
  std::size_t watch_history = 1000;
  /// How long a keep-alive connection may wait for its next request.
  std::chrono::milliseconds idle_timeout{60'000};
  /// Deadline of one TLS handshake, request body read or response write.
  std::chrono::milliseconds io_timeout{30'000};
  /// Watch length when a watch has no timeoutSeconds (kube-apiserver picks 30-60 min).
  std::chrono::seconds default_watch_timeout{1800};
  /// Interval of BOOKMARK events on watches that ask for them (allowWatchBookmarks=true).
  std::chrono::milliseconds bookmark_interval{60'000};
  /// When false, creating in a namespace not added with add_namespace() answers 404
  /// `namespaces "x" not found`, as the NamespaceLifecycle admission plugin does.
  bool implicit_namespaces = true;
};

/// An in-process HTTPS server answering like kube-apiserver for Secrets and Leases.
/// It listens from construction until stop() or destruction. Every public member is
/// thread-safe and may be called from the test thread while clients are being served.
class KubeStandin {
public:
  /// Start-up settings; see KubeStandinOptions.
  using Options = KubeStandinOptions;

  /// A client certificate and its private key, both PEM.
  struct ClientCert {
    /// Certificate signed by the stand-in's CA, with the clientAuth usage.
    std::string cert_pem;
    /// Unencrypted PKCS#8 private key of cert_pem.
    std::string key_pem;
  };

  /// One answered request, as kube-apiserver's audit log would have it (never the token).
  struct RequestRecord {
    /// HTTP method, e.g. "GET"; empty when the request line could not be parsed.
    std::string method;
    /// Path and query string exactly as sent.
    std::string target;
    /// HTTP status of the answer (200 for a watch that started streaming).
    unsigned status = 0;
    /// Authenticated user name, empty when authentication failed.
    std::string user;
  };

  /// An injected failure: the next `count` matching requests get this answer instead of
  /// being served, after authentication (where API Priority and Fairness rejects).
  struct Fault {
    /// How many matching requests fail.
    int count = 1;
    /// HTTP status: 429 TooManyRequests, 500 InternalError, 503 ServiceUnavailable and
    /// 504 Timeout get the apiserver's own Status; other codes a generic Status.
    unsigned status = 500;
    /// Only requests whose path+query contains this substring match (empty: all).
    std::string path_filter;
    /// Only requests with this method match, e.g. "PUT" (empty: all).
    std::string method_filter;
    /// Sent as Retry-After and details.retryAfterSeconds when positive.
    int retry_after_seconds = 0;
    /// Answer text/plain like the APF filter's 429 ("Too many requests, please try
    /// again later.") instead of a JSON Status.
    bool plain_text = false;
  };

  /// Starts listening on 127.0.0.1; throws std::runtime_error when it cannot.
  explicit KubeStandin(Options options);
  /// Starts listening on 127.0.0.1 with default options.
  KubeStandin();
  /// Stops the server (see stop()).
  ~KubeStandin();
  KubeStandin(const KubeStandin&) = delete;
  KubeStandin& operator=(const KubeStandin&) = delete;
  KubeStandin(KubeStandin&&) = delete;
  KubeStandin& operator=(KubeStandin&&) = delete;

  /// The port being listened on.
  [[nodiscard]] std::uint16_t port() const;
  /// "https://127.0.0.1:PORT".
  [[nodiscard]] std::string url() const;
  /// PEM of the CA that signed the server certificate; clients trust this.
  [[nodiscard]] std::string ca_pem() const;
  /// Issues a client certificate whose CN is the user name and whose O entries are its
  /// groups, as kube-apiserver's x509 authenticator reads them. Group "system:masters"
  /// is allowed everything. Throws std::logic_error when there is no CA key.
  [[nodiscard]] ClientCert issue_client_cert(std::string_view common_name,
                                             const std::vector<std::string>& organizations = {});
  /// Ends open watches with their terminating chunk, closes connections and joins the
  /// server thread. Idempotent; the object may still be inspected afterwards.
  void stop();
  /// Restarts the server as kube-apiserver restarts in front of etcd: closes the listener
  /// and drops every connection at once (an open watch ends without its terminating
  /// chunk), runs `while_down` (connections are refused meanwhile; it may change objects
  /// with put_object, as other clients of etcd would), then listens on the same port with
  /// the same certificates. Stored objects, resourceVersions and the watch history
  /// survive, as they do in etcd, so a watch resumes from where it was.
  void restart(const std::function<void()>& while_down = {});

  /// Accepts `Authorization: Bearer <token>` as `user` from now on.
  void add_token(std::string token, std::string user);
  /// Stops accepting a token; later requests with it get 401 (e.g. a rotated token).
  void remove_token(std::string_view token);
  /// Grants `user` one RBAC-like rule. verb is get, list, watch, create, update, patch,
  /// delete, deletecollection or "*"; namespace "" means every namespace and the
  /// cluster scope; resource is e.g. "secrets" or "*"; name "" means every name (a
  /// named rule never matches create, nor list/watch without fieldSelector
  /// metadata.name=NAME, as with RBAC resourceNames). Throws std::invalid_argument on an
  /// unknown verb.
  void allow(std::string user, std::string verb, std::string ns, std::string resource, std::string name = {});
  /// Grants `user` everything, including non-resource paths.
  void allow_all(std::string user);
  /// Removes every rule of `user`, including allow_all.
  void revoke(std::string_view user);
  /// Declares a namespace as existing; only matters with implicit_namespaces == false.
  void add_namespace(std::string ns);

  /// Seeds or replaces an object without validation or authorization, as if another
  /// client had written it: kind must be Secret, Lease or Event with metadata.name and
  /// metadata.namespace; uid and creationTimestamp are kept when given; a new
  /// resourceVersion is assigned and watchers see ADDED or MODIFIED. Returns the stored
  /// object as JSON. Throws std::invalid_argument on unusable input.
  std::string put_object(std::string_view json);
  /// The stored object as JSON (with kind and apiVersion), or nullopt. resource is the
  /// plural resource name, "secrets", "leases" or "events".
  [[nodiscard]] std::optional<std::string> get_object(std::string_view resource, std::string_view ns,
                                                      std::string_view name) const;
  /// Every stored object of `resource` in `ns` ("" = all namespaces) as JSON, in name order.
  [[nodiscard]] std::vector<std::string> list_objects(std::string_view resource, std::string_view ns) const;
  /// Deletes an object as another client would (watchers see DELETED); false if absent.
  bool delete_object(std::string_view resource, std::string_view ns, std::string_view name);
  /// The base64-decoded value of data[key] of a stored Secret, or nullopt.
  [[nodiscard]] std::optional<std::string> secret_value(std::string_view ns, std::string_view name,
                                                        std::string_view key) const;
  /// The latest resourceVersion handed out (global across resources, like etcd's).
  [[nodiscard]] std::uint64_t resource_version() const;
  /// Watches currently streaming.
  [[nodiscard]] std::size_t active_watches() const;

  /// Fails the next `count` requests (optionally only those whose path+query contains
  /// path_filter) with `http_status`; see Fault.
  void fail_next(int count, unsigned http_status, std::string path_filter = {}, int retry_after_seconds = 0);
  /// Queues a fully specified failure; faults are consumed first-match in FIFO order.
  void fail_next(Fault fault);
  /// Serves the next `count` matching requests but holds each response for `duration`,
  /// so client timeouts fire while the write has already happened (the ambiguous
  /// outcome a real slow apiserver produces). Held responses are dropped by stop().
  /// `method` (e.g. "PUT"; empty: any) narrows the match like Fault::method.
  void stall_next(int count, std::chrono::milliseconds duration, std::string path_filter = {}, std::string method = {});
  /// Acts as a racing writer: just before each of the next `count` matching PUT or
  /// PATCH requests on an existing object, the object is rewritten with a new
  /// resourceVersion (watchers see MODIFIED). A request carrying the previously current
  /// resourceVersion therefore gets 409 Conflict; an unconditional one succeeds, as it
  /// would against kube-apiserver.
  void conflict_next(int count, std::string path_filter = {});
  /// Drops pending fail_next, stall_next and conflict_next injections.
  void clear_faults();

  /// Every request answered so far, oldest first.
  [[nodiscard]] std::vector<RequestRecord> requests() const;
  /// Requests whose method equals `method` (empty: any) and whose path+query contains
  /// `path_substring` (empty: any).
  [[nodiscard]] std::size_t request_count(std::string_view method = {}, std::string_view path_substring = {}) const;
  /// Forgets the request log.
  void clear_requests();

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tenantdb::test
