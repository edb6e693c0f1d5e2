// HnswIndex: hierarchical navigable small-world graph (Malkov & Yashunin, 2016), with
//   - the traversal vector, level-0 links and id of a node in one 64-byte-aligned block;
//   - optional 8-bit scalar-quantised traversal vectors (4x less memory traffic per hop) with
//     exact float32 re-ranking of the ef best candidates;
//   - tombstone deletes (a removed node still routes searches but is never returned);
//   - filters applied during traversal (filtered-out nodes route but are not returned);
//   - multi-threaded batch insertion, and searches concurrent with insertion.
//
// Complexity: search ~O(ef * M * log n) distance evaluations; insert ~O(ef_construction * M).
// Memory per node: block (code bytes + 8 + 8*M + 8, rounded to 64) + float vector when
// quantised + upper-level links (rare: 1/M of nodes per level).
// Thread-safety: as VectorIndex. Add and Remove may run concurrently with each other and with
// searches. Capacity grows by doubling under a brief exclusive lock.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include "base/large_buffer.h"
#include "index/io/index_file.h"
#include "index/simd/kernels.h"
#include "index/simd/quantizer.h"
#include "index/vector_index.h"

namespace quiver::index {

enum class HnswQuantization : uint8_t { kNone = 0, kSq8 = 1 };

struct HnswOptions {
  size_t m = 16;                 // links per node on upper levels; 2*m on level 0. [2, 128]
  size_t ef_construction = 200;  // candidate list size while inserting. >= 1
  size_t ef_search = 64;         // default candidate list size for searches. >= 1
  HnswQuantization quantization = HnswQuantization::kNone;
  int build_threads = 0;  // threads used by Add for a batch; 0 = all cores
  uint64_t seed = 100;    // level assignment is a hash of (seed, insertion number)
};

class HnswIndex final : public VectorIndex {
 public:
  // kInvalidArgument for dim 0 or options out of range.
  static Result<std::unique_ptr<HnswIndex>> Create(size_t dim, Metric metric,
                                                   const HnswOptions& options);
  ~HnswIndex() override;

  std::string_view type_name() const override { return "hnsw"; }
  size_t dim() const override { return dim_; }
  Metric metric() const override { return metric_; }
  size_t size() const override { return live_.load(std::memory_order_relaxed); }
  size_t memory_bytes() const override;
  const HnswOptions& options() const { return options_; }
  // Nodes in the graph, including tombstones.
  size_t node_count() const { return count_.load(std::memory_order_acquire); }
  size_t slots() const override { return node_count(); }

  // With quantisation, the first non-empty batch also fits the quantiser unless Train ran.
  Status Add(std::span<const uint64_t> ids, std::span<const float> vectors) override;
  Status Remove(std::span<const uint64_t> ids) override;
  bool Contains(uint64_t id) const override;
  Status GetVector(uint64_t id, float* out) const override;
  size_t GetVectors(std::span<const uint64_t> ids, float* out, uint8_t* found) const override;
  Status Search(std::span<const float> query, const SearchParams& params,
                std::vector<Neighbor>* out, SearchStats* stats = nullptr) const override;
  Status Save(const std::string& path) const override;

  // Fits the scalar quantiser to a sample (n * dim floats). kFailedPrecondition once items
  // were added; a no-op without quantisation.
  Status Train(std::span<const float> sample);

  static Result<std::unique_ptr<HnswIndex>> Load(const IndexFileReader& file);

 private:
  Status TrainLocked(std::span<const float> sample);  // REQUIRES: grow_mu_ held exclusively
  struct SearchContext;
  struct Candidate {
    float distance;
    uint32_t node;
  };
  enum class DistKind : uint8_t { kFloatL2, kFloatIp, kFloatCos, kSq8L2, kSq8Ip };

  HnswIndex(size_t dim, Metric metric, const HnswOptions& options);

