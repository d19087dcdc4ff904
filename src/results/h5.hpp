// HDF5 wrapped once: RAII handles and one checked call per C API use, with HDF5's own error-stack
// text in the exception (the idea of HighFive's bits/h5d_wrapper.hpp). Tables are compound
// datasets described at run time by a column list, so h5py reads them as structured arrays and
// pandas as DataFrames (pd.DataFrame(f["summary"][:])).
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace capscale::results::h5 {

/// Throws RuntimeError "HDF5 error in <what> (<file>): <error stack>" when `status` < 0.
int64_t check(int64_t status, const std::string& what);

/// Owns one hid_t and closes it with the right H5*close.
class Handle {
 public:
  enum class Kind { kFile, kGroup, kDataset, kDatatype, kDataspace, kAttribute, kPlist };
  Handle() = default;
  Handle(hid_t id, Kind kind) : id_(id), kind_(kind) {}
  Handle(Handle&& o) noexcept : id_(o.id_), kind_(o.kind_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }
  void reset();
  hid_t id() const { return id_; }
  explicit operator bool() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  Kind kind_ = Kind::kFile;
};

enum class ColType { kI64, kF64, kStr };
struct Column {
  std::string name;
  ColType type = ColType::kF64;
  size_t str_len = 0;  ///< fixed string length incl. NUL (kStr)
  size_t offset = 0;   ///< filled by Table
};

/// A row-major table of fixed-size records whose layout follows `columns`.
class Table {
 public:
  explicit Table(std::vector<Column> columns);
  size_t row_size() const { return row_size_; }
  size_t rows() const { return data_.size() / row_size_; }
  const std::vector<Column>& columns() const { return columns_; }
  /// Starts a new zeroed row; the setters write into the last row.
  void add_row();
  void set(const std::string& col, int64_t v);
  void set(const std::string& col, double v);
  void set(const std::string& col, const std::string& v);
  int64_t get_i64(size_t row, const std::string& col) const;
  double get_f64(size_t row, const std::string& col) const;
  std::string get_str(size_t row, const std::string& col) const;
  bool has(const std::string& col) const;
  const char* data() const { return data_.data(); }
  char* mutable_data() { return data_.data(); }
  void resize_rows(size_t n) { data_.resize(n * row_size_); }
  /// The HDF5 compound type of one row.
  Handle h5_type() const;

 private:
  const Column& col(const std::string& name, ColType t) const;
  std::vector<Column> columns_;
  size_t row_size_ = 0;
  std::vector<char> data_;
};

Handle create_file(const std::string& path);
Handle open_file(const std::string& path, bool writable);
Handle create_group(hid_t parent, const std::string& name);
Handle open_group(hid_t parent, const std::string& name);
/// Opens an existing dataset (e.g. a table, to read the attributes stored on it).
Handle open_dataset(hid_t parent, const std::string& name);
bool exists(hid_t parent, const std::string& path);

/// Writes a whole table as a dataset (chunked and extendible when `extendible`).
void write_table(hid_t parent, const std::string& name, const Table& t, bool extendible = false);
/// Appends rows to an extendible table dataset.
void append_table(hid_t parent, const std::string& name, const Table& t);
/// Reads a table dataset into `t` (whose columns name the fields to read; missing fields → error).
void read_table(hid_t parent, const std::string& name, Table& t);
/// Column names of a stored table.
std::vector<std::string> table_columns(hid_t parent, const std::string& name);

void write_attr(hid_t obj, const std::string& name, const std::string& value);
void write_attr(hid_t obj, const std::string& name, int64_t value);
void write_attr(hid_t obj, const std::string& name, double value);
std::string read_attr_string(hid_t obj, const std::string& name);
int64_t read_attr_int(hid_t obj, const std::string& name);
double read_attr_double(hid_t obj, const std::string& name);
bool has_attr(hid_t obj, const std::string& name);

/// Silences HDF5's automatic error printing (we report its stack ourselves).
void quiet();

}  // namespace capscale::results::h5
