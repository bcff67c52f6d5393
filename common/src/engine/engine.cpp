#include "tenantdb/engine.hpp"

#include "engine/engines.hpp"

namespace tenantdb {
namespace {

/// Hands each call to the engine of the address's type, each made once.
class engine_by_address final : public engine {
public:
  std::unique_ptr<admin_session> connect_admin(const server_address& server, const login& admin,
                                               const db_timeouts& timeouts) override {
    return of(server).connect_admin(server, admin, timeouts);
  }
  void verify_login(const server_address& server, const login& tenant_login, const std::string& database,
                    const db_timeouts& timeouts) override {
    of(server).verify_login(server, tenant_login, database, timeouts);
  }
  void change_own_password(const server_address& server, const login& current, const std::string& database,
                           const secret& next, const db_timeouts& timeouts) override {
    of(server).change_own_password(server, current, database, next, timeouts);
  }
  int count_own_sessions(const server_address& server, const login& account, const std::string& database,
                         const db_timeouts& timeouts) override {
    return of(server).count_own_sessions(server, account, database, timeouts);
  }
  std::vector<std::string> excess_privileges(const server_address& server, const login& tenant_login,
                                             const std::string& database, const db_timeouts& timeouts) override {
    return of(server).excess_privileges(server, tenant_login, database, timeouts);
  }

private:
  engine& of(const server_address& server) {
    auto& slot = server.type == engine_type::postgres ? postgres_ : mysql_;
    if (!slot) slot = make_engine(server.type);
    return *slot;
  }

  std::unique_ptr<engine> postgres_;
  std::unique_ptr<engine> mysql_;
};

}  // namespace

std::unique_ptr<engine> make_engine(engine_type type) {
  if (type == engine_type::postgres) return detail::make_postgres_engine();
  return detail::make_mysql_engine();
}

std::unique_ptr<engine> make_engine_by_address() {
  return std::make_unique<engine_by_address>();
}

std::unique_ptr<admin_session> connect_admin(const server_address& server, const login& admin,
                                             const db_timeouts& timeouts) {
  return make_engine(server.type)->connect_admin(server, admin, timeouts);
}

void verify_login(const server_address& server, const login& tenant_login, const std::string& database,
                  const db_timeouts& timeouts) {
  make_engine(server.type)->verify_login(server, tenant_login, database, timeouts);
}

void change_own_password(const server_address& server, const login& current, const std::string& database,
                         const secret& next, const db_timeouts& timeouts) {
  make_engine(server.type)->change_own_password(server, current, database, next, timeouts);
}

std::vector<std::string> excess_privileges(const server_address& server, const login& tenant_login,
                                           const std::string& database, const db_timeouts& timeouts) {
  return make_engine(server.type)->excess_privileges(server, tenant_login, database, timeouts);
}

}  // namespace tenantdb
