// One request in, one answer out: kube-apiserver's filter chain (authentication, API
// Priority and Fairness where faults are injected, RequestInfo, RBAC-like authorization)
// and the REST handlers for Secrets and Leases.

#include <algorithm>
#include <cctype>

#include "kube_standin_internal.hpp"

namespace tenantdb::test::standin {
namespace {

using Query = std::map<std::string, std::string, std::less<>>;

std::string percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) != 0 &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2])) != 0) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(plus_is_space && s[i] == '+' ? ' ' : s[i]);
    }
  }
  return out;
}

/// k8s.io/apiserver's RequestInfo.
struct Info {
  bool resource_request = false;
  std::string verb;
  std::string path;
  std::string group, version, ns, resource, name, subresource;
  std::size_t parts = 0;
};

bool parse_bool(std::string_view v) {
  return v == "1" || v == "t" || v == "T" || v == "true" || v == "TRUE" || v == "True";
}

std::string_view get(const Query& q, std::string_view key) {
  const auto it = q.find(key);
  return it == q.end() ? std::string_view() : std::string_view(it->second);
}

Info request_info(std::string_view method, const std::string& path, const Query& query) {
  Info info;
  info.path = path;
  std::vector<std::string> parts;
  for (std::size_t start = 0; start <= path.size();) {
    const auto slash = path.find('/', start);
    const auto end = slash == std::string::npos ? path.size() : slash;
    if (end > start) parts.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  std::string lower(method);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](char c) { return static_cast<char>(std::tolower(c)); });
  info.verb = lower;
  const bool legacy = !parts.empty() && parts[0] == "api";
  if (parts.empty() || (parts[0] != "api" && parts[0] != "apis") || parts.size() < (legacy ? 3U : 4U)) return info;
  info.resource_request = true;
  std::size_t at = 1;
  if (!legacy) info.group = parts[at++];
  info.version = parts[at++];
  static const std::map<std::string, std::string, std::less<>> verbs = {
      {"POST", "create"}, {"GET", "get"}, {"HEAD", "get"}, {"PUT", "update"}, {"PATCH", "patch"}, {"DELETE", "delete"}};
  const auto v = verbs.find(method);
  info.verb = v == verbs.end() ? "" : v->second;
  if (parts[at] == "watch" && parts.size() > at + 1) {
    info.verb = "watch";
    ++at;
  }
  if (parts[at] == "namespaces" && parts.size() > at + 1) {
    info.ns = parts[at + 1];
    if (parts.size() > at + 2) at += 2;
  }
  info.parts = parts.size() - at;
  info.resource = parts[at];
  if (info.parts >= 2) info.name = parts[at + 1];
  if (info.parts >= 3 && info.verb != "watch") info.subresource = parts[at + 2];
  if (info.name.empty() && info.verb == "get") {
    info.verb = parse_bool(get(query, "watch")) ? "watch" : "list";
    // RBAC resourceNames apply to list/watch through an exact metadata.name selector.
    try {
      if (const Resource* r = resource_by_plural(info.resource))
        if (auto name = parse_field_selector(*r, get(query, "fieldSelector")).exact_name()) info.name = *name;
    } catch (const ApiError&) {
      // Left to the handler, which answers 400.
    }
  }
  if (info.name.empty() && info.verb == "delete") info.verb = "deletecollection";
  return info;
}

bool is_public_path(std::string_view path) {
  for (const std::string_view p : {"/healthz", "/livez", "/readyz", "/version", "/version/"})
    if (path == p) return true;
  return false;
}

bool allowed(const State& st, const Identity& id, const Info& info) {
  if (st.all_allowed.contains(id.user)) return true;
  if (std::find(id.groups.begin(), id.groups.end(), "system:masters") != id.groups.end()) return true;
  if (!info.resource_request) return info.verb == "get" && is_public_path(info.path);
  const auto rules = st.rules.find(id.user);
  if (rules == st.rules.end()) return false;
  for (const Rule& rule : rules->second) {
    if (rule.verb != "*" && rule.verb != info.verb) continue;
    if (!rule.ns.empty() && rule.ns != info.ns) continue;
    if (rule.resource != "*" && rule.resource != info.resource) continue;
    if (!rule.name.empty() && (rule.name != info.name || info.verb == "create")) continue;
    return true;
  }
  return false;
}

