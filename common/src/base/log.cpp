#include "tenantdb/log.hpp"

#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <mutex>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "tenantdb/error.hpp"
#include "tenantdb/time.hpp"

namespace tenantdb::log {
namespace {

struct state {
  std::mutex mutex;
  level min = level::info;
  std::string component = "tenantdb";
  std::function<void(std::string_view)> sink;
};

state& global() {
  static state s;
  return s;
}

const char* level_name(level lvl) {
  switch (lvl) {
    case level::debug: return "debug";
    case level::info: return "info";
    case level::warn: return "warn";
    case level::error: break;
  }
  return "error";
}

void append_timestamp(std::string& out) {
  out.append(format_rfc3339(std::chrono::system_clock::now(), time_precision::milliseconds));
}

// Length of the UTF-8 sequence starting at s[i], or 0 if it is malformed.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  std::size_t len = 0;
  unsigned min = 0;
  unsigned cp = 0;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    min = 0x80;
    cp = c & 0x1Fu;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    min = 0x800;
    cp = c & 0x0Fu;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    min = 0x10000;
    cp = c & 0x07u;
  } else
    return 0;
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3Fu);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;

// A string (key or value) as append_json_string escapes it. rapidjson's own escaping is
// not used for these: it copies invalid UTF-8 through (the line would not be JSON) and
// leaves DEL (0x7f) raw, and for the other control characters it writes different bytes
// than the lines always had (\b, \f, upper-case hex).
void write_string(json_writer& out, std::string_view text, std::string& scratch) {
  scratch.clear();
  append_json_string(scratch, text);
  out.RawValue(scratch.data(), scratch.size(), rapidjson::kStringType);
}

// A double in its shortest round-trip form (std::to_chars: "100", "1e+21"), as the lines
// always had it; rapidjson's Double writes "100.0" and "1e21". JSON has no NaN or
// infinity: those are null (rapidjson's Double would fail and leave the line broken).
void write_double(json_writer& out, double d) {
  if (!std::isfinite(d)) {
    out.Null();
    return;
  }
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof buf, d);
  out.RawValue(buf, static_cast<std::size_t>(res.ptr - buf), rapidjson::kNumberType);
}

}  // namespace

level parse_level(std::string_view text) {
  if (text == "debug") return level::debug;
  if (text == "info") return level::info;
  if (text == "warn" || text == "warning") return level::warn;
  if (text == "error") return level::error;
  throw tenantdb::error(error_kind::usage, "--log-level must be one of debug, info, warn, error").about("--log-level");
}

void set_level(level min) {
  std::lock_guard lock(global().mutex);
  global().min = min;
}

level current_level() {
  std::lock_guard lock(global().mutex);
  return global().min;
}

void set_component(std::string name) {
  std::lock_guard lock(global().mutex);
  global().component = std::move(name);
}

void set_sink(std::function<void(std::string_view)> sink) {
  std::lock_guard lock(global().mutex);
  global().sink = std::move(sink);
}

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const std::size_t len = utf8_sequence(text, i);
      if (len == 0) {
        out.append("\\ufffd");
        ++i;
      } else {
        out.append(text.substr(i, len));
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out.append("\\u00");
          out.push_back(hex[c >> 4]);
          out.push_back(hex[c & 0xF]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  out.push_back('"');
}

void write(level lvl, std::string_view message, std::initializer_list<field> fields) {
  auto& g = global();
  std::lock_guard lock(g.mutex);
  if (lvl < g.min) return;
  rapidjson::StringBuffer line;
  line.Reserve(160);
  rapidjson::Writer<rapidjson::StringBuffer> out(line);
  std::string scratch;
  out.StartObject();
  out.Key("ts");
  append_timestamp(scratch);
  out.String(scratch.data(), static_cast<rapidjson::SizeType>(scratch.size()));
  out.Key("level");
  out.String(level_name(lvl));
  out.Key("component");
  write_string(out, g.component, scratch);
  out.Key("msg");
  write_string(out, message, scratch);
  for (const auto& f : fields) {
    write_string(out, f.key, scratch);
    if (const auto* s = std::get_if<std::string_view>(&f.value)) {
      write_string(out, *s, scratch);
    } else if (const auto* i = std::get_if<std::int64_t>(&f.value)) {
      out.Int64(*i);
    } else if (const auto* u = std::get_if<std::uint64_t>(&f.value)) {
      out.Uint64(*u);
    } else if (const auto* d = std::get_if<double>(&f.value)) {
      write_double(out, *d);
    } else {
      out.Bool(std::get<bool>(f.value));
    }
  }
  out.EndObject();
  if (g.sink) {
    g.sink(std::string_view(line.GetString(), line.GetSize()));
  } else {
    line.Put('\n');  // one write, so lines of concurrent processes do not interleave
    std::fwrite(line.GetString(), 1, line.GetSize(), stderr);
    std::fflush(stderr);
  }
}

}  // namespace tenantdb::log
