#include "index/pq/product_quantizer.h"

#include <algorithm>
#include <cmath>
#include <thread>

#include "base/coding.h"
#include "base/parallelism.h"
#include "index/kmeans/kmeans.h"
#include "index/simd/kernels.h"

namespace quiver::index {

Result<ProductQuantizer> ProductQuantizer::Train(std::span<const float> data, size_t d, size_t m,
                                                 size_t nbits, uint64_t seed, int threads) {
  if (d == 0 || m == 0 || d % m != 0) {
    return InvalidArgumentError("PQ needs m to divide the dimension (d " + std::to_string(d) +
                                ", m " + std::to_string(m) + ")");
  }
  if (nbits != 4 && nbits != 8) return InvalidArgumentError("PQ nbits must be 4 or 8");
  if (data.size() % d != 0) return InvalidArgumentError("PQ training data is not whole rows");
  const size_t n = data.size() / d, dsub = d / m, ksub = size_t{1} << nbits;
  if (n < ksub) {
    return InvalidArgumentError("PQ training needs at least " + std::to_string(ksub) + " vectors");
  }
  std::vector<float> centroids(m * ksub * dsub);
  std::vector<float> sub(n * dsub);
  for (size_t j = 0; j < m; ++j) {
    for (size_t i = 0; i < n; ++i) std::copy_n(&data[i * d + j * dsub], dsub, &sub[i * dsub]);
    KMeansOptions o;
    o.k = ksub;
    o.iterations = 25;
    o.seed = seed + j;
    o.threads = threads;
    QV_ASSIGN_OR_RETURN(KMeansResult km, TrainKMeans(sub, dsub, o));
    std::copy(km.centroids.begin(), km.centroids.end(), &centroids[j * ksub * dsub]);
  }
  return ProductQuantizer(d, m, nbits, std::move(centroids));
}

void ProductQuantizer::Encode(const float* x, uint8_t* code) const {
  const auto& kern = simd::GetKernels();
  const size_t dsub = this->dsub(), ksub = this->ksub();
  float dist[256];
  std::fill_n(code, code_size(), 0);
  for (size_t j = 0; j < m_; ++j) {
    kern.l2sqr_batch(x + j * dsub, &centroids_[j * ksub * dsub], ksub, dsub, dist);
    uint8_t best = uint8_t(std::min_element(dist, dist + ksub) - dist);
    if (nbits_ == 8) {
      code[j] = best;
    } else {
      code[j >> 1] |= uint8_t(best << ((j & 1) * 4));
    }
  }
}

void ProductQuantizer::EncodeBatch(const float* x, size_t n, uint8_t* codes, int threads) const {
  threads = threads > 0 ? threads : int(ParallelismBudget());
  std::vector<std::thread> pool;
  const size_t chunk = (n + threads - 1) / threads;
  for (int t = 0; t < threads; ++t) {
    size_t begin = t * chunk, end = std::min(n, begin + chunk);
    if (begin >= end) break;
    pool.emplace_back([=, this] {
      for (size_t i = begin; i < end; ++i) Encode(x + i * d_, codes + i * code_size());
    });
  }
  for (auto& t : pool) t.join();
}

void ProductQuantizer::Decode(const uint8_t* code, float* x) const {
  const size_t dsub = this->dsub(), ksub = this->ksub();
  for (size_t j = 0; j < m_; ++j) {
    std::copy_n(&centroids_[(j * ksub + SubCode(code, j)) * dsub], dsub, x + j * dsub);
  }
}

namespace {

// Tables for short sub-vectors from the transposed codebook ([m][dsub][ksub]): the inner loop
// runs over the ksub centroids, contiguous, which the compiler vectorises; a kernel call per
// sub-quantiser would cost more than its few multiply-adds.
template <bool kL2>
void ShortTable(const float* x, const float* transposed, size_t m, size_t ksub, size_t dsub,
                float* table) {
  for (size_t j = 0; j < m; ++j) {
    float* out = table + j * ksub;
    const float* yt = transposed + j * dsub * ksub;
    for (size_t k = 0; k < ksub; ++k) out[k] = 0.0f;
    for (size_t t = 0; t < dsub; ++t) {
      const float xv = x[j * dsub + t];
      const float* row = yt + t * ksub;
      for (size_t k = 0; k < ksub; ++k) {
        if constexpr (kL2) {
          const float v = xv - row[k];
          out[k] += v * v;
        } else {
          out[k] += xv * row[k];
        }
      }
    }
  }
}

constexpr size_t kShortSub = 16;

}  // namespace

ProductQuantizer::ProductQuantizer(size_t d, size_t m, size_t nbits, std::vector<float> centroids)
    : d_(d), m_(m), nbits_(nbits), centroids_(std::move(centroids)) {
  const size_t ksub = this->ksub(), dsub = this->dsub();
  if (dsub >= kShortSub) return;
  transposed_.resize(centroids_.size());
  for (size_t j = 0; j < m_; ++j) {
    for (size_t k = 0; k < ksub; ++k) {
      for (size_t t = 0; t < dsub; ++t) {
        transposed_[(j * dsub + t) * ksub + k] = centroids_[(j * ksub + k) * dsub + t];
      }
    }
  }
}

void ProductQuantizer::L2Table(const float* x, float* table) const {
  const auto& kern = simd::GetKernels();
  const size_t dsub = this->dsub(), ksub = this->ksub();
  if (dsub < kShortSub) return ShortTable<true>(x, transposed_.data(), m_, ksub, dsub, table);
  for (size_t j = 0; j < m_; ++j) {
    kern.l2sqr_batch(x + j * dsub, &centroids_[j * ksub * dsub], ksub, dsub, table + j * ksub);
  }
}

void ProductQuantizer::IpTable(const float* x, float* table) const {
  const auto& kern = simd::GetKernels();
  const size_t dsub = this->dsub(), ksub = this->ksub();
  if (dsub < kShortSub) return ShortTable<false>(x, transposed_.data(), m_, ksub, dsub, table);
  for (size_t j = 0; j < m_; ++j) {
    kern.inner_product_batch(x + j * dsub, &centroids_[j * ksub * dsub], ksub, dsub,
                             table + j * ksub);
  }
}

float ProductQuantizer::TableDistance(const float* table, const uint8_t* code) const {
  const size_t ksub = this->ksub();
  float s = 0;
  for (size_t j = 0; j < m_; ++j) s += table[j * ksub + SubCode(code, j)];
  return s;
}

void ProductQuantizer::AppendTo(std::string* out) const {
  PutFixed<uint64_t>(out, d_);
  PutFixed<uint64_t>(out, m_);
  PutFixed<uint64_t>(out, nbits_);
  PutArray(out, centroids_.data(), centroids_.size());
}

Result<ProductQuantizer> ProductQuantizer::Parse(std::string_view* in) {
  uint64_t d, m, nbits;
  if (!GetFixed(in, &d) || !GetFixed(in, &m) || !GetFixed(in, &nbits)) {
    return DataLossError("product quantiser: truncated header");
  }
  if (d == 0 || d > (1u << 20) || m == 0 || d % m != 0 || (nbits != 4 && nbits != 8)) {
    return DataLossError("product quantiser: bad shape");
  }
  std::vector<float> centroids(d * (uint64_t{1} << nbits));  // m * ksub * dsub = d * ksub
  if (!GetArray(in, centroids.data(), centroids.size())) {
    return DataLossError("product quantiser: truncated centroids");
  }
  for (float v : centroids) {
    if (!std::isfinite(v)) return DataLossError("product quantiser: non-finite centroid");
  }
  return ProductQuantizer(d, m, nbits, std::move(centroids));
}

}  // namespace quiver::index
