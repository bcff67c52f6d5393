// rotate_loop PID METRICS_PORT ADMIN_PORT ROTATIONS: makes the tenantdb-sidecar PID rotate
// ROTATIONS times, one after the other, as fast as it will: POST /rotate on the admin
// port, then poll /metrics until tenantdb_rotations_total{result="rotated"} has grown by
// one. At 0, 100, every STEP (1000 from 5000 rotations on, else ROTATIONS/10) and at the
// end it prints one line of what /proc says about the process:
//   rotations elapsed_s vmrss_kib vmhwm_kib rssanon_kib rssfile_kib rssshmem_kib fds threads cpu_ms failed
// Progress goes to stderr. Exits 1 if a rotation does not complete within 10 minutes.
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "plain_http.hpp"

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

const std::string rotated_sample = "tenantdb_rotations_total{result=\"rotated\"}";
const std::string failed_sample = "tenantdb_rotations_total{result=\"failed\"}";

long status_kib(const std::string& status, const char* key) {
  const auto pos = status.find(std::string("\n") + key + ":");
  if (pos == std::string::npos) return -1;
  return std::strtol(status.c_str() + pos + std::char_traits<char>::length(key) + 2, nullptr, 10);
}

int count_fds(int pid) {
  DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (d == nullptr) return -1;
  int n = 0;
  while (const dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

// utime + stime of the process, in ms.
long cpu_ms(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  std::istringstream fields(line.substr(line.rfind(')') + 2));  // after "pid (comm) "
  std::string f;
  long utime = 0, stime = 0;
  for (int i = 3; fields >> f; ++i) {
    if (i == 14) utime = std::stol(f);
    if (i == 15) {
      stime = std::stol(f);
      break;
    }
  }
  return (utime + stime) * 1000 / ::sysconf(_SC_CLK_TCK);
}

// The fewest fds over a few reads: a sample can land while the sidecar holds a
// short-lived one (the login check's database connection, a metrics request).
int settled_fds(int pid) {
  int fewest = count_fds(pid);
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(10ms);
    fewest = std::min(fewest, count_fds(pid));
  }
  return fewest;
}

void sample(int pid, long rotations, steady::time_point start, double failed) {
  const int fds = settled_fds(pid);
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  const std::string status = "\n" + std::string(std::istreambuf_iterator<char>(in), {});
  const double elapsed = std::chrono::duration<double>(steady::now() - start).count();
  std::printf("%ld %.1f %ld %ld %ld %ld %ld %d %ld %ld %.0f\n", rotations, elapsed, status_kib(status, "VmRSS"),
              status_kib(status, "VmHWM"), status_kib(status, "RssAnon"), status_kib(status, "RssFile"),
              status_kib(status, "RssShmem"), fds, status_kib(status, "Threads"), cpu_ms(pid), failed);
  std::fflush(stdout);
}

double read_metric(std::uint16_t port, const std::string& name) {
  const auto r = bench::http(port, "GET", "/metrics");
  return r.status == 200 ? bench::metric(r.body, name) : -1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: rotate_loop PID METRICS_PORT ADMIN_PORT ROTATIONS\n");
    return 2;
  }
  const int pid = std::atoi(argv[1]);
  const auto port = static_cast<std::uint16_t>(std::atoi(argv[2]));
  const auto admin = static_cast<std::uint16_t>(std::atoi(argv[3]));
  const long n = std::atol(argv[4]);
  const long step = n >= 5000 ? 1000 : std::max(1L, n / 10);
  std::set<long> checkpoints = {0, n};
  if (100 < n) checkpoints.insert(100);
  for (long k = step; k < n; k += step) checkpoints.insert(k);

  const double base = read_metric(port, rotated_sample);
  const double failed_base = read_metric(port, failed_sample);
  if (base < 0 || failed_base < 0) {
    std::fprintf(stderr, "rotate_loop: no metrics on 127.0.0.1:%u\n", port);
    return 1;
  }
  const auto start = steady::now();
  auto failed = [&] { return std::max(0.0, read_metric(port, failed_sample) - failed_base); };
  sample(pid, 0, start, 0);
  for (long i = 1; i <= n; ++i) {
    if (bench::http(admin, "POST", "/rotate").status != 202) {
      std::fprintf(stderr, "rotate_loop: POST /rotate on 127.0.0.1:%u was not accepted\n", admin);
      return 1;
    }
    const auto deadline = steady::now() + 10min;
    while (read_metric(port, rotated_sample) < base + static_cast<double>(i)) {
      if (steady::now() > deadline) {
        std::fprintf(stderr, "rotate_loop: rotation %ld did not complete within 10 minutes\n", i);
        return 1;
      }
      std::this_thread::sleep_for(2ms);
    }
    if (checkpoints.count(i) != 0) sample(pid, i, start, failed());
    if (i % 1000 == 0 && i != n) std::fprintf(stderr, "rotate_loop: %ld rotations\n", i);
  }
  return 0;
}
