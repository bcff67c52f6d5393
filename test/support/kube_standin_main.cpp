// kube-standin: the Kubernetes API server stand-in as a process.
//
//   kube-standin [--port N] [--dir DIR] [--allow-all] [--user NAME] [--allow VERB,NS,RESOURCE[,NAME]]...
//
// Listens on https://127.0.0.1:N (0 = ephemeral). With --dir it writes ca.pem, a
// kubeconfig (server, certificate-authority, a random bearer token, namespace "default"),
// the port and the token, each mode 0600 and each written before "ready" is printed on
// stdout. The token authenticates as --user (default kube-standin-admin), who may do
// everything with --allow-all or what the --allow rules grant (see KubeStandin::allow).
// On SIGUSR1 (with --dir) it writes DIR/requests: every request answered so far, one line
// each, "METHOD TARGET STATUS" (the benchmarks count API requests with it).
// Exits 0 on SIGTERM or SIGINT.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

// GCC 12 reports -Wnull-dereference inside Asio's epoll reactor
// (scheduler::compensating_work_started, inlined from perform_io) although it is a system
// header: a middle-end false positive, silenced for these includes only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#pragma GCC diagnostic pop
#include <openssl/rand.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "kube_standin.hpp"

namespace {

namespace fs = std::filesystem;

[[noreturn]] void usage(const std::string& problem) {
  std::cerr << "kube-standin: " << problem
            << "\nusage: kube-standin [--port N] [--dir DIR] [--allow-all] [--user NAME] "
               "[--allow VERB,NAMESPACE,RESOURCE[,NAME]]...\n";
  std::exit(2);
}

/// Writes a file with mode 0600 atomically (temporary file, then rename).
void write_private(const fs::path& path, const std::string& content) {
  const fs::path temp = path.string() + ".tmp";
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot write " + temp.string() + ": " + std::strerror(errno));
  ::fchmod(fd, 0600);
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw std::runtime_error("cannot write " + temp.string() + ": " + std::strerror(err));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0)
    throw std::runtime_error("cannot write " + temp.string() + ": " + std::strerror(errno));
  fs::rename(temp, path);
}

std::string random_token() {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) throw std::runtime_error("RAND_bytes failed");
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char b : raw) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 0xfU]);
  }
  return out;
}

/// A double-quoted YAML scalar.
std::string yaml_quote(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts(1);
  for (const char c : s) {
    if (c == sep)
      parts.emplace_back();
    else
      parts.back().push_back(c);
  }
  return parts;
}

}  // namespace

int main(int argc, char** argv) {
  tenantdb::test::KubeStandinOptions options;
  fs::path dir;
  bool allow_all = false;
  std::string user = "kube-standin-admin";
  std::vector<std::vector<std::string>> rules;
  const std::vector<std::string> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    const auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) usage(arg + " needs a value");
      return args[++i];
    };
    if (arg == "--port") {
      const std::string& v = value();
      char* end = nullptr;
      const unsigned long port = std::strtoul(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || port > 65535) usage("--port wants 0-65535, not \"" + v + "\"");
      options.port = static_cast<std::uint16_t>(port);
    } else if (arg == "--dir") {
      dir = value();
    } else if (arg == "--allow-all") {
      allow_all = true;
    } else if (arg == "--user") {
      user = value();
      if (user.empty()) usage("--user needs a name");
    } else if (arg == "--allow") {
      auto rule = split(value(), ',');
      if (rule.size() < 3 || rule.size() > 4) usage("--allow wants VERB,NAMESPACE,RESOURCE[,NAME]");
      rules.push_back(std::move(rule));
    } else if (arg == "--help" || arg == "-h") {
      usage("the Kubernetes API server stand-in");
    } else {
      usage("unknown argument \"" + arg + "\"");
    }
  }

  try {
    boost::asio::io_context signals_io;
    boost::asio::signal_set signals(signals_io, SIGTERM, SIGINT);
    boost::asio::signal_set dump(signals_io, SIGUSR1);  // before the port file says ready
    tenantdb::test::KubeStandin standin(options);
    const std::string token = random_token();
    standin.add_token(token, user);
    if (allow_all) standin.allow_all(user);
    for (auto& r : rules) standin.allow(user, r[0], r[1], r[2], r.size() > 3 ? r[3] : std::string());

    if (!dir.empty()) {
      fs::create_directories(dir);
      dir = fs::absolute(dir);
      write_private(dir / "ca.pem", standin.ca_pem());
      write_private(dir / "token", token + "\n");
      write_private(dir / "kubeconfig",
                    "apiVersion: v1\n"
                    "kind: Config\n"
                    "clusters:\n"
                    "- name: kube-standin\n"
                    "  cluster:\n"
                    "    server: " +
                        standin.url() +
                        "\n"
                        "    certificate-authority: " +
                        yaml_quote((dir / "ca.pem").string()) +
                        "\n"
                        "users:\n"
                        "- name: " +
                        yaml_quote(user) +
                        "\n"
                        "  user:\n"
                        "    token: " +
                        token +
                        "\n"
                        "contexts:\n"
                        "- name: kube-standin\n"
                        "  context:\n"
                        "    cluster: kube-standin\n"
                        "    user: " +
                        yaml_quote(user) +
                        "\n"
                        "    namespace: default\n"
                        "current-context: kube-standin\n"
                        "preferences: {}\n");
      write_private(dir / "port", std::to_string(standin.port()) + "\n");  // last: its presence means ready
    }

    int got = 0;
    std::function<void()> wait_dump = [&] {
      dump.async_wait([&](const boost::system::error_code& ec, int) {
        if (ec) return;
        if (!dir.empty()) {
          std::string lines;
          for (const auto& r : standin.requests())
            lines += r.method + " " + r.target + " " + std::to_string(r.status) + "\n";
          write_private(dir / "requests", lines);
        }
        wait_dump();
      });
    };
    wait_dump();
    signals.async_wait([&](const boost::system::error_code& ec, int signal) {
      if (!ec) got = signal;
      dump.cancel();
    });
    std::cout << "ready" << std::endl;
    signals_io.run();
    standin.stop();
    std::cerr << "kube-standin: stopped on signal " << got << " after " << standin.requests().size() << " requests\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "kube-standin: " << e.what() << "\n";
    return 1;
  }
}
