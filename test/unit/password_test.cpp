#include "tenantdb/password.hpp"

#include <array>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "expect_error.hpp"
#include "tenantdb/error.hpp"

namespace tenantdb {
namespace {

// Quantile of the chi-square distribution with `k` degrees of freedom at the standard
// normal quantile `z`, by the Wilson–Hilferty approximation
//   X ≈ k (1 - 2/(9k) + z sqrt(2/(9k)))^3,
// which is accurate to a few percent for k in the tens and above, far inside the margin
// below. z = ±6 is a one-sided tail of about 1e-9 each way: a correct generator fails
// these tests about once in a billion runs.
double chi_square_quantile(double k, double z) {
  const double a = 2.0 / (9.0 * k);
  return k * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
}
constexpr double tail_z = 6.0;

std::size_t alphabet_index(char c) {
  return password_alphabet.find(c);
}

// Pearson's statistic for observed counts against equal expected counts.
double chi_square(const std::vector<std::size_t>& counts) {
  double total = 0;
  for (auto c : counts) total += static_cast<double>(c);
  EXPECT_GT(total, 0.0) << "no samples";
  const double expected = total / static_cast<double>(counts.size());
  double x = 0;
  for (auto c : counts) {
    const double d = static_cast<double>(c) - expected;
    x += d * d / expected;
  }
  return x;
}

TEST(Password, AlphabetIsLettersAndDigits) {
  EXPECT_EQ(password_alphabet.size(), 62U);
  std::set<char> distinct(password_alphabet.begin(), password_alphabet.end());
  EXPECT_EQ(distinct.size(), 62U);
}

TEST(Password, DefaultLengthIs32) {
  EXPECT_EQ(generate_password().size(), 32U);
}

TEST(Password, HonoursEveryAllowedLength) {
  for (std::size_t length = min_password_length; length <= max_password_length; ++length) {
    const secret p = generate_password(length);
    EXPECT_EQ(p.size(), length);
    EXPECT_EQ(p.reveal().size(), length);
  }
}

TEST(Password, UsesOnlyAlphabetCharacters) {
  for (int i = 0; i < 500; ++i) {
    const secret p = generate_password(max_password_length);
    for (char c : p.reveal()) ASSERT_NE(alphabet_index(c), std::string_view::npos) << "byte " << int(c);
  }
}

TEST(Password, RejectsLengthsOutsideTheBounds) {
  EXPECT_EQ(min_password_length, 16U);
  EXPECT_EQ(max_password_length, 80U);
  for (std::size_t bad : {std::size_t{0}, std::size_t{1}, std::size_t{15}, std::size_t{81}, std::size_t{1000}}) {
    EXPECT_TENANTDB_ERROR(generate_password(bad), error_kind::usage, "--password-length");
  }
  EXPECT_NO_THROW(generate_password(16));
  EXPECT_NO_THROW(generate_password(80));
}

TEST(Password, TwoPasswordsDiffer) {
  // 62^16 possibilities: a repeat among 2000 draws has probability about 1e-22.
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) EXPECT_TRUE(seen.insert(generate_password(16).reveal()).second);
}

TEST(Password, CharacterFrequenciesAreUniform) {
  // 200,000 characters, about 3226 per symbol. A modulo-biased generator (byte % 62) makes
  // 8 symbols 25% likelier, which alone adds roughly 8 * 800^2 / 3226 ≈ 1600 to the
  // statistic: far outside the bound.
  std::vector<std::size_t> counts(password_alphabet.size());
  for (int i = 0; i < 2500; ++i) {
    const secret p = generate_password(80);  // keep it alive: reveal() is a reference into it
    for (char c : p.reveal()) ++counts[alphabet_index(c)];
  }
  const double k = static_cast<double>(counts.size() - 1);
  const double x = chi_square(counts);
  EXPECT_LT(x, chi_square_quantile(k, tail_z)) << "too far from uniform";
  EXPECT_GT(x, chi_square_quantile(k, -tail_z)) << "suspiciously even: not random";
}

TEST(Password, FirstAndLastCharactersAreUniform) {
  // Catches generators that force, say, a leading letter.
  std::vector<std::size_t> first(password_alphabet.size());
  std::vector<std::size_t> last(password_alphabet.size());
  for (int i = 0; i < 12000; ++i) {
    const secret p = generate_password(16);
    ++first[alphabet_index(p.reveal().front())];
    ++last[alphabet_index(p.reveal().back())];
  }
  const double k = static_cast<double>(first.size() - 1);
  EXPECT_LT(chi_square(first), chi_square_quantile(k, tail_z));
  EXPECT_LT(chi_square(last), chi_square_quantile(k, tail_z));
}

TEST(Password, ConsecutiveCharactersAreIndependent) {
  // Pairs of neighbours over 62 * 62 cells, about 50 per cell: catches a generator that,
  // for instance, never repeats a character.
  const std::size_t n = password_alphabet.size();
  std::vector<std::size_t> pairs(n * n);
  for (int i = 0; i < 2500; ++i) {
    const secret password = generate_password(80);
    const std::string& p = password.reveal();
    for (std::size_t j = 0; j + 1 < p.size(); j += 2) ++pairs[alphabet_index(p[j]) * n + alphabet_index(p[j + 1])];
  }
  const double k = static_cast<double>(pairs.size() - 1);
  EXPECT_LT(chi_square(pairs), chi_square_quantile(k, tail_z));
  EXPECT_GT(chi_square(pairs), chi_square_quantile(k, -tail_z));
}

}  // namespace
}  // namespace tenantdb
