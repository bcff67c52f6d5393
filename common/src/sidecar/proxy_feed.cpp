#include "sidecar/proxy_feed.hpp"

#include <utility>

#include "tenantdb/error.hpp"
#include "tenantdb/log.hpp"

namespace tenantdb::sidecar {
namespace {

proxy::options to_proxy_options(const proxy_settings& s) {
  proxy::options o;
  o.address = s.listen.host;
  o.port = s.listen.port;
  o.local_password = s.local_password;
  o.max_connections = s.max_connections;
  o.connect_timeout = s.connect_timeout;
  return o;
}

const char* protocol_name(engine_type e) {
  return e == engine_type::postgres ? "postgresql" : "mysql";
}

}  // namespace

proxy::upstream upstream_from(const credential_data& data) {
  const credential_record record = parse_record(data);
  proxy::upstream u;
  u.server = record.server();
  const auto active = record.active();
  if (!active || record.database.empty())
    throw error(error_kind::connector, "the credentials lack user, password or database");
  u.database = record.database;
  u.account = *active;
  // In-place (one account): the pending password is the one the active account is being
  // given. Dual: it belongs to the standby (a claim) or to the previous account (a
  // retire), and the active account never logs in with it.
  const bool in_place_layout = record.standby_user.empty() && record.standby_password.empty();
  if (in_place_layout) u.pending_password = record.pending_password;
  return u;
}

proxy_feed::proxy_feed(const proxy_settings& settings) : service_(to_proxy_options(settings)) {}

proxy_feed::~proxy_feed() {
  stop();
}

void proxy_feed::warn_once(const std::string& what, const std::string& detail) {
  const std::string key = what + "\n" + detail;
  if (key == last_warning_) return;
  last_warning_ = key;
  log::warn(what, {{"error", detail}});
}

void proxy_feed::update(const credential_data& data) {
  if (have_upstream_ && same_data(data, last_)) {
    start();
    return;
  }
  proxy::upstream next;
  try {
    next = upstream_from(data);
  } catch (const error& e) {
    warn_once(have_upstream_ ? "proxy: the store's credentials cannot be used; new sessions keep the previous ones"
                             : "proxy: the store's credentials cannot be used; the proxy does not serve yet",
              e.what());
    start();
    return;
  }
  last_warning_.clear();
  const engine_type engine = next.server.type;
  if (service_.running() && engine != service_.engine()) {
    // The proxy speaks one wire protocol; new sessions get "no credentials" rather than
    // a login on a server of the other kind.
    if (!engine_changed_)
      log::error("proxy: the store's server type changed; restart the sidecar so the proxy speaks its protocol",
                 {{"was", protocol_name(service_.engine())}, {"now", protocol_name(engine)}});
    engine_changed_ = true;
    service_.source().set(nullptr);
    last_ = data;
    return;
  }
  engine_changed_ = false;
  engine_ = engine;
  service_.source().set(std::make_shared<const proxy::upstream>(std::move(next)));
  last_ = data;
  if (!have_upstream_) log::info("proxy: credentials known", {{"protocol", protocol_name(engine)}});
  have_upstream_ = true;
  start();
}

void proxy_feed::retry() {
  start();
}

void proxy_feed::start() {
  if (service_.running() || !have_upstream_ || !engine_) return;
  try {
    service_.start(*engine_);
    bind_failed_ = false;
  } catch (const std::exception& e) {
    if (!bind_failed_)
      log::error("proxy cannot listen; retrying at every sync, not ready until it can", {{"error", e.what()}});
    else
      log::debug("proxy still cannot listen", {{"error", e.what()}});
    bind_failed_ = true;
  }
}

void proxy_feed::stop() {
  if (!service_.running()) return;
  service_.stop();
  log::info("proxy stopped");
}

bool proxy_feed::serving() const {
  return service_.running() && have_upstream_ && !engine_changed_;
}

std::string proxy_feed::reason() const {
  if (serving()) return "ready";
  return bind_failed_ ? "proxy cannot listen" : "proxy not serving";
}

std::string proxy_feed::metrics() const {
  std::string out =
      "# HELP tenantdb_proxy_serving 1 when the local database proxy listens and has credentials to log in with.\n"
      "# TYPE tenantdb_proxy_serving gauge\n"
      "tenantdb_proxy_serving ";
  out += serving() ? "1\n" : "0\n";
  out += service_.stats().render();
  return out;
}

std::optional<std::string> feeding_store::create(const credential_data& data,
                                                 const std::map<std::string, std::string>& annotations) {
  auto version = inner_.create(data, annotations);
  if (version && feed_ != nullptr) {
    try {
      feed_->update(data);
    } catch (const std::exception& e) {
      log::error("proxy: updating its credentials failed unexpectedly", {{"error", e.what()}});
    }
  }
  return version;
}

std::optional<std::string> feeding_store::replace(const credential_data& data,
                                                  const std::map<std::string, std::string>& annotations,
                                                  const std::string& version) {
  auto next = inner_.replace(data, annotations, version);
  if (next && feed_ != nullptr) {
    try {
      feed_->update(data);
    } catch (const std::exception& e) {
      log::error("proxy: updating its credentials failed unexpectedly", {{"error", e.what()}});
    }
  }
  return next;
}

}  // namespace tenantdb::sidecar
