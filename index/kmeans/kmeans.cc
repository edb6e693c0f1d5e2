#include "index/kmeans/kmeans.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <thread>

#include "base/parallelism.h"
#include "index/simd/kernels.h"

namespace quiver::index {
namespace {

int ResolveThreads(int threads) { return threads > 0 ? threads : int(ParallelismBudget()); }

template <typename Fn>
void ParallelFor(size_t n, int threads, Fn&& fn) {
  threads = int(std::min<size_t>(size_t(ResolveThreads(threads)), std::max<size_t>(n, 1)));
  if (threads <= 1) {
    fn(size_t{0}, n);
    return;
  }
  std::vector<std::thread> pool;
  const size_t chunk = (n + threads - 1) / threads;
  for (int t = 0; t < threads; ++t) {
    size_t begin = t * chunk, end = std::min(n, begin + chunk);
    if (begin < end) pool.emplace_back([&fn, begin, end] { fn(begin, end); });
  }
  for (auto& t : pool) t.join();
}

void AssignDirect(const float* data, size_t n, const float* centroids, size_t k, size_t d,
                  uint32_t* labels, float* distances, int threads) {
  const auto& kern = simd::GetKernels();
  ParallelFor(n, threads, [&](size_t begin, size_t end) {
    std::vector<float> dist(k);
    for (size_t i = begin; i < end; ++i) {
      kern.l2sqr_batch(data + i * d, centroids, k, d, dist.data());
      size_t best = std::min_element(dist.begin(), dist.end()) - dist.begin();
      labels[i] = uint32_t(best);
      if (distances) distances[i] = dist[best];
    }
  });
}

void AssignBlas(const float* data, size_t n, const float* centroids, size_t k, size_t d,
                uint32_t* labels, float* distances, int threads) {
  const auto& kern = simd::GetKernels();
  std::vector<float> cnorm(k);
  for (size_t c = 0; c < k; ++c)
    cnorm[c] = kern.inner_product(centroids + c * d, centroids + c * d, d);
  const size_t block = 4096;
  std::vector<float> dots(block * k);
  for (size_t b = 0; b < n; b += block) {
    const size_t rows = std::min(block, n - b);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(rows), int(k), int(d), 1.0f,
                data + b * d, int(d), centroids, int(d), 0.0f, dots.data(), int(k));
    ParallelFor(rows, threads, [&](size_t begin, size_t end) {
      for (size_t r = begin; r < end; ++r) {
        const float* g = &dots[r * k];
        float best = std::numeric_limits<float>::infinity();
        uint32_t arg = 0;
        for (size_t c = 0; c < k; ++c) {
          float v = cnorm[c] - 2 * g[c];
          if (v < best) {
            best = v;
            arg = uint32_t(c);
          }
        }
        labels[b + r] = arg;
        if (distances) {
          float xn = kern.inner_product(data + (b + r) * d, data + (b + r) * d, d);
          distances[b + r] = std::max(0.0f, xn + best);
        }
      }
    });
  }
}

}  // namespace

void AssignNearest(const float* data, size_t n, const float* centroids, size_t k, size_t d,
                   uint32_t* labels, float* distances, int threads) {
  // sgemm pays off once a row meets many centroids (even for short sub-vectors).
  if (k >= 32 && n >= 256) {
    AssignBlas(data, n, centroids, k, d, labels, distances, threads);
  } else {
    AssignDirect(data, n, centroids, k, d, labels, distances, threads);
  }
}

Result<KMeansResult> TrainKMeans(std::span<const float> data, size_t d, const KMeansOptions& o) {
  if (d == 0 || o.k == 0) return InvalidArgumentError("k-means needs d > 0 and k > 0");
  if (data.size() % d != 0)
    return InvalidArgumentError("k-means data is not a whole number of rows");
  const size_t n_all = data.size() / d;
  if (n_all < o.k) {
    return InvalidArgumentError("k-means needs at least k = " + std::to_string(o.k) +
                                " points; got " + std::to_string(n_all));
  }
  std::mt19937_64 rng(o.seed);  // drives the sample and the seeding only
  // Training sample.
  std::vector<float> sample;
  const float* x = data.data();
  size_t n = n_all;
  const size_t cap = o.k * std::max<size_t>(o.max_points_per_centroid, 1);
  if (n_all > cap) {
    std::vector<size_t> perm(n_all);
    std::iota(perm.begin(), perm.end(), 0);
    for (size_t i = 0; i < cap; ++i) std::swap(perm[i], perm[i + rng() % (n_all - i)]);
    std::sort(perm.begin(), perm.begin() + cap);
    sample.resize(cap * d);
    for (size_t i = 0; i < cap; ++i) std::copy_n(x + perm[i] * d, d, &sample[i * d]);
    x = sample.data();
    n = cap;
  }
  KMeansResult result;
  result.centroids.resize(o.k * d);
  float* c = result.centroids.data();
  const auto& kern = simd::GetKernels();
  if (o.plus_plus_init) {
    std::vector<float> best(n, std::numeric_limits<float>::infinity());
    size_t first = rng() % n;
    std::copy_n(x + first * d, d, c);
    for (size_t j = 1; j < o.k; ++j) {
      double total = 0;
      for (size_t i = 0; i < n; ++i) {
        best[i] = std::min(best[i], kern.l2sqr(x + i * d, c + (j - 1) * d, d));
        total += best[i];
      }
      double r = std::uniform_real_distribution<double>(0, total)(rng);
      size_t pick = 0;
      for (double acc = 0; pick < n - 1; ++pick) {
        acc += best[pick];
        if (acc >= r) break;
      }
      std::copy_n(x + pick * d, d, c + j * d);
    }
  } else {
    std::vector<size_t> perm(n);
    std::iota(perm.begin(), perm.end(), 0);
    for (size_t j = 0; j < o.k; ++j) std::swap(perm[j], perm[j + rng() % (n - j)]);
    for (size_t j = 0; j < o.k; ++j) std::copy_n(x + perm[j] * d, d, c + j * d);
  }

  std::vector<uint32_t> labels(n);
  std::vector<float> dist(n);
  std::vector<double> sums(o.k * d);
  std::vector<size_t> counts(o.k);
  for (int it = 0; it < std::max(1, o.iterations); ++it) {
    AssignNearest(x, n, c, o.k, d, labels.data(), dist.data(), o.threads);
    result.objective = std::accumulate(dist.begin(), dist.end(), 0.0);
    std::fill(sums.begin(), sums.end(), 0.0);
    std::fill(counts.begin(), counts.end(), 0);
    for (size_t i = 0; i < n; ++i) {
      ++counts[labels[i]];
      double* s = &sums[size_t(labels[i]) * d];
      for (size_t j = 0; j < d; ++j) s[j] += x[i * d + j];
    }
    for (size_t j = 0; j < o.k; ++j) {
      if (counts[j] == 0) continue;
      for (size_t t = 0; t < d; ++t) c[j * d + t] = float(sums[j * d + t] / counts[j]);
    }
    // Empty clusters move to the training point farthest from its centroid (duplicates, at
    // distance 0, are never picked), which then counts as served.
    for (size_t j = 0; j < o.k; ++j) {
      if (counts[j] != 0) continue;
      const size_t far = std::max_element(dist.begin(), dist.end()) - dist.begin();
      if (dist[far] <= 0) break;  // every point sits on a centroid already
      std::copy_n(x + far * d, d, c + j * d);
      dist[far] = 0;
      counts[j] = 1;
    }
  }
  return result;
}

}  // namespace quiver::index
