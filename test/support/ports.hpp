#pragma once
/// \file
/// Loopback ports for tests that need nothing to be listening.

#include <cstdint>

namespace tenantdb::test {

/// A loopback TCP port with nothing listening on it (bound, then released).
std::uint16_t unused_port();

}  // namespace tenantdb::test
