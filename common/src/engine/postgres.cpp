// PostgreSQL engine over libpq.
//
// Passwords reach the server only as SCRAM verifiers computed here
// (PQencryptPasswordConn); connection parameters go through keyword arrays, never a
// conninfo string or the environment. The tenant's database and every object in it
// belong to a NOLOGIN group role named like the database; login roles are members with
// `role` preset to the group, so whatever one login creates the other can use.

#include <fcntl.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "base/unique_fd.hpp"
#include "engine/engines.hpp"
#include "engine/helpers.hpp"
#include "engine/temp_ca_file.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/limits.hpp"
#include "tenantdb/log.hpp"
#include "tenantdb/ownership.hpp"
#include "tenantdb/retry.hpp"
#include "tenantdb/secret.hpp"

namespace tenantdb::detail {
namespace {

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

struct conn_deleter {
  void operator()(PGconn* conn) const noexcept { PQfinish(conn); }
};
using conn_ptr = std::unique_ptr<PGconn, conn_deleter>;

struct result_deleter {
  void operator()(PGresult* res) const noexcept { PQclear(res); }
};
using result_ptr = std::unique_ptr<PGresult, result_deleter>;

/// libpq's multi-line messages as one line.
std::string one_line(const char* message) {
  std::string out;
  if (message == nullptr) return out;
  bool line_break = false;
  bool space = false;
  for (const char* p = message; *p != '\0'; ++p) {
    const char c = *p;
    if (c == '\n' || c == '\r') {
      line_break = true;
      continue;
    }
    if (c == '\t') {
      space = true;
      continue;
    }
    if (!out.empty()) {
      if (line_break)
        out += "; ";
      else if (space)
        out += ' ';
    }
    line_break = space = false;
    out += c;
  }
  return out;
}

// PostgreSQL's identifier limit is 63 bytes; tenantdb's names are lowercase ASCII.
constexpr std::size_t max_identifier = 63;

void check_identifier(std::string_view name, std::string_view what) {
  if (!is_identifier(name, max_identifier))
    throw error(error_kind::usage, "PostgreSQL " + std::string(what) + " \"" + printable(name) +
                                       "\" is not a valid tenantdb name: expected [a-z][a-z0-9_]{0,62}");
}

/// PQescapeIdentifier; the name must have passed check_identifier.
std::string quote_ident(PGconn* conn, const std::string& name) {
  char* quoted = PQescapeIdentifier(conn, name.data(), name.size());
  if (quoted == nullptr)
    throw error(error_kind::internal, "could not quote a PostgreSQL identifier: " + one_line(PQerrorMessage(conn)));
  std::string out(quoted);
  PQfreemem(quoted);
  return out;
}

/// PQescapeLiteral; the copy libpq made is wiped before it is freed.
void append_literal(PGconn* conn, std::string& out, std::string_view value) {
  char* quoted = PQescapeLiteral(conn, value.data(), value.size());
  if (quoted == nullptr)
    throw error(error_kind::internal, "could not quote a PostgreSQL literal: " + one_line(PQerrorMessage(conn)));
  out += quoted;
  OPENSSL_cleanse(quoted, std::strlen(quoted));
  PQfreemem(quoted);
}

/// The SCRAM-SHA-256 verifier of `password`, computed on the client.
void append_scram_verifier_literal(PGconn* conn, std::string& out, const secret& password, const std::string& user) {
  char* verifier = PQencryptPasswordConn(conn, password.reveal().c_str(), user.c_str(), "scram-sha-256");
  if (verifier == nullptr)
    throw error(error_kind::internal,
                "could not compute the SCRAM verifier of a password: " + one_line(PQerrorMessage(conn)));
  try {
    append_literal(conn, out, verifier);
  } catch (...) {
    OPENSSL_cleanse(verifier, std::strlen(verifier));
    PQfreemem(verifier);
    throw;
  }
  OPENSSL_cleanse(verifier, std::strlen(verifier));
  PQfreemem(verifier);
}

// ---------------------------------------------------------------------------------------
// Connecting
// ---------------------------------------------------------------------------------------

void ignore_notice(void* /*arg*/, const char* /*message*/) {}

/// Maps a failed connection attempt to a tenantdb::error. libpq exposes no SQLSTATE for
/// connection failures, so the server's (English) message decides; anything unknown that
/// the server said (FATAL) is a refusal, anything else a network problem worth retrying.
[[noreturn]] void throw_connect_failure(const server_address& server, const std::string& user,
                                        const std::string& database, party who, const std::string& detail) {
  const std::string text = lower(detail);
  const std::string at = endpoint(server);
  const std::string said = " (libpq: " + detail + ")";

  // channel_binding=require (set for the unverified TLS modes) refused what the server
  // asked for before anything was sent: cleartext, MD5, SCRAM without channel binding, or
  // no TLS at all. A server on md5/password authentication, or a man in the middle.
  if (contains(text, "channel binding")) {
    throw error(error_kind::connector,
                "PostgreSQL at " + at +
                    " offered no TLS or asked for authentication without channel binding, which with sslMode=" +
                    std::string(to_string(server.tls)) +
                    " could hand the password to a server whose certificate is not checked: set sslMode: "
                    "verify-full (and caCert) in the connector, or have the server use scram-sha-256 over TLS" +
                    said)
        .about("sslMode");
  }

  // TLS: the connector's caCert or sslMode does not fit the server. Retrying cannot help.
  if (contains(text, "certificate") || contains(text, "does not support ssl") || contains(text, "ssl negotiation") ||
      contains(text, "tlsv1 alert") || contains(text, "wrong version number") || contains(text, "sslmode value")) {
    throw error(error_kind::connector,
                "TLS with PostgreSQL at " + at + " failed: check caCert and sslMode in the connector" + said)
        .about("caCert");
  }

  struct transient {
    std::string_view needle;
    std::string_view sqlstate;
  };
  static constexpr transient transients[] = {
      {"the database system is starting up", "57P03"},
      {"the database system is shutting down", "57P03"},
      {"the database system is in recovery mode", "57P03"},
      {"the database system is not yet accepting connections", "57P03"},
      {"the database system is not accepting connections", "57P03"},
      {"too many clients", "53300"},
      {"remaining connection slots are reserved", "53300"},
      {"too many connections", "53300"},
      {"terminating connection due to administrator command", "57P01"},
      {"connection refused", ""},
      {"timeout expired", ""},
      {"could not translate host name", ""},
      {"temporary failure in name resolution", ""},
      {"server closed the connection", ""},
      {"no route to host", ""},
      {"network is unreachable", ""},
      {"connection reset", ""},
      {"could not receive data", ""},
      {"could not send data", ""},
      {"could not connect to server", ""},
      {"ssl syscall error", ""},
      {"ssl connection has been closed unexpectedly", ""},
  };
  for (const auto& t : transients) {
    if (contains(text, t.needle)) {
      error e(error_kind::unavailable, "cannot reach PostgreSQL at " + at + said);
      e.retryable();
      if (!t.sqlstate.empty()) e.sqlstate(std::string(t.sqlstate));
      throw e;
    }
  }

  std::string sqlstate;
  if (contains(text, "password authentication failed") || contains(text, "authentication failed"))
    sqlstate = "28P01";
  else if (contains(text, "no pg_hba.conf entry") || (contains(text, "role \"") && contains(text, "does not exist")) ||
           contains(text, "not permitted to log in") || contains(text, "fe_sendauth"))
    sqlstate = "28000";
  else if (contains(text, "database \"") && contains(text, "does not exist"))
    sqlstate = "3D000";
  else if (contains(text, "permission denied"))
    sqlstate = "42501";

  const bool server_said_no = contains(text, "fatal") || !sqlstate.empty();
  if (!server_said_no) {
    throw error(error_kind::unavailable, "cannot reach PostgreSQL at " + at + said).retryable();
  }

  if (who == party::admin) {
    std::string message;
    if (sqlstate == "28P01" || (sqlstate == "28000" && !contains(text, "pg_hba")))
      message = "PostgreSQL refused the admin login \"" + user + "\" at " + at +
                ": check adminUser/adminPassword in the connector";
    else if (sqlstate == "28000")
      message = "PostgreSQL at " + at + " has no pg_hba.conf entry for the admin login \"" + user +
                "\": allow this client there, or check sslMode in the connector";
    else if (sqlstate == "3D000")
      message = "PostgreSQL at " + at + " has no database \"" + database +
                "\" for the admin to connect to: check the connector's database key";
    else if (sqlstate == "42501")
      message = "PostgreSQL at " + at + " denied the admin \"" + user + "\" access to database \"" + database +
                "\": grant it CONNECT";
    else
      message = "PostgreSQL at " + at + " refused the admin login \"" + user + "\"";
    error e(error_kind::database, message + said);
    if (!sqlstate.empty()) e.sqlstate(sqlstate);
    if (sqlstate == "28P01" || sqlstate == "28000") e.about("adminPassword");
    throw e;
  }
  error e(error_kind::verification,
          "PostgreSQL at " + at + " refused the login \"" + user + "\" to database \"" + database + "\"" + said);
  if (!sqlstate.empty()) e.sqlstate(sqlstate);
  throw e;
}

conn_ptr open_connection(const server_address& server, const login& who_login, const std::string& database,
                         const db_timeouts& timeouts, party who) {
  check_password(who_login.password, who == party::admin ? "the admin" : "\"" + printable(who_login.user) + "\"");
  if (who_login.user.empty() || who_login.user.find('\0') != std::string::npos)
    throw error(error_kind::usage, "the PostgreSQL user name is empty or holds a NUL byte");
  if (database.find('\0') != std::string::npos)
    throw error(error_kind::usage, "the PostgreSQL database name holds a NUL byte");

  const bool verify = server.tls == tls_mode::verify_ca || server.tls == tls_mode::verify_full;
  std::optional<temp_ca_file> ca;
  std::string root_cert;
  if (verify) {
    if (!server.ca_pem.empty()) {
      ca.emplace(server.ca_pem);
      root_cert = ca->path();
    } else {
      root_cert = system_ca_file();
    }
  }

  const std::string port = std::to_string(server.port);
  const std::string sslmode(to_string(server.tls));
  const auto connect_seconds = std::max<long long>(1, timeouts.connect.count());
  const std::string connect_timeout = std::to_string(connect_seconds);
  const std::string options =
      "-c statement_timeout=" + std::to_string(std::max<long long>(0, timeouts.statement.count()) * 1000);

  std::vector<const char*> keys;
  std::vector<const char*> values;
  auto add = [&](const char* key, const std::string& value) {
    keys.push_back(key);
    values.push_back(value.c_str());
  };
  add("host", server.host);
  add("port", port);
  add("dbname", database);
  add("user", who_login.user);
  add("password", who_login.password.reveal());
  add("sslmode", sslmode);
  if (!root_cert.empty()) add("sslrootcert", root_cert);
  add("connect_timeout", connect_timeout);
  add("options", options);
  static const std::string application_name = "tenantdb";
  static const std::string gss_disable = "disable";
  add("application_name", application_name);
  // No Kerberos probing: a stray credential cache must not change how we log in.
  add("gssencmode", gss_disable);
  // Every file libpq 15 would otherwise look for under the home directory is named here,
  // so it never resolves ~ (with $HOME unset that is getpwuid_r, which crashes a static
  // binary whose nsswitch.conf names an NSS module it cannot load). The path can never
  // exist (ENOTDIR), which libpq treats as "no such file": no client certificate, no CRL,
  // no password file, and no root certificate in the modes that do not verify.
  static const std::string no_file = "/dev/null/tenantdb-none";
  add("passfile", no_file);
  add("sslcert", no_file);
  add("sslkey", no_file);
  add("sslcrl", no_file);
  add("sslcrldir", no_file);
  if (root_cert.empty()) add("sslrootcert", no_file);
  // Unverified TLS: whoever answers may ask for the password in clear text (or MD5).
  // channel_binding=require makes libpq refuse every authentication request except
  // SCRAM-SHA-256-PLUS bound to this very TLS session, before sending anything: a man in
  // the middle learns nothing it can replay. allow and disable say plain text is fine.
  static const std::string binding_required = "require";
  if (server.tls == tls_mode::require || server.tls == tls_mode::prefer) add("channel_binding", binding_required);
  keys.push_back(nullptr);
  values.push_back(nullptr);

  // expand_dbname = 0: a database name is never parsed as a conninfo string.
  conn_ptr conn(PQconnectdbParams(keys.data(), values.data(), 0));
  if (ca) ca->remove();  // libpq loaded it during the handshake
  if (!conn) throw error(error_kind::internal, "libpq could not allocate a connection");
  if (PQstatus(conn.get()) != CONNECTION_OK)
    throw_connect_failure(server, who_login.user, database, who, one_line(PQerrorMessage(conn.get())));
  PQsetNoticeProcessor(conn.get(), ignore_notice, nullptr);
  return conn;
}

// ---------------------------------------------------------------------------------------
// Running statements
// ---------------------------------------------------------------------------------------

/// What a statement is for, in the user's words, and what the admin needs to run it.
struct statement {
  statement(std::string what_, std::string privilege_ = {}, bool sensitive_ = false,
            std::vector<std::string_view> tolerated_ = {})
      : what(std::move(what_)),
        privilege(std::move(privilege_)),
        sensitive(sensitive_),
        tolerated(std::move(tolerated_)) {}
  std::string what;                         ///< "create database \"x\""
  std::string privilege;                    ///< "CREATEDB": named when the server says 42501
  bool sensitive;                           ///< holds a verifier: never quote the server's text
  std::vector<std::string_view> tolerated;  ///< SQLSTATEs that mean "already done"
};

bool is_retryable_sqlstate(std::string_view state) {
  if (state.size() != 5) return false;
  const std::string_view cls = state.substr(0, 2);
  return cls == "08" || cls == "53" || state == "40001" || state == "40P01" || state == "55006" || state == "55P03" ||
         state == "57P01" || state == "57P02" || state == "57P03" || state == "57014";
}

/// Throws the error for a failed statement.
[[noreturn]] void throw_statement_failure(PGconn* conn, const PGresult* res, const statement& st, party who,
                                          const std::string& actor) {
  if (PQstatus(conn) == CONNECTION_BAD) {
    throw error(error_kind::unavailable,
                "lost the connection to PostgreSQL while trying to " + st.what + ": " + one_line(PQerrorMessage(conn)))
        .retryable()
        .sqlstate("08006");
  }
  const char* state_ptr = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  const std::string state = state_ptr != nullptr ? state_ptr : "";
  const char* primary = res != nullptr ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  // Only the primary message: libpq's full message may quote the statement text.
  std::string server_text = st.sensitive ? std::string() : one_line(primary);

  std::string message;
  error_kind kind = who == party::admin ? error_kind::database : error_kind::verification;
  if (state == "42501" && who == party::admin) {
    message = "the PostgreSQL admin \"" + actor + "\" may not " + st.what;
    if (!st.privilege.empty()) message += ": it needs " + st.privilege;
  } else {
    message = "PostgreSQL could not " + st.what;
    // Password statements carry no server text; say what the SQLSTATE means instead.
    if (st.sensitive && state == "42704") message += ": the role does not exist";
    if (st.sensitive && state == "42501") message += ": permission denied";
  }
  if (!server_text.empty()) message += ": " + server_text;
  if (!state.empty()) message += " (SQLSTATE " + state + ")";

  const bool retry = is_retryable_sqlstate(state);
  if (retry && (state.starts_with("08") || state.starts_with("57P"))) kind = error_kind::unavailable;
  error e(kind, message);
  if (!state.empty()) e.sqlstate(state);
  e.retryable(retry);
  throw e;
}

/// "tuple concurrently updated": two sessions changed the same catalog row (GRANT,
/// ALTER ROLE SET) at once. Running the statement again converges.
bool is_concurrent_update(const PGresult* res) {
  const char* primary = res != nullptr ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  return primary != nullptr && contains(primary, "concurrently updated");
}

/// Pauses before running a statement again after "tuple concurrently updated": 20 ms,
/// doubling, at most 100 ms, five times at most (the house backoff, tenantdb/retry.hpp).
/// No jitter: only the session that lost the race gets the error, so there is no crowd
/// of retries to spread apart.
constexpr backoff_policy concurrent_update_backoff{std::chrono::milliseconds(20), std::chrono::milliseconds(100), 2.0,
                                                   0.0};
constexpr unsigned concurrent_update_retries = 5;

/// How a plan shows a password: never the value, not even its verifier.
constexpr std::string_view masked_password = "'***'";

/// Runs `sql`; "already exists" SQLSTATEs in st.tolerated count as success. Returns
/// false if a tolerated error occurred.
bool run(PGconn* conn, const std::string& sql, const statement& st, party who, const std::string& actor) {
  for (unsigned attempt = 1;; ++attempt) {
    result_ptr res(PQexec(conn, sql.c_str()));
    const ExecStatusType status = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return true;
    if (res) {
      const char* state = PQresultErrorField(res.get(), PG_DIAG_SQLSTATE);
      if (state != nullptr)
        for (const auto tolerated : st.tolerated)
          if (tolerated == state) return false;
      if (attempt <= concurrent_update_retries && is_concurrent_update(res.get()) && PQstatus(conn) == CONNECTION_OK) {
        std::this_thread::sleep_for(backoff_delay(concurrent_update_backoff, attempt));
        continue;
      }
    }
    throw_statement_failure(conn, res.get(), st, who, actor);
  }
}

/// Runs a query with text parameters and returns its result (TUPLES_OK).
result_ptr query(PGconn* conn, const char* sql, std::initializer_list<const std::string*> params, const statement& st,
                 party who, const std::string& actor) {
  std::vector<const char*> values;
  for (const std::string* p : params) values.push_back(p->c_str());
  result_ptr res(PQexecParams(conn, sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0));
  if (!res || PQresultStatus(res.get()) != PGRES_TUPLES_OK) throw_statement_failure(conn, res.get(), st, who, actor);
  return res;
}

bool query_is_true(PGconn* conn, const char* sql, std::initializer_list<const std::string*> params, const statement& st,
                   party who, const std::string& actor) {
  const result_ptr res = query(conn, sql, params, st, who, actor);
  if (PQntuples(res.get()) == 0 || PQgetisnull(res.get(), 0, 0)) return false;
  const std::string_view v = PQgetvalue(res.get(), 0, 0);
  return v == "t" || v == "1";
}

// ---------------------------------------------------------------------------------------
// The admin session
// ---------------------------------------------------------------------------------------

class postgres_admin_session final : public admin_session {
public:
  postgres_admin_session(conn_ptr conn, std::string admin_user)
      : conn_(std::move(conn)), admin_(std::move(admin_user)) {
    const char* su = PQparameterStatus(conn_.get(), "is_superuser");
    superuser_ = su != nullptr && std::string_view(su) == "on";
  }

