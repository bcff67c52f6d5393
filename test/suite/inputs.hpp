#pragma once
// Shared by the bad-input tests of the reliability and security suite: one case, how its
// flags are applied, and the check of the one line a rejected input must produce.

#include <algorithm>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "process.hpp"
#include "suite.hpp"

namespace tenantdb::test {

// As a connector key's value: the key is removed ("*": every key). As a flag's value: the
// flag is dropped.
inline const std::string drop = "<drop>";

// One bad input and what it must produce.
struct bad_input {
  std::string label;
  std::vector<std::string> flags;           // "--flag value" replaces a default's value; the rest is appended
  std::map<std::string, std::string> keys;  // connector key -> new value, or drop
  int exit_code;
  std::string names;                     // the flag or key the line must name
  std::string hidden = {};               // a secret of this case that must never be printed
  std::optional<std::string> file = {};  // the connector as this one file instead of a directory
};

// Messages quote at most a short prefix of a value; anything longer coming back whole
// would be an echo.
constexpr std::size_t long_value = 64;

inline std::string repeat(const std::string& s, std::size_t times) {
  std::string out;
  out.reserve(s.size() * times);
  for (std::size_t i = 0; i < times; ++i) out += s;
  return out;
}

inline std::string sanitized_test_name() {
  std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::replace(name.begin(), name.end(), '/', '-');
  return name;
}

inline std::vector<std::string> with_flags(std::vector<std::string> args, const std::vector<std::string>& flags) {
  for (std::size_t i = 0; i < flags.size(); ++i) {
    const auto it = std::find(args.begin(), args.end(), flags[i]);
    if (it != args.end() && i + 1 < flags.size() && (it + 1) != args.end()) {
      if (flags[i + 1] == drop) {
        args.erase(it, it + 2);
      } else {
        *(it + 1) = flags[i + 1];
      }
      ++i;
    } else {
      args.push_back(flags[i]);
    }
  }
  return args;
}

inline std::string flag_value(const std::vector<std::string>& args, const std::string& flag,
                              const std::string& otherwise) {
  const auto it = std::find(args.begin(), args.end(), flag);
  return it != args.end() && it + 1 != args.end() ? *(it + 1) : otherwise;
}

inline std::string json_string(const rapidjson::Document& doc, const char* key) {
  const auto it = doc.FindMember(key);
  return it != doc.MemberEnd() && it->value.IsString() ? std::string(it->value.GetString(), it->value.GetStringLength())
                                                       : std::string();
}

// One line on stderr, at level error, with the documented exit code, naming what to fix;
// nothing on stdout; no secret and no oversized value of the case printed anywhere.
inline void expect_one_clear_line(const bad_input& c, const process_result& r, const std::string& admin_password,
                                  suite_tally& tally) {
  EXPECT_EQ(r.exit_code, c.exit_code) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "expected exactly one line on stderr:\n" << r.err;
  const std::string line = r.err.substr(0, r.err.find('\n'));
  rapidjson::Document doc;
  if (doc.Parse(line.c_str()).HasParseError() || !doc.IsObject()) {
    ADD_FAILURE() << "stderr is not a JSON log line: " << line;
  } else {
    EXPECT_EQ(json_string(doc, "level"), "error") << line;
    // Named in the message, or (for a connector path the message quotes) in "about".
    EXPECT_TRUE(json_string(doc, "msg").find(c.names) != std::string::npos || json_string(doc, "about") == c.names)
        << "the line does not name " << c.names << ": " << line;
    if (doc.HasMember("about")) {
      EXPECT_EQ(json_string(doc, "about"), c.names) << line;
    }
    if (doc.HasMember("exit_code") && doc["exit_code"].IsInt()) {
      EXPECT_EQ(doc["exit_code"].GetInt(), c.exit_code) << line;
    }
  }
  EXPECT_TRUE(r.out.empty()) << "stdout: " << r.out;

  std::vector<std::string> secrets;
  if (!admin_password.empty()) secrets.push_back(admin_password);
  if (!c.hidden.empty()) secrets.push_back(c.hidden);
  std::vector<std::string> oversized;
  for (const auto& [key, value] : c.keys)
    if (value.size() > long_value) oversized.push_back(value);
  for (const auto& flag : c.flags)
    if (flag.size() > long_value) oversized.push_back(flag);
  if (c.file && c.file->size() > long_value) oversized.push_back(*c.file);
  for (const std::string* text : {&r.err, &r.out}) {
    ++tally.scanned;
    for (const auto& s : secrets) {
      if (text->find(s) == std::string::npos) continue;
      ++tally.leaks;
      ADD_FAILURE() << "a secret (" << s.size() << " bytes) was printed";
    }
    for (const auto& v : oversized)
      EXPECT_EQ(text->find(v), std::string::npos) << "an oversized value (" << v.size() << " bytes) was echoed whole";
  }
}

}  // namespace tenantdb::test
