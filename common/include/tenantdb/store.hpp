#pragma once
/// \file
/// Where the credentials' source of truth lives: the credentials Secret in Kubernetes,
/// or a directory in local mode. Writes are conditional, so concurrent inits and
/// sidecar replicas agree on one set of credentials without relying on timing.

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "tenantdb/credentials.hpp"

namespace tenantdb {

class kube_client;

/// What a store holds, with the version a conditional write must name.
struct stored_credentials {
  credential_data data;
  std::string version;
  std::map<std::string, std::string> annotations;
};

/// The credentials' source of truth.
class credential_store {
public:
  credential_store() = default;
  credential_store(const credential_store&) = delete;
  credential_store& operator=(const credential_store&) = delete;
  virtual ~credential_store() = default;

  /// The current content, or std::nullopt if there is none.
  virtual std::optional<stored_credentials> load() = 0;
  /// Creates the content and returns its version; std::nullopt, changing nothing, if it
  /// already exists.
  virtual std::optional<std::string> create(const credential_data& data,
                      const std::map<std::string, std::string>& annotations) = 0;
  /// Replaces the content if its version is still `version`, and returns the new version;
  /// std::nullopt, changing nothing, if someone else wrote in between.
  virtual std::optional<std::string> replace(const credential_data& data,
                       const std::map<std::string, std::string>& annotations,
                       const std::string& version) = 0;
  /// "secret ns/name" or "directory /path", for messages.
  virtual std::string describe() const = 0;
};

/// The credentials Secret. Labels name the tenant and app.kubernetes.io/managed-by.
std::unique_ptr<credential_store> make_secret_store(kube_client& client, std::string namespace_name,
                                                    std::string name,
                                                    std::map<std::string, std::string> labels);

/// A directory in publish_directory's layout, for local mode. Writers serialise on a
/// lock file beside it; the version is the name of the data directory ..data points at.
std::unique_ptr<credential_store> make_directory_store(std::filesystem::path dir,
                                                       directory_options options = {});

}  // namespace tenantdb
