#pragma once
/// \file
/// The init's Kubernetes Events: Provisioned, Repaired, TLSNotVerified and Failed, with
/// names, reasons and the key to fix only (never a password or connector value).

#include <exception>
#include <string>

#include "tenantdb/connector.hpp"
#include "tenantdb/events.hpp"
#include "tenantdb/init_options.hpp"
#include "tenantdb/provision.hpp"

namespace tenantdb {

/// A Warning TLSNotVerified when the connector does not verify the database server,
/// naming sslMode (and caCert) as the fix and saying when the vCluster Platform's default
/// is why.
void emit_tls_event(event_recorder& events, const connector& conn, const init_options& options);

/// Provisioned (Normal) when this run set passwords or wrote the store (a run that
/// changed nothing sends none), then one Repaired (Normal) per repair this run made.
void emit_provision_events(event_recorder& events, const provision_result& result, const std::string& secret);

/// The Failed Event's message for the error that ends the init: the error's own text
/// (tenantdb's errors name keys and objects, never values) and the key to fix.
std::string failure_event_message(const std::exception& e);

/// True for what failed at run time (database, unreachable server, refused login, a bug);
/// false for refused input (flags, connector, a foreign Secret, another owner's objects,
/// unsafe directories), which must change nothing, not even by an Event.
bool is_runtime_failure(const std::exception& e);

}  // namespace tenantdb
