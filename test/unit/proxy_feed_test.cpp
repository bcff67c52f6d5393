// The proxy's feed on its own (common/src/sidecar/proxy_feed.hpp): which account and
// password the proxy logs in with for a store's content, that the rotator's writes reach
// it before the write returns, and that the proxy listens only once credentials are known
// and reports a port it cannot bind (readiness class and one log line) until it can.

#include <arpa/inet.h>
#include <map>
#include <memory>
#include <netinet/in.h>
#include <optional>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "ports.hpp"
#include "sidecar/proxy_feed.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/log.hpp"
#include "tenantdb/store.hpp"

namespace tenantdb::sidecar {
namespace {

credential_data dual_data(const std::string& password) {
  credential_data d;
  d[keys::type] = secret(std::string("postgres"));
  d[keys::host] = secret(std::string("127.0.0.1"));
  d[keys::port] = secret(std::string("5432"));
  d[keys::ssl_mode] = secret(std::string("verify-full"));
  d[keys::database] = secret(std::string("appdb"));
  d[keys::user] = secret(std::string("app_a"));
  d[keys::password] = secret(password);
  d[keys::standby_user] = secret(std::string("app_b"));
  d[keys::standby_password] = secret(std::string("standby-password"));
  return d;
}

credential_data in_place_data(const std::string& password) {
  credential_data d = dual_data(password);
  d.erase(keys::standby_user);
  d.erase(keys::standby_password);
  return d;
}

// A store in memory whose writes succeed unless `conflict` is set.
class memory_store final : public credential_store {
public:
  std::optional<stored_credentials> load() override { return held; }
  std::optional<std::string> create(const credential_data& data,
                                    const std::map<std::string, std::string>& annotations) override {
    if (held) return std::nullopt;
    held = stored_credentials{data, std::to_string(++version), annotations};
    return held->version;
  }
  std::optional<std::string> replace(const credential_data& data, const std::map<std::string, std::string>& annotations,
                                     const std::string& at) override {
    if (conflict || !held || held->version != at) return std::nullopt;
    held = stored_credentials{data, std::to_string(++version), annotations};
    return held->version;
  }
  std::string describe() const override { return "memory store"; }

