// LargeBuffer: an owned, 64-byte-aligned byte buffer for big index arrays. Buffers of 2 MiB or
// more are 2 MiB-aligned and advised as transparent huge pages (madvise MADV_HUGEPAGE, which
// works in the kernel's default "madvise" mode): random reads across hundreds of MiB then
// miss the TLB far less often. Falls back silently where huge pages are unavailable.
//
// Thread-safety: none; callers synchronise (resizing moves the data).
#pragma once

#include <cstddef>

namespace quiver {

class LargeBuffer {
 public:
  LargeBuffer() = default;
  ~LargeBuffer();
  LargeBuffer(const LargeBuffer&) = delete;
  LargeBuffer& operator=(const LargeBuffer&) = delete;
  LargeBuffer(LargeBuffer&& other) noexcept;
  LargeBuffer& operator=(LargeBuffer&& other) noexcept;

  // Grows or shrinks to `bytes`, keeping the first min(old, new) bytes; new bytes are zero.
  // Aborts if memory cannot be had (like operator new).
  void Resize(size_t bytes);

  char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  char* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace quiver
