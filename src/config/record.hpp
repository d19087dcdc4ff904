// A record is described once: a field table (name, type, unit, default, help, and how the field
// shows in each output) from which CLI flags, JSON in/out, HDF5 columns, `#` text tables, YAML
// keys and sweep keys are generated (record_json.hpp, record_yaml.hpp and below; STYLE.md "A record is described once"; the idea of HighFive's
// HIGHFIVE_REGISTER_TYPE and nlohmann's NLOHMANN_DEFINE_TYPE_*). A new knob is one line in its
// record's table, and no output can forget it. Enums have one name table each (EnumNames<E>);
// an unknown string is an InputError listing the allowed names, never a silent default.
#pragma once
#include <array>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/error.hpp"
#include "config/enum_names.hpp"

namespace capscale::config {

enum class FieldType : uint8_t { kInt, kBool, kReal, kText, kEnum };
std::string to_string(FieldType t);
using FieldValue = std::variant<int64_t, bool, double, std::string>;

/// When a field appears in the one-line text form of its record (e.g. "tp8 pp4 dp2 cp1 mbs1 sel z1 sp").
enum class TextWhen : uint8_t { kNever, kAlways, kNonDefault };

/// One field of record R.
template <typename R>
struct Field {
  std::string name;  ///< snake_case: JSON key, HDF5 column, YAML key (Megatron vocabulary)
  FieldType type = FieldType::kInt;
  std::string unit;  ///< "" when dimensionless; "s", "GB", "tokens/s", ...
  std::string help;
  FieldValue def;                    ///< the default (a default-constructed R holds it)
  std::vector<std::string> allowed;  ///< kEnum: names accepted on input
  int64_t min = 0, max = 0;          ///< kInt: inclusive range on input
  std::string flag;                  ///< CLI long flag without "--"; "" when not a flag
  bool flag_negates = false;         ///< a kBool flag that sets false (--no-flash-attention)
  std::string group;                 ///< nested JSON object ("parallel", "breakdown_s"); "" top level
  std::string json_key;              ///< key inside the JSON object ("" → name)
  std::string text;                  ///< text form: prefix ("tp" → "tp8") or, for a kBool, the word shown
  TextWhen text_when = TextWhen::kNever;
  bool in_key = false;               ///< part of a sweep point's key
  /// Left out of the key at its default: a field added after keys were first written keeps the
  /// keys of earlier plans (and so their sweeps' resumption) unchanged.
  bool key_omits_default = false;
  bool derived = false;              ///< output only (computed from other fields); never read back
  bool user_input = true;            ///< a flag / YAML key (false: read back from files and JSON only)
  size_t max_chars = 0;              ///< kText/kEnum: longest value a file column holds
  std::string header;                ///< `#` table column header ("" → not in the table)
  int width = 0;                     ///< table column width
  std::string format;                ///< printf conversion for the table ("%.4g", "%.3f", "%s", "%lld")
  std::function<FieldValue(const R&)> get;
  std::function<void(R&, const FieldValue&)> set;  ///< null when derived

