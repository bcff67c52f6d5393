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

/// Kine's dataSource. PostgreSQL: a URL
/// `postgres://user:pass@host:port/db?sslmode=...[&sslrootcert=...]` with user and
/// password percent-encoded (Kine parses it with net/url). MySQL/MariaDB:
/// `mysql://user:pass@tcp(host:port)/db` with the password verbatim, because Kine strips
/// the scheme and go-sql-driver's DSN parser takes it without decoding. IPv6 hosts are
/// bracketed. The result holds the password, hence a secret.
secret kine_data_source(const data_source_parts& parts);

/// `text` with the password of any URL- or go-sql-driver-style DSN replaced by "***",
/// for messages that must describe a DSN.
std::string mask_dsn(std::string_view text);

/// Host as it appears in a URL authority: IPv6 literals in brackets.
std::string url_host(std::string_view host);

}  // namespace tenantdb
