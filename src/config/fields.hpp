// Strict, typed reading of one YAML map: every getter validates range and type, and finish() rejects
// keys nobody read. Errors name the file, the key path and what is allowed, so a user can fix the
// config from the message alone. Non-finite numbers (.nan, .inf) are always rejected.
#pragma once
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config/enum_names.hpp"

namespace capscale::config {

class Fields {
 public:
  /// `where` is the file (and key prefix) used in error messages.
  Fields(const YAML::Node& node, std::string where);

  bool has(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  int64_t get_int(const std::string& key, int64_t min, int64_t max) const;
  int64_t get_int(const std::string& key, int64_t min, int64_t max, int64_t fallback) const;
  double get_double(const std::string& key, double min, double max) const;
  double get_double(const std::string& key, double min, double max, double fallback) const;
  bool get_bool(const std::string& key) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_enum(const std::string& key, const std::vector<std::string>& allowed) const;
  std::string get_enum(const std::string& key, const std::vector<std::string>& allowed,
                       const std::string& fallback) const;
  /// A nested map, read with its own Fields (marks the key as read).
  Fields get_map(const std::string& key) const;
  /// A string → string map (e.g. `sources`), any keys.
  std::map<std::string, std::string> get_string_map(const std::string& key) const;
  /// A sequence of scalars as strings.
  std::vector<std::string> get_string_list(const std::string& key) const;
  /// Raw node (marks it read); caller validates.
  YAML::Node get_node(const std::string& key) const;
  /// Keys of this map in file order.
  std::vector<std::string> keys() const;

  /// Throws InputError naming every key that was present but never read, with the allowed keys.
  void finish(const std::vector<std::string>& allowed) const;
  const std::string& where() const { return where_; }

 private:
  YAML::Node scalar(const std::string& key) const;
  [[noreturn]] void fail(const std::string& key, const std::string& problem) const;

  YAML::Node node_;
  std::string where_;
  mutable std::set<std::string> read_;
};

/// Loads a YAML file; throws InputError for a missing, unreadable, empty or malformed file, or one
/// whose top level is not a map.
YAML::Node load_yaml_file(const std::string& path);

/// Parses YAML text (used for inline specs); `where` names the origin in errors.
YAML::Node load_yaml_text(const std::string& text, const std::string& where);


}  // namespace capscale::config