  void ensure_database(const tenant_names& names, const ownership* owner) override {
    const std::string& db = names.database;
    check_identifier(db, "database");
    PGconn* c = conn_.get();
    const std::string group = quote_ident(c, db);

    // 0. Everything that already carries the tenant's names must be its own: checked, and
    //    unrecorded objects adopted if asked, before anything is created.
    bool adopt_database = false;
    if (owner != nullptr) adopt_database = claim_existing(names, *owner);

    // 1. The NOLOGIN group role that owns the database and everything in it, created
    //    together with its ownership record (one implicit transaction).
    if (!role_exists(db)) {
      std::string sql =
          "CREATE ROLE " + group + " NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT";
      if (owner != nullptr) append_comment(c, sql, db, *owner);
      if (!change(sql, {"create the group role \"" + db + "\"", "CREATEROLE", false, {"42710", "23505"}}) &&
          owner != nullptr)
        claim_role(db, *owner);  // a racer made it: it must be ours too
      planned(db);
    } else {
      repair_role_attributes(db, false);
    }

    // 2. PostgreSQL 15 lets a non-superuser create a database owned by a role only if
    //    it is a member of that role.
    if (!superuser_) {
      const bool member =
          !is_planned(db) && query_is_true(c, "SELECT pg_has_role(current_user, $1, 'MEMBER')", {&db},
                                           {"check the admin's membership in \"" + db + "\""}, party::admin, admin_);
      if (!member)
        change("GRANT " + group + " TO CURRENT_USER",
               {"join the group role \"" + db + "\" (needed to create a database owned by it)",
                "CREATEROLE",
                false,
                {"23505"}});
    }

    // 3. The database, owned by the group role (whose record says whose it is).
    const bool exists = query_is_true(c, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", {&db},
                                      {"look up database \"" + db + "\""}, party::admin, admin_);
    if (!exists) {
      if (!change("CREATE DATABASE " + group + " OWNER " + group,
                  {"create database \"" + db + "\"",
                   "CREATEDB (and membership in the role \"" + db + "\")",
                   false,
                   {"42P04", "23505"}}) &&
          owner != nullptr)
        check_database_owner(db, *owner);  // a racer made it
      planned_database_ = db;
    } else if (adopt_database && group_is_ours(db, *owner)) {
      // Drift: the group role is this tenant's but the database was handed to another
      // role that is no tenant's (check_database_owner). Taking it back needs membership
      // in the current owner, as any owner change does: the admin joins it, as it joins
      // a group role to create or drop its database.
      const auto current = database_owner(db).value_or("?");
      if (!superuser_ && !query_is_true(c, "SELECT pg_has_role(current_user, $1, 'MEMBER')", {&current},
                                        {"check the admin's membership in \"" + current + "\""}, party::admin, admin_))
        change("GRANT " + quote_ident(c, current) + " TO CURRENT_USER",
               {"join the role \"" + current + "\" (needed to take database \"" + db + "\" back from it)",
                "CREATEROLE (and ADMIN OPTION on \"" + current + "\")"});
      change("ALTER DATABASE " + group + " OWNER TO " + group,
             {"give database \"" + db + "\" back to its tenant's group role",
              "membership in the database's current owner and in \"" + db + "\""});
      repaired("database " + db + " was owned by role " + current + "; gave it back to its group role " + db);
    } else if (adopt_database) {
      change("ALTER DATABASE " + group + " OWNER TO " + group,
             {"hand database \"" + db + "\" over to its tenant's group role (--adopt-existing)",
              "membership in the database's current owner and in \"" + db + "\""});
      if (plan_ == nullptr || execute_) log::warn("adopted an existing database", {{"database", db}});
    }

    // 4. No other tenant may connect. Checked first: concurrent REVOKEs on one database
    //    race on its catalog row. A database created by this very plan has the default
    //    (PUBLIC may connect).
    const bool public_has_access =
        planned_database_ == db ||
        query_is_true(c,
                      "SELECT d.datacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(d.datacl) a WHERE a.grantee = 0) "
                      "FROM pg_database d WHERE d.datname = $1",
                      {&db}, {"read the privileges of database \"" + db + "\""}, party::admin, admin_);
    if (public_has_access) {
      // When another session of the same admin granted the membership a moment ago (two
      // inits of one tenant at once), PostgreSQL 15 can refuse this REVOKE (42501) although
      // the membership is committed; the next transaction sees it. A few short retries
      // converge; a real lack of the privilege still fails with the message below.
      const statement revoke{"revoke PUBLIC's access to database \"" + db + "\"",
                             "ownership of the database (membership in \"" + db + "\")",
                             false,
                             {"42501"}};
      const std::string sql = "REVOKE ALL ON DATABASE " + group + " FROM PUBLIC";
      if (record(sql)) {
        bool done = false;
        for (unsigned attempt = 1; !done && attempt <= concurrent_update_retries; ++attempt) {
          done = run(c, sql, revoke, party::admin, admin_);
          if (!done) std::this_thread::sleep_for(backoff_delay(concurrent_update_backoff, attempt));
        }
        if (!done) run(c, sql, {revoke.what, revoke.privilege}, party::admin, admin_);
      }
      if (exists) repaired("PUBLIC could connect to database " + db + "; revoked it");
    }

    // 5. The group role holds every privilege on its database (an owner's privileges can
    //    be revoked like anyone's).
    if (exists && !is_planned(db) &&
        !query_is_true(c,
                       "SELECT has_database_privilege($1::text, $1::text, 'CREATE') AND "
                       "has_database_privilege($1::text, $1::text, 'CONNECT') "
                       "AND has_database_privilege($1::text, $1::text, 'TEMPORARY')",
                       {&db}, {"read the privileges of role \"" + db + "\" on its database"}, party::admin, admin_)) {
      change("GRANT ALL ON DATABASE " + group + " TO " + group,
             {"grant the role \"" + db + "\" every privilege on its database",
              "ownership of the database (membership in \"" + db + "\")"});
      repaired("role " + db + " had lost privileges on its database; granted them again");
    }
  }

