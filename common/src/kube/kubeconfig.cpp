#include <cerrno>
#include <string_view>
#include <system_error>

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include "base/base64.hpp"
#include "base/small_file.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/kube.hpp"

namespace tenantdb {
namespace {

constexpr std::size_t max_kubeconfig_bytes = std::size_t{16} << 20;
constexpr std::size_t max_referenced_file_bytes = std::size_t{4} << 20;

/// Reads one kubeconfig and reports problems by key.
class kubeconfig_reader {
public:
  explicit kubeconfig_reader(std::filesystem::path path) : path_(std::move(path)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& problem) const {
    throw error(error_kind::kubernetes, "kubeconfig " + path_.string() + ": " + key + " " + problem).about(key);
  }

  YAML::Node load() {
    std::string text;
    if (const int rc = read_small_file(path_, max_kubeconfig_bytes, text); rc != 0)
      throw error(error_kind::kubernetes,
                  "cannot read kubeconfig " + path_.string() + ": " + std::generic_category().message(rc))
          .about("--kubeconfig");
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      wipe(text);
      // yaml-cpp's message names line and column, not the content.
      throw error(error_kind::kubernetes, "kubeconfig " + path_.string() + " is not valid YAML: " + e.what())
          .about("--kubeconfig");
    }
    wipe(text);
    if (!root.IsMap())
      throw error(error_kind::kubernetes, "kubeconfig " + path_.string() + " is not a YAML mapping")
          .about("--kubeconfig");
    return root;
  }

  /// A string value, or empty if the key is absent or null.
  std::string string_at(const YAML::Node& node, const char* key, const std::string& key_path) const {
    const YAML::Node value = node[key];
    if (!value || value.IsNull()) return {};
    if (!value.IsScalar()) fail(key_path, "must be a string");
    return value.Scalar();
  }

  bool bool_at(const YAML::Node& node, const char* key, const std::string& key_path) const {
    const YAML::Node value = node[key];
    if (!value || value.IsNull()) return false;
    bool result = false;
    if (!value.IsScalar() || !YAML::convert<bool>::decode(value, result)) fail(key_path, "must be true or false");
    return result;
  }

  bool present(const YAML::Node& node, const char* key) const {
    const YAML::Node value = node[key];
    return value && !value.IsNull();
  }

  /// The `inner` mapping of the entry of `list` named `name` (contexts/clusters/users).
  YAML::Node named_entry(const YAML::Node& root, const char* list, const char* inner, const std::string& name,
                         const std::string& referenced_by) const {
    const YAML::Node entries = root[list];
    if (entries && !entries.IsNull() && !entries.IsSequence()) fail(list, "must be a list");
    if (entries && entries.IsSequence()) {
      for (const YAML::Node& entry : entries) {
        if (!entry.IsMap()) fail(list, "holds an entry that is not a mapping");
        if (string_at(entry, "name", std::string(list) + "[].name") != name) continue;
        const YAML::Node value = entry[inner];
        const std::string key_path = entry_path(list, name) + "." + inner;
        if (!value || value.IsNull()) return YAML::Node(YAML::NodeType::Map);
        if (!value.IsMap()) fail(key_path, "must be a mapping");
        return value;
      }
    }
    fail(list, "has no entry named \"" + name + "\" (referenced by " + referenced_by + ")");
  }

  static std::string entry_path(const char* list, const std::string& name) {
    return std::string(list) + "[name=\"" + name + "\"]";
  }

  std::filesystem::path resolve(const std::string& file) const {
    std::filesystem::path p(file);
    if (p.is_relative()) p = path_.parent_path() / p;
    return p;
  }

  /// The bytes of `<key>` (a file path, relative to the kubeconfig) or `<key>-data`
  /// (base64). The result may be a private key: the caller takes care of it.
  std::string file_or_data(const YAML::Node& node, const std::string& key, const std::string& base_path) const {
    const std::string data_key = key + "-data";
    const std::string file = string_at(node, key.c_str(), base_path + "." + key);
    std::string data = string_at(node, data_key.c_str(), base_path + "." + data_key);
    if (!file.empty() && !data.empty()) {
      wipe(data);
      fail(base_path + "." + key, "and " + data_key + " are both set; keep one");
    }
    if (!data.empty()) {
      // Wrapped base64 is common in hand-edited files; the alphabet has no whitespace.
      std::string compact;
      compact.reserve(data.size());
      for (const char c : data)
        if (c != '\n' && c != '\r' && c != ' ' && c != '\t') compact.push_back(c);
      wipe(data);
      auto decoded = base64_decode(compact);
      wipe(compact);
      if (!decoded) fail(base_path + "." + data_key, "is not valid base64");
      std::string out = std::move(*decoded);
      wipe(*decoded);
      return out;
    }
    if (!file.empty()) {
      const std::filesystem::path resolved = resolve(file);
      std::string out;
      if (const int rc = read_small_file(resolved, max_referenced_file_bytes, out); rc != 0)
        fail(base_path + "." + key,
             "names " + resolved.string() + ", which cannot be read: " + std::generic_category().message(rc));
      return out;
    }
    return {};
  }

private:
  std::filesystem::path path_;
};

}  // namespace

