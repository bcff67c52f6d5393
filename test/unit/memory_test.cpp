// Giving memory back while idle: drop_file_pages unmaps the pages a private file mapping
// shares with the page cache and keeps the ones the process wrote (its private copies);
// release_idle_memory applies it to the running program's own code and read-only data.

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <unistd.h>

#include "tenantdb/memory.hpp"

using namespace tenantdb;

namespace {

constexpr std::uint64_t present_bit = std::uint64_t{1} << 63;
constexpr std::uint64_t file_bit = std::uint64_t{1} << 61;

// The pagemap entry of the page at `address` (reading it maps nothing).
std::uint64_t pagemap_entry(const void* address) {
  const long page = ::sysconf(_SC_PAGESIZE);
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  std::uint64_t entry = 0;
  const auto offset =
      static_cast<off_t>(reinterpret_cast<std::uintptr_t>(address) / static_cast<std::uintptr_t>(page) * 8);
  const ssize_t n = ::pread(fd, &entry, sizeof entry, offset);
  ::close(fd);
  return n == sizeof entry ? entry : 0;
}

// A read-write private mapping of a file whose page i is filled with 'a' + i.
struct private_file_mapping {
  static constexpr std::size_t pages = 16;
  std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::string path = ::testing::TempDir() + "/tenantdb-memory-XXXXXX";
  char* data = nullptr;

  private_file_mapping() {
    const int fd = ::mkstemp(path.data());
    if (fd < 0) return;
    for (std::size_t i = 0; i < pages; ++i) {
      const std::string chunk(page, static_cast<char>('a' + i));
      if (::write(fd, chunk.data(), chunk.size()) != static_cast<ssize_t>(chunk.size())) break;
    }
    void* p = ::mmap(nullptr, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (p != MAP_FAILED) data = static_cast<char*>(p);
  }
  ~private_file_mapping() {
    if (data != nullptr) ::munmap(data, pages * page);
    ::unlink(path.c_str());
  }
  char* at(std::size_t i) const { return data + i * page; }
};

}  // namespace

TEST(DropFilePages, UnmapsPageCachePagesAndKeepsWrittenOnes) {
  private_file_mapping m;
  ASSERT_NE(m.data, nullptr);
  volatile char sink = 0;
  for (std::size_t i = 0; i < m.pages; ++i) sink = static_cast<char>(sink + *m.at(i));
  *m.at(5) = 'Z';  // a private copy, like a debugger's breakpoint in code
  for (std::size_t i = 0; i < m.pages; ++i) ASSERT_NE(pagemap_entry(m.at(i)) & present_bit, 0u) << "page " << i;
  ASSERT_EQ(pagemap_entry(m.at(5)) & file_bit, 0u) << "the written page should be a private copy";

  EXPECT_EQ(drop_file_pages(m.data, m.pages * m.page), (m.pages - 1) * m.page);

  for (std::size_t i = 0; i < m.pages; ++i) {
    if (i == 5) continue;
    EXPECT_EQ(pagemap_entry(m.at(i)) & present_bit, 0u) << "page " << i << " is still mapped";
  }
  EXPECT_NE(pagemap_entry(m.at(5)) & present_bit, 0u) << "the private copy was dropped";
  // Both read back as before: the written byte from the private copy, the rest from the file.
  EXPECT_EQ(*m.at(5), 'Z');
  EXPECT_EQ(*(m.at(5) + 1), 'a' + 5);
  for (std::size_t i = 0; i < m.pages; ++i) {
    if (i == 5) continue;
    EXPECT_EQ(*m.at(i), static_cast<char>('a' + i)) << "page " << i;
  }
}

TEST(DropFilePages, RefusesAnUnalignedStart) {
  private_file_mapping m;
  ASSERT_NE(m.data, nullptr);
  volatile char sink = *m.at(0);
  (void)sink;
  EXPECT_EQ(drop_file_pages(m.data + 1, m.page), 0u);
  EXPECT_NE(pagemap_entry(m.at(0)) & present_bit, 0u);
}

TEST(ReleaseIdleMemory, UnmapsTheProgramsCodeWhichKeepsWorking) {
  // The code running this test is mapped, so there is something to give back.
  const released_memory first = release_idle_memory();
  EXPECT_GT(first.program_pages, 0u);
  // The code comes back on use: this runs it again, twice.
  const released_memory second = release_idle_memory();
  EXPECT_GT(second.program_pages, 0u);
}
