// The typed credential record: one parser for the store's data (parse_record), one rule
// for the engine type, and the server address the sidecar connects to. No server needed.

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "tenantdb/connector.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/error.hpp"

namespace tenantdb {
namespace {

credential_data server_keys() {
  credential_data d;
  d[keys::type] = secret("mariadb");
  d[keys::host] = secret("db.example.internal");
  d[keys::port] = secret("3307");
  d[keys::ssl_mode] = secret("verify-ca");
  return d;
}

credential_data full_data() {
  credential_data d = server_keys();
  d[keys::database] = secret("db");
  d[keys::user] = secret("db_a");
  d[keys::password] = secret("PasswordPasswordPassword1");
  d[keys::standby_user] = secret("db_b");
  d[keys::standby_password] = secret("PasswordPasswordPassword2");
  return d;
}

// Moved from test/integration/rotation_dbtest.cpp: they never needed a server.
void expect_connector_error(const credential_data& d, const std::string& key) {
  try {
    server_from_data(d);
    ADD_FAILURE() << "accepted bad " << key;
  } catch (const error& e) {
    EXPECT_EQ(e.kind(), error_kind::connector) << e.what();
    EXPECT_EQ(e.key(), key) << e.what();
    EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
  }
}

TEST(ServerFromData, ReadsTheServerKeys) {
  const auto s = server_from_data(server_keys());
  EXPECT_EQ(s.type, engine_type::mysql);
  EXPECT_TRUE(s.mariadb);
  EXPECT_EQ(s.host, "db.example.internal");
  EXPECT_EQ(s.port, 3307);
  EXPECT_EQ(s.tls, tls_mode::verify_ca);

  auto d = server_keys();
  d[keys::type] = secret("postgres");
  d.erase(keys::ssl_mode);
  const auto p = server_from_data(d);
  EXPECT_EQ(p.type, engine_type::postgres);
  EXPECT_EQ(p.tls, tls_mode::verify_full) << "a missing sslMode must mean the safe default";
}

TEST(ServerFromData, NamesTheKeyThatIsMissingOrBad) {
  for (const char* key : {keys::type, keys::host, keys::port}) {
    auto d = server_keys();
    d.erase(key);
    expect_connector_error(d, key);
  }
  const std::vector<std::pair<const char*, std::string>> bad = {
      {keys::type, "oracle"},       {keys::port, "0"},   {keys::port, "70000"},
      {keys::port, "33o6"},         {keys::port, "-1"},  {keys::ssl_mode, "sometimes"},
      {keys::ca_cert, "not a pem"}, {keys::host, "a b"}, {keys::host, "db\n.example"}};
  for (const auto& [key, value] : bad) {
    auto d = server_keys();
    d[key] = secret(value);
    expect_connector_error(d, key);
  }
}

TEST(EngineType, OneRuleAnyCaseForTheFourNames) {
  for (const char* name : {"postgres", "postgresql", "Postgres", "POSTGRESQL"}) {
    const auto e = parse_engine_type(name);
    ASSERT_TRUE(e) << name;
    EXPECT_EQ(e->type, engine_type::postgres) << name;
    EXPECT_FALSE(e->mariadb) << name;
  }
  for (const char* name : {"mysql", "MySQL", "mariadb", "MariaDB"}) {
    const auto e = parse_engine_type(name);
    ASSERT_TRUE(e) << name;
    EXPECT_EQ(e->type, engine_type::mysql) << name;
    EXPECT_EQ(e->mariadb, std::string(name) == "mariadb" || std::string(name) == "MariaDB") << name;
  }
  for (const char* name : {"", "oracle", "postgres ", "pg", "maria", "mysql8"})
    EXPECT_FALSE(parse_engine_type(name)) << name;
}

TEST(EngineType, TheConnectorAndTheCredentialsFollowTheSameRule) {
  for (const char* name : {"postgres", "PostgreSQL", "MYSQL", "MariaDB"}) {
    connector_data c{{"type", name},
                     {"host", "db.example.internal"},
                     {"adminUser", "admin"},
                     {"adminPassword", "pw"},
                     {"sslMode", "disable"}};
    const connector parsed = parse_connector(std::move(c));
    auto d = server_keys();
    d[keys::type] = secret(std::string(name));
    const server_address s = server_from_data(d);
    EXPECT_EQ(s.type, parsed.server.type) << name;
    EXPECT_EQ(s.mariadb, parsed.server.mariadb) << name;
  }
  auto d = server_keys();
  d.erase(keys::type);
  EXPECT_THROW(server_from_data(d), error) << "a missing type is an error in the credentials as in the connector";
}

TEST(CredentialRecord, ReadsEveryKeyOnceWithPlainNamesAndSecretPasswords) {
  auto d = full_data();
  d[keys::pending_password] = secret("PasswordPasswordPassword3");
  d[keys::data_source] =
      secret("postgres://db_a:x@h:1/db?sslmode=verify-full&sslrootcert=%2Fcreds%20dir%2FcaCert&other=1");
  const credential_record r = parse_record(d);
  EXPECT_TRUE(r.invalid.empty());
  ASSERT_TRUE(r.engine);
  EXPECT_EQ(r.engine->type, engine_type::mysql);
  EXPECT_EQ(r.host, "db.example.internal");
  EXPECT_EQ(r.port, 3307);
  EXPECT_EQ(r.tls, tls_mode::verify_ca);
  EXPECT_EQ(r.database, "db");
  ASSERT_TRUE(r.active());
  EXPECT_EQ(r.active()->user, "db_a");
  EXPECT_EQ(r.active()->password.reveal(), "PasswordPasswordPassword1");
  ASSERT_TRUE(r.standby());
  EXPECT_EQ(r.standby()->user, "db_b");
  EXPECT_EQ(r.pending_password.reveal(), "PasswordPasswordPassword3");
  EXPECT_EQ(r.data_source_ca_file, "/creds dir/caCert");
}

TEST(CredentialRecord, EmptyMeansMissingAndNothingThrows) {
  credential_data d;
  d[keys::user] = secret("");
  d[keys::port] = secret("70000");
  d[keys::type] = secret("oracle");
  d[keys::host] = secret("a\nb");
  d[keys::ssl_mode] = secret("sometimes");
  credential_record r;
  ASSERT_NO_THROW(r = parse_record(d));
  EXPECT_EQ(r.user, "");
  EXPECT_FALSE(r.active());
  EXPECT_EQ(r.port, 0);
  EXPECT_FALSE(r.engine);
  EXPECT_EQ(r.host, "");
  EXPECT_FALSE(r.tls);
  for (const char* key : {keys::port, keys::type, keys::host, keys::ssl_mode})
    EXPECT_EQ(r.invalid.count(key), 1u) << key;
  EXPECT_EQ(r.invalid.count(keys::user), 0u) << "empty is missing, not invalid";
  for (const auto& [key, what] : r.invalid) {
    EXPECT_EQ(what.find("70000"), std::string::npos) << "never the value: " << what;
    EXPECT_EQ(what.find("oracle"), std::string::npos) << "never the value: " << what;
  }
}

TEST(CredentialRecord, ToCredentialsNeedsDatabaseUserPasswordAndAWholeStandbyPair) {
  const server_address server = server_from_data(server_keys());
  const auto c = parse_record(full_data()).to_credentials(server);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->database, "db");
  EXPECT_EQ(c->active.user, "db_a");
  ASSERT_TRUE(c->standby);
  EXPECT_EQ(c->standby->user, "db_b");
  EXPECT_EQ(c->server.host, "db.example.internal");

