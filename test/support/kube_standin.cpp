// The kube-apiserver stand-in's listener on 127.0.0.1 (one Asio thread; connections are
// served by kube_standin_session.cpp) and the thread-safe public class.

#include "kube_standin.hpp"

// GCC 12 reports -Wnull-dereference inside Asio's epoll reactor
// (scheduler::compensating_work_started, inlined from perform_io) although it is a system
// header: a middle-end false positive, silenced for these includes only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#pragma GCC diagnostic pop

#include <functional>
#include <future>
#include <iostream>
#include <list>
#include <thread>

#include "kube_standin_internal.hpp"
#include "kube_standin_session.hpp"

namespace tenantdb::test {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
namespace si = standin;

struct KubeStandin::Impl {
  explicit Impl(Options o);
  void accept();
  void shutdown();  // on the io thread
  void listen();    // on `endpoint`; throws std::runtime_error

  si::State state;  // first: outlives every handler still queued in io
  si::Pki pki;
  asio::io_context io{1};
  asio::ssl::context ssl{asio::ssl::context::tls_server};
  tcp::acceptor acceptor{io};
  // Keeps io.run() going while restart() has nothing listening and no connection;
  // shutdown() lets it end.
  asio::executor_work_guard<asio::io_context::executor_type> keep_running{io.get_executor()};
  std::uint16_t port = 0;
  std::uint16_t configured_port = 0;
  std::thread thread;
  std::mutex stop_mu;
  bool stopped = false;
  std::list<std::weak_ptr<si::SessionHandle>> sessions;  // io thread only
};

KubeStandin::Impl::Impl(Options o) : state(o), pki(si::make_pki(o)) {
  ssl.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                  asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  ssl.use_certificate_chain(asio::buffer(pki.server_cert_pem));
  ssl.use_private_key(asio::buffer(pki.server_key_pem), asio::ssl::context::pem);
  si::configure_client_auth(ssl.native_handle(), pki.ca_cert_pem, o.require_client_cert);
  configured_port = o.port;
  listen();
}

void KubeStandin::Impl::listen() {
  const std::uint16_t want = port != 0 ? port : configured_port;
  const tcp::endpoint endpoint(asio::ip::make_address_v4("127.0.0.1"), want);
  try {
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(asio::socket_base::max_listen_connections);
  } catch (const boost::system::system_error& e) {
    error_code ignored;
    acceptor.close(ignored);
    throw std::runtime_error("kube-standin: cannot listen on 127.0.0.1:" + std::to_string(want) + ": " +
                             e.code().message());
  }
  port = acceptor.local_endpoint().port();
}

void KubeStandin::Impl::accept() {
  acceptor.async_accept(io, [this](error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      sessions.remove_if([](const std::weak_ptr<si::SessionHandle>& w) { return w.expired(); });
      sessions.push_back(si::start_session(std::move(socket), ssl, state));
    }
    accept();
  });
}

void KubeStandin::Impl::shutdown() {
  keep_running.reset();
  error_code ignored;
  acceptor.close(ignored);
  for (auto& weak : sessions)
    if (auto s = weak.lock()) s->shutdown();
  sessions.clear();
}

// --- Public API -----------------------------------------------------------------------

KubeStandin::KubeStandin() : KubeStandin(Options{}) {}

KubeStandin::KubeStandin(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->accept();
  impl_->thread = std::thread([impl = impl_.get()] {
    while (true) {
      try {
        impl->io.run();
        return;
      } catch (const std::exception& e) {
        std::cerr << "kube-standin: unexpected error in the server thread: " << e.what() << "\n";
      }
    }
  });
}

KubeStandin::~KubeStandin() {
  stop();
}

