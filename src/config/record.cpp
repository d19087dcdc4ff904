// The type-dependent parts of the field-table generators; see record.hpp.
#include "config/record_json.hpp"

#include <cmath>
#include <cstdio>

namespace capscale::config {

std::string to_string(FieldType t) {
  switch (t) {
    case FieldType::kInt: return "integer";
    case FieldType::kBool: return "true or false";
    case FieldType::kReal: return "number";
    case FieldType::kText: return "text";
    case FieldType::kEnum: return "name";
  }
  return "?";
}

nlohmann::json value_to_json(const FieldValue& v) {
  return std::visit([](const auto& x) { return nlohmann::json(x); }, v);
}

FieldValue value_from_json(const nlohmann::json& j, FieldType t, const std::string& where, const std::string& name) {
  auto bad = [&]() -> FieldValue { throw InputError(where, name, "must be " + to_string(t) + ", got " + j.dump()); };
  switch (t) {
    case FieldType::kInt:
      if (j.is_number_integer()) return j.get<int64_t>();
      if (j.is_number_float() && std::isfinite(j.get<double>()) && j.get<double>() == std::floor(j.get<double>()) &&
          std::abs(j.get<double>()) < 9.2e18) {
        return int64_t(j.get<double>());
      }
      return bad();
    case FieldType::kBool:
      if (j.is_boolean()) return j.get<bool>();
      if (j.is_number_integer() && (j.get<int64_t>() == 0 || j.get<int64_t>() == 1)) return j.get<int64_t>() == 1;
      return bad();
    case FieldType::kReal:
      if (j.is_number() && std::isfinite(j.get<double>())) return j.get<double>();
      return bad();
    case FieldType::kText:
    case FieldType::kEnum:
      if (j.is_string()) return j.get<std::string>();
      return bad();
  }
  return bad();
}

std::string format_cell(const FieldValue& v, const std::string& format, int width) {
  char buf[256];
  const bool left = format == "%s";
  std::string s;
  if (const auto* b = std::get_if<bool>(&v)) {
    s = *b ? "yes" : "NO";
  } else if (const auto* i = std::get_if<int64_t>(&v)) {
    std::snprintf(buf, sizeof buf, format.empty() ? "%lld" : format.c_str(), static_cast<long long>(*i));
    s = buf;
  } else if (const auto* d = std::get_if<double>(&v)) {
    std::snprintf(buf, sizeof buf, format.empty() ? "%.4g" : format.c_str(), *d);
    s = buf;
  } else {
    s = std::get<std::string>(v);
  }
  const size_t w = size_t(std::max(width, 0));
  if (s.size() < w) s = left ? s + std::string(w - s.size(), ' ') : std::string(w - s.size(), ' ') + s;
  return s;
}

}  // namespace capscale::config
