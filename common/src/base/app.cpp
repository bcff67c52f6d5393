#include "tenantdb/app.hpp"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "tenantdb/credentials.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/log.hpp"
#include "tenantdb/naming.hpp"
#include "tenantdb/retry.hpp"

#ifndef TENANTDB_VERSION
#define TENANTDB_VERSION "0.0.0"
#endif

namespace tenantdb {

const char* version() noexcept {
  return TENANTDB_VERSION;
}

std::string default_secret_name(std::string_view tenant) {
  return "vc-db-" + std::string(tenant);
}

std::string default_ca_file(const std::string& ca_file, const std::string& output_dir) {
  if (!ca_file.empty()) return ca_file;
  if (output_dir.empty()) return {};
  return output_dir + "/" + keys::ca_cert;
}

void harden_process() noexcept {
  // RLIMIT_CORE first: should dumpable ever be set again (setuid/setgid exec does), there
  // is still no core. Both limits 0, so the process cannot raise it back.
  const rlimit no_core{0, 0};
  if (::setrlimit(RLIMIT_CORE, &no_core) != 0)
    log::warn("could not turn core dumps off (RLIMIT_CORE)", {{"error", std::strerror(errno)}});
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
    log::warn("could not make the process non-dumpable (PR_SET_DUMPABLE)", {{"error", std::strerror(errno)}});
}

int run_main(const std::function<int()>& body) {
  try {
    return body();
  } catch (const error& e) {
    const int code = static_cast<int>(e.code());
    if (e.key().empty()) {
      log::error(e.what(), {{"error", to_string(e.kind())}, {"exit_code", code}});
    } else {
      log::error(e.what(), {{"error", to_string(e.kind())}, {"about", e.key()}, {"exit_code", code}});
    }
    return code;
  } catch (const std::exception& e) {
    log::error(std::string("internal error: ") + e.what(), {{"error", "internal"}, {"exit_code", 1}});
    return static_cast<int>(exit_code::internal);
  }
}

int usage_error(std::string message) {
  constexpr std::size_t max_quoted = 160;
  if (message.size() > max_quoted) message = message.substr(0, max_quoted) + "...";
  log::error(message + " (see --help)", {{"error", "usage"}, {"exit_code", static_cast<int>(exit_code::usage)}});
  return static_cast<int>(exit_code::usage);
}

kube_config find_kube_config(const std::string& kubeconfig_path) {
  std::string path = kubeconfig_path;
  if (path.empty())
    if (const char* env = std::getenv("KUBECONFIG"); env != nullptr) path = env;
  if (!path.empty()) return load_kubeconfig(path);
  return in_cluster_config();
}

std::string resolve_namespace(const std::string& flag, const std::string& fallback) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("POD_NAMESPACE"); env != nullptr && *env != '\0') return env;
  return fallback;
}

connector_data fetch_connector(kube_client& client, const std::string& reference, const std::string& default_namespace,
                               std::chrono::steady_clock::time_point deadline) {
  std::string ns = default_namespace;
  std::string name = reference;
  if (const auto slash = reference.find('/'); slash != std::string::npos) {
    ns = reference.substr(0, slash);
    name = reference.substr(slash + 1);
  }
  if (!is_dns1123_label(ns) || !is_dns1123_subdomain(name))
    throw error(error_kind::usage, "--connector must be NAME or NAMESPACE/NAME of a Secret").about("--connector");
  std::optional<secret_object> object;
  retry_until(deadline, "read connector secret " + ns + "/" + name, [&] { object = client.get_secret(ns, name); });
  if (!object)
    throw error(error_kind::connector,
                "connector secret " + ns + "/" + name + " does not exist: create it (see examples/) or fix --connector")
        .about("--connector");
  connector_data data;
  for (auto& [key, value] : object->data) data.emplace(key, value.reveal());
  return data;
}

}  // namespace tenantdb
