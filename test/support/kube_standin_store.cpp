// The stand-in's object store: one global resourceVersion counter (like etcd's
// revision), canonical JSON objects, per-resource watch history with the watch cache's
// "too old resource version" rule, watcher fan-out, selectors and injection queues.

#include <algorithm>

#include "kube_standin_internal.hpp"

namespace tenantdb::test::standin {
namespace {

/// Moves the members named in `order` to the front, in that order (Go struct order).
void reorder(JsonValue& object, std::initializer_list<std::string_view> order, Allocator& alloc) {
  if (!object.IsObject()) return;
  JsonValue out(rapidjson::kObjectType);
  // AddMember moves, leaving null names behind: scan by hand (FindMember would compare
  // against those nulls) and skip what has already moved.
  for (const auto key : order)
    for (auto& m : object.GetObject())
      if (m.name.IsString() && std::string_view(m.name.GetString(), m.name.GetStringLength()) == key) {
        out.AddMember(m.name, m.value, alloc);
        break;
      }
  for (auto& m : object.GetObject())
    if (m.name.IsString()) out.AddMember(m.name, m.value, alloc);
  object = std::move(out);
}

std::shared_ptr<Object> make_object(Json doc) {
  auto obj = std::make_shared<Object>();
  const JsonValue& meta = *member(doc, "metadata");
  obj->rv = std::stoull(std::string(string_member(meta, "resourceVersion")));
  obj->uid = string_member(meta, "uid");
  obj->type = string_member(doc, "type");
  if (const JsonValue* labels = member(meta, "labels"); labels != nullptr && labels->IsObject())
    for (const auto& m : labels->GetObject())
      obj->labels.emplace(std::string(m.name.GetString(), m.name.GetStringLength()),
                          std::string(m.value.GetString(), m.value.GetStringLength()));
  obj->json = to_json(doc);
  obj->doc = std::make_shared<const Json>(std::move(doc));
  return obj;
}

/// A copy of `obj` stamped with another resourceVersion (DELETED events carry the
/// deletion's revision).
std::shared_ptr<Object> restamp(const Object& obj, std::uint64_t rv) {
  Json copy;
  copy.CopyFrom(*obj.doc, copy.GetAllocator());
  set_string(*member(copy, "metadata"), "resourceVersion", std::to_string(rv), copy.GetAllocator());
  return make_object(std::move(copy));
}

bool passes(const WatchFilter& f, const Event& ev, const Object& obj) {
  return f.fields.matches(ev.ns, ev.name, obj.type) && f.labels.matches(obj.labels);
}

/// The line a watcher sees for `ev` (empty: nothing), following the cacher's rules for
/// objects moving into or out of a selector.
std::string filter_event(const WatchFilter& f, const Event& ev) {
  if (!f.ns.empty() && f.ns != ev.ns) return {};
  const bool now = passes(f, ev, *ev.object);
  switch (ev.type) {
    case Event::Type::added: return now ? event_line("ADDED", ev.object->json) : std::string();
    case Event::Type::deleted: return now ? event_line("DELETED", ev.object->json) : std::string();
    case Event::Type::modified: break;
  }
  const bool before = ev.prev && passes(f, ev, *ev.prev);
  if (now && before) return event_line("MODIFIED", ev.object->json);
  if (now) return event_line("ADDED", ev.object->json);
  if (before) return event_line("DELETED", restamp(*ev.prev, ev.rv)->json);
  return {};
}

bool contains(std::string_view haystack, std::string_view needle) {
  return needle.empty() || haystack.find(needle) != std::string_view::npos;
}

void record(State& st, const Resource& r, Event ev) {
  for (auto& [id, w] : st.watchers) {
    if (w.filter.resource != &r || ev.rv <= w.min_rv) continue;
    w.sink(filter_event(w.filter, ev), ev.rv);
  }
  auto& hist = st.history[std::string(r.plural)];
  hist.push_back(std::move(ev));
  while (hist.size() > st.options.watch_history) {
    st.evicted[std::string(r.plural)] = hist.front().rv;
    hist.pop_front();
  }
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

/// Splits at `sep` outside parentheses.
std::vector<std::string_view> split_top(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '(') ++depth;
    if (text[i] == ')') --depth;
    if (text[i] == sep && depth == 0) {
      out.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  out.push_back(text.substr(start));
  return out;
}

}  // namespace

// --- Selectors ------------------------------------------------------------------------

bool LabelSelector::matches(const Labels& labels) const {
  for (const auto& r : requirements) {
    const auto it = labels.find(r.key);
    const bool has = it != labels.end();
    const auto in_values = [&] {
      for (const auto& v : r.values)
        if (has && it->second == v) return true;
      return false;
    };
    switch (r.op) {
      case LabelRequirement::Op::equals:
      case LabelRequirement::Op::in:
        if (!in_values()) return false;
        break;
      case LabelRequirement::Op::not_equals:
      case LabelRequirement::Op::not_in:
        if (in_values()) return false;  // absent keys match, as in k8s
        break;
      case LabelRequirement::Op::exists:
        if (!has) return false;
        break;
      case LabelRequirement::Op::not_exists:
        if (has) return false;
        break;
    }
  }
  return true;
}

LabelSelector parse_label_selector(std::string_view text) {
  LabelSelector selector;
  if (trim(text).empty()) return selector;
  const auto check_key = [](const std::string& key) {
    const auto errs = qualified_name_errors(key);
    if (!errs.empty())
      throw bad_request("unable to parse requirement: key: Invalid value: " + quote(key) + ": " + errs[0]);
  };
  const auto check_value = [](const std::string& value) {
    const auto errs = label_value_errors(value);
    if (!errs.empty())
      throw bad_request("unable to parse requirement: values[0]: Invalid value: " + quote(value) + ": " + errs[0]);
  };
  for (const std::string_view raw : split_top(text, ',')) {
    const std::string part = trim(raw);
    LabelRequirement req;
    if (part.empty()) throw bad_request("found '', expected: !, identifier, or 'end of string'");
    if (const auto open = part.find('('); open != std::string::npos) {
      if (part.back() != ')') throw bad_request("found '" + part + "', expected: ')'");
      const std::string head = trim(std::string_view(part).substr(0, open));
      const auto space = head.find_last_of(" \t");
      const std::string op = space == std::string::npos ? "" : head.substr(space + 1);
      if (op != "in" && op != "notin") throw bad_request("found '(', expected: in, notin, =, ==, !=, gt, lt");
      req.key = trim(std::string_view(head).substr(0, space));
      req.op = op == "in" ? LabelRequirement::Op::in : LabelRequirement::Op::not_in;
      for (const auto v : split_top(std::string_view(part).substr(open + 1, part.size() - open - 2), ',')) {
        req.values.push_back(trim(v));
        check_value(req.values.back());
      }
    } else if (part.front() == '!') {
      req.key = trim(std::string_view(part).substr(1));
      req.op = LabelRequirement::Op::not_exists;
    } else if (const auto ne = part.find("!="); ne != std::string::npos) {
      req.key = trim(std::string_view(part).substr(0, ne));
      req.op = LabelRequirement::Op::not_equals;
      req.values.push_back(trim(std::string_view(part).substr(ne + 2)));
    } else if (const auto eq = part.find('='); eq != std::string::npos) {
      req.key = trim(std::string_view(part).substr(0, eq));
      const std::size_t skip = part.compare(eq, 2, "==") == 0 ? 2 : 1;
      req.values.push_back(trim(std::string_view(part).substr(eq + skip)));
    } else {
      req.key = part;
      req.op = LabelRequirement::Op::exists;
    }
    check_key(req.key);
    if (req.op == LabelRequirement::Op::equals || req.op == LabelRequirement::Op::not_equals)
      check_value(req.values.front());
    selector.requirements.push_back(std::move(req));
  }
  return selector;
}

std::optional<std::string> FieldSelector::exact_name() const {
  for (const auto& t : terms)
    if (t.field == "metadata.name" && t.equals) return t.value;
  return std::nullopt;
}

bool FieldSelector::matches(std::string_view ns, std::string_view name, std::string_view type) const {
  for (const auto& t : terms) {
    const std::string_view actual = t.field == "metadata.name" ? name : t.field == "metadata.namespace" ? ns : type;
    if ((actual == t.value) != t.equals) return false;
  }
  return true;
}

FieldSelector parse_field_selector(const Resource& r, std::string_view text) {
  FieldSelector selector;
  if (trim(text).empty()) return selector;
  // Terms separated by unescaped commas; \, \= \\ escape (k8s.io/apimachinery/pkg/fields).
  std::vector<std::string> parts(1);
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      parts.back() += text.substr(i, 2);
      ++i;
    } else if (text[i] == ',') {
      parts.emplace_back();
    } else {
      parts.back().push_back(text[i]);
    }
  }
  const auto unescape = [](std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\\' && i + 1 < s.size()) ++i;
      out.push_back(s[i]);
    }
    return out;
  };
  for (const auto& part : parts) {
    FieldSelector::Term term;
    std::size_t at = std::string::npos;
    std::size_t len = 0;
    for (std::size_t i = 0; i < part.size() && at == std::string::npos; ++i) {
      if (part[i] == '\\') {
        ++i;
      } else if (part.compare(i, 2, "!=") == 0) {
        at = i, len = 2, term.equals = false;
      } else if (part.compare(i, 2, "==") == 0) {
        at = i, len = 2;
      } else if (part[i] == '=') {
        at = i, len = 1;
      }
    }
    if (at == std::string::npos)
      throw bad_request("invalid selector: '" + std::string(text) + "'; can't understand '" + part + "'");
    term.field = unescape(std::string_view(part).substr(0, at));
    term.value = unescape(std::string_view(part).substr(at + len));
    const bool known = term.field == "metadata.name" || term.field == "metadata.namespace" ||
                       (r.plural == "secrets" && term.field == "type");
    if (!known) {
      if (r.plural == "secrets") throw bad_request("field label not supported: " + term.field);
      throw bad_request(quote(term.field) +
                        " is not a known field selector: only \"metadata.name\", \"metadata.namespace\"");
    }
    selector.terms.push_back(std::move(term));
  }
  return selector;
}

