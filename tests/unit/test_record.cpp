// Field tables (config/record.hpp): a record built from its table round-trips through every form
// the table generates — CLI flags, JSON, HDF5 columns, the text form and sweep keys — and unknown
// enum names are errors that list the allowed ones.
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <set>

#include "cli/commands.hpp"
#include "common/error.hpp"
#include "config/parallel_config.hpp"
#include "config/record_json.hpp"
#include "predict/predictor.hpp"
#include "predict/validation.hpp"
#include "results/reader.hpp"
#include "results/record_io.hpp"
#include "results/writer.hpp"
#include "sweep/sweep_config.hpp"
#include "unit/temp_path.hpp"

using namespace capscale;
namespace fs = std::filesystem;

namespace {

// A plan whose every field differs from its default, so a field dropped by any form shows.
config::ParallelConfig unusual_plan() {
  config::ParallelConfig p;
  p.tp = 4, p.pp = 3, p.dp = 5, p.cp = 2, p.vpp = 2, p.micro_batch_size = 3, p.global_batch_size = 90, p.seq_length = 2048;
  p.sequence_parallel = true, p.recompute = config::Recompute::kSelective, p.zero = 1, p.precision = config::Precision::kFp8;
  p.tp_comm_overlap = true, p.flash_attention = false, p.grad_reduce_in_bf16 = true, p.overlap_grad_reduce = false;
  p.overlap_param_gather = false, p.overlap_p2p_comm = false, p.p2p_scatter_gather = true, p.async_tp_comm = false;
  p.ep = 4, p.etp = 2, p.moe_imbalance = 1.25, p.moe_token_dispatcher = config::Dispatcher::kFlex;
  p.account_for_embedding_in_pipeline_split = true, p.account_for_loss_in_pipeline_split = true;
  p.dp_max_ctas = 8, p.cp_max_ctas = 1, p.pp_max_ctas = 2;
  return p;
}

predict::SummaryRow unusual_row() {
  predict::SummaryRow r;
  r.model = "llama3.1-70b", r.model_params_b = 70.55, r.model_active_params_b = 70.5, r.target = "h200@nvlink=400,nic=200", r.gpus = 120, r.parallel = unusual_plan();
  r.step_time_s = 1.25, r.tokens_per_s = 1.5e5, r.tokens_per_s_per_chip = 1250, r.tflops_per_chip = 321.5;
  r.mfu = 0.41, r.hfu = 0.47, r.memory_gb_per_chip = 71.5, r.memory_capacity_gb = 135, r.fits = true, r.source = "calibrated";
  r.breakdown = {0.9, 0.1, 0.2, 0.05};
  return r;
}

// Every field of the table has the same value in a and b.
template <typename R>
void expect_same(const R& a, const R& b, const config::FieldTable<R>& table, const std::string& form) {
  for (const auto& f : table) EXPECT_TRUE(f.get(a) == f.get(b)) << form << " lost field " << f.name;
}

// The command line that sets every flag field of `p` that differs from its default.
std::vector<std::string> flags_for(const config::ParallelConfig& p) {
  std::vector<std::string> args = {"capscale"};
  for (const auto& f : config::parallel_fields()) {
    if (f.flag.empty()) continue;
    const auto v = f.get(p);
    if (v == f.def) continue;
    args.push_back("--" + f.flag);
    if (const auto* i = std::get_if<int64_t>(&v)) args.push_back(std::to_string(*i));
    else if (const auto* s = std::get_if<std::string>(&v)) args.push_back(*s);
    else if (const auto* d = std::get_if<double>(&v)) args.push_back(std::to_string(*d));
    // booleans: the flag alone (a negating flag sets false, which is what differs from a true default)
  }
  return args;
}

}  // namespace

