#pragma once
/// \file
/// Data source strings in the format Kine reads.

#include <string>
#include <string_view>

#include "tenantdb/connector.hpp"
#include "tenantdb/secret.hpp"

namespace tenantdb {

/// Percent-encodes every byte outside RFC 3986's unreserved set.
std::string percent_encode(std::string_view text);

/// What a data source is built from.
struct data_source_parts {
  server_address server;
  std::string database;
  std::string user;
  const secret* password = nullptr;
  /// Path of the CA file as the workload sees it; added to a PostgreSQL URL as
  /// sslrootcert when the server is verified with a connector CA.
  std::string ca_file;
};

/// go-sql-driver/mysql's `tls` DSN parameter for a TLS mode: `false` (disable),
/// `preferred` (allow, prefer: TLS if offered, unverified, plaintext fallback),
/// `skip-verify` (require: TLS, unverified), `true` (verify-ca and verify-full: chain
/// against the system roots and host name; go-sql-driver has no chain-only mode).
std::string_view go_mysql_tls(tls_mode mode) noexcept;

/// Kine's dataSource. PostgreSQL: a URL
/// `postgres://user:pass@host:port/db?sslmode=...[&sslrootcert=...]` with user and
/// password percent-encoded (Kine parses it with net/url). MySQL/MariaDB:
/// `mysql://user:pass@tcp(host:port)/db?tls=...` with the password verbatim, because Kine
/// strips the scheme and go-sql-driver's DSN parser takes it without decoding; `tls` says
/// the connection's TLS (go_mysql_tls), so Kine needs no `--ca-file` to turn TLS on.
/// A connector CA cannot be named in a go-sql-driver DSN (only a TLS config the program
/// registered, and Kine parses the DSN before it registers its own): with a connector CA
/// and a verifying mode, Kine's `--ca-file=<ca_file>` is what makes it verify against that
/// CA (it then replaces the `tls` value with its config built from the file). IPv6 hosts
/// are bracketed. The result holds the password, hence a secret.
secret kine_data_source(const data_source_parts& parts);

/// `text` with the password of any URL- or go-sql-driver-style DSN replaced by "***",
/// for messages that must describe a DSN.
std::string mask_dsn(std::string_view text);

/// Host as it appears in a URL authority: IPv6 literals in brackets.
std::string url_host(std::string_view host);

}  // namespace tenantdb