  bool ensure_user(const std::string& user, const secret& initial_password, const ownership* owner) override {
    check_identifier(user, "role");
    check_password(initial_password, "\"" + user + "\"");
    if (role_exists(user)) {
      if (owner != nullptr) claim_role(user, *owner);
      return false;
    }
    PGconn* c = conn_.get();
    wiped_string sql;
    sql.value = "CREATE ROLE " + quote_ident(c, user) +
                " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT PASSWORD ";
    append_scram_verifier_literal(c, sql.value, initial_password, user);
    // The record in the same implicit transaction: no login of ours exists without it.
    if (owner != nullptr) append_comment(c, sql.value, user, *owner);
    std::string shown = "CREATE ROLE " + quote_ident(c, user) +
                        " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT PASSWORD " +
                        std::string(masked_password);
    if (owner != nullptr) append_comment(c, shown, user, *owner);
    const bool created =
        change(sql.value, {"create the login role \"" + user + "\"", "CREATEROLE", true, {"42710", "23505"}}, shown);
    if (!created && owner != nullptr) claim_role(user, *owner);  // a racer made it
    if (created) planned(user);
    if (created) created_.push_back(user);
    return created;
  }

  void set_password(const std::string& user, const secret& password) override {
    check_identifier(user, "role");
    check_password(password, "\"" + user + "\"");
    PGconn* c = conn_.get();
    wiped_string sql;
    sql.value = "ALTER ROLE " + quote_ident(c, user) + " PASSWORD ";
    append_scram_verifier_literal(c, sql.value, password, user);
    change(sql.value, {"set the password of role \"" + user + "\"", "CREATEROLE", true},
           "ALTER ROLE " + quote_ident(c, user) + " PASSWORD " + std::string(masked_password));
  }

