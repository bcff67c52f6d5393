#include "tenantdb/memory.hpp"

#include <algorithm>
#include <cstdint>
#include <fcntl.h>
#include <iterator>
#include <link.h>
#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/unique_fd.hpp"

namespace tenantdb {
namespace {

// /proc/self/pagemap: one 64-bit entry per page (Documentation/admin-guide/mm/pagemap.rst).
constexpr std::uint64_t page_present = std::uint64_t{1} << 63;
constexpr std::uint64_t page_swapped = std::uint64_t{1} << 62;
constexpr std::uint64_t page_file = std::uint64_t{1} << 61;  // file page (or shared anonymous)

std::uintptr_t page_size() noexcept {
  return static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
}

// Unmaps [from, to) if it holds a mapped page; returns the bytes of mapped pages dropped.
std::size_t drop_run(std::uintptr_t from, std::uintptr_t to, std::size_t mapped_pages, std::uintptr_t page) noexcept {
  if (from >= to || mapped_pages == 0) return 0;
  // Text and read-only data of a private file mapping come back from the page cache.
  if (::madvise(reinterpret_cast<void*>(from), to - from, MADV_DONTNEED) != 0) return 0;
  return mapped_pages * page;
}

struct program_range {
  std::uintptr_t begin = 0;
  std::uintptr_t end = 0;
};

struct program_segments {
  program_range ranges[8];
  std::size_t count = 0;
};

// The main program is the first object reported; its segments that are never written.
// Not the writable data, nor RELRO: its vtables and GOT are read all the time, so the
// pages would only come straight back.
int collect_read_only(dl_phdr_info* info, std::size_t, void* out) noexcept {
  auto& segments = *static_cast<program_segments*>(out);
  const std::uintptr_t page = page_size();
  for (int i = 0; i < info->dlpi_phnum && segments.count < std::size(segments.ranges); ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_W) != 0) continue;
    const std::uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    const std::uintptr_t begin = (start + page - 1) & ~(page - 1);
    const std::uintptr_t end = (start + ph.p_filesz) & ~(page - 1);
    if (begin < end) segments.ranges[segments.count++] = {begin, end};
  }
  return 1;  // the program only: shared libraries are mapped by other processes too
}

}  // namespace

std::size_t drop_file_pages(void* begin, std::size_t length) noexcept {
  const std::uintptr_t page = page_size();
  const auto first = reinterpret_cast<std::uintptr_t>(begin);
  if ((first & (page - 1)) != 0) return 0;
  unique_fd pagemap(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (!pagemap) return 0;
  const std::uintptr_t last = first + (length & ~(page - 1));
  std::size_t dropped = 0;
  std::uintptr_t run_start = first;  // pages from here on may go
  std::size_t run_mapped = 0;
  std::uint64_t entries[512];
  for (std::uintptr_t at = first; at < last;) {
    const std::size_t want = std::min<std::size_t>(std::size(entries), (last - at) / page);
    const ssize_t got =
        ::pread(pagemap.get(), entries, want * sizeof entries[0], static_cast<off_t>(at / page * sizeof entries[0]));
    if (got <= 0 || static_cast<std::size_t>(got) % sizeof entries[0] != 0) return dropped;
    for (std::size_t i = 0; i < static_cast<std::size_t>(got) / sizeof entries[0]; ++i, at += page) {
      const std::uint64_t e = entries[i];
      const bool is_private_copy = (e & page_swapped) != 0 || ((e & page_present) != 0 && (e & page_file) == 0);
      if (is_private_copy) {
        dropped += drop_run(run_start, at, run_mapped, page);
        run_start = at + page;
        run_mapped = 0;
      } else if ((e & page_present) != 0) {
        ++run_mapped;
      }
    }
  }
  return dropped + drop_run(run_start, last, run_mapped, page);
}

released_memory release_idle_memory() noexcept {
  released_memory out;
  program_segments segments;
  ::dl_iterate_phdr(collect_read_only, &segments);
  for (std::size_t i = 0; i < segments.count; ++i) {
    const program_range& r = segments.ranges[i];
    out.program_pages += drop_file_pages(reinterpret_cast<void*>(r.begin), r.end - r.begin);
  }
  out.heap_trimmed = ::malloc_trim(0) != 0;
  return out;
}

}  // namespace tenantdb
