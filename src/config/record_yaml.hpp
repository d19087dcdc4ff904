// Strict YAML input from a field table (record.hpp) through the typed reader of fields.hpp.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "config/fields.hpp"
#include "config/record.hpp"

namespace capscale::config {

/// Reads the table's user-input fields present in a YAML map (strictly typed, range- and
/// name-checked) into `r`; a name in `required` that is absent is an error. Returns the names
/// read. The caller calls Fields::finish with the allowed keys.
template <typename R>
std::vector<std::string> read_yaml(const Fields& y, R& r, const FieldTable<R>& table,
                                   const std::vector<std::string>& required = {}) {
  std::vector<std::string> read;
  for (const auto& name : required)
    if (!y.has(name)) throw InputError(y.where(), name, "is required");
  for (const auto& f : table) {
    if (f.derived || !f.set || !f.user_input || !y.has(f.name)) continue;
    FieldValue v;
    switch (f.type) {
      case FieldType::kInt:
        v = f.max > f.min ? y.get_int(f.name, f.min, f.max) : y.get_int(f.name, INT64_MIN, INT64_MAX);
        break;
      case FieldType::kBool: v = y.get_bool(f.name); break;
      case FieldType::kReal: v = y.get_double(f.name, -1e300, 1e300); break;
      case FieldType::kText: v = f.allowed.empty() ? y.get_string(f.name) : y.get_enum(f.name, f.allowed); break;
      case FieldType::kEnum: v = y.get_enum(f.name, f.allowed); break;
    }
    check_value(f, v, y.where());
    f.set(r, v);
    read.push_back(f.name);
  }
  return read;
}

}  // namespace capscale::config
