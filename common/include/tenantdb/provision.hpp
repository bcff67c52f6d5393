#pragma once
/// \file
/// The init's job: make the tenant's database, accounts and credentials exist and work.

#include <chrono>
#include <filesystem>
#include <string>

#include "tenantdb/connector.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/naming.hpp"
#include "tenantdb/store.hpp"

namespace tenantdb {

/// How passwords are rotated; decides which accounts the init creates.
enum class rotation_strategy {
  dual,      ///< two login accounts; rotate the idle one, then switch (zero downtime)
  in_place,  ///< one login account whose password is changed in place
};

/// Parses "dual" or "in-place"; throws tenantdb::error (usage) otherwise.
rotation_strategy parse_strategy(std::string_view text);

/// Inputs of one provisioning run.
struct provision_options {
  tenant who;
  std::string name_prefix{default_name_prefix};
  rotation_strategy strategy = rotation_strategy::dual;
  std::size_t password_length = 32;
  /// Where the workload finds caCert; goes into the PostgreSQL dataSource.
  std::string ca_file;
  std::chrono::steady_clock::time_point deadline;
  db_timeouts timeouts;
};

/// What a run ended with.
struct provision_result {
  tenant_names names;
  credential_data data;       ///< what the store holds now
  bool password_set = false;  ///< passwords were written to the database this run
  bool store_written = false; ///< the store was created or rewritten this run
};

/// Creates database and accounts if missing, grants least privilege, reconciles the
/// credentials with `store` (keeps working ones, replaces lost or broken ones; a lost
/// race adopts the winner's), sets the passwords in the database, and logs in as the
/// tenant. Transient failures are retried until options.deadline. Idempotent.
provision_result provision(const connector& conn, credential_store& store,
                           const provision_options& options);

}  // namespace tenantdb
