// The `capscale._capscale` extension: predict, search, sweep and read in-process, with the CLI's own
// parser and validation. A keyword argument becomes the flag it names (the parallel ones from the
// ParallelConfig field table, the rest from predict's CLI11 options), is parsed by the same CLI11
// subcommand, and runs through cli::run_predict; errors are the CLI's one-line messages, as
// capscale.InputError (a ValueError) for bad input and RuntimeError for runtime failures.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "cli/output.hpp"
#include "cli/predict_api.hpp"
#include "cli/sweep_api.hpp"
#include "common/error.hpp"
#include "results/reader.hpp"

namespace py = pybind11;

namespace capscale::python {
namespace {

/// How a Python keyword reaches predict's parser.
struct Keyword {
  std::string flag;      ///< "--micro-batch-size"
  bool is_flag = false;  ///< takes no value: passed as --flag=true|false
  bool negates = false;  ///< the flag sets the field false (flash_attention=False → --no-flash-attention)
  std::string help;
};

/// Keywords of predict/search, in flag order: each parallel field by its field name (Megatron's
/// short names: tp, pp, micro_batch_size, flash_attention, ...), every other predict option by its
/// long flag with '-' → '_' (model, chip, gpus, num_layers, calibration, top, ...).
std::vector<std::pair<std::string, Keyword>> keywords() {
  CLI::App app;
  auto* cmd = app.add_subcommand("predict");
  cli::PredictOptions o;
  cli::add_predict_flags(cmd, o);
  std::map<std::string, std::pair<std::string, Keyword>> by_flag;
  for (const auto& f : config::parallel_fields()) {
    if (f.flag.empty() || !f.set) continue;
    by_flag["--" + f.flag] = {f.name, Keyword{"--" + f.flag, f.type == config::FieldType::kBool, f.flag_negates, f.help}};
  }
  std::vector<std::pair<std::string, Keyword>> out;
  for (const CLI::Option* opt : cmd->get_options()) {
    if (opt->get_lnames().empty()) continue;
    const std::string flag = "--" + opt->get_lnames().front();
    if (flag == "--help" || flag == "--json") continue;  // the API returns objects
    if (auto it = by_flag.find(flag); it != by_flag.end()) {
      out.push_back(it->second);
      continue;
    }
    std::string name = flag.substr(2);
    std::replace(name.begin(), name.end(), '-', '_');
    out.push_back({name, Keyword{flag, opt->get_expected_max() == 0, false, opt->get_description()}});
  }
  return out;
}

const std::vector<std::pair<std::string, Keyword>>& keyword_table() {
  static const auto table = keywords();
  return table;
}

std::string allowed_keywords() {
  std::string s;
  for (const auto& [name, k] : keyword_table()) s += (s.empty() ? "" : ", ") + name;
  return s;
}

/// The argument list predict's parser gets for these keywords (a keyword given None is not given).
std::vector<std::string> to_args(const py::kwargs& kw, bool search) {
  std::vector<std::string> args = {"predict"};
  for (const auto& [key, value] : kw) {
    const std::string name = py::str(key);
    if (value.is_none()) continue;
    const auto& table = keyword_table();
    const auto it = std::find_if(table.begin(), table.end(), [&](const auto& e) { return e.first == name; });
    if (it == table.end() || (!search && name == "top") || name == "search") {
      throw InputError("capscale." + std::string(search ? "search" : "predict"), "",
                       "unknown keyword '" + name + "' (allowed: " + allowed_keywords() + ")");
    }
    const Keyword& k = it->second;
    const bool is_bool = py::isinstance<py::bool_>(value);
    if (k.is_flag) {
      if (!is_bool) throw InputError(k.flag, "", "expects True or False, got " + std::string(py::str(py::repr(value))));
      const bool on = value.cast<bool>() != k.negates;
      args.push_back(k.flag + (on ? "=true" : "=false"));
      continue;
    }
    if (is_bool || !(py::isinstance<py::int_>(value) || py::isinstance<py::float_>(value) || py::isinstance<py::str>(value))) {
      throw InputError(k.flag, "", "expects a number or a string, got " + std::string(py::str(py::repr(value))));
    }
    args.push_back(k.flag);
    args.push_back(py::str(value));
  }
  if (search) args.push_back("--search");
  return args;
}

/// Parses `args` with predict's own flags and runs it, as `capscale predict` does.
cli::PredictOutcome run(std::vector<std::string> args) {
  CLI::App app;
  app.require_subcommand(1);
  auto* cmd = app.add_subcommand("predict");
  cli::PredictOptions o;
  cli::add_predict_flags(cmd, o);
  std::reverse(args.begin(), args.end());  // CLI11 parses a vector from its back
  app.parse(args);
  return cli::run_predict(o);
}

/// A Python str from bytes that may not be UTF-8 (a message quoting a hostile file): invalid bytes
/// become \\xNN escapes instead of a UnicodeDecodeError.
py::str text(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), Py_ssize_t(s.size()), "backslashreplace");
  if (!o) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

/// Raises `type` with the CLI's one-line message.
void raise(PyObject* type, const std::string& message) { PyErr_SetObject(type, text(cli::one_line(message)).ptr()); }

py::object to_py(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::object: {
      py::dict d;
      for (const auto& [k, v] : j.items()) d[py::str(k)] = to_py(v);
      return d;
    }
    case nlohmann::json::value_t::array: {
      py::list l;
      for (const auto& v : j) l.append(to_py(v));
      return l;
    }
    case nlohmann::json::value_t::string: return text(j.get<std::string>());
    case nlohmann::json::value_t::boolean: return py::bool_(j.get<bool>());
    case nlohmann::json::value_t::number_integer: return py::int_(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: return py::int_(j.get<uint64_t>());
    case nlohmann::json::value_t::number_float: return py::float_(j.get<double>());
    default: return py::none();
  }
}

py::object to_py(const config::FieldValue& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return py::int_(*i);
  if (const auto* b = std::get_if<bool>(&v)) return py::bool_(*b);
  if (const auto* d = std::get_if<double>(&v)) return py::float_(*d);
  return text(std::get<std::string>(v));
}

/// Column → list, the /summary columns in file order (point, key, status, then the field table's),
/// ready for pandas.DataFrame.
py::dict columns(const std::vector<predict::SummaryRow>& rows, const std::vector<int64_t>& points,
                 const std::vector<std::string>& keys, const std::vector<std::string>& statuses) {
  py::dict d;
  auto list_of = [&](auto&& get) {
    py::list l;
    for (size_t i = 0; i < rows.size(); ++i) l.append(get(i));
    return l;
  };
  d["point"] = list_of([&](size_t i) { return py::int_(i < points.size() ? points[i] : int64_t(i)); });
  d["key"] = list_of([&](size_t i) { return text(i < keys.size() ? keys[i] : ""); });
  d["status"] = list_of([&](size_t i) { return text(i < statuses.size() ? statuses[i] : ""); });
  for (const auto& f : predict::summary_fields()) d[py::str(f.name)] = list_of([&](size_t i) { return to_py(f.get(rows[i])); });
  return d;
}

}  // namespace
}  // namespace capscale::python

