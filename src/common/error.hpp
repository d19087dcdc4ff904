// The one exception hierarchy of capscale (modelled on HighFive's H5Exception.hpp: one subclass per
// kind). Library code throws; only cli/main.cpp catches, prints one line and picks the exit code:
// InputError → 2 (bad config, flag or file), everything else → 1 (runtime failure).
#pragma once
#include <stdexcept>
#include <string>

namespace capscale {

/// Base of every capscale error. what() is the whole user-facing message.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Bad input: names where (file or flag), which field, and what is allowed. Exit code 2.
class InputError : public Error {
 public:
  InputError(const std::string& where, const std::string& field, const std::string& problem)
      : Error(where + ": " + (field.empty() ? "" : "'" + field + "' ") + problem),
        where_(where), field_(field) {}
  const std::string& where() const { return where_; }
  const std::string& field() const { return field_; }

 private:
  std::string where_, field_;
};

/// A plan that does not fit the target's memory when the user asked to run it. Exit code 2.
class DoesNotFitError : public InputError {
 public:
  using InputError::InputError;
};

/// Failure inside a C library (MPI, HDF5, BLAS, CUDA, NCCL) or the OS. Exit code 1.
class RuntimeError : public Error {
 public:
  using Error::Error;
};

/// The job was interrupted by SIGINT/SIGTERM; finished results were kept. Exit code 130.
class Interrupted : public Error {
 public:
  using Error::Error;
};

/// Host name of this process, cached; used in every runtime error message.
const std::string& host_name();

}  // namespace capscale
