#include "tenantdb/init_events.hpp"

#include "tenantdb/error.hpp"

namespace tenantdb {

void emit_tls_event(event_recorder& events, const connector& conn, const init_options& options) {
  if (options.provision.dry_run) return;  // a dry run writes nothing, not even an Event
  const tls_mode mode = conn.server.tls;
  if (mode == tls_mode::verify_ca || mode == tls_mode::verify_full) return;
  const std::string source = options.connector_file.empty() ? "connector " + options.connector : "the connector file";
  std::string message = "TLS to the database server " + conn.server.host + " is not verified (sslMode " +
                        std::string(to_string(mode)) + ")";
  if (conn.platform_keys) message += ": the vCluster Platform's default for a connector without sslMode";
  message += "; set sslMode: verify-full (and caCert) in " + source + " to verify the server";
  events.warning("TLSNotVerified", "Provision", message);
}

void emit_provision_events(event_recorder& events, const provision_result& result, const std::string& secret) {
  // A run that changed nothing (a restarted pod) reports nothing: the Event says what was done.
  if (result.password_set || result.store_written)
    events.normal(event_reasons::provisioned, "Provision",
                  "database " + result.names.database + " ready for " + parse_record(result.data).user +
                      "; credentials in Secret " + secret);
  for (const auto& repair : result.repairs) events.normal(event_reasons::repaired, "Repair", repair);
}

bool is_runtime_failure(const std::exception& e) {
  const auto* failure = dynamic_cast<const error*>(&e);
  if (failure == nullptr) return true;
  switch (failure->kind()) {
    case error_kind::database:
    case error_kind::unavailable:
    case error_kind::verification:
    case error_kind::internal: return true;
    default: return false;
  }
}

std::string failure_event_message(const std::exception& e) {
  std::string message = std::string("provisioning failed: ") + e.what();
  if (const auto* tenantdb_error = dynamic_cast<const error*>(&e); tenantdb_error != nullptr) {
    if (!tenantdb_error->key().empty()) message += " (fix: " + tenantdb_error->key() + ")";
  }
  return message;
}

}  // namespace tenantdb
