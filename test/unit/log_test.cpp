#include "tenantdb/log.hpp"

#include <cstdint>
#include <limits>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include "expect_error.hpp"
#include "tenantdb/error.hpp"

namespace tenantdb {
namespace {

using namespace std::string_literals;

const std::string replacement = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

// Parses one line strictly: well-formed JSON, valid UTF-8, one object, nothing after.
::testing::AssertionResult parse_line(const std::string& line, rapidjson::Document& doc) {
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(line.data(), line.size());
  if (doc.HasParseError())
    return ::testing::AssertionFailure() << "not JSON (" << rapidjson::GetParseError_En(doc.GetParseError()) << " at "
                                         << doc.GetErrorOffset() << "): " << line;
  if (!doc.IsObject()) return ::testing::AssertionFailure() << "not an object: " << line;
  if (line.find('\n') != std::string::npos) return ::testing::AssertionFailure() << "holds a raw newline: " << line;
  return ::testing::AssertionSuccess();
}

std::string string_of(const rapidjson::Value& v) {
  return std::string(v.GetString(), v.GetStringLength());
}

class Log : public ::testing::Test {
protected:
  void SetUp() override {
    previous_ = log::current_level();
    log::set_level(log::level::debug);
    log::set_component("unit-test");
    log::set_sink([this](std::string_view line) {
      std::lock_guard lock(mutex_);
      lines_.emplace_back(line);
    });
  }
  void TearDown() override {
    log::set_sink(nullptr);
    log::set_level(previous_);
    log::set_component("tenantdb");
  }

  // The single captured line, parsed.
  void only_line(rapidjson::Document& doc) {
    ASSERT_EQ(lines_.size(), 1U);
    ASSERT_TRUE(parse_line(lines_.front(), doc));
  }

