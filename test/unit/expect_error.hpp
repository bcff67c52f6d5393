#pragma once
// Test helper: catch a tenantdb::error and check its kind and key at the call site.

#include <exception>
#include <optional>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "tenantdb/error.hpp"

namespace tenantdb::test {

/// Runs `f` and returns the tenantdb::error it threw, or std::nullopt if it threw nothing.
/// Any other exception is recorded as a failure (and also gives std::nullopt), so one bad
/// case in a table does not abort the rest of the test.
template <class F>
std::optional<error> catch_error(F&& f) {
  try {
    std::forward<F>(f)();
  } catch (const error& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-tenantdb exception: " << e.what();
  } catch (...) {
    ADD_FAILURE() << "threw a non-std exception";
  }
  return std::nullopt;
}

}  // namespace tenantdb::test

/// Expects `statement` to throw a tenantdb::error of `expected_kind` whose key() is
/// `expected_key`.
#define EXPECT_TENANTDB_ERROR(statement, expected_kind, expected_key)                              \
  do {                                                                                             \
    const auto tdb_caught_ = ::tenantdb::test::catch_error([&] { (void)(statement); });            \
    if (!tdb_caught_) {                                                                            \
      ADD_FAILURE() << #statement " did not throw a tenantdb::error";                              \
      break;                                                                                       \
    }                                                                                              \
    EXPECT_STREQ(::tenantdb::to_string(tdb_caught_->kind()), ::tenantdb::to_string(expected_kind)) \
        << #statement ": " << tdb_caught_->what();                                                 \
    EXPECT_EQ(tdb_caught_->key(), (expected_key)) << #statement ": " << tdb_caught_->what();       \
  } while (false)