  const std::string& key() const { return json_key.empty() ? name : json_key; }
};

template <typename R>
using FieldTable = std::vector<Field<R>>;

namespace detail {
template <typename T>
constexpr FieldType field_type() {
  if constexpr (std::is_same_v<T, bool>) return FieldType::kBool;
  else if constexpr (std::is_integral_v<T>) return FieldType::kInt;
  else if constexpr (std::is_floating_point_v<T>) return FieldType::kReal;
  else if constexpr (std::is_same_v<T, std::string>) return FieldType::kText;
  else return FieldType::kEnum;
}
template <typename T>
FieldValue to_value(const T& v) {
  if constexpr (std::is_same_v<T, bool>) return v;
  else if constexpr (std::is_integral_v<T>) return int64_t(v);
  else if constexpr (std::is_floating_point_v<T>) return double(v);
  else if constexpr (std::is_same_v<T, std::string>) return v;
  else return enum_name(v);
}
template <typename T>
T from_value(const FieldValue& v, const std::string& where, const std::string& field) {
  if constexpr (std::is_same_v<T, bool>) return std::get<bool>(v);
  else if constexpr (std::is_integral_v<T>) return T(std::get<int64_t>(v));
  else if constexpr (std::is_floating_point_v<T>) return T(std::get<double>(v));
  else if constexpr (std::is_same_v<T, std::string>) return std::get<std::string>(v);
  else return parse_enum<T>(std::get<std::string>(v), where, field);
}
}  // namespace detail

/// A field bound to member `m` of R; type, default and (for enums) allowed names follow the
/// member. The caller sets the descriptive parts (unit, help, flag, text, ...) on the result.
template <typename R, typename T>
Field<R> member(std::string name, T R::*m, std::string help) {
  Field<R> f;
  f.name = std::move(name);
  f.type = detail::field_type<T>();
  f.help = std::move(help);
  f.def = detail::to_value(R{}.*m);
  if constexpr (std::is_enum_v<T>) {
    f.allowed = enum_names<T>();
    for (const auto& n : f.allowed) f.max_chars = std::max(f.max_chars, n.size() + 1);
  }
  f.get = [m](const R& r) { return detail::to_value(r.*m); };
  f.set = [m, n = f.name](R& r, const FieldValue& v) { r.*m = detail::from_value<T>(v, "value", n); };
  return f;
}

/// A read-only field computed from the record (output only).
template <typename R>
Field<R> derived(std::string name, FieldType type, std::string help, std::function<FieldValue(const R&)> get) {
  Field<R> f;
  f.name = std::move(name);
  f.type = type;
  f.help = std::move(help);
  f.derived = true;
  f.get = std::move(get);
  return f;
}

/// The fields of an inner record (R::*sub) as fields of the outer record, in JSON object `group`.
template <typename Outer, typename Inner>
void append_nested(FieldTable<Outer>& out, Inner Outer::*sub, const FieldTable<Inner>& inner, const std::string& group) {
  for (const auto& fi : inner) {
    Field<Outer> f;
    f.name = fi.name, f.type = fi.type, f.unit = fi.unit, f.help = fi.help, f.def = fi.def, f.allowed = fi.allowed;
    f.min = fi.min, f.max = fi.max, f.flag = fi.flag, f.flag_negates = fi.flag_negates, f.group = group;
    f.json_key = fi.json_key, f.text = fi.text, f.text_when = fi.text_when, f.in_key = fi.in_key, f.derived = fi.derived;
    f.user_input = fi.user_input;
    f.max_chars = fi.max_chars, f.header = fi.header, f.width = fi.width, f.format = fi.format;
    f.get = [sub, g = fi.get](const Outer& o) { return g(o.*sub); };
    if (fi.set) f.set = [sub, s = fi.set](Outer& o, const FieldValue& v) { s(o.*sub, v); };
    out.push_back(std::move(f));
  }
}

/// Checks a value against the field's type, range and allowed names; throws InputError(where, name).
template <typename R>
void check_value(const Field<R>& f, const FieldValue& v, const std::string& where) {
  if (f.type == FieldType::kInt) {
    const int64_t x = std::get<int64_t>(v);
    if (f.max > f.min && (x < f.min || x > f.max)) {
      throw InputError(where, f.name, "must be in [" + std::to_string(f.min) + ", " + std::to_string(f.max) + "], got " + std::to_string(x));
    }
  } else if (f.type == FieldType::kEnum || (f.type == FieldType::kText && !f.allowed.empty())) {
    const auto& s = std::get<std::string>(v);
    bool ok = false;
    for (const auto& a : f.allowed) ok = ok || a == s;
    if (!ok) throw InputError(where, f.name, "must be one of: " + join(f.allowed) + "; got '" + s + "'");
  }
  if ((f.type == FieldType::kText || f.type == FieldType::kEnum) && f.max_chars > 0 &&
      std::get<std::string>(v).size() + 1 > f.max_chars) {
    throw InputError(where, f.name, "is " + std::to_string(std::get<std::string>(v).size()) + " characters long; at most " +
                                        std::to_string(f.max_chars - 1) + " fit a result file's column");
  }
}

/// Every text field of `r` fits its file column (checked before work starts, so no result is
/// ever cut or refused half-way).
template <typename R>
void check_text_lengths(const R& r, const FieldTable<R>& table, const std::string& where) {
  for (const auto& f : table)
    if (f.type == FieldType::kText || f.type == FieldType::kEnum) check_value(f, f.get(r), where);
}

/// Names of the table's user-input fields (allowed YAML keys).
template <typename R>
std::vector<std::string> input_names(const FieldTable<R>& table) {
  std::vector<std::string> out;
  for (const auto& f : table)
    if (!f.derived && f.set && f.user_input) out.push_back(f.name);
  return out;
}

/// The fields of `table` whose names are (or, with keep = false, are not) in `names`.
template <typename R>
FieldTable<R> select(const FieldTable<R>& table, const std::vector<std::string>& names, bool keep = true) {
  FieldTable<R> out;
  for (const auto& f : table) {
    bool listed = false;
    for (const auto& n : names) listed = listed || n == f.name;
    if (listed == keep) out.push_back(f);
  }
  return out;
}

// ---- text ----------------------------------------------------------------------------------

/// One token of a field's text form ("tp8", "sel", "sp"), or "" when it is not shown.
/// A real number in text forms and keys: shortest round-trip-ish form ("1.25", not "1.250000").
inline std::string real_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

template <typename R>
std::string text_token(const Field<R>& f, const R& r) {
  if (f.text_when == TextWhen::kNever) return "";
  const FieldValue v = f.get(r);
  if (f.text_when == TextWhen::kNonDefault && v == f.def) return "";
  switch (f.type) {
    case FieldType::kBool: return std::get<bool>(v) == std::get<bool>(f.def) ? "" : f.text;
    case FieldType::kInt: return f.text + std::to_string(std::get<int64_t>(v));
    case FieldType::kEnum: return f.text + std::get<std::string>(v).substr(0, 3);
    case FieldType::kText: return f.text + std::get<std::string>(v);
    case FieldType::kReal: return f.text + real_text(std::get<double>(v));
  }
  return "";
}

/// The record's one-line text form: the shown tokens joined by `sep`.
template <typename R>
std::string to_text(const R& r, const FieldTable<R>& table, const std::string& sep = " ") {
  std::string out;
  for (const auto& f : table) {
    const std::string t = text_token(f, r);
    if (!t.empty()) out += (out.empty() ? "" : sep) + t;
  }
  return out;
}

/// A sweep key from the in_key fields: ints as prefix+value (the text prefix, else the name),
/// enums and text as they are, bools by their word when they differ from the default; joined by
/// `sep`. Unambiguous for a fixed table.
template <typename R>
std::string key_text(const R& r, const FieldTable<R>& table, const std::string& sep = "-") {
  std::string out;
  for (const auto& f : table) {
    if (!f.in_key) continue;
    const FieldValue v = f.get(r);
    if (f.key_omits_default && v == f.def) continue;
    std::string t;
    switch (f.type) {
      case FieldType::kBool: t = std::get<bool>(v) == std::get<bool>(f.def) ? "" : f.text; break;
      case FieldType::kInt: t = (f.text.empty() ? f.name : f.text) + std::to_string(std::get<int64_t>(v)); break;
      case FieldType::kEnum:
      case FieldType::kText: t = std::get<std::string>(v); break;
      case FieldType::kReal: t = (f.text.empty() ? f.name : f.text) + real_text(std::get<double>(v)); break;
    }
    if (!t.empty()) out += (out.empty() ? "" : sep) + t;
  }
  return out;
}

/// One cell of a `#` table: printf `format` of the value, right-aligned in `width` ("%s"
/// left-aligned); a kBool prints yes/NO.
std::string format_cell(const FieldValue& v, const std::string& format, int width);

/// The `#` header line of the table of fields with a header (nccl-tests style: units in brackets).
template <typename R>
std::string table_header(const FieldTable<R>& table) {
  std::string out = "#";
  bool first = true;
  for (const auto& f : table) {
    if (f.header.empty()) continue;
    std::string h = first ? " " + f.header : f.header;  // the '#' takes the row's leading blank
    const size_t w = size_t(f.width);
    if (h.size() < w) h = f.format == "%s" ? h + std::string(w - h.size(), ' ') : std::string(w - h.size(), ' ') + h;
    out += (first ? "" : " ") + h;
    first = false;
  }
  return out.substr(0, out.find_last_not_of(' ') + 1);  // no trailing blanks after the last column
}

/// One row of that table.

template <typename R>
std::string table_row(const R& r, const FieldTable<R>& table) {
  std::string out;
  for (const auto& f : table) {
    if (f.header.empty()) continue;
    out += ' ';
    out += format_cell(f.get(r), f.format, f.width);
  }
  return out.substr(0, out.find_last_not_of(' ') + 1);
}

}  // namespace capscale::config
