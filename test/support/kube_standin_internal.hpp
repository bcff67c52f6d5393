// Private pieces of the kube-apiserver stand-in (test/support/kube_standin.hpp), shared by
// its implementation files and nothing else:
//   kube_standin_tls.cpp      in-memory PKI and client-certificate identities
//   kube_standin_objects.cpp  Status bodies, JSON helpers, decoding, validation, selectors
//   kube_standin_store.cpp    the object store, resourceVersions, watch history and fan-out
//   kube_standin_api.cpp      one request in, one answer out: authn, faults, authz, verbs
//   kube_standin.cpp          the Beast HTTPS server and the public class
#pragma once

#include <rapidjson/document.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kube_standin.hpp"

using SSL = struct ssl_st;
using SSL_CTX = struct ssl_ctx_st;

namespace tenantdb::test::standin {

using Labels = std::map<std::string, std::string, std::less<>>;
using Headers = std::vector<std::pair<std::string, std::string>>;

// --- Resources ----------------------------------------------------------------------

/// One served resource type.
struct Resource {
  std::string_view plural;     ///< "secrets"
  std::string_view group;      ///< "" or "coordination.k8s.io"
  std::string_view version;    ///< "v1"
  std::string_view kind;       ///< "Secret"
  std::string_view list_kind;  ///< "SecretList"

  /// "v1" or "coordination.k8s.io/v1".
  [[nodiscard]] std::string api_version() const;
  /// GroupResource string: "secrets" or "leases.coordination.k8s.io".
  [[nodiscard]] std::string qualified() const;
  /// GroupKind string: "Secret" or "Lease.coordination.k8s.io".
  [[nodiscard]] std::string qualified_kind() const;
};

const Resource& secrets_resource();
const Resource& leases_resource();
const Resource& events_resource();
/// By API group, version and plural; nullptr when not served.
const Resource* find_resource(std::string_view group, std::string_view version, std::string_view plural);
/// By plural ("secrets", "leases"); nullptr otherwise.
const Resource* resource_by_plural(std::string_view plural);
/// By kind ("Secret", "Lease"); nullptr otherwise.
const Resource* resource_by_kind(std::string_view kind);

// --- Status bodies and API errors ----------------------------------------------------

/// One entry of Status details.causes.
struct Cause {
  std::string reason;
  std::string message;
  std::string field;
};

/// Status details; every field is omitted from the JSON when empty, as in metav1.
struct Details {
  std::string name;
  std::string group;
  std::string kind;
  std::string uid;
  std::vector<Cause> causes;
  int retry_after_seconds = 0;
};

/// An answer other than success, thrown by the request handlers and turned into a
/// Status body (or, with plain_text, a text/plain body) by the dispatcher.
class ApiError : public std::runtime_error {
public:
  ApiError(unsigned code, std::string reason, const std::string& message, std::optional<Details> details = {});

  unsigned code;
  std::string reason;  ///< metav1.StatusReason; may be empty (StatusReasonUnknown)
  std::optional<Details> details;
  Headers headers;          ///< extra response headers, e.g. Retry-After
  bool plain_text = false;  ///< body is what() + "\n" as text/plain
};

/// {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",...}.
std::string status_body(unsigned code, std::string_view reason, std::string_view message,
                        const std::optional<Details>& details);
/// {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","details":{...}}.
std::string success_body(const Details& details);
/// The metav1.StatusReason kube-apiserver uses for a bare HTTP status code.
std::string_view reason_for(unsigned code);
/// "Not Found" and friends (the HTTP reason phrase).
std::string_view status_text(unsigned code);

ApiError bad_request(const std::string& message);
ApiError not_found(const Resource& r, std::string_view name);
ApiError already_exists(const Resource& r, std::string_view name);
/// 409 "Operation cannot be fulfilled on <resource> "<name>": <why>".
ApiError conflict(const Resource& r, std::string_view name, std::string_view why);
/// The optimistic-locking message of a stale resourceVersion.
inline constexpr std::string_view optimistic_lock_message =
    "the object has been modified; please apply your changes to the latest version and try again";
ApiError resource_not_found();  ///< 404 "the server could not find the requested resource"
ApiError internal_error(std::string_view message);

/// A field.Error of k8s.io/apimachinery: "<field>: <type>[: <value>][: <detail>]".
struct FieldError {
  std::string field;
  std::string type;   ///< "Invalid value", "Required value", "Forbidden", "Too long"
  std::string value;  ///< already formatted the way Go's %q / %d would print it; may be empty
  std::string detail;
  std::string cause;  ///< FieldValueInvalid, FieldValueRequired, ...

