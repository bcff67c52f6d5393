#include "tenantdb/fault.hpp"

#include <csignal>
#include <cstdlib>

#include "tenantdb/log.hpp"

namespace tenantdb {

fault_hook crash_at_hook(std::string point) {
  if (point.empty()) return {};
  return [point = std::move(point)](std::string_view reached) {
    if (reached != point) return;
    log::warn("test hook: killing this process at a fault point (TENANTDB_TEST_CRASH_AT)", {{"fault_point", point}});
    ::raise(SIGKILL);
  };
}

std::string crash_at_from_env() {
  const char* point = std::getenv("TENANTDB_TEST_CRASH_AT");
  return point == nullptr ? std::string() : std::string(point);
}

}  // namespace tenantdb
