#pragma once
// Private: the per-engine entry points that engine.cpp dispatches to.

#include <memory>
#include <string>

#include "tenantdb/engine.hpp"

namespace tenantdb::detail {

std::unique_ptr<admin_session> connect_postgres_admin(const server_address& server, const login& admin,
                                                      const db_timeouts& timeouts);
void postgres_verify_login(const server_address& server, const login& tenant_login,
                           const std::string& database, const db_timeouts& timeouts);
void postgres_change_own_password(const server_address& server, const login& current,
                                  const std::string& database, const secret& next,
                                  const db_timeouts& timeouts);

std::unique_ptr<admin_session> connect_mysql_admin(const server_address& server, const login& admin,
                                                   const db_timeouts& timeouts);
void mysql_verify_login(const server_address& server, const login& tenant_login,
                        const std::string& database, const db_timeouts& timeouts);
void mysql_change_own_password(const server_address& server, const login& current,
                               const std::string& database, const secret& next,
                               const db_timeouts& timeouts);

}  // namespace tenantdb::detail
