#include "tenantdb/log.hpp"

#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <mutex>

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
  std::string line;
  line.reserve(160);
  line.append("{\"ts\":\"");
  append_timestamp(line);
  line.append("\",\"level\":\"").append(level_name(lvl)).append("\",\"component\":");
  append_json_string(line, g.component);
  line.append(",\"msg\":");
  append_json_string(line, message);
  for (const auto& f : fields) {
    line.push_back(',');
    append_json_string(line, f.key);
    line.push_back(':');
    if (const auto* s = std::get_if<std::string_view>(&f.value)) {
      append_json_string(line, *s);
    } else if (const auto* i = std::get_if<std::int64_t>(&f.value)) {
      line.append(std::to_string(*i));
    } else if (const auto* u = std::get_if<std::uint64_t>(&f.value)) {
      line.append(std::to_string(*u));
    } else if (const auto* d = std::get_if<double>(&f.value)) {
      if (!std::isfinite(*d)) {
        line.append("null");  // JSON has no NaN or infinity
      } else {
        char buf[32];
        const auto res = std::to_chars(buf, buf + sizeof buf, *d);
        line.append(buf, static_cast<std::size_t>(res.ptr - buf));
      }
    } else {
      line.append(std::get<bool>(f.value) ? "true" : "false");
    }
  }
  line.push_back('}');
  if (g.sink) {
    g.sink(line);
  } else {
    line.push_back('\n');
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
  }
}

}  // namespace tenantdb::log
