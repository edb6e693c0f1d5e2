#include "tests/testing/data.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <unordered_set>

namespace quiver::testing {

std::vector<float> RandomVectors(size_t n, size_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n * d);
  for (float& x : v) x = u(rng);
  return v;
}

std::vector<float> ClusteredVectors(size_t n, size_t d, size_t clusters, float spread,
                                    uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<float> centres = RandomVectors(clusters, d, seed + 1);
  std::normal_distribution<float> g(0.0f, spread);
  std::uniform_int_distribution<size_t> pick(0, clusters - 1);
  std::vector<float> v(n * d);
  for (size_t i = 0; i < n; ++i) {
    size_t c = pick(rng);
    for (size_t j = 0; j < d; ++j) v[i * d + j] = centres[c * d + j] + g(rng);
  }
  return v;
}

std::vector<uint64_t> Iota(size_t n, uint64_t first) {
  std::vector<uint64_t> ids(n);
  std::iota(ids.begin(), ids.end(), first);
  return ids;
}

std::vector<std::vector<uint64_t>> BruteForce(const std::vector<float>& base,
                                              const std::vector<uint64_t>& ids,
                                              const std::vector<float>& queries, size_t d,
                                              index::Metric metric, size_t k) {
  const size_t n = base.size() / d, nq = queries.size() / d;
  std::vector<std::vector<uint64_t>> out(nq);
  std::vector<std::pair<double, uint64_t>> scored(n);
  for (size_t q = 0; q < nq; ++q) {
    const float* qv = &queries[q * d];
    double qn = 0;
    for (size_t j = 0; j < d; ++j) qn += double(qv[j]) * qv[j];
    for (size_t i = 0; i < n; ++i) {
      const float* x = &base[i * d];
      double l2 = 0, ip = 0, xn = 0;
      for (size_t j = 0; j < d; ++j) {
        double t = double(qv[j]) - x[j];
        l2 += t * t;
        ip += double(qv[j]) * x[j];
        xn += double(x[j]) * x[j];
      }
      double dist = metric == index::Metric::kL2             ? l2
                    : metric == index::Metric::kInnerProduct ? -ip
                                                             : 1 - ip / std::sqrt(qn * xn);
      scored[i] = {dist, ids[i]};
    }
    size_t kk = std::min(k, n);
    std::partial_sort(scored.begin(), scored.begin() + kk, scored.end());
    for (size_t i = 0; i < kk; ++i) out[q].push_back(scored[i].second);
  }
  return out;
}

std::vector<std::vector<index::Neighbor>> SearchAll(const index::VectorIndex& index,
                                                    const std::vector<float>& queries,
                                                    const index::SearchParams& params) {
  std::vector<std::vector<index::Neighbor>> out;
  Status s = index.SearchBatch(queries, params, &out, 2);
  QV_CHECK(s.ok()) << s.ToString();
  return out;
}

double Recall(const std::vector<std::vector<index::Neighbor>>& found,
              const std::vector<std::vector<uint64_t>>& truth) {
  double sum = 0;
  for (size_t q = 0; q < truth.size(); ++q) {
    std::unordered_set<uint64_t> t(truth[q].begin(), truth[q].end());
    size_t hit = 0;
    for (const auto& n : found[q]) hit += t.count(n.id);
    sum += truth[q].empty() ? 1.0 : double(hit) / truth[q].size();
  }
  return truth.empty() ? 1.0 : sum / truth.size();
}

}  // namespace quiver::testing
