#include "sidecar/publisher.hpp"

#include <filesystem>

#include "tenantdb/formats.hpp"
#include "tenantdb/log.hpp"
#include "tenantdb/rotation.hpp"

namespace tenantdb::sidecar {
namespace {

// What the workload sees: never the standby account, nor a password a rotation in flight
// is setting (during a retire that is the password nobody may have).
credential_data files_view(const credential_data& data) {
  credential_data out = workload_view(data);
  out.erase(pending_password_key);
  return out;
}

// During a dual rotation's grace period the standby account is the previous active one,
// still valid: pgpass keeps a line for it (see render_format). Never after the grace.
std::optional<login> grace_login(const stored_credentials& stored) {
  if (!rotator::grace_ends(stored)) return std::nullopt;
  return parse_record(stored.data).standby();
}

}  // namespace

file_publisher::file_publisher(credential_store& store, const agent_options& options)
    : store_(store), options_(options), store_source_(parse_error_source(options.store_source)) {}

file_publisher::load_outcome file_publisher::load() {
  std::optional<stored_credentials> loaded;
  try {
    loaded = store_.load();
  } catch (const foreign_store_error& e) {
    // Not tenantdb's (a ServiceAccount token Secret in its place): nothing from it is
    // published, and the pod says so until the store is usable again.
    store_refused_ = true;
    return {false, failure{store_source_, "reading the " + store_.describe(), e}};
  } catch (const error& e) {
    return {false, failure{store_source_, "reading the " + store_.describe(), e}};
  }
  store_refused_ = false;
  // An existing Secret with no data is one pre-created for tenantdb-init to fill.
  if (loaded && loaded->data.empty()) loaded.reset();
  if (!loaded) {
    if (!missing_logged_)
      log::warn("the store holds no credentials yet: run tenantdb-init first", {{"store", store_.describe()}});
    missing_logged_ = true;
    if (!in_place_) not_ready_reason_ = "no credentials yet";
    return {};
  }
  missing_logged_ = false;
  current_ = std::move(loaded);
  return {true, std::nullopt};
}

file_publisher::publish_outcome file_publisher::publish() {
  publish_outcome out;
  if (!current_) return out;
  // Republish when the store moved on, or when someone removed the files meanwhile.
  std::error_code ec;
  const bool files_gone = in_place_ && !std::filesystem::is_symlink(options_.output_dir / "..data", ec);
  if (current_->version == published_version_ && !publish_failed_ && !files_gone) return out;

  try {
    const credential_data desired =
        with_formats(files_view(current_->data), options_.formats, options_.ca_file, grace_login(*current_));
    if (!same_data(read_directory(options_.output_dir), desired)) {
      publish_directory(options_.output_dir, desired, options_.files);
      out.result = publish_outcome::files::published;
      log::info("credential files published",
                {{"output_dir", options_.output_dir.string()}, {"version", current_->version}});
    }
    published_ = files_view(current_->data);
  } catch (const error& e) {
    publish_failed_ = true;
    not_ready_reason_ = "cannot write the credential files";
    out.result = publish_outcome::files::failed;
    out.failed = failure{error_source::files, "publishing the credential files", e};
    return out;
  }
  publish_failed_ = false;
  published_version_ = current_->version;
  out.first_in_place = !in_place_;
  in_place_ = true;
  return out;
}

}  // namespace tenantdb::sidecar
