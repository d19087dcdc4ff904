// Config directory resolution; see paths.hpp.
#include "config/paths.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

namespace capscale::config {
namespace fs = std::filesystem;

std::string config_dir() {
  if (const char* env = std::getenv("CAPSCALE_CONFIG_DIR"); env && *env) return env;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (const fs::path& cand : {exe.parent_path() / "configs", exe.parent_path() / "../share/capscale/configs"}) {
      if (fs::is_directory(cand / "models", ec)) return cand.lexically_normal().string();
    }
  }
  return CAPSCALE_SOURCE_CONFIG_DIR;
}

std::vector<std::string> list_configs(const std::string& sub) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path(config_dir()) / sub, ec)) {
    if (e.path().extension() == ".yaml") out.push_back(e.path().stem().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string find_config(const std::string& sub, const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos) return "";
  const fs::path p = fs::path(config_dir()) / sub / (name + ".yaml");
  std::error_code ec;
  return fs::is_regular_file(p, ec) ? p.string() : "";
}

}  // namespace capscale::config
