// The container format shared by every index file Quiver writes (docs/file-formats.md).
//
//   header   : magic "QVRINDEX" (8) | format version u32 | index type u32 | section count u32
//              | crc32c of the preceding 20 bytes u32
//   sections : tag u32 | payload size u64 | crc32c of payload u32 | payload
// All integers little-endian. A reader checks every size against the file length before it
// allocates, and every checksum before it parses; any mismatch is kDataLoss.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/status.h"

namespace quiver::index {

inline constexpr char kIndexMagic[8] = {'Q', 'V', 'R', 'I', 'N', 'D', 'E', 'X'};
inline constexpr uint32_t kIndexFormatVersion = 1;

enum class IndexType : uint32_t { kFlat = 1, kHnsw = 2, kIvfPq = 3 };

// Writes sections to a temporary file next to `path`; Finish() fsyncs it and renames it over
// `path`, so a reader sees either the old file or the complete new one.
class IndexFileWriter {
 public:
  IndexFileWriter(std::string path, IndexType type) : path_(std::move(path)), type_(type) {}
  // Sections are written in the order they are added; each tag at most once.
  void AddSection(uint32_t tag, std::string payload);
  Status Finish();

 private:
  std::string path_;
  IndexType type_;
  std::map<uint32_t, std::string> sections_;
  std::vector<uint32_t> order_;
};

// A whole index file read into memory and verified.
class IndexFileReader {
 public:
  static Result<IndexFileReader> Open(const std::string& path);

  IndexType type() const { return type_; }
  // The payload of section `tag`, or kDataLoss if the file has none.
  Result<std::string_view> Section(uint32_t tag) const;

 private:
  std::string data_;
  IndexType type_ = IndexType::kFlat;
  std::map<uint32_t, std::pair<size_t, size_t>> sections_;  // tag -> (offset, size)
};

// Reads a whole file. kNotFound if it does not exist, kInternal on other I/O errors.
Result<std::string> ReadFileToString(const std::string& path);
// Writes `data` to path atomically: temporary file, fsync, rename, fsync of the directory.
Status WriteFileAtomically(const std::string& path, std::string_view data);

}  // namespace quiver::index
