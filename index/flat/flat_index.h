// FlatIndex: exact search by scanning every vector with the SIMD batch kernels and keeping
// the k best in a heap. The reference every approximate index is measured against, and the
// right index for small collections or small allowed sets.
//
// Memory: n * dim * 4 bytes of vectors (row-major, contiguous) + 8 bytes of id per row.
// Search: O(n * dim); Add: amortised O(dim); Remove: O(dim) (the last row moves into the hole).
// Thread-safety: as VectorIndex (a reader-writer lock: searches share, writers exclude).
#pragma once

#include <limits>
#include <shared_mutex>
#include <unordered_map>

#include "base/large_buffer.h"
#include "index/io/index_file.h"
#include "index/simd/kernels.h"
#include "index/vector_index.h"

namespace quiver::index {

class FlatIndex final : public VectorIndex {
 public:
  FlatIndex(size_t dim, Metric metric);

  std::string_view type_name() const override { return "flat"; }
  size_t dim() const override { return dim_; }
  Metric metric() const override { return metric_; }
  size_t size() const override;
  size_t memory_bytes() const override;

  Status Add(std::span<const uint64_t> ids, std::span<const float> vectors) override;
  Status Remove(std::span<const uint64_t> ids) override;
  bool Contains(uint64_t id) const override;
  Status GetVector(uint64_t id, float* out) const override;
  Status Search(std::span<const float> query, const SearchParams& params,
                std::vector<Neighbor>* out, SearchStats* stats = nullptr) const override;
  Status Save(const std::string& path) const override;

  static Result<std::unique_ptr<FlatIndex>> Load(const IndexFileReader& file);

 private:
  void DistancesLocked(const float* q, size_t begin, size_t end, float* out) const;

  const size_t dim_;
  const Metric metric_;
  const simd::Kernels& kernels_;
  mutable std::shared_mutex mu_;
  float* Row(size_t r) const { return reinterpret_cast<float*>(vectors_.data()) + r * dim_; }
  void ReserveRowsLocked(size_t rows);

  LargeBuffer vectors_;                          // GUARDED_BY(mu_), row r at r * dim_ floats
  size_t row_capacity_ = 0;                      // GUARDED_BY(mu_)
  std::vector<uint64_t> ids_;                    // GUARDED_BY(mu_), id of row r
  std::unordered_map<uint64_t, size_t> row_of_;  // GUARDED_BY(mu_)
};

// Keeps the k smallest (distance, id) pairs seen; ties broken by smaller id so results are
// deterministic. O(log k) per push.
class TopK {
 public:
  explicit TopK(size_t k) : k_(k) { heap_.reserve(k + 1); }
  float threshold() const {
    return heap_.size() < k_ ? std::numeric_limits<float>::infinity() : heap_.front().distance;
  }
  void Push(uint64_t id, float distance);
  // Moves the kept pairs out, closest first.
  void Extract(std::vector<Neighbor>* out);

 private:
  size_t k_;
  std::vector<Neighbor> heap_;  // max-heap by (distance, id)
};

}  // namespace quiver::index
