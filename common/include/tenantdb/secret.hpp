#pragma once
/// \file
/// A value that must never reach a log, an error message, argv or an environment.

#include <string>
#include <string_view>

namespace tenantdb {

/// Holds a secret string. It has no stream operator and no implicit conversion; the
/// bytes are reachable only through reveal(), at the client-library call site. The
/// storage is wiped on destruction and on assignment.
class secret {
public:
  secret() = default;
  /// Takes the value; the argument is wiped (a short string's bytes live inline in it).
  explicit secret(std::string value);
  secret(const secret& other) = default;
  secret(secret&& other) noexcept;
  secret& operator=(const secret& other);
  secret& operator=(secret&& other) noexcept;
  ~secret();

  /// The secret bytes. Call only where a client library needs them.
  const std::string& reveal() const noexcept { return value_; }
  bool empty() const noexcept { return value_.empty(); }
  std::size_t size() const noexcept { return value_.size(); }

  /// Constant-time comparison.
  friend bool operator==(const secret& a, const secret& b) noexcept;

private:
  void wipe() noexcept;
  std::string value_;
};

/// Overwrites a string's bytes (including unused capacity) before it is released.
void wipe(std::string& value) noexcept;

}  // namespace tenantdb