  std::mutex mutex_;
  std::vector<std::string> lines_;
  log::level previous_ = log::level::info;
};

TEST_F(Log, WritesOneJsonObjectWithTheStandardFields) {
  log::info("hello world");
  rapidjson::Document doc;
  only_line(doc);
  ASSERT_TRUE(doc.HasMember("ts") && doc["ts"].IsString());
  EXPECT_TRUE(std::regex_match(string_of(doc["ts"]), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
      << string_of(doc["ts"]);
  EXPECT_EQ(string_of(doc["level"]), "info");
  EXPECT_EQ(string_of(doc["component"]), "unit-test");
  EXPECT_EQ(string_of(doc["msg"]), "hello world");
}

TEST_F(Log, LevelNamesInLines) {
  log::debug("d");
  log::info("i");
  log::warn("w");
  log::error("e");
  ASSERT_EQ(lines_.size(), 4U);
  const std::vector<std::string> expected = {"debug", "info", "warn", "error"};
  for (std::size_t i = 0; i < 4; ++i) {
    rapidjson::Document doc;
    ASSERT_TRUE(parse_line(lines_[i], doc));
    EXPECT_EQ(string_of(doc["level"]), expected[i]);
  }
}

TEST_F(Log, FiltersBelowTheLevel) {
  log::set_level(log::level::warn);
  EXPECT_EQ(log::current_level(), log::level::warn);
  log::debug("dropped");
  log::info("dropped");
  log::warn("kept-warn");
  log::error("kept-error");
  log::write(log::level::info, "dropped too");
  ASSERT_EQ(lines_.size(), 2U);
  EXPECT_NE(lines_[0].find("kept-warn"), std::string::npos);
  EXPECT_NE(lines_[1].find("kept-error"), std::string::npos);

  log::set_level(log::level::error);
  log::warn("dropped");
  EXPECT_EQ(lines_.size(), 2U);
}

TEST_F(Log, EscapesQuotesBackslashesAndControlCharacters) {
  const std::string nasty = "say \"hi\" \\ path\nnew\rline\ttab \x01\x1f\x7f nul:\0end"s;
  log::info(nasty, {{"k", nasty}});
  rapidjson::Document doc;
  only_line(doc);
  EXPECT_EQ(string_of(doc["msg"]), nasty);
  EXPECT_EQ(string_of(doc["k"]), nasty);
  for (char c : lines_.front()) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << "raw control byte in the line";
}

TEST_F(Log, EscapesKeysAndComponent) {
  log::set_component("comp\"onent\n");
  log::info("m", {{"we\"ird\\key\n", "v"}});
  rapidjson::Document doc;
  only_line(doc);
  EXPECT_EQ(string_of(doc["component"]), "comp\"onent\n");
  EXPECT_TRUE(doc.HasMember("we\"ird\\key\n"));
}

TEST_F(Log, KeepsValidUtf8) {
  const std::string text = "\xC3\xBCmlaut \xE2\x98\x95 \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF";
  log::info(text);
  rapidjson::Document doc;
  only_line(doc);
  EXPECT_EQ(string_of(doc["msg"]), text);
}

TEST_F(Log, ReplacesEachInvalidUtf8ByteWithReplacementCharacter) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a\xFF"
       "b",
       "a" + replacement + "b"},
      {"end\xC3", "end" + replacement},                           // truncated sequence
      {"\xC0\xAF", replacement + replacement},                    // overlong: both bytes invalid
      {"\xED\xA0\x80", replacement + replacement + replacement},  // surrogate
      {"\x80x", replacement + "x"},                               // lone continuation
      {"\xE2\x98"
       "x",
       replacement + replacement + "x"},  // cut 3-byte sequence
  };
  for (const auto& [in, out] : cases) {
    lines_.clear();
    log::info(in, {{"field", in}});
    rapidjson::Document doc;
    only_line(doc);
    EXPECT_EQ(string_of(doc["msg"]), out);
    EXPECT_EQ(string_of(doc["field"]), out);
  }
}

TEST_F(Log, FieldsOfEveryType) {
  const std::string str = "std::string";
  const std::string_view view = "string_view";
  log::info("fields", {{"view", view},
                       {"str", str},
                       {"cstr", "const char*"},
                       {"i64min", std::numeric_limits<std::int64_t>::min()},
                       {"i64max", std::numeric_limits<std::int64_t>::max()},
                       {"int", -5},
                       {"unsigned", 4000000000U},
                       {"u64", std::uint64_t{42}},
                       {"double", 1.5},
                       {"negdouble", -0.25},
                       {"yes", true},
                       {"no", false}});
  rapidjson::Document doc;
  only_line(doc);
  EXPECT_EQ(string_of(doc["view"]), "string_view");
  EXPECT_EQ(string_of(doc["str"]), "std::string");
  EXPECT_EQ(string_of(doc["cstr"]), "const char*");
  ASSERT_TRUE(doc["i64min"].IsInt64());
  EXPECT_EQ(doc["i64min"].GetInt64(), std::numeric_limits<std::int64_t>::min());
  ASSERT_TRUE(doc["i64max"].IsInt64());
  EXPECT_EQ(doc["i64max"].GetInt64(), std::numeric_limits<std::int64_t>::max());
  ASSERT_TRUE(doc["int"].IsInt64());
  EXPECT_EQ(doc["int"].GetInt64(), -5);
  ASSERT_TRUE(doc["unsigned"].IsUint64());
  EXPECT_EQ(doc["unsigned"].GetUint64(), 4000000000U);
  ASSERT_TRUE(doc["u64"].IsUint64());
  EXPECT_EQ(doc["u64"].GetUint64(), 42U);
  ASSERT_TRUE(doc["double"].IsNumber());
  EXPECT_EQ(doc["double"].GetDouble(), 1.5);
  EXPECT_EQ(doc["negdouble"].GetDouble(), -0.25);
  ASSERT_TRUE(doc["yes"].IsBool());
  EXPECT_TRUE(doc["yes"].GetBool());
  ASSERT_TRUE(doc["no"].IsBool());
  EXPECT_FALSE(doc["no"].GetBool());
}

TEST_F(Log, LargeUint64KeepsItsValue) {
  log::info("big", {{"bytes", std::numeric_limits<std::uint64_t>::max()}});
  rapidjson::Document doc;
  only_line(doc);
  ASSERT_TRUE(doc["bytes"].IsNumber());
  EXPECT_FALSE(doc["bytes"].IsInt64() && doc["bytes"].GetInt64() < 0) << "wrapped to a negative number: " << lines_[0];
}

TEST_F(Log, NonFiniteDoublesStillGiveValidJson) {
  log::info("nan", {{"ratio", std::numeric_limits<double>::quiet_NaN()}});
  log::info("inf", {{"ratio", std::numeric_limits<double>::infinity()}});
  log::info("-inf", {{"ratio", -std::numeric_limits<double>::infinity()}});
  ASSERT_EQ(lines_.size(), 3U);
  for (const auto& line : lines_) {
    rapidjson::Document doc;
    EXPECT_TRUE(parse_line(line, doc));
  }
}

// The line without its timestamp, to compare bytes.
std::string without_ts(const std::string& line) {
  const auto start = line.find("\"ts\":\"");
  const auto end = start == std::string::npos ? start : line.find('"', start + 6);
  if (end == std::string::npos) return line;
  return line.substr(0, start + 6) + line.substr(end);
}

// The layout and bytes every line has had: fields in order, no spaces, integers and
// booleans as JSON literals. The lines are written with rapidjson's Writer now; this
// pins that it changed nothing a log reader could see.
TEST_F(Log, LineBytesAreStable) {
  log::info("m", {{"k", "v"}, {"n", -3}, {"u", std::uint64_t{18446744073709551615U}}, {"yes", true}, {"no", false}});
  ASSERT_EQ(lines_.size(), 1U);
  EXPECT_EQ(without_ts(lines_.front()),
            R"({"ts":"","level":"info","component":"unit-test","msg":"m","k":"v","n":-3,"u":18446744073709551615,)"
            R"("yes":true,"no":false})");
}

// rapidjson's own string escaping writes \b and \f as short escapes, the others with
// upper-case hex, and leaves DEL raw; the lines keep \u00xx in lower case for all of
// them, DEL included (a raw DEL reaches terminals that view the logs).
TEST_F(Log, ControlCharactersKeepTheirLowerCaseEscapes) {
  log::info("\b\f\x1f\x7f\x01\x0b\n\r\t\"\\/"s + '\0', {{"c\x1b", "\x1b[31m"}});
  ASSERT_EQ(lines_.size(), 1U);
  EXPECT_EQ(
      without_ts(lines_.front()),
      R"({"ts":"","level":"info","component":"unit-test","msg":"\u0008\u000c\u001f\u007f\u0001\u000b\n\r\t\"\\/\u0000",)"
      R"("c\u001b":"\u001b[31m"})");
}

// rapidjson copies invalid UTF-8 through (or, validating, fails the whole line); the
// lines replace each invalid byte with U+FFFD, written as the escape \ufffd.
TEST_F(Log, InvalidUtf8BecomesAnEscapedReplacementCharacter) {
  log::info(
      "a\xFF"
      "b\xC3",
      {{"\xED\xA0\x80", "ok \xC3\xBC"}});
  ASSERT_EQ(lines_.size(), 1U);
  EXPECT_EQ(without_ts(lines_.front()),
            "{\"ts\":\"\",\"level\":\"info\",\"component\":\"unit-test\",\"msg\":\"a\\ufffdb\\ufffd\","
            "\"\\ufffd\\ufffd\\ufffd\":\"ok \xC3\xBC\"}");
}

// rapidjson's Double fails on NaN and infinity and leaves "key": with no value (or, with
// kWriteNanAndInfFlag, writes NaN/Infinity, which are not JSON): the lines say null. Finite
// doubles keep their shortest round-trip form ("100", not rapidjson's "100.0").
TEST_F(Log, DoublesAsTheyWereAndNonFiniteAsNull) {
  log::info("d", {{"nan", std::numeric_limits<double>::quiet_NaN()},
                  {"inf", std::numeric_limits<double>::infinity()},
                  {"ninf", -std::numeric_limits<double>::infinity()},
                  {"hundred", 100.0},
                  {"big", 1e21},
                  {"small", 1e-7},
                  {"third", 0.1},
                  {"after", 1}});
  ASSERT_EQ(lines_.size(), 1U);
  EXPECT_EQ(without_ts(lines_.front()),
            R"({"ts":"","level":"info","component":"unit-test","msg":"d","nan":null,"inf":null,"ninf":null,)"
            R"("hundred":100,"big":1e+21,"small":1e-07,"third":0.1,"after":1})");
  rapidjson::Document doc;
  EXPECT_TRUE(parse_line(lines_.front(), doc));
}

TEST_F(Log, SinkReceivesEachLineOnceAndCanBeReplaced) {
  std::vector<std::string> other;
  log::set_sink([&](std::string_view line) { other.emplace_back(line); });
  log::info("to other");
  EXPECT_TRUE(lines_.empty());
  ASSERT_EQ(other.size(), 1U);
  EXPECT_NE(other[0].find("to other"), std::string::npos);
  EXPECT_NE(other[0].back(), '\n') << "the sink gets the line without its newline";
}

TEST_F(Log, ConcurrentWritersProduceWholeLines) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([t] {
      for (int i = 0; i < 250; ++i) log::info("concurrent", {{"thread", t}, {"i", i}, {"pad", std::string(100, 'x')}});
    });
  for (auto& th : threads) th.join();
  ASSERT_EQ(lines_.size(), 1000U);
  for (const auto& line : lines_) {
    rapidjson::Document doc;
    ASSERT_TRUE(parse_line(line, doc));
  }
}