  [[nodiscard]] std::string body() const;  ///< without the field
  [[nodiscard]] std::string text() const;  ///< field + ": " + body()
};
FieldError field_invalid(std::string field, std::string_view value, std::string detail);
FieldError field_invalid_number(std::string field, std::int64_t value, std::string detail);
FieldError field_required(std::string field, std::string detail);
FieldError field_forbidden(std::string field, std::string detail);
FieldError field_too_long(std::string field, std::size_t max_bytes);
/// 422 "<Kind> "<name>" is invalid: <errors>" with details.causes.
ApiError invalid(const Resource& r, std::string_view name, const std::vector<FieldError>& errors);

// --- JSON, time and encoding helpers ------------------------------------------------

using Json = rapidjson::Document;
using JsonValue = rapidjson::Value;
using Allocator = rapidjson::Document::AllocatorType;

/// Compact serialisation.
std::string to_json(const JsonValue& value);
/// Go-%q-like quoting used in messages: "abc" with JSON escapes.
std::string quote(std::string_view text);
/// A string member, or "" when absent or not a string.
std::string_view string_member(const JsonValue& object, std::string_view name);
/// Member lookup that tolerates non-objects; nullptr when absent.
const JsonValue* member(const JsonValue& object, std::string_view name);
JsonValue* member(JsonValue& object, std::string_view name);
/// Sets object[name] = value (replacing); the object must be an object.
void set_member(JsonValue& object, std::string_view name, JsonValue value, Allocator& alloc);
void set_string(JsonValue& object, std::string_view name, std::string_view value, Allocator& alloc);
void remove_member(JsonValue& object, std::string_view name);
/// RFC 7386 JSON merge patch of `patch` into `target`.
void merge_patch(JsonValue& target, const JsonValue& patch, Allocator& alloc);

/// RFC 3339 seconds in UTC, as metav1.Time serialises: 2024-05-01T12:00:00Z.
std::string format_time(std::chrono::system_clock::time_point t);
/// Microseconds since the epoch of an RFC 3339 time; nullopt when it does not parse.
std::optional<std::int64_t> parse_time_micros(std::string_view text);
/// As metav1.MicroTime serialises: 2024-05-01T12:00:00.000000Z.
std::string format_micro_time(std::int64_t micros);
/// HTTP Date header value.
std::string http_date(std::chrono::system_clock::time_point t);

std::string base64_encode(std::string_view bytes);
/// Go's base64.StdEncoding.DecodeString: \r and \n are skipped; on failure `bad_at` is the
/// input offset Go would report ("illegal base64 data at input byte N").
std::optional<std::string> base64_decode(std::string_view text, std::size_t& bad_at);

std::string random_hex(std::size_t bytes);
/// A random RFC 4122 version 4 UUID, as metadata.uid.
std::string new_uid();
/// Five characters of the generateName alphabet.
std::string random_name_suffix();

// --- Validation (k8s.io/apimachinery/pkg/util/validation) ---------------------------

std::vector<std::string> dns1123_subdomain_errors(std::string_view value);
std::vector<std::string> dns1123_label_errors(std::string_view value);
std::vector<std::string> config_key_errors(std::string_view value);
std::vector<std::string> qualified_name_errors(std::string_view value);
std::vector<std::string> label_value_errors(std::string_view value);

/// Decodes a request body into the stored shape of `r`, the way the apiserver's codec
/// does: throws 400 for bad JSON, wrong kind/apiVersion, wrong field types or bad
/// base64; drops unknown fields (adding "unknown field" warnings); for Secrets merges
/// stringData into data, drops it and defaults type to Opaque; normalises Lease times.
void decode_object(const Resource& r, Json& doc, std::vector<std::string>& warnings);
/// Parses JSON text into doc; throws 400 with the apiserver's message when it does not parse.
void parse_body(const Resource& r, std::string_view body, Json& doc);
/// Semantic validation (422): names, labels, annotations, data keys and size, lease spec,
/// and on update (old != nullptr) the immutable fields.
std::vector<FieldError> validate_object(const Resource& r, const JsonValue& object, const JsonValue* old);

// --- Selectors ------------------------------------------------------------------------

struct LabelRequirement {
  enum class Op { equals, not_equals, in, not_in, exists, not_exists };
  std::string key;
  Op op = Op::equals;
  std::vector<std::string> values;
};

struct LabelSelector {
  std::vector<LabelRequirement> requirements;
  [[nodiscard]] bool matches(const Labels& labels) const;
};
/// Throws 400 on a malformed selector.
LabelSelector parse_label_selector(std::string_view text);

struct FieldSelector {
  struct Term {
    std::string field;  ///< metadata.name, metadata.namespace or (Secrets) type
    bool equals = true;
    std::string value;
  };
  std::vector<Term> terms;
  /// The name an exact metadata.name term requires, as RBAC resourceNames sees it.
  [[nodiscard]] std::optional<std::string> exact_name() const;
  [[nodiscard]] bool matches(std::string_view ns, std::string_view name, std::string_view type) const;
};
/// Throws 400 on a malformed selector or an unsupported field, with the apiserver's wording.
FieldSelector parse_field_selector(const Resource& r, std::string_view text);

// --- Store -----------------------------------------------------------------------------

/// One stored object: the canonical JSON document plus what selectors look at.
struct Object {
  std::shared_ptr<const Json> doc;  ///< with kind, apiVersion and metadata.resourceVersion
  std::string json;                 ///< doc serialised
  std::uint64_t rv = 0;
  std::string uid;
  std::string type;  ///< Secret type, for the "type" field selector
  Labels labels;
};

/// One change, kept for resuming watches.
struct Event {
  enum class Type { added, modified, deleted };
  Type type = Type::added;
  const Resource* resource = nullptr;
  std::string ns;
  std::string name;
  std::uint64_t rv = 0;
  std::shared_ptr<const Object> object;  ///< new state; for deleted, the last state with the new rv
  std::shared_ptr<const Object> prev;    ///< previous state (modified only)
};

/// What a watch wants to see.
struct WatchFilter {
  const Resource* resource = nullptr;
  std::string ns;  ///< "" for every namespace
  LabelSelector labels;
  FieldSelector fields;
};

/// Called with the state mutex held, in resourceVersion order, for every change of the
/// watched resource: `line` is the newline-terminated event to stream, or empty when the
/// change does not pass the filter (only `rv` advances). Must not block nor call back.
using WatchSink = std::function<void(std::string line, std::uint64_t rv)>;

struct Subscription {
  std::uint64_t id = 0;              ///< 0 when the watch could not start (see error_line)
  std::vector<std::string> backlog;  ///< events to send before live ones
  std::string error_line;            ///< an ERROR event (410 Expired) ending the watch at once
  std::uint64_t rv = 0;              ///< resourceVersion the watch starts from
};

/// Request-log entry of the public API.
using RequestRecord = KubeStandin::RequestRecord;
using Fault = KubeStandin::Fault;

struct Rule {
  std::string verb;
  std::string ns;
  std::string resource;
  std::string name;
};

struct Stall {
  int count = 0;
  std::chrono::milliseconds duration{0};
  std::string path_filter;
  std::string method;  ///< empty: any
};

struct ConflictInjection {
  int count = 0;
  std::string path_filter;
};

/// Everything the server and the test thread share, behind one mutex. Members are
/// accessed with `mu` held; the member functions below expect it held as well.
struct State {
  explicit State(const KubeStandinOptions& opts) : options(opts) {}

