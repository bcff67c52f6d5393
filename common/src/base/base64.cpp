#include "base/base64.hpp"

#include <array>
#include <cstdint>

#include "tenantdb/secret.hpp"

namespace tenantdb {
namespace {

constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::uint8_t invalid = 0xff;

constexpr std::array<std::uint8_t, 256> make_decode_table() {
  std::array<std::uint8_t, 256> table{};
  for (auto& entry : table) entry = invalid;
  for (std::size_t i = 0; i < alphabet.size(); ++i)
    table[static_cast<unsigned char>(alphabet[i])] = static_cast<std::uint8_t>(i);
  return table;
}

constexpr std::array<std::uint8_t, 256> decode_table = make_decode_table();

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t group = std::uint32_t{static_cast<unsigned char>(bytes[i])} << 16 |
                                std::uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8 |
                                std::uint32_t{static_cast<unsigned char>(bytes[i + 2])};
    out.push_back(alphabet[group >> 18 & 0x3f]);
    out.push_back(alphabet[group >> 12 & 0x3f]);
    out.push_back(alphabet[group >> 6 & 0x3f]);
    out.push_back(alphabet[group & 0x3f]);
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t group = std::uint32_t{static_cast<unsigned char>(bytes[i])} << 16;
    if (rest == 2) group |= std::uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8;
    out.push_back(alphabet[group >> 18 & 0x3f]);
    out.push_back(alphabet[group >> 12 & 0x3f]);
    out.push_back(rest == 2 ? alphabet[group >> 6 & 0x3f] : '=');
    out.push_back('=');
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::size_t padding = 0;
  if (!text.empty() && text.back() == '=') padding = text[text.size() - 2] == '=' ? 2 : 1;

  std::string out;
  out.reserve(text.size() / 4 * 3);
  const auto fail = [&out] {
    wipe(out);
    return std::nullopt;
  };
  const std::size_t data_chars = text.size() - padding;
  std::uint32_t group = 0;
  for (std::size_t i = 0; i < data_chars; ++i) {
    const std::uint8_t value = decode_table[static_cast<unsigned char>(text[i])];
    if (value == invalid) return fail();  // includes '=' before the end and whitespace
    group = group << 6 | value;
    if (i % 4 == 3) {
      out.push_back(static_cast<char>(group >> 16 & 0xff));
      out.push_back(static_cast<char>(group >> 8 & 0xff));
      out.push_back(static_cast<char>(group & 0xff));
      group = 0;
    }
  }
  if (padding == 1) {
    // Three characters carry 18 bits: two bytes and two unused bits that must be zero.
    if ((group & 0x3) != 0) return fail();
    out.push_back(static_cast<char>(group >> 10 & 0xff));
    out.push_back(static_cast<char>(group >> 2 & 0xff));
  } else if (padding == 2) {
    // Two characters carry 12 bits: one byte and four unused bits that must be zero.
    if ((group & 0xf) != 0) return fail();
    out.push_back(static_cast<char>(group >> 4 & 0xff));
  }
  group = 0;
  return out;
}

}  // namespace tenantdb
