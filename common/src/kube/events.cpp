#include "tenantdb/events.hpp"

#include <cstdlib>
#include <utility>

#include <unistd.h>

#include "tenantdb/error.hpp"
#include "tenantdb/log.hpp"

namespace tenantdb {
namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::string(value) : std::string();
}

std::string host_name() {
  char buffer[256] = {};
  if (gethostname(buffer, sizeof buffer - 1) != 0) return {};
  return buffer;
}

}  // namespace

event_target event_target_for(const std::string& ns, const std::string& secret_name) {
  if (const std::string pod = env("POD_NAME"); !pod.empty()) {
    const std::string pod_ns = env("POD_NAMESPACE");
    return {"Pod", pod_ns.empty() ? ns : pod_ns, pod};
  }
  return {"Secret", ns, secret_name};
}

event_recorder::event_recorder(kube_client* client, std::string component, event_target target,
                               std::chrono::milliseconds timeout)
    : client_(client), component_(std::move(component)), target_(std::move(target)), timeout_(timeout) {
  instance_ = env("POD_NAME");
  if (instance_.empty()) instance_ = host_name();
  if (instance_.empty()) instance_ = component_;
  if (instance_.size() > 128) instance_.resize(128);
}

bool event_recorder::normal(const std::string& reason, const std::string& action, const std::string& message) noexcept {
  return emit("Normal", reason, action, message);
}

bool event_recorder::warning(const std::string& reason, const std::string& action,
                             const std::string& message) noexcept {
  return emit("Warning", reason, action, message);
}

bool event_recorder::warning_limited(const std::string& reason, const std::string& action, const std::string& message,
                                     std::chrono::steady_clock::duration interval) noexcept {
  try {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    const auto it = last_limited_.find(reason);
    if (it != last_limited_.end() && now - it->second < interval) return false;
    last_limited_[reason] = now;
  } catch (...) {
    return false;
  }
  return emit("Warning", reason, action, message);
}

bool event_recorder::emit(const char* type, const std::string& reason, const std::string& action,
                          const std::string& message) noexcept {
  if (client_ == nullptr || target_.name.empty()) return false;
  try {
    event_object e;
    e.namespace_name = target_.namespace_name;
    e.involved_kind = target_.kind;
    e.involved_name = target_.name;
    e.type = type;
    e.reason = reason;
    e.action = action;
    e.message = message;
    e.component = component_;
    e.instance = instance_;
    client_->create_event(e, timeout_);
    ++sent_;
    return true;
  } catch (const std::exception& e) {
    ++failed_;
    try {
      const bool first = !warned_.exchange(true);
      const char* line = "could not create a Kubernetes Event (Events are optional: the work goes on)";
      if (first)
        log::warn(line, {{"reason", reason}, {"error", e.what()}});
      else
        log::debug(line, {{"reason", reason}, {"error", e.what()}});
    } catch (...) {
    }
  } catch (...) {
    ++failed_;
  }
  return false;
}

}  // namespace tenantdb
