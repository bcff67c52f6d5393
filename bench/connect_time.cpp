// connect_time: how long a new connection takes, directly over verified TLS or through
// the local proxy, for bench/proxy.sh ("new-connection latency").
//
//   connect_time pg|mariadb direct CREDENTIALS_DIR N
//   connect_time pg|mariadb proxy PORT N
// Each of N rounds opens a connection, runs SELECT 1 and closes it; prints
// "median_ms p99_ms" of the rounds (connect + first query, CLOCK_MONOTONIC). Direct mode
// reads host, port, user, database, password and caCert from the credentials directory
// tenantdb-init wrote (never from argv) and verifies the server (verify-full).
#include <libpq-fe.h>
#include <mysql.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// libpq conninfo value, single-quoted.
std::string quoted(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

bool pg_round(const std::string& conninfo) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  bool ok = PQstatus(c) == CONNECTION_OK;
  if (ok) {
    PGresult* r = PQexec(c, "SELECT 1");
    ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
  }
  if (!ok) std::fprintf(stderr, "%s", PQerrorMessage(c));
  PQfinish(c);
  return ok;
}

bool my_round(bool direct, const std::string& host, unsigned port, const std::string& user, const std::string& pw,
              const std::string& db, const std::string& ca) {
  MYSQL* m = mysql_init(nullptr);
  if (direct) {
    const my_bool verify = 1;
    mysql_optionsv(m, MYSQL_OPT_SSL_CA, ca.c_str());
    mysql_optionsv(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
  } else {
    const my_bool off = 0;
    mysql_optionsv(m, MYSQL_OPT_SSL_ENFORCE, &off);
  }
  bool ok = mysql_real_connect(m, host.c_str(), user.c_str(), pw.c_str(), db.empty() ? nullptr : db.c_str(), port,
                               nullptr, 0) != nullptr &&
            mysql_query(m, "SELECT 1") == 0;
  if (ok) {
    if (MYSQL_RES* r = mysql_store_result(m)) mysql_free_result(r);
  } else {
    std::fprintf(stderr, "%s\n", mysql_error(m));
  }
  mysql_close(m);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: connect_time pg|mariadb direct CREDENTIALS_DIR N | proxy PORT N\n");
    return 2;
  }
  const std::string engine = argv[1];
  const bool direct = std::string(argv[2]) == "direct";
  const std::string where = argv[3];
  const int n = std::atoi(argv[4]);
  std::string host = "127.0.0.1", user = "bench", pw, db = "bench", ca;
  unsigned port = 0;
  if (direct) {
    host = slurp(where + "/host");
    port = static_cast<unsigned>(std::atoi(slurp(where + "/port").c_str()));
    user = slurp(where + "/user");
    pw = slurp(where + "/password");
    db = slurp(where + "/database");
    ca = where + "/caCert";
  } else {
    port = static_cast<unsigned>(std::atoi(where.c_str()));
  }
  const std::string conninfo =
      direct
          ? "host=" + quoted(host) + " port=" + std::to_string(port) + " dbname=" + quoted(db) +
                " user=" + quoted(user) + " password=" + quoted(pw) + " sslmode=verify-full sslrootcert=" + quoted(ca)
          : "host=127.0.0.1 port=" + std::to_string(port) + " dbname=bench user=bench sslmode=disable";
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    const auto began = std::chrono::steady_clock::now();
    const bool ok = engine == "pg" ? pg_round(conninfo) : my_round(direct, host, port, user, pw, db, ca);
    if (!ok) return 1;
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - began).count());
  }
  std::sort(ms.begin(), ms.end());
  const double median = ms.size() % 2 ? ms[ms.size() / 2] : (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]) / 2;
  std::size_t r = static_cast<std::size_t>(0.99 * static_cast<double>(ms.size()));
  if (static_cast<double>(r) < 0.99 * static_cast<double>(ms.size())) ++r;
  std::printf("%.2f %.2f\n", median, ms[std::max<std::size_t>(r, 1) - 1]);
  return 0;
}
