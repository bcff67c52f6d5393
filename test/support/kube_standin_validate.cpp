// Decoding (400 BadRequest) and validation (422 Invalid) of Secrets and Leases, with the
// messages of k8s.io/apimachinery's validation package and kube-apiserver's codecs.

#include <rapidjson/error/en.h>

#include <algorithm>
#include <cctype>

#include "kube_standin_internal.hpp"

namespace tenantdb::test::standin {
namespace {

constexpr std::string_view dns1123_label_fmt = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
constexpr std::string_view dns1123_subdomain_fmt = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
constexpr std::string_view qualified_name_fmt = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
constexpr std::string_view label_value_fmt = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
constexpr std::string_view config_key_fmt = "[-._a-zA-Z0-9]+";
constexpr std::string_view micro_time_layout = "2006-01-02T15:04:05.000000Z07:00";
constexpr std::size_t max_secret_size = 1024 * 1024;
constexpr std::size_t max_annotations_size = 256 * 1024;

/// validation.RegexError: note the double space kube-apiserver prints between examples.
std::string regex_error(std::string_view msg, std::string_view fmt, std::initializer_list<std::string_view> examples) {
  std::string out(msg);
  out += " (e.g. ";
  bool first = true;
  for (const auto e : examples) {
    if (!first) out += " or ";
    first = false;
    out += "'" + std::string(e) + "', ";
  }
  return out + "regex used for validation is '" + std::string(fmt) + "')";
}

std::string max_len_error(std::size_t n) {
  return "must be no more than " + std::to_string(n) + " characters";
}

bool lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool alnum(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0;
}

bool is_dns1123_label(std::string_view s) {
  if (s.empty() || !lower_alnum(s.front()) || !lower_alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return lower_alnum(c) || c == '-'; });
}

bool is_dns1123_subdomain(std::string_view s) {
  if (s.empty()) return false;
  std::size_t start = 0;
  while (true) {
    const auto dot = s.find('.', start);
    if (!is_dns1123_label(s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start)))
      return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

/// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], or empty when allow_empty.
bool is_qualified_token(std::string_view s, bool allow_empty) {
  if (s.empty()) return allow_empty;
  if (!alnum(s.front()) || !alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return alnum(c) || c == '-' || c == '_' || c == '.'; });
}

const char* json_type(const JsonValue& v) {
  if (v.IsString()) return "string";
  if (v.IsNumber()) return "number";
  if (v.IsBool()) return "bool";
  if (v.IsArray()) return "array";
  if (v.IsObject()) return "object";
  return "null";
}

std::string summarize(std::string_view body) {
  static constexpr std::size_t max = 30;
  if (body.empty()) return "<empty>";
  if (body.front() == '{') return body.size() > max ? std::string(body.substr(0, max)) + " ..." : std::string(body);
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex;
  for (const char c : body.substr(0, max)) {
    hex.push_back(digits[static_cast<unsigned char>(c) >> 4]);
    hex.push_back(digits[static_cast<unsigned char>(c) & 0xf]);
  }
  return body.size() > max ? hex + " ..." : hex;
}

/// Decoding context: builds "<Kind> in version "v1" cannot be handled as a <Kind>: ..." errors.
struct Decoder {
  const Resource& r;
  std::vector<std::string>& warnings;

  [[noreturn]] void fail(const std::string& why) const {
    throw bad_request(std::string(r.kind) + " in version \"" + std::string(r.version) + "\" cannot be handled as a " +
                      std::string(r.kind) + ": " + why);
  }
  [[noreturn]] void type_error(const JsonValue& v, std::string_view go_struct, std::string_view path,
                               std::string_view go_type) const {
    fail("json: cannot unmarshal " + std::string(json_type(v)) + " into Go struct field " + std::string(go_struct) +
         "." + std::string(path) + " of type " + std::string(go_type));
  }

