#pragma once
/// \file
/// Extra credential files for clients that read a file format of their own rather than
/// one file per key: libpq's password file, a MySQL/MariaDB option file, a shell
/// environment file and one JSON object. They are rendered from the credential data and
/// published in the same generation as the key files, so every file switches at once.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tenantdb/credentials.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/secret.hpp"

namespace tenantdb {

/// A file format `--formats` can select.
enum class credential_format {
  pgpass,  ///< `pgpass`: host:port:database:user:password, for libpq's passfile / PGPASSFILE
  mycnf,   ///< `my.cnf`: a [client] group for MySQL/MariaDB clients (--defaults-file)
  env,     ///< `credentials.env`: DB_HOST=... lines a POSIX shell can source
  json,    ///< `credentials.json`: the workload's keys as one JSON object
};

/// Parses a comma-separated list of "pgpass", "mycnf", "env", "json" (empty: none).
/// Duplicates are dropped; the order is kept. Throws tenantdb::error (usage, about
/// "--formats") naming an unknown entry.
std::vector<credential_format> parse_formats(std::string_view list);

/// The format's name in `--formats`.
std::string_view format_name(credential_format format) noexcept;

/// The file (key) a format is published as: "pgpass", "my.cnf", "credentials.env",
/// "credentials.json".
std::string_view format_file_name(credential_format format) noexcept;

/// Renders one format from the workload's credential data (keys host, port, database,
/// user, password, type, sslMode, caCert). `ca_file` is where the workload finds caCert;
/// it becomes my.cnf's ssl-ca when caCert is present. Throws tenantdb::error (output,
/// about the file name) if a required key is missing or a value cannot be represented
/// in the format (a NUL byte anywhere; a line break in a pgpass field). The result holds
/// the password.
///
/// `previous` is the credential that stays valid during a dual rotation's grace period.
/// pgpass gets a second line for it: libpq picks the line by user name, so a client that
/// read the previous user name just before the switch still finds that user's password.
/// The other formats hold one credential and ignore it.
secret render_format(credential_format format, const credential_data& data, const std::string& ca_file,
                     const std::optional<login>& previous = std::nullopt);

/// `view` plus one entry per format, keyed by format_file_name. The input keys are
/// unchanged; a format's file name never collides with a Secret key.
credential_data with_formats(const credential_data& view, const std::vector<credential_format>& formats,
                             const std::string& ca_file, const std::optional<login>& previous = std::nullopt);

/// One pgpass field: '\' and ':' backslash-escaped, a field that is exactly "*" escaped
/// so it is not a wildcard, and a leading '#' escaped so the line is not a comment.
std::string pgpass_escape(std::string_view field);

/// An option-file value in double quotes, with \\, \", \n, \r, \t and \b escapes, as
/// the MySQL client and MariaDB Connector/C option-file parsers read it.
std::string mycnf_quote(std::string_view value);

/// `value` in POSIX shell single quotes ('It'\''s'), safe to `source`.
std::string shell_quote(std::string_view value);

/// A URL a generic client library accepts (DATABASE_URL): postgres://user:pass@host:port/
/// db?sslmode=...[&sslrootcert=...] or mysql://user:pass@host:port/db, user, password and
/// database percent-encoded, IPv6 hosts bracketed.
secret database_url(const credential_data& data, const std::string& ca_file);

}  // namespace tenantdb
