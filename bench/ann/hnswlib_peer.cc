// hnswlib as a peer. This file alone is compiled with -march=native (see bench/CMakeLists.txt)
// so hnswlib uses its AVX-512/AVX distance functions, as a tuned deployment would.
#include <hnswlib/hnswlib.h>

#include <atomic>
#include <fstream>
#include <thread>
#include <vector>

#include "bench/ann/peer.h"

namespace quiver::bench {
namespace {

class HnswlibPeer final : public PeerIndex {
 public:
  HnswlibPeer(size_t dim, size_t m, size_t efc, bool inner_product) : m_(m), efc_(efc) {
    if (inner_product) {
      space_ = std::make_unique<hnswlib::InnerProductSpace>(dim);
    } else {
      space_ = std::make_unique<hnswlib::L2Space>(dim);
    }
  }
  std::string name() const override { return "hnswlib"; }

  void Build(const float* data, size_t n, int threads) override {
    index_ = std::make_unique<hnswlib::HierarchicalNSW<float>>(space_.get(), n, m_, efc_);
    const size_t dim = *static_cast<size_t*>(space_->get_dist_func_param());
    // As hnswlib's own Python binding does: the first point alone, then the rest in parallel.
    index_->addPoint(data, 0);
    std::atomic<size_t> next{1};
    std::vector<std::thread> pool;
    pool.reserve(size_t(threads));
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&] {
        for (size_t i; (i = next.fetch_add(1)) < n;) index_->addPoint(data + i * dim, i);
      });
    }
    for (auto& t : pool) t.join();
  }

  void SetKnob(size_t ef) override { index_->setEf(ef); }

  void Search(const float* query, size_t k, int64_t* out) const override {
    auto result = index_->searchKnn(query, k);
    for (size_t i = result.size(); i-- > 0;) {
      out[i] = int64_t(result.top().second);
      result.pop();
    }
  }

  bool Save(const std::string& path) const override {
    index_->saveIndex(path);
    return true;
  }

  bool Load(const std::string& path, size_t n) override {
    std::ifstream probe(path);
    if (!probe) return false;
    index_ = std::make_unique<hnswlib::HierarchicalNSW<float>>(space_.get(), path, false, n);
    return index_->cur_element_count == n;
  }

  size_t memory_bytes() const override {
    size_t bytes = index_->max_elements_ * index_->size_data_per_element_;
    for (size_t i = 0; i < index_->cur_element_count; ++i) {
      bytes += size_t(index_->element_levels_[i]) * index_->size_links_per_element_;
    }
    return bytes;
  }

 private:
  std::unique_ptr<hnswlib::SpaceInterface<float>> space_;
  size_t m_, efc_;
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> index_;
};

}  // namespace

std::unique_ptr<PeerIndex> MakeHnswlibPeer(size_t dim, size_t m, size_t ef_construction,
                                           bool inner_product) {
  return std::make_unique<HnswlibPeer>(dim, m, ef_construction, inner_product);
}

}  // namespace quiver::bench
