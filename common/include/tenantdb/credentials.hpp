#pragma once
/// \file
/// The tenant's credentials and the places they are kept: the credentials Secret's data
/// and a directory on a shared volume laid out like a Kubernetes Secret volume.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>

#include "tenantdb/connector.hpp"
#include "tenantdb/engine.hpp"
#include "tenantdb/fault.hpp"
#include "tenantdb/secret.hpp"

namespace tenantdb {

/// Keys of the credentials Secret and files. `standbyUser`/`standbyPassword` hold the
/// dual strategy's idle account; they stay in the Secret and are never written to the
/// workload's directory.
namespace keys {
inline constexpr const char* database = "database";
inline constexpr const char* user = "user";
inline constexpr const char* password = "password";
inline constexpr const char* host = "host";
inline constexpr const char* port = "port";
inline constexpr const char* type = "type";
inline constexpr const char* data_source = "dataSource";
inline constexpr const char* ca_cert = "caCert";
inline constexpr const char* ssl_mode = "sslMode";
inline constexpr const char* standby_user = "standbyUser";
inline constexpr const char* standby_password = "standbyPassword";
inline constexpr const char* pending_password = "pendingPassword";
}  // namespace keys

/// How passwords are rotated; decides which accounts the init creates.
enum class rotation_strategy {
  dual,      ///< two login accounts; rotate the idle one, then switch (zero downtime)
  in_place,  ///< one login account whose password is changed in place
};

/// Parses "dual" or "in-place"; throws tenantdb::error (usage, about "--strategy") otherwise.
rotation_strategy parse_strategy(std::string_view text);

/// What the workload needs to log in, plus the dual strategy's idle account.
struct credentials {
  server_address server;
  std::string database;
  login active;
  std::optional<login> standby;
};

/// Flat key → value map, values secret because password and dataSource are. This is the
/// wire form the stores read and write; code that needs a value reads it through
/// parse_record.
using credential_data = std::map<std::string, secret>;

/// The credentials a store holds, parsed once (parse_record). Names, the address and
/// the port are plain values; only passwords are secret. An empty or missing key is an
/// empty field. A value that is present but cannot be used (a type no engine has, a port
/// out of range, an unknown sslMode, a control character in type, host, port or sslMode)
/// leaves its field empty and is named in `invalid`, so each reader decides whether it
/// needs the key: the sidecar's connection does, a lost-and-replaced check does not.
struct credential_record {
  std::optional<engine_kind> engine;  ///< type
  std::string host;
  std::uint16_t port = 0;       ///< 0: missing or invalid
  std::optional<tls_mode> tls;  ///< sslMode; std::nullopt when missing (the reader's default applies)
  std::string ca_pem;           ///< caCert, not yet checked to be PEM
  std::string database;
  std::string user;
  secret password;
  std::string standby_user;
  secret standby_password;
  /// The password a rotation in flight is setting (pendingPassword), empty if none.
  secret pending_password;
  /// The CA path the dataSource names (its sslrootcert parameter), "" if none.
  std::string data_source_ca_file;
  /// Keys present with a value that cannot be used, and what is wrong with each (never
  /// the value).
  std::map<std::string, std::string> invalid;

  /// user and password, if both are there.
  std::optional<login> active() const;
  /// standbyUser and standbyPassword, if both are there.
  std::optional<login> standby() const;

  /// The server to connect to (type, host, port, sslMode defaulting to verify-full, caCert
  /// checked to be PEM). Throws tenantdb::error (connector, about the key) naming the
  /// first key that is missing or unusable, or a host that is not a host name or address.
  server_address server() const;

