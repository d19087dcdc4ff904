// HDF5 wrapper; see h5.hpp.
#include "results/h5.hpp"

#include <cstring>

#include "common/error.hpp"

namespace capscale::results::h5 {
namespace {

herr_t collect(unsigned n, const H5E_error2_t* e, void* out) {
  auto* s = static_cast<std::string*>(out);
  if (n < 4) *s += std::string(n ? "; " : "") + (e->desc ? e->desc : "") + " (" + (e->func_name ? e->func_name : "") + ")";
  return 0;
}

std::string error_stack() {
  std::string s;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect, &s);
  H5Eclear2(H5E_DEFAULT);
  return s.empty() ? "no HDF5 error text" : s;
}

}  // namespace

void quiet() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

int64_t check(int64_t status, const std::string& what) {
  if (status < 0) throw RuntimeError("HDF5 error in " + what + ": " + error_stack());
  return status;
}

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_, kind_ = o.kind_;
    o.id_ = -1;
  }
  return *this;
}

void Handle::reset() {
  if (id_ < 0) return;
  switch (kind_) {
    case Kind::kFile: H5Fclose(id_); break;
    case Kind::kGroup: H5Gclose(id_); break;
    case Kind::kDataset: H5Dclose(id_); break;
    case Kind::kDatatype: H5Tclose(id_); break;
    case Kind::kDataspace: H5Sclose(id_); break;
    case Kind::kAttribute: H5Aclose(id_); break;
    case Kind::kPlist: H5Pclose(id_); break;
  }
  id_ = -1;
}

Table::Table(std::vector<Column> columns) : columns_(std::move(columns)) {
  for (auto& c : columns_) {
    c.offset = row_size_;
    row_size_ += c.type == ColType::kStr ? c.str_len : 8;
  }
}

void Table::add_row() { data_.resize(data_.size() + row_size_, 0); }

const Column& Table::col(const std::string& name, ColType t) const {
  for (const auto& c : columns_)
    if (c.name == name) {
      if (c.type != t) throw RuntimeError("table column '" + name + "' has another type");
      return c;
    }
  throw RuntimeError("table has no column '" + name + "'");
}

bool Table::has(const std::string& name) const {
  for (const auto& c : columns_)
    if (c.name == name) return true;
  return false;
}

void Table::set(const std::string& name, int64_t v) {
  std::memcpy(data_.data() + data_.size() - row_size_ + col(name, ColType::kI64).offset, &v, 8);
}
void Table::set(const std::string& name, double v) {
  std::memcpy(data_.data() + data_.size() - row_size_ + col(name, ColType::kF64).offset, &v, 8);
}
void Table::set(const std::string& name, const std::string& v) {
  const Column& c = col(name, ColType::kStr);
  // Refused, never cut: a cut sweep key would never match on --resume. Callers check user text
  // against the column widths before any work starts (config::check_text_lengths).
  if (v.size() + 1 > c.str_len) {
    throw RuntimeError("'" + v.substr(0, 60) + "...' (" + std::to_string(v.size()) + " characters) does not fit column '" + name +
                       "' (" + std::to_string(c.str_len - 1) + ")");
  }
  char* dst = data_.data() + data_.size() - row_size_ + c.offset;
  std::memset(dst, 0, c.str_len);
  std::memcpy(dst, v.data(), v.size());
}
int64_t Table::get_i64(size_t row, const std::string& name) const {
  int64_t v;
  std::memcpy(&v, data_.data() + row * row_size_ + col(name, ColType::kI64).offset, 8);
  return v;
}
double Table::get_f64(size_t row, const std::string& name) const {
  double v;
  std::memcpy(&v, data_.data() + row * row_size_ + col(name, ColType::kF64).offset, 8);
  return v;
}
std::string Table::get_str(size_t row, const std::string& name) const {
  const Column& c = col(name, ColType::kStr);
  const char* p = data_.data() + row * row_size_ + c.offset;
  return std::string(p, strnlen(p, c.str_len));
}

Handle Table::h5_type() const {
  Handle t(check(H5Tcreate(H5T_COMPOUND, row_size_), "H5Tcreate"), Handle::Kind::kDatatype);
  for (const auto& c : columns_) {
    if (c.type == ColType::kStr) {
      Handle s(check(H5Tcopy(H5T_C_S1), "H5Tcopy"), Handle::Kind::kDatatype);
      check(H5Tset_size(s.id(), c.str_len), "H5Tset_size");
      check(H5Tset_strpad(s.id(), H5T_STR_NULLTERM), "H5Tset_strpad");
      check(H5Tinsert(t.id(), c.name.c_str(), c.offset, s.id()), "H5Tinsert " + c.name);
    } else {
      check(H5Tinsert(t.id(), c.name.c_str(), c.offset, c.type == ColType::kI64 ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE),
            "H5Tinsert " + c.name);
    }
  }
  return t;
}

