#pragma once
// The reload hook: tells the workload its files changed, by a signal to every process of
// a name and/or by a command run with posix_spawn (no shell, no secret in its
// environment), killed after its time limit. The command is reaped by a short polling
// timer on the loop's io_context, so the loop never waits for it; a change while it runs
// runs it once more when it ends.

#include <chrono>
#include <filesystem>
#include <sys/types.h>

// GCC 12 reports a false "potential null pointer dereference" inside Asio's scheduler
// (Boost 1.74) once it is inlined here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#pragma GCC diagnostic pop

#include "tenantdb/agent.hpp"

namespace tenantdb::sidecar {

class reload_hook {
public:
  reload_hook(boost::asio::io_context& io, const reload_options& options, std::filesystem::path output_dir);

  /// What run() did.
  struct outcome {
    int signalled = 0;  ///< processes the signal reached
    enum class command_state {
      none,     ///< no --reload-command
      started,  ///< it runs now; its end is logged (finished, failed or killed)
      queued,   ///< one still runs: it runs again when that one ends
      failed,   ///< posix_spawn refused (logged)
    } command = command_state::none;
  };
  /// Signals the process and starts the command (see above).
  outcome run();

  /// Stops polling (the loop is ending); a command still running is left alone, logged.
  void stop();

private:
  outcome::command_state spawn();
  void poll();

  const reload_options& options_;
  std::filesystem::path output_dir_;
  boost::asio::steady_timer timer_;
  bool stopping_ = false;
  pid_t pid_ = -1;
  bool pending_ = false;
  bool killed_ = false;
  std::chrono::steady_clock::time_point deadline_{};
};

}  // namespace tenantdb::sidecar