  /// Drops members not in `known`, warning like fieldValidation=Warn does.
  void drop_unknown(JsonValue& object, std::string_view prefix, std::initializer_list<std::string_view> known) const {
    for (auto it = object.MemberBegin(); it != object.MemberEnd();) {
      const std::string_view key(it->name.GetString(), it->name.GetStringLength());
      if (std::find(known.begin(), known.end(), key) != known.end()) {
        ++it;
        continue;
      }
      warnings.push_back("unknown field \"" + std::string(prefix) + std::string(key) + "\"");
      it = object.EraseMember(it);
    }
  }

  /// Type-checks optional members: nulls are removed, as Go leaves the zero value.
  void strings(JsonValue& object, std::string_view go_struct, std::string_view prefix,
               std::initializer_list<std::string_view> names) const {
    for (const auto name : names) {
      JsonValue* v = member(object, name);
      if (v == nullptr) continue;
      if (v->IsNull()) {
        remove_member(object, name);
      } else if (!v->IsString()) {
        type_error(*v, go_struct, std::string(prefix) + std::string(name), "string");
      }
    }
  }

  void integer(JsonValue& object, std::string_view go_struct, std::string_view path, std::string_view name,
               bool int32) const {
    JsonValue* v = member(object, name);
    if (v == nullptr) return;
    if (v->IsNull()) {
      remove_member(object, name);
      return;
    }
    const bool ok = int32 ? v->IsInt() : v->IsInt64();
    if (!ok) {
      if (v->IsNumber())
        fail("json: cannot unmarshal number " + to_json(*v) + " into Go struct field " + std::string(go_struct) + "." +
             std::string(path) + " of type " + (int32 ? "int32" : "int64"));
      type_error(*v, go_struct, path, int32 ? "int32" : "int64");
    }
  }

  void string_map(JsonValue& object, std::string_view name, std::string_view go_struct, std::string_view path,
                  std::string_view go_type) const {
    JsonValue* v = member(object, name);
    if (v == nullptr) return;
    if (v->IsNull()) {
      remove_member(object, name);
      return;
    }
    if (!v->IsObject()) type_error(*v, go_struct, path, "map[string]" + std::string(go_type));
    for (auto& m : v->GetObject())
      if (!m.value.IsString()) {
        if (m.value.IsNull()) {
          m.value.SetString("");  // a nil []byte, stored as empty
          continue;
        }
        type_error(m.value, go_struct, path, go_type);
      }
  }

  void time(JsonValue& object, std::string_view name, std::string_view go_struct, std::string_view path, bool micro,
            Allocator& alloc) const {
    JsonValue* v = member(object, name);
    if (v == nullptr) return;
    if (v->IsNull()) {
      remove_member(object, name);
      return;
    }
    if (!v->IsString()) type_error(*v, go_struct, path, micro ? "v1.MicroTime" : "v1.Time");
    const std::string_view text(v->GetString(), v->GetStringLength());
    const auto micros = parse_time_micros(text);
    // metav1.MicroTime parses with RFC3339Micro: exactly six fractional digits.
    const bool six_digits = text.size() > 26 && text[19] == '.' &&
                            std::all_of(text.begin() + 20, text.begin() + 26,
                                        [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }) &&
                            (text[26] == 'Z' || text[26] == '+' || text[26] == '-');
    if (!micros || (micro && !six_digits)) {
      const std::string layout(micro ? micro_time_layout : "2006-01-02T15:04:05Z07:00");
      const std::string rest = micros && text.size() >= 19 ? std::string(text.substr(19)) : std::string(text);
      const std::string elem = micros ? ".000000" : "2006";
      fail("parsing time " + quote(text) + " as " + quote(layout) + ": cannot parse " + quote(rest) + " as " +
           quote(elem));
    }
    const std::string normal =
        micro ? format_micro_time(*micros)
              : format_time(std::chrono::system_clock::time_point(std::chrono::seconds(*micros / 1'000'000)));
    v->SetString(normal.data(), static_cast<rapidjson::SizeType>(normal.size()), alloc);
  }

