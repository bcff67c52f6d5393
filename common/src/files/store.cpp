#include "tenantdb/store.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/unique_fd.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/kube.hpp"
#include "tenantdb/secret_watch.hpp"

namespace tenantdb {
namespace {

constexpr int http_conflict = 409;

// What kube-apiserver's token controller keys a ServiceAccount token Secret on; an Opaque
// Secret carrying them is refused too.
constexpr const char* service_account_annotations[] = {"kubernetes.io/service-account.name",
                                                       "kubernetes.io/service-account.uid"};

// The only Secret type tenantdb writes or adopts. The API server defaults a missing type to
// Opaque, so an empty one (never seen from a real server) is Opaque as well.
bool opaque(const std::string& type) {
  return type.empty() || type == "Opaque";
}

class secret_store final : public credential_store {
public:
  secret_store(kube_client& client, std::string ns, std::string name, std::map<std::string, std::string> labels,
               secret_watcher* watch = nullptr, std::chrono::milliseconds resync = {})
      : client_(client),
        ns_(std::move(ns)),
        name_(std::move(name)),
        labels_(std::move(labels)),
        watch_(watch),
        resync_(resync) {}

  std::optional<stored_credentials> load() override {
    std::optional<secret_object> object;
    if (answer_from_watch(object)) {
      if (!object) return std::nullopt;
    } else {
      object = client_.get_secret(ns_, name_);
      last_get_ = std::chrono::steady_clock::now();
      if (watch_ != nullptr) watch_->observe(object);
      if (!object) return std::nullopt;
    }
    refuse_foreign(*object);
    stored_credentials out{object->data, object->resource_version, object->annotations};
    last_ = std::move(object);
    return out;
  }

  std::optional<std::string> create(const credential_data& data,
                                    const std::map<std::string, std::string>& annotations) override {
    secret_object object;
    object.namespace_name = ns_;
    object.name = name_;
    object.type = "Opaque";  // explicit: never whatever the API would default to
    object.labels = labels_;
    object.annotations = annotations;
    object.data = data;
    try {
      last_ = client_.create_secret(object);
      if (watch_ != nullptr) watch_->observe(last_);
      return last_->resource_version;
    } catch (const error& e) {
      if (e.http_status() == http_conflict) return std::nullopt;  // AlreadyExists: another writer won
      throw;
    }
  }

  std::optional<std::string> replace(const credential_data& data, const std::map<std::string, std::string>& annotations,
                                     const std::string& version) override {
    secret_object object;
    // Keep labels and annotations others put on the Secret; PUT replaces the whole object.
    if (last_ && last_->resource_version == version) {
      object.labels = last_->labels;
      object.annotations = last_->annotations;
      object.type = last_->type;
    }
    for (const auto& [k, v] : labels_) object.labels[k] = v;
    for (const auto& [k, v] : annotations) object.annotations[k] = v;
    object.namespace_name = ns_;
    object.name = name_;
    object.resource_version = version;
    object.data = data;
    try {
      last_ = client_.update_secret(object);
      if (watch_ != nullptr) watch_->observe(last_);
      return last_->resource_version;
    } catch (const error& e) {
      if (e.http_status() == http_conflict) return std::nullopt;  // Conflict: changed since `version`
      if (e.http_status() == 404) return std::nullopt;            // deleted meanwhile: next load sees that
      throw;
    }
  }

  std::string describe() const override { return "secret " + ns_ + "/" + name_; }

private:
  // A Secret of another type (a ServiceAccount token put in place of the credentials
  // Secret, say) is never adopted: its keys would reach the workload's files. One line
  // naming the Secret and what is wrong; no value is quoted.
  void refuse_foreign(const secret_object& object) const {
    std::string why;
    if (!opaque(object.type)) {
      why = "has type \"" + object.type.substr(0, 64) + "\", not Opaque";
    } else {
      for (const char* key : service_account_annotations)
        if (object.annotations.count(key) != 0) {
          why = std::string("carries the ServiceAccount annotation ") + key;
          break;
        }
    }
    if (why.empty()) return;
    foreign_store_error e(error_kind::kubernetes,
                          "the credentials " + describe() + " " + why +
                              ": it is not tenantdb's and is not used; find out who replaced it, then delete it "
                              "(tenantdb-init recreates it, or re-apply the manifests' empty Opaque Secret)");
    e.about(describe());
    throw e;  // by value of its own type: about() returns error&, which would slice
  }

  // While the watch streams, the Secret as it last saw it, without a request; a GET
  // (false) while it does not, and once every `resync_` even while it does.
  bool answer_from_watch(std::optional<secret_object>& object) const {
    if (watch_ == nullptr) return false;
    if (!last_get_ || std::chrono::steady_clock::now() - *last_get_ >= resync_) return false;
    secret_watcher::snapshot snap = watch_->current();
    if (!snap.live || !snap.known) return false;
    object = std::move(snap.object);
    return true;
  }

