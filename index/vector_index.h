// VectorIndex: the one abstract interface of Quiver's ANN library. An index maps uint64 ids
// to float32 vectors of a fixed dimension and answers k-nearest-neighbour queries.
//
// Distances: smaller is closer, for every metric.
//   kL2:           squared Euclidean distance |q - x|^2
//   kInnerProduct: -(q . x)
//   kCosine:       1 - cos(q, x)  (vectors are normalised on the way in; a zero vector is
//                  rejected because it has no direction)
//
// Thread-safety: every const method may run concurrently with every other method, including
// Add and Remove (searches see a consistent index, possibly without the items being added).
// Non-const methods may run concurrently with each other unless an implementation says not.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/index_spec.h"
#include "base/result.h"
#include "base/status.h"

namespace quiver::index {

// The metric enum and its names live in base/index_spec.h (shared with the wire and the client).
using ::quiver::Metric;
using ::quiver::MetricName;
using ::quiver::ParseMetric;

struct Neighbor {
  uint64_t id;
  float distance;
  friend bool operator==(const Neighbor&, const Neighbor&) = default;
};

// A set of ids a search may return. Implementations must be cheap and thread-safe: it is called
// inside the traversal for every candidate the search would otherwise return.
class IdSelector {
 public:
  virtual ~IdSelector() = default;
  virtual bool Contains(uint64_t id) const = 0;
};

// Ids in [0, n) whose bit is set. Does not own the words.
class BitsetSelector final : public IdSelector {
 public:
  // REQUIRES: words holds at least ceil(n_bits / 64) words and outlives the selector.
  BitsetSelector(const uint64_t* words, uint64_t n_bits) : words_(words), n_bits_(n_bits) {}
  bool Contains(uint64_t id) const override {
    return id < n_bits_ && (words_[id >> 6] >> (id & 63)) & 1;
  }

 private:
  const uint64_t* words_;
  uint64_t n_bits_;
};

// An arbitrary predicate over ids.
class PredicateSelector final : public IdSelector {
 public:
  explicit PredicateSelector(std::function<bool(uint64_t)> pred) : pred_(std::move(pred)) {}
  bool Contains(uint64_t id) const override { return pred_(id); }

 private:
  std::function<bool(uint64_t)> pred_;
};

// Per-request knobs. Zero means "the index's default".
struct SearchParams {
  size_t k = 10;
  size_t ef = 0;                       // HNSW: size of the dynamic candidate list (>= k)
  size_t nprobe = 0;                   // IVF: inverted lists visited
  size_t refine = 0;                   // IVF: re-rank refine * k candidates exactly (1 = k)
  const IdSelector* filter = nullptr;  // only ids it contains are returned; not owned
};

// What a search did, for tuning and metrics.
struct SearchStats {
  size_t distances = 0;  // distance evaluations (traversal and re-rank)
  size_t hops = 0;       // graph nodes expanded
};

class WeightedIndex;

class VectorIndex {
 public:
  virtual ~VectorIndex() = default;

  virtual std::string_view type_name() const = 0;
  virtual size_t dim() const = 0;
  virtual Metric metric() const = 0;
  // Number of live (not removed) items.
  virtual size_t size() const = 0;
  // Storage slots in use, deleted entries included (HNSW keeps a removed or replaced node as a
  // tombstone until the index is rebuilt); size() for indexes that free entries at once.
  virtual size_t slots() const { return size(); }
  // Approximate bytes of memory held by the index.
  virtual size_t memory_bytes() const = 0;

  // Adds ids[i] with vector vectors[i*dim, (i+1)*dim). An id already present is replaced.
  // The batch is validated first (length, finite values, no id twice, cosine: no zero vector)
  // and rejected as a whole with kInvalidArgument; nothing is added in that case.
  virtual Status Add(std::span<const uint64_t> ids, std::span<const float> vectors) = 0;