  void metadata(JsonValue& doc, Allocator& alloc) const {
    JsonValue* meta = member(doc, "metadata");
    if (meta == nullptr) return;
    if (meta->IsNull()) {
      remove_member(doc, "metadata");
      return;
    }
    if (!meta->IsObject()) type_error(*meta, r.kind, "metadata", "v1.ObjectMeta");
    drop_unknown(*meta, "metadata.",
                 {"name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
                  "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
                  "ownerReferences", "finalizers", "managedFields"});
    strings(*meta, "ObjectMeta", "metadata.",
            {"name", "generateName", "namespace", "selfLink", "uid", "resourceVersion"});
    integer(*meta, "ObjectMeta", "metadata.generation", "generation", false);
    integer(*meta, "ObjectMeta", "metadata.deletionGracePeriodSeconds", "deletionGracePeriodSeconds", false);
    time(*meta, "creationTimestamp", "ObjectMeta", "metadata.creationTimestamp", false, alloc);
    time(*meta, "deletionTimestamp", "ObjectMeta", "metadata.deletionTimestamp", false, alloc);
    string_map(*meta, "labels", "ObjectMeta", "metadata.labels", "string");
    string_map(*meta, "annotations", "ObjectMeta", "metadata.annotations", "string");
    for (const char* list : {"finalizers", "ownerReferences", "managedFields"}) {
      JsonValue* v = member(*meta, list);
      if (v == nullptr) continue;
      if (v->IsNull()) {
        remove_member(*meta, list);
      } else if (!v->IsArray()) {
        type_error(*v, "ObjectMeta", std::string("metadata.") + list, "[]" + std::string(list));
      }
    }
    if (const JsonValue* f = member(*meta, "finalizers"))
      for (const auto& item : f->GetArray())
        if (!item.IsString()) type_error(item, "ObjectMeta", "metadata.finalizers", "string");
    if (const JsonValue* rv = member(*meta, "resourceVersion");
        rv != nullptr && rv->GetStringLength() > 0 &&
        !std::all_of(rv->GetString(), rv->GetString() + rv->GetStringLength(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }))
      throw bad_request("invalid resource version: strconv.ParseUint: parsing " +
                        quote({rv->GetString(), rv->GetStringLength()}) + ": invalid syntax");
  }

  void secret(JsonValue& doc, Allocator& alloc) const {
    drop_unknown(doc, "", {"kind", "apiVersion", "metadata", "immutable", "data", "stringData", "type"});
    string_map(doc, "data", "Secret", "data", "[]uint8");
    string_map(doc, "stringData", "Secret", "stringData", "string");
    strings(doc, "Secret", "", {"type"});
    if (JsonValue* v = member(doc, "immutable"); v != nullptr) {
      if (v->IsNull())
        remove_member(doc, "immutable");
      else if (!v->IsBool())
        type_error(*v, "Secret", "immutable", "bool");
    }
    if (const JsonValue* data = member(doc, "data"))
      for (const auto& m : data->GetObject()) {
        std::size_t bad_at = 0;
        if (!base64_decode({m.value.GetString(), m.value.GetStringLength()}, bad_at))
          fail("illegal base64 data at input byte " + std::to_string(bad_at));
      }
    // stringData is write-only: merged into data (winning over it) and dropped.
    if (JsonValue* sd = member(doc, "stringData")) {
      if (member(doc, "data") == nullptr) set_member(doc, "data", JsonValue(rapidjson::kObjectType), alloc);
      JsonValue& data = *member(doc, "data");
      for (const auto& m : sd->GetObject())
        set_string(data, {m.name.GetString(), m.name.GetStringLength()},
                   base64_encode({m.value.GetString(), m.value.GetStringLength()}), alloc);
      remove_member(doc, "stringData");
    }
    if (string_member(doc, "type").empty()) set_string(doc, "type", "Opaque", alloc);
  }