  // Layout accessors. REQUIRES: node < count_ and the grow lock held (shared or exclusive).
  char* Block(uint32_t node) const { return level0_.data() + size_t(node) * block_size_; }
  uint32_t* Links0(uint32_t node) const {
    return reinterpret_cast<uint32_t*>(Block(node) + links_offset_);
  }
  uint32_t* LinksAt(uint32_t node, int level) const;
  // The traversal vector opens the block, so it starts on a cache line.
  const void* Code(uint32_t node) const { return Block(node); }
  uint64_t Label(uint32_t node) const;
  bool IsDeleted(uint32_t node) const;
  void SetDeleted(uint32_t node);
  const float* FloatVector(uint32_t node) const;

  float Distance(const void* query_code, uint32_t node) const;
  float ExactDistance(const float* query, uint32_t node) const;
  size_t MaxLinks(int level) const { return level == 0 ? m0_ : options_.m; }

  // Reserves room for `extra` more nodes; grows the storage under the exclusive lock.
  void Reserve(size_t extra);
  void GrowLocked(size_t new_capacity);
  int RandomLevel(uint64_t insertion) const;

  void Insert(uint64_t label, const float* vector, SearchContext& ctx);
  uint32_t GreedyDescend(const void* query_code, uint32_t ep, int from_level, int to_level,
                         bool locked, SearchStats* stats) const;
  template <bool kConstruction, bool kHasFilter>
  void SearchLayer(SearchContext& ctx, const void* query_code, uint32_t ep, int level, size_t ef,
                   const IdSelector* filter, SearchStats* stats) const;
  uint32_t Connect(uint32_t node, SearchContext& ctx, int level);
  void SelectNeighbors(std::vector<Candidate>& candidates, size_t m) const;
  void PrepareQuery(const float* query, SearchContext& ctx) const;
  // The k best live items (passing `filter`) by exact distance to the prepared query, into
  // `out`. REQUIRES: the grow lock held (shared).
  void ScanAll(const float* query, size_t k, const IdSelector* filter, std::vector<Neighbor>* out,
               SearchStats* stats) const;

  std::unique_ptr<SearchContext> AcquireContext() const;
  void ReleaseContext(std::unique_ptr<SearchContext> ctx) const;

  const size_t dim_;
  const Metric metric_;
  const HnswOptions options_;
  const simd::Kernels& kernels_;
  const size_t m0_;
  const size_t code_size_;
  const size_t links_offset_;  // block: code | link count, flags, level-0 links | id | padding
  const size_t label_offset_;
  const size_t block_size_;
  const double level_mult_;
  DistKind dist_kind_;
  simd::ScalarQuantizer quantizer_;  // written only under grow_mu_ exclusive, before any node
  bool quantizer_trained_ = false;   // GUARDED_BY(grow_mu_)

  mutable std::shared_mutex grow_mu_;  // exclusive only while storage moves
  LargeBuffer level0_;                 // capacity_ blocks
  size_t capacity_ = 0;
  size_t reserved_ = 0;  // GUARDED_BY(grow_mu_ exclusive): ids handed out or promised
  LargeBuffer floats_;   // quantised only: capacity_ float32 vectors, for re-ranking
  std::vector<std::unique_ptr<uint32_t[]>> upper_;  // per node: level * (m+1) words
  std::vector<uint8_t> levels_;
  std::atomic<uint32_t> count_{0};
  std::atomic<size_t> live_{0};

  static constexpr size_t kLockStripes = 1 << 14;
  mutable std::unique_ptr<std::mutex[]> link_locks_;
  std::mutex entry_mu_;          // held by an insert that raises the top level
  std::atomic<uint64_t> entry_;  // (level << 32) | node, or kNoEntry

  mutable std::mutex label_mu_;
  std::unordered_map<uint64_t, uint32_t> node_of_;  // GUARDED_BY(label_mu_), live ids only

  mutable std::mutex pool_mu_;
  mutable std::vector<std::unique_ptr<SearchContext>> pool_;  // GUARDED_BY(pool_mu_)

  friend class HnswSerializer;
};

}  // namespace quiver::index
