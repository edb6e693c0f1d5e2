// Benchmark data sets: base vectors, queries, and exact ground truth (top-100 ids), loaded
// from Debian's dataset packages or from .fvecs/.ivecs files, with ground truth computed by
// FlatIndex and cached on disk.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace quiver::bench {

struct Dataset {
  std::string name;
  size_t dim = 0;
  size_t n = 0;
  size_t nq = 0;
  std::vector<float> base;     // n * dim
  std::vector<float> queries;  // nq * dim
  std::vector<int32_t> truth;  // nq * truth_k, ids into base, closest first
  size_t truth_k = 0;
  bool inner_product = false;  // the metric: inner product (largest first), else L2
};

// Fashion-MNIST from /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist):
// 60,000 train images as base, 10,000 test images as queries, 784 raw pixel values, L2.
Result<Dataset> LoadFashionMnist(const std::string& source_dir);

// base.fvecs and query.fvecs from a directory (e.g. made by bench/data/gen_synth.py).
Result<Dataset> LoadFvecsDir(const std::string& dir, const std::string& name);

// Fills ds->truth with the exact top-k by the data set's metric, from `cache_path` if it holds a
// matching file, otherwise by brute force on `threads` threads (then written to the cache).
Status EnsureGroundTruth(Dataset* ds, size_t k, const std::string& cache_path, int threads);

Result<std::vector<float>> ReadFvecs(const std::string& path, size_t* dim);
Result<std::vector<int32_t>> ReadIvecs(const std::string& path, size_t* dim);
Status WriteIvecs(const std::string& path, const std::vector<int32_t>& data, size_t dim);

}  // namespace quiver::bench