  void lease(JsonValue& doc, Allocator& alloc) const {
    drop_unknown(doc, "", {"kind", "apiVersion", "metadata", "spec"});
    JsonValue* spec = member(doc, "spec");
    if (spec == nullptr) return;
    if (spec->IsNull()) {
      remove_member(doc, "spec");
      return;
    }
    if (!spec->IsObject()) type_error(*spec, "Lease", "spec", "v1.LeaseSpec");
    drop_unknown(*spec, "spec.",
                 {"holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime", "leaseTransitions", "strategy",
                  "preferredHolder"});
    strings(*spec, "LeaseSpec", "spec.", {"holderIdentity", "strategy", "preferredHolder"});
    integer(*spec, "LeaseSpec", "spec.leaseDurationSeconds", "leaseDurationSeconds", true);
    integer(*spec, "LeaseSpec", "spec.leaseTransitions", "leaseTransitions", true);
    time(*spec, "acquireTime", "LeaseSpec", "spec.acquireTime", true, alloc);
    time(*spec, "renewTime", "LeaseSpec", "spec.renewTime", true, alloc);
  }

  /// An ObjectReference member (involvedObject, related): strings only.
  void object_reference(JsonValue& doc, std::string_view name) const {
    JsonValue* ref = member(doc, name);
    if (ref == nullptr) return;
    if (ref->IsNull()) {
      remove_member(doc, name);
      return;
    }
    if (!ref->IsObject()) type_error(*ref, "Event", name, "v1.ObjectReference");
    const std::string prefix = std::string(name) + ".";
    drop_unknown(*ref, prefix, {"kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"});
    strings(*ref, "ObjectReference", prefix,
            {"kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"});
  }

  /// core/v1 Event (k8s.io/api/core/v1 types.go).
  void event(JsonValue& doc, Allocator& alloc) const {
    drop_unknown(doc, "",
                 {"kind", "apiVersion", "metadata", "involvedObject", "reason", "message", "source", "firstTimestamp",
                  "lastTimestamp", "count", "type", "eventTime", "series", "action", "related", "reportingComponent",
                  "reportingInstance"});
    object_reference(doc, "involvedObject");
    object_reference(doc, "related");
    strings(doc, "Event", "", {"reason", "message", "type", "action", "reportingComponent", "reportingInstance"});
    integer(doc, "Event", "count", "count", true);
    time(doc, "firstTimestamp", "Event", "firstTimestamp", false, alloc);
    time(doc, "lastTimestamp", "Event", "lastTimestamp", false, alloc);
    time(doc, "eventTime", "Event", "eventTime", true, alloc);
    for (const char* name : {"source", "series"}) {
      JsonValue* v = member(doc, name);
      if (v == nullptr) continue;
      if (v->IsNull()) {
        remove_member(doc, name);
        continue;
      }
      if (!v->IsObject())
        type_error(*v, "Event", name, std::string(name) == "source" ? "v1.EventSource" : "v1.EventSeries");
    }
    if (JsonValue* source = member(doc, "source")) {
      drop_unknown(*source, "source.", {"component", "host"});
      strings(*source, "EventSource", "source.", {"component", "host"});
    }
    if (JsonValue* series = member(doc, "series")) {
      drop_unknown(*series, "series.", {"count", "lastObservedTime"});
      integer(*series, "EventSeries", "series.count", "count", true);
      time(*series, "lastObservedTime", "EventSeries", "series.lastObservedTime", true, alloc);
    }
  }
};

std::size_t decoded_size(const JsonValue& b64) {
  const std::size_t n = b64.GetStringLength();
  const char* s = b64.GetString();
  std::size_t chars = 0;
  std::size_t pad = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (s[i] == '=')
      ++pad;
    else if (s[i] != '\r' && s[i] != '\n')
      ++chars;
  }
  return (chars + pad) / 4 * 3 - pad;
}

