#include "sidecar/reload_hook.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "base/unique_fd.hpp"
#include "tenantdb/log.hpp"

namespace tenantdb::sidecar {
namespace {

// The PIDs whose /proc/PID/comm is `name` (the kernel cuts comm to 15 bytes).
std::vector<pid_t> find_processes(const std::string& name) {
  const std::string want = name.substr(0, 15);
  std::vector<pid_t> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  const pid_t self = ::getpid();
  while (const dirent* entry = ::readdir(proc)) {
    const std::string_view d(entry->d_name);
    if (d.empty() || !std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(std::string(d)));
    if (pid == self) continue;
    unique_fd fd(::open(("/proc/" + std::string(d) + "/comm").c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) continue;
    char buf[64];
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n <= 0) continue;
    std::string comm(buf, static_cast<std::size_t>(n));
    while (!comm.empty() && (comm.back() == '\n' || comm.back() == '\0')) comm.pop_back();
    if (comm == want) out.push_back(pid);
  }
  ::closedir(proc);
  return out;
}

}  // namespace

reload_hook::reload_hook(boost::asio::io_context& io, const reload_options& options, std::filesystem::path output_dir)
    : options_(options), output_dir_(std::move(output_dir)), timer_(io) {}

reload_hook::outcome reload_hook::run() {
  outcome out;
  const auto& r = options_;
  if (r.signal != 0 && !r.process_name.empty()) {
    const auto pids = find_processes(r.process_name);
    for (const pid_t pid : pids)
      if (::kill(pid, r.signal) == 0) ++out.signalled;
    if (pids.empty()) {
      log::warn("reload: no process of that name (is shareProcessNamespace set?)", {{"process", r.process_name}});
    } else {
      log::info("reload: signalled", {{"process", r.process_name}, {"signal", r.signal}, {"count", out.signalled}});
    }
  }
  if (!r.command.empty()) {
    if (pid_ > 0) {
      pending_ = true;  // run once more when the current one ends
      out.command = outcome::command_state::queued;
    } else {
      out.command = spawn();
    }
  }
  return out;
}

void reload_hook::stop() {
  stopping_ = true;
  timer_.cancel();
  if (pid_ > 0) log::warn("a reload command is still running; leaving it", {{"pid", static_cast<std::int64_t>(pid_)}});
}

reload_hook::outcome::command_state reload_hook::spawn() {
  const auto& cmd = options_.command;
  std::vector<std::string> args = cmd;
  std::vector<std::string> env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/",
                                  "TENANTDB_OUTPUT_DIR=" + output_dir_.string()};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  // Listening sockets and the store's lock files must not leak into the command.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
#endif
  sigset_t all;
  sigset_t none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setpgroup(&attr, 0);  // its own group, so a timeout kills its children too
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0].c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    log::warn("reload command could not be started", {{"command", cmd[0]}, {"error", std::strerror(rc)}});
    return outcome::command_state::failed;
  }
  pid_ = pid;
  deadline_ = std::chrono::steady_clock::now() + options_.command_timeout;
  killed_ = false;
  log::info("reload command started", {{"command", cmd[0]}, {"pid", static_cast<std::int64_t>(pid)}});
  poll();
  return outcome::command_state::started;
}

// Reaps the command without blocking the loop: a short self-re-arming timer.
void reload_hook::poll() {
  timer_.expires_after(std::chrono::milliseconds(50));
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec == boost::asio::error::operation_aborted || stopping_ || pid_ <= 0) return;
    int status = 0;
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_ || (done < 0 && errno == ECHILD)) {
      if (done == pid_ && WIFEXITED(status)) {
        const int code = WEXITSTATUS(status);
        if (code == 0) {
          log::info("reload command finished", {{"exit_code", code}});
        } else {
          log::warn("reload command failed", {{"exit_code", code}});
        }
      } else if (done == pid_ && WIFSIGNALED(status)) {
        log::warn(killed_ ? "reload command killed after its time limit" : "reload command killed by a signal",
                  {{"signal", WTERMSIG(status)}});
      }
      pid_ = -1;
      if (pending_) {
        pending_ = false;
        spawn();
      }
      return;
    }
    if (!killed_ && std::chrono::steady_clock::now() > deadline_) {
      ::kill(-pid_, SIGKILL);
      ::kill(pid_, SIGKILL);
      killed_ = true;
    }
    poll();
  });
}

}  // namespace tenantdb::sidecar
