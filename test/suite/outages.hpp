#pragma once
/// \file
/// What the outage tests (issue 5, part 2: "Faults") share: a pod against the Kubernetes
/// API stand-in and a real database server, tenantdb-init and tenantdb-sidecar as
/// processes, a client that logs in from the credential files the whole time, and tmpfs
/// mounts for an output directory that is read-only or full.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "credential_values.hpp"
#include "kube_standin.hpp"
#include "metrics.hpp"
#include "pod.hpp"
#include "process.hpp"
#include "tenantdb/connector.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/naming.hpp"

namespace tenantdb::test::outages {

namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

constexpr const char* ns = "team-a";

using test::metric;
using test::value_of;

/// Lines of `text` that are error-level JSON log lines.
std::vector<std::string> error_lines(const std::string& text);

/// A workload that reloads: re-reads the credential directory before every login (host,
/// port, CA and account all from the files) and records every failed attempt. Stops and
/// joins in its destructor.
class file_client {
public:
  struct attempt {
    steady::time_point start;
    steady::time_point end;
    std::string what;
  };

  explicit file_client(fs::path dir);
  ~file_client();
  file_client(const file_client&) = delete;
  file_client& operator=(const file_client&) = delete;

  void stop();
  int logins() const { return logins_; }
  std::vector<attempt> failures() const;

private:
  void loop();

  fs::path dir_;
  std::atomic<bool> stop_{false};
  std::atomic<int> logins_{0};
  mutable std::mutex mu_;
  std::vector<attempt> failures_;
  std::thread thread_;
};

/// One sidecar process.
struct sidecar {
  std::string name;
  fs::path out;
  std::uint16_t port = 0;
  std::uint16_t admin = 0;
  std::unique_ptr<child_process> proc;

  std::string metrics() const { return http(port, "GET", "/metrics").body; }
  int ready() const { return http(port, "GET", "/readyz").status; }
};

class OutageFixture : public ::testing::Test {
protected:
  /// "pg" or "mariadb": the connector (and testdb.sh server) to use.
  virtual std::string engine() const = 0;

  void SetUp() override;
  void TearDown() override;

  /// Runs tenantdb-init for the tenant with `out` as --output-dir (none if empty).
  process_result init(const fs::path& out, const std::vector<std::string>& extra = {}) const;
  sidecar& start(const std::string& name, const fs::path& out, const std::vector<std::string>& extra,
                 const std::map<std::string, std::string>& env = {});
  void stop(sidecar& s);

  std::string stored(const std::string& key) const;
  /// An annotation of the Secret; "" when absent (the rotator blanks removed ones).
  std::string annotation(const std::string& key) const;
  /// A rotation (or a grace period) is recorded in the Secret.
  bool intent_left() const;

  /// Annotates the Secret with tenantdb.io/rotate-now, as a user would; it stays until a
  /// rotation switches, so a request survives lost races and failed attempts. Call only
  /// while no rotation is in flight (it rewrites the whole object).
  void request_rotation();

  /// True if the server accepts the login, false if it refuses it; any other failure
  /// (server unreachable) fails the test.
  bool logs_in(const std::string& user, const std::string& password) const;

  /// Nothing lost: no rotation in flight, both accounts of the Secret log in, and the
  /// files at `out` hold exactly the Secret's active account and its connection keys.
  /// Returns what does not hold.
  std::vector<std::string> problems(const fs::path& out) const;
  /// problems() as test failures; true if there are none.
  bool working_everywhere(const fs::path& out) const;
  /// The same, polled until all holds at once or `timeout` passes (quietly until then).
  bool eventually_working(const fs::path& out, std::chrono::milliseconds timeout) const;

  /// Mounts a tmpfs of `size` at `dir` (created), read-only if asked; remembered for
  /// TearDown. Returns false, with the reason, if this process may not mount.
  bool mount_tmpfs(const fs::path& dir, const std::string& size, bool read_only, std::string& why);
  /// Remounts `dir` read-only or read-write; fails the test if it cannot.
  void remount(const fs::path& dir, const std::string& size, bool read_only);
  /// Writes a filler file into `dir` until the file system is full; returns its path.
  static fs::path fill(const fs::path& dir);

  connector conn_;
  fs::path work_;
  tenant who_;
  std::string secret_name_;
  std::string kubeconfig_;
  KubeStandin api_;
  pod_identity pod_;
  std::vector<std::unique_ptr<sidecar>> sidecars_;
  std::vector<fs::path> mounts_;
  int launches_ = 0;
};

}  // namespace tenantdb::test::outages
