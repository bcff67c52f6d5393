#include "tenantdb/rotation.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <utility>

#include <openssl/rand.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "tenantdb/error.hpp"
#include "tenantdb/log.hpp"
#include "tenantdb/password.hpp"
#include "tenantdb/time.hpp"

namespace tenantdb {
namespace {

using clock = rotator::clock;

// A continuing step (change, switch, retire) that loses a write to an unrelated writer
// (a user adding rotate-now, the init rewriting a moved server) reloads and writes
// again while the rotation is still ours; more conflicts than this mean something keeps
// rewriting the store.
constexpr int max_commit_rounds = 8;

// ---------------------------------------------------------------------------------------
// The rotation annotation.

enum class phase { standby, grace, retire, in_place };

const char* phase_name(phase p) {
  switch (p) {
    case phase::standby: return "standby";
    case phase::grace: return "grace";
    case phase::retire: return "retire";
    case phase::in_place: break;
  }
  return "in-place";
}

std::optional<phase> parse_phase(std::string_view text) {
  if (text == "standby") return phase::standby;
  if (text == "grace") return phase::grace;
  if (text == "retire") return phase::retire;
  if (text == "in-place") return phase::in_place;
  return std::nullopt;
}

struct rotation_state {
  phase step = phase::standby;
  std::string holder;
  std::string id;
  clock::time_point started;
  std::optional<clock::time_point> grace_until;
  /// Retire when drained: the previous account is retired by then even with sessions open.
  std::optional<clock::time_point> drain_until;
};

std::string to_json(const rotation_state& st) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  writer.Key("phase");
  writer.String(phase_name(st.step));
  writer.Key("holder");
  writer.String(st.holder);
  writer.Key("id");
  writer.String(st.id);
  writer.Key("started");
  writer.String(format_rfc3339(st.started));
  if (st.grace_until) {
    writer.Key("graceUntil");
    writer.String(format_rfc3339(*st.grace_until));
  }
  if (st.drain_until) {
    writer.Key("drainUntil");
    writer.String(format_rfc3339(*st.drain_until));
  }
  writer.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

std::optional<rotation_state> parse_rotation(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  if (doc.HasParseError() || !doc.IsObject()) return std::nullopt;
  const auto string_of = [&doc](const char* key) -> std::optional<std::string> {
    const auto it = doc.FindMember(key);
    if (it == doc.MemberEnd() || !it->value.IsString()) return std::nullopt;
    return std::string(it->value.GetString(), it->value.GetStringLength());
  };
  const auto p = string_of("phase");
  const auto holder = string_of("holder");
  const auto id = string_of("id");
  const auto started = string_of("started");
  if (!p || !holder || !id || !started) return std::nullopt;
  rotation_state out;
  const auto step = parse_phase(*p);
  const auto started_at = parse_rfc3339(*started);
  if (!step || !started_at) return std::nullopt;
  out.step = *step;
  out.holder = *holder;
  out.id = *id;
  out.started = *started_at;
  if (const auto until = string_of("graceUntil")) {
    out.grace_until = parse_rfc3339(*until);
    if (!out.grace_until) return std::nullopt;
  }
  // An unreadable drainUntil is ignored: the wait then ends at graceUntil + this
  // replica's own maximum.
  if (const auto until = string_of("drainUntil")) out.drain_until = parse_rfc3339(*until);
  return out;
}

std::string random_id() {
  std::array<unsigned char, 8> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1)
    throw error(error_kind::internal, "the system's random number generator failed (OpenSSL RAND_bytes)");
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out.push_back(hex[b >> 4]);
    out.push_back(hex[b & 0xf]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Store content.

/// One load of the store, parsed.
struct snapshot {
  stored_credentials stored;
  credential_record record;
  server_address server;
  credentials creds;
  std::optional<rotation_state> rotation;
  bool rotation_unreadable = false;

  const secret* pending() const { return record.pending_password.empty() ? nullptr : &record.pending_password; }
};

snapshot parse_snapshot(stored_credentials stored, const credential_store& store) {
  snapshot s;
  s.stored = std::move(stored);
  s.record = parse_record(s.stored.data);
  s.server = s.record.server();
  auto creds = s.record.to_credentials(s.server);
  if (!creds)
    throw error(error_kind::unavailable,
                store.describe() + " lacks database, user or password; waiting for the init to repair it")
        .about(store.describe())
        .retryable();
  s.creds = std::move(*creds);
  if (const std::string* text = annotation_value(s.stored.annotations, annotations::rotation)) {
    s.rotation = parse_rotation(*text);
    s.rotation_unreadable = !s.rotation;
  }
  return s;
}

// What a continuing step writes, from the snapshot it builds on.
struct change {
  credential_data data;
  std::map<std::string, std::string> annotations;
};

// Seconds rounded up, so a grace period written to the store is never shorter than asked.
clock::time_point ceil_seconds(clock::time_point t) {
  return std::chrono::ceil<std::chrono::seconds>(t);
}

/// One call of rotate() or advance().
struct run {
  engine& db;
  credential_store& store;
  const rotation_options& opts;
  const fault_hook& hook;
  clock::time_point now;
  bool rotation_waiting;
  drain_status& drain;
  std::pair<std::string, int>& drain_logged;

  void fault_point(std::string_view point) const {
    if (hook) hook(point);
  }

  std::optional<snapshot> load() const {
    auto stored = store.load();
    if (!stored) return std::nullopt;
    return parse_snapshot(std::move(*stored), store);
  }

  // The data the store should hold for `creds`, keeping keys this code does not manage.
  credential_data data_for(const snapshot& s, const credentials& creds, const secret* pending) const {
    credential_data out = s.stored.data;
    for (const char* key : {keys::standby_user, keys::standby_password, keys::ca_cert, pending_password_key})
      out.erase(key);
    const std::string ca_file = opts.ca_file.empty() ? s.record.data_source_ca_file : opts.ca_file;
    for (auto& [k, v] : to_data(creds, ca_file)) out[k] = std::move(v);
    if (pending != nullptr) out[pending_password_key] = *pending;
    return out;
  }

  // Writes the step built by `make` on `s`, conditional on the version `s` was loaded at.
  // On a conflict it reloads and builds again, as long as the rotation in the store is
  // still this one (same id, holder, phase and pending password). Returns false if
  // another replica took it over or removed it; `s` becomes what was written.
  template <class Make>
  bool commit(snapshot& s, phase expected, const secret* pending, Make make) const {
    const std::string id = s.rotation ? s.rotation->id : std::string();
    for (int round = 0; round < max_commit_rounds; ++round) {
      change next = make(s);
      const auto version = store.replace(next.data, next.annotations, s.stored.version);
      if (version) {
        s = parse_snapshot(stored_credentials{std::move(next.data), *version, std::move(next.annotations)}, store);
        return true;
      }
      auto fresh = load();
      if (!fresh || !fresh->rotation || fresh->rotation->id != id || fresh->rotation->holder != opts.holder ||
          fresh->rotation->step != expected)
        return false;
      const secret* now_pending = fresh->pending();
      if ((pending == nullptr) != (now_pending == nullptr) || (pending != nullptr && !(*pending == *now_pending)))
        return false;
      s = std::move(*fresh);
    }
    throw error(error_kind::unavailable, store.describe() + " kept changing during a password rotation; will retry")
        .retryable();
  }

  rotation_outcome lost(const snapshot& s, phase p, const std::string& id) const {
    log::warn("another replica took over the rotation",
              {{"phase", phase_name(p)}, {"user", s.creds.active.user}, {"id", id}, {"store", store.describe()}});
    return rotation_outcome::lost_race;
  }

  // The account whose password the phase changes, with the password the store records
  // for it.
  static std::optional<login> account_of(const snapshot& s, phase p) {
    if (p == phase::in_place) return s.creds.active;
    return s.creds.standby;
  }

  // Drops the intent (pending password and rotation annotation), restoring what the store
  // said before the claim. Only when the database is known not to have changed. A
  // non-empty `locked_out` is recorded as the lockout annotation in the same write.
  void roll_back(snapshot& s, phase p, const std::string& locked_out = {}) const {
    const std::string id = s.rotation ? s.rotation->id : std::string();
    const secret* pending = s.pending();
    const secret pending_copy = pending != nullptr ? *pending : secret();
    const bool ok = commit(s, p, pending != nullptr ? &pending_copy : nullptr, [&](const snapshot& cur) {
      change c{cur.stored.data, cur.stored.annotations};
      c.data.erase(pending_password_key);
      remove_annotation(c.annotations, annotations::rotation);
      if (!locked_out.empty()) c.annotations[annotations::lockout] = locked_out;
      return c;
    });
    if (ok) log::warn("rotation rolled back; the store is as before", {{"phase", phase_name(p)}, {"id", id}});
  }

  // Says that `user` logs in with none of the passwords the store holds for it: the
  // fault only an admin can repair.
  static void report_lockout(phase p, const std::string& user, const std::string& id) {
    log::error(p == phase::in_place
                   ? "account locked out: the active account logs in with none of the passwords the store holds for "
                     "it, so someone who knew one changed it; rotation has stopped and the sidecar reports not ready "
                     "until tenantdb-init resets it with the connector's admin (restart the pod or run the init)"
                   : "account locked out: the standby account logs in with none of the passwords the store holds for "
                     "it, so someone who knew one changed it (a leaked previous password?); rotation has stopped and "
                     "the sidecar reports not ready until tenantdb-init resets it with the connector's admin (restart "
                     "the pod or run the init); the active credential is untouched",
               {{"phase", phase_name(p)}, {"user", user}, {"id", id}, {"annotation", annotations::lockout}});
  }

  // Records a lockout of `user` in the store, unless it is recorded already (one write,
  // not one per call). A lost write is retried by the next call.
  void record_lockout(snapshot& s, const std::string& user) const {
    if (const std::string* marked = annotation_value(s.stored.annotations, annotations::lockout);
        marked && *marked == user)
      return;
    auto annotations = s.stored.annotations;
    annotations[annotations::lockout] = user;
    const auto version = store.replace(s.stored.data, annotations, s.stored.version);
    if (version) s = parse_snapshot(stored_credentials{s.stored.data, *version, std::move(annotations)}, store);
  }

  // A step proved that `user` works with a password the store holds: a lockout recorded
  // for it is over.
  static void clear_lockout(change& c, const std::string& user) {
    if (const std::string* marked = annotation_value(c.annotations, annotations::lockout); marked && *marked == user)
      remove_annotation(c.annotations, annotations::lockout);
  }

  // True if `account.user` logs in with `password`; throws if the server gives no verdict.
  bool logs_in(const snapshot& s, const std::string& user, const secret& password) const {
    try {
      db.verify_login(s.server, login{user, password}, s.creds.database, opts.timeouts);
      return true;
    } catch (const error& e) {
      if (e.kind() != error_kind::verification) throw;  // unreachable server: no verdict
      return false;
    }
  }

  // Step 2 (or the retire change): the account sets its own password to `next`. Returns
  // true once the account has `next`. If the login is refused, the account may already
  // have `next` (a replica we took over from finished its change late): that counts as
  // done. Otherwise nothing changed: a fresh rotation (`may_roll_back`) drops its intent
  // and passes the error on; a recovery leaves the intent for an admin and returns false.
  bool change_password(snapshot& s, phase p, const login& account, const secret& next, bool may_roll_back) const {
    const std::string id = s.rotation ? s.rotation->id : std::string();
    try {
      db.change_own_password(s.server, account, s.creds.database, next, opts.timeouts);
    } catch (const error& e) {
      if (e.kind() != error_kind::verification) throw;  // unknown outcome: recovery decides
      if (logs_in(s, account.user, next)) {
        log::warn("the account already had the pending password",
                  {{"phase", phase_name(p)}, {"user", account.user}, {"id", id}});
        return true;
      }
      report_lockout(p, account.user, id);
      if (!may_roll_back) {
        record_lockout(s, account.user);
        return false;
      }
      roll_back(s, p, account.user);
      throw;
    }
    log::info("changed own password", {{"phase", phase_name(p)}, {"user", account.user}, {"id", id}});
    return true;
  }

  // Someone rewrote the store without the standby account in the middle of a dual
  // rotation; the rotation stays recorded and recovery reports it.
  void require_standby(const snapshot& cur) const {
    if (!cur.creds.standby)
      throw error(error_kind::internal, store.describe() + " lost its standby account during a rotation")
          .about(store.describe());
  }

  // Step 3 of dual: the standby (now holding the pending password) becomes active; the
  // previous active stays valid as the standby until the grace period ends.
  bool switch_accounts(snapshot& s, const secret& pending) const {
    const std::string id = s.rotation->id;
    const bool ok = commit(s, phase::standby, &pending, [&](const snapshot& cur) {
      require_standby(cur);
      credentials next = cur.creds;
      next.active = login{cur.creds.standby->user, pending};
      next.standby = cur.creds.active;
      rotation_state st = *cur.rotation;
      st.step = phase::grace;
      st.grace_until = ceil_seconds(now + opts.grace);
      if (opts.drain_max.count() > 0) st.drain_until = *st.grace_until + opts.drain_max;
      change c{data_for(cur, next, nullptr), cur.stored.annotations};
      c.annotations[annotations::rotation] = to_json(st);
      c.annotations[annotations::last_rotation] = format_rfc3339(now);
      remove_annotation(c.annotations, annotations::rotate_now);
      clear_lockout(c, cur.creds.standby->user);
      return c;
    });
    if (!ok) return false;
    log::info("switched to the rotated account; the previous one works until the grace period ends",
              {{"phase", "grace"},
               {"user", s.creds.active.user},
               {"id", id},
               {"previousUser", s.creds.standby ? s.creds.standby->user : ""},
               {"graceUntil", format_rfc3339(*s.rotation->grace_until)}});
    fault_point(fault_points::switched);
    return true;
  }

  // Step 3 of in-place: the store gets the password the account now has.
  bool store_in_place(snapshot& s, const secret& pending) const {
    const std::string id = s.rotation->id;
    const bool ok = commit(s, phase::in_place, &pending, [&](const snapshot& cur) {
      credentials next = cur.creds;
      next.active.password = pending;
      change c{data_for(cur, next, nullptr), cur.stored.annotations};
      remove_annotation(c.annotations, annotations::rotation);
      c.annotations[annotations::last_rotation] = format_rfc3339(now);
      remove_annotation(c.annotations, annotations::rotate_now);
      clear_lockout(c, cur.creds.active.user);
      return c;
    });
    if (!ok) return false;
    log::info("stored the new password", {{"phase", "in-place"}, {"user", s.creds.active.user}, {"id", id}});
    fault_point(fault_points::switched);
    return true;
  }

  // Last step of retire: the standby's record is the password nobody was given.
  bool finish_retire(snapshot& s, const secret& pending) const {
    const std::string id = s.rotation->id;
    const bool ok = commit(s, phase::retire, &pending, [&](const snapshot& cur) {
      require_standby(cur);
      credentials next = cur.creds;
      next.standby->password = pending;
      change c{data_for(cur, next, nullptr), cur.stored.annotations};
      remove_annotation(c.annotations, annotations::rotation);
      clear_lockout(c, cur.creds.standby->user);
      return c;
    });
    if (!ok) return false;
    log::info("retired the previous credential", {{"phase", "retire"}, {"user", s.creds.standby->user}, {"id", id}});
    fault_point(fault_points::retired);
    return true;
  }

  // After the change of `p`: the step that makes the store agree.
  bool finish(snapshot& s, phase p, const secret& pending) const {
    switch (p) {
      case phase::standby: return switch_accounts(s, pending);
      case phase::in_place: return store_in_place(s, pending);
      case phase::retire: return finish_retire(s, pending);
      case phase::grace: break;
    }
    return true;
  }

  rotation_outcome rotate() const {
    auto loaded = load();
    if (!loaded)
      throw error(error_kind::unavailable, store.describe() + " holds no credentials yet; has the init run?")
          .about(store.describe())
          .retryable();
    snapshot& s = *loaded;
    if (s.rotation || s.rotation_unreadable) {
      log::debug("a rotation is in flight", {{"phase", s.rotation ? phase_name(s.rotation->step) : "unknown"},
                                             {"id", s.rotation ? s.rotation->id : ""}});
      return rotation_outcome::nothing;
    }
    const phase p = opts.strategy == rotation_strategy::dual ? phase::standby : phase::in_place;
    if (p == phase::standby && !s.creds.standby)
      throw error(error_kind::usage, "the sidecar's strategy is dual but " + store.describe() +
                                         " has no standby account (the init ran with --strategy in-place); use the "
                                         "same strategy for both")
          .about("--strategy");

    // 1 claim: the intent is in the store before the database is touched, and the
    // conditional write elects one rotating replica.
    const secret next = generate_password(opts.password_length);
    rotation_state st;
    st.step = p;
    st.holder = opts.holder;
    st.id = random_id();
    st.started = now;
    credential_data data = s.stored.data;
    data[pending_password_key] = next;
    auto annotations = s.stored.annotations;
    annotations[annotations::rotation] = to_json(st);
    const auto version = store.replace(data, annotations, s.stored.version);
    const login account = *account_of(s, p);
    if (!version) {
      log::info("another replica started a rotation first",
                {{"phase", phase_name(p)}, {"user", account.user}, {"id", st.id}});
      return rotation_outcome::lost_race;
    }
    s = parse_snapshot(stored_credentials{std::move(data), *version, std::move(annotations)}, store);
    log::info("rotation claimed", {{"phase", phase_name(p)}, {"user", account.user}, {"id", st.id}});
    fault_point(fault_points::claimed);

    // 2 change, 3 switch / store.
    change_password(s, p, account, next, true);
    fault_point(fault_points::changed);
    if (!finish(s, p, next)) return lost(s, p, st.id);
    return rotation_outcome::rotated;
  }

  // 4 retire, once the grace period is over.
  rotation_outcome retire(snapshot& s) const {
    if (!s.creds.standby) {
      log::error("a grace period is recorded but the store has no standby account; dropping it",
                 {{"phase", "grace"}, {"id", s.rotation->id}});
      roll_back(s, phase::grace);
      return rotation_outcome::nothing;
    }
    const secret next = generate_password(opts.password_length);
    const std::string id = s.rotation->id;
    rotation_state st = *s.rotation;
    st.step = phase::retire;
    st.holder = opts.holder;
    st.started = now;
    credential_data data = s.stored.data;
    data[pending_password_key] = next;
    auto annotations = s.stored.annotations;
    annotations[annotations::rotation] = to_json(st);
    const auto version = store.replace(data, annotations, s.stored.version);
    const login account = *s.creds.standby;
    if (!version) {
      log::info("another replica is retiring the previous credential",
                {{"phase", "retire"}, {"user", account.user}, {"id", id}});
      return rotation_outcome::lost_race;
    }
    s = parse_snapshot(stored_credentials{std::move(data), *version, std::move(annotations)}, store);
    log::info("retiring the previous credential", {{"phase", "retire"}, {"user", account.user}, {"id", id}});
    fault_point(fault_points::retire_claimed);

    change_password(s, phase::retire, account, next, true);
    fault_point(fault_points::retire_changed);
    if (!finish(s, phase::retire, next)) return lost(s, phase::retire, id);
    return rotation_outcome::retired;
  }

  // A rotation whose holder crashed (or this replica, before a restart). The account's
  // password tells how far it got. The rotation is completed, never rolled back: the
  // pending password is already in the store, completing needs no other state, and a
  // roll-back could race a late change by the previous holder. The probe is read-only,
  // so a rotation that cannot complete is not rewritten on every call.
  rotation_outcome recover(snapshot& s) const {
    const rotation_state was = *s.rotation;
    const phase p = was.step;
    const secret* pending_ptr = s.pending();
    const auto account = account_of(s, p);
    if (pending_ptr == nullptr || !account) {
      // Without a pending password no account can be between passwords.
      log::warn("dropping a rotation record without a pending password or account",
                {{"phase", phase_name(p)}, {"id", was.id}, {"holder", was.holder}});
      roll_back(s, p);
      return rotation_outcome::recovered;
    }
    const secret pending = *pending_ptr;

    // A lockout already recorded for the account is not probed again: only an admin
    // (tenantdb-init) can end it, and it removes the record when it does.
    if (const std::string* marked = annotation_value(s.stored.annotations, annotations::lockout);
        marked && *marked == account->user)
      return rotation_outcome::nothing;
    const bool applied = logs_in(s, account->user, pending);
    if (!applied && !logs_in(s, account->user, account->password)) {
      report_lockout(p, account->user, was.id);
      record_lockout(s, account->user);
      return rotation_outcome::nothing;
    }

    // Take it over: one replica wins this write, and `started` restarts the clock.
    rotation_state st = was;
    st.holder = opts.holder;
    st.started = now;
    auto annotations = s.stored.annotations;
    annotations[annotations::rotation] = to_json(st);
    const auto version = store.replace(s.stored.data, annotations, s.stored.version);
    if (!version) return rotation_outcome::lost_race;
    s = parse_snapshot(stored_credentials{s.stored.data, *version, std::move(annotations)}, store);
    log::warn("recovering an interrupted rotation", {{"phase", phase_name(p)},
                                                     {"user", account->user},
                                                     {"id", was.id},
                                                     {"previousHolder", was.holder},
                                                     {"applied", applied}});

    if (!applied && !change_password(s, p, *account, pending, false)) return rotation_outcome::nothing;
    fault_point(p == phase::retire ? fault_points::retire_changed : fault_points::changed);
    if (!finish(s, p, pending)) return lost(s, p, was.id);
    log::info("recovered the interrupted rotation",
              {{"phase", phase_name(p)}, {"user", account->user}, {"id", was.id}});
    return rotation_outcome::recovered;
  }

  // Retire when drained (opts.drain_max): true while the previous account, its grace
  // period over, still has open sessions and may keep them (the deadline has not passed
  // and no rotation is waiting). Counted with the account's own login; writes nothing.
  bool wait_for_drain(const snapshot& s) const {
    if (opts.drain_max.count() <= 0 || !s.creds.standby) return false;
    const rotation_state& st = *s.rotation;
    const clock::time_point grace_end = st.grace_until.value_or(st.started);
    const clock::time_point deadline = st.drain_until.value_or(grace_end + opts.drain_max);
    const login& previous = *s.creds.standby;
    int open = 0;
    try {
      open = db.count_own_sessions(s.server, previous, s.creds.database, opts.timeouts);
    } catch (const error& e) {
      // Refused: someone changed its password; the retire step finds and records that.
      if (e.kind() == error_kind::verification) return false;
      throw;  // no verdict (server unreachable): the next sync counts again
    }
    drain.sessions = open;
    const bool repeat = drain_logged.first == st.id;
    if (open <= 0) {
      if (repeat)
        log::info("the previous account has no open sessions left; retiring it",
                  {{"phase", "grace"}, {"user", previous.user}, {"id", st.id}});
      return false;
    }
    if (!rotation_waiting && now < deadline) {
      ++drain.deferred_total;
      if (!repeat || drain_logged.second != open)
        log::info("not retiring the previous account yet: it still has open sessions",
                  {{"phase", "grace"},
                   {"user", previous.user},
                   {"id", st.id},
                   {"sessions", static_cast<std::int64_t>(open)},
                   {"retireBy", format_rfc3339(deadline)}});
      drain_logged = {st.id, open};
      return true;
    }
    if (rotation_waiting) {
      ++drain.forced_next_rotation_total;
      log::warn(
          "retiring the previous account with sessions still open: the next rotation is due and needs its slot",
          {{"phase", "grace"}, {"user", previous.user}, {"id", st.id}, {"sessions", static_cast<std::int64_t>(open)}});
    } else {
      ++drain.forced_max_wait_total;
      log::warn(
          "retiring the previous account with sessions still open: the maximum wait (--retire-when-drained) has "
          "passed; they keep running, new logins with its password fail",
          {{"phase", "grace"},
           {"user", previous.user},
           {"id", st.id},
           {"sessions", static_cast<std::int64_t>(open)},
           {"retireBy", format_rfc3339(deadline)}});
    }
    return false;
  }

  rotation_outcome advance() const {
    auto raw = store.load();
    if (!raw || annotation_value(raw->annotations, annotations::rotation) == nullptr) return rotation_outcome::nothing;
    snapshot s = parse_snapshot(std::move(*raw), store);
    if (s.rotation_unreadable) {
      if (s.pending() == nullptr) {
        // No pending password: no account is between passwords, so the record can go.
        log::warn("dropping an unreadable rotation annotation", {{"store", store.describe()}});
        change c{s.stored.data, s.stored.annotations};
        remove_annotation(c.annotations, annotations::rotation);
        return store.replace(c.data, c.annotations, s.stored.version) ? rotation_outcome::recovered
                                                                      : rotation_outcome::lost_race;
      }
      log::error(
          "the rotation annotation is unreadable and a pending password is stored; an admin must "
          "decide which account has it (the active credential is untouched)",
          {{"store", store.describe()}});
      return rotation_outcome::nothing;
    }
    const rotation_state& st = *s.rotation;
    if (st.step == phase::grace) {
      if (st.grace_until && now < *st.grace_until) return rotation_outcome::nothing;
      if (wait_for_drain(s)) return rotation_outcome::nothing;
      const rotation_outcome outcome = retire(s);
      drain.sessions = 0;
      return outcome;
    }
    if (st.holder == opts.holder || now - st.started >= opts.takeover_after) return recover(s);
    return rotation_outcome::nothing;
  }
};

std::uint64_t fnv1a(std::string_view text) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace

rotator::rotator(engine& db, credential_store& store, rotation_options options, fault_hook hook)
    : db_(db), store_(store), options_(std::move(options)), hook_(std::move(hook)) {
  const auto longest_step = options_.timeouts.connect + options_.timeouts.statement;
  if (options_.takeover_after <= longest_step)
    log::warn(
        "takeover_after is not longer than the database timeouts; a slow replica's rotation may be taken "
        "over while it still runs",
        {{"takeoverAfterSeconds", static_cast<std::int64_t>(options_.takeover_after.count())},
         {"timeoutSeconds", static_cast<std::int64_t>(longest_step.count())}});
}

rotation_outcome rotator::rotate(clock::time_point now) {
  return run{db_, store_, options_, hook_, now, false, drain_, drain_logged_}.rotate();
}

rotation_outcome rotator::advance(clock::time_point now, bool rotation_waiting) {
  // -1 until this call counts the previous account's sessions: zero if it never does
  // (no account waits), the last count if it fails before counting.
  const int last = drain_.sessions;
  drain_.sessions = -1;
  try {
    const rotation_outcome outcome =
        run{db_, store_, options_, hook_, now, rotation_waiting, drain_, drain_logged_}.advance();
    if (drain_.sessions < 0) drain_.sessions = 0;
    return outcome;
  } catch (...) {
    if (drain_.sessions < 0) drain_.sessions = last;
    throw;
  }
}

rotator::clock::time_point rotator::next_due(const stored_credentials& stored, std::chrono::seconds every,
                                             double jitter, clock::time_point fallback) {
  clock::time_point base = fallback;
  if (const std::string* last = annotation_value(stored.annotations, annotations::last_rotation)) {
    if (const auto parsed = parse_rfc3339(*last)) {
      base = *parsed;
    } else {
      log::warn("ignoring an unreadable last-rotation annotation", {{"annotation", annotations::last_rotation}});
    }
  }
  if (!(jitter > 0.0)) jitter = 0.0;  // also NaN
  jitter = std::min(jitter, 1.0);
  const std::uint64_t h = fnv1a(parse_record(stored.data).database);
  // Top 53 bits as a fraction in [0, 1), mapped onto [-1, 1].
  const double unit = static_cast<double>(h >> 11) / static_cast<double>(std::uint64_t{1} << 53);
  const double shift = (2.0 * unit - 1.0) * jitter * static_cast<double>(every.count());
  const auto offset = std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(shift));
  return base + every + offset;
}

std::string rotator::locked_out_account(const stored_credentials& stored) {
  const std::string* user = annotation_value(stored.annotations, annotations::lockout);
  return user != nullptr ? *user : std::string();
}

bool rotator::rotation_requested(const stored_credentials& stored) {
  return annotation_value(stored.annotations, annotations::rotate_now) != nullptr;
}

std::optional<rotator::clock::time_point> rotator::grace_ends(const stored_credentials& stored) {
  const std::string* text = annotation_value(stored.annotations, annotations::rotation);
  if (text == nullptr) return std::nullopt;
  const auto st = parse_rotation(*text);
  if (!st || st->step != phase::grace) return std::nullopt;
  return st->grace_until;
}

}  // namespace tenantdb