ApiError forbidden(const Identity& id, const Info& info) {
  // responsewriters.Forbidden + apierrors.NewForbidden.
  if (!info.resource_request) {
    ApiError e(403, "Forbidden",
               "forbidden: User " + quote(id.user) + " cannot " + info.verb + " path " + quote(info.path), Details{});
    e.headers.emplace_back("X-Content-Type-Options", "nosniff");
    return e;
  }
  std::string why = "User " + quote(id.user) + " cannot " + info.verb + " resource " + quote(info.resource) +
                    " in API group " + quote(info.group);
  why += info.ns.empty() ? " at the cluster scope" : " in the namespace " + quote(info.ns);
  const std::string gr = info.group.empty() ? info.resource : info.resource + "." + info.group;
  const std::string subject = info.name.empty() ? gr : gr + " " + quote(info.name);
  ApiError e(403, "Forbidden", subject + " is forbidden: " + why,
             Details{info.name, info.group, info.resource, {}, {}, 0});
  e.headers.emplace_back("X-Content-Type-Options", "nosniff");
  return e;
}

ApiError fault_error(const Fault& f) {
  std::optional<Details> details;
  if (f.retry_after_seconds > 0) details = Details{{}, {}, {}, {}, {}, f.retry_after_seconds};
  std::optional<ApiError> e;
  if (f.plain_text) {
    e.emplace(f.status, "",
              f.status == 429 ? "Too many requests, please try again later." : std::string(status_text(f.status)));
    e->plain_text = true;
    e->headers.emplace_back("X-Content-Type-Options", "nosniff");
  } else if (f.status == 429) {
    e.emplace(429, "TooManyRequests", "Too many requests, please try again later.", details ? details : Details{});
  } else if (f.status == 500) {
    e.emplace(internal_error("injected fault"));
  } else if (f.status == 503) {
    e.emplace(503, "ServiceUnavailable", "the server is currently unable to handle the request", details);
  } else if (f.status == 504) {
    e.emplace(504, "Timeout", "Timeout: request did not complete within requested timeout - context deadline exceeded",
              details ? details : Details{});
  } else {
    e.emplace(f.status, std::string(reason_for(f.status)),
              "injected fault: HTTP " + std::to_string(f.status) + " " + std::string(status_text(f.status)), details);
  }
  if (f.retry_after_seconds > 0) e->headers.emplace_back("Retry-After", std::to_string(f.retry_after_seconds));
  return *e;
}

std::string media_type(std::string_view content_type) {
  std::string m(content_type.substr(0, content_type.find(';')));
  m.erase(std::remove_if(m.begin(), m.end(), [](char c) { return c == ' ' || c == '\t'; }), m.end());
  std::transform(m.begin(), m.end(), m.begin(), [](char c) { return static_cast<char>(std::tolower(c)); });
  return m;
}

Response json_response(unsigned status, std::string body, const std::vector<std::string>& warnings = {}) {
  Response res;
  res.status = status;
  res.body = std::move(body);
  for (const auto& w : warnings) {
    std::string escaped;
    for (const char c : w) {
      if (c == '"' || c == '\\') escaped.push_back('\\');
      escaped.push_back(c);
    }
    res.headers.emplace_back("Warning", "299 - \"" + escaped + "\"");
  }
  return res;
}

/// Everything one REST handler needs.
struct Call {
  State& st;
  const Request& rq;
  const Info& info;
  const Query& query;
  const Identity& id;
  const Resource& r;
  std::vector<std::string> warnings;

