// JSON in and out from a field table (record.hpp); nested JSON objects for fields with a group.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "config/record.hpp"

namespace capscale::config {

nlohmann::json value_to_json(const FieldValue& v);
/// Converts JSON to the field's type; throws InputError(where, name) on a wrong type.
FieldValue value_from_json(const nlohmann::json& j, FieldType t, const std::string& where, const std::string& name);

/// The record as JSON: top-level fields, and nested objects for fields with a group.
template <typename R>
nlohmann::json record_to_json(const R& r, const FieldTable<R>& table) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& f : table) {
    nlohmann::json& dst = f.group.empty() ? j : j[f.group];
    dst[f.key()] = value_to_json(f.get(r));
  }
  return j;
}

/// Reads the fields present in `j` (missing ones keep their defaults, so older files still
/// read); derived fields are skipped. Type, range and enum names are checked.
template <typename R>
R record_from_json(const nlohmann::json& j, const FieldTable<R>& table, const std::string& where) {
  R r{};
  for (const auto& f : table) {
    if (f.derived || !f.set) continue;
    const nlohmann::json* src = &j;
    if (!f.group.empty()) {
      if (!j.contains(f.group)) continue;
      src = &j.at(f.group);
    }
    if (!src->is_object() || !src->contains(f.key())) continue;
    const FieldValue v = value_from_json(src->at(f.key()), f.type, where, f.name);
    check_value(f, v, where);
    f.set(r, v);
  }
  return r;
}

}  // namespace capscale::config
