#include "tenantdb/engine.hpp"

#include "engine/engines.hpp"

namespace tenantdb {

std::unique_ptr<admin_session> connect_admin(const server_address& server, const login& admin,
                                             const db_timeouts& timeouts) {
  if (server.type == engine_type::postgres) return detail::connect_postgres_admin(server, admin, timeouts);
  return detail::connect_mysql_admin(server, admin, timeouts);
}

void verify_login(const server_address& server, const login& tenant_login, const std::string& database,
                  const db_timeouts& timeouts) {
  if (server.type == engine_type::postgres)
    return detail::postgres_verify_login(server, tenant_login, database, timeouts);
  detail::mysql_verify_login(server, tenant_login, database, timeouts);
}

void change_own_password(const server_address& server, const login& current, const std::string& database,
                         const secret& next, const db_timeouts& timeouts) {
  if (server.type == engine_type::postgres)
    return detail::postgres_change_own_password(server, current, database, next, timeouts);
  detail::mysql_change_own_password(server, current, database, next, timeouts);
}

}  // namespace tenantdb
