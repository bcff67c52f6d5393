#pragma once
/// \file
/// Base64 (RFC 4648 §4, standard alphabet, with padding) for Secret `data` values and
/// kubeconfig `*-data` keys. Private to tenantdb_common.

#include <optional>
#include <string>
#include <string_view>

namespace tenantdb {

/// Encodes `bytes` with the standard alphabet and `=` padding, no line breaks.
std::string base64_encode(std::string_view bytes);

/// Decodes canonical base64: the standard alphabet, length a multiple of four, one or two
/// `=` only at the end, unused trailing bits zero, no whitespace. Anything else gives
/// std::nullopt (and any partly decoded bytes are wiped).
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace tenantdb
