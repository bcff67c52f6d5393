#include "tenantdb/secret.hpp"

#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <gtest/gtest.h>

#include "tenantdb/log.hpp"

namespace tenantdb {
namespace {

using namespace std::string_literals;

// ---------------------------------------------------------------------------------------
// What the type must not allow, checked at compile time.

template <class T, class = void>
struct is_streamable : std::false_type {};
template <class T>
struct is_streamable<T, std::void_t<decltype(std::declval<std::ostream&>() << std::declval<const T&>())>>
    : std::true_type {};

static_assert(!is_streamable<secret>::value, "a secret must not have operator<<");
static_assert(!std::is_convertible_v<secret, std::string>, "no implicit conversion to std::string");
static_assert(!std::is_convertible_v<secret, std::string_view>, "no implicit conversion to std::string_view");
static_assert(!std::is_convertible_v<secret, const char*>, "no implicit conversion to const char*");
static_assert(!std::is_convertible_v<secret, bool>, "no implicit conversion to bool");
static_assert(!std::is_convertible_v<std::string, secret>, "making a secret is explicit");
static_assert(!std::is_constructible_v<log::field, std::string_view, const secret&>,
              "a secret cannot become a log field");
static_assert(std::is_nothrow_move_constructible_v<secret>);
static_assert(std::is_nothrow_move_assignable_v<secret>);

// ---------------------------------------------------------------------------------------

TEST(Secret, DefaultIsEmpty) {
  const secret s;
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.size(), 0U);
  EXPECT_EQ(s.reveal(), "");
}

TEST(Secret, RevealsItsValue) {
  const secret s("hunter2"s);
  EXPECT_FALSE(s.empty());
  EXPECT_EQ(s.size(), 7U);
  EXPECT_EQ(s.reveal(), "hunter2");
}

TEST(Secret, HoldsArbitraryBytes) {
  const std::string bytes = "a\0b\xFF\n"s;
  const secret s(bytes);
  EXPECT_EQ(s.size(), 5U);
  EXPECT_EQ(s.reveal(), bytes);
}

TEST(Secret, Equality) {
  EXPECT_TRUE(secret("abc"s) == secret("abc"s));
  EXPECT_FALSE(secret("abc"s) == secret("abd"s));
  EXPECT_FALSE(secret("abc"s) == secret("abcd"s));
  EXPECT_FALSE(secret("abcd"s) == secret("abc"s));
  EXPECT_FALSE(secret(""s) == secret("a"s));
  EXPECT_TRUE(secret() == secret(""s));
  EXPECT_TRUE(secret("a\0b"s) == secret("a\0b"s));
  EXPECT_FALSE(secret("a\0b"s) == secret("a\0c"s));
  EXPECT_TRUE(secret("x"s) != secret("y"s));  // != comes from == (C++20 rewriting)
}

TEST(Secret, CopyKeepsBoth) {
  const secret original("value"s);
  const secret copy(original);  // NOLINT(performance-unnecessary-copy-initialization)
  EXPECT_EQ(copy.reveal(), "value");
  EXPECT_EQ(original.reveal(), "value");
  EXPECT_TRUE(copy == original);
}

TEST(Secret, CopyAssignmentReplacesTheOldValue) {
  const secret source("new-value"s);
  secret target("a much longer old value that used more capacity"s);
  target = source;
  EXPECT_EQ(target.reveal(), "new-value");
  EXPECT_EQ(source.reveal(), "new-value");
}

TEST(Secret, MoveLeavesTheSourceEmpty) {
  secret source("moved"s);
  const secret target(std::move(source));
  EXPECT_EQ(target.reveal(), "moved");
  EXPECT_TRUE(source.empty());  // NOLINT(bugprone-use-after-move): the contract wipes it
  EXPECT_EQ(source.size(), 0U);
}

TEST(Secret, MoveAssignmentLeavesTheSourceEmpty) {
  secret source("moved"s);
  secret target("old"s);
  target = std::move(source);
  EXPECT_EQ(target.reveal(), "moved");
  EXPECT_TRUE(source.empty());  // NOLINT(bugprone-use-after-move)
}

TEST(Secret, MoveOfAShortValueAlsoEmptiesTheSource) {
  // Short strings live inside the object (SSO); a plain std::string move copies them and
  // may leave the source untouched. The secret must still be empty afterwards.
  secret source("ab"s);
  secret target(std::move(source));
  EXPECT_EQ(target.reveal(), "ab");
  EXPECT_TRUE(source.empty());  // NOLINT(bugprone-use-after-move)
}

TEST(Secret, SelfAssignmentKeepsTheValue) {
  secret s("self"s);
  secret& alias = s;
  s = alias;
  EXPECT_EQ(s.reveal(), "self");
  s = std::move(alias);
  EXPECT_EQ(s.reveal(), "self");
}

TEST(Secret, UsableAfterBeingMovedFrom) {
  secret source("x"s);
  secret sink(std::move(source));
  source = secret("again"s);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(source.reveal(), "again");
}

TEST(Wipe, EmptiesTheString) {
  std::string s = "password that is long enough to live on the heap";
  wipe(s);
  EXPECT_TRUE(s.empty());
  s = "still usable";
  EXPECT_EQ(s, "still usable");
}

TEST(Wipe, EmptiesAShrunkString) {
  std::string s(200, 'p');
  s.resize(3);
  wipe(s);
  EXPECT_TRUE(s.empty());
}

TEST(Wipe, EmptyAndShortStrings) {
  std::string empty;
  wipe(empty);
  EXPECT_TRUE(empty.empty());
  std::string short_one = "pw";
  wipe(short_one);
  EXPECT_TRUE(short_one.empty());
}

}  // namespace
}  // namespace tenantdb
