#include "sidecar/status.hpp"

#include <algorithm>
#include <cstdio>

#include "sidecar/drift.hpp"
#include "sidecar/proxy_feed.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/log.hpp"
#include "tenantdb/time.hpp"

namespace tenantdb::sidecar {
namespace {

using sys_clock = std::chrono::system_clock;

// Account names as the init makes them ([a-z0-9_]); anything else (a hand-edited store)
// is kept out of a metric label rather than escaped.
bool is_label_value(const std::string& text) {
  return !text.empty() && text.size() <= 63 && std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
  });
}

double unix_seconds(sys_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

std::string format_number(double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", value);
  return buf;
}

// What /readyz may say about a failed login check. /readyz answers anyone who reaches
// --listen (0.0.0.0 by default), so it names a class of failure and never the host,
// port, user, database or the server's own words: those go to the log (count).
const char* failure_class(error_kind kind) {
  switch (kind) {
    case error_kind::unavailable: return "database unreachable";
    case error_kind::verification: return "database refused the login";  // the tenant's login
    case error_kind::database: return "database error";
    case error_kind::connector: return "unusable credentials";
    case error_kind::output: return "credential files unreadable";
    default: return "unexpected error";
  }
}

}  // namespace

login_check check_login(const std::optional<credential_data>& published, const db_timeouts& timeouts) {
  login_check out;
  if (!published) return out;
  const credential_data& data = *published;
  try {
    const credential_record record = parse_record(data);
    const server_address server = record.server();
    const auto active = record.active();
    if (!active || record.database.empty())
      throw error(error_kind::connector, "the credentials lack user, password or database");
    verify_login(server, *active, record.database, timeouts);
    out.passed = true;
    out.user = active->user;
  } catch (const error& e) {
    out.failed =
        failure{e.kind() == error_kind::output ? error_source::files : error_source::database, "login check", e};
  }
  return out;
}

sidecar_status::sidecar_status(const agent_options& options, const file_publisher& files, sys_clock::time_point started)
    : options_(options), files_(files), started_(started) {}

void sidecar_status::count(const failure& f) {
  ++errors_total_[to_string(f.source)];
  log::warn(f.step + " failed",
            {{"error", f.cause.what()}, {"kind", to_string(f.cause.kind())}, {"source", to_string(f.source)}});
}

void sidecar_status::rotation_step(rotation_outcome outcome, const char* step) {
  switch (outcome) {
    case rotation_outcome::nothing: return;
    case rotation_outcome::rotated:
      ++rotated_total_;
      last_success_ = options_.now();
      break;
    case rotation_outcome::retired: ++retired_total_; break;
    case rotation_outcome::recovered: ++recovered_total_; break;
    case rotation_outcome::lost_race: ++lost_race_total_; break;
  }
  static constexpr const char* names[] = {"nothing", "rotated", "retired", "recovered", "lost_race"};
  log::info("rotation step",
            {{"step", step}, {"outcome", names[static_cast<int>(outcome)]}, {"holder", options_.rotation.holder}});
}

void sidecar_status::observe_store() {
  const auto& current = files_.current();
  if (!current) return;
  // When the active credential changed, for tenantdb_credential_age_seconds.
  if (const auto it = current->data.find(keys::password); it != current->data.end()) {
    const secret* password = &it->second;
    if (!active_password_) {
      active_since_ = started_;
      if (const std::string* last = annotation_value(current->annotations, annotations::last_rotation))
        if (auto t = parse_rfc3339(*last)) active_since_ = std::min(*t, started_);
    } else if (!(*active_password_ == *password)) {
      active_since_ = options_.now();
    }
    active_password_ = *password;
  }
  const std::string account = locked_out();
  if (account == lockout_seen_) return;
  if (!account.empty()) {
    log::error(
        "account locked out: it logs in with none of the passwords the credentials store holds for it; "
        "not ready and not rotating until tenantdb-init resets it (restart the pod or run the init)",
        {{"user", account}, {"annotation", annotations::lockout}, {"store", files_.describe_store()}});
  } else {
    log::info("account lockout resolved", {{"user", lockout_seen_}});
  }
  lockout_seen_ = account;
}

void sidecar_status::login_checked(const login_check& check) {
  if (check.passed) {
    if (!check_ok_) log::info("login check passed", {{"user", check.user}});
    check_ok_ = true;
    check_reason_.clear();
    return;
  }
  check_ok_ = false;
  if (check.failed) check_reason_ = std::string("login check failed: ") + failure_class(check.failed->cause.kind());
}

std::string sidecar_status::locked_out() const {
  return files_.current() ? rotator::locked_out_account(*files_.current()) : std::string();
}

// Not ready while an account is locked out: whoever changed its password holds a login
// to the tenant's database that rotation can no longer take away. With the proxy on, not
// ready until it serves: the workload's data source points at it.
bool sidecar_status::ready() const {
  return files_.in_place() && files_.up_to_date() && check_ok_ && locked_out().empty() && !files_.store_refused() &&
         (proxy_ == nullptr || proxy_->serving());
}

// One terse line from a fixed set (see failure_class); the details are in the log.
std::string sidecar_status::reason() const {
  if (files_.store_refused()) return "credentials Secret refused";  // why: the log
  if (!files_.in_place() || !files_.up_to_date()) return files_.not_ready_reason();
  if (!check_ok_) return check_reason_.empty() ? "login check pending" : check_reason_;
  if (!locked_out().empty()) return "account locked out: run tenantdb-init";  // which one: the log and the gauge
  if (proxy_ != nullptr && !proxy_->serving()) return proxy_->reason();       // why: the log
  return "ready";
}

