#include "tenantdb/error.hpp"

namespace tenantdb {

error::error(error_kind kind, std::string what) : std::runtime_error(std::move(what)), kind_(kind) {}

error& error::retryable(bool value) noexcept {
  retryable_ = value;
  return *this;
}
error& error::about(std::string key) {
  key_ = std::move(key);
  return *this;
}
error& error::sqlstate(std::string code) {
  sqlstate_ = std::move(code);
  return *this;
}
error& error::db_errno(unsigned code) noexcept {
  db_errno_ = code;
  return *this;
}
error& error::http_status(int code) noexcept {
  http_status_ = code;
  return *this;
}

exit_code error::code() const noexcept {
  switch (kind_) {
    case error_kind::usage: return exit_code::usage;
    case error_kind::connector: return exit_code::connector;
    case error_kind::kubernetes: return exit_code::kubernetes;
    case error_kind::database: return exit_code::database;
    case error_kind::unavailable: return exit_code::unavailable;
    case error_kind::output: return exit_code::output;
    case error_kind::verification: return exit_code::verification;
    case error_kind::ownership: return exit_code::ownership;
    case error_kind::internal: break;
  }
  return exit_code::internal;
}

const char* to_string(error_kind kind) noexcept {
  switch (kind) {
    case error_kind::usage: return "usage";
    case error_kind::connector: return "connector";
    case error_kind::kubernetes: return "kubernetes";
    case error_kind::database: return "database";
    case error_kind::unavailable: return "unavailable";
    case error_kind::output: return "output";
    case error_kind::verification: return "verification";
    case error_kind::ownership: return "ownership";
    case error_kind::internal: break;
  }
  return "internal";
}

}  // namespace tenantdb
