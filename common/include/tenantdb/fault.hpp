#pragma once
/// \file
/// Test hooks: named points between the steps of provisioning and rotation where tests
/// make the process die (kill -9), to show that a restart recovers from any of them.
/// The binaries take the point from $TENANTDB_TEST_CRASH_AT; unset, nothing happens.

#include <functional>
#include <string>
#include <string_view>

namespace tenantdb {

/// Called at each fault point; tests make it abort the process. Default: nothing.
using fault_hook = std::function<void(std::string_view point)>;

/// Logs the point, then raise(SIGKILL) when `point` is reached. An empty `point` gives a
/// hook that does nothing.
fault_hook crash_at_hook(std::string point);

/// The fault point named by $TENANTDB_TEST_CRASH_AT ("" when unset).
std::string crash_at_from_env();

}  // namespace tenantdb
