// Scratch files for unit tests. launch/test.sh runs ctest with one job per core, so several test
// processes (one per test) write scratch files at once: each process gets a folder of its own.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace capscale::test_util {

/// `name` (a leading '/' ignored) in this process's folder under GoogleTest's TempDir().
inline std::string temp_path(const std::string& name) {
  const auto dir = std::filesystem::path(::testing::TempDir()) / ("capscale-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / std::filesystem::path(name).relative_path()).string();
}

/// temp_path(name) with no file there yet, nor the `.partial` the results writer keeps beside it
/// (a folder left by an earlier process of the same pid must not hand a test its files).
inline std::string fresh_temp_path(const std::string& name) {
  const std::string path = temp_path(name);
  std::filesystem::remove(path);
  std::filesystem::remove(path + ".partial");
  return path;
}

/// Writes `text` to temp_path(name) (replacing any file there) and returns the path.
inline std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = temp_path(name);
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  EXPECT_TRUE(out.good()) << "cannot write " << path;
  return path;
}

}  // namespace capscale::test_util
