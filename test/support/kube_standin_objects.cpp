// Resource table, Status bodies, API errors and small JSON/time/base64/selector helpers
// of the kube-apiserver stand-in. Messages follow k8s.io/apimachinery word for word.

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <array>
#include <cstdio>
#include <ctime>

#include "kube_standin_internal.hpp"

namespace tenantdb::test::standin {
namespace {

constexpr Resource secrets_def{"secrets", "", "v1", "Secret", "SecretList"};
constexpr Resource leases_def{"leases", "coordination.k8s.io", "v1", "Lease", "LeaseList"};
constexpr Resource events_def{"events", "", "v1", "Event", "EventList"};

void write_details(rapidjson::Writer<rapidjson::StringBuffer>& w, const Details& d) {
  w.StartObject();
  const auto field = [&w](const char* key, const std::string& value) {
    if (value.empty()) return;
    w.Key(key);
    w.String(value);
  };
  field("name", d.name);
  field("group", d.group);
  field("kind", d.kind);
  field("uid", d.uid);
  if (!d.causes.empty()) {
    w.Key("causes");
    w.StartArray();
    for (const auto& c : d.causes) {
      w.StartObject();
      field("reason", c.reason);
      field("message", c.message);
      field("field", c.field);
      w.EndObject();
    }
    w.EndArray();
  }
  if (d.retry_after_seconds > 0) {
    w.Key("retryAfterSeconds");
    w.Int(d.retry_after_seconds);
  }
  w.EndObject();
}

std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

}  // namespace

// --- Resources ----------------------------------------------------------------------

std::string Resource::api_version() const {
  return group.empty() ? std::string(version) : std::string(group) + "/" + std::string(version);
}
std::string Resource::qualified() const {
  return group.empty() ? std::string(plural) : std::string(plural) + "." + std::string(group);
}
std::string Resource::qualified_kind() const {
  return group.empty() ? std::string(kind) : std::string(kind) + "." + std::string(group);
}

const Resource& secrets_resource() {
  return secrets_def;
}
const Resource& leases_resource() {
  return leases_def;
}
const Resource& events_resource() {
  return events_def;
}

const Resource* find_resource(std::string_view group, std::string_view version, std::string_view plural) {
  for (const Resource* r : {&secrets_def, &leases_def, &events_def})
    if (r->group == group && r->version == version && r->plural == plural) return r;
  return nullptr;
}
const Resource* resource_by_plural(std::string_view plural) {
  for (const Resource* r : {&secrets_def, &leases_def, &events_def})
    if (r->plural == plural) return r;
  return nullptr;
}
const Resource* resource_by_kind(std::string_view kind) {
  for (const Resource* r : {&secrets_def, &leases_def, &events_def})
    if (r->kind == kind) return r;
  return nullptr;
}

// --- Status and errors ----------------------------------------------------------------

ApiError::ApiError(unsigned c, std::string r, const std::string& message, std::optional<Details> d)
    : std::runtime_error(message), code(c), reason(std::move(r)), details(std::move(d)) {}

std::string status_body(unsigned code, std::string_view reason, std::string_view message,
                        const std::optional<Details>& details) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("kind");
  w.String("Status");
  w.Key("apiVersion");
  w.String("v1");
  w.Key("metadata");
  w.StartObject();
  w.EndObject();
  w.Key("status");
  w.String("Failure");
  if (!message.empty()) {
    w.Key("message");
    w.String(message.data(), static_cast<rapidjson::SizeType>(message.size()));
  }
  if (!reason.empty()) {
    w.Key("reason");
    w.String(reason.data(), static_cast<rapidjson::SizeType>(reason.size()));
  }
  if (details) {
    w.Key("details");
    write_details(w, *details);
  }
  w.Key("code");
  w.Uint(code);
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

std::string success_body(const Details& details) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("kind");
  w.String("Status");
  w.Key("apiVersion");
  w.String("v1");
  w.Key("metadata");
  w.StartObject();
  w.EndObject();
  w.Key("status");
  w.String("Success");
  w.Key("details");
  write_details(w, details);
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

std::string_view reason_for(unsigned code) {
  switch (code) {
    case 400: return "BadRequest";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "NotFound";
    case 405: return "MethodNotAllowed";
    case 406: return "NotAcceptable";
    case 409: return "Conflict";
    case 410: return "Expired";
    case 413: return "RequestEntityTooLarge";
    case 415: return "UnsupportedMediaType";
    case 422: return "Invalid";
    case 429: return "TooManyRequests";
    case 500: return "InternalError";
    case 503: return "ServiceUnavailable";
    case 504: return "Timeout";
    default: return "";
  }
}

std::string_view status_text(unsigned code) {
  switch (code) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Request Entity Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

ApiError bad_request(const std::string& message) {
  return {400, "BadRequest", message};
}

ApiError not_found(const Resource& r, std::string_view name) {
  return {404, "NotFound", r.qualified() + " " + quote(name) + " not found",
          Details{std::string(name), std::string(r.group), std::string(r.plural), {}, {}, 0}};
}

ApiError already_exists(const Resource& r, std::string_view name) {
  return {409, "AlreadyExists", r.qualified() + " " + quote(name) + " already exists",
          Details{std::string(name), std::string(r.group), std::string(r.plural), {}, {}, 0}};
}

ApiError conflict(const Resource& r, std::string_view name, std::string_view why) {
  return {409, "Conflict",
          "Operation cannot be fulfilled on " + r.qualified() + " " + quote(name) + ": " + std::string(why),
          Details{std::string(name), std::string(r.group), std::string(r.plural), {}, {}, 0}};
}

ApiError resource_not_found() {
  return {404, "NotFound", "the server could not find the requested resource", Details{}};
}

ApiError internal_error(std::string_view message) {
  return {500, "InternalError", "Internal error occurred: " + std::string(message),
          Details{{}, {}, {}, {}, {Cause{{}, std::string(message), {}}}, 0}};
}

std::string FieldError::body() const {
  std::string s = type;
  if (!value.empty()) s += ": " + value;
  if (!detail.empty()) s += ": " + detail;
  return s;
}
std::string FieldError::text() const {
  return field + ": " + body();
}

FieldError field_invalid(std::string field, std::string_view value, std::string detail) {
  return {std::move(field), "Invalid value", quote(value), std::move(detail), "FieldValueInvalid"};
}
FieldError field_invalid_number(std::string field, std::int64_t value, std::string detail) {
  return {std::move(field), "Invalid value", std::to_string(value), std::move(detail), "FieldValueInvalid"};
}
FieldError field_required(std::string field, std::string detail) {
  return {std::move(field), "Required value", {}, std::move(detail), "FieldValueRequired"};
}
FieldError field_forbidden(std::string field, std::string detail) {
  return {std::move(field), "Forbidden", {}, std::move(detail), "FieldValueForbidden"};
}
FieldError field_too_long(std::string field, std::size_t max_bytes) {
  return {std::move(field),
          "Too long",
          {},
          "must have at most " + std::to_string(max_bytes) + " bytes",
          "FieldValueTooLong"};
}

ApiError invalid(const Resource& r, std::string_view name, const std::vector<FieldError>& errors) {
  // field.ErrorList.ToAggregate(): one error as is, several as "[a, b]".
  std::string list;
  for (const auto& e : errors) list += (list.empty() ? "" : ", ") + e.text();
  if (errors.size() > 1) list = "[" + list + "]";
  Details d{std::string(name), std::string(r.group), std::string(r.kind), {}, {}, 0};
  for (const auto& e : errors) d.causes.push_back({e.cause, e.body(), e.field});
  return {422, "Invalid", r.qualified_kind() + " " + quote(name) + " is invalid: " + list, std::move(d)};
}

// --- JSON helpers ---------------------------------------------------------------------

std::string to_json(const JsonValue& value) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  value.Accept(w);
  return {buf.GetString(), buf.GetSize()};
}

std::string quote(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto b = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (b < 0x20 || b == 0x7f) {
          char hex[8];
          std::snprintf(hex, sizeof hex, "\\x%02x", b);
          out += hex;
        } else {
          out.push_back(c);
        }
    }
  }
  return out + "\"";
}

