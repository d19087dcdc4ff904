// `capscale list models|chips`, `capscale check FILES...` (validate config files) and
// `capscale check --gpus N -- run ...` (validate a run command line without running it: the launch
// scripts' defaults are tested this way, tests/launch/).
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
#include "plan/plan.hpp"
#include "predict/predictor.hpp"
#include "sweep/sweep_config.hpp"

namespace capscale::cli {

Action add_list(CLI::App& app) {
  auto* cmd = app.add_subcommand("list", "List shipped models or chips");
  auto what = std::make_shared<std::string>();
  cmd->add_option("what", *what, "models | chips")->required()->check(CLI::IsMember({"models", "chips"}));
  return [what](const Invocation&) {
    std::cout << "# configs: " << config::config_dir() << "\n";
    if (*what == "models") {
      std::cout << "# name                layers  hidden    ffn  heads/kv   vocab    seq  params [B]  active [B]  experts\n";
      for (const auto& n : config::list_configs("models")) {
        const auto m = config::load_model(n);
        char line[256];
        const std::string experts =
            m.is_moe() ? std::to_string(m.num_moe_experts) + " top-" + std::to_string(m.moe_router_topk) : std::string("-");
        std::snprintf(line, sizeof line, "  %-18s %6lld %7lld %6lld %5lld/%-3lld %7lld %6lld %10.2f %11.2f  %s\n", n.c_str(),
                      (long long)m.num_layers, (long long)m.hidden_size, (long long)m.ffn_hidden_size,
                      (long long)m.num_attention_heads, (long long)m.num_query_groups, (long long)m.vocab_size,
                      (long long)m.seq_length, double(model::total_params(m)) / 1e9, double(model::active_params(m)) / 1e9,
                      experts.c_str());
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

namespace {

// Parses `args` (a capscale command line without the program name) with `app`; a parse error is
// bad input naming the command line.
void parse_args(CLI::App& app, const std::vector<std::string>& args, const std::string& where) {
  std::vector<const char*> argv{"capscale"};
  for (const auto& a : args) argv.push_back(a.c_str());
  try {
    app.parse(int(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    throw InputError(where, "", std::string("is not a valid command line: ") + e.what());
  }
}

// What `run` would do before any work, for `gpus` ranks: parse the flags exactly as run does, load
// the model, resolve and build the plan, and check that it fits each --emulate target and `chip`.
// One line "ok ..." on success; InputError / DoesNotFitError (exit 2) otherwise.
void check_run_command(const std::vector<std::string>& args, int64_t gpus, const std::string& chip_spec) {
  const std::string where = "check --gpus";
  if (args.empty() || args[0] != "run") {
    throw InputError(where, "", "expects a `run` command line after --, e.g. `capscale check --gpus 16 -- run --model "
                                "llama3.1-70b --tp 8 --pp 2`; got '" + (args.empty() ? std::string() : args[0]) + "'");
  }
  if (gpus < 1) throw InputError("--gpus", "", "must be >= 1");
  {
    // run's own flag definitions: an unknown, misspelt or ill-typed flag fails here as in `run`.
    // The action owns the options the flags write into, so it lives through the parse; it is
    // never called, so nothing runs.
    CLI::App full;
    full.require_subcommand(1);
    const Action run_action = add_run(full);
    parse_args(full, args, where);
  }
  // The flags this check needs, registered by the same code as run's, so none is described twice.
  CLI::App part;
  auto* run = part.add_subcommand("run");
  run->allow_extras();
  std::string model_spec, emulate, out;
  ParallelFlags par;
  run->add_option("--model", model_spec);
  run->add_option("--emulate", emulate);
  run->add_option("--out", out);
  add_parallel_flags(run, par);
  parse_args(part, args, where);

  const auto model = par.load_model(model_spec);
  const auto p = config::resolve(par.to_config(), model, gpus, "run");
  (void)plan::build_plan(model, p);  // throws for sizes that overflow, as run would
  std::vector<config::TargetSpec> targets;
  if (!emulate.empty()) targets = config::parse_target_list(emulate, "--emulate");
  if (!out.empty()) check_run_names_fit(model, targets);  // names the run file would refuse
  if (!chip_spec.empty()) targets.push_back(config::parse_target(chip_spec, "--chip"));
  std::string fits;
  for (const auto& t : targets) {
    const auto chip = config::resolve_target(t);
    double need_gb = 0;
    if (!predict::fits_memory(model, chip, p, &need_gb)) {
      throw DoesNotFitError(t.spec, "memory", model.name + " with " + parallel_text(p) + " on " + std::to_string(gpus) +
                                                  " ranks needs " + fmt(need_gb, 1) + " GB per chip; " + t.spec + " has " +
                                                  fmt(chip.usable_memory_bytes() / 1e9, 1) + " GB usable");
    }
    fits += (fits.empty() ? "; fits " : ", ") + t.spec + " (" + fmt(need_gb, 1) + " of " + fmt(chip.usable_memory_bytes() / 1e9, 1) + " GB)";
  }
  std::cout << "ok  run --model " << model.name << " on " << gpus << " ranks: " << parallel_text(p)
            << (targets.empty() ? "; no --emulate or --chip target, so memory not checked" : fits) << "\n";
}

struct CheckOptions {
  std::vector<std::string> files;
  int64_t gpus = 0;
  std::string chip;
};

}  // namespace

Action add_check(CLI::App& app) {
  auto* cmd = app.add_subcommand("check", "Validate config files (models, chips, sweeps, HuggingFace config.json), or with "
                                          "--gpus a `run` command line given after --");
  auto o = std::make_shared<CheckOptions>();
  cmd->add_option("files", o->files, "files to check; with --gpus, the run command line (after --)")->required();
  cmd->add_option("--gpus", o->gpus,
                  "check the command line after -- as `run` would take it on this many ranks (flags, model, plan; memory on "
                  "each --emulate target and --chip) instead of files, e.g. capscale check --gpus 16 -- run --model M --tp 8");
  cmd->add_option("--chip", o->chip, "with --gpus: the plan must also fit this chip (the GPUs the job runs on)");
  return [o, cmd](const Invocation&) {
    if (cmd->count("--gpus") > 0 || cmd->count("--chip") > 0) {
      check_run_command(o->files, o->gpus, o->chip);
      return 0;
    }
    for (const auto& f : o->files) {
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
