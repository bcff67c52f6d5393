#pragma once
// Private: the small text helpers both engines use (names in messages, identifiers,
// passwords handed to a client library).

#include <cstddef>
#include <string>
#include <string_view>

#include "tenantdb/connector.hpp"
#include "tenantdb/secret.hpp"

namespace tenantdb::detail {

/// ASCII lower case (server messages are matched case-insensitively).
std::string lower(std::string_view text);

/// True if `needle` occurs in `haystack`.
bool contains(std::string_view haystack, std::string_view needle);

/// A name as it may appear in a message: printable ASCII only, at most 80 bytes and "...".
std::string printable(std::string_view text);

/// "host:port", an IPv6 host in brackets, for messages.
std::string endpoint(const server_address& server);

/// True if `name` is a tenantdb identifier of at most `max_length` bytes:
/// [a-z][a-z0-9_]* (what naming.cpp derives; the engines quote nothing else).
bool is_identifier(std::string_view name, std::size_t max_length);

/// Throws tenantdb::error (usage) if the password is empty or holds a NUL byte, which no
/// client library can pass on. `whose` names the account, never the value.
void check_password(const secret& password, std::string_view whose);

}  // namespace tenantdb::detail
