#include "tenantdb/ownership.hpp"

#include <gtest/gtest.h>

#include "expect_error.hpp"
#include "tenantdb/error.hpp"

namespace tenantdb {
namespace {

owner_record sample() {
  owner_record r;
  r.namespace_name = "team-a";
  r.name = "web \"shop\" \xC3\xBC";  // any UTF-8, quotes included
  r.store = "secret team-a/vc-db-web";
  r.database = "vcluster_web_abcdefghijklmnop";
  r.users = {r.database + "_a", r.database + "_b"};
  r.created = "2026-12-03T10:00:00Z";
  r.version = "0.1.0";
  return r;
}

std::string message_of(const ownership& o, const std::optional<std::string>& found) {
  try {
    must_adopt(o, "PostgreSQL role \"x\"", found, "COMMENT ON ROLE \"x\" IS NULL");
  } catch (const error& e) {
    EXPECT_EQ(e.kind(), error_kind::ownership);
    EXPECT_EQ(e.code(), exit_code::ownership);
    EXPECT_EQ(static_cast<int>(e.code()), 9);
    EXPECT_EQ(e.key(), "PostgreSQL role \"x\"");
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line";
    return e.what();
  }
  ADD_FAILURE() << "did not refuse";
  return {};
}

TEST(OwnerRecord, RoundTripsThroughJson) {
  const auto r = sample();
  const auto parsed = parse_owner_record(owner_record_json(r));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->namespace_name, r.namespace_name);
  EXPECT_EQ(parsed->name, r.name);
  EXPECT_EQ(parsed->store, r.store);
  EXPECT_EQ(parsed->database, r.database);
  EXPECT_EQ(parsed->users, r.users);
  EXPECT_EQ(parsed->created, r.created);
  EXPECT_EQ(parsed->version, r.version);
  EXPECT_EQ(parsed->deletion_policy, "retain");
}

TEST(OwnerRecord, RetainedStateRoundTripsAndALiveRecordCarriesNone) {
  auto r = sample();
  EXPECT_EQ(owner_record_json(r).find("state"), std::string::npos) << "a live record reads as it always has";
  r.state = "retained";
  r.retained_at = "2026-12-03T10:00:00Z";
  r.deletion_policy = "delete";
  const auto parsed = parse_owner_record(owner_record_json(r));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->state, "retained");
  EXPECT_EQ(parsed->retained_at, "2026-12-03T10:00:00Z");
  EXPECT_EQ(parsed->deletion_policy, "delete");
  EXPECT_TRUE(same_owner(*parsed, sample())) << "the state does not change the owner";
}

TEST(DeletionPolicy, RetainOrDeleteInAnyCaseAndNothingElse) {
  EXPECT_EQ(parse_deletion_policy("Retain"), "retain");
  EXPECT_EQ(parse_deletion_policy("DELETE"), "delete");
  for (const char* bad : {"", "purge", "retain ", "deleted", "keep"}) EXPECT_FALSE(parse_deletion_policy(bad)) << bad;
}

TEST(OwnerRecord, AnythingElseIsNoRecord) {
  for (const std::string text : {"", "just a comment", "{}", "[1]",
                                 "{\"owner\":\"someone\",\"namespace\":\"a\","
                                 "\"tenant\":\"b\",\"store\":\"c\"}",
                                 "{\"owner\":\"tenantdb\"}", "{\"owner\":"})
    EXPECT_FALSE(parse_owner_record(text)) << text;
}

TEST(MustAdopt, SameOwnerIsAdoptedWithoutWriting) {
  ownership o{sample(), false};
  auto theirs = sample();
  theirs.created = "2020-01-01T00:00:00Z";  // informational only
  theirs.version = "0.0.1";
  EXPECT_FALSE(must_adopt(o, "x", owner_record_json(theirs), "r"));
}

TEST(MustAdopt, UnrecordedObjectIsRefusedUnlessAdoptionWasAsked) {
  ownership o{sample(), false};
  EXPECT_NE(message_of(o, std::nullopt).find("--adopt-existing"), std::string::npos);
  EXPECT_NE(message_of(o, std::string("a comment someone wrote")).find("no tenantdb ownership record"),
            std::string::npos);
  o.adopt_existing = true;
  EXPECT_TRUE(must_adopt(o, "x", std::nullopt, "r"));
  EXPECT_TRUE(must_adopt(o, "x", std::string("a comment someone wrote"), "r"));
}

TEST(MustAdopt, AnotherOwnerIsRefusedEvenWithAdoption) {
  for (const bool adopt : {false, true}) {
    ownership o{sample(), adopt};
    auto other_store = sample();
    other_store.store = "secret team-a/other";
    const auto m1 = message_of(o, owner_record_json(other_store));
    EXPECT_NE(m1.find("secret team-a/other"), std::string::npos) << m1;
    EXPECT_NE(m1.find("COMMENT ON ROLE"), std::string::npos) << m1;

    auto other_name = sample();
    other_name.name = "shop";
    EXPECT_NE(message_of(o, owner_record_json(other_name)).find("tenant \"shop\" of this namespace"),
              std::string::npos);

    // Another namespace's tenant is not named.
    auto other_ns = sample();
    other_ns.namespace_name = "team-b";
    other_ns.name = "secret-project";
    const auto m3 = message_of(o, owner_record_json(other_ns));
    EXPECT_EQ(m3.find("team-b"), std::string::npos) << m3;
    EXPECT_EQ(m3.find("secret-project"), std::string::npos) << m3;
  }
}

}  // namespace
}  // namespace tenantdb
