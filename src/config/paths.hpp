// Where shipped configs live: $CAPSCALE_CONFIG_DIR, else beside the executable (a relocatable
// bundle), else the source tree the binary was built from.
#pragma once
#include <string>
#include <vector>

namespace capscale::config {

/// The configs/ directory in use.
std::string config_dir();
/// Names (file stems) of the YAML files in configs/<sub>/, sorted.
std::vector<std::string> list_configs(const std::string& sub);
/// Path of configs/<sub>/<name>.yaml if it exists, else "".
std::string find_config(const std::string& sub, const std::string& name);

}  // namespace capscale::config