  void need_body(bool json_only = true) const {
    if (rq.body_too_large)
      throw ApiError(413, "RequestEntityTooLarge",
                     "Request entity too large: limit is " + std::to_string(st.options.max_body_bytes), std::nullopt);
    const std::string m = media_type(rq.content_type);
    if (json_only && !m.empty() && m != "application/json")
      throw ApiError(
          415, "UnsupportedMediaType",
          "the body of the request was in an unknown format - accepted media types include: application/json",
          std::nullopt);
  }

  Json decoded_body() {
    need_body();
    Json doc;
    parse_body(r, rq.body, doc);
    decode_object(r, doc, warnings);
    return doc;
  }

  void check_namespace_exists() const {
    if (st.options.implicit_namespaces || st.namespaces.contains(info.ns)) return;
    throw ApiError(404, "NotFound", "namespaces " + quote(info.ns) + " not found",
                   Details{info.ns, {}, "namespaces", {}, {}, 0});
  }

  /// The objects' metadata.
  static JsonValue& meta(Json& doc) { return *member(doc, "metadata"); }

  /// conflict_next: a racing writer stores the object again under a new resourceVersion.
  std::shared_ptr<const Object> maybe_race(std::shared_ptr<const Object> existing) {
    if (!existing || !st.take_conflict(rq.target)) return existing;
    Json copy;
    copy.CopyFrom(*existing->doc, copy.GetAllocator());
    return st.commit(r, std::move(copy));
  }

  void check_name(Json& doc) const {
    const std::string_view name = string_member(meta(doc), "name");
    if (name != info.name)
      throw bad_request("the name of the object (" + std::string(name) + ") does not match the name on the URL (" +
                        info.name + ")");
    const std::string_view ns = string_member(meta(doc), "namespace");
    if (!ns.empty() && ns != info.ns)
      throw bad_request("the namespace of the object (" + std::string(ns) +
                        ") does not match the namespace on the URL (" + info.ns + ")");
    set_string(meta(doc), "namespace", info.ns, doc.GetAllocator());
  }

  void validate(const Json& doc, const Object* old) const {
    const auto errs = validate_object(r, doc, old != nullptr ? old->doc.get() : nullptr);
    if (!errs.empty()) throw invalid(r, string_member(*member(doc, "metadata"), "name"), errs);
  }

  Response create_from(Json doc) {
    auto& alloc = doc.GetAllocator();
    JsonValue& m = meta(doc);
    for (const char* system : {"selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"}) remove_member(m, system);
    set_string(m, "uid", new_uid(), alloc);
    set_string(m, "creationTimestamp", format_time(std::chrono::system_clock::now()), alloc);
    validate(doc, nullptr);
    const std::string name(string_member(m, "name"));
    if (st.find(r, info.ns, name)) throw already_exists(r, name);
    return json_response(201, st.commit(r, std::move(doc))->json, warnings);
  }

  /// The update path shared by PUT and PATCH, from the existing object onwards.
  Response update_to(Json doc, const Object& existing) {
    auto& alloc = doc.GetAllocator();
    JsonValue& m = meta(doc);
    const std::string name = info.name;
    if (const auto uid = string_member(m, "uid"); !uid.empty() && uid != existing.uid)
      throw conflict(
          r, name,
          "Precondition failed: UID in precondition: " + std::string(uid) + ", UID in object meta: " + existing.uid);
    const std::string current = std::to_string(existing.rv);
    if (const auto rv = string_member(m, "resourceVersion"); !rv.empty() && rv != current)
      throw conflict(r, name, optimistic_lock_message);
    set_string(m, "resourceVersion", current, alloc);
    set_string(m, "uid", existing.uid, alloc);
    set_string(m, "creationTimestamp", string_member(*member(*existing.doc, "metadata"), "creationTimestamp"), alloc);
    validate(doc, &existing);
    if (doc == *existing.doc) return json_response(200, existing.json, warnings);  // a no-op write keeps its version
    return json_response(200, st.commit(r, std::move(doc))->json, warnings);
  }