TEST(LogLevel, ParsesTheDocumentedNames) {
  EXPECT_EQ(log::parse_level("debug"), log::level::debug);
  EXPECT_EQ(log::parse_level("info"), log::level::info);
  EXPECT_EQ(log::parse_level("warn"), log::level::warn);
  EXPECT_EQ(log::parse_level("error"), log::level::error);
  for (const std::string& bad : std::vector<std::string>{"", "fatal", "trace", "INFO ", "inf", "errors"}) {
    EXPECT_TENANTDB_ERROR(log::parse_level(bad), error_kind::usage, "--log-level");
  }
}

TEST(LogLevel, LevelsAreOrdered) {
  EXPECT_LT(log::level::debug, log::level::info);
  EXPECT_LT(log::level::info, log::level::warn);
  EXPECT_LT(log::level::warn, log::level::error);
}

TEST(AppendJsonString, AppendsAQuotedLiteral) {
  std::string out = "prefix:";
  log::append_json_string(out, "a\"b");
  EXPECT_EQ(out, "prefix:\"a\\\"b\"");
  std::string empty;
  log::append_json_string(empty, "");
  EXPECT_EQ(empty, "\"\"");
}

TEST(AppendJsonString, EveryByteGivesValidJson) {
  for (int b = 0; b < 256; ++b) {
    const std::string in = "<" + std::string(1, static_cast<char>(b)) + ">";
    std::string out;
    log::append_json_string(out, in);
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseValidateEncodingFlag>(out.data(), out.size());
    ASSERT_FALSE(doc.HasParseError()) << "byte " << b << ": " << out;
    ASSERT_TRUE(doc.IsString());
    const std::string back = string_of(doc);
    if (b < 0x80) {
      EXPECT_EQ(back, in) << "byte " << b;
    } else {
      EXPECT_EQ(back, "<" + replacement + ">") << "byte " << b;
    }
  }
}

}  // namespace
}  // namespace tenantdb
