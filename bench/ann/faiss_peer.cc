// FAISS as a peer: Debian's libfaiss-dev (a generic build without AVX2, named "faiss") or the
// AVX2 build of bench/faiss_avx2.sh (named "faiss-avx2", from what the library says it was
// compiled with). Any index_factory
// string; the sweep knob is nprobe for IVF indexes (efSearch for HNSW ones), and a refine
// stage (",RFlat") re-ranks k_factor * k candidates. Searches run on one OpenMP thread.
#include <faiss/IndexFlatCodes.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexRefine.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_factory.h>
#include <faiss/utils/utils.h>
#include <omp.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "bench/ann/peer.h"

namespace quiver::bench {

std::string FaissBuildName() {
  return faiss::get_compile_options().find("AVX2") != std::string::npos ? "faiss-avx2" : "faiss";
}

namespace {

class FaissPeer final : public PeerIndex {
 public:
  FaissPeer(size_t dim, std::string factory, float k_factor, bool inner_product)
      : dim_(dim),
        factory_(std::move(factory)),
        k_factor_(k_factor),
        metric_(inner_product ? faiss::METRIC_INNER_PRODUCT : faiss::METRIC_L2) {}

  std::string name() const override { return FaissBuildName() + " " + factory_; }
  bool is_ivf() const override { return factory_.rfind("IVF", 0) == 0; }

  void Build(const float* data, size_t n, int threads) override {
    omp_set_num_threads(threads);
    index_.reset(faiss::index_factory(int(dim_), factory_.c_str(), metric_));
    index_->train(faiss::Index::idx_t(n), data);
    index_->add(faiss::Index::idx_t(n), data);
    if (auto* refine = dynamic_cast<faiss::IndexRefine*>(index_.get()))
      refine->k_factor = k_factor_;
    omp_set_num_threads(1);
  }

  bool SetRefine(float factor) override {
    auto* refine = dynamic_cast<faiss::IndexRefine*>(index_.get());
    if (refine) refine->k_factor = factor;
    return refine != nullptr;
  }

  void SetKnob(size_t value) override {
    faiss::Index* base = index_.get();
    if (auto* refine = dynamic_cast<faiss::IndexRefine*>(base)) base = refine->base_index;
    if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(base)) ivf->nprobe = value;
    if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(base)) hnsw->hnsw.efSearch = int(value);
  }

  void Search(const float* query, size_t k, int64_t* out) const override {
    thread_local std::vector<float> distances;
    distances.resize(k);
    index_->search(1, query, faiss::Index::idx_t(k), distances.data(), out);
  }

  // An IVF index without a refine stage filters inside its scan (IDSelectorBitmap in the
  // search parameters); anything else post-filters.
  size_t SearchFiltered(const float* query, size_t k, const std::vector<uint64_t>& allowed,
                        size_t n, double selectivity, int64_t* out) const override {
    auto* ivf = dynamic_cast<faiss::IndexIVF*>(index_.get());
    if (ivf == nullptr) return PeerIndex::SearchFiltered(query, k, allowed, n, selectivity, out);
    faiss::IDSelectorBitmap sel(allowed.size() * 8,
                                reinterpret_cast<const uint8_t*>(allowed.data()));
    faiss::SearchParametersIVF params;
    params.sel = &sel;
    params.nprobe = ivf->nprobe;
    thread_local std::vector<float> distances;
    distances.resize(k);
    std::fill(out, out + k, -1);
    ivf->search(1, query, faiss::Index::idx_t(k), distances.data(), out, &params);
    size_t got = 0;
    while (got < k && out[got] >= 0) ++got;
    return got;
  }

  // FAISS does not report memory; this counts what its IVF and refine structures must hold:
  // codes and ids in the lists, coarse centroids, and float32 vectors for a flat refine.
  size_t memory_bytes() const override {
    const faiss::Index* base = index_.get();
    size_t bytes = 0;
    if (auto* refine = dynamic_cast<const faiss::IndexRefine*>(base)) {
      bytes += size_t(refine->ntotal) * dim_ * sizeof(float);
      base = refine->base_index;
    }
    if (auto* ivf = dynamic_cast<const faiss::IndexIVF*>(base)) {
      bytes += size_t(ivf->ntotal) * (ivf->code_size + sizeof(faiss::Index::idx_t)) +
               ivf->nlist * dim_ * sizeof(float);
    }
    if (auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(base)) {
      // The graph's neighbour ids and levels, and the storage's codes (Flat: the vectors).
      bytes += hnsw->hnsw.neighbors.size() * sizeof(faiss::HNSW::storage_idx_t) +
               hnsw->hnsw.levels.size() * sizeof(int) + hnsw->hnsw.offsets.size() * sizeof(size_t);
      if (auto* codes = dynamic_cast<const faiss::IndexFlatCodes*>(hnsw->storage))
        bytes += codes->codes.size();
    }
    return bytes;
  }

 private:
  size_t dim_;
  std::string factory_;
  float k_factor_;
  faiss::MetricType metric_;
  std::unique_ptr<faiss::Index> index_;
};

}  // namespace

std::unique_ptr<PeerIndex> MakeFaissPeer(size_t dim, const std::string& factory, float k_factor,
                                         bool inner_product) {
  return std::make_unique<FaissPeer>(dim, factory, k_factor, inner_product);
}

}  // namespace quiver::bench