  Response do_get() {
    const auto obj = st.find(r, info.ns, info.name);
    if (!obj) throw not_found(r, info.name);
    return json_response(200, obj->json);
  }

  std::string list_body(const std::vector<std::shared_ptr<const Object>>& items, std::uint64_t rv) const {
    // Items of a list carry no kind/apiVersion; stored JSON starts with exactly those.
    const std::string prefix = R"({"kind":")" + std::string(r.kind) + R"(","apiVersion":")" + r.api_version() + "\",";
    std::string body = R"({"kind":")" + std::string(r.list_kind) + R"(","apiVersion":")" + r.api_version() +
                       R"(","metadata":{"resourceVersion":")" + std::to_string(rv) + R"("},"items":[)";
    bool first = true;
    for (const auto& obj : items) {
      if (!first) body.push_back(',');
      first = false;
      if (obj->json.starts_with(prefix))
        body.append("{").append(obj->json, prefix.size());
      else
        body.append(obj->json);
    }
    return body + "]}";
  }

  Response do_list() {
    const auto labels = parse_label_selector(get(query, "labelSelector"));
    const auto fields = parse_field_selector(r, get(query, "fieldSelector"));
    return json_response(200, list_body(st.list(r, info.ns, labels, fields), st.rv));
  }

  static std::optional<std::uint64_t> parse_rv(std::string_view text) {
    if (text.empty()) return std::nullopt;
    if (!std::all_of(text.begin(), text.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }) ||
        text.size() > 19)
      throw bad_request("resourceVersion: Invalid value: " + quote(text) + ": strconv.ParseUint: parsing " +
                        quote(text) + ": invalid syntax");
    return std::stoull(std::string(text));
  }

  Outcome do_watch(const WatchSink& sink) {
    WatchFilter filter{&r, info.ns, parse_label_selector(get(query, "labelSelector")),
                       parse_field_selector(r, get(query, "fieldSelector"))};
    if (info.parts >= 2) filter.fields.terms.push_back({"metadata.name", true, info.name});  // /watch/.../NAME
    const auto from = parse_rv(get(query, "resourceVersion"));
    std::chrono::milliseconds timeout = st.options.default_watch_timeout;
    if (const auto t = get(query, "timeoutSeconds"); !t.empty()) {
      if (!std::all_of(t.begin(), t.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }) ||
          t.size() > 9)
        throw bad_request("timeoutSeconds: Invalid value: " + quote(t) + ": strconv.ParseInt: parsing " + quote(t) +
                          ": invalid syntax");
      if (const long s = std::stol(std::string(t)); s > 0) timeout = std::chrono::seconds(s);
    }
    Outcome out;
    out.response.headers.emplace_back("Cache-Control", "no-cache, private");
    out.watch = WatchStart{st.subscribe(std::move(filter), from, sink), &r, timeout,
                           parse_bool(get(query, "allowWatchBookmarks"))};
    return out;
  }

  Response do_create() {
    Json doc = decoded_body();
    JsonValue& m = meta(doc);
    const std::string_view ns = string_member(m, "namespace");
    if (!ns.empty() && ns != info.ns)
      throw bad_request("the namespace of the provided object does not match the namespace sent on the request");
    set_string(m, "namespace", info.ns, doc.GetAllocator());
    if (string_member(m, "name").empty() && !string_member(m, "generateName").empty())
      set_string(m, "name", std::string(string_member(m, "generateName")) + random_name_suffix(), doc.GetAllocator());
    check_namespace_exists();
    if (!string_member(m, "resourceVersion").empty()) {
      // Validation runs first; then etcd3's store refuses (StatusReasonUnknown, 500).
      validate(doc, nullptr);
      throw ApiError(500, "", "resourceVersion should not be set on objects to be created", std::nullopt);
    }
    return create_from(std::move(doc));
  }

  Response do_update() {
    Json doc = decoded_body();
    check_name(doc);
    const auto existing = maybe_race(st.find(r, info.ns, info.name));
    if (existing) return update_to(std::move(doc), *existing);
    if (r.plural != "leases") throw not_found(r, info.name);
    // Leases allow create-on-update (their strategy's AllowCreateOnUpdate), which needs "create".
    Info as_create = info;
    as_create.verb = "create";
    if (!allowed(st, id, as_create)) throw forbidden(id, as_create);
    check_namespace_exists();
    remove_member(meta(doc), "resourceVersion");
    return create_from(std::move(doc));
  }

  Response do_patch() {
    need_body(false);
    if (media_type(rq.content_type) != "application/merge-patch+json")
      throw ApiError(415, "UnsupportedMediaType",
                     "the body of the request was in an unknown format - accepted media types include: "
                     "application/merge-patch+json",
                     std::nullopt);
    auto existing = st.find(r, info.ns, info.name);
    if (!existing) throw not_found(r, info.name);
    existing = maybe_race(existing);
    Json patch;
    patch.Parse(rq.body.data(), rq.body.size());
    if (patch.HasParseError() || !patch.IsObject()) throw bad_request("Invalid JSON Patch");
    Json doc;
    doc.CopyFrom(*existing->doc, doc.GetAllocator());
    merge_patch(doc, patch, doc.GetAllocator());
    decode_object(r, doc, warnings);
    check_name(doc);
    return update_to(std::move(doc), *existing);
  }

  Response do_delete() {
    const auto existing = st.find(r, info.ns, info.name);
    if (!existing) throw not_found(r, info.name);
    if (!rq.body.empty()) {
      need_body();
      Json options;
      options.Parse(rq.body.data(), rq.body.size());
      if (options.HasParseError() || !options.IsObject())
        throw bad_request(
            "the object provided is unrecognized (must be of type DeleteOptions): couldn't get "
            "version/kind; json parse error: invalid JSON");
      if (const JsonValue* pre = member(options, "preconditions"); pre != nullptr && pre->IsObject()) {
        if (const JsonValue* uid = member(*pre, "uid");
            uid != nullptr && uid->IsString() && uid->GetString() != existing->uid)
          throw conflict(r, info.name,
                         "Precondition failed: UID in precondition: " + std::string(uid->GetString()) +
                             ", UID in object meta: " + existing->uid);
        if (const JsonValue* rv = member(*pre, "resourceVersion");
            rv != nullptr && rv->IsString() && rv->GetString() != std::to_string(existing->rv))
          throw conflict(r, info.name,
                         "Precondition failed: ResourceVersion in precondition: " + std::string(rv->GetString()) +
                             ", ResourceVersion in object meta: " + std::to_string(existing->rv));
      }
    }
    st.erase(r, info.ns, info.name);
    return json_response(
        200, success_body(Details{info.name, std::string(r.group), std::string(r.plural), existing->uid, {}, 0}));
  }

  Response do_delete_collection() {
    const auto labels = parse_label_selector(get(query, "labelSelector"));
    const auto fields = parse_field_selector(r, get(query, "fieldSelector"));
    const std::uint64_t rv = st.rv;
    const auto items = st.list(r, info.ns, labels, fields);
    for (const auto& obj : items) {
      const JsonValue& m = *member(*obj->doc, "metadata");
      st.erase(r, string_member(m, "namespace"), string_member(m, "name"));
    }
    return json_response(200, list_body(items, rv));
  }
};

