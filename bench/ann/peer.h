// A peer ANN library driven by ann_bench through the same calls as Quiver's indexes.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace quiver::bench {

class PeerIndex {
 public:
  virtual ~PeerIndex() = default;
  virtual std::string name() const = 0;
  // Builds from n row-major vectors (ids 0..n-1) on `threads` threads.
  virtual void Build(const float* data, size_t n, int threads) = 0;
  // True if the sweep knob is nprobe (IVF), false if it is ef (graph indexes).
  virtual bool is_ivf() const { return false; }
  // Sets the accuracy/speed knob: ef for graph indexes, nprobe for IVF ones.
  virtual void SetKnob(size_t value) = 0;
  // Sets the re-rank factor (candidates = factor * k) where the index has a refine stage;
  // returns false if it has none.
  virtual bool SetRefine(float factor) { return false; }
  // Writes the k nearest ids (closest first) to out.
  virtual void Search(const float* query, size_t k, int64_t* out) const = 0;
  // The k nearest of the items whose bit is set in `allowed` (n items; `selectivity` the share
  // set); returns how many were written. This default post-filters (what a library without
  // filters leaves its users: ask for enough neighbours that k pass, expected twice over).
  virtual size_t SearchFiltered(const float* query, size_t k, const std::vector<uint64_t>& allowed,
                                size_t n, double selectivity, int64_t* out) const {
    const size_t want = std::min(n, size_t(std::ceil(double(k) / selectivity * 2.0)) + k);
    thread_local std::vector<int64_t> all;
    all.assign(want, -1);
    Search(query, want, all.data());
    size_t got = 0;
    for (int64_t id : all) {
      if (id < 0 || (allowed[uint64_t(id) >> 6] >> (uint64_t(id) & 63) & 1) == 0) continue;
      out[got++] = id;
      if (got == k) break;
    }
    return got;
  }
  virtual size_t memory_bytes() const = 0;
  // Optional caching of a built index between runs (for search tuning): false if unsupported.
  virtual bool Save(const std::string& path) const { return false; }
  virtual bool Load(const std::string& path, size_t n) { return false; }
};

// "faiss-avx2" if the FAISS linked in has its AVX2 kernels (bench/faiss_avx2.sh), else "faiss".
std::string FaissBuildName();

// hnswlib (Debian's libhnswlib-dev), compiled with -O3 -march=native; L2, or inner product
// (largest first) if `inner_product`.
std::unique_ptr<PeerIndex> MakeHnswlibPeer(size_t dim, size_t m, size_t ef_construction,
                                           bool inner_product);

// FAISS, any index_factory string, e.g. "IVF256,PQ196x4fs,RFlat"; L2 or inner product.
std::unique_ptr<PeerIndex> MakeFaissPeer(size_t dim, const std::string& factory, float k_factor,
                                         bool inner_product);

}  // namespace quiver::bench
