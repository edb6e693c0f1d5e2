#include "base/large_buffer.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "base/check.h"

namespace quiver {
namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}  // namespace

LargeBuffer::~LargeBuffer() { std::free(data_); }

LargeBuffer::LargeBuffer(LargeBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

LargeBuffer& LargeBuffer::operator=(LargeBuffer&& other) noexcept {
  if (this != &other) {
    std::free(data_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void LargeBuffer::Resize(size_t bytes) {
  if (bytes == size_) return;
  if (bytes == 0) {
    std::free(data_);
    data_ = nullptr;
    size_ = 0;
    return;
  }
  const bool huge = bytes >= kHugePage;
  const size_t align = huge ? kHugePage : 64;
  const size_t rounded = (bytes + align - 1) / align * align;
  char* grown = static_cast<char*>(std::aligned_alloc(align, rounded));
  QV_CHECK(grown != nullptr) << "out of memory allocating " << rounded << " bytes";
#ifdef MADV_HUGEPAGE
  if (huge) ::madvise(grown, rounded, MADV_HUGEPAGE);
#endif
  const size_t keep = std::min(size_, bytes);
  if (keep) std::memcpy(grown, data_, keep);
  std::memset(grown + keep, 0, rounded - keep);
  std::free(data_);
  data_ = grown;
  size_ = bytes;
}

}  // namespace quiver
