// tenantdb-sidecar: keeps a tenant's credential files fresh, rotates the password on a
// schedule and serves health and metrics. The flags are tenantdb::sidecar_options and the
// work is tenantdb::agent, both in common/.

#include <atomic>
#include <csignal>
#include <map>
#include <memory>
#include <string>

#include "tenantdb/agent.hpp"
#include "tenantdb/app.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/events.hpp"
#include "tenantdb/kube.hpp"
#include "tenantdb/log.hpp"
#include "tenantdb/naming.hpp"
#include "tenantdb/secret_watch.hpp"
#include "tenantdb/sidecar_options.hpp"
#include "tenantdb/store.hpp"

namespace {

int run(tenantdb::sidecar_options o) {
  using namespace tenantdb;
  log::set_level(o.log_level);
  std::unique_ptr<kube_client> client;
  std::unique_ptr<credential_store> store;
  std::unique_ptr<event_recorder> events;
  std::unique_ptr<secret_watcher> watch;
  // The agent the watch wakes when the Secret changes; set once it exists.
  std::atomic<agent*> woken{nullptr};
  if (o.local) {
    directory_options store_files;
    store_files.file_mode = o.agent.files.file_mode;
    store = make_directory_store(o.store_dir, store_files);
  } else {
    // Reads files only (kubeconfig or the service account); the first request is the
    // agent's first sync.
    client = std::make_unique<kube_client>(find_kube_config(o.kubeconfig));
    const std::string ns = resolve_namespace(o.namespace_name, client->config().namespace_name);
    if (!is_dns1123_label(ns))
      throw error(error_kind::usage, "--namespace must be a valid Kubernetes namespace name").about("--namespace");
    const std::map<std::string, std::string> labels{{"app.kubernetes.io/managed-by", "tenantdb"}};
    if (o.watch) {
      watch = std::make_unique<secret_watcher>(client->config(), ns, o.secret_name, secret_watch_options{}, [&woken] {
        if (agent* a = woken.load()) a->sync_now();
      });
      store = make_watched_secret_store(*client, ns, o.secret_name, labels, *watch, o.resync_interval);
    } else {
      store = make_secret_store(*client, ns, o.secret_name, labels);
    }
    events = std::make_unique<event_recorder>(client.get(), "tenantdb-sidecar", event_target_for(ns, o.secret_name));
    o.agent.events = events.get();
  }

  // A directory someone else can write is refused now, with one line, not at the first
  // publish: someone could swap the files under the workload (missing ones are created
  // safely later).
  check_credential_directory(o.agent.output_dir, false);
  if (o.local) check_credential_directory(o.store_dir, false);

  agent a(*store, std::move(o.agent));
  // Declared after the agent, so it runs first however run() ends: the watch thread
  // must not wake an agent that is gone.
  struct unhook {
    std::atomic<agent*>& woken;
    secret_watcher* watch;
    ~unhook() {
      woken = nullptr;
      if (watch != nullptr) watch->stop();
    }
  } guard{woken, watch.get()};
  woken = &a;
  if (watch) watch->start();
  return a.run();
}

}  // namespace

int main(int argc, char** argv) {
  tenantdb::log::set_component("sidecar");
  // Before anything holds a password: no core dumps, no /proc/PID/mem for others.
  tenantdb::harden_process();
  // Writes to a closed HTTP connection must fail with EPIPE, not end the process.
  std::signal(SIGPIPE, SIG_IGN);
  return tenantdb::run_main([&] {
    auto command = tenantdb::parse_sidecar_command_line(argc, argv);
    if (!command.options) return command.exit_code;
    return run(std::move(*command.options));
  });
}
