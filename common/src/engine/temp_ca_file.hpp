#pragma once
// Private: the connector's CA as a file for the length of one connect call. libpq
// (sslrootcert) and Connector/C (MYSQL_OPT_SSL_CA) take CA certificates from files only.

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <vector>

#include "base/unique_fd.hpp"
#include "tenantdb/error.hpp"

namespace tenantdb::detail {

/// A private (0600) temporary file in $TMPDIR or /tmp holding `pem`, removed on
/// destruction.
class temp_ca_file {
public:
  explicit temp_ca_file(std::string_view pem) {
    const char* tmpdir = std::getenv("TMPDIR");
    std::string dir = (tmpdir != nullptr && *tmpdir != '\0') ? tmpdir : "/tmp";
    std::string name = dir + "/tenantdb-ca-XXXXXX";
    std::vector<char> buffer(name.begin(), name.end());
    buffer.push_back('\0');
    unique_fd fd(::mkstemp(buffer.data()));  // 0600
    if (!fd)
      throw error(error_kind::internal, "cannot create a temporary file for the CA certificate in " + dir + ": " +
                                            std::strerror(errno) + " (mount a writable /tmp or set TMPDIR)");
    path_.assign(buffer.data());
    ::fchmod(fd.get(), S_IRUSR | S_IWUSR);
    std::size_t done = 0;
    while (done < pem.size()) {
      const ssize_t n = ::write(fd.get(), pem.data() + done, pem.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int saved = errno;
        remove();
        throw error(error_kind::internal,
                    "cannot write the CA certificate to a temporary file in " + dir + ": " + std::strerror(saved));
      }
      done += static_cast<std::size_t>(n);
    }
  }
  temp_ca_file(const temp_ca_file&) = delete;
  temp_ca_file& operator=(const temp_ca_file&) = delete;
  ~temp_ca_file() { remove(); }

  const std::string& path() const noexcept { return path_; }
  void remove() noexcept {
    if (!path_.empty()) ::unlink(path_.c_str());
    path_.clear();
  }

private:
  std::string path_;
};

}  // namespace tenantdb::detail
