#pragma once
// The sidecar's HTTP endpoints: /healthz, /readyz and /metrics on --listen, and
// POST /rotate on the loopback --admin-listen. They answer from the status and report a
// rotation request back to the loop, which decides when to run it.

#include "sidecar/http_server.hpp"
#include "sidecar/status.hpp"

namespace tenantdb::sidecar {

/// Answers /healthz, /readyz and /metrics (GET or HEAD). `server` is the --listen server,
/// whose connection counters /metrics shows; nullptr for none.
http::response serve_probe(const http::request& req, const sidecar_status& status, const http::server* server);

/// What the admin endpoint answered, and whether the loop should run a rotation now.
struct admin_answer {
  http::response response;
  bool rotation_requested = false;
};

/// Answers POST /rotate (202: requested) and nothing else.
admin_answer serve_admin(const http::request& req);

}  // namespace tenantdb::sidecar