const JsonValue* member(const JsonValue& object, std::string_view name) {
  if (!object.IsObject()) return nullptr;
  const auto it = object.FindMember(JsonValue(rapidjson::StringRef(name.data(), name.size())));
  return it == object.MemberEnd() ? nullptr : &it->value;
}

JsonValue* member(JsonValue& object, std::string_view name) {
  if (!object.IsObject()) return nullptr;
  const auto it = object.FindMember(JsonValue(rapidjson::StringRef(name.data(), name.size())));
  return it == object.MemberEnd() ? nullptr : &it->value;
}

std::string_view string_member(const JsonValue& object, std::string_view name) {
  const JsonValue* v = member(object, name);
  if (v == nullptr || !v->IsString()) return {};
  return {v->GetString(), v->GetStringLength()};
}

void set_member(JsonValue& object, std::string_view name, JsonValue value, Allocator& alloc) {
  if (JsonValue* existing = member(object, name)) {
    *existing = std::move(value);
    return;
  }
  object.AddMember(JsonValue(name.data(), static_cast<rapidjson::SizeType>(name.size()), alloc), value, alloc);
}

void set_string(JsonValue& object, std::string_view name, std::string_view value, Allocator& alloc) {
  set_member(object, name, JsonValue(value.data(), static_cast<rapidjson::SizeType>(value.size()), alloc), alloc);
}

