// Attacks on the sidecar's probe port (issue 12, findings 5 and 8a), against a real
// tenantdb-sidecar that serves a tenant tenantdb-init provisioned on the real PostgreSQL
// and MariaDB test servers:
//  - idle and slowloris connections, from one source address and from several (127.0.0.x
//    are all loopback on Linux), must not keep /healthz and /readyz from answering within
//    the kubelet's default 1 s timeout, nor grow the sidecar's descriptors without bound;
//  - /readyz, which answers anyone who reaches --listen, must not tell them the host,
//    port, user, database or the server's error text when the tenant is not ready.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "outages.hpp"
#include "suite.hpp"
#include "tenantdb/engine.hpp"
#include "testdb.hpp"

using namespace tenantdb;
using namespace tenantdb::test::outages;
using namespace std::chrono_literals;
using test::connect_from;
using test::eventually;
using test::tail;

namespace {

[[maybe_unused]] const bool server_logs = test::dump_server_logs_on_failure({"pg", "mariadb"});

// The sidecar's default connection cap (common/src/sidecar/http_server.hpp): with the attack
// under way its descriptors may grow by at most this many.
constexpr std::size_t connection_cap = 64;

struct probe_result {
  int status = 0;  ///< 0: no answer within the timeout
  std::string body;
  std::chrono::milliseconds took{};
};

// One probe the way the kubelet sends it: a fresh connection from `source`, one GET, and
// an answer within 1 s (the default timeoutSeconds) or none at all.
probe_result probe(const std::string& source, std::uint16_t port, const std::string& path) {
  probe_result r;
  const auto began = steady::now();
  const auto deadline = began + 1s;
  const int fd = connect_from(source, port);
  if (fd < 0) return r;
  timeval tv{0, 100'000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const std::string req =
      "GET " + path + " HTTP/1.1\r\nHost: pod\r\nUser-Agent: kube-probe/1.30\r\nConnection: close\r\n\r\n";
  std::string raw;
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
    char buf[4096];
    while (steady::now() < deadline) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n == 0) break;
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
        break;
      }
      raw.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  r.took = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - began);
  const auto head_end = raw.find("\r\n\r\n");
  if (r.took > 1s || raw.size() < 12 || head_end == std::string::npos) return r;
  r.status = std::stoi(raw.substr(9, 3));
  r.body = raw.substr(head_end + 4);
  return r;
}

std::size_t open_fds(pid_t pid) {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != fs::directory_iterator(); it.increment(ec))
    ++n;
  return n;
}

// The attacker: holds connections to the probe port that never finish a request. Idle
// ones send nothing; slow ones send a partial request head and then one more byte of a
// header every 100 ms, from a thread, until the attacker is destroyed. A persistent
// attacker also reopens every connection the sidecar dropped, checking every 20 ms.
class attacker {
public:
  explicit attacker(bool persistent = false) : persistent_(persistent) {}
  ~attacker() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (const auto& c : conns_) ::close(c.fd);
  }

  /// Opens `n` connections from `source`; returns how many connected.
  int open(const std::string& source, std::uint16_t port, int n, bool slow) {
    int opened = 0;
    for (int i = 0; i < n; ++i) {
      conn c{connect_from(source, port), source, port, slow};
      if (c.fd < 0) continue;
      ++opened;
      if (slow) send_head(c.fd);
      const std::lock_guard<std::mutex> lock(mu_);
      conns_.push_back(std::move(c));
    }
    if ((slow || persistent_) && !thread_.joinable()) thread_ = std::thread([this] { keep_up(); });
    return opened;
  }

  /// How many of the connections the sidecar has closed (EOF or reset seen).
  int closed_by_peer() {
    const std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const auto& c : conns_) n += closed(c.fd) ? 1 : 0;
    return n;
  }

  /// Connections reopened after the sidecar dropped them.
  int reopened() const { return reopened_; }

