#pragma once
/// \file
/// Reading single keys out of credential data (a Secret's, a store's or a directory's).

#include <string>

#include "tenantdb/credentials.hpp"

namespace tenantdb::test {

/// The revealed value of `key` in `data`; "" when the key is absent.
std::string value_of(const credential_data& data, const char* key);

}  // namespace tenantdb::test
