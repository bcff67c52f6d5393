#pragma once
/// \file
/// Access to the real PostgreSQL and MariaDB servers that test/tools/testdb.sh runs for
/// integration tests. When the servers are not running these helpers throw, which fails
/// the test with a message saying how to start them; they never skip.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <string_view>

#include "ports.hpp"
#include "tenantdb/connector.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/naming.hpp"

namespace tenantdb::test {

/// The testdb.sh state directory: $TENANTDB_TESTDB_DIR, else the build's default
/// (compile definition TENANTDB_TESTDB_DEFAULT_DIR), else ./build/testdb.
std::filesystem::path testdb_dir();

/// Reads <testdb_dir>/<which>.connector ("pg", "pg-super", "mariadb", "mariadb-super")
/// with read_connector_path + parse_connector and checks that the server accepts TCP
/// connections. Throws std::runtime_error ("run test/tools/testdb.sh start") otherwise.
connector load_connector(const std::string& which);

/// The admin login of a connector.
login admin_login(const connector& c);

/// Path of the CA that signed the test servers' certificates (<testdb_dir>/ca/ca.pem).
std::filesystem::path ca_pem_path();

/// PEM of an unrelated CA (<testdb_dir>/ca/other-ca.pem): verification must fail with it.
std::string other_ca_pem();

/// A tenant named <prefix>-<random hex> in namespace "tenantdb-test", so runs and
/// parallel tests never collide.
tenant unique_tenant(std::string_view prefix);

/// Prints the last `lines` lines of the server log behind `which` ("pg", "pg-super",
/// "mariadb", "mariadb-super") to stderr.
void dump_server_log(const std::string& which, std::size_t lines = 60);

/// Registers a GoogleTest listener that calls dump_server_log(which) for each of
/// `which` after every failed test. Returns true, so it can initialise a namespace-scope
/// constant in a test file:  const bool logs = dump_server_logs_on_failure({"pg"});
bool dump_server_logs_on_failure(std::initializer_list<std::string> which);

}  // namespace tenantdb::test
