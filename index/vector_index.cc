#include "index/vector_index.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <thread>
#include <unordered_set>

namespace quiver::index {

float DistanceToScore(Metric metric, float distance) {
  switch (metric) {
    case Metric::kL2:            // distance: squared L2
    case Metric::kInnerProduct:  // distance: -(q . x)
      return -distance;
    case Metric::kCosine:
      return 1.0f - distance;
  }
  return -distance;
}

Status VectorIndex::ValidateAdd(std::span<const uint64_t> ids,
                                std::span<const float> vectors) const {
  const size_t d = dim();
  if (vectors.size() != ids.size() * d) {
    return InvalidArgumentError(
        "batch has " + std::to_string(ids.size()) + " ids but " + std::to_string(vectors.size()) +
        " floats; expected " + std::to_string(ids.size() * d) + " (dim " + std::to_string(d) + ")");
  }
  std::unordered_set<uint64_t> seen;
  seen.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!seen.insert(ids[i]).second) {
      return InvalidArgumentError("id " + std::to_string(ids[i]) + " appears twice in the batch");
    }
    const float* v = vectors.data() + i * d;
    double norm2 = 0;
    for (size_t j = 0; j < d; ++j) {
      if (!std::isfinite(v[j])) {
        return InvalidArgumentError("vector of id " + std::to_string(ids[i]) +
                                    " has a NaN or infinite component at " + std::to_string(j));
      }
      norm2 += double(v[j]) * v[j];
    }
    if (metric() == Metric::kCosine && norm2 == 0) {
      return InvalidArgumentError("vector of id " + std::to_string(ids[i]) +
                                  " is zero; cosine needs a direction");
    }
  }
  return Status::Ok();
}

size_t VectorIndex::GetVectors(std::span<const uint64_t> ids, float* out, uint8_t* found) const {
  size_t n = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    found[i] = GetVector(ids[i], out + i * dim()).ok();
    n += found[i];
  }
  return n;
}

Status VectorIndex::ValidateQuery(std::span<const float> query, const SearchParams& params) const {
  if (query.size() != dim()) {
    return InvalidArgumentError("query has " + std::to_string(query.size()) +
                                " components; the index has dim " + std::to_string(dim()));
  }
  if (params.k == 0) return InvalidArgumentError("k must be at least 1");
  for (float v : query) {
    if (!std::isfinite(v)) return InvalidArgumentError("query has a NaN or infinite component");
  }
  return Status::Ok();
}

Status VectorIndex::SearchBatch(std::span<const float> queries, const SearchParams& params,
                                std::vector<std::vector<Neighbor>>* out, int threads) const {
  const size_t d = dim();
  if (d == 0 || queries.size() % d != 0) {
    return InvalidArgumentError("query block is not a whole number of vectors of dim " +
                                std::to_string(d));
  }
  const size_t nq = queries.size() / d;
  out->assign(nq, {});
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  Status first_error;
  std::mutex error_mu;
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < nq && !failed.load();) {
      Status s = Search(queries.subspan(i * d, d), params, &(*out)[i]);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!failed.exchange(true)) first_error = s.WithContext("query " + std::to_string(i));
      }
    }
  };
  threads = std::max(1, threads);
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  return first_error;
}

}  // namespace quiver::index