  void grant(const tenant_names& names, const std::string& user) override {
    const std::string& db = names.database;
    check_identifier(db, "database");
    check_identifier(user, "role");
    PGconn* c = conn_.get();
    const std::string group = quote_ident(c, db);
    const std::string login = quote_ident(c, user);

    // A role created by this very plan exists only in the plan: it has nothing yet.
    const bool fresh = is_planned(user) || is_planned(db);
    const bool created = std::find(created_.begin(), created_.end(), user) != created_.end();
    const bool member =
        !fresh && query_is_true(c, "SELECT pg_has_role($1, $2, 'MEMBER')", {&user, &db},
                                {"check whether \"" + user + "\" is a member of \"" + db + "\""}, party::admin, admin_);
    if (!member) {
      change("GRANT " + group + " TO " + login,
             {"grant the role \"" + db + "\" to \"" + user + "\"", "CREATEROLE", false, {"23505"}});
      if (!created) repaired("role " + user + " was not a member of its group role " + db + "; granted it again");
    }

    // Every session of the login acts as the group role, so all objects it creates are
    // owned by the group and usable by the tenant's other login.
    const std::string setting = "role=" + db;
    const bool preset =
        !fresh &&
        query_is_true(c,
                      "SELECT EXISTS (SELECT 1 FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
                      "WHERE r.rolname = $1 AND s.setdatabase = 0 AND $2 = ANY (s.setconfig))",
                      {&user, &setting}, {"read the settings of role \"" + user + "\""}, party::admin, admin_);
    if (!preset) {
      std::string sql = "ALTER ROLE " + login + " SET role = ";
      append_literal(c, sql, db);
      change(sql, {"preset the role of \"" + user + "\" to \"" + db + "\"", "CREATEROLE", false, {"23505"}});
      if (!created)
        repaired("role " + user + " no longer acted as its group role " + db + "; set role = " + db + " again");
    }
    if (!fresh) repair_role_attributes(user, true);
  }