  kube_client& client_;
  std::string ns_;
  std::string name_;
  std::map<std::string, std::string> labels_;
  std::optional<secret_object> last_;
  secret_watcher* watch_ = nullptr;
  std::chrono::milliseconds resync_{};
  std::optional<std::chrono::steady_clock::time_point> last_get_;
};

// Annotations ride along as a hidden file (readers of Secret volumes skip dotfiles) so
// local mode keeps rotation state too.
constexpr const char* annotations_key = ".tenantdb-annotations";

class directory_store final : public credential_store {
public:
  directory_store(std::filesystem::path dir, directory_options options) : dir_(std::move(dir)), options_(options) {}

  std::optional<stored_credentials> load() override {
    auto guard = lock();
    return load_locked();
  }

  std::optional<std::string> create(const credential_data& data,
                                    const std::map<std::string, std::string>& annotations) override {
    auto guard = lock();
    if (load_locked()) return std::nullopt;
    publish_directory(dir_, with_annotations(data, annotations), options_);
    return current_version();
  }

  std::optional<std::string> replace(const credential_data& data, const std::map<std::string, std::string>& annotations,
                                     const std::string& version) override {
    auto guard = lock();
    auto current = load_locked();
    if (!current || current->version != version) return std::nullopt;
    // Merged as the Secret store merges (see credential_store::replace): what is not named stays.
    annotation_map merged = std::move(current->annotations);
    for (const auto& [k, v] : annotations) merged[k] = v;
    publish_directory(dir_, with_annotations(data, merged), options_);
    return current_version();
  }

  std::string describe() const override { return "directory " + dir_.string(); }

private:
  unique_fd lock() {
    // Refuses a directory someone else could write before anything is created in it.
    check_credential_directory(dir_, true, options_.dir_mode);
    const auto path = dir_ / "..tenantdb.store.lock";
    unique_fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600));
    struct stat st {};
    if (fd && (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)))
      throw error(error_kind::output, "refusing the credential directory " + dir_.string() + ": " +
                                          path.filename().string() + " is not a regular file")
          .about(dir_.string());
    if (!fd || ::flock(fd.get(), LOCK_EX) != 0)
      throw error(error_kind::output, "cannot lock " + path.string() + ": " + std::strerror(errno))
          .about(dir_.string());
    return fd;
  }

  // The data directory ..data points at names the generation.
  std::string current_version() const {
    char target[4096];
    const ssize_t n = ::readlink((dir_ / "..data").c_str(), target, sizeof target - 1);
    return n <= 0 ? std::string() : std::string(target, static_cast<std::size_t>(n));
  }

  std::optional<stored_credentials> load_locked() {
    stored_credentials out;
    out.version = current_version();
    if (out.version.empty()) return std::nullopt;
    out.data = read_directory(dir_);
    if (auto it = out.data.find(annotations_key); it != out.data.end()) {
      // One "key=value" per line; keys and values never hold newlines.
      const std::string& text = it->second.reveal();
      std::size_t start = 0;
      while (start < text.size()) {
        const auto end = text.find('\n', start);
        const std::string line = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (const auto eq = line.find('='); eq != std::string::npos)
          out.annotations[line.substr(0, eq)] = line.substr(eq + 1);
        if (end == std::string::npos) break;
        start = end + 1;
      }
      out.data.erase(it);
    }
    return out;
  }

  static credential_data with_annotations(const credential_data& data,
                                          const std::map<std::string, std::string>& annotations) {
    credential_data out = data;
    if (!annotations.empty()) {
      std::string text;
      for (const auto& [k, v] : annotations) text += k + "=" + v + "\n";
      out[annotations_key] = secret(std::move(text));
    }
    return out;
  }

  std::filesystem::path dir_;
  directory_options options_;
};

}  // namespace

const std::string* annotation_value(const annotation_map& annotations, std::string_view key) {
  const auto it = annotations.find(std::string(key));
  return it == annotations.end() || it->second.empty() ? nullptr : &it->second;
}

void remove_annotation(annotation_map& annotations, std::string_view key) {
  if (const auto it = annotations.find(std::string(key)); it != annotations.end()) it->second.clear();
}

std::unique_ptr<credential_store> make_secret_store(kube_client& client, std::string namespace_name, std::string name,
                                                    std::map<std::string, std::string> labels) {
  return std::make_unique<secret_store>(client, std::move(namespace_name), std::move(name), std::move(labels));
}

std::unique_ptr<credential_store> make_watched_secret_store(kube_client& client, std::string namespace_name,
                                                            std::string name, std::map<std::string, std::string> labels,
                                                            secret_watcher& watch, std::chrono::milliseconds resync) {
  return std::make_unique<secret_store>(client, std::move(namespace_name), std::move(name), std::move(labels), &watch,
                                        resync);
}

std::unique_ptr<credential_store> make_directory_store(std::filesystem::path dir, directory_options options) {
  return std::make_unique<directory_store>(std::move(dir), options);
}

}  // namespace tenantdb