  /// The credentials with `server`; std::nullopt if database, user or password is missing
  /// or the standby account is half there (a damaged store is treated like a lost one,
  /// never trusted half-way).
  std::optional<credentials> to_credentials(const server_address& server) const;
};

/// Parses the store's data into a record. Never throws: see credential_record.
credential_record parse_record(const credential_data& data);

/// parse_record(data).server(): the server address the sidecar needs (host, port, type,
/// sslMode, caCert keys). Throws tenantdb::error (kind connector) naming a missing key.
server_address server_from_data(const credential_data& data);

/// The Secret's data. `ca_file` is where the workload will find caCert (used in the
/// PostgreSQL dataSource's sslrootcert).
credential_data to_data(const credentials& creds, const std::string& ca_file);

/// Reads back what to_data wrote: parse_record(data).to_credentials(server).
std::optional<credentials> from_data(const credential_data& data, const server_address& server);

/// True if both hold the same keys with the same values (values compared in constant time).
bool same_data(const credential_data& a, const credential_data& b);

/// The keys the workload sees: only those tenantdb defines for it (database, user,
/// password, host, port, type, sslMode, dataSource, caCert). Any other key in the store
/// (the standby account, a pending password, or whatever someone added) is left out.
credential_data workload_view(const credential_data& data);

/// The fault point inside publish_directory: the new data directory is written and
/// fsynced, `..data` still points at the previous one.
inline constexpr std::string_view publish_fault_point = "directory-written";

/// Options for the credential directory.
struct directory_options {
  mode_t file_mode = 0440;
  mode_t dir_mode = 0750;
  /// Test hook, called at publish_fault_point. Default: nothing.
  fault_hook fault;
};

/// Parses --file-mode: an octal mode the owner can read and others cannot (e.g. 0440).
/// Throws tenantdb::error (usage, about "--file-mode") otherwise.
mode_t parse_file_mode(std::string_view text);

/// Publishes `data` into `dir` the way kubelet updates a Secret volume: files go into a
/// new hidden timestamped directory, which is fsynced; then the `..data` symlink is
/// swapped to it with an atomic rename, each key is a symlink `key -> ..data/key`, and
/// the previous data directory is removed. A reader that opens `dir/key` sees either the
/// whole old set or the whole new set, never a mix. Temp entries are removed on failure.
/// Keys not in `data` disappear. Throws tenantdb::error (output) naming the path.
///
/// Nothing in `dir` is trusted: everything is done relative to a descriptor of `dir`
/// without following symlinks, and `dir` is refused (tenantdb::error, output, nothing
/// changed) if it is not owned by this process's user, is writable by group or others,
/// or has a `..data` that is not a symlink to a sibling generation directory.
void publish_directory(const std::filesystem::path& dir, const credential_data& data,
                       const directory_options& options = {});

/// Reads a directory written by publish_directory (or a Secret volume) back into a map.
/// Returns an empty map if the directory does not exist or has no ..data link.
/// Throws tenantdb::error (output) for what publish_directory also refuses, and for a key
/// that is not a regular file (a FIFO, device or symlink) or is larger than 1 MiB.
credential_data read_directory(const std::filesystem::path& dir);

/// Refuses `dir` the way publish_directory does (tenantdb::error, output): not a
/// directory, owned by another user, or writable by group or others. A missing `dir` is
/// created (mode `dir_mode`) if `create`, else accepted as it is.
void check_credential_directory(const std::filesystem::path& dir, bool create, mode_t dir_mode = 0750);

/// True if `path` is the directory `dir` or lies inside it, after resolving symlinks (and
/// for two existing directories, if they are the same inode). Used to keep a credential
/// store out of the directory a workload reads.
bool same_or_inside(const std::filesystem::path& path, const std::filesystem::path& dir);

/// Throws tenantdb::error (usage, about --store-dir) if the store directory is the output
/// directory or lies inside it (same_or_inside): the store holds the standby and pending
/// passwords, which the workload reading the output directory must never see.
void check_store_apart(const std::filesystem::path& store_dir, const std::filesystem::path& output_dir);

/// True if `name` is a data directory name of the shape publish_directory (and kubelet)
/// write: "..YYYY_MM_DD_HH_MM_SS." and an alphanumeric suffix. `..data` must name one.
bool is_generation_name(std::string_view name);

/// The credentials as one JSON object, as the init prints with --print-json.
secret to_json(const credential_data& data);

}  // namespace tenantdb
