#pragma once
/// \file
/// A small Kubernetes API client over HTTPS with libcurl: it reads, creates,
/// conditionally updates and watches Secrets, and creates Events (events.hpp), nothing else. Replicas coordinate
/// through the credentials Secret itself (resourceVersion-conditional writes of its rotation annotation: see
/// rotation.hpp), not through Leases; `request` is the raw call for tests and tools.

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "tenantdb/secret.hpp"

namespace tenantdb {

/// How to reach and authenticate to the API server.
struct kube_config {
  std::string server;                ///< https://host:port
  std::string ca_pem;                ///< the only CAs trusted for the API server (empty: system store)
  std::filesystem::path token_file;  ///< re-read before each request (projected tokens rotate)
  secret token;                      ///< static bearer token (kubeconfig), if no token_file
  std::string client_cert_pem;       ///< client certificate auth (kubeconfig)
  secret client_key_pem;
  std::string namespace_name;  ///< the pod's namespace or the context's
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{15000};
};

/// In-cluster configuration: KUBERNETES_SERVICE_HOST/PORT, the service-account token,
/// CA and namespace under /var/run/secrets/kubernetes.io/serviceaccount (or `sa_dir`).
/// Throws tenantdb::error (kubernetes) naming what is missing.
kube_config in_cluster_config(const std::filesystem::path& sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount");

/// Reads a kubeconfig file: the current context (or `context`), its cluster's server and
/// CA, and its user's token or client certificate. Throws tenantdb::error (kubernetes)
/// naming the kubeconfig key that is missing or wrong; refuses insecure-skip-tls-verify
/// and exec/auth-provider users.
kube_config load_kubeconfig(const std::filesystem::path& path, const std::string& context = {});

/// A Secret as the client sees it. `data` values are decoded bytes.
struct secret_object {
  std::string namespace_name;
  std::string name;
  std::string resource_version;  ///< empty on create; the precondition on update
  std::string uid;               ///< sent on update when set: a precondition too
  std::string type = "Opaque";   ///< immutable once created
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::map<std::string, secret> data;
};

/// A core/v1 Event about one object in the Event's own namespace. Never put a secret in
/// any of these fields: Events are readable by anyone who can describe the object.
struct event_object {
  std::string namespace_name;  ///< the Event's namespace, which is the involved object's
  std::string involved_kind;   ///< "Pod" or "Secret"
  std::string involved_name;
  std::string involved_uid;     ///< optional
  std::string type = "Normal";  ///< "Normal" or "Warning"
  std::string reason;           ///< CamelCase, at most 128 characters
  std::string message;          ///< at most 1024 characters (longer is cut)
  std::string component;        ///< reportingComponent and source.component
  std::string instance;         ///< reportingInstance and source.host (pod or host name)
  std::string action;           ///< what was done, e.g. "Provision"
};

/// One event of a watch (watch_secret). `resource_version` is where a resumed watch
/// starts: the object's for ADDED/MODIFIED/DELETED, the bookmark's for BOOKMARK; empty
/// for ERROR.
struct secret_watch_event {
  enum class kind { added, modified, deleted, bookmark, error };
  kind type = kind::error;
  std::string resource_version;
  /// ADDED, MODIFIED, DELETED: the Secret (after the change; DELETED: its last state).
  std::optional<secret_object> object;
  /// ERROR: the Status's code (410 when the resourceVersion is too old), reason, message.
  long code = 0;
  std::string reason;
  std::string message;
};

/// Raw HTTP answer.
struct kube_response {
  long status = 0;
  std::string body;
};

/// The client. Errors are tenantdb::error with http_status set: kind kubernetes for 4xx
/// (401/403 with the API's message and a hint pointing at manifests/, 404, 409, 422),
/// retryable kind unavailable for connection failures, timeouts, 429 and 5xx.
class kube_client {
public:
  explicit kube_client(kube_config config);
  ~kube_client();
  kube_client(const kube_client&) = delete;
  kube_client& operator=(const kube_client&) = delete;

  const kube_config& config() const noexcept { return config_; }

  /// GET; std::nullopt on 404.
  std::optional<secret_object> get_secret(const std::string& ns, const std::string& name);
  /// POST; throws with http_status 409 (AlreadyExists) if it exists.
  secret_object create_secret(const secret_object& object);
  /// PUT conditional on object.resource_version; throws with http_status 409 (Conflict)
  /// if it changed meanwhile.
  secret_object update_secret(const secret_object& object);
  /// POST a core/v1 Event (a generated name), giving up after `timeout` (the client's
  /// request timeout when zero). Throws like the Secret methods; callers that must not
  /// fail on Events use event_recorder (events.hpp).
  void create_event(const event_object& event, std::chrono::milliseconds timeout = {});

  /// Watches one Secret: GET .../secrets?watch=1&fieldSelector=metadata.name=NAME
  /// &resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=N, streamed. Calls
  /// `on_open` once the API accepted the watch (HTTP 200), then `on_event` for each event
  /// line (lines above 8 MiB are refused) until the server ends the watch (its
  /// timeoutSeconds: returns normally), `on_event` returns false (returns normally), or
  /// `*stop` becomes true (checked at least once a second; returns normally). An empty
  /// `resource_version` starts "at the most recent" with a synthetic ADDED for the Secret
  /// if it exists. A refused watch throws like get_secret (http_status 403, 410, ...);
  /// a broken stream or a client-side timeout (timeoutSeconds plus a minute) throws
  /// kind unavailable, retryable. Blocks: give a watch its own client and thread, since
  /// the client serialises its calls. The token file is re-read for each watch.
  void watch_secret(const std::string& ns, const std::string& name, const std::string& resource_version,
                    std::chrono::seconds timeout, const std::function<void()>& on_open,
                    const std::function<bool(secret_watch_event&)>& on_event, const std::atomic<bool>* stop = nullptr);

  /// One request; throws only for transport failures (and an unreadable token file).
  /// For tests and tools that need a raw answer; the library itself calls only the
  /// Secret methods above.
  /// The bodies are the caller's: wipe them if they may hold Secret data.
  kube_response request(const std::string& method, const std::string& path, const std::string& body = {},
                        const std::string& content_type = "application/json");

private:
  struct stream_sink;
  kube_response perform(const std::string& method, const std::string& path, const std::string& body,
                        const std::string& content_type, const std::string& what,
                        std::chrono::milliseconds timeout = {}, stream_sink* stream = nullptr);

  struct impl;
  kube_config config_;
  std::unique_ptr<impl> impl_;
};

/// Turns a non-2xx response into a tenantdb::error naming `what` (e.g. `get secret
/// "ns/x"`), using the Status body's message and reason.
[[noreturn]] void throw_api_error(const kube_response& response, const std::string& what);

}  // namespace tenantdb
