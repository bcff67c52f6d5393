#pragma once
/// \file
/// Structured logging: one JSON object per line on stderr, written with rapidjson's
/// Writer (strings escaped by append_json_string). Fields take strings and numbers only;
/// tenantdb::secret has no conversion to either, so a secret cannot be logged by accident.

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

namespace tenantdb::log {

/// Severity, in increasing order.
enum class level { debug, info, warn, error };

/// Parses "debug", "info", "warn" or "error"; throws tenantdb::error (usage) otherwise.
level parse_level(std::string_view text);

/// One key/value pair of a log line.
struct field {
  std::string_view key;
  std::variant<std::string_view, std::int64_t, std::uint64_t, double, bool> value;
  field(std::string_view k, std::string_view v) : key(k), value(v) {}
  field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  field(std::string_view k, std::int64_t v) : key(k), value(v) {}
  field(std::string_view k, int v) : key(k), value(std::int64_t{v}) {}
  field(std::string_view k, unsigned v) : key(k), value(std::int64_t{v}) {}
  field(std::string_view k, std::uint64_t v) : key(k), value(v) {}
  field(std::string_view k, double v) : key(k), value(v) {}
  field(std::string_view k, bool v) : key(k), value(v) {}
};

/// Lines below this level are dropped. Default: info.
void set_level(level min);
level current_level();
/// The component name every line carries ("init", "sidecar").
void set_component(std::string name);
/// Replaces the sink (stderr by default); tests capture lines with it. Not thread-safe
/// against concurrent writes; set it before logging starts.
void set_sink(std::function<void(std::string_view line)> sink);

/// Writes one line if `lvl` is enabled.
void write(level lvl, std::string_view message, std::initializer_list<field> fields = {});

inline void debug(std::string_view m, std::initializer_list<field> f = {}) {
  write(level::debug, m, f);
}
inline void info(std::string_view m, std::initializer_list<field> f = {}) {
  write(level::info, m, f);
}
inline void warn(std::string_view m, std::initializer_list<field> f = {}) {
  write(level::warn, m, f);
}
inline void error(std::string_view m, std::initializer_list<field> f = {}) {
  write(level::error, m, f);
}

/// Appends `text` to `out` as a JSON string literal (quotes included); invalid UTF-8
/// bytes become U+FFFD (written \ufffd) so a line is always valid JSON, and control
/// characters and DEL are escaped (\n, \r, \t, else \u00xx in lower case).
void append_json_string(std::string& out, std::string_view text);

}  // namespace tenantdb::log
