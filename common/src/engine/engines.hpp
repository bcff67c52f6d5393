#pragma once
// Private: the per-engine factories that make_engine() chooses from, and what both share.

#include <memory>
#include <string>

#include "tenantdb/engine.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/secret.hpp"

namespace tenantdb::detail {

/// Who is logging in: decides how a refused login is reported (database error for the
/// admin, verification error for the tenant).
enum class party { admin, tenant };

/// A std::string wiped when it goes out of scope: statements that hold a password or a
/// verifier are built in one.
class wiped_string {
public:
  wiped_string() = default;
  wiped_string(const wiped_string&) = delete;
  wiped_string& operator=(const wiped_string&) = delete;
  ~wiped_string() { wipe(value); }
  std::string value;
};

/// An engine is chosen for one server type; an address of another type is a bug.
inline void require_type(const server_address& server, engine_type type) {
  if (server.type != type)
    throw error(error_kind::internal, "an engine chosen for one server type was handed an address of another");
}

/// The PostgreSQL engine (postgres.cpp) and the MySQL/MariaDB engine (mysql.cpp).
std::unique_ptr<engine> make_postgres_engine();
std::unique_ptr<engine> make_mysql_engine();

}  // namespace tenantdb::detail
