// Chip profile loading and cap parsing/application; see chip.hpp.
#include "config/chip.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <utility>
#include <filesystem>

#include "common/error.hpp"
#include "config/fields.hpp"
#include "config/paths.hpp"

namespace capscale::config {

bool ChipProfile::supports(Precision p) const { return peak_tflops.count(to_string(p)) > 0; }

double ChipProfile::peak_flops(Precision p) const {
  auto it = peak_tflops.find(to_string(p));
  if (it == peak_tflops.end()) {
    throw InputError(origin.empty() ? name : origin, "peak_tflops." + to_string(p),
                     "is not given: chip '" + name + "' does not support " + to_string(p));
  }
  return it->second * 1e12;
}

const std::vector<std::string>& cap_keys() {
  static const std::vector<std::string> keys = {"nvlink", "nic", "tflops", "hbm_tbps", "hbm_gb", "nvlink_domain", "node_jitter"};
  return keys;
}

namespace {
/// Throws InputError unless a parsed cap's value is one its key allows.
void check_cap_value(const Cap& cap, const std::string& where, const std::string& text) {
  if (cap.key == "node_jitter") {
    // A relative standard deviation, not a figure of the chip: 0 is allowed, percentages are not.
    if (cap.percent || cap.value < 0 || cap.value > ChipProfile::kMaxNodeJitter)
      throw InputError(where, cap.key, "must be a fraction in [0, " + (std::ostringstream() << ChipProfile::kMaxNodeJitter).str() +
                                           "] (e.g. node_jitter=0.02) in '" + text + "'");
    return;
  }
  if (cap.value <= 0) throw InputError(where, cap.key, "must be > 0 in '" + text + "'");
  // Below a thousandth of a unit (1 MB/s NVLink, 1 Mb/s NIC, 1 GFLOP/s, …) no figure describes a
  // chip; such values only make every time astronomically large.
  if (!cap.percent && cap.value < 1e-3) throw InputError(where, cap.key, "must be >= 0.001 in '" + text + "'");
  if (cap.percent && cap.value < 0.01) throw InputError(where, cap.key, "percentage must be >= 0.01 % in '" + text + "'");
  if (cap.percent && cap.value > 100) throw InputError(where, cap.key, "percentage must be in (0, 100] in '" + text + "'");
  if (cap.value > 1e9) throw InputError(where, cap.key, "is implausibly large in '" + text + "'");
  if (cap.key == "nvlink_domain" && (cap.percent || cap.value != std::floor(cap.value))) {
    throw InputError(where, cap.key, "must be a whole number of chips in '" + text + "'");
  }
}
}  // namespace

TargetSpec parse_target(const std::string& text, const std::string& where) {
  TargetSpec t;
  t.spec = text;
  const auto at = text.find('@');
  t.chip_name = text.substr(0, at);
  if (t.chip_name.empty()) throw InputError(where, "", "target '" + text + "' has no chip name (CHIP[@key=value,...])");
  if (at == std::string::npos) return t;
  const std::string rest = text.substr(at + 1);
  if (rest.empty()) throw InputError(where, "", "target '" + text + "' has '@' but no caps; allowed keys: " + join(cap_keys()));
  size_t pos = 0;
  while (pos <= rest.size()) {
    const auto comma = rest.find(',', pos);
    const std::string item = rest.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    const auto eq = item.find('=');
    if (eq == std::string::npos) {
      throw InputError(where, item, "is not key=value in target '" + text + "'; allowed keys: " + join(cap_keys()));
    }
    Cap cap;
    cap.key = item.substr(0, eq);
    bool known = false;
    for (const auto& k : cap_keys()) known = known || k == cap.key;
    if (!known) throw InputError(where, cap.key, "is not a cap key in '" + text + "'; allowed: " + join(cap_keys()));
    for (const auto& c : t.caps)
      if (c.key == cap.key) throw InputError(where, cap.key, "is given twice in target '" + text + "'; give each cap once");
    std::string value = item.substr(eq + 1);
    if (!value.empty() && value.back() == '%') {
      cap.percent = true;
      value.pop_back();
    }
    char* end = nullptr;
    errno = 0;
    cap.value = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(cap.value)) {
      throw InputError(where, cap.key, "needs a number or N% in '" + text + "', got '" + item.substr(eq + 1) + "'");
    }
    check_cap_value(cap, where, text);
    t.caps.push_back(cap);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return t;
}

std::vector<TargetSpec> parse_target_list(const std::string& text, const std::string& where) {
  // "h200,h20@nvlink=400,nic=200,h800": an item with '=' continues the previous target's caps.
  std::vector<std::string> items;
  size_t pos = 0;
  while (pos <= text.size()) {
    const auto comma = text.find(',', pos);
    items.push_back(text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  std::vector<std::string> specs;
  for (const auto& item : items) {
    if (item.empty()) throw InputError(where, "", "has an empty target in '" + text + "'");
    if (item.find('=') != std::string::npos && item.find('@') == std::string::npos && !specs.empty()) {
      specs.back() += "," + item;
    } else {
      specs.push_back(item);
    }
  }
  std::vector<TargetSpec> out;
  for (const auto& s : specs) out.push_back(parse_target(s, where));
  return out;
}

const std::vector<std::string>& ranged_efficiency_fields() {
  static const std::vector<std::string> fields{"gemm", "gemm_fp8", "attention", "hbm", "nvlink", "nic"};
  return fields;
}

double& efficiency_field(Efficiency& e, const std::string& name) {
  if (name == "gemm") return e.gemm;
  if (name == "gemm_fp8") return e.gemm_fp8;
  if (name == "attention") return e.attention;
  if (name == "attention_fa1") return e.attention_fa1;
  if (name == "attention_dropout") return e.attention_dropout;
  if (name == "hbm") return e.hbm;
  if (name == "nvlink") return e.nvlink;
  if (name == "nic") return e.nic;
  if (name == "sustained") return e.sustained;
  throw std::logic_error("efficiency_field: unknown field " + name);
}

ChipProfile load_chip_yaml(const std::string& path) {
  const Fields f(load_yaml_file(path), path);
  ChipProfile c;
  c.origin = path;
  c.name = f.get_string("name");
  c.description = f.get_string("description", "");
  c.arch = f.get_enum("arch", {"hopper", "ampere", "blackwell", "ascend", "cpu"});
  const Fields peaks = f.get_map("peak_tflops");
  for (const auto& k : peaks.keys()) c.peak_tflops[k] = peaks.get_double(k, 1e-6, 1e6);
  peaks.finish({"bf16", "fp16", "fp8", "fp32"});
  if (c.peak_tflops.empty()) throw InputError(path, "peak_tflops", "must give at least one of bf16, fp16, fp8, fp32");
  c.hbm_gb = f.get_double("hbm_gb", 1e-3, 1e6);
  c.hbm_tbps = f.get_double("hbm_tbps", 1e-6, 1e4);
  // The old keys said "gbps" for both GB/s (NVLink) and Gb/s (NIC); name the new key rather than
  // letting an old file fail as "unknown key" or load with a figure 8x off.
  for (const auto& [old_key, new_key] : {std::pair{"nvlink_gbps", "nvlink_gbyte_s (GB/s per chip, datasheet bidirectional total)"},
                                         std::pair{"nic_gbps", "nic_gbit_s (Gb/s per GPU, one direction)"}}) {
    if (f.has(old_key)) throw InputError(path, old_key, std::string("was renamed ") + new_key);
  }
  c.nvlink_gbyte_s = f.get_double("nvlink_gbyte_s", 1e-6, 1e7);
  c.nvlink_domain = f.get_int("nvlink_domain", 1, 1 << 20);
  c.nic_gbit_s = f.get_double("nic_gbit_s", 1e-6, 1e7);
  c.nvlink_latency_us = f.get_double("nvlink_latency_us", 0, 1e6, c.nvlink_latency_us);
  c.nic_latency_us = f.get_double("nic_latency_us", 0, 1e6, c.nic_latency_us);
  if (f.has("efficiency")) {
    const Fields e = f.get_map("efficiency");
    c.efficiency.gemm = e.get_double("gemm", 1e-3, 1, c.efficiency.gemm);
    c.efficiency.gemm_fp8 = e.get_double("gemm_fp8", 0, 1, c.efficiency.gemm_fp8);
    c.efficiency.attention = e.get_double("attention", 1e-3, 1, c.efficiency.attention);
    c.efficiency.attention_fa1 = e.get_double("attention_fa1", 0, 1, c.efficiency.attention_fa1);
    c.efficiency.attention_dropout = e.get_double("attention_dropout", 1e-3, 1, c.efficiency.attention_dropout);
    c.efficiency.hbm = e.get_double("hbm", 1e-3, 1, c.efficiency.hbm);
    c.efficiency.nvlink = e.get_double("nvlink", 1e-3, 1, c.efficiency.nvlink);
    c.efficiency.nic = e.get_double("nic", 1e-3, 1, c.efficiency.nic);
    c.efficiency.sustained = e.get_double("sustained", 1e-3, 1, c.efficiency.sustained);
    c.efficiency.nvls = e.get_double("nvls", 0, 1, c.efficiency.nvls);
    if (e.has("sustained_from")) {
      c.sustained_from = e.get_enum("sustained_from", {"hopper", "ampere", "blackwell", "ascend"});
      if (c.sustained_from == c.arch)
        throw InputError(path, "efficiency.sustained_from", "names the chip's own architecture (" + c.arch + "); leave it out");
    }
    e.finish({"gemm", "gemm_fp8", "attention", "attention_fa1", "attention_dropout", "hbm", "nvlink", "nic", "sustained",
              "sustained_from", "nvls"});
  }
  c.reserved_gb = f.get_double("reserved_gb", 0, c.hbm_gb, 0);
  c.chips_per_package = f.get_int("chips_per_package", 1, 64, 1);
  c.full_mesh = f.get_bool("full_mesh", false);
  c.nvls = f.get_bool("nvls", false);
  if (c.nvls && c.full_mesh) throw InputError(path, "nvls", "a full mesh (full_mesh: true) has no switch to reduce in");
  if (c.nvls && c.efficiency.nvls <= 0)
    throw InputError(path, "efficiency.nvls", "must be given (> 0) when nvls is true: NVLS's rate as a fraction of the ring's");
  c.node_jitter = f.get_double("node_jitter", 0, ChipProfile::kMaxNodeJitter, 0);
  c.host_step_gap_s = f.get_double("host_step_gap_s", 0, ChipProfile::kMaxHostStepGapS, 0);
  c.sm_count = f.get_int("sm_count", 0, 1 << 20, 0);
  c.comm_ctas = f.get_int("comm_ctas", 0, 1 << 20, 0);
  if (c.comm_ctas > 0 && c.comm_ctas >= c.sm_count)
    throw InputError(path, "comm_ctas", "must be below sm_count (" + std::to_string(c.sm_count) + "): the SMs a running collective holds");
  c.nccl_channel_gbyte_s = f.get_double("nccl_channel_gbyte_s", 0, 1e5, 0);
  if (f.has("efficiency_ranges")) {
    const Fields r = f.get_map("efficiency_ranges");
    for (const auto& key : r.keys()) {
      const std::string where = "efficiency_ranges." + key;
      const auto& allowed = ranged_efficiency_fields();
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
        throw InputError(path, where, "is not a ranged efficiency field; allowed: " + join(allowed));
      const YAML::Node n = r.get_node(key);
      if (!n.IsSequence() || n.size() != 2 || !n[0].IsScalar() || !n[1].IsScalar())
        throw InputError(path, where, "must be [low, high]");
      double lo = 0, hi = 0;
      try {
        lo = n[0].as<double>(), hi = n[1].as<double>();
      } catch (const YAML::Exception&) {
        throw InputError(path, where, "must be [low, high], two numbers");
      }
      const double value = efficiency_value(c.efficiency, key);
      if (!(lo > 0 && lo <= value && value <= hi && hi <= 1))
        throw InputError(path, where, "needs 0 < low <= efficiency." + key + " (" + std::to_string(value) + ") <= high <= 1");
      c.efficiency_ranges[key] = {lo, hi};
    }
  }
  c.sources = f.get_string_map("sources");
  f.finish({"name", "description", "arch", "peak_tflops", "hbm_gb", "hbm_tbps", "nvlink_gbyte_s", "nvlink_domain",
            "nic_gbit_s", "nvlink_latency_us", "nic_latency_us", "efficiency", "reserved_gb", "chips_per_package",
            "full_mesh", "nvls", "node_jitter", "host_step_gap_s", "sm_count", "comm_ctas", "nccl_channel_gbyte_s", "efficiency_ranges", "sources"});
  return c;
}

ChipProfile load_chip(const std::string& name_or_path) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(name_or_path, ec)) return load_chip_yaml(name_or_path);
  if (const std::string p = find_config("chips", name_or_path); !p.empty()) return load_chip_yaml(p);
  throw InputError("chip", "", "'" + name_or_path + "' is neither a file nor a known chip; known: " +
                                   join(list_configs("chips")));
}

ChipProfile apply_caps(ChipProfile chip, const TargetSpec& target) {
  auto capped = [](double own, const Cap& cap) { return cap.percent ? own * cap.value / 100.0 : cap.value; };
  for (const Cap& cap : target.caps) {
    if (cap.key == "nvlink") chip.nvlink_gbyte_s = capped(chip.nvlink_gbyte_s, cap);
    else if (cap.key == "nic") chip.nic_gbit_s = capped(chip.nic_gbit_s, cap);
    else if (cap.key == "hbm_tbps") chip.hbm_tbps = capped(chip.hbm_tbps, cap);
    else if (cap.key == "hbm_gb") {
      chip.hbm_gb = capped(chip.hbm_gb, cap);
      if (chip.reserved_gb >= chip.hbm_gb) {
        throw InputError(target.spec, "hbm_gb", "leaves no memory after the chip's reserved " +
                                                    std::to_string(chip.reserved_gb) + " GB");
      }
    } else if (cap.key == "node_jitter") {
      chip.node_jitter = cap.value;
    } else if (cap.key == "nvlink_domain") chip.nvlink_domain = static_cast<int64_t>(capped(double(chip.nvlink_domain), cap));
    else if (cap.key == "tflops") {
      // The cap is on the dense 16-bit peak; other dtypes keep their ratio to it (H20: 148 bf16, 296 fp8).
      const double base = chip.peak_tflops.count("bf16") ? chip.peak_tflops["bf16"]
                          : chip.peak_tflops.count("fp16") ? chip.peak_tflops["fp16"] : chip.peak_tflops.begin()->second;
      const double scale = capped(base, cap) / base;
      for (auto& [dtype, v] : chip.peak_tflops) v *= scale;
      // The achieved fraction e of a large GEMM on the uncapped chip hides a part of the time that
      // does not shrink with peak FLOP/s (prologue/epilogue, memory stalls, launch): at peak P0,
      // t = F/P0 + F·(1/e − 1)/P0. Capping the peak to r·P0 scales only the first term, so
      // e' = 1 / (1 + r·(1/e − 1)). For an H100 (e = 0.78) capped to 148 TFLOP/s this gives 0.96;
      // the measured H20 reaches 0.94 (configs/chips/h20.yaml).
      auto rescale = [scale](double e) { return 1.0 / (1.0 + scale * (1.0 / e - 1.0)); };
      // Dropout's random numbers are CUDA-core work beside the tensor cores: the same split holds
      // for the fraction of the attention rate it keeps (an H20 loses less of it than an H100).
      for (const char* key : {"gemm", "gemm_fp8", "attention", "attention_fa1", "attention_dropout"}) {  // and their ranges' ends alike
        double& e = efficiency_field(chip.efficiency, key);
        if (e > 0) e = rescale(e);  // gemm_fp8 0: the chip gives no FP8 fraction
        if (auto it = chip.efficiency_ranges.find(key); it != chip.efficiency_ranges.end())
          it->second = {rescale(it->second.first), rescale(it->second.second)};
      }
    }
  }
  if (!target.caps.empty()) {
    chip.name = target.spec;
    chip.description += " (capped: " + target.spec + ")";
  }
  return chip;
}

ChipProfile resolve_target(const TargetSpec& target) { return apply_caps(load_chip(target.chip_name), target); }

}  // namespace capscale::config
