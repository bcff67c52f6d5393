// idle_connections: opens N connections to a local proxy and holds them idle, so
// bench/proxy.sh can read the proxy's anonymous memory per idle proxied connection.
//
//   idle_connections pg|mariadb PORT N HOLD_FILE
// Connects N times to 127.0.0.1:PORT without TLS and without a password (the proxy's
// loopback front door), runs one query on each so the upstream session is logged in,
// prints "open N", then holds every connection until HOLD_FILE disappears and exits 0.
// Exits 1 on the first failure, naming it.
#include <libpq-fe.h>
#include <mysql.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: idle_connections pg|mariadb PORT N HOLD_FILE\n");
    return 2;
  }
  const std::string engine = argv[1];
  const std::string port = argv[2];
  const int n = std::atoi(argv[3]);
  const std::string hold = argv[4];
  std::vector<PGconn*> pg;
  std::vector<MYSQL*> my;
  for (int i = 0; i < n; ++i) {
    if (engine == "pg") {
      const std::string conninfo = "host=127.0.0.1 port=" + port + " dbname=bench user=bench sslmode=disable";
      PGconn* c = PQconnectdb(conninfo.c_str());
      if (PQstatus(c) != CONNECTION_OK) {
        std::fprintf(stderr, "connection %d: %s", i, PQerrorMessage(c));
        return 1;
      }
      PGresult* r = PQexec(c, "SELECT 1");
      const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
      PQclear(r);
      if (!ok) {
        std::fprintf(stderr, "query %d: %s", i, PQerrorMessage(c));
        return 1;
      }
      pg.push_back(c);
    } else {
      MYSQL* m = mysql_init(nullptr);
      const unsigned int ssl_off = 0;
      mysql_optionsv(m, MYSQL_OPT_SSL_ENFORCE, &ssl_off);
      if (mysql_real_connect(m, "127.0.0.1", "bench", "", nullptr, static_cast<unsigned>(std::atoi(port.c_str())),
                             nullptr, 0) == nullptr ||
          mysql_query(m, "SELECT 1") != 0) {
        std::fprintf(stderr, "connection %d: %s\n", i, mysql_error(m));
        return 1;
      }
      if (MYSQL_RES* res = mysql_store_result(m)) mysql_free_result(res);
      my.push_back(m);
    }
  }
  std::printf("open %d\n", n);
  std::fflush(stdout);
  while (access(hold.c_str(), F_OK) == 0) usleep(50'000);
  for (PGconn* c : pg) PQfinish(c);
  for (MYSQL* m : my) mysql_close(m);
  return 0;
}
