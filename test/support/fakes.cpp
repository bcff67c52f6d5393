#include "fakes.hpp"

#include <algorithm>
#include <utility>

#include "tenantdb/ownership.hpp"

namespace tenantdb::test {

fail_count::fail_count() : failure_(error_kind::internal, "no failure was asked for") {}

fail_count::fail_count(std::size_t n, error failure, std::string operation)
    : n_(n), failure_(std::move(failure)), operation_(std::move(operation)) {}

bool fail_count::due(std::string_view operation) {
  operations_.emplace_back(operation);
  if (!operation_.empty() && operation != operation_) return false;
  ++calls_;
  return n_ != 0 && calls_ == n_;
}

void fail_count::fail() {
  fired_ = true;
  throw failure_;
}

std::size_t fail_count::count(std::string_view operation) const {
  return static_cast<std::size_t>(std::count(operations_.begin(), operations_.end(), operation));
}

namespace {

error refused(const std::string& user) {
  return error(error_kind::verification, "fake server: login refused for \"" + user + "\"").about(user);
}

class fake_admin_session final : public admin_session {
public:
  explicit fake_admin_session(fake_engine& server) : server_(server) {}

  void ensure_database(const tenant_names& names, const ownership* owner) override {
    counted(server_.failures, "admin.ensure_database", [&] {
      if (owner != nullptr) {
        // Every object with the tenant's names first, before anything changes.
        std::vector<std::pair<std::string, std::optional<std::string>*>> existing;
        if (const auto it = server_.databases.find(names.database); it != server_.databases.end())
          existing.emplace_back("database \"" + names.database + "\"", &it->second);
        for (const auto& user : {names.user_a, names.user_b})
          if (const auto it = server_.accounts.find(user); it != server_.accounts.end())
            existing.emplace_back("account \"" + user + "\"", &it->second.owner_json);
        std::vector<std::optional<std::string>*> adopt;
        for (const auto& [what, record] : existing)
          if (must_adopt(*owner, what, *record, "remove the record")) adopt.push_back(record);
        for (auto* record : adopt) *record = owner_record_json(owner->record);
      }
      if (!server_.databases.count(names.database))
        server_.databases[names.database] =
            owner != nullptr ? std::optional<std::string>(owner_record_json(owner->record)) : std::nullopt;
    });
  }

  bool ensure_user(const std::string& user, const secret& initial_password, const ownership* owner) override {
    return counted(server_.failures, "admin.ensure_user", [&] {
      if (const auto it = server_.accounts.find(user); it != server_.accounts.end()) {
        if (owner != nullptr && must_adopt(*owner, "account \"" + user + "\"", it->second.owner_json, "remove it"))
          it->second.owner_json = owner_record_json(owner->record);
        return false;
      }
      fake_account account;
      account.password = initial_password;
      if (owner != nullptr) account.owner_json = owner_record_json(owner->record);
      server_.accounts.emplace(user, std::move(account));
      return true;
    });
  }

  void set_password(const std::string& user, const secret& password) override {
    counted(server_.failures, "admin.set_password", [&] {
      const auto it = server_.accounts.find(user);
      if (it == server_.accounts.end())
        throw error(error_kind::database, "fake server: no account \"" + user + "\"").about(user);
      it->second.password = password;
    });
  }

  void grant(const tenant_names& names, const std::string& user) override {
    counted(server_.failures, "admin.grant", [&] {
      const auto it = server_.accounts.find(user);
      if (it == server_.accounts.end() || !server_.databases.count(names.database))
        throw error(error_kind::database, "fake server: cannot grant \"" + user + "\"").about(user);
      it->second.grants.insert(names.database);
    });
  }

  std::vector<std::string> apply_limits(const tenant_names& names, const std::string& user,
                                        const tenant_limits& limits) override {
    return counted(server_.failures, "admin.apply_limits", [&] {
      check_limits(limits);
      const auto it = server_.accounts.find(user);
      if (it == server_.accounts.end() || !server_.databases.count(names.database))
        throw error(error_kind::database, "fake server: cannot limit \"" + user + "\"").about(user);
      std::vector<std::string> changes;
      if (it->second.limits != limits) changes.push_back("limits changed");
      it->second.limits = limits;
      return changes;
    });
  }

  int end_sessions(const std::string& user) override {
    return counted(server_.failures, "admin.end_sessions", [&] {
      const auto it = server_.accounts.find(user);
      if (it == server_.accounts.end()) return 0;
      return std::exchange(it->second.sessions, 0);
    });
  }

  bool user_exists(const std::string& user) override {
    return counted(server_.failures, "admin.user_exists", [&] { return server_.accounts.count(user) != 0; });
  }

  bool database_exists(const std::string& database) override {
    return counted(server_.failures, "admin.database_exists", [&] { return server_.databases.count(database) != 0; });
  }

  std::string server_version() override {
    return counted(server_.failures, "admin.server_version", [] { return std::string("fake 1.0"); });
  }