std::string sidecar_status::metrics() const {
  std::string out;
  const auto family = [&](const char* name, const char* type, const char* help) {
    out.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
  };
  const auto sample = [&](const std::string& name, const std::string& value) {
    out.append(name).append(" ").append(value).append("\n");
  };
  const auto& current = files_.current();
  family("tenantdb_rotations_total", "counter", "Rotation steps this replica ran, by result.");
  sample("tenantdb_rotations_total{result=\"rotated\"}", std::to_string(rotated_total_));
  sample("tenantdb_rotations_total{result=\"lost_race\"}", std::to_string(lost_race_total_));
  sample("tenantdb_rotations_total{result=\"failed\"}", std::to_string(failed_total_));
  sample("tenantdb_rotations_total{result=\"recovered\"}", std::to_string(recovered_total_));
  sample("tenantdb_rotations_total{result=\"retired\"}", std::to_string(retired_total_));

  const auto now = options_.now();
  std::optional<sys_clock::time_point> success = last_success_;
  if (current)
    if (const std::string* last = annotation_value(current->annotations, annotations::last_rotation))
      if (auto t = parse_rfc3339(*last); t && (!success || *t > *success)) success = t;
  family("tenantdb_last_rotation_success_timestamp_seconds", "gauge",
         "When the last rotation completed (Unix time; 0 if none is known).");
  sample("tenantdb_last_rotation_success_timestamp_seconds", format_number(success ? unix_seconds(*success) : 0.0));

  family("tenantdb_credential_age_seconds", "gauge", "How long the active credential has been active.");
  if (active_password_)
    sample("tenantdb_credential_age_seconds",
           format_number(std::max(0.0, std::chrono::duration<double>(now - active_since_).count())));

  family("tenantdb_next_rotation_timestamp_seconds", "gauge",
         "When the next scheduled rotation is due (Unix time; absent if rotation is not scheduled).");
  if (current && options_.rotate_every)
    sample("tenantdb_next_rotation_timestamp_seconds",
           format_number(unix_seconds(rotator::next_due(*current, *options_.rotate_every, options_.jitter, started_))));

  family("tenantdb_errors_total", "counter", "Failed operations, by what failed.");
  for (const char* source : {"api", "database", "files"}) {
    const auto it = errors_total_.find(source);
    sample(std::string("tenantdb_errors_total{source=\"") + source + "\"}",
           std::to_string(it == errors_total_.end() ? 0 : it->second));
  }
  family("tenantdb_events_failed_total", "counter",
         "Kubernetes Events that could not be created (RBAC without events, API errors); the work went on.");
  sample("tenantdb_events_failed_total", std::to_string(options_.events != nullptr ? options_.events->failed() : 0));
  family("tenantdb_files_published_total", "counter", "Times a new generation of the credential files was published.");
  sample("tenantdb_files_published_total", std::to_string(files_published_total_));
  family("tenantdb_account_lockout", "gauge",
         "1 for an account that logs in with none of the passwords the store holds for it (reset it with "
         "tenantdb-init).");
  if (current) {
    const std::string locked = locked_out();
    bool named = false;
    const credential_record record = parse_record(current->data);
    for (const std::string* user : {&record.user, &record.standby_user}) {
      if (!is_label_value(*user)) continue;
      named = named || *user == locked;
      sample("tenantdb_account_lockout{account=\"" + *user + "\"}", *user == locked ? "1" : "0");
    }
    if (!locked.empty() && !named && is_label_value(locked))
      sample("tenantdb_account_lockout{account=\"" + locked + "\"}", "1");
  }
  if (rotator_ != nullptr && options_.rotation.drain_max.count() > 0) {
    const drain_status& d = rotator_->drain();
    family("tenantdb_previous_account_sessions", "gauge",
           "Sessions still open on the previous account waiting to be retired (--retire-when-drained); 0 when none "
           "waits.");
    sample("tenantdb_previous_account_sessions", std::to_string(d.sessions));
    family("tenantdb_retirements_deferred_total", "counter",
           "Checks that found the previous account's sessions open and left it working (--retire-when-drained).");
    sample("tenantdb_retirements_deferred_total", std::to_string(d.deferred_total));
    family("tenantdb_retirements_forced_total", "counter",
           "Previous accounts retired with sessions still open: the maximum wait passed, or the next rotation was "
           "due.");
    sample("tenantdb_retirements_forced_total{reason=\"max_wait\"}", std::to_string(d.forced_max_wait_total));
    sample("tenantdb_retirements_forced_total{reason=\"next_rotation\"}", std::to_string(d.forced_next_rotation_total));
  }
  family("tenantdb_ready", "gauge",
         "1 when the files are in place, the last login check passed, the store is tenantdb's, no account "
         "is locked out and the proxy (if enabled) serves.");
  sample("tenantdb_ready", ready() ? "1" : "0");
  if (proxy_ != nullptr) out += proxy_->metrics();
  if (drift_ != nullptr) out += drift_->metrics();
  return out;
}

// Drift is reported, not enforced: the workload keeps its database (an unready sidecar
// would take the pod out of its Service for something only an admin can undo).
std::string sidecar_status::ready_note() const {
  return drift_ != nullptr ? drift_->note() : std::string();
}

}  // namespace tenantdb::sidecar
