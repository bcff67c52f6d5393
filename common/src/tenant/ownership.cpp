#include "tenantdb/ownership.hpp"

#include <chrono>
#include <filesystem>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "tenantdb/error.hpp"
#include "tenantdb/time.hpp"

namespace tenantdb {
namespace {

constexpr const char* marker = "tenantdb";
constexpr int format_version = 1;

std::string member(const rapidjson::Value& doc, const char* key) {
  const auto it = doc.FindMember(key);
  if (it == doc.MemberEnd() || !it->value.IsString()) return {};
  return {it->value.GetString(), it->value.GetStringLength()};
}

}  // namespace

std::string owner_record_json(const owner_record& r) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  const auto str = [&](const char* key, const std::string& value) {
    w.Key(key);
    w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
  };
  w.StartObject();
  str("owner", marker);
  w.Key("format");
  w.Int(format_version);
  str("namespace", r.namespace_name);
  str("tenant", r.name);
  str("store", r.store);
  str("database", r.database);
  w.Key("users");
  w.StartArray();
  for (const auto& u : r.users) w.String(u.data(), static_cast<rapidjson::SizeType>(u.size()));
  w.EndArray();
  str("created", r.created);
  str("version", r.version);
  str("deletionPolicy", r.deletion_policy);
  // Only once deprovisioned: a live tenant's record reads as it always has.
  if (!r.state.empty()) str("state", r.state);
  if (!r.retained_at.empty()) str("retainedAt", r.retained_at);
  if (!r.orphaned_since.empty()) str("orphanedSince", r.orphaned_since);
  if (!r.policy_from.empty()) str("policyFrom", r.policy_from);
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

std::optional<owner_record> parse_owner_record(std::string_view text) {
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  if (doc.HasParseError() || !doc.IsObject() || member(doc, "owner") != marker) return std::nullopt;
  owner_record r;
  r.namespace_name = member(doc, "namespace");
  r.name = member(doc, "tenant");
  r.store = member(doc, "store");
  r.database = member(doc, "database");
  if (const auto it = doc.FindMember("users"); it != doc.MemberEnd() && it->value.IsArray())
    for (const auto& u : it->value.GetArray())
      if (u.IsString()) r.users.emplace_back(u.GetString(), u.GetStringLength());
  r.created = member(doc, "created");
  r.version = member(doc, "version");
  r.deletion_policy = member(doc, "deletionPolicy");
  r.state = member(doc, "state");
  r.retained_at = member(doc, "retainedAt");
  r.orphaned_since = member(doc, "orphanedSince");
  r.policy_from = member(doc, "policyFrom");
  if (r.namespace_name.empty() || r.name.empty() || r.store.empty()) return std::nullopt;
  return r;
}

bool same_owner(const owner_record& a, const owner_record& b) {
  return a.namespace_name == b.namespace_name && a.name == b.name && a.store == b.store;
}

bool must_adopt(const ownership& owner, std::string_view object, const std::optional<std::string>& found,
                std::string_view release) {
  const std::optional<owner_record> theirs = found ? parse_owner_record(*found) : std::nullopt;
  if (theirs && same_owner(*theirs, owner.record)) return false;
  if (!theirs) {
    if (owner.adopt_existing) return true;
    throw error(error_kind::ownership,
                std::string(object) +
                    " already exists and carries no tenantdb ownership record: it was not made for "
                    "this tenant, so it is left alone; if it is this tenant's (made by hand or by an older tenantdb), "
                    "rerun with --adopt-existing")
        .about(std::string(object));
  }
  // Another owner. Its identity is named only within the tenant's own namespace: tenants
  // of other namespaces learn nothing about each other.
  const std::string how = "or have an admin release it (" + std::string(release) + ") and rerun with --adopt-existing";
  std::string message = std::string(object);
  if (theirs->namespace_name == owner.record.namespace_name && theirs->name == owner.record.name)
    message += " belongs to this tenant with its credentials in " + theirs->store + ", not in " + owner.record.store +
               ": refusing to take it over, which would reset the other workload's passwords; use that store "
               "(--secret-name or --output-dir), another --tenant or --name-prefix, " +
               how;
  else
    message +=
        " belongs to " +
        (theirs->namespace_name == owner.record.namespace_name ? "tenant \"" + theirs->name + "\" of this namespace"
                                                               : std::string("a tenant of another namespace")) +
        ": refusing to take it over; use another --tenant or --name-prefix, " + how;
  throw error(error_kind::ownership, message).about(std::string(object));
}

std::optional<std::string> parse_deletion_policy(std::string_view text) {
  std::string lowered;
  for (const char c : text) lowered += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (lowered == policy_retain || lowered == policy_delete) return lowered;
  return std::nullopt;
}

std::string normalise_store_name(const std::string& store) {
  static constexpr std::string_view directory = "directory ";
  if (!store.starts_with(directory)) return store;
  std::error_code ec;
  auto path = std::filesystem::absolute(store.substr(directory.size()), ec).lexically_normal();
  if (ec) return store;
  if (path.has_relative_path() && path.filename().empty()) path = path.parent_path();
  return std::string(directory) + path.string();
}

std::string now_rfc3339() {
  return format_rfc3339(std::chrono::system_clock::now());
}

}  // namespace tenantdb
