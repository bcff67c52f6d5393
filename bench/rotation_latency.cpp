// rotation_latency: how long a rotation takes to reach the credentials Secret and the
// credential files of every replica of one tenant.
//
//   rotation_latency --api URL --ca FILE --token-file FILE --namespace NS --secret NAME
//                    --rotations N [--spread-ms MS] --replica NAME,ADMIN_PORT,OUTPUT_DIR,LOG_FILE [--replica ...]
//
// It watches the Secret through the API (a Kubernetes watch; the time is when the event
// arrives here) and every replica's output directory with inotify (the time the `..data`
// symlink is swapped). For each rotation it waits until nothing is in flight (no
// tenantdb.io/rotation annotation; every replica's files hold the Secret's password),
// then a random 0..MS ms (--spread-ms, give the sync interval: otherwise the trigger
// follows the last follower's read in step and always meets the followers at the same
// point of their polling cycle), sends POST /rotate to the next replica in turn, and
// waits until the Secret and all files hold a new password. The decision is the `"rotation requested"` line that
// replica logs (JSON, `ts` in ms) when its sync starts the rotation. Prints one line per rotation:
//   i leader trigger_to_decision_ms secret_ms replica1_ms ... replicaK_ms all_ms
// where every *_ms after the second column counts from the decision. Exits 1 on a timeout.
#include <poll.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <curl/curl.h>
#include <rapidjson/document.h>

#include "plain_http.hpp"

namespace {

using namespace std::chrono_literals;

// Microseconds on CLOCK_REALTIME, the clock the sidecar's log timestamps use.
long long now_us() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000LL + ts.tv_nsec / 1000;
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "rotation_latency: %s\n", what.c_str());
  std::exit(1);
}

std::string base64_decode(const std::string& in) {
  static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned bits = 0;
  int count = 0;
  for (const char c : in) {
    const auto pos = alphabet.find(c);
    if (pos == std::string::npos) continue;  // '=' padding
    bits = (bits << 6) | static_cast<unsigned>(pos);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> count) & 0xffU));
    }
  }
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

struct replica {
  std::string name;
  std::uint16_t admin = 0;
  std::string dir;
  std::string log;
  // Guarded by state::mutex.
  std::string password;
  long long changed_us = 0;
};

// What the watchers saw last; guarded by `mutex`, announced through `changed`.
struct state {
  std::mutex mutex;
  std::condition_variable changed;
  std::string secret_password;
  bool secret_busy = true;  // a rotation annotation is present
  long long secret_changed_us = 0;
  std::vector<replica> replicas;
  std::atomic<bool> stop{false};
};

// --- the Secret, through a watch -----------------------------------------------------------

struct watch_stream {
  state* st;
  std::string buffer;
};

void on_event(state& st, const std::string& line) {
  const long long t = now_us();
  rapidjson::Document doc;
  doc.Parse(line.c_str());
  if (doc.HasParseError() || !doc.HasMember("object")) return;
  const auto& object = doc["object"];
  std::string password;
  if (object.HasMember("data") && object["data"].HasMember("password"))
    password = base64_decode(object["data"]["password"].GetString());
  bool busy = false;
  if (object.HasMember("metadata") && object["metadata"].HasMember("annotations")) {
    const auto& a = object["metadata"]["annotations"];
    const auto it = a.FindMember("tenantdb.io/rotation");
    busy = it != a.MemberEnd() && it->value.IsString() && it->value.GetStringLength() != 0;
  }
  std::lock_guard lock(st.mutex);
  if (password != st.secret_password) {
    st.secret_password = password;
    st.secret_changed_us = t;
  }
  st.secret_busy = busy;
  st.changed.notify_all();
}

size_t on_data(char* data, size_t size, size_t n, void* user) {
  auto* w = static_cast<watch_stream*>(user);
  w->buffer.append(data, size * n);
  for (auto nl = w->buffer.find('\n'); nl != std::string::npos; nl = w->buffer.find('\n')) {
    on_event(*w->st, w->buffer.substr(0, nl));
    w->buffer.erase(0, nl + 1);
  }
  return size * n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<state*>(user)->stop ? 1 : 0;
}

void watch_secret(state& st, const std::string& url, const std::string& ca, const std::string& token) {
  const std::string auth = "Authorization: Bearer " + token;
  while (!st.stop) {
    CURL* curl = curl_easy_init();
    curl_slist* headers = curl_slist_append(nullptr, auth.c_str());
    watch_stream w{&st, {}};
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_CAINFO, ca.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &w);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &st);
    curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L);
    const CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (st.stop) return;
    if (rc != CURLE_OK || status != 200)
      std::fprintf(stderr, "rotation_latency: the watch ended (%s, HTTP %ld); watching again\n", curl_easy_strerror(rc),
                   status);
    std::this_thread::sleep_for(100ms);
  }
}

// --- the replicas' files, through inotify ----------------------------------------------------

void read_replica(state& st, std::size_t k, long long t) {
  const std::string password = read_file(st.replicas[k].dir + "/..data/password");
  std::lock_guard lock(st.mutex);
  replica& r = st.replicas[k];
  if (password != r.password) {
    r.password = password;
    r.changed_us = t;
    st.changed.notify_all();
  }
}

void watch_files(state& st, int fd, const std::vector<int>& wds) {
  alignas(inotify_event) char buf[16384];
  while (!st.stop) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    const long long t = now_us();
    for (ssize_t off = 0; off < n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      if (ev->len != 0 && std::strcmp(ev->name, "..data") == 0)
        for (std::size_t k = 0; k < wds.size(); ++k)
          if (wds[k] == ev->wd) read_replica(st, k, t);
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
    }
  }
}

