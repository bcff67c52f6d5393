#pragma once
// The file publisher: loads the credentials store and publishes the workload's files
// (the keys, in kubelet's Secret-volume layout, and the --formats files in the same
// generation). It reports what it did; the loop decides what follows (a login check, the
// reload hook) and whether a rotation may run: only while the files hold what the store
// holds ("files first", see tenantdb/agent.hpp).

#include <optional>
#include <string>

#include "sidecar/outcome.hpp"
#include "tenantdb/agent.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/store.hpp"

namespace tenantdb::sidecar {

class file_publisher {
public:
  file_publisher(credential_store& store, const agent_options& options);

  /// What load() found.
  struct load_outcome {
    /// The store holds credentials; current() has them.
    bool loaded = false;
    /// The store could not be read, or was refused (not tenantdb's: store_refused()).
    std::optional<failure> failed;
  };
  /// Reads the store. An empty store (a Secret pre-created for the init to fill) holds
  /// nothing yet: logged once, not a failure.
  load_outcome load();

  /// What publish() did with the files.
  struct publish_outcome {
    enum class files {
      unchanged,  ///< the files already held the store's content
      published,  ///< a new generation was published
      failed,     ///< the output directory could not be written (see `failed`)
    } result = files::unchanged;
    /// The files are in place for the first time since the start.
    bool first_in_place = false;
    std::optional<failure> failed;
  };
  /// Publishes current() if the store moved on since the last publish, the last publish
  /// failed, or someone removed the files meanwhile. Call after a load() that loaded.
  publish_outcome publish();

  /// What the store holds, as last loaded.
  const std::optional<stored_credentials>& current() const noexcept { return current_; }
  /// The workload's view now in the files (what the login check uses).
  const std::optional<credential_data>& published() const noexcept { return published_; }
  /// The files were published at least once.
  bool in_place() const noexcept { return in_place_; }
  /// The last publish did not fail: the files hold what the store holds.
  bool up_to_date() const noexcept { return !publish_failed_; }
  /// The last load found a store that is not tenantdb's (foreign_store_error).
  bool store_refused() const noexcept { return store_refused_; }
  /// Why the files are not ready ("starting", "no credentials yet", ...).
  const std::string& not_ready_reason() const noexcept { return not_ready_reason_; }
  std::string describe_store() const { return store_.describe(); }

private:
  credential_store& store_;
  const agent_options& options_;
  error_source store_source_;

  std::optional<stored_credentials> current_;
  std::optional<credential_data> published_;
  std::string published_version_;
  bool in_place_ = false;
  bool publish_failed_ = false;
  bool store_refused_ = false;
  bool missing_logged_ = false;
  std::string not_ready_reason_ = "starting";
};

}  // namespace tenantdb::sidecar