TEST(Record, EveryParallelFieldHasAUniqueNameAndAFlagOrAReason) {
  std::set<std::string> names, flags;
  for (const auto& f : config::parallel_fields()) {
    EXPECT_TRUE(names.insert(f.name).second) << f.name;
    // Only derived fields and dp (from the chip count) are not flags.
    if (!f.flag.empty()) {
      EXPECT_TRUE(flags.insert(f.flag).second) << f.flag;
    } else {
      EXPECT_TRUE(f.derived || f.name == "dp") << f.name << " has no flag";
    }
    EXPECT_FALSE(f.help.empty()) << f.name;
  }
  std::set<std::string> columns;
  const results::h5::Table summary = results::summary_table();
  for (const auto& c : summary.columns()) EXPECT_TRUE(columns.insert(c.name).second) << c.name;
}

TEST(Record, ParallelConfigRoundTripsThroughJson) {
  const auto p = unusual_plan();
  const auto j = config::record_to_json(p, config::parallel_fields());
  EXPECT_EQ(j.at("recompute"), "selective");
  EXPECT_EQ(j.at("schedule"), "interleaved_1f1b");
  expect_same(p, config::record_from_json(j, config::parallel_fields(), "test"), config::parallel_fields(), "JSON");
}

TEST(Record, ParallelConfigRoundTripsThroughCliFlags) {
  const auto p = unusual_plan();
  CLI::App app;
  cli::ParallelFlags flags;
  cli::add_parallel_flags(&app, flags);
  auto args = flags_for(p);
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  app.parse(int(argv.size()), argv.data());
  auto parsed = flags.config;
  parsed.dp = p.dp;  // not a flag: resolve() derives it from the world size
  expect_same(p, parsed, config::parallel_fields(), "CLI");
}

TEST(Record, CliRejectsUnknownEnumNamesAndOutOfRangeValues) {
  for (const std::vector<std::string>& bad : {std::vector<std::string>{"--recompute", "most"}, {"--precision", "fp4"},
                                              {"--tp", "0"}, {"--zero", "2"}, {"--vpp", "99999"}}) {
    CLI::App app;
    cli::ParallelFlags flags;
    cli::add_parallel_flags(&app, flags);
    std::vector<const char*> argv = {"capscale", bad[0].c_str(), bad[1].c_str()};
    EXPECT_THROW(app.parse(int(argv.size()), argv.data()), CLI::ValidationError) << bad[0] << " " << bad[1];
  }
}

TEST(Record, SummaryRowRoundTripsThroughJsonAndHdf5) {
  const auto r = unusual_row();
  const auto& fields = predict::summary_fields();
  const auto j = config::record_to_json(r, fields);
  EXPECT_EQ(j.at("parallel").at("tp_comm_overlap"), true);
  EXPECT_EQ(j.at("parallel").at("flash_attention"), false);
  EXPECT_EQ(j.at("parallel").at("grad_reduce_in_bf16"), true);
  EXPECT_EQ(j.at("breakdown_s").at("bubble"), 0.2);
  expect_same(r, config::record_from_json(j, fields, "test"), fields, "JSON");

  // HDF5: a sweep file with this row, read back by the reader.
  const auto path = capscale::test_util::fresh_temp_path("record.h5");
  {
    results::SweepFile f(path, {"sweep", "test", "0", "sha"}, "name: t\n", false, true);
    f.append(r, 0, "k", "ok");
    f.finish();
  }
  const auto back = results::read_result(path);
  ASSERT_EQ(back.rows.size(), 1u);
  expect_same(r, back.rows[0], fields, "HDF5");
  fs::remove(path);
}

TEST(Record, TextFormsComeFromTheTable) {
  const auto p = unusual_plan();
  EXPECT_EQ(config::parallel_text(p), "tp4 pp3 dp5 cp2 ep4 etp2 imb1.25 ae al vpp2 mbs3 sel z1 sp tpo nofa gbf16 noogr noopg noop2p p2psg noatp dpcta8 cpcta1 ppcta2");
  config::ParallelConfig d;
  EXPECT_EQ(config::parallel_text(d), "tp1 pp1 dp1 cp1 mbs1 non");
  // The `#` table: a header cell and a row cell for every field with a header, same widths for a
  // plan as the search returns them at scale.
  auto r = unusual_row();
  r.target = "h200@nvlink=400";
  r.parallel = config::ParallelConfig{};
  r.parallel.tp = 8, r.parallel.pp = 16, r.parallel.dp = 64, r.parallel.cp = 2, r.parallel.vpp = 4, r.parallel.zero = 1;
  r.parallel.recompute = config::Recompute::kSelective, r.parallel.sequence_parallel = r.parallel.tp_comm_overlap = true;
  const auto& fields = predict::summary_fields();
  const std::string header = config::table_header(fields), row = config::table_row(r, fields);
  // Same widths: every column ends at the same place (the last, left-aligned one is not padded).
  EXPECT_EQ(header.rfind("source"), row.rfind("calibrated")) << header << "\n" << row;
  EXPECT_NE(row.find("tp8 pp16 dp64 cp2 vpp4 mbs1 sel z1 sp tpo"), std::string::npos) << row;
}

