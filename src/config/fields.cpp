// Implementation of the strict YAML field reader; see fields.hpp.
#include "config/fields.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <yaml-cpp/eventhandler.h>

#include "common/error.hpp"

namespace capscale::config {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out;
}

Fields::Fields(const YAML::Node& node, std::string where) : node_(node), where_(std::move(where)) {
  if (!node_.IsMap()) throw InputError(where_, "", "must be a YAML map of key: value");
  // yaml-cpp keeps duplicate keys and lookups return the first, so a later `num_layers: 400` would
  // be silently ignored: reject them.
  std::set<std::string> seen;
  for (const auto& kv : node_) {
    if (!kv.first.IsScalar()) throw InputError(where_, "", "has a key that is not a plain name");
    if (!seen.insert(kv.first.Scalar()).second) throw InputError(where_, kv.first.Scalar(), "appears more than once");
  }
}

void Fields::fail(const std::string& key, const std::string& problem) const {
  throw InputError(where_, key, problem);
}

bool Fields::has(const std::string& key) const { return bool(node_[key]); }

YAML::Node Fields::scalar(const std::string& key) const {
  YAML::Node n = node_[key];
  read_.insert(key);
  if (!n) fail(key, "is required");
  if (!n.IsScalar()) fail(key, "must be a single value, not a list or map");
  return n;
}

std::string Fields::get_string(const std::string& key) const { return scalar(key).Scalar(); }

std::string Fields::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : (read_.insert(key), fallback);
}

int64_t Fields::get_int(const std::string& key, int64_t min, int64_t max) const {
  const std::string text = scalar(key).Scalar();
  // Accept integral floats like 1.0e9 too, but not 2.5.
  errno = 0;
  char* end = nullptr;
  const long double v = std::strtold(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(static_cast<double>(v)) ||
      v != std::floor(v)) {
    fail(key, "must be an integer, got '" + text + "'");
  }
  if (v < static_cast<long double>(min) || v > static_cast<long double>(max)) {
    fail(key, "must be in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " + text);
  }
  return static_cast<int64_t>(v);
}

int64_t Fields::get_int(const std::string& key, int64_t min, int64_t max, int64_t fallback) const {
  return has(key) ? get_int(key, min, max) : (read_.insert(key), fallback);
}

double Fields::get_double(const std::string& key, double min, double max) const {
  const std::string text = scalar(key).Scalar();
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v)) {
    fail(key, "must be a finite number, got '" + text + "'");
  }
  if (v < min || v > max) {
    std::ostringstream os;
    os << "must be in [" << min << ", " << max << "], got " << text;
    fail(key, os.str());
  }
  return v;
}

double Fields::get_double(const std::string& key, double min, double max, double fallback) const {
  return has(key) ? get_double(key, min, max) : (read_.insert(key), fallback);
}

bool Fields::get_bool(const std::string& key) const {
  const std::string text = scalar(key).Scalar();
  if (text == "true" || text == "True" || text == "yes") return true;
  if (text == "false" || text == "False" || text == "no") return false;
  fail(key, "must be true or false, got '" + text + "'");
}

bool Fields::get_bool(const std::string& key, bool fallback) const {
  return has(key) ? get_bool(key) : (read_.insert(key), fallback);
}

std::string Fields::get_enum(const std::string& key, const std::vector<std::string>& allowed) const {
  const std::string v = get_string(key);
  for (const auto& a : allowed)
    if (a == v) return v;
  fail(key, "must be one of: " + join(allowed) + "; got '" + v + "'");
}

std::string Fields::get_enum(const std::string& key, const std::vector<std::string>& allowed,
                             const std::string& fallback) const {
  return has(key) ? get_enum(key, allowed) : (read_.insert(key), fallback);
}

Fields Fields::get_map(const std::string& key) const {
  read_.insert(key);
  YAML::Node n = node_[key];
  if (!n) fail(key, "is required");
  if (!n.IsMap()) fail(key, "must be a map of key: value");
  return Fields(n, where_ + ": " + key);
}

