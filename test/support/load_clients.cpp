#include "load_clients.hpp"

#include <map>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

#include "process.hpp"

namespace tenantdb::test {

namespace {

void check_identifier(const std::string& what, const std::string& value) {
  static const std::regex ident("[A-Za-z0-9_]{1,64}");
  if (!std::regex_match(value, ident)) throw std::invalid_argument(what + " must be letters, digits and '_' only");
}

/// The first capture of `pattern` in `text`, or "".
std::string find(const std::string& text, const std::regex& pattern) {
  std::smatch m;
  return std::regex_search(text, m, pattern) ? m[1].str() : std::string();
}

std::string tail(const std::string& text, std::size_t n) {
  return text.size() <= n ? text : "..." + text.substr(text.size() - n);
}

}  // namespace

std::string load_result::describe() const {
  return std::string(ok ? "ok" : "FAILED") + ", exit " + std::to_string(exit_code) + ", transactions " +
         std::to_string(transactions) + ", failed " + std::to_string(failed) + ", per second " +
         std::to_string(per_second) + ", latency ms " + std::to_string(latency_ms) + ", stdout [" + tail(out, 1500) +
         "] stderr [" + tail(err, 1500) + "]";
}

load_result run_pgbench(const db_endpoint& target, const pgbench_options& options) {
  check_identifier("database", target.database);
  check_identifier("user", target.user);
  // libpq reads these; the password only for this child, no ~/.pgpass, no service file.
  const std::map<std::string, std::string> env = {
      {"PGPASSWORD", target.password.reveal()},  // "" removes it
      {"PGPASSFILE", "/dev/null"},
      {"PGSERVICEFILE", "/dev/null"},
      {"PGSERVICE", ""},
      {"PGSSLMODE", target.ca_file.empty() ? "disable" : "verify-full"},
      {"PGSSLROOTCERT", target.ca_file},
      {"PGCONNECT_TIMEOUT", "10"},
      {"PGAPPNAME", "tenantdb-test-pgbench"},
  };
  const std::vector<std::string> where = {"-h", target.host, "-p", std::to_string(target.port), "-U", target.user};
  load_result r;
  if (options.initialize) {
    std::vector<std::string> argv = {"/usr/bin/pgbench", "-i", "-q", "-s", std::to_string(options.scale)};
    argv.insert(argv.end(), where.begin(), where.end());
    argv.push_back(target.database);
    const auto init = run_process(argv, env, options.timeout);
    if (init.exit_code != 0) {
      r.exit_code = init.exit_code;
      r.out = init.out;
      r.err = "pgbench -i failed: " + init.err;
      return r;
    }
  }
  std::vector<std::string> argv = {"/usr/bin/pgbench",
                                   "-c",
                                   std::to_string(options.clients),
                                   "-j",
                                   std::to_string(options.clients),
                                   "-T",
                                   std::to_string(options.duration.count())};
  if (options.select_only) argv.push_back("-S");
  if (options.connect_per_transaction) argv.push_back("-C");
  argv.insert(argv.end(), where.begin(), where.end());
  argv.push_back(target.database);
  const auto ran = run_process(argv, env, options.timeout + options.duration);
  r.exit_code = ran.exit_code;
  r.out = ran.out;
  r.err = ran.err;
  r.seconds = static_cast<double>(options.duration.count());
  static const std::regex processed(R"(number of transactions actually processed: (\d+))");
  static const std::regex failed(R"(number of failed transactions: (\d+))");
  static const std::regex tps(R"(tps = ([0-9.]+) \(without initial connection time\))");
  static const std::regex latency(R"(latency average = ([0-9.]+) ms)");
  const auto n = find(ran.out, processed);
  const auto f = find(ran.out, failed);
  const auto t = find(ran.out, tps);
  const auto l = find(ran.out, latency);
  if (!n.empty()) r.transactions = std::stoll(n);
  if (!f.empty()) r.failed = std::stoll(f);
  if (!t.empty()) r.per_second = std::stod(t);
  if (!l.empty()) r.latency_ms = std::stod(l);
  r.ok = ran.exit_code == 0 && !n.empty() && !f.empty() && !t.empty() && r.failed == 0 && r.transactions > 0;
  return r;
}

load_result run_mysqlslap(const db_endpoint& target, const mysqlslap_options& options) {
  check_identifier("database", target.database);
  check_identifier("user", target.user);
  // Connector/C takes MYSQL_PWD when no password is given on the command line.
  const std::map<std::string, std::string> env = {{"MYSQL_PWD", target.password.reveal()}};
  std::vector<std::string> argv = {
      "/usr/bin/mysqlslap",
      "--no-defaults",  // first: no my.cnf of the machine
      "--protocol=tcp",
      "--host=" + target.host,
      "--port=" + std::to_string(target.port),
      "--user=" + target.user,
      // The database to run in; with neither --create nor --auto-generate-sql mysqlslap
      // neither creates nor drops it.
      "--create-schema=" + target.database,
      "--concurrency=" + std::to_string(options.concurrency),
      "--iterations=1",
      "--number-of-queries=" + std::to_string(options.queries),
      // The pre-query runs before a database is selected.
      "--pre-query=CREATE TABLE IF NOT EXISTS `" + target.database +
          "`.tenantdb_slap (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
      "--query=INSERT INTO tenantdb_slap (v) VALUES (1);SELECT COUNT(*) FROM tenantdb_slap",
      "--delimiter=;",
  };
  if (target.ca_file.empty()) {
    argv.push_back("--skip-ssl");
  } else {
    argv.push_back("--ssl-ca=" + target.ca_file);
    argv.push_back("--ssl-verify-server-cert");
  }
  if (options.detach > 0) argv.push_back("--detach=" + std::to_string(options.detach));
  const auto ran = run_process(argv, env, options.timeout);
  load_result r;
  r.exit_code = ran.exit_code;
  r.out = ran.out;
  r.err = ran.err;
  static const std::regex average(R"(Average number of seconds to run all queries: ([0-9.]+) seconds)");
  const auto a = find(ran.out, average);
  if (!a.empty()) r.seconds = std::stod(a);
  r.transactions = options.queries;
  if (r.seconds > 0) r.per_second = static_cast<double>(options.queries) / r.seconds;
  r.ok = ran.exit_code == 0 && !a.empty();
  return r;
}

}  // namespace tenantdb::test
