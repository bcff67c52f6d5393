#pragma once
/// \file
/// Where the credentials' source of truth lives: the credentials Secret in Kubernetes,
/// or a directory in local mode. Writes are conditional, so concurrent inits and
/// sidecar replicas agree on one set of credentials without relying on timing.

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "tenantdb/credentials.hpp"
#include "tenantdb/error.hpp"

namespace tenantdb {

class kube_client;
class secret_watcher;

/// Store annotations: metadata beside the credentials, never secret. The rotation
/// protocol (rotation.hpp) writes them; provisioning ends a lockout and a rotation it
/// supersedes.
namespace annotations {
/// JSON describing an in-flight rotation: phase, holder, id, started, graceUntil.
inline constexpr const char* rotation = "tenantdb.io/rotation";
/// RFC 3339 time of the last completed rotation (the schedule counts from it).
inline constexpr const char* last_rotation = "tenantdb.io/last-rotation";
/// Set by a user (any value) to ask for a rotation now; removed when it is done.
inline constexpr const char* rotate_now = "tenantdb.io/rotate-now";
/// The name of an account that logs in with none of the passwords the store holds for it
/// (someone who knew one changed it, e.g. with a leaked previous password during the
/// grace period). Written by the rotator when it finds that; while it is set the sidecar
/// reports not ready and starts no rotation. tenantdb-init (admin) resets the account to
/// a fresh password, ends its sessions and removes it; so does a rotation step that finds
/// the account working again.
inline constexpr const char* lockout = "tenantdb.io/lockout";
}  // namespace annotations

/// Annotations as a store holds them. An empty value means the annotation is absent: see
/// credential_store::replace.
using annotation_map = std::map<std::string, std::string>;

/// The annotation's value, or nullptr if it is missing or empty (empty is how a removed
/// annotation is written). Every reader of an annotation goes through this.
const std::string* annotation_value(const annotation_map& annotations, std::string_view key);

/// Marks the annotation removed (an empty value) if it is there; leaves the map as it is
/// otherwise.
void remove_annotation(annotation_map& annotations, std::string_view key);

/// What a store holds, with the version a conditional write must name.
struct stored_credentials {
  credential_data data;
  std::string version;
  std::map<std::string, std::string> annotations;
};

/// Thrown by a store's load() when the place holds something tenantdb must never adopt,
/// such as a credentials Secret that is not `Opaque` (a `kubernetes.io/service-account-token`
/// Secret put in its place, whose token would otherwise be published to the workload).
/// Kind kubernetes (exit code 4), not retryable; nothing is written. The sidecar reports it
/// as not ready until the store is usable again.
class foreign_store_error : public error {
public:
  using error::error;
};

/// The credentials' source of truth.
class credential_store {
public:
  credential_store() = default;
  credential_store(const credential_store&) = delete;
  credential_store& operator=(const credential_store&) = delete;
  virtual ~credential_store() = default;

  /// The current content, or std::nullopt if there is none. Throws foreign_store_error if
  /// the place holds something that is not tenantdb's to adopt.
  virtual std::optional<stored_credentials> load() = 0;
  /// Creates the content and returns its version; std::nullopt, changing nothing, if it
  /// already exists.
  virtual std::optional<std::string> create(const credential_data& data,
                                            const std::map<std::string, std::string>& annotations) = 0;
  /// Replaces the content if its version is still `version`, and returns the new version;
  /// std::nullopt, changing nothing, if someone else wrote in between.
  ///
  /// The data is replaced whole. The annotations are merged: each one named in
  /// `annotations` is set to the given value, and every other annotation the store held at
  /// `version` is kept (a Secret's annotations may belong to others, and a PUT cannot
  /// delete one it does not name). So an annotation is removed by writing it empty
  /// (remove_annotation), and readers treat an empty one as absent (annotation_value).
  /// Both stores, the Secret and the directory, behave the same.
  virtual std::optional<std::string> replace(const credential_data& data,
                                             const std::map<std::string, std::string>& annotations,
                                             const std::string& version) = 0;
  /// "secret ns/name" or "directory /path", for messages.
  virtual std::string describe() const = 0;
};

/// The credentials Secret. Labels name the tenant and app.kubernetes.io/managed-by.
/// Creates it with `type: Opaque`. load() refuses (foreign_store_error) a Secret whose
/// type is not Opaque or that carries the service-account annotations
/// (kubernetes.io/service-account.name / .uid); an existing Secret with no data (one the
/// manifests pre-create) loads as empty data, which provisioning fills with a
/// resourceVersion-conditional update.
std::unique_ptr<credential_store> make_secret_store(kube_client& client, std::string namespace_name, std::string name,
                                                    std::map<std::string, std::string> labels);

/// The credentials Secret as make_secret_store, read through `watch` (secret_watch.hpp):
/// load() answers from the watch's copy while the watch streams, with no request, and
/// GETs the Secret while it does not (starting, reconnecting, forbidden) and whenever the
/// last GET is `resync` old, even while it streams. Every GET and every write of this
/// store updates the watch's copy. `watch` outlives the store.
std::unique_ptr<credential_store> make_watched_secret_store(kube_client& client, std::string namespace_name,
                                                            std::string name, std::map<std::string, std::string> labels,
                                                            secret_watcher& watch, std::chrono::milliseconds resync);

/// A directory in publish_directory's layout, for local mode. Writers serialise on a
/// lock file beside it; the version is the name of the data directory ..data points at.
std::unique_ptr<credential_store> make_directory_store(std::filesystem::path dir, directory_options options = {});

}  // namespace tenantdb