kube_config load_kubeconfig(const std::filesystem::path& path, const std::string& context) {
  kubeconfig_reader reader(path);
  const YAML::Node root = reader.load();

  std::string context_name = context;
  std::string context_source = "--context";
  if (context_name.empty()) {
    context_name = reader.string_at(root, "current-context", "current-context");
    context_source = "current-context";
    if (context_name.empty()) reader.fail("current-context", "is not set; pass --context");
  }
  const YAML::Node ctx = reader.named_entry(root, "contexts", "context", context_name, context_source);
  const std::string ctx_path = kubeconfig_reader::entry_path("contexts", context_name) + ".context";
  const std::string cluster_name = reader.string_at(ctx, "cluster", ctx_path + ".cluster");
  if (cluster_name.empty()) reader.fail(ctx_path + ".cluster", "is not set");
  const std::string user_name = reader.string_at(ctx, "user", ctx_path + ".user");
  if (user_name.empty()) reader.fail(ctx_path + ".user", "is not set (anonymous access is not supported)");

  kube_config config;
  config.namespace_name = reader.string_at(ctx, "namespace", ctx_path + ".namespace");
  if (config.namespace_name.empty()) config.namespace_name = "default";

  // Cluster: where, and which CA to trust.
  const YAML::Node cluster = reader.named_entry(root, "clusters", "cluster", cluster_name, ctx_path + ".cluster");
  const std::string cluster_path = kubeconfig_reader::entry_path("clusters", cluster_name) + ".cluster";
  config.server = reader.string_at(cluster, "server", cluster_path + ".server");
  if (config.server.empty()) reader.fail(cluster_path + ".server", "is not set");
  if (config.server.rfind("https://", 0) != 0)
    reader.fail(cluster_path + ".server", "must be an https:// URL (plain HTTP is not supported)");
  if (reader.bool_at(cluster, "insecure-skip-tls-verify", cluster_path + ".insecure-skip-tls-verify"))
    reader.fail(cluster_path + ".insecure-skip-tls-verify",
                "is true; tenantdb always verifies the API server's certificate: set certificate-authority or "
                "certificate-authority-data instead");
  if (reader.present(cluster, "tls-server-name"))
    reader.fail(cluster_path + ".tls-server-name",
                "is not supported; use a server URL whose host the certificate names");
  if (reader.present(cluster, "proxy-url"))
    reader.fail(cluster_path + ".proxy-url", "is not supported; set HTTPS_PROXY instead");
  config.ca_pem = reader.file_or_data(cluster, "certificate-authority", cluster_path);

  // User: a bearer token, a token file, or a client certificate.
  const YAML::Node user = reader.named_entry(root, "users", "user", user_name, ctx_path + ".user");
  const std::string user_path = kubeconfig_reader::entry_path("users", user_name) + ".user";
  for (const char* unsupported : {"exec", "auth-provider"}) {
    if (reader.present(user, unsupported))
      reader.fail(user_path + "." + unsupported,
                  "is not supported: only token (token, tokenFile) and client-certificate authentication are "
                  "supported; use a ServiceAccount token or a client certificate");
  }
  if (reader.present(user, "username") || reader.present(user, "password"))
    reader.fail(user_path + ".username",
                "(basic auth) is not supported: only token and client-certificate "
                "authentication are supported");
  for (const char* unsupported : {"as", "as-uid", "as-groups", "as-user-extra"}) {
    if (reader.present(user, unsupported))
      reader.fail(user_path + "." + unsupported, "(impersonation) is not supported");
  }

  std::string token = reader.string_at(user, "token", user_path + ".token");
  config.token = secret(std::move(token));
  wipe(token);
  const std::string token_file = reader.string_at(user, "tokenFile", user_path + ".tokenFile");
  if (!token_file.empty()) {
    // Re-read before each request, like client-go; it must be readable now.
    config.token_file = reader.resolve(token_file);
    std::string probe;
    const int rc = read_small_file(config.token_file, max_referenced_file_bytes, probe);
    wipe(probe);
    if (rc != 0)
      reader.fail(user_path + ".tokenFile", "names " + config.token_file.string() +
                                                ", which cannot be read: " + std::generic_category().message(rc));
  }

  config.client_cert_pem = reader.file_or_data(user, "client-certificate", user_path);
  std::string key = reader.file_or_data(user, "client-key", user_path);
  config.client_key_pem = secret(std::move(key));
  wipe(key);
  if (!config.client_cert_pem.empty() && config.client_key_pem.empty())
    reader.fail(user_path + ".client-key", "is not set, but client-certificate is (set client-key or client-key-data)");
  if (config.client_cert_pem.empty() && !config.client_key_pem.empty())
    reader.fail(user_path + ".client-certificate",
                "is not set, but client-key is (set client-certificate or client-certificate-data)");
  if (config.token.empty() && config.token_file.empty() && config.client_cert_pem.empty())
    reader.fail(user_path, "has no token, tokenFile or client-certificate; one of them is needed");
  return config;
}

}  // namespace tenantdb
