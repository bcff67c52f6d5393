// The reliability and security suite, bad input: malformed connectors (a mounted Secret
// directory, a connector file, the connector Secret read through the Kubernetes API
// stand-in, in this project's keys and the vCluster Platform's), tenant names, namespaces
// and the flags of tenantdb-init and tenantdb-sidecar. Every case must end with one line on
// stderr that names the flag or key to fix, the exit code README.md documents for it, no
// secret or oversized value echoed, and nothing created: no database, no login account, no
// credential directory, no credentials Secret.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

#include "inputs.hpp"
#include "kube_standin.hpp"
#include "pod.hpp"
#include "process.hpp"
#include "suite.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/naming.hpp"
#include "testdb.hpp"

namespace fs = std::filesystem;
using namespace tenantdb;
using namespace std::string_literals;
using test::bad_input;
using test::drop;
using test::expect_one_clear_line;
using test::flag_value;
using test::repeat;
using test::with_flags;

namespace {

[[maybe_unused]] const bool server_logs = test::dump_server_logs_on_failure({"pg", "mariadb"});

class BadInputTest : public ::testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    admin_ = test::load_connector(GetParam());
    connector_dir_ = test::testdb_dir() / (GetParam() + ".connector");
    work_ = fs::temp_directory_path() /
            ("tenantdb-suite-inputs-" + std::to_string(::getpid()) + "-" + test::sanitized_test_name());
    fs::remove_all(work_);
    fs::create_directories(work_);
    // Broader than manifests/rbac.yaml on purpose: RBAC must not be what stops a write.
    api_.add_token(pod_.token, pod_.user);
    api_.allow(pod_.user, "get", pod_.connector_ns, "secrets", pod_.connector_name);
    for (const char* verb : {"get", "create", "update"}) api_.allow(pod_.user, verb, pod_.ns, "secrets");
    api_.put_object(test::connector_secret_json(GetParam(), pod_.connector_ns, pod_.connector_name));
    kubeconfig_ = (work_ / "kubeconfig").string();
    test::write_kubeconfig(kubeconfig_, api_, pod_);
    session_ = connect_admin(admin_.server, test::admin_login(admin_));
  }
  void TearDown() override { fs::remove_all(work_); }

  std::string read(const std::string& key) const { return test::read_file((connector_dir_ / key).string()); }
  std::string ca() const { return read("caCert"); }
  static std::string ca_key() { return test::read_file((test::testdb_dir() / "ca" / "ca.key").string()); }
  static std::string other_ca() { return test::other_ca_pem(); }

  // The test server's connector keys with the case's edits applied.
  std::map<std::string, std::string> edited_keys(const bad_input& c) const {
    std::map<std::string, std::string> keys;
    if (!(c.keys.count("*") && c.keys.at("*") == drop))
      for (const auto& entry : fs::directory_iterator(connector_dir_))
        keys[entry.path().filename().string()] = test::read_file(entry.path().string());
    for (const auto& [key, value] : c.keys) {
      if (value == drop) {
        keys.erase(key);
      } else {
        keys[key] = value;
      }
    }
    return keys;
  }

  // A connector directory (or file) for case `n` of the table.
  fs::path write_connector(const bad_input& c, std::size_t n) const {
    const fs::path path = work_ / ("connector-" + std::to_string(n));
    if (c.file) {
      std::ofstream(path, std::ios::binary) << *c.file;
      return path;
    }
    fs::create_directories(path);
    for (const auto& [key, value] : edited_keys(c)) std::ofstream(path / key, std::ios::binary) << value;
    return path;
  }

  // Replaces the connector Secret in the API with the case's keys.
  void put_connector_secret(const bad_input& c) {
    std::string data;
    for (const auto& [key, value] : edited_keys(c))
      data += (data.empty() ? "\"" : ",\"") + key + "\":\"" + test::base64(value) + "\"";
    api_.put_object(R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":")" + pod_.connector_name +
                    R"(","namespace":")" + pod_.connector_ns + R"("},"type":"Opaque","data":{)" + data + "}}");
  }

  std::vector<std::string> local_args(const fs::path& connector, const fs::path& out, const std::string& tenant) const {
    return {"--local",      "--connector-file", connector.string(), "--tenant", tenant,
            "--output-dir", out.string(),       "--timeout",        "20s"};
  }
  std::vector<std::string> kube_args(const fs::path& out, const std::string& tenant) const {
    return {"--tenant",     tenant,        "--namespace",
            pod_.ns,        "--connector", pod_.connector_ns + "/" + pod_.connector_name,
            "--kubeconfig", kubeconfig_,   "--output-dir",
            out.string(),   "--timeout",   "20s"};
  }

  test::process_result init(std::vector<std::string> args) {
    args.insert(args.begin(), TENANTDB_INIT_BIN);
    return test::run_process(args, {{"KUBECONFIG", ""}, {"POD_NAMESPACE", ""}, {"TENANTDB_TENANT", ""}},
                             std::chrono::seconds(60));
  }

  // No database or account of the tenant the arguments name, no credential files, and in
  // kube mode no write to the API and no credentials Secret.
  void expect_nothing_created(const std::vector<std::string>& args, const fs::path& out, bool kube) {
    const tenant who{flag_value(args, "--tenant", ""), flag_value(args, "--namespace", kube ? pod_.ns : "default")};
    const auto names = derive_names(who);
    EXPECT_FALSE(session_->database_exists(names.database)) << "a database was created";
    EXPECT_FALSE(session_->user_exists(names.user_a)) << "an account was created";
    EXPECT_FALSE(session_->user_exists(names.user_b)) << "an account was created";
    EXPECT_FALSE(fs::exists(out / "..data")) << "credential files were written";
    if (!kube) return;
    EXPECT_EQ(api_.request_count("POST"), 0u) << "something was created through the API";
    EXPECT_EQ(api_.request_count("PUT"), 0u) << "something was written through the API";
    const std::string secret_name = flag_value(args, "--secret-name", "vc-db-" + who.name);
    EXPECT_FALSE(api_.get_object("secrets", pod_.ns, secret_name)) << "a credentials Secret was created";
  }

  // Runs every case through tenantdb-init; `args_for` gives its arguments.
  template <class Args>
  void expect_all_rejected(const std::vector<bad_input>& cases, bool kube, Args&& args_for, test::suite_tally& tally) {
    for (std::size_t n = 0; n < cases.size(); ++n) {
      const bad_input& c = cases[n];
      SCOPED_TRACE("case " + std::to_string(n) + ": " + c.label);
      const fs::path out = work_ / ("out-" + std::to_string(n));
      const auto args = with_flags(args_for(c, n, out, test::unique_tenant("bad").name), c.flags);
      api_.clear_requests();
      const auto r = init(args);
      ++tally.inputs;
      expect_one_clear_line(c, r, admin_.admin_password.reveal(), tally);
      expect_nothing_created(args, out, kube);
      // A usage error is found before the first request.
      if (kube && c.exit_code == 2) {
        EXPECT_EQ(api_.request_count(), 0u) << "the API was called";
      }
    }
  }

  connector admin_;
  fs::path connector_dir_;
  fs::path work_;
  std::string kubeconfig_;
  test::KubeStandin api_;
  test::pod_identity pod_;
  std::unique_ptr<admin_session> session_;
};

