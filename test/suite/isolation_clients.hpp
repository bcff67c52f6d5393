#pragma once
/// \file
/// Plain libpq and Connector/C clients for the isolation suite: a tenant's view of the
/// server, independent of tenantdb's engine layer. Failures throw sql_failure with a code
/// the route table can match: the SQLSTATE or errno, or for a refused PostgreSQL
/// connection (which has no SQLSTATE in libpq) connect-denied / -auth / -hba /
/// -replication / -other.

#include <libpq-fe.h>
#include <mysql.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tenantdb/connector.hpp"
#include "tenantdb/engine.hpp"
#include "testdb.hpp"

namespace tenantdb::test::isolation {

struct sql_failure : std::runtime_error {
  sql_failure(std::string c, const std::string& message) : std::runtime_error(message), code(std::move(c)) {}
  std::string code;
};

class pg_client {
public:
  pg_client(const server_address& server, const login& l, const std::string& db,
            const std::string& sslmode = "verify-full", const std::string& replication = {}) {
    const std::string port = std::to_string(server.port);
    const std::string ca = ca_pem_path().string();
    std::vector<const char*> k = {"host",     "port",    "dbname",      "user",
                                  "password", "sslmode", "sslrootcert", "connect_timeout"};
    std::vector<const char*> v = {server.host.c_str(),         port.c_str(),    db.c_str(), l.user.c_str(),
                                  l.password.reveal().c_str(), sslmode.c_str(), ca.c_str(), "10"};
    if (!replication.empty()) {
      k.push_back("replication");
      v.push_back(replication.c_str());
    }
    k.push_back(nullptr);
    v.push_back(nullptr);
    conn_.reset(PQconnectdbParams(k.data(), v.data(), 0));
    if (PQstatus(conn_.get()) != CONNECTION_OK) {
      const std::string msg = PQerrorMessage(conn_.get());
      const auto has = [&](const char* s) { return msg.find(s) != std::string::npos; };
      throw sql_failure(has("permission denied for database")   ? "connect-denied"
                        : has("password authentication failed") ? "connect-auth"
                        : has("no pg_hba.conf entry")           ? "connect-hba"
                        : has("replication")                    ? "connect-replication"
                                                                : "connect-other",
                        msg);
    }
    PQsetNoticeProcessor(
        conn_.get(), [](void*, const char*) {}, nullptr);
  }

  /// Runs one or more statements; returns the first column of the last result's rows.
  std::vector<std::string> rows(const std::string& sql) {
    std::unique_ptr<PGresult, decltype(&PQclear)> res(PQexec(conn_.get(), sql.c_str()), &PQclear);
    const auto status = PQresultStatus(res.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      const char* state = PQresultErrorField(res.get(), PG_DIAG_SQLSTATE);
      throw sql_failure(state != nullptr ? state : "?", PQresultErrorMessage(res.get()));
    }
    std::vector<std::string> out;
    for (int r = 0; r < PQntuples(res.get()); ++r)
      out.emplace_back(PQgetisnull(res.get(), r, 0) ? "" : PQgetvalue(res.get(), r, 0));
    return out;
  }
  void exec(const std::string& sql) { rows(sql); }
  std::string value(const std::string& sql) {
    const auto r = rows(sql);
    return r.empty() ? std::string() : r.front();
  }

private:
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn_{nullptr, &PQfinish};
};

class my_client {
public:
  /// Over TCP; with `tls` the server's certificate is verified, without it no TLS at all.
  my_client(const server_address& server, const login& l, const std::string& db, bool tls = true) {
    conn_.reset(mysql_init(nullptr));
    MYSQL* m = conn_.get();
    const unsigned timeout = 10;
    const unsigned tcp = MYSQL_PROTOCOL_TCP;
    const my_bool yes = 1;
    const std::string ca = ca_pem_path().string();
    mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_optionsv(m, MYSQL_OPT_PROTOCOL, &tcp);
    if (tls) {
      mysql_optionsv(m, MYSQL_OPT_SSL_ENFORCE, &yes);
      mysql_optionsv(m, MYSQL_OPT_SSL_CA, ca.c_str());
      mysql_optionsv(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &yes);
    }
    if (mysql_real_connect(m, server.host.c_str(), l.user.c_str(), l.password.reveal().c_str(),
                           db.empty() ? nullptr : db.c_str(), server.port, nullptr, CLIENT_MULTI_STATEMENTS) == nullptr)
      fail();
    if (!tls && mysql_get_ssl_cipher(m) != nullptr)
      throw std::logic_error("a connection meant to be without TLS negotiated TLS");
  }

  /// Runs one or more statements; returns the first column of the last result's rows.
  std::vector<std::string> rows(const std::string& sql) {
    MYSQL* m = conn_.get();
    if (mysql_real_query(m, sql.data(), static_cast<unsigned long>(sql.size())) != 0) fail();
    std::vector<std::string> out;
    for (;;) {
      std::unique_ptr<MYSQL_RES, decltype(&mysql_free_result)> res(mysql_store_result(m), &mysql_free_result);
      if (res) {
        out.clear();
        while (MYSQL_ROW r = mysql_fetch_row(res.get())) out.emplace_back(r[0] != nullptr ? r[0] : "");
      } else if (mysql_field_count(m) != 0) {
        fail();
      }
      const int next = mysql_next_result(m);
      if (next > 0) fail();
      if (next < 0) return out;
    }
  }
  void exec(const std::string& sql) { rows(sql); }
  std::string value(const std::string& sql) {
    const auto r = rows(sql);
    return r.empty() ? std::string() : r.front();
  }
  void change_user(const login& l, const std::string& db) {
    if (mysql_change_user(conn_.get(), l.user.c_str(), l.password.reveal().c_str(), db.c_str()) != 0) fail();
  }

private:
  [[noreturn]] void fail() { throw sql_failure(std::to_string(mysql_errno(conn_.get())), mysql_error(conn_.get())); }
  std::unique_ptr<MYSQL, decltype(&mysql_close)> conn_{nullptr, &mysql_close};
};

}  // namespace tenantdb::test::isolation
