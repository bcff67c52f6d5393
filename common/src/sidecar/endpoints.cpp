#include "sidecar/endpoints.hpp"

#include <string>

namespace tenantdb::sidecar {
namespace {

std::string path_of(const std::string& target) {
  return target.substr(0, target.find('?'));
}

http::response method_not_allowed(const char* allow) {
  http::response r{405, "text/plain; charset=utf-8", "method not allowed\n", {}};
  r.headers.emplace_back("Allow", allow);
  return r;
}

// A connection flood against --listen shows here, not as failed probes.
std::string connection_metrics(const http::server& server) {
  const auto c = server.stats();
  std::string out;
  out.append(
      "# HELP tenantdb_http_connections_closed_total Connections to --listen closed early: evicted (idle or "
      "slow, to make room for a new one), refused (no room), timeout (the request did not arrive in time).\n");
  out.append("# TYPE tenantdb_http_connections_closed_total counter\n");
  out.append("tenantdb_http_connections_closed_total{reason=\"evicted\"} ")
      .append(std::to_string(c.dropped))
      .append("\n");
  out.append("tenantdb_http_connections_closed_total{reason=\"refused\"} ")
      .append(std::to_string(c.refused))
      .append("\n");
  out.append("tenantdb_http_connections_closed_total{reason=\"timeout\"} ")
      .append(std::to_string(c.timed_out))
      .append("\n");
  return out;
}

}  // namespace

http::response serve_probe(const http::request& req, const sidecar_status& status, const http::server* server) {
  const std::string path = path_of(req.target);
  const bool known = path == "/healthz" || path == "/readyz" || path == "/metrics";
  if (!known) return {404, "text/plain; charset=utf-8", "not found\n", {}};
  if (req.method != "GET" && req.method != "HEAD") return method_not_allowed("GET, HEAD");
  if (path == "/healthz") return {200, "text/plain; charset=utf-8", "ok\n", {}};
  if (path == "/readyz") {
    if (status.ready()) {
      const std::string note = status.ready_note();
      return {200, "text/plain; charset=utf-8", note.empty() ? "ready\n" : "ready (" + note + ")\n", {}};
    }
    return {503, "text/plain; charset=utf-8", "not ready: " + status.reason() + "\n", {}};
  }
  std::string body = status.metrics();
  if (server != nullptr) body += connection_metrics(*server);
  return {200, "text/plain; version=0.0.4; charset=utf-8", std::move(body), {}};
}

admin_answer serve_admin(const http::request& req) {
  const std::string path = path_of(req.target);
  if (path != "/rotate") return {{404, "text/plain; charset=utf-8", "not found\n", {}}, false};
  if (req.method != "POST") return {method_not_allowed("POST"), false};
  return {{202, "text/plain; charset=utf-8", "rotation requested\n", {}}, true};
}

}  // namespace tenantdb::sidecar
