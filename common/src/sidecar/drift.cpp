#include "sidecar/drift.hpp"

#include "tenantdb/credentials.hpp"
#include "tenantdb/log.hpp"

namespace tenantdb::sidecar {

std::optional<failure> drift_watch::after_login_check(const std::optional<credential_data>& published,
                                                      const db_timeouts& timeouts) {
  if (!published) return std::nullopt;
  const auto now = std::chrono::steady_clock::now();
  if (last_ && now - *last_ < drift_check_interval) return std::nullopt;
  last_ = now;
  std::vector<std::string> found;
  try {
    const credential_record record = parse_record(*published);
    const auto active = record.active();
    if (!active || record.database.empty()) return std::nullopt;  // the login check says why
    found = excess_privileges(record.server(), *active, record.database, timeouts);
  } catch (const error& e) {
    return failure{e.kind() == error_kind::output ? error_source::files : error_source::database, "privileges check",
                   e};
  }
  if (!known_ || found != findings_) {
    if (!found.empty()) {
      std::string all;
      for (const auto& f : found) all += (all.empty() ? "" : "; ") + f;
      log::warn(
          "the tenant's account holds privileges tenantdb never gives it (drift); reported, not revoked: "
          "find out who granted them, then revoke them (tenantdb-init takes PostgreSQL role attributes back)",
          {{"privileges", all}});
    } else if (known_) {
      log::info("the tenant's account holds only what tenantdb gives it again");
    }
  }
  known_ = true;
  findings_ = std::move(found);
  return std::nullopt;
}

std::string drift_watch::metrics() const {
  std::string out =
      "# HELP tenantdb_drift 1 while the tenant's account shows drift of this kind, as its own login sees it "
      "(privileges: more than tenantdb gives it); read at most every 5 minutes.\n"
      "# TYPE tenantdb_drift gauge\n";
  if (known_) out += std::string("tenantdb_drift{kind=\"privileges\"} ") + (privileges() ? "1" : "0") + "\n";
  return out;
}

}  // namespace tenantdb::sidecar
