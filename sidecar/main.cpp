// tenantdb-sidecar: keeps a tenant's credential files fresh, rotates the password on a
// schedule and serves health and metrics. The flags are tenantdb::sidecar_options and the
// work is tenantdb::agent, both in common/.

#include <csignal>
#include <memory>

#include "tenantdb/agent.hpp"
#include "tenantdb/app.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/events.hpp"
#include "tenantdb/kube.hpp"
#include "tenantdb/log.hpp"
#include "tenantdb/naming.hpp"
#include "tenantdb/sidecar_options.hpp"
#include "tenantdb/store.hpp"

namespace {

int run(tenantdb::sidecar_options o) {
  using namespace tenantdb;
  log::set_level(o.log_level);
  std::unique_ptr<kube_client> client;
  std::unique_ptr<credential_store> store;
  std::unique_ptr<event_recorder> events;
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
    store = make_secret_store(*client, ns, o.secret_name, {{"app.kubernetes.io/managed-by", "tenantdb"}});
    events = std::make_unique<event_recorder>(client.get(), "tenantdb-sidecar", event_target_for(ns, o.secret_name));
    o.agent.events = events.get();
  }

  // A directory someone else can write is refused now, with one line, not at the first
  // publish: someone could swap the files under the workload (missing ones are created
  // safely later).
  check_credential_directory(o.agent.output_dir, false);
  if (o.local) check_credential_directory(o.store_dir, false);

  agent a(*store, std::move(o.agent));
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