Handle create_file(const std::string& path) {
  return Handle(check(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), "creating " + path),
                Handle::Kind::kFile);
}

Handle open_file(const std::string& path, bool writable) {
  // Readers skip HDF5's file lock so that a sweep's .partial can be reported or plotted while the
  // sweep is still appending to it (the writer flushes every row, so what is read is consistent).
  Handle fapl(check(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate"), Handle::Kind::kPlist);
  if (!writable) check(H5Pset_file_locking(fapl.id(), false, true), "H5Pset_file_locking");
  return Handle(check(H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl.id()), "opening " + path),
                Handle::Kind::kFile);
}

Handle create_group(hid_t parent, const std::string& name) {
  return Handle(check(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "creating group " + name),
                Handle::Kind::kGroup);
}

Handle open_group(hid_t parent, const std::string& name) {
  return Handle(check(H5Gopen2(parent, name.c_str(), H5P_DEFAULT), "opening group " + name), Handle::Kind::kGroup);
}

Handle open_dataset(hid_t parent, const std::string& name) {
  return Handle(check(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), "opening dataset " + name), Handle::Kind::kDataset);
}

bool exists(hid_t parent, const std::string& path) {
  // Check each component, as H5Lexists requires the intermediate links to exist.
  size_t pos = 0;
  while (true) {
    const auto slash = path.find('/', pos);
    const std::string prefix = path.substr(0, slash);
    if (!prefix.empty() && H5Lexists(parent, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) return true;
    pos = slash + 1;
  }
}

void write_table(hid_t parent, const std::string& name, const Table& t, bool extendible) {
  const hsize_t n = t.rows();
  const hsize_t maxdims = extendible ? H5S_UNLIMITED : n;
  Handle space(check(H5Screate_simple(1, &n, &maxdims), "H5Screate_simple"), Handle::Kind::kDataspace);
  Handle plist(check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate"), Handle::Kind::kPlist);
  if (extendible || n > 0) {
    const hsize_t chunk = std::max<hsize_t>(1, std::min<hsize_t>(extendible ? 64 : n, 4096));
    check(H5Pset_chunk(plist.id(), 1, &chunk), "H5Pset_chunk");
  }
  const Handle type = t.h5_type();
  Handle ds(check(H5Dcreate2(parent, name.c_str(), type.id(), space.id(), H5P_DEFAULT, plist.id(), H5P_DEFAULT),
                  "creating table " + name),
            Handle::Kind::kDataset);
  if (n > 0) check(H5Dwrite(ds.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data()), "writing table " + name);
}

void append_table(hid_t parent, const std::string& name, const Table& t) {
  Handle ds(check(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), "opening table " + name), Handle::Kind::kDataset);
  Handle old_space(check(H5Dget_space(ds.id()), "H5Dget_space"), Handle::Kind::kDataspace);
  hsize_t old_n = 0;
  H5Sget_simple_extent_dims(old_space.id(), &old_n, nullptr);
  const hsize_t add = t.rows(), new_n = old_n + add;
  check(H5Dset_extent(ds.id(), &new_n), "extending table " + name);
  Handle fspace(check(H5Dget_space(ds.id()), "H5Dget_space"), Handle::Kind::kDataspace);
  check(H5Sselect_hyperslab(fspace.id(), H5S_SELECT_SET, &old_n, nullptr, &add, nullptr), "H5Sselect_hyperslab");
  Handle mspace(check(H5Screate_simple(1, &add, nullptr), "H5Screate_simple"), Handle::Kind::kDataspace);
  const Handle type = t.h5_type();
  check(H5Dwrite(ds.id(), type.id(), mspace.id(), fspace.id(), H5P_DEFAULT, t.data()), "appending to table " + name);
}

void read_table(hid_t parent, const std::string& name, Table& t) {
  Handle ds(check(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), "opening table " + name), Handle::Kind::kDataset);
  Handle space(check(H5Dget_space(ds.id()), "H5Dget_space"), Handle::Kind::kDataspace);
  hsize_t n = 0;
  if (H5Sget_simple_extent_ndims(space.id()) != 1) throw RuntimeError("table " + name + " is not one-dimensional");
  H5Sget_simple_extent_dims(space.id(), &n, nullptr);
  Handle file_type(check(H5Dget_type(ds.id()), "H5Dget_type"), Handle::Kind::kDatatype);
  if (H5Tget_class(file_type.id()) != H5T_COMPOUND) throw RuntimeError("dataset " + name + " is not a table");
  for (const auto& c : t.columns()) {
    if (H5Tget_member_index(file_type.id(), c.name.c_str()) < 0) {
      H5Eclear2(H5E_DEFAULT);
      throw RuntimeError("table " + name + " has no column '" + c.name + "'");
    }
  }
  t.resize_rows(n);
  const Handle type = t.h5_type();
  if (n > 0) check(H5Dread(ds.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.mutable_data()), "reading table " + name);
}