void validate_meta(const JsonValue& object, std::vector<FieldError>& errs) {
  const JsonValue* meta = member(object, "metadata");
  static const JsonValue empty(rapidjson::kObjectType);
  if (meta == nullptr) meta = &empty;
  const std::string_view name = string_member(*meta, "name");
  if (name.empty() && string_member(*meta, "generateName").empty()) {
    errs.push_back(field_required("metadata.name", "name or generateName is required"));
  } else {
    for (auto& m : dns1123_subdomain_errors(name)) errs.push_back(field_invalid("metadata.name", name, std::move(m)));
  }
  const std::string_view ns = string_member(*meta, "namespace");
  if (ns.empty()) {
    errs.push_back(field_required("metadata.namespace", ""));
  } else {
    for (auto& m : dns1123_label_errors(ns)) errs.push_back(field_invalid("metadata.namespace", ns, std::move(m)));
  }
  if (const JsonValue* labels = member(*meta, "labels"); labels != nullptr && labels->IsObject()) {
    for (const auto& m : labels->GetObject()) {
      const std::string_view k(m.name.GetString(), m.name.GetStringLength());
      const std::string_view v(m.value.GetString(), m.value.GetStringLength());
      for (auto& e : qualified_name_errors(k)) errs.push_back(field_invalid("metadata.labels", k, std::move(e)));
      for (auto& e : label_value_errors(v)) errs.push_back(field_invalid("metadata.labels", v, std::move(e)));
    }
  }
  if (const JsonValue* ann = member(*meta, "annotations"); ann != nullptr && ann->IsObject()) {
    std::size_t total = 0;
    for (const auto& m : ann->GetObject()) {
      const std::string_view k(m.name.GetString(), m.name.GetStringLength());
      std::string lower(k);
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
      for (auto& e : qualified_name_errors(lower))
        errs.push_back(field_invalid("metadata.annotations", k, std::move(e)));
      total += k.size() + m.value.GetStringLength();
    }
    if (total > max_annotations_size) errs.push_back(field_too_long("metadata.annotations", max_annotations_size));
  }
}

/// pkg/apis/core/validation/events.go, legacyValidateEvent, as a core/v1 create sees it:
/// the involved object must be in the Event's namespace; an Event with eventTime set (a
/// "new" Event) must also name its reporter, action and reason, within the length limits.
void validate_event(const JsonValue& object, std::vector<FieldError>& errs) {
  static constexpr std::size_t reason_limit = 128;
  static constexpr std::size_t action_limit = 128;
  static constexpr std::size_t reporting_instance_limit = 128;
  static constexpr std::size_t note_limit = 1024;
  static const JsonValue empty(rapidjson::kObjectType);
  const JsonValue* meta = member(object, "metadata");
  const std::string_view ns = meta != nullptr ? string_member(*meta, "namespace") : std::string_view();
  const JsonValue* involved = member(object, "involvedObject");
  if (involved == nullptr) involved = &empty;
  const std::string_view involved_ns = string_member(*involved, "namespace");
  const bool new_style = !string_member(object, "eventTime").empty();
  const auto mismatch = [&] {
    errs.push_back(field_invalid("involvedObject.namespace", involved_ns, "does not match event.namespace"));
  };
  if (!new_style) {
    if (involved_ns.empty() ? (!ns.empty() && ns != "default") : ns != involved_ns) mismatch();
    return;
  }
  if (involved_ns.empty() ? (ns != "default" && ns != "kube-system") : false) mismatch();
  const std::string_view controller = string_member(object, "reportingComponent");
  if (controller.empty()) errs.push_back(field_required("reportingComponent", ""));
  for (auto& e : qualified_name_errors(controller))
    errs.push_back(field_invalid("reportingComponent", controller, std::move(e)));
  const auto limited = [&](const char* field, std::size_t limit, bool required) {
    const std::string_view value = string_member(object, field);
    if (required && value.empty()) errs.push_back(field_required(field, ""));
    if (value.size() > limit)
      errs.push_back(field_invalid(field, "", "can have at most " + std::to_string(limit) + " characters"));
  };
  limited("reportingInstance", reporting_instance_limit, true);
  limited("action", action_limit, true);
  limited("reason", reason_limit, true);
  limited("message", note_limit, false);
}
}  // namespace

std::vector<std::string> dns1123_label_errors(std::string_view value) {
  std::vector<std::string> errs;
  if (value.size() > 63) errs.push_back(max_len_error(63));
  if (!is_dns1123_label(value))
    errs.push_back(
        regex_error("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                    "and must start and end with an alphanumeric character",
                    dns1123_label_fmt, {"my-name", "123-abc"}));
  return errs;
}