TEST(Record, EveryPlanFieldChangesTheSweepKey) {
  const auto base = unusual_plan();
  const std::string k0 = config::key_text(base, config::parallel_fields());
  for (const auto& f : config::parallel_fields()) {
    if (!f.in_key) continue;
    auto p = base;
    const auto v = f.get(p);
    if (const auto* b = std::get_if<bool>(&v)) f.set(p, !*b);
    else if (const auto* i = std::get_if<int64_t>(&v)) f.set(p, *i == 1 ? int64_t(2) : int64_t(1));
    else if (const auto* d = std::get_if<double>(&v)) f.set(p, *d + 0.5);
    else if (f.allowed.empty()) f.set(p, std::get<std::string>(v) + "x");  // free text (a pipeline layout)
    else f.set(p, f.allowed.front() == std::get<std::string>(v) ? f.allowed.back() : f.allowed.front());
    EXPECT_NE(config::key_text(p, config::parallel_fields()), k0) << f.name << " does not change the key";
  }
}

TEST(Record, UnknownEnumNamesAreErrorsListingTheAllowedOnes) {
  try {
    config::parse_enum<config::Recompute>("most", "--recompute", "recompute");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("none, selective, full"), std::string::npos) << e.what();
  }
  nlohmann::json j = config::record_to_json(unusual_plan(), config::parallel_fields());
  j["recompute"] = "most";
  EXPECT_THROW(config::record_from_json(j, config::parallel_fields(), "test"), InputError);
  j["recompute"] = "full";
  j["tp"] = "eight";
  EXPECT_THROW(config::record_from_json(j, config::parallel_fields(), "test"), InputError);
}

TEST(Record, OverLongTextIsRefusedNotCut) {
  auto r = unusual_row();
  r.model = std::string(200, 'm');
  EXPECT_THROW(config::check_text_lengths(r, predict::summary_fields(), "test"), InputError);
  results::h5::Table t = results::summary_table();
  EXPECT_THROW(results::add_summary_row(t, r, 0, "k", "ok"), RuntimeError);
}

TEST(Record, PublishedRunFieldsCoverTheParallelConfig) {
  std::set<std::string> names;
  for (const auto& f : predict::published_run_fields()) names.insert(f.name);
  for (const auto& f : config::parallel_fields())
    if (f.user_input) {
      EXPECT_TRUE(names.count(f.name)) << f.name;
    }
}

TEST(Record, BoolFlagsTakeAnExplicitValue) {
  // CLI11 hands a flag's callback −1 for --flag=false: the value must follow it, negating flags too.
  auto parse = [](std::vector<const char*> argv) {
    CLI::App app;
    cli::ParallelFlags flags;
    cli::add_parallel_flags(&app, flags);
    argv.insert(argv.begin(), "capscale");
    app.parse(int(argv.size()), argv.data());
    return flags.config;
  };
  EXPECT_TRUE(parse({"--sequence-parallel"}).sequence_parallel);
  EXPECT_FALSE(parse({"--sequence-parallel=false"}).sequence_parallel);
  EXPECT_FALSE(parse({"--no-flash-attention"}).flash_attention);
  EXPECT_TRUE(parse({"--no-flash-attention=false"}).flash_attention);
  EXPECT_TRUE(parse({}).flash_attention);
}
