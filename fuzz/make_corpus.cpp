// Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/): a few valid
// conversations of each kind, built with the proxy's own message builders so they stay
// in step with the parsers. tools/fuzz.sh --seeds runs it; the output is committed.
//   make_corpus DIR   writes DIR/postgres_front_door, DIR/mysql_front_door, DIR/upstream_replies

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "fuzz_common.hpp"
#include "proxy/mysql_protocol.hpp"
#include "proxy/postgres_protocol.hpp"

namespace pg = tenantdb::proxy::pg;
namespace my = tenantdb::proxy::mysql;
namespace fz = tenantdb::fuzz;
namespace fs = std::filesystem;

namespace {

fs::path root;

void write(const std::string& target, const std::string& name, const std::string& bytes) {
  const fs::path dir = root / target;
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary | std::ios::trunc) << bytes;
}

std::string first_packet(std::uint32_t code, const std::string& rest = {}) {
  std::string out;
  pg::append_u32(out, static_cast<std::uint32_t>(8 + rest.size()));
  pg::append_u32(out, code);
  return out + rest;
}

std::string startup(const std::vector<std::pair<std::string, std::string>>& params) {
  return pg::startup_for("tenant", "tenantdb", params);
}

/// A client's whole local SCRAM exchange with the proxy (right password).
std::string local_scram(const std::string& gs2) {
  pg::scram_client client(tenantdb::secret(std::string(fz::local_password)), "", "ClientNonce1234", gs2);
  pg::scram_server server(fz::local_verifier(), std::string(fz::server_nonce));
  const auto server_first = server.server_first(client.client_first());
  const auto client_final = client.client_final(*server_first);
  if (!server_first || !client_final || !server.server_final(*client_final)) {
    std::fprintf(stderr, "make_corpus: the local SCRAM exchange failed\n");
    std::exit(1);
  }
  return pg::sasl_initial_response("SCRAM-SHA-256", client.client_first()) + pg::password_message(*client_final);
}