  std::vector<std::string> apply_limits(const tenant_names& names, const std::string& user,
                                        const tenant_limits& limits) override {
    check_identifier(names.database, "database");
    check_identifier(user, "role");
    check_limits(limits);
    PGconn* c = conn_.get();
    const std::string login = quote_ident(c, user);
    // What the login role has now: its connection limit (-1: none) and its own settings
    // (for every database) of the two timeouts, NULL when unset.
    const result_ptr res =
        query(c,
              "SELECT r.rolconnlimit, "
              "(SELECT split_part(x, '=', 2) FROM pg_db_role_setting s, unnest(s.setconfig) x "
              " WHERE s.setrole = r.oid AND s.setdatabase = 0 AND split_part(x, '=', 1) = 'statement_timeout'), "
              "(SELECT split_part(x, '=', 2) FROM pg_db_role_setting s, unnest(s.setconfig) x "
              " WHERE s.setrole = r.oid AND s.setdatabase = 0 "
              " AND split_part(x, '=', 1) = 'idle_in_transaction_session_timeout') "
              "FROM pg_roles r WHERE r.rolname = $1",
              {&user}, {"read the limits of role \"" + user + "\""}, party::admin, admin_);
    // A role created by this very plan has no limit and no setting yet.
    const bool fresh = is_planned(user);
    if (PQntuples(res.get()) != 1 && !fresh)
      throw error(error_kind::database,
                  "PostgreSQL could not set the limits of role \"" + user + "\": the role does not exist")
          .about(user);
    std::vector<std::string> changes;

    const int have_connections = fresh ? -1 : std::atoi(PQgetvalue(res.get(), 0, 0));
    const int want_connections = limits.max_connections == 0 ? -1 : limits.max_connections;
    if (have_connections != want_connections) {
      change("ALTER ROLE " + login + " CONNECTION LIMIT " + std::to_string(want_connections),
             {"set the connection limit of role \"" + user + "\"", "CREATEROLE"});
      changes.push_back("maxConnections " + describe_connections(have_connections < 0 ? 0 : have_connections) + " -> " +
                        describe_connections(limits.max_connections));
    }

    const struct {
      const char* setting;
      const char* key;
      std::chrono::milliseconds want;
      int column;
    } timeouts[] = {
        {"statement_timeout", "statementTimeout", limits.statement_timeout, 1},
        {"idle_in_transaction_session_timeout", "idleInTransactionTimeout", limits.idle_in_transaction_timeout, 2},
    };
    for (const auto& t : timeouts) {
      const bool set = !fresh && !PQgetisnull(res.get(), 0, t.column);
      const std::string have = set ? PQgetvalue(res.get(), 0, t.column) : "";
      // Stored as written: a number of milliseconds when tenantdb set it.
      const std::string want = t.want.count() == 0 ? "" : std::to_string(t.want.count());
      if (set == (t.want.count() != 0) && have == want) continue;
      const std::string sql = t.want.count() == 0 ? "ALTER ROLE " + login + " RESET " + t.setting
                                                  : "ALTER ROLE " + login + " SET " + t.setting + " = " + want;
      change(sql, {"set " + std::string(t.setting) + " of role \"" + user + "\"", "CREATEROLE"});
      const bool numeric = !have.empty() && have.size() <= 12 &&
                           std::all_of(have.begin(), have.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
      const std::string before = !set                ? std::string("none")
                                 : numeric           ? describe_timeout(std::chrono::milliseconds(std::stoll(have)))
                                 : have.size() <= 20 ? have
                                                     : have.substr(0, 20) + "...";
      changes.push_back(std::string(t.key) + " " + before + " -> " + describe_timeout(t.want));
    }
    return changes;
  }

  int end_sessions(const std::string& user) override {
    check_identifier(user, "role");
    PGconn* c = conn_.get();
    if (plan_ != nullptr) {
      std::string sql = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ";
      append_literal(c, sql, user);
      plan_->push_back(sql);
      if (!execute_) return 0;
    }
    // Signalling a backend needs membership in its role (or pg_signal_backend, which is
    // more than the admin should hold): the admin joins the role inside a transaction that
    // is rolled back, so the membership never outlives this call.
    run(c, "BEGIN", {"begin a transaction"}, party::admin, admin_);
    int ended = 0;
    try {
      if (!superuser_ && !query_is_true(c, "SELECT pg_has_role(current_user, $1, 'USAGE')", {&user},
                                        {"check the admin's membership in \"" + user + "\""}, party::admin, admin_))
        run(c, "GRANT " + quote_ident(c, user) + " TO CURRENT_USER",
            {"join the role \"" + user + "\" for one transaction (needed to end its sessions)", "CREATEROLE"},
            party::admin, admin_);
      // PostgreSQL 14 and later wait (up to 5 s) until each backend has exited.
      const char* sql = PQserverVersion(c) >= 140000
                            ? "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                              "WHERE usename = $1 AND pid <> pg_backend_pid()"
                            : "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE usename = $1 AND pid <> pg_backend_pid()";
      const result_ptr res = query(c, sql, {&user}, {"end the sessions of \"" + user + "\"", "membership in that role"},
                                   party::admin, admin_);
      if (PQntuples(res.get()) == 1 && !PQgetisnull(res.get(), 0, 0)) ended = std::atoi(PQgetvalue(res.get(), 0, 0));
    } catch (...) {
      result_ptr ignored(PQexec(c, "ROLLBACK"));
      throw;
    }
    run(c, "ROLLBACK", {"roll back the transaction that ended the sessions of \"" + user + "\""}, party::admin, admin_);
    return ended;
  }

  bool user_exists(const std::string& user) override {
    check_identifier(user, "role");
    return role_exists(user);
  }

  bool database_exists(const std::string& database) override {
    check_identifier(database, "database");
    return query_is_true(conn_.get(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", {&database},
                         {"look up database \"" + database + "\""}, party::admin, admin_);
  }

  std::string server_version() override {
    const char* v = PQparameterStatus(conn_.get(), "server_version");
    return std::string("PostgreSQL ") + (v != nullptr ? v : std::to_string(PQserverVersion(conn_.get())));
  }

  std::vector<recorded_object> recorded_objects(const tenant_names* names) override {
    PGconn* c = conn_.get();
    std::string only;  // a text[] literal of the tenant's names (validated identifiers)
    if (names != nullptr) {
      for (const std::string* n : {&names->database, &names->user_a, &names->user_b}) {
        check_identifier(*n, "role");
        only += (only.empty() ? "{" : ",") + *n;
      }
      only += "}";
    }
    const std::string marker = "{\"owner\":\"tenantdb\"%";
    const result_ptr res =
        names != nullptr
            ? query(c,
                    "SELECT r.rolname, shobj_description(r.oid, 'pg_authid') FROM pg_roles r "
                    "WHERE shobj_description(r.oid, 'pg_authid') LIKE $1 AND r.rolname = ANY ($2::text[]) ORDER BY 1",
                    {&marker, &only}, {"read the ownership records of the tenant's roles"}, party::admin, admin_)
            : query(c,
                    "SELECT r.rolname, shobj_description(r.oid, 'pg_authid') FROM pg_roles r "
                    "WHERE shobj_description(r.oid, 'pg_authid') LIKE $1 ORDER BY 1",
                    {&marker}, {"read the ownership records on the server"}, party::admin, admin_);
    std::vector<recorded_object> out;
    for (int i = 0; i < PQntuples(res.get()); ++i) {
      auto record = parse_owner_record(PQgetvalue(res.get(), i, 1));
      if (!record) continue;
      recorded_object o;
      o.name = PQgetvalue(res.get(), i, 0);
      o.kind = o.name == record->database ? "group role" : "user";
      o.record = std::move(*record);
      // The database is the group role's: listed with its record when that role owns it.
      if (o.kind == "group role" && is_identifier(o.name, max_identifier) && database_owner(o.name) == o.name)
        out.push_back({"database", o.name, o.record});
      out.push_back(std::move(o));
    }
    return out;
  }

  std::optional<long long> database_size(const std::string& database) override {
    check_identifier(database, "database");
    const result_ptr res =
        query(conn_.get(), "SELECT pg_database_size(oid) FROM pg_database WHERE datname = $1", {&database},
              {"read the size of database \"" + database + "\"", "CONNECT on it"}, party::admin, admin_);
    if (PQntuples(res.get()) == 0) return std::nullopt;
    return std::atoll(PQgetvalue(res.get(), 0, 0));
  }

  int session_count(const std::string& user) override {
    check_identifier(user, "role");
    const result_ptr res = query(conn_.get(), "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", {&user},
                                 {"count the sessions of \"" + user + "\""}, party::admin, admin_);
    return PQntuples(res.get()) == 1 ? std::atoi(PQgetvalue(res.get(), 0, 0)) : 0;
  }

  std::optional<bool> login_allowed(const std::string& user) override {
    check_identifier(user, "role");
    const result_ptr res = query(conn_.get(), "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", {&user},
                                 {"read whether \"" + user + "\" may log in"}, party::admin, admin_);
    if (PQntuples(res.get()) == 0) return std::nullopt;
    return std::string_view(PQgetvalue(res.get(), 0, 0)) == "t";
  }

  bool set_login_allowed(const std::string& user, bool allowed) override {
    const auto now = login_allowed(user);
    if (!now || *now == allowed) return false;
    change("ALTER ROLE " + quote_ident(conn_.get(), user) + (allowed ? " LOGIN" : " NOLOGIN"),
           {std::string(allowed ? "allow" : "revoke") + " the login of \"" + user + "\"", "CREATEROLE"});
    return true;
  }

  void write_record(const recorded_object& object) override {
    check_identifier(object.name, "role");
    PGconn* c = conn_.get();
    // A database's record is its group role's, which has the database's name.
    std::string sql = "COMMENT ON ROLE " + quote_ident(c, object.name) + " IS ";
    append_literal(c, sql, owner_record_json(object.record));
    change(sql, {"update the ownership record of role \"" + object.name + "\"", "CREATEROLE"});
  }

  void drop_record(const recorded_object& /*object*/) override {
    // The record is the role's comment: it goes with the role.
  }

  void drop_database(const std::string& database) override {
    check_identifier(database, "database");
    PGconn* c = conn_.get();
    const auto current = database_owner(database);
    if (!current) return;
    // Dropping needs the owner's rights: the admin joins the owning group role, as
    // ensure_database does to create it.
    if (!superuser_ && !query_is_true(c, "SELECT pg_has_role(current_user, $1, 'MEMBER')", {&*current},
                                      {"check the admin's membership in \"" + *current + "\""}, party::admin, admin_))
      change("GRANT " + quote_ident(c, *current) + " TO CURRENT_USER",
             {"join the role \"" + *current + "\" (needed to drop the database it owns)", "CREATEROLE"});
    change("DROP DATABASE IF EXISTS " + quote_ident(c, database),
           {"drop database \"" + database + "\"", "ownership of the database (membership in its owner)"});
  }

  void drop_user(const std::string& user) override {
    check_identifier(user, "role");
    if (!role_exists(user)) return;
    change("DROP ROLE IF EXISTS " + quote_ident(conn_.get(), user), {"drop role \"" + user + "\"", "CREATEROLE"});
  }

  void plan_into(std::vector<std::string>* sink, bool execute) override {
    plan_ = sink;
    execute_ = execute;
    planned_.clear();
    planned_database_.clear();
  }

  std::vector<std::string> take_repairs() override { return std::exchange(repairs_, {}); }

private:
  // --- One place for every statement that changes the server (the plan, item 4 of
  // issue 11): while a plan sink is set it is listed there (as `shown`, which masks a
  // password, when given), and run only if the plan is executed too. A dry run and a
  // real run therefore take the same decisions and list the same statements.

  /// Lists `shown` while planning; true if the statement must also run.
  bool record(const std::string& shown) {
    if (plan_ == nullptr) return true;
    plan_->push_back(shown);
    return execute_;
  }

  /// Runs a statement that changes the server, or only lists it while planning (then it
  /// counts as done). Returns false if a tolerated error occurred (see run()).
  bool change(const std::string& sql, const statement& st, const std::string& shown = {}) {
    if (!record(shown.empty() ? sql : shown)) return true;
    return run(conn_.get(), sql, st, party::admin, admin_);
  }

  /// A dry run created `name` only in its plan: later steps must not ask the server
  /// about it, and take it as new.
  void planned(const std::string& name) {
    if (plan_ != nullptr && !execute_) planned_.push_back(name);
  }
  bool is_planned(const std::string& name) const {
    return std::find(planned_.begin(), planned_.end(), name) != planned_.end();
  }

  // --- Drift (item 5 of issue 11): what an ensure_* or grant call found changed on an
  // object that already existed, and put back. Collected for take_repairs().
  void repaired(std::string what) {
    if (plan_ == nullptr || execute_) log::info("repaired drift", {{"repair", what}});
    repairs_.push_back(std::move(what));
  }

  /// The role has exactly the attributes tenantdb creates it with (NOSUPERUSER
  /// NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT; a group role also
  /// NOLOGIN; a login role's LOGIN belongs to the retain policy and is left alone). An
  /// attribute only a superuser may take away is reported, not fatal: the run goes on.
  void repair_role_attributes(const std::string& role, bool login_role) {
    const result_ptr res = query(conn_.get(),
                                 "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, "
                                 "NOT rolinherit, rolcanlogin FROM pg_roles WHERE rolname = $1",
                                 {&role}, {"read the attributes of role \"" + role + "\""}, party::admin, admin_);
    if (PQntuples(res.get()) != 1) return;
    static constexpr const char* fixes[] = {"NOSUPERUSER", "NOCREATEDB", "NOCREATEROLE", "NOREPLICATION",
                                            "NOBYPASSRLS", "INHERIT",    "NOLOGIN"};
    std::string wrong;
    for (int i = 0; i < 7; ++i) {
      if (i == 6 && login_role) break;
      if (std::string_view(PQgetvalue(res.get(), 0, i)) == "t") wrong += std::string(" ") + fixes[i];
    }
    if (wrong.empty()) return;
    try {
      change("ALTER ROLE " + quote_ident(conn_.get(), role) + wrong, {"reset the attributes of role \"" + role + "\"",
                                                                      "CREATEROLE (SUPERUSER for NOSUPERUSER, "
                                                                      "NOREPLICATION and NOBYPASSRLS)"});
    } catch (const error& e) {
      if (e.kind() != error_kind::database || e.is_retryable()) throw;
      log::warn("role has attributes tenantdb never gives, and the admin may not take them away",
                {{"role", role}, {"attributes", wrong.substr(1)}, {"reason", e.what()}});
      return;
    }
    repaired("role " + role + " had attributes tenantdb never gives; set" + wrong);
  }

  std::vector<std::string>* plan_ = nullptr;
  bool execute_ = false;
  std::vector<std::string> planned_;
  std::string planned_database_;
  std::vector<std::string> created_;
  std::vector<std::string> repairs_;

  static std::string describe_role(const std::string& role) { return "PostgreSQL role \"" + role + "\""; }
  static std::string release_role(const std::string& role) { return "COMMENT ON ROLE \"" + role + "\" IS NULL"; }

  /// "; COMMENT ON ROLE <role> IS '<record>'", appended to the statement that creates it.
  static void append_comment(PGconn* c, std::string& sql, const std::string& role, const ownership& owner) {
    sql += "; COMMENT ON ROLE " + quote_ident(c, role) + " IS ";
    append_literal(c, sql, owner_record_json(owner.record));
  }

  /// The role's comment, where tenantdb keeps its ownership record; std::nullopt inside
  /// if the role exists without one, std::nullopt outside if the role does not exist.
  /// Only CREATEROLE holders may comment on a role in PostgreSQL 15, so a tenant's logins
  /// (and its group role, as which they act) cannot write it; anyone can read it.
  std::optional<std::optional<std::string>> role_comment(const std::string& role) {
    const result_ptr res =
        query(conn_.get(), "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1", {&role},
              {"read the ownership record of role \"" + role + "\""}, party::admin, admin_);
    if (PQntuples(res.get()) == 0) return std::nullopt;
    if (PQgetisnull(res.get(), 0, 0)) return std::optional<std::string>();
    return std::optional<std::string>(PQgetvalue(res.get(), 0, 0));
  }

  /// An existing role must carry this owner's record; an unrecorded one gets it with
  /// --adopt-existing; anything else throws (ownership).
  void claim_role(const std::string& role, const ownership& owner) {
    const auto comment = role_comment(role);
    if (!comment) return;  // gone meanwhile: whoever creates it again records it
    if (must_adopt(owner, describe_role(role), *comment, release_role(role))) record_role(role, owner);
  }

  void record_role(const std::string& role, const ownership& owner) {
    PGconn* c = conn_.get();
    std::string sql = "COMMENT ON ROLE " + quote_ident(c, role) + " IS ";
    append_literal(c, sql, owner_record_json(owner.record));
    change(sql, {"record the owner of role \"" + role + "\"", "CREATEROLE"});
    if (plan_ == nullptr || execute_) log::warn("adopted an existing role", {{"role", role}});
  }

  /// The database's owner, std::nullopt if it does not exist.
  std::optional<std::string> database_owner(const std::string& db) {
    const result_ptr res = query(conn_.get(), "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1",
                                 {&db}, {"read the owner of database \"" + db + "\""}, party::admin, admin_);
    if (PQntuples(res.get()) == 0) return std::nullopt;
    return std::string(PQgetvalue(res.get(), 0, 0));
  }

  /// A database with the tenant's name must be owned by its group role. Returns true if
  /// it is not but may be handed over (--adopt-existing, and its owner is not another
  /// tenant's role); throws (ownership) otherwise.
  bool check_database_owner(const std::string& db, const ownership& owner) {
    const auto current = database_owner(db);
    if (!current || *current == db) return false;
    const std::string object = "PostgreSQL database \"" + db + "\"";
    const auto owner_comment = role_comment(*current);
    const bool tenant_role = owner_comment && *owner_comment && parse_owner_record(**owner_comment);
    if (owner.adopt_existing && !tenant_role) return true;
    // Drift: the tenant's own group role (recorded as this owner's) lost its database to
    // a role that is no tenant's; ensure_database gives it back.
    if (!tenant_role && group_is_ours(db, owner)) return true;
    throw error(error_kind::ownership, object + " already exists and is owned by role \"" + printable(*current) +
                                           "\", not by the tenant's group role \"" + db +
                                           "\": it was not made for this tenant, so it is left "
                                           "alone" +
                                           (tenant_role ? std::string(" (its owner is another tenant's role)")
                                                        : "; if it is this tenant's, rerun with --adopt-existing"))
        .about(object);
  }

  /// The group role `db` carries this owner's record.
  bool group_is_ours(const std::string& db, const ownership& owner) {
    const auto comment = role_comment(db);
    if (!comment || !*comment) return false;
    const auto record = parse_owner_record(**comment);
    return record && same_owner(*record, owner.record);
  }

  /// Step 0 of ensure_database: every existing object with one of the tenant's names is
  /// checked before anything changes; only then are unrecorded ones adopted. Returns true
  /// if the database must be handed over to the group role.
  bool claim_existing(const tenant_names& names, const ownership& owner) {
    std::vector<std::string> adopt;
    for (const std::string* role : {&names.database, &names.user_a, &names.user_b}) {
      check_identifier(*role, "role");
      const auto comment = role_comment(*role);
      if (comment && must_adopt(owner, describe_role(*role), *comment, release_role(*role))) adopt.push_back(*role);
    }
    const bool adopt_database = check_database_owner(names.database, owner);
    for (const auto& role : adopt) record_role(role, owner);
    return adopt_database;
  }

  bool role_exists(const std::string& role) {
    return query_is_true(conn_.get(), "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", {&role},
                         {"look up role \"" + role + "\""}, party::admin, admin_);
  }

  conn_ptr conn_;
  std::string admin_;
  bool superuser_ = false;
};

}  // namespace

// ---------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------

namespace {

std::unique_ptr<admin_session> connect_postgres_admin(const server_address& server, const login& admin,
                                                      const db_timeouts& timeouts) {
  const std::string database = server.admin_database.empty() ? std::string("postgres") : server.admin_database;
  conn_ptr conn = open_connection(server, admin, database, timeouts, party::admin);
  return std::make_unique<postgres_admin_session>(std::move(conn), admin.user);
}

void postgres_verify_login(const server_address& server, const login& tenant_login, const std::string& database,
                           const db_timeouts& timeouts) {
  conn_ptr conn = open_connection(server, tenant_login, database, timeouts, party::tenant);
  PGconn* c = conn.get();
  const std::string& user = tenant_login.user;

  const result_ptr res =
      query(c, "SELECT current_database()", {}, {"read the current database as \"" + user + "\""}, party::tenant, user);
  const std::string current = PQntuples(res.get()) == 1 ? PQgetvalue(res.get(), 0, 0) : "";
  if (current != database)
    throw error(error_kind::verification, "PostgreSQL logged \"" + user + "\" into database \"" + printable(current) +
                                              "\" instead of \"" + database + "\"");

  // Proves the login may create tables in its database; nothing is left behind.
  run(c, "BEGIN", {"begin a transaction as \"" + user + "\""}, party::tenant, user);
  run(c, "CREATE TABLE tenantdb_login_probe (x int)",
      {"create a table in database \"" + database + "\" as \"" + user + "\"", "", false, {"42P07"}}, party::tenant,
      user);
  run(c, "ROLLBACK", {"roll back the probe transaction as \"" + user + "\""}, party::tenant, user);
}

void postgres_change_own_password(const server_address& server, const login& current, const std::string& database,
                                  const secret& next, const db_timeouts& timeouts) {
  check_password(next, "\"" + printable(current.user) + "\"");
  conn_ptr conn = open_connection(server, current, database, timeouts, party::tenant);
  PGconn* c = conn.get();
  const std::string& user = current.user;

  // The login's sessions act as the group role (ALTER ROLE ... SET role); a role may
  // change only its own password, so drop back to the login role first.
  run(c, "SET ROLE NONE", {"reset the current role of \"" + user + "\""}, party::tenant, user);
  wiped_string sql;
  sql.value = "ALTER ROLE CURRENT_USER PASSWORD ";
  append_scram_verifier_literal(c, sql.value, next, user);
  try {
    run(c, sql.value, {"change the password of \"" + user + "\"", "", true}, party::tenant, user);
  } catch (error& e) {
    // A refused statement is the server's doing, not a failed login.
    if (e.kind() != error_kind::verification) throw;
    error copy(error_kind::database, e.what());
    copy.sqlstate(e.sqlstate()).retryable(e.is_retryable());
    throw copy;
  }
}

int postgres_count_own_sessions(const server_address& server, const login& account, const std::string& database,
                                const db_timeouts& timeouts) {
  conn_ptr conn = open_connection(server, account, database, timeouts, party::tenant);
  PGconn* c = conn.get();
  const std::string& user = account.user;
  // Every role sees the user name of every backend; session_user, not current_user:
  // the login's sessions act as the group role. This probe's own backend is left out.
  const result_ptr res =
      query(c, "SELECT count(*) FROM pg_stat_activity WHERE usename = session_user AND pid <> pg_backend_pid()", {},
            {"count the open sessions of \"" + user + "\""}, party::tenant, user);
  return PQntuples(res.get()) == 1 ? std::atoi(PQgetvalue(res.get(), 0, 0)) : 0;
}

/// What the tenant's login may do beyond what tenantdb gives it, as the login itself can
/// read it (pg_roles is readable by every role): attributes of the login and of its group
/// role (named like the database), and memberships in any role but the group.
std::vector<std::string> postgres_excess_privileges(const server_address& server, const login& tenant_login,
                                                    const std::string& database, const db_timeouts& timeouts) {
  conn_ptr conn = open_connection(server, tenant_login, database, timeouts, party::tenant);
  PGconn* c = conn.get();
  const std::string& user = tenant_login.user;
  std::vector<std::string> out;
  const result_ptr attrs =
      query(c,
            "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls FROM pg_roles "
            "WHERE rolname = session_user OR rolname = $1 ORDER BY 1",
            {&database}, {"read its own attributes as \"" + user + "\""}, party::tenant, user);
  static constexpr const char* attribute[] = {"SUPERUSER", "CREATEDB", "CREATEROLE", "REPLICATION", "BYPASSRLS"};
  for (int r = 0; r < PQntuples(attrs.get()); ++r)
    for (int i = 0; i < 5; ++i)
      if (std::string_view(PQgetvalue(attrs.get(), r, i + 1)) == "t")
        out.push_back("role " + printable(PQgetvalue(attrs.get(), r, 0)) + " has " + attribute[i]);
  const result_ptr members =
      query(c,
            "SELECT rolname FROM pg_roles WHERE pg_has_role(session_user, oid, 'MEMBER') "
            "AND rolname <> session_user AND rolname <> $1 ORDER BY 1",
            {&database}, {"read its own role memberships as \"" + user + "\""}, party::tenant, user);
  for (int r = 0; r < PQntuples(members.get()); ++r)
    out.push_back("role " + printable(user) + " is a member of " + printable(PQgetvalue(members.get(), r, 0)));
  return out;
}

/// The engine interface over the entry points above.
class postgres_engine final : public engine {
public:
  std::unique_ptr<admin_session> connect_admin(const server_address& server, const login& admin,
                                               const db_timeouts& timeouts) override {
    require_type(server, engine_type::postgres);
    return connect_postgres_admin(server, admin, timeouts);
  }
  void verify_login(const server_address& server, const login& tenant_login, const std::string& database,
                    const db_timeouts& timeouts) override {
    require_type(server, engine_type::postgres);
    postgres_verify_login(server, tenant_login, database, timeouts);
  }
  void change_own_password(const server_address& server, const login& current, const std::string& database,
                           const secret& next, const db_timeouts& timeouts) override {
    require_type(server, engine_type::postgres);
    postgres_change_own_password(server, current, database, next, timeouts);
  }
  int count_own_sessions(const server_address& server, const login& account, const std::string& database,
                         const db_timeouts& timeouts) override {
    require_type(server, engine_type::postgres);
    return postgres_count_own_sessions(server, account, database, timeouts);
  }
  std::vector<std::string> excess_privileges(const server_address& server, const login& tenant_login,
                                             const std::string& database, const db_timeouts& timeouts) override {
    require_type(server, engine_type::postgres);
    return postgres_excess_privileges(server, tenant_login, database, timeouts);
  }
};

}  // namespace

std::unique_ptr<engine> make_postgres_engine() {
  return std::make_unique<postgres_engine>();
}

}  // namespace tenantdb::detail
