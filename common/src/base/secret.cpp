#include "tenantdb/secret.hpp"

#include <openssl/crypto.h>

namespace tenantdb {

void wipe(std::string& value) noexcept {
  // Wipe the whole capacity: a shrunk string keeps old bytes past size().
  if (value.capacity() > 0) {
    value.resize(value.capacity());
    OPENSSL_cleanse(value.data(), value.size());
  }
  value.clear();
}

secret::secret(std::string value) : value_(std::move(value)) {
  tenantdb::wipe(value);
}

secret::secret(secret&& other) noexcept : value_(std::move(other.value_)) {
  other.wipe();
}

secret& secret::operator=(const secret& other) {
  if (this != &other) {
    wipe();
    value_ = other.value_;
  }
  return *this;
}

secret& secret::operator=(secret&& other) noexcept {
  if (this != &other) {
    wipe();
    value_ = std::move(other.value_);
    other.wipe();
  }
  return *this;
}

secret::~secret() {
  wipe();
}

void secret::wipe() noexcept {
  tenantdb::wipe(value_);
}

bool operator==(const secret& a, const secret& b) noexcept {
  if (a.value_.size() != b.value_.size()) return false;
  return a.value_.empty() || CRYPTO_memcmp(a.value_.data(), b.value_.data(), a.value_.size()) == 0;
}

}  // namespace tenantdb
