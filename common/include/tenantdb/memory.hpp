#pragma once
/// \file
/// Giving memory back while idle. The sidecar sleeps between short jobs; what a job
/// touched (the TLS and driver code of a login check, its heap) need not stay resident
/// until the next one.

#include <cstddef>

namespace tenantdb {

/// What release_idle_memory gave back, in bytes.
struct released_memory {
  std::size_t program_pages = 0;  ///< mappings of the program's own code and read-only data
  bool heap_trimmed = false;      ///< malloc_trim found free pages to return
};

/// Unmaps the program's code and read-only data pages from this process (they stay in
/// the page cache, shared and clean; the next use maps them again with a minor fault)
/// and returns free heap pages to the kernel. Never touches writable data or a page the
/// process holds a private copy of (a debugger's breakpoint, a uprobe). Does nothing
/// where /proc/self/pagemap cannot be read.
released_memory release_idle_memory() noexcept;

/// The part of release_idle_memory that works on one range: unmaps the pages of
/// [begin, begin + length) that are mapped from a file, keeps the private (written)
/// ones. `begin` must be page-aligned. Returns the bytes unmapped; 0 on any error.
std::size_t drop_file_pages(void* begin, std::size_t length) noexcept;

}  // namespace tenantdb
