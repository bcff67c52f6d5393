#pragma once
// Private: the per-engine entry points that engine.cpp dispatches to.

#include <memory>
#include <string>

#include "tenantdb/engine.hpp"
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

std::unique_ptr<admin_session> connect_postgres_admin(const server_address& server, const login& admin,
                                                      const db_timeouts& timeouts);
void postgres_verify_login(const server_address& server, const login& tenant_login, const std::string& database,
                           const db_timeouts& timeouts);
void postgres_change_own_password(const server_address& server, const login& current, const std::string& database,
                                  const secret& next, const db_timeouts& timeouts);

std::unique_ptr<admin_session> connect_mysql_admin(const server_address& server, const login& admin,
                                                   const db_timeouts& timeouts);
void mysql_verify_login(const server_address& server, const login& tenant_login, const std::string& database,
                        const db_timeouts& timeouts);
void mysql_change_own_password(const server_address& server, const login& current, const std::string& database,
                               const secret& next, const db_timeouts& timeouts);

}  // namespace tenantdb::detail