void postgres_front_door() {
  const std::string t = "postgres_front_door";
  const std::string s = startup({{"application_name", "psql"}, {"client_encoding", "UTF8"}});
  write(t, "ssl_then_scram", pg::ssl_request_packet() + s + local_scram("n,,"));
  write(t, "gssenc_ssl_then_scram_y",
        first_packet(pg::gssenc_request_code) + pg::ssl_request_packet() + s + local_scram("y,,"));
  write(t, "cancel", pg::cancel_request_packet(1234, 0xdeadbeef));
  write(t, "replication_wrong_proof",
        startup({{"replication", "database"}}) + pg::sasl_initial_response("SCRAM-SHA-256", "n,,n=,r=abc") +
            pg::password_message("c=biws,r=abc" + std::string(fz::server_nonce) +
                                 ",p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
  write(t, "protocol_2", first_packet(0x00020000, std::string("user\0x\0\0", 9)));
  write(t, "channel_binding", s + pg::sasl_initial_response("SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=,r=abc"));
}

std::string mysql_packet(std::uint8_t seq, const std::string& payload) {
  return my::frame(seq, payload);
}

std::string commands() {
  std::string out;
  out += mysql_packet(0, std::string("\x03select 1", 9));
  out += mysql_packet(0, std::string("\x11root\0", 6));        // COM_CHANGE_USER: refused
  out += mysql_packet(0, std::string("\x0e", 1));              // COM_PING
  out += mysql_packet(0, std::string("\xfe\x01", 2));          // COM_MULTI: refused
  out += mysql_packet(0, "");                                  // an empty packet
  out += mysql_packet(0, std::string("\x1f", 1));              // COM_RESET_CONNECTION
  out += std::string("\xff\xff\xff\x00\x03", 5) + "select 2";  // a 16 MiB packet, cut short
  return out;
}

void mysql_front_door() {
  const std::string t = "mysql_front_door";
  my::handshake_response ssl;
  ssl.ssl_request = true;
  ssl.capabilities = my::client_protocol_41 | my::client_ssl | my::client_secure_connection | my::client_long_password;
  ssl.max_packet = 1 << 24;
  ssl.charset = 45;
  write(t, "ssl_request", mysql_packet(1, my::build_handshake_response(ssl)));

  my::handshake_response r;
  r.capabilities = my::client_protocol_41 | my::client_secure_connection | my::client_plugin_auth |
                   my::client_connect_with_db | my::client_connect_attrs | my::client_long_password;
  r.max_packet = 1 << 24;
  r.charset = 45;
  r.user = "tenant";
  r.database = "tenantdb";
  r.plugin = "mysql_native_password";
  r.auth_response = my::native_password_response(fz::local_password, fz::mysql_scramble);
  std::string attrs;
  for (const std::string& kv : {std::string("_client_name"), std::string("libmariadb")}) {
    my::put_lenenc(attrs, kv.size());
    attrs += kv;
  }
  r.attributes = attrs;
  write(t, "native_then_commands", mysql_packet(1, my::build_handshake_response(r)) + commands());

  my::handshake_response mariadb = r;
  mariadb.capabilities &= ~my::client_long_password;  // MariaDB extended capabilities follow
  mariadb.mariadb_capabilities = my::mariadb_client_com_multi;
  mariadb.capabilities |= my::client_plugin_auth_lenenc;
  mariadb.plugin = "caching_sha2_password";
  mariadb.auth_response = std::string(32, 'x');
  write(t, "switch_then_commands",
        mysql_packet(1, my::build_handshake_response(mariadb)) +
            mysql_packet(3, my::native_password_response(fz::local_password, fz::mysql_scramble)) + commands());

  my::handshake_response old = r;
  old.capabilities &= ~(my::client_secure_connection | my::client_plugin_auth | my::client_connect_attrs);
  old.auth_response = "plain";
  write(t, "no_secure_connection", mysql_packet(1, my::build_handshake_response(old)) + commands());
}

std::string r_message(std::uint32_t code, const std::string& data = {}) {
  return pg::authentication(code, data);
}

void upstream_replies() {
  const std::string t = "upstream_replies";
  // PostgreSQL: a whole SCRAM login against a server that knows the tenant's password.
  const tenantdb::secret password{std::string(fz::upstream_password)};
  const pg::scram_verifier v = pg::make_scram_verifier(password, "upstream-salt-16", 4096);
  pg::scram_client client(password, "", std::string(fz::client_nonce), "n,,");
  pg::scram_server server(v, "ServerPart");
  const auto server_first = server.server_first(client.client_first());
  const auto client_final = client.client_final(*server_first);
  const auto server_final = server.server_final(*client_final);
  if (!server_final) {
    std::fprintf(stderr, "make_corpus: the upstream SCRAM exchange failed\n");
    std::exit(1);
  }
  const std::string after_ok = pg::message('S', std::string("server_version\0"
                                                            "15.4\0",
                                                            20)) +
                               pg::message('K', std::string("\0\0\x30\x39\x12\x34\x56\x78", 8)) + pg::message('Z', "I");
  write(t, "pg_scram",
        std::string(1, '\0') + r_message(10, std::string("SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0", 34)) +
            r_message(11, *server_first) + r_message(12, *server_final) + r_message(0) + after_ok);
  write(t, "pg_scram_plus",
        std::string(1, '\2') + r_message(10, std::string("SCRAM-SHA-256-PLUS\0\0", 20)) + r_message(11, *server_first) +
            r_message(12, "v=AAAA") + r_message(0));
  write(t, "pg_md5",
        std::string(1, '\0') + pg::message('N', std::string("SNOTICE\0Mhello\0\0", 16)) + r_message(5, "salt") +
            r_message(0) + after_ok);
  write(t, "pg_error",
        std::string(1, '\0') + pg::error_response("FATAL", "28P01", "password authentication failed for user"));
  write(t, "pg_password_then_error",
        std::string(1, '\0') + r_message(3) + r_message(0) +
            pg::error_response("FATAL", "53300", "too many connections for role"));

  // MySQL/MariaDB: a greeting, an AuthSwitchRequest, OK; and an ERR instead of a greeting.
  my::greeting g;
  g.server_version = "10.11.6-MariaDB";
  g.connection_id = 42;
  g.scramble = "abcdefghijklmnopqrst";
  g.capabilities = my::client_protocol_41 | my::client_secure_connection | my::client_plugin_auth |
                   my::client_connect_with_db | my::client_ssl | my::client_plugin_auth_lenenc |
                   my::client_connect_attrs;
  g.mariadb_capabilities = my::mariadb_client_com_multi;
  g.charset = 45;
  g.status = 2;
  g.plugin = "mysql_native_password";
  write(t, "mysql_switch_ok",
        std::string(1, '\1') + mysql_packet(0, my::build_greeting(g)) +
            mysql_packet(2, my::auth_switch_payload("mysql_native_password", "0123456789abcdefghij")) +
            mysql_packet(4, std::string("\0\0\0\2\0\0\0", 7)));
  my::greeting mysql8 = g;
  mysql8.server_version = "8.0.36";
  mysql8.capabilities |= my::client_long_password;
  mysql8.plugin = "caching_sha2_password";
  write(t, "mysql8_fast_auth",
        std::string(1, '\1') + mysql_packet(0, my::build_greeting(mysql8)) +
            mysql_packet(2, std::string("\x01\x03", 2)) + mysql_packet(3, std::string("\0\0\0\2\0\0\0", 7)));
  write(t, "mysql_refused", std::string(1, '\1') + mysql_packet(0, my::err_payload(1045, "28000", "Access denied")));
  write(t, "mysql_greeting_then_err",
        std::string(1, '\1') + mysql_packet(0, my::build_greeting(g)) +
            mysql_packet(2, my::err_payload(1226, "42000", "User has exceeded the 'max_user_connections' resource")));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus DIR\n");
    return 2;
  }
  root = argv[1];
  postgres_front_door();
  mysql_front_door();
  upstream_replies();
  return 0;
}
