// floor: the least work a client must do to provision one tenant, as a yardstick for
// tenantdb-init. For each tenant named on the command line it:
//   1. connects as the admin over TLS (verify-full, CA from the connector),
//   2. creates the database and two login accounts with the same statements the init
//      issues on a fresh tenant (no existence checks: the tenants are new),
//   3. logs in as the tenant over TLS and proves it can create a table (rolled back /
//      temporary), and
//   4. writes the credentials as a directory of one file per key (each fsynced, then an
//      atomic ..data symlink swap, like a Secret volume).
// The admin password is read from the connector directory, never from argv or env.
//
//   floor CONNECTOR_DIR OUTPUT_BASE TENANT...
// Credentials go to OUTPUT_BASE/TENANT. Prints "TENANT <ns>" per tenant: the time from
// before the admin connection to after the files are in place, CLOCK_MONOTONIC.
//
//   floor --parallel WORKERS CONNECTOR_DIR OUTPUT_BASE TENANT...
// The same per tenant, WORKERS tenants at a time (processes), for raw throughput at a
// concurrency (bench/scale.sh); prints start, end and status per tenant (run_parallel).
//
//   floor --check-login CONNECTOR_DIR CREDENTIALS_DIR...
// Logs in with the accounts each credentials directory names (bench/scale.sh's check that
// tenantdb-init's tenants work).
#include <fcntl.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

// Step times, printed to stderr when TENANTDB_FLOOR_STEPS is set (for finding what
// dominates a run).
long long now_ns();
bool steps_on = std::getenv("TENANTDB_FLOOR_STEPS") != nullptr;
long long step_t0 = 0;
void step(const char* what) {
  if (!steps_on) return;
  const long long t = now_ns();
  if (step_t0 != 0) std::fprintf(stderr, "step %-28s %8.2f ms\n", what, (t - step_t0) / 1e6);
  step_t0 = t;
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what);
}

long long now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

std::string read_key(const fs::path& dir, const char* key, bool required = true) {
  std::ifstream in(dir / key, std::ios::binary);
  if (!in) {
    if (required) fail("missing " + (dir / key).string());
    return {};
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct connector {
  std::string type, host, port, admin_user, admin_password, ca_pem;
};

connector load_connector(const fs::path& dir) {
  connector c;
  c.type = read_key(dir, "type");
  c.host = read_key(dir, "host");
  c.port = read_key(dir, "port");
  c.admin_user = read_key(dir, "adminUser");
  c.admin_password = read_key(dir, "adminPassword");
  c.ca_pem = read_key(dir, "caCert");
  return c;
}

std::string random_password(std::size_t n = 32) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string out;
  while (out.size() < n) {
    unsigned char buf[64];
    if (getrandom(buf, sizeof buf, 0) != static_cast<ssize_t>(sizeof buf)) fail("getrandom failed");
    for (unsigned char b : buf)
      if (b < 248 && out.size() < n) out += alphabet[b % 62];  // 248 = 4 * 62: no bias
  }
  return out;
}

void write_all(int fd, const std::string& data, const fs::path& p) {
  std::size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) fail("write " + p.string());
    off += static_cast<std::size_t>(n);
  }
}

void fsync_dir(const fs::path& d) {
  const int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("open " + d.string());
  ::fsync(fd);
  ::close(fd);
}

