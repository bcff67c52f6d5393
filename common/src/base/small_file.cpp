#include "base/small_file.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include "base/unique_fd.hpp"
#include "tenantdb/secret.hpp"

namespace tenantdb {

int read_small_fd(int fd, std::size_t max_size, std::string& out) {
  // One byte more than allowed tells a file that is too large from one that fits.
  const std::size_t limit = max_size + 1;
  std::string buffer(std::min<std::size_t>(limit, 16384), '\0');
  std::size_t used = 0;
  int result = 0;
  for (;;) {
    if (used == buffer.size()) {
      if (buffer.size() == limit) break;
      std::string bigger(std::min(buffer.size() * 2, limit), '\0');
      std::memcpy(bigger.data(), buffer.data(), used);
      wipe(buffer);
      buffer.swap(bigger);
    }
    const ssize_t n = ::read(fd, buffer.data() + used, buffer.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      result = errno;
      break;
    }
    if (n == 0) break;
    used += static_cast<std::size_t>(n);
  }
  if (result == 0 && used > max_size) result = EFBIG;
  if (result != 0) {
    wipe(buffer);
    return result;
  }
  buffer.resize(used);
  wipe(out);
  out.swap(buffer);
  return 0;
}

int read_small_file(const std::filesystem::path& path, std::size_t max_size, std::string& out) {
  const unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno;
  return read_small_fd(fd.get(), max_size, out);
}

}  // namespace tenantdb