std::vector<std::string> table_columns(hid_t parent, const std::string& name) {
  Handle ds(check(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), "opening table " + name), Handle::Kind::kDataset);
  Handle type(check(H5Dget_type(ds.id()), "H5Dget_type"), Handle::Kind::kDatatype);
  std::vector<std::string> out;
  const int n = H5Tget_nmembers(type.id());
  for (int i = 0; i < n; ++i) {
    char* s = H5Tget_member_name(type.id(), i);
    out.emplace_back(s);
    H5free_memory(s);
  }
  return out;
}

void write_attr(hid_t obj, const std::string& name, const std::string& value) {
  Handle type(check(H5Tcopy(H5T_C_S1), "H5Tcopy"), Handle::Kind::kDatatype);
  check(H5Tset_size(type.id(), std::max<size_t>(1, value.size())), "H5Tset_size");
  Handle space(check(H5Screate(H5S_SCALAR), "H5Screate"), Handle::Kind::kDataspace);
  Handle a(check(H5Acreate2(obj, name.c_str(), type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT), "attribute " + name),
           Handle::Kind::kAttribute);
  const std::string v = value.empty() ? std::string(1, '\0') : value;
  check(H5Awrite(a.id(), type.id(), v.data()), "writing attribute " + name);
}

void write_attr(hid_t obj, const std::string& name, int64_t value) {
  Handle space(check(H5Screate(H5S_SCALAR), "H5Screate"), Handle::Kind::kDataspace);
  Handle a(check(H5Acreate2(obj, name.c_str(), H5T_NATIVE_INT64, space.id(), H5P_DEFAULT, H5P_DEFAULT), "attribute " + name),
           Handle::Kind::kAttribute);
  check(H5Awrite(a.id(), H5T_NATIVE_INT64, &value), "writing attribute " + name);
}

void write_attr(hid_t obj, const std::string& name, double value) {
  Handle space(check(H5Screate(H5S_SCALAR), "H5Screate"), Handle::Kind::kDataspace);
  Handle a(check(H5Acreate2(obj, name.c_str(), H5T_NATIVE_DOUBLE, space.id(), H5P_DEFAULT, H5P_DEFAULT), "attribute " + name),
           Handle::Kind::kAttribute);
  check(H5Awrite(a.id(), H5T_NATIVE_DOUBLE, &value), "writing attribute " + name);
}

bool has_attr(hid_t obj, const std::string& name) { return H5Aexists(obj, name.c_str()) > 0; }

std::string read_attr_string(hid_t obj, const std::string& name) {
  Handle a(check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "opening attribute " + name), Handle::Kind::kAttribute);
  Handle type(check(H5Aget_type(a.id()), "H5Aget_type"), Handle::Kind::kDatatype);
  if (H5Tget_class(type.id()) != H5T_STRING) throw RuntimeError("attribute " + name + " is not a string");
  if (H5Tis_variable_str(type.id()) > 0) throw RuntimeError("attribute " + name + " is a variable-length string");
  const size_t n = H5Tget_size(type.id());
  std::string s(n, '\0');
  check(H5Aread(a.id(), type.id(), s.data()), "reading attribute " + name);
  s.resize(strnlen(s.data(), n));
  return s;
}

int64_t read_attr_int(hid_t obj, const std::string& name) {
  Handle a(check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "opening attribute " + name), Handle::Kind::kAttribute);
  int64_t v = 0;
  check(H5Aread(a.id(), H5T_NATIVE_INT64, &v), "reading attribute " + name);
  return v;
}

double read_attr_double(hid_t obj, const std::string& name) {
  Handle a(check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "opening attribute " + name), Handle::Kind::kAttribute);
  double v = 0;
  check(H5Aread(a.id(), H5T_NATIVE_DOUBLE, &v), "reading attribute " + name);
  return v;
}

}  // namespace capscale::results::h5
