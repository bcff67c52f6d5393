// pool CONCURRENCY ERR_DIR CMD ARGS...: a job pool for bench/scale.sh. Reads one name per
// line on stdin and runs CMD once per name, CONCURRENCY processes at a time, with every
// "{}" in ARGS replaced by the name; stdout goes to /dev/null, stderr to ERR_DIR/NAME.err.
// Prints "NAME <start ns> <end ns> <status>" per job in completion order: times from just
// before the first spawn, on CLOCK_MONOTONIC, start just before spawning and end just
// after reaping; status is the exit code, or 128 + signal. Exits 1 if any job failed.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

extern char** environ;

namespace {

long long now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

std::string substitute(std::string arg, const std::string& name) {
  for (std::size_t at = 0; (at = arg.find("{}", at)) != std::string::npos; at += name.size()) arg.replace(at, 2, name);
  return arg;
}

struct job {
  std::string name;
  long long start;
};

// Spawns CMD for one name; returns its pid, or -1 (reported on stderr) if it could not start.
pid_t spawn(const std::vector<std::string>& cmd, const std::string& name, const std::string& err_dir) {
  std::vector<std::string> args;
  for (const std::string& a : cmd) args.push_back(substitute(a, name));
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string err = err_dir + "/" + name + ".err";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    std::fprintf(stderr, "pool: %s: %s\n", argv[0], std::strerror(rc));
    return -1;
  }
  return pid;
}

}  // namespace

int main(int argc, char** argv) {
  const int concurrency = argc >= 4 ? std::atoi(argv[1]) : 0;
  if (concurrency < 1) {
    std::fprintf(stderr, "usage: pool CONCURRENCY ERR_DIR CMD [ARGS...] < names\n");
    return 2;
  }
  const std::string err_dir = argv[2];
  const std::vector<std::string> cmd(argv + 3, argv + argc);
  std::vector<std::string> names;
  for (std::string line; std::getline(std::cin, line);)
    if (!line.empty()) names.push_back(line);

  std::map<pid_t, job> running;
  std::size_t next = 0;
  int failed = 0;
  const long long t0 = now_ns();
  while (next < names.size() || !running.empty()) {
    while (running.size() < static_cast<std::size_t>(concurrency) && next < names.size()) {
      const std::string& name = names[next++];
      const long long start = now_ns();
      const pid_t pid = spawn(cmd, name, err_dir);
      if (pid < 0) {
        ++failed;
        std::printf("%s %lld %lld 127\n", name.c_str(), start - t0, now_ns() - t0);
        continue;
      }
      running.emplace(pid, job{name, start});
    }
    if (running.empty()) continue;
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) continue;  // EINTR
    const long long end = now_ns();
    const auto it = running.find(pid);
    if (it == running.end()) continue;
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    if (code != 0) ++failed;
    std::printf("%s %lld %lld %d\n", it->second.name.c_str(), it->second.start - t0, end - t0, code);
    running.erase(it);
  }
  std::fflush(stdout);
  return failed == 0 ? 0 : 1;
}