void KubeStandin::stop() {
  const std::lock_guard lock(impl_->stop_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  asio::post(impl_->io, [impl = impl_.get()] { impl->shutdown(); });
  if (impl_->thread.joinable()) impl_->thread.join();
}

void KubeStandin::restart(const std::function<void()>& while_down) {
  const std::lock_guard lock(impl_->stop_mu);
  if (impl_->stopped) throw std::logic_error("kube-standin: restart() after stop()");
  auto run_on_io = [this](std::function<void()> f) {
    std::promise<void> done;
    asio::post(impl_->io, [&] {
      try {
        f();
        done.set_value();
      } catch (...) {
        done.set_exception(std::current_exception());
      }
    });
    done.get_future().get();
  };
  run_on_io([impl = impl_.get()] {
    error_code ignored;
    impl->acceptor.close(ignored);
    for (auto& weak : impl->sessions)
      if (auto s = weak.lock()) s->abort();
    impl->sessions.clear();
  });
  const auto listen_again = [&] {
    run_on_io([impl = impl_.get()] {
      impl->listen();
      impl->accept();
    });
  };
  try {
    if (while_down) while_down();
  } catch (...) {
    listen_again();
    throw;
  }
  listen_again();
}

std::uint16_t KubeStandin::port() const {
  return impl_->port;
}
std::string KubeStandin::url() const {
  return "https://127.0.0.1:" + std::to_string(impl_->port);
}
std::string KubeStandin::ca_pem() const {
  return impl_->pki.ca_cert_pem;
}

KubeStandin::ClientCert KubeStandin::issue_client_cert(std::string_view common_name,
                                                       const std::vector<std::string>& organizations) {
  return si::issue_client_cert(impl_->pki, common_name, organizations);
}

void KubeStandin::add_token(std::string token, std::string user) {
  const std::lock_guard lock(impl_->state.mu);
  impl_->state.tokens.insert_or_assign(std::move(token), std::move(user));
}

void KubeStandin::remove_token(std::string_view token) {
  const std::lock_guard lock(impl_->state.mu);
  if (const auto it = impl_->state.tokens.find(token); it != impl_->state.tokens.end()) impl_->state.tokens.erase(it);
}

void KubeStandin::allow(std::string user, std::string verb, std::string ns, std::string resource, std::string name) {
  static const std::set<std::string, std::less<>> verbs = {
      "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "*"};
  if (!verbs.contains(verb)) throw std::invalid_argument("kube-standin: allow(): unknown verb \"" + verb + "\"");
  const std::lock_guard lock(impl_->state.mu);
  impl_->state.rules[std::move(user)].push_back({std::move(verb), std::move(ns), std::move(resource), std::move(name)});
}

void KubeStandin::allow_all(std::string user) {
  const std::lock_guard lock(impl_->state.mu);
  impl_->state.all_allowed.insert(std::move(user));
}

void KubeStandin::revoke(std::string_view user) {
  const std::lock_guard lock(impl_->state.mu);
  if (const auto it = impl_->state.rules.find(user); it != impl_->state.rules.end()) impl_->state.rules.erase(it);
  if (const auto it = impl_->state.all_allowed.find(user); it != impl_->state.all_allowed.end())
    impl_->state.all_allowed.erase(it);
}

void KubeStandin::add_namespace(std::string ns) {
  const std::lock_guard lock(impl_->state.mu);
  impl_->state.namespaces.insert(std::move(ns));
}

std::string KubeStandin::put_object(std::string_view json) {
  si::Json doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject())
    throw std::invalid_argument("kube-standin: put_object(): not a JSON object");
  const si::Resource* r = si::resource_by_kind(si::string_member(doc, "kind"));
  if (r == nullptr) throw std::invalid_argument("kube-standin: put_object(): kind must be Secret, Lease or Event");
  std::vector<std::string> warnings;
  try {
    si::decode_object(*r, doc, warnings);
  } catch (const si::ApiError& e) {
    throw std::invalid_argument(std::string("kube-standin: put_object(): ") + e.what());
  }
  si::JsonValue& meta = *si::member(doc, "metadata");
  const std::string name(si::string_member(meta, "name"));
  const std::string ns(si::string_member(meta, "namespace"));
  if (name.empty() || ns.empty())
    throw std::invalid_argument("kube-standin: put_object(): metadata.name and metadata.namespace are required");
  const std::lock_guard lock(impl_->state.mu);
  const auto existing = impl_->state.find(*r, ns, name);
  const si::JsonValue* old_meta = existing ? si::member(*existing->doc, "metadata") : nullptr;
  for (const char* field : {"uid", "creationTimestamp"}) {
    if (!si::string_member(meta, field).empty()) continue;
    const std::string value = old_meta != nullptr                ? std::string(si::string_member(*old_meta, field))
                              : std::string_view(field) == "uid" ? si::new_uid()
                                                                 : si::format_time(std::chrono::system_clock::now());
    si::set_string(meta, field, value, doc.GetAllocator());
  }
  return impl_->state.commit(*r, std::move(doc))->json;
}

std::optional<std::string> KubeStandin::get_object(std::string_view resource, std::string_view ns,
                                                   std::string_view name) const {
  const si::Resource* r = si::resource_by_plural(resource);
  if (r == nullptr) return std::nullopt;
  const std::lock_guard lock(impl_->state.mu);
  const auto obj = impl_->state.find(*r, ns, name);
  if (!obj) return std::nullopt;
  return obj->json;
}

std::vector<std::string> KubeStandin::list_objects(std::string_view resource, std::string_view ns) const {
  std::vector<std::string> out;
  const si::Resource* r = si::resource_by_plural(resource);
  if (r == nullptr) return out;
  const std::lock_guard lock(impl_->state.mu);
  for (const auto& obj : impl_->state.list(*r, ns, {}, {})) out.push_back(obj->json);
  return out;
}

bool KubeStandin::delete_object(std::string_view resource, std::string_view ns, std::string_view name) {
  const si::Resource* r = si::resource_by_plural(resource);
  if (r == nullptr) return false;
  const std::lock_guard lock(impl_->state.mu);
  return impl_->state.erase(*r, ns, name) != nullptr;
}

std::optional<std::string> KubeStandin::secret_value(std::string_view ns, std::string_view name,
                                                     std::string_view key) const {
  const std::lock_guard lock(impl_->state.mu);
  const auto obj = impl_->state.find(si::secrets_resource(), ns, name);
  if (!obj) return std::nullopt;
  const si::JsonValue* data = si::member(*obj->doc, "data");
  const si::JsonValue* value = data != nullptr ? si::member(*data, key) : nullptr;
  if (value == nullptr || !value->IsString()) return std::nullopt;
  std::size_t bad_at = 0;
  return si::base64_decode({value->GetString(), value->GetStringLength()}, bad_at);
}

std::uint64_t KubeStandin::resource_version() const {
  const std::lock_guard lock(impl_->state.mu);
  return impl_->state.rv;
}

std::size_t KubeStandin::active_watches() const {
  const std::lock_guard lock(impl_->state.mu);
  return impl_->state.watchers.size();
}

void KubeStandin::fail_next(int count, unsigned http_status, std::string path_filter, int retry_after_seconds) {
  Fault f;
  f.count = count;
  f.status = http_status;
  f.path_filter = std::move(path_filter);
  f.retry_after_seconds = retry_after_seconds;
  fail_next(std::move(f));
}

void KubeStandin::fail_next(Fault fault) {
  if (fault.count <= 0) return;
  const std::lock_guard lock(impl_->state.mu);
  impl_->state.faults.push_back(std::move(fault));
}

void KubeStandin::stall_next(int count, std::chrono::milliseconds duration, std::string path_filter,
                             std::string method) {
  if (count <= 0) return;
  const std::lock_guard lock(impl_->state.mu);
  impl_->state.stalls.push_back({count, duration, std::move(path_filter), std::move(method)});
}

void KubeStandin::conflict_next(int count, std::string path_filter) {
  if (count <= 0) return;
  const std::lock_guard lock(impl_->state.mu);
  impl_->state.conflicts.push_back({count, std::move(path_filter)});
}

void KubeStandin::clear_faults() {
  const std::lock_guard lock(impl_->state.mu);
  impl_->state.faults.clear();
  impl_->state.stalls.clear();
  impl_->state.conflicts.clear();
}

std::vector<KubeStandin::RequestRecord> KubeStandin::requests() const {
  const std::lock_guard lock(impl_->state.mu);
  return impl_->state.log;
}

std::size_t KubeStandin::request_count(std::string_view method, std::string_view path_substring) const {
  const std::lock_guard lock(impl_->state.mu);
  std::size_t n = 0;
  for (const auto& r : impl_->state.log)
    if ((method.empty() || r.method == method) && r.target.find(path_substring) != std::string::npos) ++n;
  return n;
}

void KubeStandin::clear_requests() {
  const std::lock_guard lock(impl_->state.mu);
  impl_->state.log.clear();
}

}  // namespace tenantdb::test
