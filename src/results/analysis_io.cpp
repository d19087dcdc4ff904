// /analysis tables; see analysis_io.hpp. Each record's columns are listed once (a Field per
// member); the same list builds the HDF5 compound type, fills it and reads it back.
#include "results/analysis_io.hpp"

#include <variant>

#include "common/error.hpp"
#include "results/h5.hpp"

namespace capscale::results {
namespace {

using analysis::CliffRow;
using analysis::EquivalenceRow;
using analysis::ScalingRow;
using h5::ColType;

/// Column length for names (models, target specs): far above any shipped name, and a longer one is
/// refused by set_str, not cut.
constexpr size_t kNameLen = 256, kWordLen = 16;

template <class T>
struct Field {
  const char* name;
  std::variant<int64_t T::*, double T::*, std::string T::*> member;
  size_t str_len = 0;  ///< for strings: the fixed length incl. NUL
};

template <class T>
h5::Table make_table(const std::vector<Field<T>>& fields) {
  std::vector<h5::Column> cols;
  for (const auto& f : fields) {
    if (std::holds_alternative<int64_t T::*>(f.member)) cols.push_back({f.name, ColType::kI64});
    else if (std::holds_alternative<double T::*>(f.member)) cols.push_back({f.name, ColType::kF64});
    else cols.push_back({f.name, ColType::kStr, f.str_len});
  }
  return h5::Table(cols);
}

void set_str(h5::Table& t, const std::string& table, const char* col, size_t len, const std::string& v) {
  if (v.size() >= len) {
    throw RuntimeError("/analysis/" + table + " column " + col + " holds " + std::to_string(len - 1) + " bytes; '" +
                       v.substr(0, 40) + "...' is " + std::to_string(v.size()) + " (refusing to truncate it)");
  }
  t.set(col, v);
}

template <class T>
void write_records(hid_t group, const std::string& name, const std::vector<Field<T>>& fields, const std::vector<T>& rows) {
  h5::Table t = make_table(fields);
  for (const T& r : rows) {
    t.add_row();
    for (const auto& f : fields) {
      if (auto* i = std::get_if<int64_t T::*>(&f.member)) t.set(f.name, r.**i);
      else if (auto* d = std::get_if<double T::*>(&f.member)) t.set(f.name, r.**d);
      else set_str(t, name, f.name, f.str_len, r.*std::get<std::string T::*>(f.member));
    }
  }
  h5::write_table(group, name, t);
}

template <class T>
std::vector<T> read_records(hid_t group, const std::string& name, const std::vector<Field<T>>& fields) {
  h5::Table t = make_table(fields);
  h5::read_table(group, name, t);
  std::vector<T> rows(t.rows());
  for (size_t k = 0; k < rows.size(); ++k) {
    for (const auto& f : fields) {
      if (auto* i = std::get_if<int64_t T::*>(&f.member)) rows[k].**i = t.get_i64(k, f.name);
      else if (auto* d = std::get_if<double T::*>(&f.member)) rows[k].**d = t.get_f64(k, f.name);
      else rows[k].*std::get<std::string T::*>(f.member) = t.get_str(k, f.name);
    }
  }
  return rows;
}

// The grid point, shared by /analysis/scaling and /analysis/plans (same rows, same order).
const std::vector<Field<ScalingRow>> kPointFields = {
    {"model", &ScalingRow::model, kNameLen}, {"target", &ScalingRow::target, kNameLen},
    {"gpus", &ScalingRow::gpus},             {"ok", &ScalingRow::ok},
    {"point", &ScalingRow::point}};

std::vector<Field<ScalingRow>> with_point(std::vector<Field<ScalingRow>> rest) {
  std::vector<Field<ScalingRow>> f = kPointFields;
  f.insert(f.end(), rest.begin(), rest.end());
  return f;
}

const std::vector<Field<ScalingRow>> kScalingFields = with_point({
    {"tokens_per_s", &ScalingRow::tokens_per_s},
    {"tokens_per_s_per_chip", &ScalingRow::tokens_per_s_per_chip},
    {"step_time_s", &ScalingRow::step_time_s},
    {"mfu", &ScalingRow::mfu},
});

const std::vector<Field<ScalingRow>> kPlanFields = with_point({
    {"tp", &ScalingRow::tp}, {"pp", &ScalingRow::pp}, {"dp", &ScalingRow::dp}, {"cp", &ScalingRow::cp},
    {"vpp", &ScalingRow::vpp}, {"micro_batch_size", &ScalingRow::micro_batch_size},
    {"global_batch_size", &ScalingRow::global_batch_size}, {"recompute", &ScalingRow::recompute, kWordLen},
});
// Schema 3 adds the expert parallelism of the plan.
std::vector<Field<ScalingRow>> plan_fields_v3() {
  auto f = kPlanFields;
  f.push_back({"ep", &ScalingRow::ep});
  return f;
}

const std::vector<Field<CliffRow>> kCliffFields = {
    {"model", &CliffRow::model, kNameLen},
    {"gpus", &CliffRow::gpus},
    {"baseline_target", &CliffRow::baseline_target, kNameLen},
    {"target", &CliffRow::target, kNameLen},
    {"fraction", &CliffRow::fraction},
};

const std::vector<Field<EquivalenceRow>> kEquivalenceFields = {
    {"model", &EquivalenceRow::model, kNameLen},
    {"target", &EquivalenceRow::target, kNameLen},
    {"reference_target", &EquivalenceRow::reference_target, kNameLen},
    {"reference_gpus", &EquivalenceRow::reference_gpus},
    {"reference_tokens_per_s", &EquivalenceRow::reference_tokens_per_s},
    {"grid_gpus", &EquivalenceRow::grid_gpus},
    {"chips", &EquivalenceRow::chips},
    {"ratio", &EquivalenceRow::ratio},
    {"how", &EquivalenceRow::how, kWordLen},
};

/// /analysis/plans holds the plan columns of the same rows as /analysis/scaling.
void merge_plans(std::vector<ScalingRow>& rows, const std::vector<ScalingRow>& plans) {
  if (plans.size() != rows.size()) throw RuntimeError("/analysis/plans and /analysis/scaling differ in length");
  for (size_t i = 0; i < rows.size(); ++i) {
    auto& r = rows[i];
    const auto& p = plans[i];
    if (p.model != r.model || p.target != r.target || p.gpus != r.gpus) {
      throw RuntimeError("/analysis/plans row " + std::to_string(i) + " is not the point of /analysis/scaling's");
    }
    r.tp = p.tp, r.pp = p.pp, r.dp = p.dp, r.cp = p.cp, r.vpp = p.vpp;
    r.micro_batch_size = p.micro_batch_size, r.global_batch_size = p.global_batch_size, r.recompute = p.recompute;
    r.ep = p.ep;
  }
}

}  // namespace

void write_analysis(hid_t file, const analysis::SweepAnalysis& a) {
  h5::Handle g = h5::create_group(file, "analysis");
  h5::write_attr(g.id(), "rows", a.rows);
  h5::write_attr(g.id(), "not_ok", a.not_ok);
  h5::write_attr(g.id(), "cliff_fraction", analysis::kCliffFraction);
  if (a.reference) {
    h5::write_attr(g.id(), "reference_target", a.reference->target);
    h5::write_attr(g.id(), "reference_gpus", a.reference->gpus);
  }
  write_records(g.id(), "scaling", kScalingFields, a.scaling);
  write_records(g.id(), "plans", plan_fields_v3(), a.scaling);
  write_records(g.id(), "cliffs", kCliffFields, a.cliffs);
  write_records(g.id(), "equivalence", kEquivalenceFields, a.equivalence);
}

std::optional<analysis::SweepAnalysis> read_analysis(hid_t file) {
  if (!h5::exists(file, "analysis")) return std::nullopt;
  h5::Handle g = h5::open_group(file, "analysis");
  analysis::SweepAnalysis a;
  a.rows = h5::read_attr_int(g.id(), "rows");
  a.not_ok = h5::read_attr_int(g.id(), "not_ok");
  if (h5::has_attr(g.id(), "reference_target")) {
    a.reference = analysis::Reference{h5::read_attr_string(g.id(), "reference_target"), h5::read_attr_int(g.id(), "reference_gpus")};
  }
  a.scaling = read_records(g.id(), "scaling", kScalingFields);
  std::vector<ScalingRow> plans;
  try {
    plans = read_records(g.id(), "plans", plan_fields_v3());
  } catch (const RuntimeError&) {
    plans = read_records(g.id(), "plans", kPlanFields);  // schema 1–2: no ep column, dense plans (ep 1)
  }
  merge_plans(a.scaling, plans);
  a.cliffs = read_records(g.id(), "cliffs", kCliffFields);
  a.equivalence = read_records(g.id(), "equivalence", kEquivalenceFields);
  analysis::fill_axes(a);
  return a;
}

}  // namespace capscale::results
