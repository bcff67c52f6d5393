#include "tenantdb/naming.hpp"

#include <array>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include "expect_error.hpp"
#include "tenantdb/error.hpp"

namespace tenantdb {
namespace {

using namespace std::string_literals;

bool is_engine_name(const std::string& name) {
  static const std::regex pattern("^[a-z][a-z0-9_]*$");
  return std::regex_match(name, pattern);
}

// The contract's hash, computed here independently: SHA-256 of "<namespace>/<name>",
// written as a bit string and cut into 5-bit groups (RFC 4648 base32, lowercase).
std::string expected_hash(const tenant& t) {
  const std::string input = t.namespace_name + "/" + t.name;
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  EXPECT_EQ(EVP_Digest(input.data(), input.size(), digest.data(), &len, EVP_sha256(), nullptr), 1);
  std::string bits;
  for (unsigned i = 0; i < len; ++i)
    for (int b = 7; b >= 0; --b) bits.push_back(((digest[i] >> b) & 1) != 0 ? '1' : '0');
  const std::string alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  std::string out;
  for (std::size_t i = 0; i + 5 <= bits.size() && out.size() < name_hash_length; i += 5)
    out.push_back(alphabet[std::stoul(bits.substr(i, 5), nullptr, 2)]);
  return out;
}

const std::vector<std::string>& hostile_names() {
  static const std::vector<std::string> names = {
      "it's",
      "say \"hi\"",
      "back\\slash",
      "`rm -rf`",
      "100%",
      "under_score",
      "semi;colon; DROP DATABASE postgres;--",
      "  spaces  around  ",
      "\xC3\xBCmlaut",                     // "ümlaut"
      "\xF0\x9F\x98\x80\xF0\x9F\x8E\x89",  // two emoji, nothing else
      "caf\xC3\xA9 \xE2\x98\x95 bar",      // "café ☕ bar"
      std::string(200, 'x'),
      std::string(253, 'z'),
      "!@#$%^&*()",
      "'\"\\`%_;",
      "_",
      "-",
      "123",
      "9lives",
      "0",
      "MiXeD-CaSe.Name",
      "a",
      "t",
  };
  return names;
}

std::vector<std::string> prefixes() {
  return {"", "vcluster_", "t", "a", "abcdefghijklm" /* 13 */, "abcdefghijkl_" /* 13 */, "x1_"};
}

TEST(DeriveNames, MatchesAnIndependentlyComputedReference) {
  // Reference hashes from the command line, not from this library:
  //   printf '%s' default/my-app | openssl dgst -sha256 -binary | base32 | tr A-Z a-z | cut -c1-16
  // With the 9-character default prefix and the 17-character "_<hash>" only 4 characters
  // of the folded name remain: "my_app" becomes "my_a".
  const tenant_names names = derive_names({"my-app", "default"});
  EXPECT_EQ(names.database, "vcluster_my_a_eqiw3vfamij4fjep");
  EXPECT_EQ(names.user_a, "vcluster_my_a_eqiw3vfamij4fjep_a");
  EXPECT_EQ(names.user_b, "vcluster_my_a_eqiw3vfamij4fjep_b");

  // "Web Shop ümlaut" folds to "web_shop_mlaut", cut to "web_", and the trailing '_' goes.
  const tenant_names cut = derive_names({"Web Shop \xC3\xBCmlaut", "team-a"});
  EXPECT_EQ(cut.database, "vcluster_web_j4he2hqrn3hxrm3w");
}

TEST(DeriveNames, HashHasAtLeast80Bits) {
  // 5 bits per base32 character: a collision with a chosen tenant takes ~2^80 hashes.
  EXPECT_GE(name_hash_length * 5, 80u);
  const tenant_names n = derive_names({"my-app", "default"});
  EXPECT_EQ(n.database.size(), max_base_name_length);
  EXPECT_EQ(n.database.substr(n.database.size() - name_hash_length), "eqiw3vfamij4fjep");
}

TEST(DeriveNames, HashSuffixIsBase32OfSha256OverNamespaceSlashName) {
  for (const auto& name : hostile_names()) {
    const tenant t{name, "team-a"};
    const std::string hash = expected_hash(t);
    for (const auto& prefix : prefixes()) {
      const std::string base = derive_names(t, prefix).database;
      ASSERT_GE(base.size(), name_hash_length + 1) << base;
      EXPECT_EQ(base.substr(base.size() - name_hash_length), hash) << "name " << name << " prefix " << prefix;
      EXPECT_EQ(base[base.size() - name_hash_length - 1], '_') << base;
    }
  }
}

TEST(DeriveNames, IsDeterministic) {
  for (const auto& name : hostile_names()) {
    for (const auto& prefix : prefixes()) {
      const tenant t{name, "ns-1"};
      const tenant_names first = derive_names(t, prefix);
      const tenant_names second = derive_names(tenant{std::string(name), "ns-1"}, std::string(prefix));
      EXPECT_EQ(first.database, second.database);
      EXPECT_EQ(first.user_a, second.user_a);
      EXPECT_EQ(first.user_b, second.user_b);
    }
  }
}

TEST(DeriveNames, HostileNamesGiveShortSafeNames) {
  for (const auto& name : hostile_names()) {
    const tenant t{name, "default"};
    ASSERT_NO_THROW(validate_tenant(t)) << "test input must be a valid tenant: " << name;
    for (const auto& prefix : prefixes()) {
      ASSERT_NO_THROW(validate_name_prefix(prefix)) << prefix;
      const tenant_names n = derive_names(t, prefix);
      SCOPED_TRACE("name \"" + name + "\" prefix \"" + prefix + "\" -> " + n.database);
      EXPECT_LE(n.database.size(), max_base_name_length);
      EXPECT_LE(n.user_a.size(), 32U);
      EXPECT_LE(n.user_b.size(), 32U);
      EXPECT_TRUE(is_engine_name(n.database));
      EXPECT_TRUE(is_engine_name(n.user_a));
      EXPECT_TRUE(is_engine_name(n.user_b));
      EXPECT_EQ(n.user_a, n.database + "_a");
      EXPECT_EQ(n.user_b, n.database + "_b");
      if (!prefix.empty()) {
        EXPECT_EQ(n.database.rfind(prefix, 0), 0U) << "the prefix leads the name";
      }
    }
  }
}

TEST(DeriveNames, FoldsToLowercaseLettersAndDigitsWithRunsAsUnderscore) {
  // Contract: <prefix><folded name>_<hash>; the folded name keeps lowercase ASCII letters
  // and digits, and every other run becomes one '_'. 12 characters of room with no prefix.
  const tenant t{"My--App..V2", "default"};
  EXPECT_EQ(derive_names(t, "").database, "my_app_v2_" + expected_hash(t));
  EXPECT_EQ(derive_names(t, "pre_").database, "pre_my_app_v2_" + expected_hash(t));
}

TEST(DeriveNames, NameStartingWithADigitStillStartsWithALetterWithoutPrefix) {
  for (const std::string& name : std::vector<std::string>{"123", "9lives", "0", "42-app"}) {
    const tenant_names n = derive_names({name, "default"}, "");
    EXPECT_TRUE(n.database.front() >= 'a' && n.database.front() <= 'z') << n.database;
    EXPECT_TRUE(is_engine_name(n.database)) << n.database;
  }
}

TEST(DeriveNames, NameOfOnlySymbolsStillGetsAName) {
  for (const std::string& name : std::vector<std::string>{"!@#$%^&*()", "\xF0\x9F\x98\x80", "___", "   "}) {
    for (const auto& prefix : prefixes()) {
      const tenant t{name, "default"};
      const tenant_names n = derive_names(t, prefix);
      EXPECT_TRUE(is_engine_name(n.database)) << n.database;
      EXPECT_LE(n.database.size(), max_base_name_length);
      EXPECT_EQ(n.database.find("__"), std::string::npos) << "no empty folded part between separators: " << n.database;
    }
  }
}

TEST(DeriveNames, LongestPrefixStillFits) {
  const std::string prefix = "abcdefghijklm";
  ASSERT_EQ(prefix.size(), 13U);
  const tenant_names n = derive_names({std::string(200, 'q'), "default"}, prefix);
  EXPECT_LE(n.database.size(), 30U);
  EXPECT_LE(n.user_a.size(), 32U);
  EXPECT_EQ(n.database.rfind(prefix, 0), 0U);
}

TEST(DeriveNames, SameNameInDifferentNamespacesDiffers) {
  const auto a = derive_names({"app", "team-a"});
  const auto b = derive_names({"app", "team-b"});
  EXPECT_NE(a.database, b.database);
  EXPECT_NE(a.user_a, b.user_a);
}

TEST(DeriveNames, NamesThatFoldAlikeDiffer) {
  const std::vector<std::string> names = {"a-b",
                                          "a_b",
                                          "A.B",
                                          "a b",
                                          "a--b",
                                          "A_B",
                                          "a__b",
                                          "a\xC3\xBC"
                                          "b"};
  std::set<std::string> bases;
  for (const auto& name : names) {
    const auto n = derive_names({name, "default"});
    EXPECT_TRUE(bases.insert(n.database).second) << "collision for \"" << name << "\": " << n.database;
  }
}

TEST(DeriveNames, LongNamesDifferingOnlyAfterTheCutDiffer) {
  const std::string common(150, 'k');
  std::set<std::string> bases;
  for (const std::string& tail : std::vector<std::string>{"1", "2", "x", "-", ""}) {
    for (const auto& prefix : prefixes()) {
      const auto n = derive_names({common + tail, "default"}, prefix);
      EXPECT_TRUE(bases.insert(prefix + "|" + n.database).second) << "collision: " << n.database;
    }
  }
}

TEST(DeriveNames, ThousandsOfRandomTenantsNeverCollide) {
  std::mt19937 rng(20240601);  // fixed seed: a failure reproduces
  const std::string ascii = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_. '\"\\%;`";
  const std::vector<std::string> wide = {"\xC3\xBC", "\xE2\x98\x95", "\xF0\x9F\x98\x80"};
  const std::vector<std::string> namespaces = {"default", "team-a", "team-b", "x"};
  std::set<std::string> tenants;
  std::set<std::string> names;  // databases, NOLOGIN roles and accounts share one namespace on PostgreSQL
  std::size_t generated = 0;
  while (generated < 5000) {
    std::string name;
    const std::size_t length = 1 + rng() % 40;
    for (std::size_t i = 0; i < length; ++i) {
      if (rng() % 10 == 0)
        name += wide[rng() % wide.size()];
      else
        name.push_back(ascii[rng() % ascii.size()]);
    }
    const tenant t{name, namespaces[rng() % namespaces.size()]};
    if (!tenants.insert(t.namespace_name + "/" + t.name).second) continue;  // same tenant twice
    ++generated;
    const auto n = derive_names(t);
    EXPECT_TRUE(names.insert(n.database).second) << "duplicate base for " << t.namespace_name << "/" << t.name;
    EXPECT_TRUE(names.insert(n.user_a).second) << n.user_a;
    EXPECT_TRUE(names.insert(n.user_b).second) << n.user_b;
  }
  EXPECT_EQ(names.size(), 3 * generated);
}

TEST(ValidateTenant, AcceptsOrdinaryAndHostileButWellFormedNames) {
  EXPECT_NO_THROW(validate_tenant({"my-app", "default"}));
  EXPECT_NO_THROW(validate_tenant({std::string(253, 'a'), "default"}));
  EXPECT_NO_THROW(validate_tenant({"\xF0\x9F\x98\x80", "a"}));
  EXPECT_NO_THROW(validate_tenant({"x", std::string(63, 'n')}));
}

TEST(ValidateTenant, RejectsEmptyName) {
  EXPECT_TENANTDB_ERROR(validate_tenant({"", "default"}), error_kind::usage, "--tenant");
}

TEST(ValidateTenant, RejectsNamesOver253Bytes) {
  EXPECT_TENANTDB_ERROR(validate_tenant({std::string(254, 'a'), "default"}), error_kind::usage, "--tenant");
  // Bytes, not characters: 127 two-byte characters are 254 bytes.
  std::string wide;
  for (int i = 0; i < 126; ++i) wide += "\xC3\xBC";
  EXPECT_NO_THROW(validate_tenant({wide + "a", "default"}));  // 253 bytes
  EXPECT_TENANTDB_ERROR(validate_tenant({wide + "\xC3\xBC", "default"}), error_kind::usage, "--tenant");
}

TEST(ValidateTenant, RejectsInvalidUtf8) {
  for (const std::string& bad :
       std::vector<std::string>{"\xFF"s, "abc\xC3"s, "\xC0\xAF"s /* overlong '/' */, "\xED\xA0\x80"s /* surrogate */,
                                "\xF4\x90\x80\x80"s /* > U+10FFFF */, "a\x80z"s}) {
    EXPECT_TENANTDB_ERROR(validate_tenant({bad, "default"}), error_kind::usage, "--tenant");
  }
}

TEST(ValidateTenant, RejectsAsciiControlCharacters) {
  for (const std::string& bad :
       std::vector<std::string>{"a\nb"s, "a\tb"s, "\x01"s, "del\x7f"s, "nul\0byte"s, "cr\r"s, "\x1b[31mred"s}) {
    EXPECT_TENANTDB_ERROR(validate_tenant({bad, "default"}), error_kind::usage, "--tenant");
  }
}

TEST(ValidateTenant, RejectsC1ControlCharacters) {
  // U+0080..U+009F are control characters too (Unicode category Cc). U+009B is the 8-bit
  // CSI that terminals honour, U+0085 is NEL, a line break for some log viewers.
  for (const std::string& bad : std::vector<std::string>{"a\xC2\x85z"s,
                                                         "\xC2\x9B"
                                                         "31m"s,
                                                         "\xC2\x80"s}) {
    EXPECT_TENANTDB_ERROR(validate_tenant({bad, "default"}), error_kind::usage, "--tenant");
  }
}

TEST(ValidateTenant, RejectsBadNamespaces) {
  for (const std::string& bad : std::vector<std::string>{""s, "Default"s, "-ns"s, "ns-"s, "a_b"s, "a.b"s,
                                                         std::string(64, 'n'), "ns/x"s, "n s"s, "\xC3\xBC"s}) {
    EXPECT_TENANTDB_ERROR(validate_tenant({"app", bad}), error_kind::usage, "--namespace");
  }
}

TEST(ValidateNamePrefix, AcceptsEmptyAndWellFormedPrefixes) {
  for (const std::string& ok :
       std::vector<std::string>{""s, "vcluster_"s, "a"s, "abcdefghijklm"s /* 13 */, "t1_"s, "a_b_c"s}) {
    EXPECT_NO_THROW(validate_name_prefix(ok)) << ok;
  }
}

TEST(ValidateNamePrefix, RejectsMalformedPrefixes) {
  for (const std::string& bad :
       std::vector<std::string>{"abcdefghijklmn"s /* 14 */, "abcdefghijklmnop"s /* 16, allowed before the hash grew */,
                                "1abc"s, "_abc"s, "Abc"s, "a-b"s, "a b"s, "a.b"s, "\xC3\xBC"s, "a\n"s, "a'"s}) {
    EXPECT_TENANTDB_ERROR(validate_name_prefix(bad), error_kind::usage, "--name-prefix");
  }
}

TEST(Dns1123, Labels) {
  EXPECT_TRUE(is_dns1123_label("a"));
  EXPECT_TRUE(is_dns1123_label("0"));
  EXPECT_TRUE(is_dns1123_label("kube-system"));
  EXPECT_TRUE(is_dns1123_label("a-1-b"));
  EXPECT_TRUE(is_dns1123_label(std::string(63, 'a')));
  EXPECT_FALSE(is_dns1123_label(std::string(64, 'a')));
  EXPECT_FALSE(is_dns1123_label(""));
  EXPECT_FALSE(is_dns1123_label("-a"));
  EXPECT_FALSE(is_dns1123_label("a-"));
  EXPECT_FALSE(is_dns1123_label("A"));
  EXPECT_FALSE(is_dns1123_label("a.b"));
  EXPECT_FALSE(is_dns1123_label("a_b"));
  EXPECT_FALSE(is_dns1123_label("a b"));
  EXPECT_FALSE(is_dns1123_label("a\0b"s));
}

TEST(Dns1123, Subdomains) {
  EXPECT_TRUE(is_dns1123_subdomain("a"));
  EXPECT_TRUE(is_dns1123_subdomain("vc-db-a"));
  EXPECT_TRUE(is_dns1123_subdomain("a.b.c"));
  EXPECT_TRUE(is_dns1123_subdomain("0.0"));
  EXPECT_TRUE(is_dns1123_subdomain(std::string(253, 'a')));
  std::string dotted;  // 253 characters made of dotted labels: 84 * "ab." + "c"
  for (int i = 0; i < 84; ++i) dotted += "ab.";
  dotted += "c";
  ASSERT_EQ(dotted.size(), 253U);
  EXPECT_TRUE(is_dns1123_subdomain(dotted)) << dotted;
  EXPECT_FALSE(is_dns1123_subdomain(std::string(254, 'a')));
  EXPECT_FALSE(is_dns1123_subdomain(""));
  EXPECT_FALSE(is_dns1123_subdomain(".a"));
  EXPECT_FALSE(is_dns1123_subdomain("a."));
  EXPECT_FALSE(is_dns1123_subdomain("a..b"));
  EXPECT_FALSE(is_dns1123_subdomain("a.-b"));
  EXPECT_FALSE(is_dns1123_subdomain("a-.b"));
  EXPECT_FALSE(is_dns1123_subdomain("A.b"));
  EXPECT_FALSE(is_dns1123_subdomain("a_b"));
  EXPECT_FALSE(is_dns1123_subdomain("a/b"));
}

TEST(Utf8, AcceptsWellFormedSequences) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("nul\0inside"s));
  EXPECT_TRUE(is_valid_utf8("\xC2\x80"));          // U+0080, smallest 2-byte
  EXPECT_TRUE(is_valid_utf8("\xDF\xBF"));          // U+07FF
  EXPECT_TRUE(is_valid_utf8("\xE0\xA0\x80"));      // U+0800, smallest 3-byte
  EXPECT_TRUE(is_valid_utf8("\xED\x9F\xBF"));      // U+D7FF, just below the surrogates
  EXPECT_TRUE(is_valid_utf8("\xEE\x80\x80"));      // U+E000, just above
  EXPECT_TRUE(is_valid_utf8("\xF0\x90\x80\x80"));  // U+10000
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF, the last code point
}

TEST(Utf8, RejectsMalformedSequences) {
  EXPECT_FALSE(is_valid_utf8("\x80"));                  // lone continuation
  EXPECT_FALSE(is_valid_utf8("\xC3"));                  // truncated
  EXPECT_FALSE(is_valid_utf8("\xE2\x98"));              // truncated 3-byte
  EXPECT_FALSE(is_valid_utf8("\xC3("));                 // bad continuation
  EXPECT_FALSE(is_valid_utf8("\xC0\x80"));              // overlong NUL
  EXPECT_FALSE(is_valid_utf8("\xE0\x80\xAF"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xF0\x80\x80\xAF"));      // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));          // U+D800
  EXPECT_FALSE(is_valid_utf8("\xED\xBF\xBF"));          // U+DFFF
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));      // U+110000
  EXPECT_FALSE(is_valid_utf8("\xF8\x88\x80\x80\x80"));  // 5-byte form
  EXPECT_FALSE(is_valid_utf8("\xFE"));
  EXPECT_FALSE(is_valid_utf8("\xFF"));
}

}  // namespace
}  // namespace tenantdb
