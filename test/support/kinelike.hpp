#pragma once
/// \file
/// Runs test/clients/kinelike, a Go client that behaves like Kine (vCluster's backing
/// store) with the drivers Kine uses: pgx v4 on PostgreSQL, go-sql-driver/mysql on
/// MySQL/MariaDB. It reads its data source once from a file, makes sure the database and
/// the `kine` table exist as Kine does at start, then inserts and reads back rows through
/// a database/sql pool whose connections expire quickly. See test/clients/CMakeLists.txt.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "tenantdb/engine.hpp"
#include "tenantdb/secret.hpp"

namespace tenantdb::test {

enum class kinelike_driver { pgx, mysql };

/// pgx for PostgreSQL, mysql for MySQL/MariaDB.
kinelike_driver kinelike_driver_for(engine_type type) noexcept;

struct kinelike_options {
  std::chrono::milliseconds duration{2000};
  int workers = 4;
  std::chrono::milliseconds max_idle_time{200};  ///< the pool closes idle connections after this
  std::chrono::milliseconds max_lifetime{200};   ///< ... and every connection after this
  /// CA bundle to verify the server with (Kine's --ca-file); "" for none. go-sql-driver's
  /// `tls=true` verifies against the system's roots only, so a MySQL/MariaDB data source
  /// verified against a private CA needs it.
  std::string ca_file;
  /// Prefix of the rows' names; "" lets the client choose a random one (see
  /// kinelike_result::name_prefix).
  std::string name_prefix;
  /// Verify mode: count the rows named name_prefix* (all rows when it is "") and fail
  /// unless there are at least this many. Nothing else is done in this mode.
  std::optional<std::int64_t> verify_rows;
  /// The child is killed after this long.
  std::chrono::seconds timeout{120};
};

/// The client's one JSON line, and how it ended.
struct kinelike_result {
  int exit_code = -1;  ///< 0 no failures, 1 failures, 2 bad usage; 128+signal if killed
  std::string out;     ///< stdout (the JSON line)
  std::string err;     ///< stderr (warnings, usage errors)
  std::string mode;    ///< "run" or "verify"
  std::int64_t duration_ms = 0;
  std::int64_t queries = 0;
  std::int64_t failures = 0;
  std::string first_error;            ///< without any password
  std::int64_t last_failure_ms = -1;  ///< since start; -1 when nothing failed
  /// Wall clock of the last failure (Unix ms, compare with std::chrono::system_clock); -1
  /// when nothing failed. Lets a test relate it to an event outside the client.
  std::int64_t last_failure_unix_ms = -1;
  std::int64_t committed_rows = 0;      ///< inserts the server acknowledged
  std::int64_t connections_opened = 0;  ///< connections the driver opened successfully
  std::int64_t connect_failures = 0;
  std::int64_t max_idle_time_closed = 0;
  std::int64_t max_lifetime_closed = 0;
  std::string name_prefix;          ///< prefix of every row this run inserted (for verify mode)
  std::int64_t setup_warnings = 0;  ///< Kine-style start-up steps that only warned
  std::int64_t verified_rows = 0;   ///< verify mode: rows found

  /// One line for assertion messages: exit code, counters, first error, stderr's tail.
  std::string describe() const;
};

/// Where the kinelike binary is (compile definition TENANTDB_KINELIKE_BIN). Throws
/// std::runtime_error naming tools/install-deps.sh when it was not built (go missing).
std::filesystem::path kinelike_path();

/// Writes `dsn` to a private file (0600 in a 0700 temporary directory, removed after),
/// runs the client with -dsn-file (the data source never goes on argv or into the
/// environment), and parses its JSON line. On bad usage (exit 2, no JSON) only exit_code,
/// out and err are set. Throws std::runtime_error when the client is missing or ended
/// otherwise without a parsable JSON line (the message carries its output, which never
/// holds the password).
kinelike_result run_kinelike(kinelike_driver driver, const secret& dsn, const kinelike_options& options = {});

}  // namespace tenantdb::test
