#pragma once
/// \file
/// What the process-level tests share: a pod's view of the Kubernetes API stand-in (token,
/// RBAC, connector Secret, kubeconfig) and small helpers for driving tenantdb's binaries
/// and HTTP endpoints.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "eventually.hpp"
#include "kube_standin.hpp"

namespace tenantdb::test {

/// Standard base64 (RFC 4648, padded), as in a Secret's data.
std::string base64(const std::string& in);

/// The connector directory of a test server (<testdb_dir>/<which>.connector) as the JSON
/// of an Opaque Secret `ns/name`.
std::string connector_secret_json(const std::string& which, const std::string& ns, const std::string& name);

/// The namespace, service account and Secret names a tenant's pod uses.
struct pod_identity {
  std::string token = "pod-test-token-5e1b";
  std::string user = "system:serviceaccount:team-a:tenantdb";
  std::string ns = "team-a";
  std::string connector_ns = "platform";
  std::string connector_name = "db-connector";
};

/// Grants `who` what manifests/rbac.yaml grants (get the connector; get and update the
/// tenant's credentials Secret `secret_name`; create on Events in its namespace) plus create
/// on Secrets in its namespace, the
/// Role for a credentials Secret that is not pre-created; registers the token, and puts
/// the connector Secret of test server `which` into the API.
void set_up_pod(KubeStandin& api, const pod_identity& who, const std::string& which, const std::string& secret_name);

/// Writes a kubeconfig at `path` that reaches `api` with `who`'s token, CA verified.
void write_kubeconfig(const std::filesystem::path& path, const KubeStandin& api, const pod_identity& who);

/// One plain-HTTP exchange with 127.0.0.1:port on a fresh connection ("Connection: close",
/// so the body ends at EOF); status 0 when it could not connect. `extra` holds header lines
/// ("Name: value\r\n"); without it a POST carries "Content-Length: 0".
struct http_reply {
  int status = 0;
  std::string headers;
  std::string body;
};
http_reply http(std::uint16_t port, const std::string& method, const std::string& path, const std::string& extra = {});

/// A TCP socket bound to `source` (a loopback address such as 127.0.0.2) and connected to
/// 127.0.0.1:port, so tests can speak from several addresses; -1 on failure.
int connect_from(const std::string& source, std::uint16_t port);

/// An annotation of Secret ns/name in `api`; "" when absent (the rotator blanks removed ones).
std::string secret_annotation(const KubeStandin& api, const std::string& ns, const std::string& name,
                              const std::string& key);

/// "" when none of `passwords` appears in `text` raw, URL-encoded or base64-encoded;
/// else which one (by index) and in which form, never the password itself.
std::string find_password(const std::string& text, const std::vector<std::string>& passwords);

/// The last `lines` lines of `text`.
std::string tail(const std::string& text, std::size_t lines);

}  // namespace tenantdb::test
