// Damaging a RocksDB write-ahead log, for the tests of recovery that refuses to hide a loss.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

namespace quiver::testing {

// The largest write-ahead log (*.log) anywhere under `dir`; "" if there is none.
inline std::string LargestWal(const std::string& dir) {
  std::string wal;
  std::uintmax_t size = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.path().extension() == ".log" && (wal.empty() || e.file_size() > size)) {
      wal = e.path().string();
      size = e.file_size();
    }
  }
  return wal;
}

// Inverts the byte in the middle of the file; false if it could not be read and written.
inline bool FlipMiddleByte(const std::string& path) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  const auto middle = std::streamoff(std::filesystem::file_size(path) / 2);
  char byte = 0;
  f.seekg(middle);
  f.read(&byte, 1);
  byte = char(~byte);
  f.seekp(middle);
  f.write(&byte, 1);
  return f.good();
}

}  // namespace quiver::testing
