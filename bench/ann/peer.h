// A peer ANN library driven by ann_bench through the same calls as Quiver's indexes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

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
  // Writes the k nearest ids (closest first) to out.
  virtual void Search(const float* query, size_t k, int64_t* out) const = 0;
  virtual size_t memory_bytes() const = 0;
  // Optional caching of a built index between runs (for search tuning): false if unsupported.
  virtual bool Save(const std::string& path) const { return false; }
  virtual bool Load(const std::string& path, size_t n) { return false; }
};

// hnswlib (Debian's libhnswlib-dev), L2, compiled with -O3 -march=native.
std::unique_ptr<PeerIndex> MakeHnswlibPeer(size_t dim, size_t m, size_t ef_construction);

// FAISS (Debian's libfaiss-dev), L2, any index_factory string, e.g. "IVF256,PQ196x4fs,RFlat".
std::unique_ptr<PeerIndex> MakeFaissPeer(size_t dim, const std::string& factory, float k_factor);

}  // namespace quiver::bench
