#pragma once
// The proxy's feed: owns the local database proxy (proxy/service.hpp) when --proxy-listen
// is set, and keeps the upstream it logs in with in step with the store. The agent hands
// it every store content it learns: each load (the sync) and each write of the rotator
// (feeding_store), so an in-place rotation's pending password reaches the proxy before the
// account's password changes, and a dual switch's new active account before the previous
// one is retired.
//
// Threading: everything here runs on the agent's thread. The proxy serves on its own
// thread; the two meet only in upstream_source::set (a mutex held for a pointer swap) and
// in the proxy's counters, so nothing the agent does (API calls, logins, rotations) ever
// holds up proxied traffic, and the agent never waits on the proxy except to stop it.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "proxy/service.hpp"
#include "tenantdb/agent.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/store.hpp"

namespace tenantdb::sidecar {

/// The upstream a store's content names: its server, database and active account; with
/// the in-place layout (no standby account) a pending password is the active account's
/// next one and goes with it (with the dual layout it is the standby's, never the
/// active's). Throws tenantdb::error (connector) for content that cannot be used.
proxy::upstream upstream_from(const credential_data& data);

class proxy_feed {
public:
  explicit proxy_feed(const proxy_settings& settings);
  ~proxy_feed();
  proxy_feed(const proxy_feed&) = delete;
  proxy_feed& operator=(const proxy_feed&) = delete;

  /// The store holds `data` now: the proxy's new sessions log in with it from here on.
  /// The first time usable credentials are known the proxy starts listening for their
  /// engine; a failed bind is logged once and retried by later calls and by retry().
  /// Content that cannot be used keeps the previous upstream (logged once).
  void update(const credential_data& data);
  /// Retries a failed start with the credentials already known (each sync).
  void retry();
  /// Closes the listener and every proxied connection; joins the proxy's thread.
  void stop();

  /// Listening, with credentials, for the store's engine.
  bool serving() const;
  /// Why not serving, from a fixed set for /readyz ("proxy cannot listen", "proxy not
  /// serving"); details go to the log.
  std::string reason() const;
  /// tenantdb_proxy_listening and the proxy's tenantdb_proxy_* families.
  std::string metrics() const;
  /// The port bound (0 before the proxy listens).
  std::uint16_t port() const noexcept { return service_.port(); }
  /// Where the proxy's new sessions log in (for tests; the feed sets it).
  const proxy::upstream_source& source() noexcept { return service_.source(); }

private:
  void start();
  void warn_once(const std::string& what, const std::string& detail);

  proxy::service service_;
  std::optional<engine_type> engine_;  ///< the engine of the credentials known, once usable
  credential_data last_;               ///< the content last set (to skip unchanged loads)
  bool have_upstream_ = false;
  bool bind_failed_ = false;
  bool engine_changed_ = false;
  std::string last_warning_;  ///< the last problem logged, so a repeated one is logged once
};

/// A credential_store that hands every content it writes to a proxy_feed (null: none):
/// the rotator writes through it, so the proxy learns of a claim, a switch and a stored
/// password at the moment the store has it, before the rotator goes on to the database.
class feeding_store final : public credential_store {
public:
  feeding_store(credential_store& inner, proxy_feed* feed) : inner_(inner), feed_(feed) {}

  std::optional<stored_credentials> load() override { return inner_.load(); }
  std::optional<std::string> create(const credential_data& data,
                                    const std::map<std::string, std::string>& annotations) override;
  std::optional<std::string> replace(const credential_data& data, const std::map<std::string, std::string>& annotations,
                                     const std::string& version) override;
  std::string describe() const override { return inner_.describe(); }

private:
  credential_store& inner_;
  proxy_feed* feed_;
};

}  // namespace tenantdb::sidecar
