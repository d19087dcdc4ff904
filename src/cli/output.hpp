// Terminal tables (nccl-tests style: '#' headers with units, one row per point, '#' footer with a
// verdict) and JSON (the --json contract of DESIGN.md) for summary rows and configs.
#pragma once
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "config/chip.hpp"
#include "config/model_config.hpp"
#include "config/parallel_config.hpp"
#include "predict/predictor.hpp"

namespace capscale::cli {

nlohmann::json to_json(const predict::SummaryRow& r);
nlohmann::json to_json(const config::ModelConfig& m);
nlohmann::json to_json(const config::ParallelConfig& p);
nlohmann::json to_json(const config::ChipProfile& c);
config::ModelConfig model_from_json(const nlohmann::json& j);
config::ParallelConfig parallel_from_json(const nlohmann::json& j);

/// One row per target: throughput, MFU/HFU, breakdown, memory and fit.
void print_summary_table(std::ostream& os, const std::vector<predict::SummaryRow>& rows);
/// The resolved configuration, echoed at start (as llm.c prints its config).
void print_config(std::ostream& os, const config::ModelConfig& m, const config::ParallelConfig& p, const std::string& extra);
std::string fmt(double v, int precision);
using config::parallel_text;

}  // namespace capscale::cli