void remove_member(JsonValue& object, std::string_view name) {
  if (object.IsObject()) object.RemoveMember(JsonValue(rapidjson::StringRef(name.data(), name.size())));
}

void merge_patch(JsonValue& target, const JsonValue& patch, Allocator& alloc) {
  if (!patch.IsObject()) {
    target.CopyFrom(patch, alloc);
    return;
  }
  if (!target.IsObject()) target.SetObject();
  for (auto it = patch.MemberBegin(); it != patch.MemberEnd(); ++it) {
    const std::string_view key(it->name.GetString(), it->name.GetStringLength());
    if (it->value.IsNull()) {
      remove_member(target, key);
      continue;
    }
    JsonValue* existing = member(target, key);
    if (existing == nullptr) {
      target.AddMember(JsonValue(it->name, alloc), JsonValue(rapidjson::kNullType), alloc);
      existing = &(target.MemberEnd() - 1)->value;
    }
    merge_patch(*existing, it->value, alloc);
  }
}

// --- Time -----------------------------------------------------------------------------

std::string format_time(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string http_date(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

std::optional<std::int64_t> parse_time_micros(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), as Go's time.RFC3339 parses.
  const auto digits = [&s](std::size_t at, std::size_t n) -> std::optional<int> {
    if (at + n > s.size()) return std::nullopt;
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':') return std::nullopt;
  const auto year = digits(0, 4), month = digits(5, 2), day = digits(8, 2);
  const auto hour = digits(11, 2), minute = digits(14, 2), second = digits(17, 2);
  if (!year || !month || !day || !hour || !minute || !second) return std::nullopt;
  if (*month < 1 || *month > 12 || *day < 1 || *day > 31 || *hour > 23 || *minute > 59 || *second > 59)
    return std::nullopt;
  std::size_t i = 19;
  std::int64_t micros = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    int n = 0;
    std::int64_t scale = 100000;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (n < 6) micros += (s[i] - '0') * scale;
      scale /= 10;
      ++n;
      ++i;
    }
    if (n == 0) return std::nullopt;
  }
  std::int64_t offset = 0;
  if (i < s.size() && s[i] == 'Z') {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    const auto oh = digits(i + 1, 2), om = digits(i + 4, 2);
    if (!oh || !om || i + 3 >= s.size() || s[i + 3] != ':') return std::nullopt;
    offset = (s[i] == '+' ? 1 : -1) * (*oh * 3600 + *om * 60);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  const std::int64_t days = days_from_civil(*year, static_cast<unsigned>(*month), static_cast<unsigned>(*day));
  const std::int64_t secs = days * 86400 + *hour * 3600 + *minute * 60 + *second - offset;
  return secs * 1'000'000 + micros;
}