Response error_response(const ApiError& e) {
  Response res;
  res.status = e.code;
  res.headers = e.headers;
  if (e.plain_text) {
    res.content_type = "text/plain; charset=utf-8";
    res.body = std::string(e.what()) + "\n";
  } else {
    res.body = status_body(e.code, e.reason, e.what(), e.details);
  }
  return res;
}

Identity authenticate(const State& st, const Request& rq) {
  // The union authenticator: the x509 authenticator first, then bearer tokens.
  if (rq.cert.presented && rq.cert.verified) {
    Identity id = rq.cert.identity;
    id.groups.emplace_back("system:authenticated");
    return id;
  }
  const std::string_view auth = rq.authorization;
  if (auth.size() > 7 && (auth.substr(0, 7) == "Bearer " || auth.substr(0, 7) == "bearer ")) {
    std::string_view token = auth.substr(7);
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
    if (const auto it = st.tokens.find(token); it != st.tokens.end() && !token.empty())
      return Identity{it->second, {"system:authenticated"}};
  }
  throw ApiError(401, "Unauthorized", "Unauthorized", std::nullopt);
}

Outcome serve(State& st, const Request& rq, const Identity& id, const WatchSink& sink) {
  const std::string_view target = rq.target;
  const auto qmark = target.find('?');
  const std::string path = percent_decode(target.substr(0, qmark), false);
  Query query;
  if (qmark != std::string_view::npos) {
    std::string_view rest = target.substr(qmark + 1);
    while (!rest.empty()) {
      const auto amp = rest.find('&');
      const std::string_view pair = rest.substr(0, amp);
      const auto eq = pair.find('=');
      query.emplace(percent_decode(pair.substr(0, eq), true),
                    eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1), true));
      rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    }
  }
  const Info info = request_info(rq.method, path, query);
  if (!allowed(st, id, info)) throw forbidden(id, info);

  Outcome out;
  if (!info.resource_request) {
    if (info.path == "/healthz" || info.path == "/livez" || info.path == "/readyz") {
      out.response.content_type = "text/plain; charset=utf-8";
      out.response.body = "ok";
      out.response.headers.emplace_back("X-Content-Type-Options", "nosniff");
      return out;
    }
    if (info.path == "/version" || info.path == "/version/") {
      out.response.body = R"({"major":"1","minor":"30","gitVersion":"v1.30.0-kube-standin","gitTreeState":"clean",)"
                          R"("goVersion":"go1.22.0","compiler":"gc","platform":"linux/amd64"})";
      return out;
    }
    throw resource_not_found();
  }
  const Resource* r = find_resource(info.group, info.version, info.resource);
  if (r == nullptr || !info.subresource.empty() || info.parts > 3) throw resource_not_found();
  const ApiError method_not_allowed(405, "MethodNotAllowed",
                                    "the server does not allow this method on the requested resource", Details{});
  if (info.ns.empty() && info.verb != "list" && info.verb != "watch") {
    if (!info.name.empty()) throw resource_not_found();
    throw method_not_allowed;
  }
  Call call{st, rq, info, query, id, *r, {}};
  const bool named = info.parts >= 2;
  if (info.verb == "get")
    out.response = call.do_get();
  else if (info.verb == "list")
    out.response = call.do_list();
  else if (info.verb == "watch")
    out = call.do_watch(sink);
  else if (info.verb == "create" && !named)
    out.response = call.do_create();
  else if (info.verb == "update" && named)
    out.response = call.do_update();
  else if (info.verb == "patch" && named)
    out.response = call.do_patch();
  else if (info.verb == "delete")
    out.response = call.do_delete();
  else if (info.verb == "deletecollection")
    out.response = call.do_delete_collection();
  else
    throw method_not_allowed;
  return out;
}

}  // namespace

Outcome handle_request(State& st, const Request& rq, const WatchSink& sink) {
  const std::lock_guard lock(st.mu);
  Outcome out;
  RequestRecord rec{rq.method, rq.target, 0, {}};
  std::chrono::milliseconds stall{0};
  try {
    const Identity id = authenticate(st, rq);
    rec.user = id.user;
    if (const auto fault = st.take_fault(rq.method, rq.target)) throw fault_error(*fault);
    stall = st.take_stall(rq.method, rq.target);
    out = serve(st, rq, id, sink);
  } catch (const ApiError& e) {
    out = Outcome{};
    out.response = error_response(e);
  } catch (const std::exception& e) {
    out = Outcome{};
    out.response = error_response(internal_error(e.what()));
  }
  out.stall = stall;
  rec.status = out.response.status;
  st.log.push_back(std::move(rec));
  return out;
}

}  // namespace tenantdb::test::standin
