#pragma once
/// \file
/// Who a tenant's database and accounts belong to. Every object tenantdb creates on the
/// shared server carries an ownership record, written by the admin in a place the tenant
/// cannot write (PostgreSQL: the comment on the group and login roles, which only
/// CREATEROLE holders may set; MySQL/MariaDB: the admin-only table tenantdb.owners).
/// An object that already carries the tenant's derived name is taken over only if its
/// record names the same owner; one with another owner's record, or with none, is refused
/// (error_kind::ownership, exit code 9) unless the operator adopts unrecorded objects
/// deliberately (--adopt-existing).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tenantdb {

/// The record kept for each tenant object; also the tenant inventory's entry.
struct owner_record {
  std::string namespace_name;  ///< tenant namespace, as given
  std::string name;            ///< tenant name, as given
  std::string store;           ///< where its credentials live: "secret ns/name" or "directory /abs/path"
  std::string database;        ///< derived names
  std::vector<std::string> users;
  std::string created;  ///< RFC 3339 UTC, when the record was written
  std::string version;  ///< tenantdb version that wrote it
  std::string deletion_policy = "retain";
  /// "" while the tenant is live; "retained" once deprovisioned with the retain policy
  /// (logins revoked, data kept), until a normal init run of the same owner restores it.
  std::string state;
  std::string retained_at;  ///< RFC 3339 UTC, set with state "retained"
  /// RFC 3339 UTC: when an orphan sweep first found the owner gone (its credentials
  /// Secret answered 404); "" while the owner is there. The sweep clears it when the
  /// owner is back, and applies the policy once it is older than the grace period.
  std::string orphaned_since;
  /// "annotation" when deletion_policy was copied from the credentials Secret's
  /// annotation tenantdb.io/deletion-policy by a sweep that saw the owner present
  /// (so the policy is still known once the Secret is gone); "" for the default
  /// written at creation, which the sweep does not treat as a choice.
  std::string policy_from;
};

/// The deletion policies: what deprovisioning does with a tenant's objects.
inline constexpr std::string_view policy_retain = "retain";
inline constexpr std::string_view policy_delete = "delete";

/// "retain" or "delete" for `text` in any case; std::nullopt for anything else.
std::optional<std::string> parse_deletion_policy(std::string_view text);

/// A credentials store's name as ownership records keep it: a directory store ("directory
/// <path>") by its absolute, normalised path, so "out" and "./out/" are the same owner;
/// anything else as it is.
std::string normalise_store_name(const std::string& store);

/// What provisioning claims, and whether unrecorded objects may be adopted.
struct ownership {
  owner_record record;
  bool adopt_existing = false;
};

/// The record as one JSON object (at most a few hundred bytes; holds no secret).
std::string owner_record_json(const owner_record& record);

/// Parses a record written by owner_record_json; std::nullopt for anything else (no
/// record, someone's free-text comment, malformed JSON).
std::optional<owner_record> parse_owner_record(std::string_view text);

/// Same owner: same tenant namespace and name and the same credentials store. The
/// timestamps and version are informational.
bool same_owner(const owner_record& a, const owner_record& b);

/// What to do with an object that already exists. `object` names it for messages
/// ("PostgreSQL role \"x\""), `found` is the text of its record (std::nullopt if it has
/// none) and `release` says how an admin removes a record. Returns false if the object is
/// already this owner's, true if it has no record and owner.adopt_existing allows writing
/// one; throws tenantdb::error (ownership) otherwise, naming the object and what to do.
bool must_adopt(const ownership& owner, std::string_view object, const std::optional<std::string>& found,
                std::string_view release);

/// The current time as RFC 3339 UTC with seconds ("2026-12-03T10:14:26Z").
std::string now_rfc3339();

}  // namespace tenantdb
