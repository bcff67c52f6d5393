#pragma once
/// \file
/// The connector: address and admin credentials of a shared database server, as a
/// platform team keeps them in one Kubernetes Secret.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "tenantdb/limits.hpp"
#include "tenantdb/secret.hpp"

namespace tenantdb {

/// Database engine family. MariaDB and MySQL speak one protocol and share an engine.
enum class engine_type { postgres, mysql };

/// How the connection to the database server is protected. verify_full is the default:
/// the server's certificate chain and host name are checked.
enum class tls_mode {
  disable,      ///< no TLS (explicit opt-out only)
  allow,        ///< PostgreSQL "allow": TLS only if the server insists
  prefer,       ///< PostgreSQL "prefer": TLS if the server offers it, unverified
  require,      ///< TLS, certificate not verified
  verify_ca,    ///< TLS, chain verified, host name not checked
  verify_full,  ///< TLS, chain and host name verified
};

/// An engine as a connector or the credentials name it.
struct engine_kind {
  engine_type type = engine_type::postgres;
  bool mariadb = false;  ///< named "mariadb" (affects only messages)
};

/// The one rule for the `type` key, in the connector and in the credentials alike:
/// postgres, postgresql, mysql or mariadb, in any case. std::nullopt otherwise. A missing
/// key is an error in both places, which their callers report with their own wording.
std::optional<engine_kind> parse_engine_type(std::string_view text);

/// Where and how to reach a database server, without credentials.
struct server_address {
  engine_type type = engine_type::postgres;
  bool mariadb = false;  ///< the connector said "mariadb" (affects only messages)
  std::string host;
  std::uint16_t port = 0;
  tls_mode tls = tls_mode::verify_full;
  /// PEM CA bundle to verify the server with; empty means the system's CA bundle.
  std::string ca_pem;
  /// PostgreSQL database the admin connects to (default "postgres"); unused for MySQL.
  std::string admin_database;
};

/// A parsed, validated connector.
struct connector {
  server_address server;
  std::string admin_user;
  secret admin_password;
  /// The connector uses the vCluster Platform's keys (endpoint, user, password) and none
  /// of host, port, adminUser, adminPassword: the Platform's defaults applied (a blank
  /// type is mysql; without sslMode/tls, TLS without verification and one warning).
  bool platform_keys = false;
  /// Platform-wide limits of every tenant's login accounts (maxConnections,
  /// statementTimeout, idleInTransactionTimeout; the documented defaults where a key is
  /// absent). The timeouts are PostgreSQL's: zero on MySQL/MariaDB.
  tenant_limits limits = default_limits();
  /// deletionPolicy: what deprovisioning does by default with every tenant of this
  /// connector, "retain" or "delete"; empty when the key is absent (retain).
  std::string deletion_policy;
};

/// Raw connector data: Secret keys to values (already base64-decoded).
using connector_data = std::map<std::string, std::string, std::less<>>;

/// Validates and normalises connector data. Accepts this project's keys (type, host,
/// port, adminUser, adminPassword, sslMode, tls, caCert, database, maxConnections,
/// statementTimeout, idleInTransactionTimeout, deletionPolicy) and the vCluster
/// Platform connector's (endpoint, user, password, type, caCert, sslMode). A connector
/// in the Platform's keys only (see connector::platform_keys) behaves as the Platform
/// documents it: blank or missing type means mysql, and without sslMode/tls the TLS mode
/// is require (encrypted, not verified; one warning line says so and names sslMode).
/// This project's own keys keep requiring type and default to verify-full. Throws
/// tenantdb::error (kind connector, about = the key) with one line naming the key and
/// what is wrong; secret values are never quoted. `data` is wiped on return.
connector parse_connector(connector_data&& data);

/// Reads a connector from a Secret volume directory (one file per key; hidden entries
/// such as ..data are skipped) or from a file holding a Kubernetes Secret manifest or a
/// flat map, in YAML or JSON. Throws tenantdb::error (connector) on unreadable input.
connector_data read_connector_path(const std::filesystem::path& path);

/// The system CA bundle used when a connector verifies TLS but has no caCert:
/// $SSL_CERT_FILE if set, else Debian's /etc/ssl/certs/ca-certificates.crt.
std::string system_ca_file();

/// Default port of an engine.
std::uint16_t default_port(engine_type type) noexcept;

/// "postgres" or "mysql" ("mariadb" when the connector said so).
std::string_view engine_name(const server_address& server) noexcept;

/// libpq's name of a TLS mode ("verify-full", ...).
std::string_view to_string(tls_mode mode) noexcept;

/// Throws tenantdb::error (connector) unless `pem` holds at least one parseable X.509
/// certificate and nothing that is not PEM.
void validate_ca_pem(std::string_view pem, std::string_view key);

}  // namespace tenantdb
