#pragma once
// Private: reading a small file whole without leaving copies of it behind.

#include <cstddef>
#include <filesystem>
#include <string>

namespace tenantdb {

/// Reads what is left of the open file `fd` with read(2) into `out`, whose previous
/// content is wiped. The bytes live only in buffers that are wiped before they are
/// released (no stdio or iostream buffer keeps a copy, a grown buffer's old storage is
/// wiped), so the caller can wipe the result. Returns an errno value, 0 on success,
/// EFBIG (nothing kept) if there are more than `max_size` bytes.
int read_small_fd(int fd, std::size_t max_size, std::string& out);

/// Opens `path` (O_RDONLY | O_CLOEXEC) and reads it with read_small_fd.
int read_small_file(const std::filesystem::path& path, std::size_t max_size, std::string& out);

}  // namespace tenantdb