// Secret-volume layout: OUT/..<gen>/KEY files, OUT/..data -> ..<gen>, OUT/KEY -> ..data/KEY.
void publish(const fs::path& out, const std::map<std::string, std::string>& data) {
  fs::create_directories(out);
  ::chmod(out.c_str(), 0700);
  const std::string gen = "..gen_" + std::to_string(now_ns());
  const fs::path gdir = out / gen;
  if (::mkdir(gdir.c_str(), 0700) != 0) fail("mkdir " + gdir.string());
  for (const auto& [key, value] : data) {
    const fs::path p = gdir / key;
    const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) fail("open " + p.string());
    write_all(fd, value, p);
    if (::fsync(fd) != 0) fail("fsync " + p.string());
    ::close(fd);
  }
  fsync_dir(gdir);
  const fs::path tmp = out / "..data_tmp";
  ::unlink(tmp.c_str());
  if (::symlink(gen.c_str(), tmp.c_str()) != 0) fail("symlink " + tmp.string());
  if (::rename(tmp.c_str(), (out / "..data").c_str()) != 0) fail("rename ..data");
  for (const auto& [key, value] : data) {
    const fs::path link = out / key;
    if (::symlink(("..data/" + key).c_str(), link.c_str()) != 0 && errno != EEXIST) fail("symlink " + link.string());
  }
  fsync_dir(out);
}

// --------------------------------------------------------------------------------------
// PostgreSQL
// --------------------------------------------------------------------------------------

struct pg_closer {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using pg_ptr = std::unique_ptr<PGconn, pg_closer>;

pg_ptr pg_connect(const connector& c, const std::string& ca_file, const std::string& user, const std::string& password,
                  const std::string& db) {
  const char* keys[] = {"host",    "port",        "dbname",          "user",       "password",
                        "sslmode", "sslrootcert", "connect_timeout", "gssencmode", nullptr};
  const char* vals[] = {c.host.c_str(), c.port.c_str(),  db.c_str(), user.c_str(), password.c_str(),
                        "verify-full",  ca_file.c_str(), "10",       "disable",    nullptr};
  pg_ptr conn(PQconnectdbParams(keys, vals, 0));
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK)
    fail("pg connect as " + user + ": " + (conn ? PQerrorMessage(conn.get()) : "out of memory"));
  return conn;
}

void pg_exec(PGconn* c, const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  const auto st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    std::string msg = PQresultErrorMessage(r);
    PQclear(r);
    fail("pg: " + msg);
  }
  PQclear(r);
}

std::string pg_ident(PGconn* c, const std::string& s) {
  char* q = PQescapeIdentifier(c, s.c_str(), s.size());
  std::string out(q);
  PQfreemem(q);
  return out;
}

std::string pg_literal(PGconn* c, const std::string& s) {
  char* q = PQescapeLiteral(c, s.c_str(), s.size());
  std::string out(q);
  PQfreemem(q);
  return out;
}

std::string pg_verifier(PGconn* c, const std::string& user, const std::string& password) {
  char* v = PQencryptPasswordConn(c, password.c_str(), user.c_str(), "scram-sha-256");
  if (!v) fail("PQencryptPasswordConn: " + std::string(PQerrorMessage(c)));
  std::string out(v);
  PQfreemem(v);
  return out;
}

void pg_provision(const connector& c, const std::string& ca_file, const std::string& db, const std::string& ua,
                  const std::string& pa, const std::string& ub, const std::string& pb) {
  {
    pg_ptr admin = pg_connect(c, ca_file, c.admin_user, c.admin_password, "postgres");
    step("admin connect (TLS+SCRAM)");
    PGconn* a = admin.get();
    const std::string g = pg_ident(a, db);
    pg_exec(a, "CREATE ROLE " + g + " NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT");
    pg_exec(a, "GRANT " + g + " TO CURRENT_USER");
    step("create group role + join");
    pg_exec(a, "CREATE DATABASE " + g + " OWNER " + g);
    step("CREATE DATABASE");
    pg_exec(a, "REVOKE ALL ON DATABASE " + g + " FROM PUBLIC");
    for (const auto& [u, p] : {std::pair{&ua, &pa}, std::pair{&ub, &pb}}) {
      const std::string l = pg_ident(a, *u);
      const std::string verifier = pg_verifier(a, *u, *p);
      step("SCRAM verifier (client)");
      pg_exec(a, "CREATE ROLE " + l +
                     " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT PASSWORD " +
                     pg_literal(a, verifier));
      pg_exec(a, "GRANT " + g + " TO " + l);
      pg_exec(a, "ALTER ROLE " + l + " SET role = " + pg_literal(a, db));
      step("login role DDL");
    }
  }
  step("admin disconnect");
  pg_ptr t = pg_connect(c, ca_file, ua, pa, db);
  step("tenant connect (TLS+SCRAM)");
  pg_exec(t.get(), "SELECT current_database()");
  pg_exec(t.get(), "BEGIN");
  pg_exec(t.get(), "CREATE TABLE tenantdb_login_probe (x int)");
  pg_exec(t.get(), "ROLLBACK");
  step("tenant probe");
}

