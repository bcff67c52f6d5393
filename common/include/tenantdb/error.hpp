#pragma once
/// \file
/// One error type for the whole project. Each error carries what went wrong in the
/// user's words, which input or object it concerns, the server's own code, and whether a
/// retry could help. Messages describe; they never quote a secret's value.

#include <stdexcept>
#include <string>

namespace tenantdb {

/// Process exit codes, documented in the README. Stable: scripts and alerts key on them.
enum class exit_code : int {
  ok = 0,
  internal = 1,      ///< a bug or an unexpected condition
  usage = 2,         ///< bad flags or tenant input
  connector = 3,     ///< the connector Secret is missing a key or has a bad value
  kubernetes = 4,    ///< the Kubernetes API refused us (401/403/404/422) — fix RBAC or names
  database = 5,      ///< the database refused the admin or a statement — fix grants or server
  unavailable = 6,   ///< database or API unreachable until --timeout ran out
  output = 7,        ///< the credential directory or stdout could not be written
  verification = 8,  ///< the tenant could not log in with the credentials just made
  ownership = 9,     ///< a database or account with the tenant's names belongs to another tenant or to nobody
};

/// What kind of failure; decides the exit code and the default retry behaviour.
enum class error_kind {
  internal,
  usage,
  connector,
  kubernetes,
  database,
  unavailable,
  output,
  verification,
  ownership,
};

/// The project's only exception type.
class error : public std::runtime_error {
public:
  /// \param what one line saying what is wrong and, where possible, what to do about it.
  error(error_kind kind, std::string what);

  /// Marks the error as transient: retrying the same operation later may succeed.
  error& retryable(bool value = true) noexcept;
  /// The input key ("adminPassword", "--tenant") or object ("secret default/vc-db-a").
  error& about(std::string key);
  /// PostgreSQL SQLSTATE such as "42P04".
  error& sqlstate(std::string code);
  /// MySQL/MariaDB error number such as 1045.
  error& db_errno(unsigned code) noexcept;
  /// HTTP status from the Kubernetes API.
  error& http_status(int code) noexcept;

  error_kind kind() const noexcept { return kind_; }
  bool is_retryable() const noexcept { return retryable_; }
  const std::string& key() const noexcept { return key_; }
  const std::string& sqlstate() const noexcept { return sqlstate_; }
  unsigned db_errno() const noexcept { return db_errno_; }
  int http_status() const noexcept { return http_status_; }
  /// The exit code the binaries use for this error.
  exit_code code() const noexcept;

private:
  error_kind kind_;
  bool retryable_ = false;
  std::string key_;
  std::string sqlstate_;
  unsigned db_errno_ = 0;
  int http_status_ = 0;
};

/// Name of an error kind, for logs and metrics labels.
const char* to_string(error_kind kind) noexcept;

}  // namespace tenantdb