private:
  struct conn {
    int fd;
    std::string source;
    std::uint16_t port;
    bool slow;
  };

  static void send_head(int fd) {
    static const std::string head = "GET /readyz HTTP/1.1\r\nHost: pod\r\nX-Slow: ";
    (void)!::send(fd, head.data(), head.size(), MSG_NOSIGNAL);
  }

  static bool closed(int fd) {
    char c;
    const ssize_t r = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }

  void keep_up() {
    while (!stop_) {
      {
        const std::lock_guard<std::mutex> lock(mu_);
        for (auto& c : conns_) {
          if (persistent_ && closed(c.fd)) {
            ::close(c.fd);
            c.fd = connect_from(c.source, c.port);
            if (c.fd >= 0 && c.slow) send_head(c.fd);
            ++reopened_;
            continue;
          }
          if (c.slow) (void)!::send(c.fd, "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
      }
      std::this_thread::sleep_for(persistent_ ? 20ms : 100ms);
    }
  }

  const bool persistent_;
  std::atomic<bool> stop_{false};
  std::atomic<int> reopened_{0};
  std::mutex mu_;
  std::vector<conn> conns_;
  std::thread thread_;
};

class ProbeAttackTest : public OutageFixture, public ::testing::WithParamInterface<std::string> {
protected:
  std::string engine() const override { return GetParam(); }

  // Provisions the tenant and starts a sidecar that is ready.
  sidecar& ready_sidecar() {
    const fs::path out = work_ / "out";
    const auto r = init(out);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto& s = start("pod-probe", out, {"--rotate-every", "never"});
    EXPECT_TRUE(eventually([&] { return s.ready() == 200; }, 30s)) << tail(s.proc->err(), 20);
    return s;
  }

  // Performs one flood and checks what the kubelet would see while it lasts. Returns the
  // problems found (none: the sidecar held).
  std::vector<std::string> flood(sidecar& s, const std::vector<std::string>& sources, int total, bool slow,
                                 bool persistent) {
    std::vector<std::string> problems;
    const std::size_t fds_before = open_fds(s.proc->pid());
    attacker a(persistent);
    int opened = 0;
    for (const auto& source : sources) opened += a.open(source, s.port, total / static_cast<int>(sources.size()), slow);
    if (opened < total) problems.push_back("the attacker opened only " + std::to_string(opened) + " connections");
    // A persistent attacker: probe once the churn is under way, and check it went on
    // while the probes ran.
    if (persistent && !eventually([&] { return a.reopened() >= total; }, 10s))
      problems.push_back("the attacker reopened only " + std::to_string(a.reopened()) + " connections");
    const int reopened_before = a.reopened();
    // The kubelet from the flooding address itself (on a node, a hostNetwork pod shares
    // the kubelet's address) and from another one; five rounds each, and against a
    // persistent attacker until it has reopened as many connections again.
    // The kubelet acts on a probe only after failureThreshold (default 3) failures in a
    // row; one slow answer on a loaded CI machine is not an outage, three in a row are.
    constexpr int failure_threshold = 3;
    int probes = 0;
    int failed = 0;
    int worst_run = 0;
    std::map<std::string, int> run;  // consecutive failures per (source, path)
    std::string first;
    for (int round = 0; round < 5 || (persistent && a.reopened() < reopened_before + total && round < 500); ++round)
      for (const std::string from : {"127.0.0.1", "127.0.0.200"})
        for (const auto& [path, want] :
             {std::pair<std::string, std::string>{"/healthz", "ok\n"}, {"/readyz", "ready\n"}}) {
          const auto p = probe(from, s.port, path);
          ++probes;
          int& r = run[from + path];
          if (p.status == 200 && p.body == want) {
            r = 0;
            continue;
          }
          worst_run = std::max(worst_run, ++r);
          if (failed++ == 0)
            first = path + " from " + from + ": status " + std::to_string(p.status) + " after " +
                    std::to_string(p.took.count()) + " ms";
        }
    if (worst_run >= failure_threshold)
      problems.push_back(std::to_string(worst_run) + " probes in a row got no right answer within 1 s (" +
                         std::to_string(failed) + " of " + std::to_string(probes) + " in all), the first: " + first);
    else if (failed > 0)
      std::cerr << "note: " << failed << " of " << probes << " probes were late or wrong, never " << failure_threshold
                << " in a row; the first: " << first << "\n";
    if (persistent && a.reopened() == reopened_before)
      problems.push_back("the attacker reopened nothing while the probes ran");
    const std::size_t fds_during = open_fds(s.proc->pid());
    // A little room for the sidecar's own short-lived sockets (API, login checks).
    if (fds_during > fds_before + connection_cap + 4)
      problems.push_back("the sidecar's descriptors grew from " + std::to_string(fds_before) + " to " +
                         std::to_string(fds_during));
    return problems;
  }
};

TEST_P(ProbeAttackTest, IdleAndSlowlorisFloodsFromOneOrManyAddressesLeaveTheProbesAnswering) {
  test::suite_tally tally;
  auto& s = ready_sidecar();
  ASSERT_FALSE(HasFailure());
  std::vector<std::string> many;
  for (int i = 2; i < 10; ++i) many.push_back("127.0.0." + std::to_string(i));

  struct attack {
    const char* name;
    std::vector<std::string> sources;
    bool slow;
    bool persistent;
  };
  for (const attack& at :
       {attack{"200 idle connections from one address", {"127.0.0.1"}, false, false},
        attack{"200 slowloris connections from one address", {"127.0.0.1"}, true, false},
        attack{"200 idle connections from 8 addresses", many, false, false},
        attack{"200 slowloris connections from 8 addresses", many, true, false},
        attack{"200 slowloris connections from 8 addresses, reopened as soon as dropped", many, true, true},
        attack{"200 idle connections from one address, reopened as soon as dropped", {"127.0.0.1"}, false, true}}) {
    SCOPED_TRACE(at.name);
    ++tally.attacks;
    const auto problems = flood(s, at.sources, 200, at.slow, at.persistent);
    for (const auto& p : problems) ADD_FAILURE() << at.name << ": " << p;
    if (problems.empty()) ++tally.held;
  }
  const auto m = s.metrics();
  EXPECT_GT(metric(m, "tenantdb_http_connections_closed_total{reason=\"evicted\"}"), 0) << m;
}

TEST_P(ProbeAttackTest, ASlowlorisHeadIsCutOffAtTheRequestDeadline) {
  test::suite_tally tally;
  auto& s = ready_sidecar();
  ASSERT_FALSE(HasFailure());
  ++tally.attacks;
  attacker a;
  const auto began = steady::now();
  ASSERT_EQ(a.open("127.0.0.1", s.port, 4, true), 4);
  // The connections trickle a byte every 100 ms and never finish their head: only a
  // deadline for the whole head (5 s) closes them, well before the old 10 s one.
  ASSERT_TRUE(eventually([&] { return a.closed_by_peer() == 4; }, 9s)) << a.closed_by_peer() << " of 4 closed";
  EXPECT_LT(steady::now() - began, 8s);
  const auto m = s.metrics();
  EXPECT_GE(metric(m, "tenantdb_http_connections_closed_total{reason=\"timeout\"}"), 4) << m;
  if (!HasFailure()) ++tally.held;
}

// /readyz answers whoever reaches --listen (0.0.0.0:8080 by default): its body may name a
// class of failure, nothing about the tenant, its server or the server's words.
TEST_P(ProbeAttackTest, ReadyzWhenNotReadyTellsAnOutsiderNothingAboutTheTenantOrItsServer) {
  test::suite_tally tally;
  const fs::path out = work_ / "out";
  const std::regex terse("not ready: [a-z :]+\n");
  const auto leaks = [&](const std::string& body, const std::vector<std::string>& secrets) {
    std::vector<std::string> found;
    for (const auto& s : secrets)
      if (!s.empty() && body.find(s) != std::string::npos) found.push_back(s);
    return found;
  };
  const std::vector<std::string> about_the_tenant = {who_.name, secret_name_, ns, conn_.server.host,
                                                     std::to_string(conn_.server.port)};

  // 1. Before the init ran: the store holds nothing yet.
  ++tally.attacks;
  auto& s = start("pod-readyz", out, {"--rotate-every", "never"});
  ASSERT_TRUE(eventually([&] { return test::http(s.port, "GET", "/readyz").status == 503; }, 10s));
  ASSERT_TRUE(
      eventually([&] { return test::http(s.port, "GET", "/readyz").body == "not ready: no credentials yet\n"; }, 10s))
      << test::http(s.port, "GET", "/readyz").body;
  auto body = test::http(s.port, "GET", "/readyz").body;
  EXPECT_TRUE(std::regex_match(body, terse)) << body;
  for (const auto& l : leaks(body, about_the_tenant)) ADD_FAILURE() << "/readyz names " << l << ": " << body;
  if (!HasFailure()) ++tally.held;

  // 2. Provisioned, then the tenant's password changed behind its back: the server refuses
  // the login check with an error that names the user (and on MariaDB the host).
  ASSERT_EQ(init(out).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return s.ready() == 200; }, 30s)) << tail(s.proc->err(), 20);
  ++tally.attacks;
  const std::string user = stored(keys::user);
  const std::string database = stored(keys::database);
  ASSERT_FALSE(user.empty());
  connect_admin(conn_.server, test::admin_login(conn_))->set_password(user, secret("broken-by-the-test-Zq81x"));
  ASSERT_TRUE(eventually([&] { return s.ready() == 503; }, 15s)) << tail(s.proc->err(), 20);
  body = test::http(s.port, "GET", "/readyz").body;
  EXPECT_EQ(body, "not ready: login check failed: database refused the login\n");
  EXPECT_TRUE(std::regex_match(body, terse)) << body;
  const std::string server_words = engine() == "pg" ? "password authentication failed" : "Access denied";
  auto more = about_the_tenant;
  more.insert(more.end(), {user, database, server_words});
  for (const auto& l : leaks(body, more)) ADD_FAILURE() << "/readyz names " << l << ": " << body;
  // The operator still finds the details: in the sidecar's log.
  const std::string log = s.proc->err();
  EXPECT_NE(log.find(server_words), std::string::npos) << tail(log, 20);
  if (!HasFailure()) ++tally.held;
}

INSTANTIATE_TEST_SUITE_P(Engines, ProbeAttackTest, ::testing::Values("pg", "mariadb"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
