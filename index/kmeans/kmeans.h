// k-means for coarse quantisers and product-quantiser codebooks (L2).
//
// Lloyd iterations from a sampled initialisation (k distinct training points, or k-means++
// seeding), assignment of points to centroids through BLAS sgemm (||x||^2 - 2 x.c + ||c||^2)
// when the problem is large enough to profit, otherwise through the SIMD kernels; empty
// clusters move to the point farthest from its centroid. Training runs on at most
// k * max_points_per_centroid points drawn at random. Deterministic for a given seed and data.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"

namespace quiver::index {

struct KMeansOptions {
  size_t k = 256;
  int iterations = 20;
  uint64_t seed = 1234;
  size_t max_points_per_centroid = 256;  // training sample cap: k * this
  bool plus_plus_init = false;           // k-means++ seeding instead of k random points
  int threads = 0;                       // 0 = all cores
};

struct KMeansResult {
  std::vector<float> centroids;  // k * d
  double objective = 0;          // sum of squared distances of the training sample, last pass
};

// REQUIRES nothing; kInvalidArgument for d == 0, k == 0, fewer points than k, or a data length
// that is not a multiple of d.
Result<KMeansResult> TrainKMeans(std::span<const float> data, size_t d,
                                 const KMeansOptions& options);

// For each of the n rows of `data`, the index of the nearest of the k centroids (and, if
// `distances` is not null, the squared distance to it). Uses sgemm for large problems.
void AssignNearest(const float* data, size_t n, const float* centroids, size_t k, size_t d,
                   uint32_t* labels, float* distances, int threads);

}  // namespace quiver::index