PYBIND11_MODULE(_capscale, m) {
  using namespace capscale;
  using namespace capscale::python;
  m.doc() = "capscale in-process: predict, search, sweep and read with the CLI's validation";
  static py::exception<InputError> input_error(m, "InputError", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const InputError& e) {
      raise(input_error.ptr(), e.what());
    } catch (const CLI::ParseError& e) {
      raise(input_error.ptr(), e.what());
    } catch (const Error& e) {
      raise(PyExc_RuntimeError, e.what());
    }
  });
  m.def(
      "keywords",
      [] {
        py::list l;
        for (const auto& [name, k] : keyword_table())
          l.append(py::make_tuple(name, k.flag, k.is_flag ? (k.negates ? "negated flag" : "flag") : "value", k.help));
        return l;
      },
      "(keyword, flag, kind, help) for every keyword of predict and search");
  m.def(
      "predict",
      [](const py::kwargs& kw) {
        const auto r = run(to_args(kw, false));
        return to_py(cli::to_json(r.rows.at(0)));
      },
      "predict(model=, chip=, gpus=, **plan) -> dict: the `capscale predict --json` row");
  m.def(
      "predict_timed",
      [](const py::kwargs& kw) {
        const auto r = run(to_args(kw, false));
        return py::make_tuple(to_py(cli::to_json(r.rows.at(0))), r.ms);
      },
      "predict() and the milliseconds run_predict took inside (the evaluation, as `predicted in` prints): "
      "the rest of a call is the binding's overhead");
  m.def(
      "search",
      [](const py::kwargs& kw) {
        const auto r = run(to_args(kw, true));
        py::list l;
        for (const auto& row : r.rows) l.append(to_py(cli::to_json(row)));
        return l;
      },
      "search(model=, chip=, gpus=, top=5, **fixed) -> list[dict]: `capscale predict --search --json`");
  m.def(
      "sweep_columns",
      [](const std::string& path) {
        const auto rows = cli::sweep_rows(path);
        std::vector<predict::SummaryRow> r;
        std::vector<int64_t> points;
        std::vector<std::string> keys, statuses;
        for (const auto& x : rows) r.push_back(x.row), points.push_back(x.point), keys.push_back(x.key), statuses.push_back(x.status);
        return columns(r, points, keys, statuses);
      },
      py::arg("path"), "the /summary columns `capscale sweep PATH` would write, computed in this process");
  m.def(
      "read_columns",
      [](const std::string& path) {
        const auto f = results::read_result(path);
        py::dict attrs;
        attrs["path"] = f.path, attrs["kind"] = f.kind, attrs["schema_version"] = f.schema_version;
        attrs["command_line"] = f.command_line, attrs["created_utc"] = f.created_utc, attrs["git_sha"] = f.git_sha;
        return py::make_tuple(columns(f.rows, f.points, f.keys, f.statuses), attrs);
      },
      py::arg("path"), "the /summary columns of a run or sweep file, and its attributes");
}
