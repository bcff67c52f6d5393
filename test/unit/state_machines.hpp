#pragma once
// Shared by the unit tests of the two state machines (rotation_test.cpp,
// provision_test.cpp): a tenant on the fake server and store, and what must hold after
// every failure.

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "fakes.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/provision.hpp"
#include "tenantdb/rotation.hpp"

namespace tenantdb::test {

/// A failure the caller cannot tell from a dropped connection: retryable, so only the
/// deadline (already passed in these tests) stops provision() from retrying it.
inline error transient_failure() {
  return error(error_kind::unavailable, "injected failure (connection dropped)").retryable();
}

/// One tenant: the fake server, the fake store, and the fail_count both count on.
struct tenant_world {
  fail_count failures;
  fake_engine server{failures};
  fake_store store{failures};
  connector conn = connector_for(server);

  provision_options provision_options_for(rotation_strategy strategy) const {
    provision_options o;
    o.who = tenant{"my-vc", "team-a"};
    o.strategy = strategy;
    o.ca_file = "/creds/caCert";
    o.deadline = std::chrono::steady_clock::now();  // no retry inside a run: each failure ends it
    return o;
  }

  provision_result provision_tenant(rotation_strategy strategy) {
    return provision(conn, server, store, provision_options_for(strategy));
  }

  /// From now on the `n`th counted call fails with `failure`.
  void fail_nth(std::size_t n, bool after_the_work = false, error failure = transient_failure()) {
    failures = fail_count(n, std::move(failure));
    failures.after_the_work(after_the_work);
  }
  void no_failures() { failures = fail_count(); }

  const stored_credentials& stored() const {
    if (!store.content) throw std::runtime_error("the fake store is empty");
    return *store.content;
  }

  /// The failed operation, for messages.
  std::string failed_call() const {
    return failures.operations().empty() ? std::string("none") : failures.operations().back();
  }
};

inline std::string value_of(const stored_credentials& s, const char* key) {
  const auto it = s.data.find(key);
  return it == s.data.end() ? std::string() : it->second.reveal();
}

inline const secret* pending_of(const stored_credentials& s) {
  const auto it = s.data.find(keys::pending_password);
  return it == s.data.end() || it->second.empty() ? nullptr : &it->second;
}

/// Empty counts as absent (see rotation.hpp).
inline bool has_annotation(const stored_credentials& s, const char* key) {
  const auto it = s.annotations.find(key);
  return it != s.annotations.end() && !it->second.empty();
}

inline bool in_flight(const stored_credentials& s) {
  return has_annotation(s, annotations::rotation) || s.data.count(keys::pending_password) != 0;
}

inline login active_of(const stored_credentials& s) {
  return login{value_of(s, keys::user), s.data.at(keys::password)};
}

inline std::optional<login> standby_of(const stored_credentials& s) {
  if (!s.data.count(keys::standby_user)) return std::nullopt;
  return login{value_of(s, keys::standby_user), s.data.at(keys::standby_password)};
}

inline bool logs_in(const tenant_world& w, const login& l) {
  return w.server.logs_in(l.user, l.password, value_of(w.stored(), keys::database));
}

/// The workload's credential, as the store holds it, logs in.
inline void expect_workload_logs_in(const tenant_world& w, const std::string& when) {
  const login active = active_of(w.stored());
  EXPECT_TRUE(logs_in(w, active)) << "the stored credential of " << active.user << " does not log in " << when;
}

/// Every account on the server has a password the store holds for it (its own, or the
/// pending one of a rotation in flight): the database was never changed before the store
/// recorded the intent. An empty store means no account may exist yet.
inline void expect_no_unclaimed_password(const tenant_world& w, const std::string& when) {
  if (!w.store.content) {
    EXPECT_TRUE(w.server.accounts.empty()) << "accounts exist but the store holds nothing " << when;
    return;
  }
  const auto& s = w.stored();
  for (const auto& [user, account] : w.server.accounts) {
    std::vector<secret> held;
    if (value_of(s, keys::user) == user) held.push_back(s.data.at(keys::password));
    if (const auto standby = standby_of(s); standby && standby->user == user) held.push_back(standby->password);
    if (const secret* pending = pending_of(s)) held.push_back(*pending);
    bool found = false;
    for (const auto& p : held) found = found || p == account.password;
    EXPECT_TRUE(found) << "account " << user << " has a password the store does not hold " << when;
  }
}

}  // namespace tenantdb::test
