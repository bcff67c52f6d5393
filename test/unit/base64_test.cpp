#include "base/base64.hpp"

#include <string>

#include <gtest/gtest.h>

namespace tenantdb {
namespace {

using namespace std::string_literals;

TEST(Base64, EncodesRfc4648Vectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
}

TEST(Base64, DecodesRfc4648Vectors) {
  EXPECT_EQ(base64_decode(""), "");
  EXPECT_EQ(base64_decode("Zg=="), "f");
  EXPECT_EQ(base64_decode("Zm8="), "fo");
  EXPECT_EQ(base64_decode("Zm9v"), "foo");
  EXPECT_EQ(base64_decode("Zm9vYg=="), "foob");
  EXPECT_EQ(base64_decode("Zm9vYmE="), "fooba");
  EXPECT_EQ(base64_decode("Zm9vYmFy"), "foobar");
}

TEST(Base64, UsesTheStandardAlphabet) {
  EXPECT_EQ(base64_encode("\xfb\xff\xbf"s), "+/+/");
  EXPECT_EQ(base64_decode("+/+/"), "\xfb\xff\xbf"s);
}

TEST(Base64, RoundTripsEveryByteAndLength) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (std::size_t length = 0; length <= all.size(); ++length) {
    const std::string input = all.substr(all.size() - length);  // includes NUL and 0x80-0xff
    const std::string encoded = base64_encode(input);
    EXPECT_EQ(encoded.size() % 4, 0U);
    const auto decoded = base64_decode(encoded);
    ASSERT_TRUE(decoded.has_value()) << "length " << length;
    EXPECT_EQ(*decoded, input) << "length " << length;
  }
}

TEST(Base64, RoundTripsHostileBytes) {
  const std::string hostile = "a\0b\n\r\"\\\xff\xfe\xc3\x28 end"s;
  EXPECT_EQ(base64_decode(base64_encode(hostile)), hostile);
}

TEST(Base64, RejectsLengthNotAMultipleOfFour) {
  EXPECT_FALSE(base64_decode("Z"));
  EXPECT_FALSE(base64_decode("Zg"));
  EXPECT_FALSE(base64_decode("Zg="));
  EXPECT_FALSE(base64_decode("Zm9vY"));
}

TEST(Base64, RejectsCharactersOutsideTheAlphabet) {
  EXPECT_FALSE(base64_decode("Zm9*"));
  EXPECT_FALSE(base64_decode("Zm9-"));  // URL-safe alphabet
  EXPECT_FALSE(base64_decode("Zm9_"));
  EXPECT_FALSE(base64_decode("Zm\0v"s));
  EXPECT_FALSE(base64_decode("Zm9v\xff\xff\xff\xff"s));
}

TEST(Base64, RejectsWhitespace) {
  EXPECT_FALSE(base64_decode("Zm9v\nYmFy"));
  EXPECT_FALSE(base64_decode("Zm9vYmFy\n\n\n\n"));
  EXPECT_FALSE(base64_decode(" Zm9"));
  EXPECT_FALSE(base64_decode("Zm9v    "));
}

TEST(Base64, RejectsMisplacedPadding) {
  EXPECT_FALSE(base64_decode("===="));
  EXPECT_FALSE(base64_decode("A==="));
  EXPECT_FALSE(base64_decode("Z=g="));
  EXPECT_FALSE(base64_decode("Zg==Zg=="));  // padding in the middle
  EXPECT_FALSE(base64_decode("=Zm9"));
}

TEST(Base64, RejectsNonCanonicalTrailingBits) {
  EXPECT_FALSE(base64_decode("Zh=="));  // "Zg==" with unused bits set
  EXPECT_FALSE(base64_decode("Zm9="));  // "Zm8=" with unused bits set
  EXPECT_TRUE(base64_decode("Zg=="));
  EXPECT_TRUE(base64_decode("Zm8="));
}

}  // namespace
}  // namespace tenantdb
