#include "index/io/index_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/coding.h"
#include "base/crc32c.h"

namespace quiver::index {
namespace {

Status IoError(std::string_view what, const std::string& path) {
  std::string msg(what);
  msg += " ";
  msg += path;
  msg += ": ";
  msg += std::strerror(errno);
  return errno == ENOENT ? NotFoundError(msg) : InternalError(msg);
}

constexpr size_t kHeaderSize = 8 + 4 + 4 + 4 + 4;
constexpr size_t kSectionHeaderSize = 4 + 8 + 4;

}  // namespace

Result<std::string> ReadFileToString(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return IoError("cannot open", path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    Status s = IoError("cannot stat", path);
    ::close(fd);
    return s;
  }
  std::string data(size_t(st.st_size), '\0');
  size_t done = 0;
  while (done < data.size()) {
    ssize_t r = ::read(fd, data.data() + done, data.size() - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      Status s =
          r < 0 ? IoError("cannot read", path) : DataLossError("file shrank while reading " + path);
      ::close(fd);
      return s;
    }
    done += size_t(r);
  }
  ::close(fd);
  return data;
}

Status WriteFileAtomically(const std::string& path, std::string_view data) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return IoError("cannot create", tmp);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t w = ::write(fd, data.data() + done, data.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      Status s = IoError("cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return s;
    }
    done += size_t(w);
  }
  if (::fsync(fd) != 0) {
    Status s = IoError("cannot fsync", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = IoError("cannot rename to", path);
    ::unlink(tmp.c_str());
    return s;
  }
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? std::string(".")
                          : slash == 0               ? std::string("/")
                                                     : path.substr(0, slash);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

void IndexFileWriter::AddSection(uint32_t tag, std::string payload) {
  if (sections_.emplace(tag, std::move(payload)).second) order_.push_back(tag);
}

Status IndexFileWriter::Finish() {
  size_t total = kHeaderSize;
  for (const auto& [tag, payload] : sections_) total += kSectionHeaderSize + payload.size();
  std::string out;
  out.reserve(total);
  out.append(kIndexMagic, 8);
  PutFixed<uint32_t>(&out, kIndexFormatVersion);
  PutFixed<uint32_t>(&out, static_cast<uint32_t>(type_));
  PutFixed<uint32_t>(&out, uint32_t(order_.size()));
  PutFixed<uint32_t>(&out, crc32c::Value(out.data(), out.size()));
  for (uint32_t tag : order_) {
    std::string& payload = sections_[tag];
    PutFixed<uint32_t>(&out, tag);
    PutFixed<uint64_t>(&out, payload.size());
    PutFixed<uint32_t>(&out, crc32c::Value(payload));
    out += payload;
    std::string().swap(payload);  // release as we go
  }
  return WriteFileAtomically(path_, out);
}

Result<IndexFileReader> IndexFileReader::Open(const std::string& path) {
  IndexFileReader r;
  QV_ASSIGN_OR_RETURN(r.data_, ReadFileToString(path));
  std::string_view in(r.data_);
  auto corrupt = [&](std::string_view why) {
    return DataLossError("index file " + path + ": " + std::string(why));
  };
  if (in.size() < kHeaderSize) return corrupt("shorter than its header");
  if (std::memcmp(in.data(), kIndexMagic, 8) != 0) return corrupt("bad magic (not a Quiver index)");
  uint32_t header_crc = DecodeFixed<uint32_t>(in.data() + 20);
  if (header_crc != crc32c::Value(in.data(), 20)) return corrupt("header checksum mismatch");
  uint32_t version = DecodeFixed<uint32_t>(in.data() + 8);
  if (version != kIndexFormatVersion) {
    return corrupt("format version " + std::to_string(version) +
                   " is not supported (this build reads " + std::to_string(kIndexFormatVersion) +
                   ")");
  }
  r.type_ = static_cast<IndexType>(DecodeFixed<uint32_t>(in.data() + 12));
  uint32_t count = DecodeFixed<uint32_t>(in.data() + 16);
  size_t pos = kHeaderSize;
  for (uint32_t i = 0; i < count; ++i) {
    if (in.size() - pos < kSectionHeaderSize) return corrupt("truncated section header");
    uint32_t tag = DecodeFixed<uint32_t>(in.data() + pos);
    uint64_t size = DecodeFixed<uint64_t>(in.data() + pos + 4);
    uint32_t crc = DecodeFixed<uint32_t>(in.data() + pos + 12);
    pos += kSectionHeaderSize;
    if (size > in.size() - pos) return corrupt("section larger than the file (truncated?)");
    if (crc32c::Value(in.data() + pos, size) != crc) {
      return corrupt("checksum mismatch in section " + std::to_string(tag));
    }
    if (!r.sections_.emplace(tag, std::make_pair(pos, size_t(size))).second) {
      return corrupt("duplicate section " + std::to_string(tag));
    }
    pos += size;
  }
  if (pos != in.size()) return corrupt("trailing bytes after the last section");
  return r;
}

Result<std::string_view> IndexFileReader::Section(uint32_t tag) const {
  auto it = sections_.find(tag);
  if (it == sections_.end())
    return DataLossError("index file lacks section " + std::to_string(tag));
  return std::string_view(data_).substr(it->second.first, it->second.second);
}

}  // namespace quiver::index
