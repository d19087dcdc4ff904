// HDF5 columns from a field table (config/record.hpp): one column per field, named as the field,
// int64 for integers and booleans, float64 for reals, fixed-length strings sized by the field's
// max_chars for text and enums. A value that does not fit its column is refused, never cut.
#pragma once
#include <vector>

#include "config/record.hpp"
#include "results/h5.hpp"

namespace capscale::results {

/// The table's columns (derived fields included: files state what the row meant).
template <typename R>
std::vector<h5::Column> columns(const config::FieldTable<R>& table) {
  std::vector<h5::Column> out;
  for (const auto& f : table) {
    switch (f.type) {
      case config::FieldType::kInt:
      case config::FieldType::kBool: out.push_back({f.name, h5::ColType::kI64}); break;
      case config::FieldType::kReal: out.push_back({f.name, h5::ColType::kF64}); break;
      case config::FieldType::kText:
      case config::FieldType::kEnum: out.push_back({f.name, h5::ColType::kStr, f.max_chars ? f.max_chars : 64}); break;
    }
  }
  return out;
}

/// Writes `r` into the last row of `t`.
template <typename R>
void set_row(h5::Table& t, const R& r, const config::FieldTable<R>& table) {
  for (const auto& f : table) {
    const config::FieldValue v = f.get(r);
    if (const auto* b = std::get_if<bool>(&v)) t.set(f.name, int64_t(*b));
    else if (const auto* i = std::get_if<int64_t>(&v)) t.set(f.name, *i);
    else if (const auto* d = std::get_if<double>(&v)) t.set(f.name, *d);
    else t.set(f.name, std::get<std::string>(v));
  }
}

/// Row i of `t` as a record; fields without a column in `t` (files of an older schema) keep their
/// defaults, derived fields are not read back.
template <typename R>
R get_row(const h5::Table& t, size_t i, const config::FieldTable<R>& table, const std::string& where) {
  R r{};
  for (const auto& f : table) {
    if (f.derived || !f.set || !t.has(f.name)) continue;
    config::FieldValue v;
    switch (f.type) {
      case config::FieldType::kInt: v = t.get_i64(i, f.name); break;
      case config::FieldType::kBool: v = t.get_i64(i, f.name) != 0; break;
      case config::FieldType::kReal: v = t.get_f64(i, f.name); break;
      case config::FieldType::kText:
      case config::FieldType::kEnum: v = t.get_str(i, f.name); break;
    }
    config::check_value(f, v, where);
    f.set(r, v);
  }
  return r;
}

}  // namespace capscale::results
