#include "credential_values.hpp"

namespace tenantdb::test {

std::string value_of(const credential_data& data, const char* key) {
  const auto it = data.find(key);
  return it == data.end() ? std::string() : it->second.reveal();
}

}  // namespace tenantdb::test