std::string event_line(std::string_view type, const std::string& object_json) {
  std::string line;
  line.reserve(object_json.size() + type.size() + 32);
  line.append(R"({"type":")").append(type).append(R"(","object":)").append(object_json).append("}\n");
  return line;
}

std::string bookmark_line(const Resource& r, std::uint64_t rv) {
  return R"({"type":"BOOKMARK","object":{"kind":")" + std::string(r.kind) + R"(","apiVersion":")" + r.api_version() +
         R"(","metadata":{"resourceVersion":")" + std::to_string(rv) + R"(","creationTimestamp":null}}})" + "\n";
}

std::shared_ptr<const Object> State::find(const Resource& r, std::string_view ns, std::string_view name) const {
  const auto it = objects.find(std::make_tuple(std::string(r.plural), std::string(ns), std::string(name)));
  return it == objects.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<const Object>> State::list(const Resource& r, std::string_view ns,
                                                       const LabelSelector& labels, const FieldSelector& fields) const {
  std::vector<std::shared_ptr<const Object>> out;
  const auto first = objects.lower_bound(std::make_tuple(std::string(r.plural), std::string(ns), std::string()));
  for (auto it = first; it != objects.end() && std::get<0>(it->first) == r.plural; ++it) {
    const auto& [plural, object_ns, name] = it->first;
    if (!ns.empty() && object_ns != ns) break;
    if (fields.matches(object_ns, name, it->second->type) && labels.matches(it->second->labels))
      out.push_back(it->second);
  }
  return out;
}

std::shared_ptr<const Object> State::commit(const Resource& r, Json doc) {
  auto& alloc = doc.GetAllocator();
  JsonValue& meta = *member(doc, "metadata");
  set_string(meta, "resourceVersion", std::to_string(++rv), alloc);
  reorder(meta,
          {"name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
           "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences", "finalizers",
           "managedFields"},
          alloc);
  reorder(doc, {"kind", "apiVersion", "metadata", "immutable", "data", "type", "spec"}, alloc);
  const std::string ns(string_member(*member(doc, "metadata"), "namespace"));
  const std::string name(string_member(*member(doc, "metadata"), "name"));
  std::shared_ptr<const Object> obj = make_object(std::move(doc));
  auto& slot = objects[std::make_tuple(std::string(r.plural), ns, name)];
  Event ev{slot ? Event::Type::modified : Event::Type::added, &r, ns, name, obj->rv, obj, slot};
  slot = obj;
  record(*this, r, std::move(ev));
  return obj;
}

std::shared_ptr<const Object> State::erase(const Resource& r, std::string_view ns, std::string_view name) {
  const auto it = objects.find(std::make_tuple(std::string(r.plural), std::string(ns), std::string(name)));
  if (it == objects.end()) return nullptr;
  std::shared_ptr<const Object> gone = restamp(*it->second, ++rv);
  objects.erase(it);
  record(*this, r, Event{Event::Type::deleted, &r, std::string(ns), std::string(name), gone->rv, gone, nullptr});
  return gone;
}

Subscription State::subscribe(WatchFilter filter, std::optional<std::uint64_t> from_rv, WatchSink sink) {
  Subscription s;
  s.rv = rv;
  const Resource& r = *filter.resource;
  if (!from_rv || *from_rv == 0) {
    // "Get state and start at most recent": synthetic ADDED events for what exists now.
    for (const auto& obj : list(r, filter.ns, filter.labels, filter.fields))
      s.backlog.push_back(event_line("ADDED", obj->json));
  } else {
    const auto& hist = history[std::string(r.plural)];
    const std::uint64_t last_evicted = evicted[std::string(r.plural)];
    const std::uint64_t oldest = last_evicted == 0 ? 1 : hist.empty() ? last_evicted + 1 : hist.front().rv;
    if (*from_rv + 1 < oldest) {
      const std::string message =
          "too old resource version: " + std::to_string(*from_rv) + " (" + std::to_string(oldest - 1) + ")";
      s.error_line = R"({"type":"ERROR","object":)" + status_body(410, "Expired", message, std::nullopt) + "}\n";
      return s;
    }
    for (const auto& ev : hist) {
      if (ev.rv <= *from_rv) continue;
      if (std::string line = filter_event(filter, ev); !line.empty()) s.backlog.push_back(std::move(line));
    }
    s.rv = std::max(rv, *from_rv);
  }
  s.id = next_watcher++;
  watchers.emplace(s.id, Watcher{std::move(filter), std::move(sink), s.rv});
  return s;
}

void State::unsubscribe(std::uint64_t id) {
  watchers.erase(id);
}

std::optional<Fault> State::take_fault(std::string_view method, std::string_view target) {
  for (auto it = faults.begin(); it != faults.end(); ++it) {
    if (!contains(target, it->path_filter) || (!it->method_filter.empty() && it->method_filter != method)) continue;
    Fault f = *it;
    if (--it->count <= 0) faults.erase(it);
    return f;
  }
  return std::nullopt;
}

std::chrono::milliseconds State::take_stall(std::string_view method, std::string_view target) {
  for (auto it = stalls.begin(); it != stalls.end(); ++it) {
    if (!contains(target, it->path_filter) || (!it->method.empty() && it->method != method)) continue;
    const auto d = it->duration;
    if (--it->count <= 0) stalls.erase(it);
    return d;
  }
  return std::chrono::milliseconds{0};
}

bool State::take_conflict(std::string_view target) {
  for (auto it = conflicts.begin(); it != conflicts.end(); ++it) {
    if (!contains(target, it->path_filter)) continue;
    if (--it->count <= 0) conflicts.erase(it);
    return true;
  }
  return false;
}

}  // namespace tenantdb::test::standin
