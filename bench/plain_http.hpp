// One plain-HTTP/1.1 exchange with 127.0.0.1:PORT, for the sidecar's /metrics and
// POST /rotate endpoints (loopback, no TLS). Header-only; shared by the bench drivers.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>

namespace bench {

struct reply {
  int status = 0;  ///< 0 when there was no answer
  std::string body;
};

inline reply http(std::uint16_t port, const char* method, const char* path) {
  reply r;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return r;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // A rotation blocks the sidecar's loop while it runs; a request waits for it.
  timeval tv{120, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return r;
  }
  const std::string req = std::string(method) + " " + path +
                          " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return r;
  }
  std::string raw;
  char buf[8192];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) raw.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  const auto head_end = raw.find("\r\n\r\n");
  if (raw.size() < 12 || head_end == std::string::npos) return r;
  r.status = std::stoi(raw.substr(9, 3));
  r.body = raw.substr(head_end + 4);
  return r;
}

/// The value of one sample in Prometheus text (e.g. `tenantdb_rotations_total{result="rotated"}`);
/// -1 if absent.
inline double metric(const std::string& text, const std::string& sample) {
  const auto pos = text.find("\n" + sample + " ");
  if (pos == std::string::npos) return -1;
  return std::stod(text.substr(pos + sample.size() + 2));
}

}  // namespace bench
