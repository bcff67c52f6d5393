#pragma once
// Running the project's binaries from tests as separate processes, the way a pod runs
// them: argv only, no shell, output captured.

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <sys/types.h>
#include <vector>

namespace tenantdb::test {

/// How a finished process ended and what it printed.
struct process_result {
  int exit_code = -1;  ///< exit status, or 128+signal if killed
  std::string out;
  std::string err;
};

/// Runs `argv` to completion (killed after `timeout`), with `env` added to the test's
/// environment ("" values remove a variable).
process_result run_process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
                           std::chrono::seconds timeout = std::chrono::seconds(120));

/// A long-running child (sidecar, stand-in) whose stdout/stderr go to files.
class child_process {
public:
  child_process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                const std::string& log_prefix);
  ~child_process();
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const noexcept { return pid_; }
  /// Sends `signal`; no-op if already reaped.
  void kill(int signal);
  /// Waits up to `timeout` for exit; returns the exit code (128+signal), or -1 on timeout.
  int wait(std::chrono::milliseconds timeout);
  bool running();
  std::string out() const;
  std::string err() const;

private:
  pid_t pid_ = -1;
  int status_ = -1;
  std::string out_path_;
  std::string err_path_;
};

/// Reads a whole file ("" if missing).
std::string read_file(const std::string& path);

}  // namespace tenantdb::test
