// `capscale list models|chips` and `capscale check FILES...` (validate config files).
#include <filesystem>
#include <iostream>
#include <memory>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "common/error.hpp"
#include "config/chip.hpp"
#include "config/fields.hpp"
#include "config/model_config.hpp"
#include "config/paths.hpp"
#include "model/accounting.hpp"
#include "sweep/sweep_config.hpp"

namespace capscale::cli {

Action add_list(CLI::App& app) {
  auto* cmd = app.add_subcommand("list", "List shipped models or chips");
  auto what = std::make_shared<std::string>();
  cmd->add_option("what", *what, "models | chips")->required()->check(CLI::IsMember({"models", "chips"}));
  return [what](const Invocation&) {
    std::cout << "# configs: " << config::config_dir() << "\n";
    if (*what == "models") {
      std::cout << "# name                layers  hidden    ffn  heads/kv   vocab    seq  params [B]\n";
      for (const auto& n : config::list_configs("models")) {
        const auto m = config::load_model(n);
        char line[256];
        std::snprintf(line, sizeof line, "  %-18s %6lld %7lld %6lld %5lld/%-3lld %7lld %6lld %10.2f\n", n.c_str(),
                      (long long)m.num_layers, (long long)m.hidden_size, (long long)m.ffn_hidden_size,
                      (long long)m.num_attention_heads, (long long)m.num_query_groups, (long long)m.vocab_size,
                      (long long)m.seq_length, double(model::total_params(m)) / 1e9);
        std::cout << line;
      }
    } else {
      std::cout << "# name           arch       bf16 [TFLOP/s]  HBM [GB]  HBM [TB/s]  NVLink [GB/s, bidir]  domain  NIC [Gb/s]\n";
      for (const auto& n : config::list_configs("chips")) {
        const auto c = config::load_chip(n);
        char line[256];
        const double bf16 = c.peak_tflops.count("bf16") ? c.peak_tflops.at("bf16") : c.peak_tflops.begin()->second;
        std::snprintf(line, sizeof line, "  %-14s %-10s %14.1f %9.0f %11.2f %21.0f %7lld %11.0f\n", n.c_str(), c.arch.c_str(),
                      bf16, c.hbm_gb, c.hbm_tbps, c.nvlink_gbyte_s, (long long)c.nvlink_domain, c.nic_gbit_s);
        std::cout << line;
      }
    }
    return 0;
  };
}

Action add_check(CLI::App& app) {
  auto* cmd = app.add_subcommand("check", "Validate config files (models, chips, sweeps, HuggingFace config.json)");
  auto files = std::make_shared<std::vector<std::string>>();
  cmd->add_option("files", *files, "files to check")->required();
  return [files](const Invocation&) {
    for (const auto& f : *files) {
      namespace fs = std::filesystem;
      const std::string dir = fs::path(f).parent_path().filename().string();
      const std::string ext = fs::path(f).extension().string();
      if (ext == ".json") {
        config::load_model_hf_json(f);
      } else if (dir == "chips") {
        config::load_chip_yaml(f);
      } else if (dir == "sweeps") {
        sweep::load_sweep(f);  // validates names and counts points without expanding them
      } else if (dir == "models") {
        config::load_model_yaml(f);
      } else {
        // Guess from the keys: a chip has peak_tflops, a sweep has targets, else a model.
        const auto node = config::load_yaml_file(f);
        if (node["peak_tflops"]) config::load_chip_yaml(f);
        else if (node["targets"] || node["cap_sweep"]) sweep::load_sweep(f);
        else config::load_model_yaml(f);
      }
      std::cout << "ok  " << f << "\n";
    }
    return 0;
  };
}

}  // namespace capscale::cli
