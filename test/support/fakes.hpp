#pragma once
// In-memory stand-ins for the database server and the credentials store, for unit tests
// of the state machines (rotation, provisioning's reconcile rounds). No server, no
// Kubernetes: a fake_engine holds databases, accounts, passwords, grants and sessions; a
// fake_store holds one versioned credentials object with conditional writes. Both count
// their calls on a shared fail_count, which makes the Nth call (or the Nth call of one
// operation) throw a given tenantdb::error, in the manner of Boost.Beast's fail_count:
// a test runs the code with N = 1, 2, ... until a run completes, and looks at what each
// failure left behind.

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "tenantdb/connector.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/store.hpp"

namespace tenantdb::test {

/// Counts the calls of the fakes that share it and fails one of them.
class fail_count {
public:
  /// Fails nothing; counts.
  fail_count();
  /// Fails the `n`th counted call (1-based), or with `operation` ("store.replace",
  /// "engine.change_own_password", ...) the `n`th call of that operation, by throwing
  /// `failure`. n = 0 fails nothing.
  fail_count(std::size_t n, error failure, std::string operation = {});

  /// The failing call does its work before it throws, as when the answer is lost on the
  /// way back (the statement committed, the connection dropped): the caller cannot tell.
  fail_count& after_the_work(bool value = true) {
    applied_ = value;
    return *this;
  }

  /// Called by a fake as it starts `operation`: counts it, and says whether it must fail.
  bool due(std::string_view operation);
  /// True if the failure is thrown after the work (after_the_work).
  bool applied() const noexcept { return applied_; }
  [[noreturn]] void fail();

  /// True once the failure was thrown.
  bool fired() const noexcept { return fired_; }
  /// Calls counted so far (of the named operation, if one was named).
  std::size_t calls() const noexcept { return calls_; }
  /// Every operation counted, in order.
  const std::vector<std::string>& operations() const noexcept { return operations_; }
  /// How many times `operation` was counted.
  std::size_t count(std::string_view operation) const;

private:
  std::size_t n_ = 0;
  error failure_;
  std::string operation_;
  bool applied_ = false;
  bool fired_ = false;
  std::size_t calls_ = 0;
  std::vector<std::string> operations_;
};

/// Runs `work` as `operation`, counted on `fc`: throws before the work when the call is
/// due to fail, or after it with fail_count::after_the_work.
template <class Work>
auto counted(fail_count& fc, std::string_view operation, Work&& work) -> decltype(work()) {
  const bool due = fc.due(operation);
  if (due && !fc.applied()) fc.fail();
  if constexpr (std::is_void_v<decltype(work())>) {
    work();
    if (due) fc.fail();
  } else {
    auto result = work();
    if (due) fc.fail();
    return result;
  }
}

/// One login account of the fake server.
struct fake_account {
  secret password;
  std::set<std::string> grants;           ///< databases it may use
  int sessions = 0;                       ///< open sessions (a password change keeps them)
  std::optional<std::string> owner_json;  ///< ownership record, as the real engines keep it
  tenant_limits limits;                   ///< as apply_limits last set them
};

/// A database server in memory behind the engine interface. Operations are counted as
/// "engine.connect_admin", "engine.verify_login", "engine.change_own_password",
/// "engine.count_own_sessions" and, on
/// the admin session, "admin.ensure_database", "admin.ensure_user", "admin.set_password",
/// "admin.grant", "admin.apply_limits", "admin.end_sessions", "admin.user_exists", "admin.database_exists",
/// "admin.server_version". A refused login throws kind verification, as the real ones do.
class fake_engine final : public engine {
public:
  explicit fake_engine(fail_count& failures);

  std::unique_ptr<admin_session> connect_admin(const server_address& server, const login& admin,
                                               const db_timeouts& timeouts) override;
  void verify_login(const server_address& server, const login& tenant_login, const std::string& database,
                    const db_timeouts& timeouts) override;
  void change_own_password(const server_address& server, const login& current, const std::string& database,
                           const secret& next, const db_timeouts& timeouts) override;
  /// The account's `sessions` (the probe itself is not one), if it logs in.
  int count_own_sessions(const server_address& server, const login& account, const std::string& database,
                         const db_timeouts& timeouts) override;

  /// For assertions, not counted: true if `user` logs in to `database` with `password`.
  bool logs_in(const std::string& user, const secret& password, const std::string& database) const;
  /// Opens a session as `user` (the workload connecting), not counted; false if refused.
  bool open_session(const std::string& user, const secret& password, const std::string& database);

  std::string admin_user = "admin";
  secret admin_password{"AdminPasswordAdminPassword12345"};
  std::map<std::string, std::optional<std::string>> databases;  ///< name -> ownership record
  std::map<std::string, fake_account> accounts;

  fail_count& failures;
};

/// The credentials store in memory: one object, its version a counter. replace() keeps
/// the annotations it is not given, as the credentials Secret does (a PUT onto the
/// loaded object). Operations are counted as "store.load", "store.create",
/// "store.replace".
class fake_store final : public credential_store {
public:
  explicit fake_store(fail_count& failures);

  std::optional<stored_credentials> load() override;
  std::optional<std::string> create(const credential_data& data,
                                    const std::map<std::string, std::string>& annotations) override;
  std::optional<std::string> replace(const credential_data& data, const std::map<std::string, std::string>& annotations,
                                     const std::string& version) override;
  std::string describe() const override { return "fake store"; }

  /// Another writer's write, not counted: replaces the content and moves the version on.
  void put(const credential_data& data, const std::map<std::string, std::string>& annotations);

  /// Runs once, just before the next create() or replace() compares versions: another
  /// writer that gets in between this one's load and its write.
  std::function<void()> before_next_write;

  std::optional<stored_credentials> content;
  fail_count& failures;

private:
  void racer();
  int next_version_ = 1;
};

/// A connector for `server`: a PostgreSQL address nobody listens on, and its admin.
connector connector_for(const fake_engine& server);

}  // namespace tenantdb::test
