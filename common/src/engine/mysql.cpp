// MySQL / MariaDB engine over MariaDB Connector/C.
//
// Each tenant gets one database and login accounts 'user'@'%' holding ALL PRIVILEGES on
// that database only (no GRANT OPTION, nothing on *.*). GRANT reads '_' and '%' in a
// database name as wildcards, so the name is escaped there: otherwise a grant on
// vcluster_x would also cover vclusterYx. Passwords travel in SQL literals escaped by
// mysql_real_escape_string; statements holding them are wiped and never quoted in errors.

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
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
#include "tenantdb/secret.hpp"

namespace tenantdb::detail {
namespace {

struct mysql_deleter {
  void operator()(MYSQL* m) const noexcept { mysql_close(m); }
};
using mysql_ptr = std::unique_ptr<MYSQL, mysql_deleter>;

struct result_deleter {
  void operator()(MYSQL_RES* r) const noexcept { mysql_free_result(r); }
};
using result_ptr = std::unique_ptr<MYSQL_RES, result_deleter>;

std::once_flag library_once;

/// mysql_library_init is not thread-safe, and mysql_init calls it on first use.
void init_library() {
  std::call_once(library_once, [] {
    if (mysql_library_init(0, nullptr, nullptr) != 0)
      throw error(error_kind::internal, "could not initialise the MariaDB client library");
  });
}

std::string one_line(const char* message) {
  std::string out;
  if (message == nullptr) return out;
  for (const char* p = message; *p != '\0'; ++p) out += (*p == '\n' || *p == '\r' || *p == '\t') ? ' ' : *p;
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string product(const server_address& server) {
  return server.mariadb ? "MariaDB" : "MySQL";
}

// MySQL/MariaDB database names are limited to 64 characters.
constexpr std::size_t max_identifier = 64;

void check_identifier(const server_address& server, std::string_view name, std::string_view what) {
  if (!is_identifier(name, max_identifier))
    throw error(error_kind::usage, product(server) + " " + std::string(what) + " \"" + printable(name) +
                                       "\" is not a valid tenantdb name: expected [a-z][a-z0-9_]{0,63}");
}

/// `name` in backticks, backticks doubled.
std::string quote_ident(std::string_view name) {
  std::string out = "`";
  for (const char c : name) {
    if (c == '`') out += '`';
    out += c;
  }
  out += '`';
  return out;
}

/// A database name for GRANT ... ON `db`.*: '_' and '%' escaped so they match only
/// themselves, then quoted.
std::string quote_grant_database(std::string_view name) {
  std::string escaped;
  for (const char c : name) {
    if (c == '_' || c == '%' || c == '\\') escaped += '\\';
    escaped += c;
  }
  return quote_ident(escaped);
}

/// How a plan shows a password: never the value.
constexpr std::string_view masked_password = "'***'";

/// True if one of `grants` (SHOW GRANTS) gives ALL PRIVILEGES on `target` (as GRANT
/// names it, quoted and escaped).
bool holds_all_privileges(const std::vector<std::string>& grants, const std::string& target) {
  const std::string want = "GRANT ALL PRIVILEGES ON " + target + ".* TO ";
  return std::any_of(grants.begin(), grants.end(), [&](const std::string& g) { return g.rfind(want, 0) == 0; });
}

/// Appends 'value' escaped with the connection's character set and sql_mode.
void append_literal(MYSQL* m, std::string& out, std::string_view value) {
  std::string buffer(value.size() * 2 + 1, '\0');
  const unsigned long n =
      mysql_real_escape_string(m, buffer.data(), value.data(), static_cast<unsigned long>(value.size()));
  if (n == static_cast<unsigned long>(-1)) {
    wipe(buffer);
    throw error(error_kind::internal, "could not escape a string for the MySQL/MariaDB connection");
  }
  out += '\'';
  out.append(buffer.data(), n);
  out += '\'';
  wipe(buffer);
}

// ---------------------------------------------------------------------------------------
// Connecting
// ---------------------------------------------------------------------------------------

bool is_transient_errno(unsigned code) {
  switch (code) {
    case CR_SOCKET_CREATE_ERROR:        // 2001
    case CR_CONNECTION_ERROR:           // 2002
    case CR_CONN_HOST_ERROR:            // 2003
    case CR_UNKNOWN_HOST:               // 2005
    case CR_SERVER_GONE_ERROR:          // 2006
    case CR_SERVER_LOST:                // 2013
    case CR_SERVER_LOST_EXTENDED:       // 2055
    case ER_CON_COUNT_ERROR:            // 1040
    case ER_TOO_MANY_USER_CONNECTIONS:  // 1203
    case ER_SERVER_SHUTDOWN:            // 1053
    case ER_CONNECTION_KILLED:          // 1927
      return true;
    default: return false;
  }
}

[[noreturn]] void throw_connect_failure(const server_address& server, const std::string& user,
                                        const std::string& database, party who, unsigned code,
                                        const std::string& detail) {
  const std::string at = endpoint(server);
  const std::string name = product(server);
  const std::string said = " (" + std::to_string(code) + ": " + detail + ")";
  const std::string text = lower(detail);

  // The server asked for an authentication plugin outside the allowed list (see
  // open_connection): nothing was sent. A man in the middle, or an account whose plugin
  // needs a verified server.
  if (code == CR_PLUGIN_NOT_ALLOWED) {
    // Connector/C's own text names the plugin from a buffer it has already reused: left out.
    const bool verify = server.tls == tls_mode::verify_ca || server.tls == tls_mode::verify_full;
    const std::string message =
        verify ? name + " at " + at +
                     " asked for an authentication plugin that sends the password as it is (mysql_clear_password, "
                     "dialog): give the account mysql_native_password, ed25519 or caching_sha2_password"
               : name + " at " + at +
                     " asked for an authentication plugin that could hand the password to a server whose "
                     "certificate is not checked (sslMode=" +
                     std::string(to_string(server.tls)) +
                     "): set sslMode: verify-full (and caCert) in the connector, or give the account "
                     "mysql_native_password or ed25519";
    throw error(error_kind::connector, message + " (" + std::to_string(code) + ")").db_errno(code).about("sslMode");
  }
  if (code == CR_SSL_CONNECTION_ERROR || code == 3159 /* MySQL: insecure transport prohibited */) {
    throw error(error_kind::connector,
                "TLS with " + name + " at " + at + " failed: check caCert and tls in the connector" + said)
        .db_errno(code)
        .about("caCert");
  }
  if (is_transient_errno(code) || contains(text, "server is starting") || contains(text, "is starting up") ||
      (code >= 2000 && code < 3000 && code != CR_AUTH_PLUGIN_CANNOT_LOAD && code != CR_OUT_OF_MEMORY)) {
    throw error(error_kind::unavailable, "cannot reach " + name + " at " + at + said).db_errno(code).retryable();
  }

  if (who == party::admin) {
    std::string message;
    if (code == ER_ACCESS_DENIED_ERROR || code == 1698 /* ER_ACCESS_DENIED_NO_PASSWORD_ERROR */) {
      message = name + " refused the admin login \"" + user + "\" at " + at +
                ": check adminUser/adminPassword in the connector";
      // require_secure_transport answers plain-text logins with "access denied" too.
      if (server.tls == tls_mode::disable) message += " (or the server requires TLS, which tls=disable turns off)";
    } else if (code == ER_HOST_IS_BLOCKED)
      message = name + " at " + at + " blocks this host after too many failed connections: run FLUSH HOSTS there";
    else
      message = name + " at " + at + " refused the admin login \"" + user + "\"";
    error e(error_kind::database, message + said);
    e.db_errno(code);
    if (code == ER_ACCESS_DENIED_ERROR || code == 1698) e.about("adminPassword");
    throw e;
  }
  throw error(error_kind::verification,
              name + " at " + at + " refused the login \"" + user + "\" to database \"" + database + "\"" + said)
      .db_errno(code);
}

template <typename T>
void set_option(MYSQL* m, mysql_option option, const T* value, const char* what) {
  if (mysql_optionsv(m, option, value) != 0)
    throw error(error_kind::internal, std::string("could not set the MariaDB client option ") + what);
}

/// Connects; `database` may be empty (no default database).
mysql_ptr open_connection(const server_address& server, const login& who_login, const std::string& database,
                          const db_timeouts& timeouts, party who) {
  check_password(who_login.password, who == party::admin ? "the admin" : "\"" + printable(who_login.user) + "\"");
  if (who_login.user.empty() || who_login.user.find('\0') != std::string::npos)
    throw error(error_kind::usage, "the " + product(server) + " user name is empty or holds a NUL byte");
  if (database.find('\0') != std::string::npos)
    throw error(error_kind::usage, "the " + product(server) + " database name holds a NUL byte");

  init_library();
  mysql_ptr conn(mysql_init(nullptr));
  if (!conn) throw error(error_kind::internal, "the MariaDB client library could not allocate a connection");
  MYSQL* m = conn.get();

  const auto clamp = [](long long seconds) {
    return static_cast<unsigned>(std::clamp<long long>(seconds, 1, 24 * 3600));
  };
  const unsigned connect_timeout = clamp(timeouts.connect.count());
  const unsigned io_timeout = clamp(timeouts.statement.count());
  const unsigned tcp = MYSQL_PROTOCOL_TCP;
  const unsigned no_local_infile = 0;
  set_option(m, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout, "connect timeout");
  set_option(m, MYSQL_OPT_READ_TIMEOUT, &io_timeout, "read timeout");
  set_option(m, MYSQL_OPT_WRITE_TIMEOUT, &io_timeout, "write timeout");
  // "localhost" would otherwise mean the Unix socket.
  set_option(m, MYSQL_OPT_PROTOCOL, &tcp, "protocol");
  set_option(m, MYSQL_OPT_LOCAL_INFILE, &no_local_infile, "local infile");
  set_option(m, MYSQL_SET_CHARSET_NAME, "utf8mb4", "charset");

  // Connector/C 3.3: use_ssl (MYSQL_OPT_SSL_ENFORCE) asks for TLS but falls back to plain
  // text if the server has none, unless the host name is verified; a configured CA makes
  // it check the chain. So verify-ca sets the CA only, verify-full also the host check,
  // and every mode from require up is checked for a cipher after connecting.
  const bool want_tls = server.tls != tls_mode::disable;
  const bool verify = server.tls == tls_mode::verify_ca || server.tls == tls_mode::verify_full;
  const bool must_tls = server.tls == tls_mode::require || verify;
  const my_bool use_ssl = want_tls ? 1 : 0;
  set_option(m, MYSQL_OPT_SSL_ENFORCE, &use_ssl, "TLS");
  std::optional<temp_ca_file> ca;
  if (verify) {
    std::string ca_path;
    if (!server.ca_pem.empty()) {
      ca.emplace(server.ca_pem);
      ca_path = ca->path();
    } else {
      ca_path = system_ca_file();
    }
    set_option(m, MYSQL_OPT_SSL_CA, ca_path.c_str(), "TLS CA");
    const my_bool check_host = server.tls == tls_mode::verify_full ? 1 : 0;
    set_option(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &check_host, "TLS host name verification");
  }

  // Only the authentication plugins whose answer does not reveal the password. Never
  // mysql_clear_password or dialog (the password as is), nor mysql_old_password. Over
  // unverified TLS (or none) caching_sha2_password and sha256_password are out too: they
  // send the password in clear text inside TLS, or encrypted to a public key the server
  // hands over, so whoever answers could read it. Checked for the first plugin and every
  // auth switch; a refused one fails with CR_PLUGIN_NOT_ALLOWED before anything is sent.
  const char* allowed_plugins = verify ? "mysql_native_password,client_ed25519,caching_sha2_password,sha256_password"
                                       : "mysql_native_password,client_ed25519";
  set_option(m, MARIADB_OPT_RESTRICTED_AUTH, allowed_plugins, "restricted authentication plugins");

  const char* db = database.empty() ? nullptr : database.c_str();
  MYSQL* connected = mysql_real_connect(m, server.host.c_str(), who_login.user.c_str(),
                                        who_login.password.reveal().c_str(), db, server.port, nullptr, 0);
  if (ca) ca->remove();  // read during the handshake
  if (connected == nullptr)
    throw_connect_failure(server, who_login.user, database, who, mysql_errno(m), one_line(mysql_error(m)));

  if (must_tls && mysql_get_ssl_cipher(m) == nullptr)
    throw error(error_kind::connector, product(server) + " at " + endpoint(server) +
                                           " did not negotiate TLS although tls=" + std::string(to_string(server.tls)) +
                                           ": enable TLS on the server, or set tls in the connector")
        .about("tls");
  return conn;
}

// ---------------------------------------------------------------------------------------
// Running statements
// ---------------------------------------------------------------------------------------

struct statement {
  statement(std::string what_, std::string privilege_ = {}, bool sensitive_ = false,
            std::vector<unsigned> tolerated_ = {})
      : what(std::move(what_)),
        privilege(std::move(privilege_)),
        sensitive(sensitive_),
        tolerated(std::move(tolerated_)) {}
  std::string what;                 ///< "create database \"x\""
  std::string privilege;            ///< named when the server says the admin lacks it
  bool sensitive;                   ///< holds a password: never quote the server's text
  std::vector<unsigned> tolerated;  ///< errnos that mean "already done"
};

bool is_permission_errno(unsigned code) {
  switch (code) {
    case ER_DBACCESS_DENIED_ERROR:         // 1044
    case ER_ACCESS_DENIED_ERROR:           // 1045
    case ER_TABLEACCESS_DENIED_ERROR:      // 1142
    case ER_COLUMNACCESS_DENIED_ERROR:     // 1143
    case ER_SPECIFIC_ACCESS_DENIED_ERROR:  // 1227
    case ER_CANT_CREATE_USER_WITH_GRANT:   // 1410
    case ER_PASSWORD_NOT_ALLOWED:          // 1132
    case ER_PASSWORD_ANONYMOUS_USER:       // 1131
    case ER_PROCACCESS_DENIED_ERROR:       // 1370
    case 1698:                             // ER_ACCESS_DENIED_NO_PASSWORD_ERROR
      return true;
    default: return false;
  }
}

[[noreturn]] void throw_statement_failure(MYSQL* m, const server_address& server, const statement& st, party who,
                                          const std::string& actor) {
  const unsigned code = mysql_errno(m);
  const std::string name = product(server);
  // Server text may quote the statement ("near '...'"), so not for password statements.
  const std::string server_text = st.sensitive ? std::string() : one_line(mysql_error(m));

  if (is_transient_errno(code) || (code >= 2000 && code < 3000)) {
    throw error(error_kind::unavailable, "lost the connection to " + name + " while trying to " + st.what +
                                             (server_text.empty() ? "" : ": " + server_text) + " (errno " +
                                             std::to_string(code) + ")")
        .db_errno(code)
        .retryable();
  }

  std::string message;
  if (is_permission_errno(code) && who == party::admin) {
    message = "the " + name + " admin \"" + actor + "\" may not " + st.what;
    if (!st.privilege.empty()) message += ": it needs " + st.privilege;
  } else if (code == 1819 /* ER_NOT_VALID_PASSWORD */) {
    message = name + " could not " + st.what + ": the password does not satisfy the server's password policy";
  } else if (st.sensitive && code == ER_CANNOT_USER) {
    message = name + " could not " + st.what + ": the account does not exist or cannot be changed";
  } else {
    message = name + " could not " + st.what;
  }
  if (!server_text.empty()) message += ": " + server_text;
  message += " (errno " + std::to_string(code) + ")";

  error e(who == party::admin ? error_kind::database : error_kind::verification, message);
  e.db_errno(code);
  if (code == ER_LOCK_DEADLOCK || code == ER_LOCK_WAIT_TIMEOUT) e.retryable();
  throw e;
}

/// Runs one statement and discards any result. Returns false if it failed with a
/// tolerated errno.
bool run(MYSQL* m, const server_address& server, const std::string& sql, const statement& st, party who,
         const std::string& actor) {
  if (mysql_real_query(m, sql.data(), static_cast<unsigned long>(sql.size())) != 0) {
    const unsigned code = mysql_errno(m);
    if (std::find(st.tolerated.begin(), st.tolerated.end(), code) != st.tolerated.end()) return false;
    throw_statement_failure(m, server, st, who, actor);
  }
  const result_ptr res(mysql_store_result(m));
  if (!res && mysql_field_count(m) != 0) throw_statement_failure(m, server, st, who, actor);
  return true;
}

using row = std::vector<std::optional<std::string>>;

std::vector<row> query(MYSQL* m, const server_address& server, const std::string& sql, const statement& st, party who,
                       const std::string& actor) {
  if (mysql_real_query(m, sql.data(), static_cast<unsigned long>(sql.size())) != 0)
    throw_statement_failure(m, server, st, who, actor);
  const result_ptr res(mysql_store_result(m));
  std::vector<row> rows;
  if (!res) {
    if (mysql_field_count(m) != 0) throw_statement_failure(m, server, st, who, actor);
    return rows;
  }
  const unsigned fields = mysql_num_fields(res.get());
  while (MYSQL_ROW r = mysql_fetch_row(res.get())) {
    const unsigned long* lengths = mysql_fetch_lengths(res.get());
    row out;
    for (unsigned i = 0; i < fields; ++i) {
      if (r[i] == nullptr)
        out.emplace_back();
      else
        out.emplace_back(std::string(r[i], lengths[i]));
    }
    rows.push_back(std::move(out));
  }
  return rows;
}

bool is_mariadb(MYSQL* m) {
  const char* info = mysql_get_server_info(m);
  return info != nullptr && contains(info, "MariaDB");
}

/// 'user'@'%' with the user name escaped as a literal.
std::string account(MYSQL* m, const std::string& user) {
  std::string out;
  append_literal(m, out, user);
  out += "@'%'";
  return out;
}

// ---------------------------------------------------------------------------------------
// The admin session
// ---------------------------------------------------------------------------------------

class mysql_admin_session final : public admin_session {
public:
  mysql_admin_session(mysql_ptr conn, server_address server, std::string admin_user)
      : conn_(std::move(conn)), server_(std::move(server)), admin_(std::move(admin_user)) {}

  void ensure_database(const tenant_names& names, const ownership* owner) override {
    check_identifier(server_, names.database, "database");
    if (owner != nullptr) claim_all(names, *owner);
    // Read first, so that a plan lists only what is missing.
    if (database_exists(names.database)) return;
    change("CREATE DATABASE IF NOT EXISTS " + quote_ident(names.database) + " CHARACTER SET utf8mb4",
           {"create database \"" + names.database + "\"", "the CREATE privilege", false, {ER_DB_CREATE_EXISTS}});
  }

  bool ensure_user(const std::string& user, const secret& initial_password, const ownership* owner) override {
    check_identifier(server_, user, "user");
    check_password(initial_password, "\"" + user + "\"");
    if (owner != nullptr) claim(object_kind::user, user, *owner);
    if (user_exists(user)) return false;
    MYSQL* m = conn_.get();
    wiped_string sql;
    sql.value = "CREATE USER IF NOT EXISTS " + account(m, user) + " IDENTIFIED BY ";
    append_literal(m, sql.value, initial_password.reveal());
    // Unless the connector itself allows plain text, the tenant may never log in without TLS.
    if (server_.tls != tls_mode::disable && server_.tls != tls_mode::allow && server_.tls != tls_mode::prefer)
      sql.value += " REQUIRE SSL";
    const bool require_ssl = contains(sql.value, " REQUIRE SSL");
    const std::string shown = "CREATE USER IF NOT EXISTS " + account(m, user) + " IDENTIFIED BY " +
                              std::string(masked_password) + (require_ssl ? " REQUIRE SSL" : "");
    if (!record(shown)) {
      planned_.push_back(user);  // exists in the plan only
      created_.push_back(user);
      return true;
    }
    if (!run(m, server_, sql.value,
             {"create the account \"" + user + "\"", "the CREATE USER privilege", true, {ER_CANNOT_USER}}, party::admin,
             admin_))
      return false;
    // IF NOT EXISTS turns a lost race into a note: the account was made by someone else.
    if (mysql_warning_count(m) != 0) return false;
    created_.push_back(user);
    return true;
  }

  void set_password(const std::string& user, const secret& password) override {
    check_identifier(server_, user, "user");
    check_password(password, "\"" + user + "\"");
    MYSQL* m = conn_.get();
    wiped_string sql;
    sql.value = "ALTER USER " + account(m, user) + " IDENTIFIED BY ";
    append_literal(m, sql.value, password.reveal());
    change(sql.value, {"set the password of \"" + user + "\"", "the CREATE USER privilege", true},
           "ALTER USER " + account(m, user) + " IDENTIFIED BY " + std::string(masked_password));
  }

  void grant(const tenant_names& names, const std::string& user) override {
    check_identifier(server_, names.database, "database");
    check_identifier(server_, user, "user");
    MYSQL* m = conn_.get();
    // MySQL 8 with partial_revokes reads '_' and '%' literally, and "\_" would then
    // name another database.
    const std::string target =
        literal_grant_names() ? quote_ident(names.database) : quote_grant_database(names.database);
    // Read first: a plan lists only what is missing, and what an existing account lost
    // (a revoked privilege) is a repair.
    const bool fresh = is_planned(user);
    const bool created = std::find(created_.begin(), created_.end(), user) != created_.end();
    if (fresh || !holds_all_privileges(grants_of(user), target)) {
      change("GRANT ALL PRIVILEGES ON " + target + ".* TO " + account(m, user),
             {"grant \"" + user + "\" access to database \"" + names.database + "\"",
              "ALL PRIVILEGES on that database WITH GRANT OPTION"});
      if (!created)
        repaired("account " + user + " had lost privileges on database " + names.database + "; granted them again");
    }
    // Unless the connector itself allows plain text, the account must require TLS.
    if (!fresh && server_.tls != tls_mode::disable && server_.tls != tls_mode::allow &&
        server_.tls != tls_mode::prefer) {
      std::string sql = "SELECT ssl_type FROM mysql.user WHERE User = ";
      append_literal(m, sql, user);
      sql += " AND Host = '%'";
      const auto rows = query(m, server_, sql, {"read whether \"" + user + "\" must use TLS", "SELECT on mysql.user"},
                              party::admin, admin_);
      if (!rows.empty() && !rows[0].empty() && rows[0][0] && rows[0][0]->empty()) {
        change("ALTER USER " + account(m, user) + " REQUIRE SSL",
               {"require TLS of \"" + user + "\"", "the CREATE USER privilege"});
        repaired("account " + user + " no longer required TLS; set REQUIRE SSL again");
      }
    }
  }

  std::vector<std::string> apply_limits(const tenant_names& names, const std::string& user,
                                        const tenant_limits& limits) override {
    check_identifier(server_, names.database, "database");
    check_identifier(server_, user, "user");
    check_limits(limits);
    if (limits.statement_timeout.count() != 0 || limits.idle_in_transaction_timeout.count() != 0)
      throw error(error_kind::internal, "statement and idle-in-transaction timeouts are PostgreSQL's; " +
                                            product(server_) + " takes only a connection limit");
    MYSQL* m = conn_.get();
    std::string sql = "SELECT max_user_connections FROM mysql.user WHERE User = ";
    append_literal(m, sql, user);
    sql += " AND Host = '%'";
    const auto rows =
        query(m, server_, sql, {"read the limits of \"" + user + "\"", "SELECT on mysql.user"}, party::admin, admin_);
    const bool fresh = is_planned(user);  // exists in the plan only: no limit yet
    if (!fresh && (rows.size() != 1 || rows[0].empty()))
      throw error(error_kind::database,
                  product(server_) + " could not set the limits of \"" + user + "\": the account does not exist")
          .about(user);
    const std::string have = fresh ? std::string("0") : rows[0][0].value_or("0");
    const std::string want = std::to_string(limits.max_connections);
    if (have == want) return {};
    // 0 is "no limit of its own" (MariaDB: the server's max_user_connections).
    change("ALTER USER " + account(m, user) + " WITH MAX_USER_CONNECTIONS " + want,
           {"set the connection limit of \"" + user + "\"", "the CREATE USER privilege"});
    const bool numeric = !have.empty() && have.size() <= 6 &&
                         std::all_of(have.begin(), have.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
    return {"maxConnections " + (numeric ? describe_connections(std::stoi(have)) : std::string("?")) + " -> " +
            describe_connections(limits.max_connections)};
  }

  int end_sessions(const std::string& user) override {
    check_identifier(server_, user, "user");
    MYSQL* m = conn_.get();
    if (plan_ != nullptr) {
      plan_->push_back("KILL CONNECTION <id> for each session in information_schema.PROCESSLIST WHERE USER = '" + user +
                       "'");
      if (!execute_) return 0;
    }
    std::string list = "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ";
    append_literal(m, list, user);
    list += " AND ID <> CONNECTION_ID()";
    const statement look{"list the sessions of \"" + user + "\"", "the PROCESS privilege"};
    int ended = 0;
    for (const auto& r : query(m, server_, list, look, party::admin, admin_)) {
      if (r.empty() || !r[0] || r[0]->empty() ||
          !std::all_of(r[0]->begin(), r[0]->end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
        continue;
      // A session that ended meanwhile is "unknown thread": nothing left to do.
      if (run(m, server_, "KILL CONNECTION " + *r[0],
              {"end a session of \"" + user + "\"",
               "the CONNECTION ADMIN (or SUPER) privilege",
               false,
               {ER_NO_SUCH_THREAD}},
              party::admin, admin_))
        ++ended;
    }
    // KILL marks the thread; it goes once it notices. Wait for that, 5 s at most.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (ended > 0 && !query(m, server_, list, look, party::admin, admin_).empty() &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return ended;
  }

  bool user_exists(const std::string& user) override {
    check_identifier(server_, user, "user");
    MYSQL* m = conn_.get();
    std::string sql = "SELECT 1 FROM mysql.user WHERE User = ";
    append_literal(m, sql, user);
    sql += " AND Host = '%'";
    return !query(m, server_, sql, {"look up the account \"" + user + "\"", "SELECT on mysql.user"}, party::admin,
                  admin_)
                .empty();
  }

  bool database_exists(const std::string& database) override {
    check_identifier(server_, database, "database");
    MYSQL* m = conn_.get();
    std::string sql = "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ";
    append_literal(m, sql, database);
    return !query(m, server_, sql, {"look up the database \"" + database + "\"", "access to information_schema"},
                  party::admin, admin_)
                .empty();
  }

  std::string server_version() override {
    const char* info = mysql_get_server_info(conn_.get());
    const std::string version = info != nullptr ? info : "";
    return (contains(version, "MariaDB") ? "MariaDB " : "MySQL ") + version;
  }

  std::vector<recorded_object> recorded_objects(const tenant_names* names) override {
    MYSQL* m = conn_.get();
    // Read-only: no owners table yet is an empty inventory (it is not created here).
    if (query(m, server_,
              "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'tenantdb' AND TABLE_NAME = 'owners'",
              {"look up the ownership table tenantdb.owners", "access to information_schema"}, party::admin, admin_)
            .empty())
      return {};
    std::string sql = "SELECT kind, name, record FROM `tenantdb`.`owners`";
    if (names != nullptr) {
      sql += " WHERE name IN (";
      bool first = true;
      for (const std::string* n : {&names->database, &names->user_a, &names->user_b}) {
        check_identifier(server_, *n, "name");
        if (!first) sql += ", ";
        first = false;
        append_literal(m, sql, *n);
      }
      sql += ")";
    }
    sql += " ORDER BY name, kind";
    std::vector<recorded_object> out;
    for (const auto& r :
         query(m, server_, sql, {"read the ownership records", "SELECT on tenantdb.owners"}, party::admin, admin_)) {
      if (r.size() != 3 || !r[0] || !r[1] || !r[2]) continue;
      auto record = parse_owner_record(*r[2]);
      if (!record || (*r[0] != "database" && *r[0] != "user")) continue;
      out.push_back({*r[0], *r[1], std::move(*record)});
    }
    return out;
  }

  std::optional<long long> database_size(const std::string& database) override {
    if (!database_exists(database)) return std::nullopt;
    MYSQL* m = conn_.get();
    std::string sql =
        "SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ";
    append_literal(m, sql, database);
    const auto rows = query(m, server_, sql, {"read the size of database \"" + database + "\""}, party::admin, admin_);
    if (rows.empty() || rows[0].empty() || !rows[0][0]) return 0;
    return std::atoll(rows[0][0]->c_str());
  }

  int session_count(const std::string& user) override {
    check_identifier(server_, user, "user");
    MYSQL* m = conn_.get();
    std::string sql = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ";
    append_literal(m, sql, user);
    const auto rows = query(m, server_, sql, {"count the sessions of \"" + user + "\"", "the PROCESS privilege"},
                            party::admin, admin_);
    if (rows.empty() || rows[0].empty() || !rows[0][0]) return 0;
    return std::atoi(rows[0][0]->c_str());
  }

  std::optional<bool> login_allowed(const std::string& user) override {
    if (!user_exists(user)) return std::nullopt;
    MYSQL* m = conn_.get();
    // SHOW CREATE USER says ACCOUNT LOCK on both MySQL and MariaDB when it is locked.
    const auto rows = query(m, server_, "SHOW CREATE USER " + account(m, user),
                            {"read whether \"" + user + "\" may log in", "SELECT on mysql.user"}, party::admin, admin_);
    if (rows.empty() || rows[0].empty() || !rows[0][0]) return std::nullopt;
    return !contains(*rows[0][0], " ACCOUNT LOCK");
  }

  bool set_login_allowed(const std::string& user, bool allowed) override {
    const auto now = login_allowed(user);
    if (!now || *now == allowed) return false;
    MYSQL* m = conn_.get();
    change("ALTER USER " + account(m, user) + (allowed ? " ACCOUNT UNLOCK" : " ACCOUNT LOCK"),
           {std::string(allowed ? "unlock" : "lock") + " the account \"" + user + "\"", "the CREATE USER privilege"});
    return true;
  }

  void write_record(const recorded_object& object) override {
    check_identifier(server_, object.name, "name");
    MYSQL* m = conn_.get();
    std::string sql = "UPDATE `tenantdb`.`owners` SET record = ";
    append_literal(m, sql, owner_record_json(object.record));
    sql += " WHERE kind = ";
    append_literal(m, sql, object.kind);
    sql += " AND name = ";
    append_literal(m, sql, object.name);
    change(sql, {"update the ownership record of \"" + object.name + "\"", "UPDATE on tenantdb.owners"});
  }

  void drop_record(const recorded_object& object) override {
    check_identifier(server_, object.name, "name");
    MYSQL* m = conn_.get();
    std::string sql = "DELETE FROM `tenantdb`.`owners` WHERE kind = ";
    append_literal(m, sql, object.kind);
    sql += " AND name = ";
    append_literal(m, sql, object.name);
    change(sql, {"remove the ownership record of \"" + object.name + "\"", "DELETE on tenantdb.owners"});
  }

  void drop_database(const std::string& database) override {
    if (!database_exists(database)) return;
    change("DROP DATABASE IF EXISTS " + quote_ident(database),
           {"drop database \"" + database + "\"", "the DROP privilege"});
  }

  void drop_user(const std::string& user) override {
    if (!user_exists(user)) return;
    MYSQL* m = conn_.get();
    change("DROP USER IF EXISTS " + account(m, user),
           {"drop the account \"" + user + "\"", "the CREATE USER privilege"});
  }

  void plan_into(std::vector<std::string>* sink, bool execute) override {
    plan_ = sink;
    execute_ = execute;
    planned_.clear();
    owner_table_planned_ = false;
    owner_table_ready_ = false;
  }

  std::vector<std::string> take_repairs() override { return std::exchange(repairs_, {}); }

private:
  // --- One place for every statement that changes the server (the plan, item 4 of
  // issue 11): while a plan sink is set it is listed there (as `shown`, which masks a
  // password, when given), and run only if the plan is executed too.

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
    return run(conn_.get(), server_, sql, st, party::admin, admin_);
  }

  bool is_planned(const std::string& name) const {
    return std::find(planned_.begin(), planned_.end(), name) != planned_.end();
  }

  /// Drift (item 5 of issue 11) found on an existing account and put back.
  void repaired(std::string what) {
    if (plan_ == nullptr || execute_) log::info("repaired drift", {{"repair", what}});
    repairs_.push_back(std::move(what));
  }

  /// SHOW GRANTS of the account, one statement per entry.
  std::vector<std::string> grants_of(const std::string& user) {
    MYSQL* m = conn_.get();
    std::vector<std::string> out;
    for (const auto& r :
         query(m, server_, "SHOW GRANTS FOR " + account(m, user),
               {"read the privileges of \"" + user + "\"", "SELECT on the mysql schema"}, party::admin, admin_))
      if (!r.empty() && r[0]) out.push_back(*r[0]);
    return out;
  }

  std::vector<std::string>* plan_ = nullptr;
  bool execute_ = false;
  std::vector<std::string> planned_;
  std::vector<std::string> created_;
  std::vector<std::string> repairs_;
  bool owner_table_planned_ = false;

  // Ownership records live in the admin's own schema `tenantdb`, table `owners`: one row
  // per tenant database and account, written before the object is created (CREATE USER
  // and CREATE DATABASE commit on their own, so the record cannot share their
  // transaction). Tenants hold privileges on their own database only: they cannot read
  // or write it. Derived names always end in "_<hash>", so none is ever `tenantdb`.
  enum class object_kind { database, user };

  static const char* kind_name(object_kind k) { return k == object_kind::database ? "database" : "user"; }
  std::string describe(object_kind k, const std::string& name) const {
    return product(server_) + (k == object_kind::database ? " database \"" : " account \"") + name + "\"";
  }
  std::string release(object_kind k, const std::string& name) const {
    return std::string("DELETE FROM tenantdb.owners WHERE kind = '") + kind_name(k) + "' AND name = '" + name + "'";
  }

  void ensure_owner_table() {
    if (owner_table_ready_) return;
    MYSQL* m = conn_.get();
    // Read first, so that a plan lists it only on a server that has none yet.
    if (!query(m, server_,
               "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'tenantdb' AND TABLE_NAME = 'owners'",
               {"look up the ownership table tenantdb.owners", "access to information_schema"}, party::admin, admin_)
             .empty()) {
      owner_table_ready_ = true;
      return;
    }
    change("CREATE DATABASE IF NOT EXISTS `tenantdb` CHARACTER SET utf8mb4",
           {"create the ownership schema \"tenantdb\"", "the CREATE privilege", false, {ER_DB_CREATE_EXISTS}});
    change(
        "CREATE TABLE IF NOT EXISTS `tenantdb`.`owners` (kind VARCHAR(16) NOT NULL, name VARCHAR(64) NOT NULL, "
        "record TEXT NOT NULL, PRIMARY KEY (kind, name)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        {"create the ownership table tenantdb.owners", "the CREATE privilege"});
    owner_table_planned_ = plan_ != nullptr && !execute_;
    owner_table_ready_ = true;
  }

  bool exists(object_kind k, const std::string& name) {
    return k == object_kind::database ? database_exists(name) : user_exists(name);
  }

  /// The record of an object, std::nullopt if none.
  std::optional<std::string> read_record(object_kind k, const std::string& name) {
    if (owner_table_planned_) return std::nullopt;  // the table exists in the plan only
    MYSQL* m = conn_.get();
    std::string sql = "SELECT record FROM `tenantdb`.`owners` WHERE kind = ";
    append_literal(m, sql, kind_name(k));
    sql += " AND name = ";
    append_literal(m, sql, name);
    const auto rows =
        query(m, server_, sql, {"read the ownership record of \"" + name + "\"", "SELECT on tenantdb.owners"},
              party::admin, admin_);
    if (rows.empty() || rows[0].empty() || !rows[0][0]) return std::nullopt;
    return rows[0][0];
  }

  /// Inserts this owner's record; false if a row for the object exists already.
  bool insert_record(object_kind k, const std::string& name, const ownership& owner) {
    MYSQL* m = conn_.get();
    std::string sql = "INSERT INTO `tenantdb`.`owners` (kind, name, record) VALUES (";
    append_literal(m, sql, kind_name(k));
    sql += ", ";
    append_literal(m, sql, name);
    sql += ", ";
    append_literal(m, sql, owner_record_json(owner.record));
    sql += ")";
    return change(sql, {"record the owner of \"" + name + "\"", "INSERT on tenantdb.owners", false, {ER_DUP_ENTRY}});
  }

  /// Checks one object; returns true if it has no record yet and one must be written (a
  /// missing object, or an existing unrecorded one adopted). Existence is read before the
  /// record: a racing owner writes the record before it creates the object.
  bool needs_record(object_kind k, const std::string& name, const ownership& owner) {
    const bool present = exists(k, name);
    const auto record = read_record(k, name);
    if (record) return must_adopt(owner, describe(k, name), record, release(k, name));
    if (present) return must_adopt(owner, describe(k, name), std::nullopt, release(k, name));
    return true;
  }

  /// The object carries this owner's record afterwards, or this throws (ownership).
  void claim(object_kind k, const std::string& name, const ownership& owner) {
    ensure_owner_table();
    if (!needs_record(k, name, owner)) return;
    const bool adopted = exists(k, name);
    if (!insert_record(k, name, owner)) {
      // A racer recorded it first: it must be this owner too.
      const auto record = read_record(k, name);
      if (!record || must_adopt(owner, describe(k, name), record, release(k, name)))
        throw error(error_kind::database, "could not record the owner of \"" + name + "\"; will retry").retryable();
      return;
    }
    if (adopted) log::warn("adopted an existing object", {{"object", describe(k, name)}});
  }

  /// Every object with one of the tenant's names is checked before any is recorded or
  /// created, so a refusal changes nothing.
  void claim_all(const tenant_names& names, const ownership& owner) {
    ensure_owner_table();
    const std::pair<object_kind, const std::string*> objects[] = {{object_kind::database, &names.database},
                                                                  {object_kind::user, &names.user_a},
                                                                  {object_kind::user, &names.user_b}};
    for (const auto& [k, name] : objects) {
      check_identifier(server_, *name, k == object_kind::database ? "database" : "user");
      needs_record(k, *name, owner);
    }
    for (const auto& [k, name] : objects)
      if (k == object_kind::database || exists(k, *name)) claim(k, *name, owner);
  }

  bool literal_grant_names() {
    if (!partial_revokes_) {
      partial_revokes_ = false;
      if (!is_mariadb(conn_.get())) {
        const auto rows = query(conn_.get(), server_, "SELECT @@GLOBAL.partial_revokes", {"read partial_revokes"},
                                party::admin, admin_);
        partial_revokes_ = !rows.empty() && !rows[0].empty() && rows[0][0] && *rows[0][0] == "1";
      }
    }
    return *partial_revokes_;
  }

  mysql_ptr conn_;
  server_address server_;
  std::string admin_;
  std::optional<bool> partial_revokes_;
  bool owner_table_ready_ = false;
};

}  // namespace

// ---------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------

namespace {

std::unique_ptr<admin_session> connect_mysql_admin(const server_address& server, const login& admin,
                                                   const db_timeouts& timeouts) {
  mysql_ptr conn = open_connection(server, admin, std::string(), timeouts, party::admin);
  return std::make_unique<mysql_admin_session>(std::move(conn), server, admin.user);
}

void mysql_verify_login(const server_address& server, const login& tenant_login, const std::string& database,
                        const db_timeouts& timeouts) {
  if (database.empty()) throw error(error_kind::usage, "verify_login needs the tenant's database name");
  mysql_ptr conn = open_connection(server, tenant_login, database, timeouts, party::tenant);
  MYSQL* m = conn.get();
  const std::string& user = tenant_login.user;

  const auto rows =
      query(m, server, "SELECT DATABASE()", {"read the current database as \"" + user + "\""}, party::tenant, user);
  const std::string current = (!rows.empty() && !rows[0].empty() && rows[0][0]) ? *rows[0][0] : "";
  if (current != database)
    throw error(error_kind::verification, product(server) + " logged \"" + user + "\" into database \"" +
                                              printable(current) + "\" instead of \"" + database + "\"");
  run(m, server, "CREATE TEMPORARY TABLE tenantdb_login_probe (x INT)",
      {"create a table in database \"" + database + "\" as \"" + user + "\""}, party::tenant, user);
  run(m, server, "DROP TEMPORARY TABLE tenantdb_login_probe", {"drop the probe table as \"" + user + "\""},
      party::tenant, user);
}

void mysql_change_own_password(const server_address& server, const login& current, const std::string& database,
                               const secret& next, const db_timeouts& timeouts) {
  check_password(next, "\"" + printable(current.user) + "\"");
  mysql_ptr conn = open_connection(server, current, database, timeouts, party::tenant);
  MYSQL* m = conn.get();
  wiped_string sql;
  // MariaDB lets any account SET PASSWORD for itself; MySQL 8 uses ALTER USER for that.
  if (is_mariadb(m)) {
    sql.value = "SET PASSWORD = PASSWORD(";
    append_literal(m, sql.value, next.reveal());
    sql.value += ")";
  } else {
    sql.value = "ALTER USER CURRENT_USER() IDENTIFIED BY ";
    append_literal(m, sql.value, next.reveal());
  }
  try {
    run(m, server, sql.value, {"change the password of \"" + current.user + "\"", "", true}, party::tenant,
        current.user);
  } catch (error& e) {
    // A refused statement is the server's doing, not a failed login.
    if (e.kind() != error_kind::verification) throw;
    error copy(error_kind::database, e.what());
    copy.db_errno(e.db_errno()).retryable(e.is_retryable());
    throw copy;
  }
}

int mysql_count_own_sessions(const server_address& server, const login& account, const std::string& database,
                             const db_timeouts& timeouts) {
  if (database.empty()) throw error(error_kind::usage, "count_own_sessions needs the tenant's database name");
  mysql_ptr conn = open_connection(server, account, database, timeouts, party::tenant);
  MYSQL* m = conn.get();
  const std::string& user = account.user;
  // Without PROCESS an account sees only its own threads; the USER condition keeps the
  // count right should it ever have PROCESS. This probe's own thread is left out.
  const auto rows = query(m, server,
                          "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND USER = "
                          "SUBSTRING_INDEX(USER(), '@', 1)",
                          {"count the open sessions of \"" + user + "\""}, party::tenant, user);
  if (rows.empty() || rows[0].empty() || !rows[0][0]) return 0;
  return std::atoi(rows[0][0]->c_str());
}

/// The engine interface over the entry points above.
/// What the tenant's own SHOW GRANTS holds beyond USAGE on *.* and ALL PRIVILEGES on its
/// database: each such grant up to " TO " (a grant line can carry a password hash after
/// it, which is never returned).
std::vector<std::string> mysql_excess_privileges(const server_address& server, const login& tenant_login,
                                                 const std::string& database, const db_timeouts& timeouts) {
  if (database.empty()) throw error(error_kind::usage, "excess_privileges needs the tenant's database name");
  mysql_ptr conn = open_connection(server, tenant_login, database, timeouts, party::tenant);
  const std::string& user = tenant_login.user;
  const auto rows =
      query(conn.get(), server, "SHOW GRANTS", {"read its own privileges as \"" + user + "\""}, party::tenant, user);
  std::vector<std::string> out;
  for (const auto& r : rows) {
    if (r.empty() || !r[0]) continue;
    const std::string& g = *r[0];
    const std::string head = g.substr(0, g.find(" TO "));
    const bool grant_option = contains(g, "WITH GRANT OPTION");
    if (head == "GRANT USAGE ON *.*" && !grant_option) continue;
    if (!grant_option && (head == "GRANT ALL PRIVILEGES ON " + quote_grant_database(database) + ".*" ||
                          head == "GRANT ALL PRIVILEGES ON " + quote_ident(database) + ".*"))
      continue;
    out.push_back("grant: " + printable(head) + (grant_option ? " WITH GRANT OPTION" : ""));
  }
  return out;
}

class mysql_engine final : public engine {
public:
  std::unique_ptr<admin_session> connect_admin(const server_address& server, const login& admin,
                                               const db_timeouts& timeouts) override {
    require_type(server, engine_type::mysql);
    return connect_mysql_admin(server, admin, timeouts);
  }
  void verify_login(const server_address& server, const login& tenant_login, const std::string& database,
                    const db_timeouts& timeouts) override {
    require_type(server, engine_type::mysql);
    mysql_verify_login(server, tenant_login, database, timeouts);
  }
  void change_own_password(const server_address& server, const login& current, const std::string& database,
                           const secret& next, const db_timeouts& timeouts) override {
    require_type(server, engine_type::mysql);
    mysql_change_own_password(server, current, database, next, timeouts);
  }
  int count_own_sessions(const server_address& server, const login& account, const std::string& database,
                         const db_timeouts& timeouts) override {
    require_type(server, engine_type::mysql);
    return mysql_count_own_sessions(server, account, database, timeouts);
  }
  std::vector<std::string> excess_privileges(const server_address& server, const login& tenant_login,
                                             const std::string& database, const db_timeouts& timeouts) override {
    require_type(server, engine_type::mysql);
    return mysql_excess_privileges(server, tenant_login, database, timeouts);
  }
};

}  // namespace

std::unique_ptr<engine> make_mysql_engine() {
  return std::make_unique<mysql_engine>();
}

}  // namespace tenantdb::detail