// --------------------------------------------------------------------------------------
// MariaDB
// --------------------------------------------------------------------------------------

struct my_closer {
  void operator()(MYSQL* m) const { mysql_close(m); }
};
using my_ptr = std::unique_ptr<MYSQL, my_closer>;

my_ptr my_connect(const connector& c, const std::string& ca_file, const std::string& user, const std::string& password,
                  const char* db) {
  my_ptr m(mysql_init(nullptr));
  if (!m) fail("mysql_init");
  unsigned int timeout = 10;
  unsigned int tcp = MYSQL_PROTOCOL_TCP;
  my_bool yes = 1;
  mysql_optionsv(m.get(), MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  mysql_optionsv(m.get(), MYSQL_OPT_PROTOCOL, &tcp);
  mysql_optionsv(m.get(), MYSQL_OPT_SSL_ENFORCE, &yes);
  mysql_optionsv(m.get(), MYSQL_OPT_SSL_CA, ca_file.c_str());
  mysql_optionsv(m.get(), MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &yes);
  if (!mysql_real_connect(m.get(), c.host.c_str(), user.c_str(), password.c_str(), db,
                          static_cast<unsigned>(std::stoul(c.port)), nullptr, 0))
    fail("mariadb connect as " + user + ": " + mysql_error(m.get()));
  return m;
}

void my_exec(MYSQL* m, const std::string& sql) {
  if (mysql_real_query(m, sql.data(), sql.size()) != 0) fail("mariadb: " + std::string(mysql_error(m)));
  if (MYSQL_RES* r = mysql_store_result(m)) mysql_free_result(r);
}

std::string my_literal(MYSQL* m, const std::string& s) {
  std::string out(s.size() * 2 + 1, '\0');
  out.resize(mysql_real_escape_string(m, out.data(), s.data(), s.size()));
  return "'" + out + "'";
}

void my_provision(const connector& c, const std::string& ca_file, const std::string& db, const std::string& ua,
                  const std::string& pa, const std::string& ub, const std::string& pb) {
  {
    my_ptr admin = my_connect(c, ca_file, c.admin_user, c.admin_password, nullptr);
    step("admin connect (TLS)");
    MYSQL* a = admin.get();
    my_exec(a, "CREATE DATABASE `" + db + "` CHARACTER SET utf8mb4");
    step("CREATE DATABASE");
    for (const auto& [u, p] : {std::pair{&ua, &pa}, std::pair{&ub, &pb}}) {
      my_exec(a, "CREATE USER " + my_literal(a, *u) + "@'%' IDENTIFIED BY " + my_literal(a, *p) + " REQUIRE SSL");
      my_exec(a, "GRANT ALL PRIVILEGES ON `" + db + "`.* TO " + my_literal(a, *u) + "@'%'");
      step("CREATE USER + GRANT");
    }
  }
  step("admin disconnect");
  my_ptr t = my_connect(c, ca_file, ua, pa, db.c_str());
  step("tenant connect (TLS)");
  my_exec(t.get(), "SELECT DATABASE()");
  my_exec(t.get(), "CREATE TEMPORARY TABLE tenantdb_login_probe (x INT)");
  my_exec(t.get(), "DROP TEMPORARY TABLE tenantdb_login_probe");
  step("tenant probe");
}

// One tenant, start to finish: provision, log in, publish the credentials.
void provision_one(const connector& c, const std::string& ca_file, bool pg, const fs::path& out_base,
                   const std::string& tenant) {
  const std::string db = "floor_" + tenant;  // tenant names are [a-z0-9_] already
  const std::string ua = db + "_a", ub = db + "_b";
  const std::string pa = random_password(), pb = random_password();
  if (pg)
    pg_provision(c, ca_file, db, ua, pa, ub, pb);
  else
    my_provision(c, ca_file, db, ua, pa, ub, pb);
  const std::string dsn = pg ? "postgres://" + ua + ":" + pa + "@" + c.host + ":" + c.port + "/" + db +
                                   "?sslmode=verify-full&sslrootcert=" + (out_base / tenant / "caCert").string()
                             : ua + ":" + pa + "@tcp(" + c.host + ":" + c.port + ")/" + db + "?tls=custom";
  publish(out_base / tenant, {{"database", db},
                              {"user", ua},
                              {"password", pa},
                              {"standbyUser", ub},
                              {"standbyPassword", pb},
                              {"host", c.host},
                              {"port", c.port},
                              {"type", pg ? "postgres" : "mariadb"},
                              {"sslMode", "verify-full"},
                              {"caCert", c.ca_pem},
                              {"dataSource", dsn}});
  step("write credential files");
}

// Tenants one after the other; prints "TENANT <ns>" each.
void run_sequential(const connector& c, const std::string& ca_file, bool pg, const fs::path& out_base,
                    const std::vector<std::string>& tenants) {
  for (const std::string& tenant : tenants) {
    const long long t0 = now_ns();
    step_t0 = t0;
    provision_one(c, ca_file, pg, out_base, tenant);
    std::printf("%s %lld\n", tenant.c_str(), now_ns() - t0);
    std::fflush(stdout);
  }
}

// write(2) of one whole line, so lines from concurrent workers never interleave.
void put_line(int fd, const std::string& line) {
  const std::string l = line + "\n";
  (void)!::write(fd, l.data(), l.size());
}

// The raw throughput at a concurrency: `workers` processes take the next tenant from a
// shared counter until none are left. Processes, not threads, like the inits it is compared
// with: OpenSSL 3 serialises much of a TLS handshake's setup on process-wide locks, and
// libpq sets up a TLS context per connection, so 20 threads are slower than 20 processes.
// Prints "TENANT <start ns> <end ns> <status>" per tenant in completion order, times from
// just before the first tenant started (the same lines as bench/pool.cpp), and a failed
// tenant's error on stderr. Returns the number of workers that saw a failure.
int run_parallel(const connector& c, const std::string& ca_file, bool pg, const fs::path& out_base,
                 const std::vector<std::string>& tenants, int workers) {
  steps_on = false;  // step() keeps one clock for one tenant at a time
  using counter = std::atomic<std::size_t>;
  static_assert(counter::is_always_lock_free, "the counter is shared between processes");
  void* shared = ::mmap(nullptr, sizeof(counter), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) fail("mmap");
  counter& next = *new (shared) counter(0);
  std::fflush(nullptr);
  const long long t0 = now_ns();
  std::vector<pid_t> kids;
  for (int w = 0; w < workers; ++w) {
    const pid_t pid = ::fork();
    if (pid < 0) fail("fork");
    if (pid > 0) {
      kids.push_back(pid);
      continue;
    }
    bool failed = false;
    for (std::size_t i; (i = next++) < tenants.size();) {
      const long long start = now_ns();
      int status = 0;
      try {
        provision_one(c, ca_file, pg, out_base, tenants[i]);
      } catch (const std::exception& e) {
        status = 1;
        failed = true;
        put_line(2, "floor: " + tenants[i] + ": " + e.what());
      }
      const long long end = now_ns();
      put_line(1, tenants[i] + " " + std::to_string(start - t0) + " " + std::to_string(end - t0) + " " +
                      std::to_string(status));
    }
    ::_exit(failed ? 1 : 0);  // the parent owns the CA file and the library teardown
  }
  int failed = 0;
  for (const pid_t pid : kids) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
  }
  ::munmap(shared, sizeof(counter));
  return failed;
}

