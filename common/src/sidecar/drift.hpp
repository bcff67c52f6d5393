#pragma once
// Drift the sidecar can see with the tenant's own login (issue 11, item 5): the account
// holds privileges tenantdb never gives it (PostgreSQL: SUPERUSER, CREATEDB, CREATEROLE,
// REPLICATION or BYPASSRLS on the login or its group role, membership in another role;
// MySQL/MariaDB: any grant beyond ALL PRIVILEGES on its own database). A login that
// stopped working is the login check's (status.hpp). Reported, not acted on: the
// workload keeps running (see sidecar_status::ready_note).

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "sidecar/outcome.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/store.hpp"

namespace tenantdb::sidecar {

/// How often the privileges are read at most: the check logs in once more (a TLS
/// handshake and a catalog read), which every sidecar of a shared server would otherwise
/// add at the login check's pace.
inline constexpr std::chrono::minutes drift_check_interval{5};

class drift_watch {
public:
  /// After a login check that passed: reads the account's privileges with the published
  /// credentials if none was read yet or drift_check_interval has passed since. Logs when
  /// the finding changes (names only). A failed read keeps the last verdict and is
  /// returned, for the loop to count.
  std::optional<failure> after_login_check(const std::optional<credential_data>& published,
                                           const db_timeouts& timeouts);

  /// At the last read the account held more than tenantdb gives it.
  bool privileges() const noexcept { return !findings_.empty(); }
  /// The family tenantdb_drift{kind="privileges"}, its sample once a read succeeded.
  std::string metrics() const;
  /// "" or "drift: privileges", for /readyz's answer while ready.
  std::string note() const { return privileges() ? "drift: privileges" : ""; }

private:
  std::optional<std::chrono::steady_clock::time_point> last_;
  bool known_ = false;
  std::vector<std::string> findings_;
};

}  // namespace tenantdb::sidecar