  // Lifecycle: the fake keeps no inventory; provisioning finds nothing retained to restore.
  std::vector<recorded_object> recorded_objects(const tenant_names* /*names*/) override { return {}; }
  std::optional<long long> database_size(const std::string& database) override {
    return server_.databases.count(database) != 0 ? std::optional<long long>(0) : std::nullopt;
  }
  int session_count(const std::string& user) override {
    const auto it = server_.accounts.find(user);
    return it == server_.accounts.end() ? 0 : it->second.sessions;
  }
  std::optional<bool> login_allowed(const std::string& user) override {
    return server_.accounts.count(user) != 0 ? std::optional<bool>(true) : std::nullopt;
  }
  bool set_login_allowed(const std::string& /*user*/, bool /*allowed*/) override { return false; }
  void write_record(const recorded_object& /*object*/) override {}
  void drop_record(const recorded_object& /*object*/) override {}
  void drop_database(const std::string& database) override { server_.databases.erase(database); }
  void drop_user(const std::string& user) override { server_.accounts.erase(user); }
  void plan_into(std::vector<std::string>* /*sink*/, bool /*execute*/) override {}

private:
  fake_engine& server_;
};

}  // namespace

fake_engine::fake_engine(fail_count& f) : failures(f) {}

std::unique_ptr<admin_session> fake_engine::connect_admin(const server_address& /*server*/, const login& admin,
                                                          const db_timeouts& /*timeouts*/) {
  return counted(failures, "engine.connect_admin", [&]() -> std::unique_ptr<admin_session> {
    if (admin.user != admin_user || !(admin.password == admin_password))
      throw error(error_kind::database, "fake server: the admin's login was refused").about(admin.user);
    return std::make_unique<fake_admin_session>(*this);
  });
}

void fake_engine::verify_login(const server_address& /*server*/, const login& tenant_login, const std::string& database,
                               const db_timeouts& /*timeouts*/) {
  counted(failures, "engine.verify_login", [&] {
    if (!logs_in(tenant_login.user, tenant_login.password, database)) throw refused(tenant_login.user);
  });
}

void fake_engine::change_own_password(const server_address& /*server*/, const login& current,
                                      const std::string& database, const secret& next,
                                      const db_timeouts& /*timeouts*/) {
  counted(failures, "engine.change_own_password", [&] {
    if (!logs_in(current.user, current.password, database)) throw refused(current.user);
    accounts.at(current.user).password = next;
  });
}

int fake_engine::count_own_sessions(const server_address& /*server*/, const login& account, const std::string& database,
                                    const db_timeouts& /*timeouts*/) {
  return counted(failures, "engine.count_own_sessions", [&] {
    if (!logs_in(account.user, account.password, database)) throw refused(account.user);
    return accounts.at(account.user).sessions;
  });
}

bool fake_engine::logs_in(const std::string& user, const secret& password, const std::string& database) const {
  const auto it = accounts.find(user);
  return it != accounts.end() && it->second.password == password && databases.count(database) != 0 &&
         it->second.grants.count(database) != 0;
}

bool fake_engine::open_session(const std::string& user, const secret& password, const std::string& database) {
  if (!logs_in(user, password, database)) return false;
  ++accounts.at(user).sessions;
  return true;
}

fake_store::fake_store(fail_count& f) : failures(f) {}

std::optional<stored_credentials> fake_store::load() {
  return counted(failures, "store.load", [&] { return content; });
}

void fake_store::racer() {
  if (!before_next_write) return;
  const auto run = std::exchange(before_next_write, nullptr);
  run();
}

std::optional<std::string> fake_store::create(const credential_data& data,
                                              const std::map<std::string, std::string>& annotations) {
  return counted(failures, "store.create", [&]() -> std::optional<std::string> {
    racer();
    if (content) return std::nullopt;
    put(data, annotations);
    return content->version;
  });
}

std::optional<std::string> fake_store::replace(const credential_data& data,
                                               const std::map<std::string, std::string>& annotations,
                                               const std::string& version) {
  return counted(failures, "store.replace", [&]() -> std::optional<std::string> {
    racer();
    if (!content || content->version != version) return std::nullopt;
    auto merged = content->annotations;
    for (const auto& [k, v] : annotations) merged[k] = v;
    put(data, merged);
    return content->version;
  });
}

void fake_store::put(const credential_data& data, const std::map<std::string, std::string>& annotations) {
  content = stored_credentials{data, std::to_string(next_version_++), annotations};
}

connector connector_for(const fake_engine& server) {
  connector c;
  c.server.type = engine_type::postgres;
  c.server.host = "db.fake.invalid";
  c.server.port = 5432;
  c.server.tls = tls_mode::verify_full;
  c.admin_user = server.admin_user;
  c.admin_password = server.admin_password;
  return c;
}

}  // namespace tenantdb::test
