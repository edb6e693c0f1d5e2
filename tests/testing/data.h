// Shared test data: random and clustered vectors with a fixed seed, exact ground truth, and
// recall. Used by index tests; sized by the caller.
#pragma once

#include <cstdint>
#include <vector>

#include "index/vector_index.h"

namespace quiver::testing {

// n * d floats, uniform in [-1, 1).
std::vector<float> RandomVectors(size_t n, size_t d, uint64_t seed);

// n * d floats from `clusters` Gaussian blobs (centres uniform in [-1, 1), sigma `spread`).
std::vector<float> ClusteredVectors(size_t n, size_t d, size_t clusters, float spread,
                                    uint64_t seed);

// ids 0..n-1 (optionally offset).
std::vector<uint64_t> Iota(size_t n, uint64_t first = 0);

// Exact top-k by brute force in double precision, for each of the nq queries.
std::vector<std::vector<uint64_t>> BruteForce(const std::vector<float>& base,
                                              const std::vector<uint64_t>& ids,
                                              const std::vector<float>& queries, size_t d,
                                              index::Metric metric, size_t k);

// index.SearchBatch on 2 threads; aborts on error (tests pass valid queries).
std::vector<std::vector<index::Neighbor>> SearchAll(const index::VectorIndex& index,
                                                    const std::vector<float>& queries,
                                                    const index::SearchParams& params);

// Mean over queries of |found ∩ truth| / |truth|.
double Recall(const std::vector<std::vector<index::Neighbor>>& found,
              const std::vector<std::vector<uint64_t>>& truth);

}  // namespace quiver::testing