  for (const char* key : {keys::database, keys::user, keys::password, keys::standby_user, keys::standby_password}) {
    auto d = full_data();
    d.erase(key);
    EXPECT_FALSE(parse_record(d).to_credentials(server)) << "without " << key;
    EXPECT_FALSE(from_data(d, server)) << "without " << key;
  }
  auto in_place = full_data();
  in_place.erase(keys::standby_user);
  in_place.erase(keys::standby_password);
  const auto one = from_data(in_place, server);
  ASSERT_TRUE(one);
  EXPECT_FALSE(one->standby);
}

TEST(CredentialRecord, ReadsBackWhatToDataWrote) {
  credentials c;
  c.server = server_from_data(server_keys());
  c.database = "db";
  c.active = login{"db_a", secret(std::string("PasswordPasswordPassword1"))};
  c.standby = login{"db_b", secret(std::string("PasswordPasswordPassword2"))};
  const credential_data d = to_data(c, "/creds/caCert");
  const credential_record r = parse_record(d);
  EXPECT_TRUE(r.invalid.empty());
  const server_address s = r.server();
  EXPECT_EQ(s.type, c.server.type);
  EXPECT_EQ(s.mariadb, c.server.mariadb);
  EXPECT_EQ(s.host, c.server.host);
  EXPECT_EQ(s.port, c.server.port);
  EXPECT_EQ(s.tls, c.server.tls);
  const auto back = r.to_credentials(s);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->active.user, "db_a");
  EXPECT_TRUE(back->active.password == c.active.password);
  ASSERT_TRUE(back->standby);
  EXPECT_TRUE(back->standby->password == c.standby->password);
}

TEST(Strategy, ParsesDualAndInPlaceOnly) {
  EXPECT_EQ(parse_strategy("dual"), rotation_strategy::dual);
  EXPECT_EQ(parse_strategy("in-place"), rotation_strategy::in_place);
  for (const char* bad : {"", "Dual", "in_place", "inplace"}) EXPECT_THROW(parse_strategy(bad), error) << bad;
}

}  // namespace
}  // namespace tenantdb