  mutable std::mutex mu;
  const KubeStandinOptions options;

  // Objects, keyed by {plural, namespace, name} (sorted like etcd keys).
  std::map<std::tuple<std::string, std::string, std::string>, std::shared_ptr<const Object>, std::less<>> objects;
  std::uint64_t rv = 0;                                           ///< last resourceVersion handed out
  std::map<std::string, std::deque<Event>, std::less<>> history;  ///< per plural
  std::map<std::string, std::uint64_t, std::less<>> evicted;      ///< rv of the last event dropped
  struct Watcher {
    WatchFilter filter;
    WatchSink sink;
    std::uint64_t min_rv = 0;  ///< only events after this resourceVersion
  };
  std::map<std::uint64_t, Watcher> watchers;
  std::uint64_t next_watcher = 1;

  // Authentication and authorization.
  std::map<std::string, std::string, std::less<>> tokens;  ///< token -> user
  std::map<std::string, std::vector<Rule>, std::less<>> rules;
  std::set<std::string, std::less<>> all_allowed;
  std::set<std::string, std::less<>> namespaces;

  // Injections and the request log.
  std::deque<Fault> faults;
  std::deque<Stall> stalls;
  std::deque<ConflictInjection> conflicts;
  std::vector<RequestRecord> log;

  /// The stored object, or nullptr.
  [[nodiscard]] std::shared_ptr<const Object> find(const Resource& r, std::string_view ns, std::string_view name) const;
  /// Objects of `r` in `ns` ("" = all) passing the selectors, in key order.
  [[nodiscard]] std::vector<std::shared_ptr<const Object>> list(const Resource& r, std::string_view ns,
                                                                const LabelSelector& labels,
                                                                const FieldSelector& fields) const;
  /// Stores `doc` (metadata.name/namespace/uid/creationTimestamp already set) under a
  /// new resourceVersion, records the event and notifies watchers.
  std::shared_ptr<const Object> commit(const Resource& r, Json doc);
  /// Removes an object under a new resourceVersion (watchers see DELETED); returns the
  /// deleted state, or nullptr when absent.
  std::shared_ptr<const Object> erase(const Resource& r, std::string_view ns, std::string_view name);