std::string format_micro_time(std::int64_t micros) {
  std::int64_t secs = micros / 1'000'000;
  std::int64_t frac = micros % 1'000'000;
  if (frac < 0) {
    frac += 1'000'000;
    --secs;
  }
  const auto t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[48];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof out, "%s.%06lldZ", buf, static_cast<long long>(frac));
  return out;
}

// --- Base64 ---------------------------------------------------------------------------

std::string base64_encode(std::string_view bytes) {
  static constexpr char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const unsigned v = static_cast<unsigned char>(bytes[i]) << 16 | static_cast<unsigned char>(bytes[i + 1]) << 8 |
                       static_cast<unsigned char>(bytes[i + 2]);
    out += {table[v >> 18], table[(v >> 12) & 63], table[(v >> 6) & 63], table[v & 63]};
  }
  if (i + 1 == bytes.size()) {
    const unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    out += {table[v >> 18], table[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == bytes.size()) {
    const unsigned v = static_cast<unsigned char>(bytes[i]) << 16 | static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += {table[v >> 18], table[(v >> 12) & 63], table[(v >> 6) & 63], '='};
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text, std::size_t& bad_at) {
  static const std::array<int, 256> rev = [] {
    std::array<int, 256> t{};
    t.fill(-1);
    const std::string_view table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (std::size_t i = 0; i < table.size(); ++i) t[static_cast<unsigned char>(table[i])] = static_cast<int>(i);
    return t;
  }();
  std::string out;
  out.reserve(text.size() / 4 * 3);
  std::size_t si = 0;
  const auto skip_newlines = [&] {
    while (si < text.size() && (text[si] == '\r' || text[si] == '\n')) ++si;
  };
  // A transcription of encoding/base64's decodeQuantum, for its error offsets.
  while (true) {
    unsigned quantum[4] = {0, 0, 0, 0};
    std::size_t dlen = 4;
    std::size_t j = 0;
    bool done = false;
    for (; j < 4; ++j) {
      skip_newlines();
      if (si == text.size()) {
        if (j == 0) return out;
        bad_at = si - j;
        return std::nullopt;
      }
      const char in = text[si++];
      const int v = rev[static_cast<unsigned char>(in)];
      if (v >= 0) {
        quantum[j] = static_cast<unsigned>(v);
        continue;
      }
      if (in != '=' || j < 2) {
        bad_at = si - 1;
        return std::nullopt;
      }
      // Padding: "==" after two symbols, "=" after three; nothing may follow.
      if (j == 2) {
        skip_newlines();
        if (si == text.size() || text[si] != '=') {
          bad_at = si == text.size() ? si : si - 1;
          return std::nullopt;
        }
        ++si;
      }
      skip_newlines();
      if (si < text.size()) {
        bad_at = si;
        return std::nullopt;
      }
      dlen = j;
      done = true;
      break;
    }
    const unsigned v = quantum[0] << 18 | quantum[1] << 12 | quantum[2] << 6 | quantum[3];
    const char bytes[3] = {static_cast<char>(v >> 16), static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)};
    out.append(bytes, dlen - 1);
    if (done) return out;
  }
}

}  // namespace tenantdb::test::standin