  // Removes ids. If any id is absent, returns kNotFound and removes nothing.
  virtual Status Remove(std::span<const uint64_t> ids) = 0;

  virtual bool Contains(uint64_t id) const = 0;
  // Copies id's stored vector (dim floats) into out: exact for flat and HNSW indexes and for
  // IVF-PQ with a float32 refine store, dequantised from int8 refine rows, normalised under
  // cosine. kNotFound if absent; kFailedPrecondition if the index keeps no vectors (IVF-PQ
  // without a refine store).
  virtual Status GetVector(uint64_t id, float* out) const = 0;
  // GetVector for many ids: row i of out (dim floats) gets ids[i]'s vector and found[i] = 1,
  // or found[i] = 0 if it is absent (the row is then left as it was). Returns how many were
  // found. Indexes override it to take their locks once and prefetch.
  virtual size_t GetVectors(std::span<const uint64_t> ids, float* out, uint8_t* found) const;

  // Up to params.k nearest live ids allowed by params.filter, closest first, into *out
  // (cleared first). kInvalidArgument for a query of the wrong length or with NaN/Inf, or k = 0.
  virtual Status Search(std::span<const float> query, const SearchParams& params,
                        std::vector<Neighbor>* out, SearchStats* stats = nullptr) const = 0;

  // Searches nq queries (row-major) on up to `threads` threads; out->size() becomes nq.
  Status SearchBatch(std::span<const float> queries, const SearchParams& params,
                     std::vector<std::vector<Neighbor>>* out, int threads = 1) const;

  // Writes the index to `path` atomically (a temporary file, fsync, rename).
  virtual Status Save(const std::string& path) const = 0;

  // Capabilities beyond the interface above, asked for instead of casting to an implementation.
  // False until an index that must be trained (IVF-PQ) has been.
  virtual bool trained() const { return true; }
  // Whether GetVector returns every vector bit for bit as it was added: not under cosine (the
  // vectors are normalised on the way in), nor from a quantised store.
  virtual bool exact_vectors() const { return metric() != Metric::kCosine; }
  // The per-item weights interface when the index keeps weights beside each item, else null.
  virtual WeightedIndex* weighted() { return nullptr; }
  virtual const WeightedIndex* weighted() const { return nullptr; }

 protected:
  // Shared input checks for implementations.
  Status ValidateAdd(std::span<const uint64_t> ids, std::span<const float> vectors) const;
  Status ValidateQuery(std::span<const float> query, const SearchParams& params) const;
};

// An index that keeps W float weights beside each item (MVKE's topic weights alpha) and scores
// an item against W queries at once: s(i) = sum_k w_ik (q_k . x_i). Same thread-safety as
// VectorIndex. Implemented by IvfPqIndex built with weights (ivf_pq_index.h has the details).
class WeightedIndex {
 public:
  // W.
  virtual size_t weights_per_item() const = 0;
  // Adds items with their W weights each (row i at weights[i * W]); checks as VectorIndex::Add.
  virtual Status AddWeighted(std::span<const uint64_t> ids, std::span<const float> vectors,
                             std::span<const float> weights) = 0;
  // The params.k best items by s for the W queries (row k of `queries`), distance -s; `terms`
  // (if given) receives per result the k whose term is largest, when the scores are exact.
  virtual Status SearchWeighted(std::span<const float> queries, const SearchParams& params,
                                std::vector<Neighbor>* out,
                                std::vector<uint32_t>* terms = nullptr) const = 0;
  // Whether SearchWeighted's scores are exact for these params (else they are approximations
  // the caller should rescore).
  virtual bool ExactWeighted(const SearchParams& params) const = 0;

 protected:
  ~WeightedIndex() = default;
};

// Converts a metric distance back to a similarity score for callers that rank by "higher is
// better": -distance for L2, the dot product for IP, the cosine for cosine.
float DistanceToScore(Metric metric, float distance);

}  // namespace quiver::index