std::vector<std::string> dns1123_subdomain_errors(std::string_view value) {
  std::vector<std::string> errs;
  if (value.size() > 253) errs.push_back(max_len_error(253));
  if (!is_dns1123_subdomain(value))
    errs.push_back(
        regex_error("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
                    "or '.', and must start and end with an alphanumeric character",
                    dns1123_subdomain_fmt, {"example.com"}));
  return errs;
}

std::vector<std::string> config_key_errors(std::string_view value) {
  std::vector<std::string> errs;
  if (value.size() > 253) errs.push_back(max_len_error(253));
  const bool ok = !value.empty() && std::all_of(value.begin(), value.end(),
                                                [](char c) { return alnum(c) || c == '-' || c == '_' || c == '.'; });
  if (!ok)
    errs.push_back(regex_error("a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                               config_key_fmt, {"key.name", "KEY_NAME", "key-name"}));
  if (value == ".")
    errs.emplace_back("must not be '.'");
  else if (value == "..")
    errs.emplace_back("must not be '..'");
  else if (value.starts_with(".."))
    errs.emplace_back("must not start with '..'");
  return errs;
}

std::vector<std::string> qualified_name_errors(std::string_view value) {
  static const std::string name_msg = regex_error(
      "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
      "alphanumeric character",
      qualified_name_fmt, {"MyName", "my.name", "123-abc"});
  std::vector<std::string> errs;
  std::string_view name = value;
  if (const auto slash = value.find('/'); slash != std::string_view::npos) {
    if (value.find('/', slash + 1) != std::string_view::npos) {
      errs.push_back("a qualified name " + name_msg +
                     " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')");
      return errs;
    }
    const std::string_view prefix = value.substr(0, slash);
    name = value.substr(slash + 1);
    if (prefix.empty())
      errs.emplace_back("prefix part must be non-empty");
    else
      for (const auto& m : dns1123_subdomain_errors(prefix)) errs.push_back("prefix part " + m);
  }
  if (name.empty())
    errs.emplace_back("name part must be non-empty");
  else if (name.size() > 63)
    errs.push_back("name part " + max_len_error(63));
  if (!name.empty() && !is_qualified_token(name, false)) errs.push_back("name part " + name_msg);
  return errs;
}

std::vector<std::string> label_value_errors(std::string_view value) {
  std::vector<std::string> errs;
  if (value.size() > 63) errs.push_back(max_len_error(63));
  if (!is_qualified_token(value, true))
    errs.push_back(
        regex_error("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
                    "or '.', and must start and end with an alphanumeric character",
                    label_value_fmt, {"MyValue", "my_value", "12345"}));
  return errs;
}

void parse_body(const Resource& r, std::string_view body, Json& doc) {
  const std::string prefix = "the object provided is unrecognized (must be of type " + std::string(r.kind) +
                             "): couldn't get version/kind; json parse error: ";
  if (body.empty()) throw bad_request(prefix + "unexpected end of JSON input (" + summarize(body) + ")");
  doc.Parse(body.data(), body.size());
  if (doc.HasParseError()) {
    std::string why = rapidjson::GetParseError_En(doc.GetParseError());
    if (!why.empty()) why[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(why[0])));
    if (!why.empty() && why.back() == '.') why.pop_back();
    throw bad_request(prefix + why + " at offset " + std::to_string(doc.GetErrorOffset()) + " (" + summarize(body) +
                      ")");
  }
  if (!doc.IsObject())
    throw bad_request(prefix + "json: cannot unmarshal " + json_type(doc) +
                      " into Go value of type struct { APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind "
                      "string \"json:\\\"kind,omitempty\\\"\" } (" +
                      summarize(body) + ")");
  for (const char* key : {"apiVersion", "kind"})
    if (const JsonValue* v = member(doc, key); v != nullptr && !v->IsString() && !v->IsNull())
      throw bad_request(prefix + "json: cannot unmarshal " + json_type(*v) + " into Go struct field ." + key +
                        " of type string (" + summarize(body) + ")");
}

void decode_object(const Resource& r, Json& doc, std::vector<std::string>& warnings) {
  const Decoder d{r, warnings};
  const std::string kind(string_member(doc, "kind"));
  const std::string api_version(string_member(doc, "apiVersion"));
  if ((!kind.empty() && kind != r.kind) || (!api_version.empty() && api_version != r.api_version())) {
    const std::string k = kind.empty() ? std::string(r.kind) : kind;
    const std::string v = api_version.empty() ? r.api_version() : api_version;
    const auto slash = v.rfind('/');
    throw bad_request(k + " in version " + quote(slash == std::string::npos ? v : v.substr(slash + 1)) +
                      " cannot be handled as a " + std::string(r.kind) + ": no kind " + quote(k) +
                      " is registered for version " + quote(v) +
                      " in scheme \"k8s.io/kubernetes/pkg/api/legacyscheme/scheme.go:30\"");
  }
  auto& alloc = doc.GetAllocator();
  set_string(doc, "kind", r.kind, alloc);
  set_string(doc, "apiVersion", r.api_version(), alloc);
  d.metadata(doc, alloc);
  if (member(doc, "metadata") == nullptr) set_member(doc, "metadata", JsonValue(rapidjson::kObjectType), alloc);
  if (r.plural == "secrets")
    d.secret(doc, alloc);
  else if (r.plural == "events")
    d.event(doc, alloc);
  else
    d.lease(doc, alloc);
}

std::vector<FieldError> validate_object(const Resource& r, const JsonValue& object, const JsonValue* old) {
  std::vector<FieldError> errs;
  validate_meta(object, errs);
  if (r.plural == "events") {
    validate_event(object, errs);
  } else if (r.plural == "secrets") {
    // ValidateSecret: a ServiceAccount token Secret must name its ServiceAccount (the
    // token controller then fills in token, ca.crt and namespace).
    if (string_member(object, "type") == "kubernetes.io/service-account-token") {
      const JsonValue* meta = member(object, "metadata");
      const JsonValue* annotations = meta == nullptr ? nullptr : member(*meta, "annotations");
      if (annotations == nullptr || string_member(*annotations, "kubernetes.io/service-account.name").empty())
        errs.push_back(field_required("metadata.annotations[kubernetes.io/service-account.name]", ""));
    }
    if (old != nullptr) {
      const std::string_view type = string_member(object, "type");
      if (type != string_member(*old, "type")) errs.push_back(field_invalid("type", type, "field is immutable"));
      const JsonValue* was = member(*old, "immutable");
      if (was != nullptr && was->IsTrue()) {
        const JsonValue* now = member(object, "immutable");
        if (now == nullptr || !now->IsTrue())
          errs.push_back(field_forbidden("immutable", "field is immutable when `immutable` is set"));
        const JsonValue* old_data = member(*old, "data");
        const JsonValue* new_data = member(object, "data");
        const bool same = (old_data == nullptr || old_data->ObjectEmpty())
                              ? (new_data == nullptr || new_data->ObjectEmpty())
                              : (new_data != nullptr && *old_data == *new_data);
        if (!same) errs.push_back(field_forbidden("data", "field is immutable when `immutable` is set"));
      }
    }
    if (const JsonValue* data = member(object, "data")) {
      std::size_t total = 0;
      for (const auto& m : data->GetObject()) {
        const std::string_view key(m.name.GetString(), m.name.GetStringLength());
        for (auto& e : config_key_errors(key))
          errs.push_back(field_invalid("data[" + std::string(key) + "]", key, std::move(e)));
        total += decoded_size(m.value);
      }
      if (total > max_secret_size) errs.push_back(field_too_long("data", max_secret_size));
    }
  } else if (const JsonValue* spec = member(object, "spec")) {
    if (const JsonValue* v = member(*spec, "leaseDurationSeconds"); v != nullptr && v->IsInt() && v->GetInt() <= 0)
      errs.push_back(field_invalid_number("spec.leaseDurationSeconds", v->GetInt(), "must be greater than 0"));
    if (const JsonValue* v = member(*spec, "leaseTransitions"); v != nullptr && v->IsInt() && v->GetInt() < 0)
      errs.push_back(field_invalid_number("spec.leaseTransitions", v->GetInt(), "must be greater than or equal to 0"));
  }
  return errs;
}

}  // namespace tenantdb::test::standin
