#pragma once
/// \file
/// The engines' own load generators, pgbench and mysqlslap (from postgresql-15 and
/// mariadb-client, installed by tools/install-deps.sh), run as separate processes against
/// a server or the proxy in front of one. The password goes only into the environment of
/// that one child (PGPASSWORD, MYSQL_PWD), never onto argv; no client configuration
/// file of the machine is read (PGPASSFILE=/dev/null, mysqlslap --no-defaults).

#include <chrono>
#include <cstdint>
#include <string>

#include "tenantdb/secret.hpp"

namespace tenantdb::test {

/// Where and as whom a load client connects.
struct db_endpoint {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::string user;
  std::string database;  ///< letters, digits and '_' only (it goes into SQL)
  secret password;       ///< empty: no password is sent (the proxy's loopback front door)
  /// CA bundle: TLS verified against it (host name included); "" for no TLS at all.
  std::string ca_file;
};

/// What a load run did.
struct load_result {
  bool ok = false;                ///< exited 0, its report was parsed, and nothing failed
  int exit_code = -1;             ///< of the run (or of pgbench -i when that failed)
  std::int64_t transactions = 0;  ///< pgbench: transactions processed; mysqlslap: queries asked for
  std::int64_t failed = 0;        ///< pgbench: failed transactions (mysqlslap stops at the first error)
  double per_second = 0;          ///< pgbench: tps without connection time; mysqlslap: queries / average run time
  double latency_ms = -1;         ///< pgbench: average latency; -1 when the client does not report it
  double seconds = 0;             ///< mysqlslap: average time to run all queries; pgbench: the duration
  std::string out;
  std::string err;

  /// One line for assertion messages.
  std::string describe() const;
};

struct pgbench_options {
  int clients = 2;  ///< -c, and as many threads (-j)
  std::chrono::seconds duration{1};
  bool select_only = true;               ///< -S; false runs the TPC-B-like default script
  bool initialize = true;                ///< pgbench -i -s <scale> first
  int scale = 1;                         ///< -s of the initialisation
  bool connect_per_transaction = false;  ///< -C: a new connection for every transaction
  std::chrono::seconds timeout{300};     ///< each child is killed after this long
};

/// Runs pgbench (after pgbench -i unless told not to) against `target`.
load_result run_pgbench(const db_endpoint& target, const pgbench_options& options = {});

struct mysqlslap_options {
  int concurrency = 2;  ///< --concurrency
  int queries = 1000;   ///< --number-of-queries, spread over the clients
  int detach = 0;       ///< --detach: reconnect after this many statements (0: never)
  std::chrono::seconds timeout{300};
};

/// Runs mysqlslap against `target`: each client inserts into and counts a table
/// `tenantdb_slap` that a --pre-query creates in the target database if missing (the
/// database itself is never created or dropped).
load_result run_mysqlslap(const db_endpoint& target, const mysqlslap_options& options = {});

}  // namespace tenantdb::test
