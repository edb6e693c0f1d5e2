// IvfPqIndex: inverted file over a coarse quantiser (nlist centroids) with product-quantised
// residuals (Jegou et al., 2011), 8-bit codes scanned through distance tables or 4-bit codes
// scanned 32 at a time with in-register table lookups ("fast scan", as FAISS and ScaNN do),
// and optional exact re-ranking of refine * k candidates from stored float32 vectors.
//
// The coarse quantiser is trained by k-means, or given from outside together with each item's
// list (the engine's cluster ids); SearchLists visits a chosen subset of lists with its own k
// per list, which is what per-cluster quotas stand on.
//
// L2 distances use per-list precomputed tables (||y||^2 + 2<c, y> per sub-code), so a probed
// list costs one table add instead of a residual table; inner product needs no residual term.
//
// Memory per vector: code_size bytes + 8 (id) + the refine row (4 * dim, dim or 0 bytes); per
// list: its centroid
// and, for L2, m * ksub floats of precomputed table.
// Thread-safety: as VectorIndex (a reader-writer lock: searches share; Add/Remove exclude).
#pragma once

#include <shared_mutex>
#include <unordered_map>

#include "index/io/index_file.h"
#include "index/pq/product_quantizer.h"
#include "index/simd/kernels.h"
#include "index/simd/quantizer.h"
#include "index/vector_index.h"

namespace quiver::index {

// What IVF-PQ keeps for exact re-ranking of its candidates.
enum class RefineStore : uint8_t {
  kNone = 0,     // PQ distances only
  kFloat32 = 1,  // float32 vectors: exact distances (4 * dim bytes per item)
  kInt8 = 2,     // 8-bit scalar-quantised vectors (dim bytes per item; exact for data already
                 // on an integer grid in [0, 255], such as pixels)
};

struct IvfPqOptions {
  size_t nlist = 256;
  size_t m = 16;       // PQ sub-quantisers; must divide dim
  size_t nbits = 8;    // 8, or 4 for fast scan
  size_t nprobe = 16;  // default lists visited per query
  RefineStore refine_store = RefineStore::kFloat32;
  size_t refine = 4;  // default re-rank factor with a refine store (0 = off)
  size_t max_train_points_per_list = 256;
  int threads = 0;  // training and encoding threads; 0 = all cores
  uint64_t seed = 1234;
  // W > 0: every item keeps W float weights beside its code (MVKE's topic weights alpha), for
  // SearchWeighted.
  size_t weights = 0;
};

// One list to visit in SearchLists, with how many results to take from it.
struct ListQuota {
  uint32_t list;
  size_t k;
};

class IvfPqIndex final : public VectorIndex, public WeightedIndex {
 public:
  static Result<std::unique_ptr<IvfPqIndex>> Create(size_t dim, Metric metric,
                                                    const IvfPqOptions& options);

  std::string_view type_name() const override { return "ivf_pq"; }
  size_t dim() const override { return dim_; }
  Metric metric() const override { return metric_; }
  size_t size() const override;
  size_t memory_bytes() const override;
  const IvfPqOptions& options() const { return options_; }
  bool trained() const override;
  // Float32 refine rows only (int8 rows are dequantised; without a refine store there are none).
  bool exact_vectors() const override {
    return metric_ != Metric::kCosine && options_.refine_store == RefineStore::kFloat32;
  }
  // Itself when built with options.weights > 0.
  WeightedIndex* weighted() override { return options_.weights > 0 ? this : nullptr; }
  const WeightedIndex* weighted() const override { return options_.weights > 0 ? this : nullptr; }
  size_t weights_per_item() const override { return options_.weights; }
  // Items in each list.
  std::vector<size_t> ListSizes() const;

  // Trains the coarse quantiser (k-means, unless centroids were given) and the PQ on a sample.
  // kFailedPrecondition once trained.
  Status Train(std::span<const float> sample);
  // Uses the given nlist * dim centroids as the coarse quantiser; the PQ is trained by the
  // first Train or Add. kFailedPrecondition once trained.
  Status SetCoarseCentroids(std::span<const float> centroids);

  // Adds with each item's list chosen by the coarse quantiser. The first Add of an untrained
  // index trains on its batch.
  Status Add(std::span<const uint64_t> ids, std::span<const float> vectors) override;
  // Adds with lists given by the caller (each < nlist). REQUIRES a trained index.
  Status AddToLists(std::span<const uint64_t> ids, std::span<const float> vectors,
                    std::span<const uint32_t> lists);
  // With options.weights = W: adds items with their W weights each (row i at weights[i * W]);
  // Add and AddToLists store zero weights.
  Status AddWeighted(std::span<const uint64_t> ids, std::span<const float> vectors,
                     std::span<const float> weights) override;
  // The weighted multi-table scan, for MVKE over one copy of each item: with W queries q_k (row
  // k of `queries`), scores each item of the probed lists by
  //   s(i) = sum_k w_ik (q_k . c_l + T_k(code_i)),
  // c_l its list's centroid, T_k(code) = q_k . (the PQ residual), w_i its weights: the exact
  // weighted score of the item's PQ reconstruction, read from each code once. Lists are probed
  // in order of sum_k mean_l(w_k) (q_k . c_l) (the list's mean weights). Returns the params.k
  // best by s (distance -s), with params.nprobe and params.filter. With float32 refine rows and
  // a refine factor r (params.refine, else the index's), the params.k * r best by s are
  // rescored exactly, sum_k w_ik (q_k . x_i) summed in double, and the k best by that returned;
  // `terms` (if given) then receives, per result, the k whose term w_ik (q_k . x_i) is largest.
  // Queries are used as given (not normalised, also under cosine). REQUIRES options.weights =
  // W > 0 (else kFailedPrecondition).
  Status SearchWeighted(std::span<const float> queries, const SearchParams& params,
                        std::vector<Neighbor>* out,
                        std::vector<uint32_t>* terms = nullptr) const override;
  // Whether SearchWeighted's scores are exact (float32 refine rows and a refine factor).
  bool ExactWeighted(const SearchParams& params) const override {
    return options_.refine_store == RefineStore::kFloat32 && RefineFactor(params) > 0;
  }
  Status Remove(std::span<const uint64_t> ids) override;
  bool Contains(uint64_t id) const override;
  Status GetVector(uint64_t id, float* out) const override;
  Status Search(std::span<const float> query, const SearchParams& params,
                std::vector<Neighbor>* out, SearchStats* stats = nullptr) const override;
  // Searches only the given lists, each with its own k; (*out)[i] holds list quotas[i]'s
  // results. params.k is ignored; params.refine and params.filter apply.
  Status SearchLists(std::span<const float> query, std::span<const ListQuota> quotas,
                     const SearchParams& params, std::vector<std::vector<Neighbor>>* out) const;
  Status Save(const std::string& path) const override;