  /// Registers a watch from `from_rv` (nullopt or 0: synthetic ADDED events for the
  /// current objects first). An expired version gives error_line and id 0.
  Subscription subscribe(WatchFilter filter, std::optional<std::uint64_t> from_rv, WatchSink sink);
  void unsubscribe(std::uint64_t id);

  /// Consumes the first fault matching the request, if any.
  std::optional<Fault> take_fault(std::string_view method, std::string_view target);
  /// Consumes a stall matching the request; zero when none.
  std::chrono::milliseconds take_stall(std::string_view method, std::string_view target);
  /// Consumes a conflict injection matching the request.
  bool take_conflict(std::string_view target);
};

/// "ADDED"/"MODIFIED"/"DELETED" event line for a watch.
std::string event_line(std::string_view type, const std::string& object_json);
/// A BOOKMARK event line at `rv`.
std::string bookmark_line(const Resource& r, std::uint64_t rv);

// --- Requests ------------------------------------------------------------------------

/// Who sent a request.
struct Identity {
  std::string user;
  std::vector<std::string> groups;
};

/// What the TLS layer learned about the client certificate.
struct PeerCert {
  bool presented = false;
  bool verified = false;
  Identity identity;
};

/// One parsed HTTP request, as the API layer sees it.
struct Request {
  std::string method;
  std::string target;  ///< path and query as sent
  std::string authorization;
  std::string content_type;
  std::string body;
  bool body_too_large = false;
  PeerCert cert;
};

/// One non-streaming answer.
struct Response {
  unsigned status = 200;
  std::string content_type = "application/json";
  Headers headers;
  std::string body;
};

/// A watch the API layer accepted: stream `subscription.backlog`, then live events
/// (or just `subscription.error_line`), until `timeout`.
struct WatchStart {
  Subscription subscription;
  const Resource* resource = nullptr;
  std::chrono::milliseconds timeout{0};
  bool bookmarks = false;
};

struct Outcome {
  Response response;  ///< headers of the watch response when `watch` is set
  std::optional<WatchStart> watch;
  std::chrono::milliseconds stall{0};  ///< hold the answer this long
};

/// Serves one request against `state` (locks it). `sink` is used when the request
/// starts a watch.
Outcome handle_request(State& state, const Request& request, const WatchSink& sink);

// --- PKI (kube_standin_tls.cpp) -------------------------------------------------------

struct Pki {
  std::string ca_cert_pem;
  std::string ca_key_pem;  ///< empty when the CA key is unknown
  std::string server_cert_pem;
  std::string server_key_pem;
};

/// Loads the files named in `options`, generating whatever is missing. Throws
/// std::runtime_error on unreadable or unusable files.
Pki make_pki(const KubeStandinOptions& options);
/// A client certificate for `cn` with O entries `organizations`, issued by the CA.
KubeStandin::ClientCert issue_client_cert(const Pki& pki, std::string_view cn,
                                          const std::vector<std::string>& organizations);
/// Asks for (or requires) a client certificate signed by the CA, without failing the
/// handshake on a bad one unless `require`.
void configure_client_auth(SSL_CTX* ctx, const std::string& ca_pem, bool require);
/// The verified identity of the peer certificate after the handshake.
PeerCert peer_cert(SSL* ssl);

}  // namespace tenantdb::test::standin