// Logs in with the account(s) a credentials directory names (user and, when present,
// standbyUser) and runs one query as each. Prints "DIR ok" or "DIR fail: <why>"; returns
// the number of directories that failed.
int check_logins(const connector& c, const std::string& ca_file, bool pg, const std::vector<std::string>& dirs) {
  int failed = 0;
  for (const std::string& d : dirs) {
    try {
      const std::string db = read_key(d, "database");
      std::vector<std::pair<std::string, std::string>> accounts{{read_key(d, "user"), read_key(d, "password")}};
      if (const std::string standby = read_key(d, "standbyUser", false); !standby.empty())
        accounts.emplace_back(standby, read_key(d, "standbyPassword"));
      for (const auto& [user, password] : accounts) {
        if (pg)
          pg_exec(pg_connect(c, ca_file, user, password, db).get(), "SELECT 1");
        else
          my_exec(my_connect(c, ca_file, user, password, db.c_str()).get(), "SELECT 1");
      }
      std::printf("%s ok\n", d.c_str());
    } catch (const std::exception& e) {
      ++failed;
      std::printf("%s fail: %s\n", d.c_str(), e.what());
    }
  }
  return failed;
}

int usage() {
  std::fprintf(stderr,
               "usage: floor CONNECTOR_DIR OUTPUT_BASE TENANT...\n"
               "       floor --parallel WORKERS CONNECTOR_DIR OUTPUT_BASE TENANT...\n"
               "       floor --check-login CONNECTOR_DIR CREDENTIALS_DIR...\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const std::string mode = !args.empty() && args[0].starts_with("--") ? args[0] : "";
  int workers = 0;
  if (mode == "--parallel") {
    if (args.size() < 5) return usage();
    workers = std::atoi(args[1].c_str());
    if (workers < 1) return usage();
    args.erase(args.begin(), args.begin() + 2);
  } else if (mode == "--check-login") {
    if (args.size() < 3) return usage();
    args.erase(args.begin());
  } else if (!mode.empty() || args.size() < 3) {
    return usage();
  }
  std::string ca_file;
  int failed = 0;
  try {
    const connector c = load_connector(args[0]);
    const bool pg = c.type == "postgres" || c.type == "postgresql" || c.type == "pg";
    if (!pg && c.type != "mariadb" && c.type != "mysql") fail("unknown connector type " + c.type);
    // libpq and Connector/C take the CA as a path: write it once, private to this run.
    char tmpl[] = "/tmp/floor-ca.XXXXXX";
    const int fd = ::mkstemp(tmpl);
    if (fd < 0) fail("mkstemp");
    ca_file = tmpl;
    write_all(fd, c.ca_pem, ca_file);
    ::close(fd);
    if (!pg) mysql_library_init(0, nullptr, nullptr);

    if (mode == "--check-login") {
      failed = check_logins(c, ca_file, pg, {args.begin() + 1, args.end()});
    } else {
      const std::vector<std::string> tenants(args.begin() + 2, args.end());
      if (workers > 0)
        failed = run_parallel(c, ca_file, pg, args[1], tenants, workers);
      else
        run_sequential(c, ca_file, pg, args[1], tenants);
    }
  } catch (const std::exception& e) {
    if (!ca_file.empty()) ::unlink(ca_file.c_str());
    std::fprintf(stderr, "floor: %s\n", e.what());
    return 1;
  }
  ::unlink(ca_file.c_str());
  return failed == 0 ? 0 : 1;
}