// --- the decision, from the leader's log ------------------------------------------------------

long long parse_ts(const std::string& line) {
  const auto pos = line.find("\"ts\":\"");
  if (pos == std::string::npos) return 0;
  std::tm tm{};
  int ms = 0;
  if (std::sscanf(line.c_str() + pos + 6, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
    return 0;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<long long>(timegm(&tm)) * 1000000LL + ms * 1000LL;
}

// The time of the first "rotation requested" line logged at or after `since_us`
// (the log's resolution is 1 ms); 0 if there is none.
long long decision_us(const std::string& log, long long since_us) {
  std::istringstream lines(read_file(log));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find("\"msg\":\"rotation requested\"") == std::string::npos) continue;
    const long long t = parse_ts(line);
    if (t >= since_us / 1000 * 1000) return t;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string api, ca, token_file, ns, secret_name;
  long rotations = 20;
  long spread_ms = 0;
  state st;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--api")
      api = value;
    else if (flag == "--ca")
      ca = value;
    else if (flag == "--token-file")
      token_file = value;
    else if (flag == "--namespace")
      ns = value;
    else if (flag == "--secret")
      secret_name = value;
    else if (flag == "--rotations")
      rotations = std::atol(value.c_str());
    else if (flag == "--spread-ms")
      spread_ms = std::atol(value.c_str());
    else if (flag == "--replica") {
      replica r;
      std::istringstream parts(value);
      std::string port;
      std::getline(parts, r.name, ',');
      std::getline(parts, port, ',');
      std::getline(parts, r.dir, ',');
      std::getline(parts, r.log, ',');
      r.admin = static_cast<std::uint16_t>(std::atoi(port.c_str()));
      st.replicas.push_back(std::move(r));
    } else
      die("unknown flag " + flag);
  }
  if (api.empty() || ca.empty() || token_file.empty() || ns.empty() || secret_name.empty() || st.replicas.empty() ||
      rotations < 1)
    die("usage: see the comment at the top of bench/rotation_latency.cpp");
  std::string token = read_file(token_file);
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();

  curl_global_init(CURL_GLOBAL_DEFAULT);
  const int ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  std::vector<int> wds;
  for (std::size_t k = 0; k < st.replicas.size(); ++k) {
    wds.push_back(inotify_add_watch(ifd, st.replicas[k].dir.c_str(), IN_MOVED_TO | IN_CREATE));
    if (wds.back() < 0) die("cannot watch " + st.replicas[k].dir + ": " + std::strerror(errno));
    read_replica(st, k, now_us());
  }
  const std::string url = api + "/api/v1/namespaces/" + ns + "/secrets?watch=1&fieldSelector=metadata.name%3D" +
                          secret_name + "&timeoutSeconds=3600";
  std::thread secret_watcher([&] { watch_secret(st, url, ca, token); });
  std::thread file_watcher([&] { watch_files(st, ifd, wds); });

  std::mt19937_64 rng(std::random_device{}());
  std::uniform_int_distribution<long> spread(0, std::max(0L, spread_ms));
  int code = 0;
  for (long i = 1; i <= rotations && code == 0; ++i) {
    const std::size_t leader = static_cast<std::size_t>(i - 1) % st.replicas.size();
    std::unique_lock lock(st.mutex);
    // Quiet: nothing in flight (a dual rotation's retire has run) and every replica caught up.
    const bool quiet = st.changed.wait_for(lock, 10min, [&] {
      if (st.secret_busy || st.secret_password.empty()) return false;
      for (const auto& r : st.replicas)
        if (r.password != st.secret_password) return false;
      return true;
    });
    if (!quiet) {
      std::fprintf(stderr, "rotation_latency: the tenant did not settle within 10 minutes before rotation %ld\n", i);
      code = 1;
      break;
    }
    const std::string before = st.secret_password;
    lock.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds(spread(rng)));
    const long long trigger = now_us();
    if (bench::http(st.replicas[leader].admin, "POST", "/rotate").status != 202)
      die("POST /rotate on " + st.replicas[leader].name + " was not accepted");
    lock.lock();
    const bool done = st.changed.wait_for(lock, 10min, [&] {
      if (st.secret_password == before) return false;
      for (const auto& r : st.replicas)
        if (r.password != st.secret_password) return false;
      return true;
    });
    if (!done) {
      std::fprintf(stderr,
                   "rotation_latency: rotation %ld did not reach the Secret and every replica within 10 minutes\n", i);
      code = 1;
      break;
    }
    const long long decided = decision_us(st.replicas[leader].log, trigger);
    if (decided == 0) die("no \"rotation requested\" line in " + st.replicas[leader].log);
    const auto ms = [&](long long t) { return static_cast<double>(t - decided) / 1000.0; };
    long long all = 0;
    std::printf("%ld %s %.1f %.1f", i, st.replicas[leader].name.c_str(),
                static_cast<double>(decided - trigger) / 1000.0, ms(st.secret_changed_us));
    for (const auto& r : st.replicas) {
      std::printf(" %.1f", ms(r.changed_us));
      all = std::max(all, r.changed_us);
    }
    std::printf(" %.1f\n", ms(all));
    std::fflush(stdout);
  }
  st.stop = true;
  secret_watcher.join();
  file_watcher.join();
  ::close(ifd);
  curl_global_cleanup();
  return code;
}
