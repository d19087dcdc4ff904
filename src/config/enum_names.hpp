// One name table per enum (EnumNames<E>): names for output, and parsing that refuses an unknown
// name with the allowed ones listed, never a silent default. Light on purpose: headers that declare
// enums (chip, model, parallel configs) include this and nothing heavier.
#pragma once
#include <array>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.hpp"

namespace capscale::config {

/// Joins strings with ", " for "allowed: ..." messages.
std::string join(const std::vector<std::string>& items);

/// One name table per enum: specialise with `static constexpr std::array<std::pair<E,
/// std::string_view>, N> kNames`. nlohmann's NLOHMANN_JSON_SERIALIZE_ENUM is not used on purpose:
/// it maps an unknown string to the first enumerator without a word.
template <typename E>
struct EnumNames;

template <typename E>
std::string enum_name(E e) {
  for (const auto& [v, n] : EnumNames<E>::kNames)
    if (v == e) return std::string(n);
  return "?";
}

template <typename E>
std::vector<std::string> enum_names() {
  std::vector<std::string> out;
  for (const auto& kv : EnumNames<E>::kNames) out.emplace_back(kv.second);
  return out;
}

/// Parses a name of E; throws InputError(where, field, "must be one of: ...; got '...'").
template <typename E>
E parse_enum(const std::string& s, const std::string& where, const std::string& field) {
  for (const auto& [v, n] : EnumNames<E>::kNames)
    if (n == s) return v;
  throw InputError(where, field, "must be one of: " + join(enum_names<E>()) + "; got '" + s + "'");
}

}  // namespace capscale::config