std::map<std::string, std::string> Fields::get_string_map(const std::string& key) const {
  std::map<std::string, std::string> out;
  read_.insert(key);
  YAML::Node n = node_[key];
  if (!n) return out;
  if (!n.IsMap()) fail(key, "must be a map of key: text");
  for (const auto& kv : n) {
    if (!kv.second.IsScalar()) fail(key + "." + kv.first.Scalar(), "must be text");
    out[kv.first.Scalar()] = kv.second.Scalar();
  }
  return out;
}

std::vector<std::string> Fields::get_string_list(const std::string& key) const {
  read_.insert(key);
  YAML::Node n = node_[key];
  if (!n) fail(key, "is required");
  std::vector<std::string> out;
  if (n.IsScalar()) return {n.Scalar()};
  if (!n.IsSequence()) fail(key, "must be a list");
  for (const auto& item : n) {
    if (!item.IsScalar()) fail(key, "items must be single values");
    out.push_back(item.Scalar());
  }
  if (out.empty()) fail(key, "must not be empty");
  return out;
}

YAML::Node Fields::get_node(const std::string& key) const {
  read_.insert(key);
  return node_[key];
}

std::vector<std::string> Fields::keys() const {
  std::vector<std::string> out;
  for (const auto& kv : node_) out.push_back(kv.first.Scalar());
  return out;
}

void Fields::finish(const std::vector<std::string>& allowed) const {
  std::vector<std::string> unknown;
  for (const auto& kv : node_) {
    const std::string k = kv.first.IsScalar() ? kv.first.Scalar() : "<non-scalar key>";
    bool ok = false;
    for (const auto& a : allowed) ok = ok || a == k;
    if (!ok) unknown.push_back(k);
  }
  if (!unknown.empty()) {
    throw InputError(where_, unknown.front(),
                     "is not a known key" + std::string(unknown.size() > 1 ? " (also: " + join({unknown.begin() + 1, unknown.end()}) + ")" : "") +
                         "; allowed: " + join(allowed));
  }
}

namespace {
/// Counts the documents of a YAML stream (events only, no nodes built).
struct DocumentCounter : YAML::EventHandler {
  int documents = 0;
  void OnDocumentStart(const YAML::Mark&) override { ++documents; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};
}  // namespace

YAML::Node load_yaml_text(const std::string& text, const std::string& where) {
  YAML::Node root;
  try {
    // yaml-cpp 0.7 (Debian 12) reads some malformed streams as endless empty documents (a stray
    // ',' outside [ ] at block level, found by fuzz_yaml_chip and fuzz_yaml_model): YAML::LoadAll
    // then never returns and allocates without bound. So the documents are counted first, with a
    // bound, and the one document is loaded on its own.
    constexpr int kMaxDocuments = 16;
    std::istringstream in(text);
    YAML::Parser parser(in);
    DocumentCounter counter;
    while (counter.documents < kMaxDocuments && parser.HandleNextDocument(counter)) {
    }
    if (counter.documents >= kMaxDocuments)
      throw InputError(where, "", "is not valid YAML: the parser finds no end to it (a stray ',' outside [ ] or { }?)");
    if (counter.documents > 1)
      throw InputError(where, "", "holds " + std::to_string(counter.documents) + " YAML documents ('---'); one is allowed");
    if (counter.documents == 1) root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw InputError(where, "", std::string("is not valid YAML: ") + e.what());
  }
  if (!root || root.IsNull()) throw InputError(where, "", "is empty");
  if (!root.IsMap()) throw InputError(where, "", "must be a YAML map at the top level");
  return root;
}

YAML::Node load_yaml_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "", "cannot be opened (missing or unreadable)");
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  if (text.find('\0') != std::string::npos) throw InputError(path, "", "is binary, not YAML text");
  if (text.size() > (16u << 20)) throw InputError(path, "", "is larger than 16 MiB; not a config");
  return load_yaml_text(text, path);
}

}  // namespace capscale::config