  std::optional<stored_credentials> held;
  int version = 0;
  bool conflict = false;
};

// True if something accepts a TCP connection on 127.0.0.1:port.
bool accepts(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// A listening socket on 127.0.0.1:port, so the proxy cannot bind it.
int occupy(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 4) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

proxy_settings settings_on(std::uint16_t port) {
  proxy_settings s;
  s.listen = listen_address{"127.0.0.1", port};
  return s;
}

class ProxyFeed : public ::testing::Test {
protected:
  void SetUp() override {
    log::set_sink([this](std::string_view line) { logged_ += std::string(line) + "\n"; });
  }
  void TearDown() override { log::set_sink({}); }

  std::size_t count(const std::string& text) const {
    std::size_t n = 0;
    for (auto at = logged_.find(text); at != std::string::npos; at = logged_.find(text, at + 1)) ++n;
    return n;
  }

  std::string logged_;
};

TEST_F(ProxyFeed, UpstreamIsTheActiveAccountAndCarriesOnlyAnInPlacePendingPassword) {
  // Dual, claim in flight: the pending password is the standby's; the active account
  // never logs in with it.
  credential_data dual = dual_data("active-password");
  dual[keys::pending_password] = secret(std::string("standby-next-password"));
  const proxy::upstream d = upstream_from(dual);
  EXPECT_EQ(d.account.user, "app_a");
  EXPECT_EQ(d.account.password.reveal(), "active-password");
  EXPECT_EQ(d.database, "appdb");
  EXPECT_EQ(d.server.host, "127.0.0.1");
  EXPECT_EQ(d.server.port, 5432);
  EXPECT_EQ(d.server.type, engine_type::postgres);
  EXPECT_EQ(d.server.tls, tls_mode::verify_full);
  EXPECT_TRUE(d.pending_password.empty());

  // In-place, claim in flight: the pending password is the active account's next one.
  credential_data in_place = in_place_data("active-password");
  in_place[keys::pending_password] = secret(std::string("active-next-password"));
  const proxy::upstream i = upstream_from(in_place);
  EXPECT_EQ(i.account.user, "app_a");
  EXPECT_EQ(i.account.password.reveal(), "active-password");
  EXPECT_EQ(i.pending_password.reveal(), "active-next-password");

  credential_data broken = dual_data("active-password");
  broken.erase(keys::password);
  EXPECT_THROW(upstream_from(broken), error);
  credential_data no_host = dual_data("active-password");
  no_host.erase(keys::host);
  EXPECT_THROW(upstream_from(no_host), error);
}

// An in-place rotation writes its claim (the pending password), then changes the
// account's password, then stores it. Each write must be in the proxy's source when the
// write returns to the rotator, before it touches the database.
TEST_F(ProxyFeed, EveryWriteOfTheRotatorReachesTheProxyBeforeTheWriteReturns) {
  memory_store inner;
  proxy_feed feed(settings_on(test::unused_port()));
  feeding_store store(inner, &feed);
  const proxy::upstream_source& source = feed.source();

  ASSERT_TRUE(store.create(in_place_data("first-password"), {}));
  ASSERT_NE(source.get(), nullptr);
  EXPECT_EQ(source.get()->account.password.reveal(), "first-password");
  EXPECT_TRUE(source.get()->pending_password.empty());

  credential_data claim = in_place_data("first-password");
  claim[keys::pending_password] = secret(std::string("second-password"));
  ASSERT_TRUE(store.replace(claim, {}, inner.held->version));
  EXPECT_EQ(source.get()->account.password.reveal(), "first-password");
  EXPECT_EQ(source.get()->pending_password.reveal(), "second-password");

  ASSERT_TRUE(store.replace(in_place_data("second-password"), {}, inner.held->version));
  EXPECT_EQ(source.get()->account.password.reveal(), "second-password");
  EXPECT_TRUE(source.get()->pending_password.empty());

  // A write that lost a race changed nothing in the store, nor in the proxy.
  inner.conflict = true;
  EXPECT_FALSE(store.replace(in_place_data("third-password"), {}, inner.held->version));
  EXPECT_EQ(source.get()->account.password.reveal(), "second-password");

  // Content the proxy cannot use keeps the previous credentials, and says so once.
  inner.conflict = false;
  credential_data broken = in_place_data("fourth-password");
  broken.erase(keys::database);
  ASSERT_TRUE(store.replace(broken, {}, inner.held->version));
  ASSERT_TRUE(store.replace(broken, {}, inner.held->version));
  EXPECT_EQ(source.get()->account.password.reveal(), "second-password");
  EXPECT_EQ(count("keep the previous ones"), 1u) << logged_;
  EXPECT_EQ(logged_.find("fourth-password"), std::string::npos);
  feed.stop();
}

TEST_F(ProxyFeed, ListensOnlyOnceCredentialsAreKnownAndStopClosesThePort) {
  const std::uint16_t port = test::unused_port();
  proxy_feed feed(settings_on(port));
  EXPECT_FALSE(feed.serving());
  EXPECT_EQ(feed.reason(), "proxy not serving");
  EXPECT_FALSE(accepts(port));
  EXPECT_NE(feed.metrics().find("tenantdb_proxy_serving 0\n"), std::string::npos) << feed.metrics();

  credential_data unusable = dual_data("pw-0123456789");
  unusable.erase(keys::user);
  feed.update(unusable);
  feed.retry();
  EXPECT_FALSE(feed.serving());
  EXPECT_FALSE(accepts(port)) << "listening without credentials";

  feed.update(dual_data("pw-0123456789"));
  EXPECT_TRUE(feed.serving());
  EXPECT_EQ(feed.reason(), "ready");
  EXPECT_EQ(feed.port(), port);
  EXPECT_TRUE(accepts(port));
  const std::string m = feed.metrics();
  EXPECT_NE(m.find("tenantdb_proxy_serving 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("# TYPE tenantdb_proxy_connections_total counter"), std::string::npos) << m;
  EXPECT_NE(m.find("tenantdb_proxy_failures_total{reason=\"no_credentials\"}"), std::string::npos) << m;

  feed.stop();
  EXPECT_FALSE(feed.serving());
  EXPECT_FALSE(accepts(port)) << "still listening after stop";
}

TEST_F(ProxyFeed, APortItCannotBindIsLoggedOnceReportedAndRetried) {
  const std::uint16_t port = test::unused_port();
  const int blocker = occupy(port);
  ASSERT_GE(blocker, 0);
  proxy_feed feed(settings_on(port));
  feed.update(dual_data("pw-0123456789"));
  EXPECT_FALSE(feed.serving());
  EXPECT_EQ(feed.reason(), "proxy cannot listen");
  feed.retry();
  feed.update(dual_data("pw-0123456789"));
  feed.retry();
  EXPECT_EQ(count("\"level\":\"error\""), 1u) << logged_;
  EXPECT_EQ(count("proxy cannot listen"), 1u) << logged_;
  EXPECT_NE(logged_.find(std::to_string(port)), std::string::npos) << "the log names the address: " << logged_;

  ::close(blocker);
  feed.retry();
  EXPECT_TRUE(feed.serving());
  EXPECT_EQ(feed.reason(), "ready");
  EXPECT_TRUE(accepts(port));
  feed.stop();
}

}  // namespace
}  // namespace tenantdb::sidecar