  static Result<std::unique_ptr<IvfPqIndex>> Load(const IndexFileReader& file);

 private:
  struct List {
    std::vector<uint64_t> ids;
    std::vector<uint8_t> codes;       // 8-bit: n * code_size; 4-bit: ceil(n/32) packed blocks
    std::vector<uint8_t> rows;        // n refine rows (refine_row_bytes_ each)
    std::vector<float> weights;       // n * options.weights
    std::vector<double> weight_sums;  // options.weights: per weight, its sum over the list
  };
  struct Candidate {
    float distance;
    uint32_t list;
    uint32_t pos;
  };
  class Scanner;
  struct Scratch;
  static Scratch& ThreadScratch();

  IvfPqIndex(size_t dim, Metric metric, const IvfPqOptions& options);

  Status TrainLocked(std::span<const float> sample);
  void BuildPrecomputedLocked();
  Status AddLocked(std::span<const uint64_t> ids, const float* vectors, const uint32_t* lists,
                   const float* weights = nullptr);
  // The list of each row: the nearest centroid (L2, cosine; inner product with lifted lists:
  // the nearest lifted centroid; inner product without: the largest dot).
  std::vector<uint32_t> AssignLists(const float* x, size_t n) const;
  // probe_bias_ and lifted_centroids_ from the centroids (and lift_e_).
  void UpdateListTermsLocked();
  void AppendToList(List& list, uint64_t id, const uint8_t* code, const float* vector,
                    const float* weights);
  void RemoveFromList(uint32_t list, uint32_t pos);
  void PrepareQuery(const float* query, std::vector<float>* q) const;
  // The rows as the index stores them: normalised (into *storage) under cosine, else as given.
  const float* RowsForMetric(std::span<const float> rows, std::vector<float>* storage) const;
  // Re-ranks (exact distances from stored vectors) if asked, sorts, and emits the k best.
  void FinishLocked(const float* q, bool refine, size_t k, std::vector<Candidate>& candidates,
                    std::vector<Neighbor>* out) const;
  size_t RefineFactor(const SearchParams& params) const;

  const size_t dim_;
  const Metric metric_;
  const IvfPqOptions options_;
  const simd::Kernels& kernels_;

  mutable std::shared_mutex mu_;
  bool coarse_given_ = false;     // GUARDED_BY(mu_)
  bool trained_ = false;          // GUARDED_BY(mu_)
  std::vector<float> centroids_;  // nlist * dim
  // Inner product, lists trained here: the lists are L2 k-means cells of the items lifted to
  // dim + 1 dimensions, x' = (x, sqrt(M^2 - |x|^2)) with M the training sample's largest norm.
  // For q' = (q, 0), |q' - x'|^2 = |q|^2 + M^2 - 2 q.x: L2 order there is inner-product order,
  // so the lists are as tight (and the residuals as small) as L2 lists. A list's lifted
  // centroid is (c, lift_e_[l]). Empty (and lists by largest dot) for indexes written before.
  std::vector<float> lift_e_;
  float lift_m2_ = 0;  // M^2
  // Added, times |q|, to -q.c to order the lists a query probes (inner product, cosine): the
  // L2 order of the (lifted) space, (|c|^2 + e^2) / 2M (cosine: M = 1). Empty: -q.c alone.
  std::vector<float> probe_bias_;
  std::vector<float> lifted_centroids_;  // nlist * (dim + 1): (c, e) rows; empty unless lifted
  ProductQuantizer pq_;
  // Bytes per refine row: 4 dim (float32), dim (int8, one scale), dim + 8 (int8, per-row scale:
  // the codes, then the row's lo and step as f32). Set before any row exists.
  size_t refine_row_bytes_;
  simd::ScalarQuantizer refine_sq_;  // kInt8 refine store: the one scale, or the kind per row
  // kInt8 with a scale per row (lo, step fitted to the row's own range): chosen at training
  // unless the sample lies on the integer grid [0, 255], which one scale keeps exact. On a
  // 97-dim Gaussian mixture one scale caps recall@10 at 0.973; a scale per row reaches 0.99+.
  bool refine_per_row_ = false;
  // The quantiser of one int8 row (its own scale when refine_per_row_).
  simd::ScalarQuantizer RowQuantizer(const uint8_t* row) const;
  std::vector<float> precomputed_;  // L2: nlist * m * ksub, or empty
  std::vector<List> lists_;
  std::unordered_map<uint64_t, std::pair<uint32_t, uint32_t>> where_;  // id -> (list, pos)

  friend class IvfPqSerializer;
};

}  // namespace quiver::index
