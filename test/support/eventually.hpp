#pragma once
/// \file
/// Waiting for a condition instead of sleeping for a guessed time.

#include <chrono>
#include <thread>

namespace tenantdb::test {

/// Polls `f` every 20 ms until it returns true or `timeout` passes; returns its last
/// result (so a condition that turns true at the deadline still counts).
template <class F>
bool eventually(F&& f, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return f();
}

}  // namespace tenantdb::test