// The unedited inputs work, so what rejects each case below is its edit, and the checks
// for "nothing created" can see a creation.
TEST_P(BadInputTest, TheUneditedInputsProvisionInBothModes) {
  const std::string local_tenant = test::unique_tenant("good").name;
  const auto local = init(local_args(write_connector({}, 0), work_ / "local", local_tenant));
  ASSERT_EQ(local.exit_code, 0) << local.err;
  EXPECT_TRUE(fs::exists(work_ / "local" / "..data"));
  EXPECT_TRUE(session_->user_exists(derive_names(tenant{local_tenant, "default"}).user_a));

  const std::string kube_tenant = test::unique_tenant("good").name;
  put_connector_secret({});
  const auto kube = init(kube_args(work_ / "kube", kube_tenant));
  ASSERT_EQ(kube.exit_code, 0) << kube.err;
  EXPECT_TRUE(api_.get_object("secrets", pod_.ns, "vc-db-" + kube_tenant));
  EXPECT_GT(api_.request_count("POST"), 0u);
  EXPECT_TRUE(session_->database_exists(derive_names(tenant{kube_tenant, pod_.ns}).database));
}

// A connector read from a mounted Secret directory or from a file (--connector-file).
TEST_P(BadInputTest, MalformedConnectorFilesAreRejectedAndCreateNothing) {
  test::suite_tally tally;
  const std::string pem = ca();
  const std::string key = ca_key();
  const std::string password = admin_.admin_password.reveal();
  // The certificate with one line of its base64 taken out: BEGIN and END intact.
  std::string gap = pem;
  const auto cut = gap.find('\n', gap.size() / 2);
  gap.erase(cut, gap.find('\n', cut + 1) - cut);
  const std::string sql_password = "x'; DROP ROLE " + admin_.admin_user + "; --";

  const std::vector<bad_input> cases = {
      {"missing type", {}, {{"type", drop}}, 3, "type"},
      {"unknown type", {}, {{"type", "oracle"}}, 3, "type"},
      {"non-UTF-8 type", {}, {{"type", "postgres\xc3"}}, 3, "type"},
      {"missing host", {}, {{"host", drop}}, 3, "host"},
      {"host is a URL", {}, {{"host", "postgres://db.example:5432"}}, 3, "host"},
      {"host with a port", {}, {{"host", admin_.server.host + ":" + std::to_string(admin_.server.port)}}, 3, "host"},
      {"host with a space", {}, {{"host", "db example"}}, 3, "host"},
      {"SQL-looking host", {}, {{"host", "db'; DROP DATABASE postgres; --"}}, 3, "host"},
      {"host of 5 KB", {}, {{"host", repeat("h", 5000)}}, 3, "host"},
      {"host with an escape sequence", {}, {{"host", "db\x1b[2J"}}, 3, "host"},
      {"non-UTF-8 host", {}, {{"host", "db\xc3\x28"}}, 3, "host"},
      {"port zero", {}, {{"port", "0"}}, 3, "port"},
      {"port too big", {}, {{"port", "70000"}}, 3, "port"},
      {"port 65536", {}, {{"port", "65536"}}, 3, "port"},
      {"negative port", {}, {{"port", "-1"}}, 3, "port"},
      {"port not a number", {}, {{"port", "54x"}}, 3, "port"},
      {"port in hex", {}, {{"port", "0x1538"}}, 3, "port"},
      {"port with a leading space", {}, {{"port", " " + std::to_string(admin_.server.port)}}, 3, "port"},
      {"port with a space inside", {}, {{"port", "54 32"}}, 3, "port"},
      {"port in full-width digits", {}, {{"port", "\xef\xbc\x95\xef\xbc\x94\xef\xbc\x93\xef\xbc\x92"}}, 3, "port"},
      {"port of 100 digits", {}, {{"port", repeat("9", 100)}}, 3, "port"},
      {"missing admin user", {}, {{"adminUser", drop}}, 3, "adminUser"},
      {"non-UTF-8 admin user", {}, {{"adminUser", "adm\xff\xfe"}}, 3, "adminUser"},
      {"SQL-looking admin user", {}, {{"adminUser", "x'; DROP TABLE t; --"}}, 3, "adminUser"},
      {"SQL-looking admin user with a control character",
       {},
       {{"adminUser", "x'; DROP TABLE t; --\n\x01"}},
       3,
       "adminUser"},
      {"admin user with a tab", {}, {{"adminUser", "adm\tin"}}, 3, "adminUser"},
      {"admin user of 1000 bytes", {}, {{"adminUser", repeat("u", 1000)}}, 3, "adminUser"},
      {"missing admin password", {}, {{"adminPassword", drop}}, 3, "adminPassword"},
      {"empty admin password", {}, {{"adminPassword", "\n"}}, 3, "adminPassword"},
      {"admin password of 1 MiB", {}, {{"adminPassword", repeat("p", 1 << 20)}}, 3, "adminPassword"},
      {"admin password with a NUL byte",
       {},
       {{"adminPassword", password + "\0tail"s}},
       3,
       "adminPassword",
       password + "\0tail"s},
      // Quotes are fine in a password: it reaches the server as data, which refuses the
      // login. Warnings only, so the one line is the error (no progress lines).
      {"SQL-looking admin password",
       {"--log-level", "warn"},
       {{"adminPassword", sql_password}},
       5,
       "adminPassword",
       sql_password},
      {"unknown ssl mode", {}, {{"sslMode", "sometimes"}, {"tls", drop}}, 3, "sslMode"},
      {"tls disagrees with sslMode", {}, {{"sslMode", "verify-full"}, {"tls", "false"}}, 3, "tls"},
      {"ssl mode with a bell character", {}, {{"sslMode", "verify-full\x07"}}, 3, "sslMode"},
      {"admin database name of 100 bytes", {}, {{"database", repeat("d", 100)}}, 3, "database"},
      {"negative connection limit", {}, {{"maxConnections", "-1"}}, 3, "maxConnections"},
      {"connection limit of 1", {}, {{"maxConnections", "1"}}, 3, "maxConnections"},
      {"connection limit of a million", {}, {{"maxConnections", "1000000"}}, 3, "maxConnections"},
      {"connection limit not a number", {}, {{"maxConnections", "lots"}}, 3, "maxConnections"},
      {"SQL-looking connection limit", {}, {{"maxConnections", "20; ALTER ROLE x SUPERUSER"}}, 3, "maxConnections"},
      {"statement timeout without a unit", {}, {{"statementTimeout", "30"}}, 3, "statementTimeout"},
      {"negative statement timeout", {}, {{"statementTimeout", "-30s"}}, 3, "statementTimeout"},
      {"statement timeout of a week", {}, {{"statementTimeout", "7d"}}, 3, "statementTimeout"},
      {"SQL-looking idle timeout",
       {},
       {{"idleInTransactionTimeout", "1m'; ALTER ROLE x SUPERUSER; --"}},
       3,
       "idleInTransactionTimeout"},
      {"idle timeout of 10 ms", {}, {{"idleInTransactionTimeout", "10ms"}}, 3, "idleInTransactionTimeout"},
      {"invalid PEM",
       {},
       {{"caCert", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"}},
       3,
       "caCert"},
      {"not PEM at all", {}, {{"caCert", "hello"}}, 3, "caCert"},
      {"truncated certificate", {}, {{"caCert", pem.substr(0, pem.size() / 2)}}, 3, "caCert"},
      {"certificate with a line missing", {}, {{"caCert", gap}}, 3, "caCert"},
      {"private key instead of a certificate", {}, {{"caCert", key}}, 3, "caCert", key},
      {"certificate followed by its private key", {}, {{"caCert", pem + key}}, 3, "caCert", key},
      {"garbage between certificates", {}, {{"caCert", pem + "garbage\n" + other_ca()}}, 3, "caCert"},
      {"binary bytes before the certificate", {}, {{"caCert", "\xff\xfe\x00"s + pem}}, 3, "caCert"},
      {"caCert base64-encoded twice", {}, {{"caCert", test::base64(pem)}}, 3, "caCert"},
      {"caCert of 1.5 MB", {}, {{"caCert", repeat(pem, 1'500'000 / pem.size() + 1)}}, 3, "caCert"},
      {"directory without keys", {}, {{"*", drop}}, 3, "--connector-file"},
      {"path that does not exist", {"--connector-file", "/nonexistent/tenantdb/connector"}, {}, 3, "--connector-file"},
      {"manifest data that is not base64", {}, {}, 3, "port", "", "kind: Secret\ndata:\n  port: \"!!not-base64!!\"\n"},
      {"manifest password that is not base64",
       {},
       {},
       3,
       "adminPassword",
       password,
       "kind: Secret\ndata:\n  adminPassword: \"" + test::base64(password) + "!\"\n"},
      {"port as a list", {}, {}, 3, "port", "", R"({"type":"postgres","port":[5432]})"},
      {"host as a map", {}, {}, 3, "host", "", "type: postgres\nhost:\n  name: db\n"},
      {"admin password as a list", {}, {}, 3, "adminPassword", password, "adminPassword: [\"" + password + "\", x]\n"},
      {"key given twice", {}, {}, 3, "type", "", "type: postgres\ntype: mysql\n"},
      {"a list instead of a map", {}, {}, 3, "--connector-file", "", "- type\n- postgres\n"},
      {"neither YAML nor JSON", {}, {}, 3, "--connector-file", "", "{[: :\n"},
      {"empty file", {}, {}, 3, "--connector-file", "", ""},
      {"file of 5 MiB", {}, {}, 3, "--connector-file", "", "# " + repeat("x", 5 << 20) + "\n"},
  };
  expect_all_rejected(
      cases, false,
      [&](const bad_input& c, std::size_t n, const fs::path& out, const std::string& t) {
        return local_args(write_connector(c, n), out, t);
      },
      tally);
}

// The connector Secret read through the API, in this project's keys and the Platform's.
TEST_P(BadInputTest, MalformedConnectorSecretsAreRejectedAndCreateNothing) {
  test::suite_tally tally;
  const std::string host = admin_.server.host;
  const std::string port = std::to_string(admin_.server.port);
  const std::string user = admin_.admin_user;
  const std::string password = admin_.admin_password.reveal();
  const std::string key = ca_key();
  // The vCluster Platform's spelling: endpoint, user, password.
  const auto platform = [&](std::map<std::string, std::string> edits) {
    std::map<std::string, std::string> keys = {{"host", drop},
                                               {"port", drop},
                                               {"adminUser", drop},
                                               {"adminPassword", drop},
                                               {"endpoint", host + ":" + port},
                                               {"user", user},
                                               {"password", password}};
    for (auto& [k, v] : edits) keys[k] = v;
    return keys;
  };
  const std::string whole_file = "type: " + read("type") + "\nhost: " + host + "\nport: " + port +
                                 "\nadminUser: " + user + "\nadminPassword: " + password + "\n";

  const std::vector<bad_input> cases = {
      {"missing type", {}, {{"type", drop}}, 3, "type"},
      {"missing host", {}, {{"host", drop}}, 3, "host"},
      {"missing admin password", {}, {{"adminPassword", drop}}, 3, "adminPassword"},
      {"an empty Secret", {}, {{"*", drop}}, 3, "type"},
      {"a TLS Secret's keys", {}, {{"*", drop}, {"tls.crt", ca()}, {"tls.key", key}}, 3, "type", key},
      {"the connector as one file in one key", {}, {{"*", drop}, {"connector.yaml", whole_file}}, 3, "type"},
      {"snake_case keys",
       {},
       {{"adminUser", drop}, {"adminPassword", drop}, {"admin_user", user}, {"admin_password", password}},
       3,
       "adminUser"},
      {"port base64-encoded twice", {}, {{"port", test::base64(port)}}, 3, "port"},
      {"type base64-encoded twice", {}, {{"type", test::base64(read("type"))}}, 3, "type"},
      {"caCert base64-encoded twice", {}, {{"caCert", test::base64(ca())}}, 3, "caCert"},
      {"port with a trailing space", {}, {{"port", port + " "}}, 3, "port"},
      {"negative port", {}, {{"port", "-" + port}}, 3, "port"},
      {"admin password of 1 MiB", {}, {{"adminPassword", repeat("p", 1 << 20)}}, 3, "adminPassword"},
      {"non-UTF-8 admin user", {}, {{"adminUser", "adm\xc0\xaf"}}, 3, "adminUser"},
      {"private key in ca.crt", {}, {{"caCert", drop}, {"ca.crt", key}}, 3, "ca.crt", key},
      {"tls that is not a mode", {}, {{"sslMode", drop}, {"tls", "maybe"}}, 3, "tls"},
      {"Platform keys: endpoint port out of range", {}, platform({{"endpoint", host + ":70000"}}), 3, "endpoint"},
      {"Platform keys: endpoint port not a number", {}, platform({{"endpoint", host + ":pg"}}), 3, "endpoint"},
      {"Platform keys: endpoint is a URL",
       {},
       platform({{"endpoint", "postgres://" + host + ":" + port}}),
       3,
       "endpoint"},
      {"Platform keys: endpoint without a host", {}, platform({{"endpoint", ":" + port}}), 3, "endpoint"},
      {"Platform keys: unclosed IPv6 bracket", {}, platform({{"endpoint", "[::1:" + port}}), 3, "endpoint"},
      {"Platform keys: endpoint and host disagree", {}, platform({{"host", "db.other.example"}}), 3, "endpoint"},
      {"Platform keys: endpoint and port disagree", {}, platform({{"port", "1"}}), 3, "endpoint"},
      {"Platform keys: user and adminUser disagree", {}, platform({{"adminUser", "someone_else"}}), 3, "user"},
      {"Platform keys: SQL-looking user", {}, platform({{"user", "x'; DROP TABLE t; --"}}), 3, "user"},
      {"Platform keys: password and adminPassword differ",
       {},
       platform({{"adminPassword", password + "-other"}}),
       3,
       "password",
       password + "-other"},
      {"Platform keys: no password", {}, platform({{"password", drop}}), 3, "adminPassword"},
      {"Platform keys: no endpoint", {}, platform({{"endpoint", drop}}), 3, "host"},
  };
  expect_all_rejected(
      cases, true,
      [&](const bad_input& c, std::size_t, const fs::path& out, const std::string& t) {
        put_connector_secret(c);
        return kube_args(out, t);
      },
      tally);
}

// Flags and tenant inputs of tenantdb-init, with a connector that works.
TEST_P(BadInputTest, BadInitFlagsAndTenantInputsAreRejectedAndCreateNothing) {
  test::suite_tally tally;
  const fs::path good = write_connector({}, 0);
  const std::vector<bad_input> local_cases = {
      {"no tenant", {"--tenant", ""}, {}, 2, "--tenant"},
      {"tenant of 254 bytes", {"--tenant", repeat("t", 254)}, {}, 2, "--tenant"},
      {"non-UTF-8 tenant", {"--tenant", "team\xff"}, {}, 2, "--tenant"},
      {"tenant with a line break", {"--tenant", "a\nb"}, {}, 2, "--tenant"},
      {"tenant with a C1 control",
       {"--tenant",
        "a\xc2\x9b"
        "31m"},
       {},
       2,
       "--tenant"},
      {"SQL-looking tenant with a control character",
       {"--tenant", "x'; DROP DATABASE postgres; --\x01"},
       {},
       2,
       "--tenant"},
      {"uppercase namespace", {"--namespace", "Team-A"}, {}, 2, "--namespace"},
      {"namespace with a slash", {"--namespace", "team/a"}, {}, 2, "--namespace"},
      {"namespace with a dot", {"--namespace", "team.a"}, {}, 2, "--namespace"},
      {"namespace with underscores", {"--namespace", "Not_A_Namespace"}, {}, 2, "--namespace"},
      {"namespace with a leading dash", {"--namespace=-team"}, {}, 2, "--namespace"},
      {"namespace of 64 characters", {"--namespace", repeat("n", 64)}, {}, 2, "--namespace"},
      {"SQL-looking namespace", {"--namespace", "team-a'; DROP SCHEMA public; --"}, {}, 2, "--namespace"},
      {"timeout not a duration", {"--timeout", "soon"}, {}, 2, "--timeout"},
      {"negative timeout", {"--timeout", "-5s"}, {}, 2, "--timeout"},
      {"zero timeout", {"--timeout", "0s"}, {}, 2, "--timeout"},
      {"unknown strategy", {"--strategy", "triple"}, {}, 2, "--strategy"},
      {"password length 8", {"--password-length", "8"}, {}, 2, "--password-length"},
      {"password length 81", {"--password-length", "81"}, {}, 2, "--password-length"},
      {"password length not a number", {"--password-length", "abc"}, {}, 2, "--password-length"},
      {"negative password length", {"--password-length=-5"}, {}, 2, "--password-length"},
      {"password length of 3000 digits", {"--password-length", repeat("9", 3000)}, {}, 2, "--password-length"},
      {"prefix with a capital and a bang", {"--name-prefix", "Bad!"}, {}, 2, "--name-prefix"},
      {"prefix with a leading digit", {"--name-prefix", "1abc"}, {}, 2, "--name-prefix"},
      {"prefix of 14 characters", {"--name-prefix", repeat("p", 14)}, {}, 2, "--name-prefix"},
      {"SQL-looking prefix", {"--name-prefix", "x;drop"}, {}, 2, "--name-prefix"},
      {"world-readable files", {"--file-mode", "0644"}, {}, 2, "--file-mode"},
      {"files the owner cannot read", {"--file-mode", "0200"}, {}, 2, "--file-mode"},
      {"file mode not octal", {"--file-mode", "0999"}, {}, 2, "--file-mode"},
      {"unknown log level", {"--log-level", "loud"}, {}, 2, "--log-level"},
      {"negative connection limit", {"--max-connections=-1"}, {}, 2, "--max-connections"},
      {"connection limit of 1", {"--max-connections", "1"}, {}, 2, "--max-connections"},
      {"connection limit of 3000 digits", {"--max-connections", repeat("9", 3000)}, {}, 2, "--max-connections"},
      {"connection limit not a number", {"--max-connections", "many"}, {}, 2, "--max-connections"},
      {"statement timeout not a duration", {"--statement-timeout", "forever"}, {}, 2, "--statement-timeout"},
      {"statement timeout of 25 hours", {"--statement-timeout", "25h"}, {}, 2, "--statement-timeout"},
      {"negative idle timeout", {"--idle-in-transaction-timeout=-1m"}, {}, 2, "--idle-in-transaction-timeout"},
      {"idle timeout of 100 ms", {"--idle-in-transaction-timeout", "100ms"}, {}, 2, "--idle-in-transaction-timeout"},
      {"unknown flag", {"--frobnicate"}, {}, 2, "frobnicate"},
      {"flag without its value", {"--timeout", drop, "--timeout"}, {}, 2, "--timeout"},
      {"value for a flag that takes none", {"--local=maybe"}, {}, 2, "--local"},
      {"--local without --connector-file", {"--connector-file", drop}, {}, 2, "--connector-file"},
      {"--local without --output-dir", {"--output-dir", drop}, {}, 2, "--output-dir"},
      {"--local with --connector", {"--connector", "platform/db-connector"}, {}, 2, "--local"},
      {"--local with --secret-name", {"--secret-name", "vc-db-x"}, {}, 2, "--local"},
  };
  expect_all_rejected(
      local_cases, false,
      [&](const bad_input&, std::size_t, const fs::path& out, const std::string& t) {
        return local_args(good, out, t);
      },
      tally);

  const std::vector<bad_input> kube_cases = {
      {"neither --connector nor --connector-file", {"--connector", drop}, {}, 2, "--connector"},
      {"both --connector and --connector-file", {"--connector-file", good.string()}, {}, 2, "--connector"},
      {"--store-dir without --local",
       {"--store-dir", (fs::temp_directory_path() / "tenantdb-no-store").string()},
       {},
       2,
       "--store-dir"},
      {"uppercase connector name", {"--connector", "Platform/DB-Connector"}, {}, 2, "--connector"},
      {"connector with two slashes", {"--connector", "platform/db/connector"}, {}, 2, "--connector"},
      {"SQL-looking connector", {"--connector", "x'; DROP TABLE t; --"}, {}, 2, "--connector"},
      {"empty tenant", {"--tenant", ""}, {}, 2, "--tenant"},
      {"uppercase tenant: no valid Secret name", {"--tenant", "Team-A"}, {}, 2, "--secret-name"},
      {"tenant with a slash", {"--tenant", "a/b"}, {}, 2, "--secret-name"},
      {"tenant ending in a dot", {"--tenant", "team."}, {}, 2, "--secret-name"},
      {"SQL-looking tenant", {"--tenant", "x'; DROP DATABASE postgres; --"}, {}, 2, "--secret-name"},
      {"invalid --secret-name", {"--secret-name", "Bad_Name"}, {}, 2, "--secret-name"},
      {"--secret-name of 254 characters", {"--secret-name", repeat("s", 254)}, {}, 2, "--secret-name"},
      {"namespace with a dot", {"--namespace", "team.a"}, {}, 2, "--namespace"},
  };
  expect_all_rejected(
      kube_cases, true,
      [&](const bad_input&, std::size_t, const fs::path& out, const std::string& t) { return kube_args(out, t); },
      tally);
}

INSTANTIATE_TEST_SUITE_P(Engines, BadInputTest, ::testing::Values("pg", "mariadb"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
