// VectorIndex::GetVector for every index type: the stored vector, bit-exact where the index
// keeps floats, within the quantiser's step for int8 rows; absent ids and vector-less indexes
// are errors.
#include <gtest/gtest.h>

#include <cmath>

#include "index/flat/flat_index.h"
#include "index/hnsw/hnsw_index.h"
#include "index/ivf/ivf_pq_index.h"
#include "tests/testing/data.h"

namespace quiver::index {
namespace {

using quiver::testing::Iota;
using quiver::testing::RandomVectors;

void ExpectStored(const VectorIndex& idx, const std::vector<float>& base, size_t d,
                  float tolerance) {
  std::vector<float> out(d);
  for (uint64_t id : {0u, 7u, 499u}) {
    ASSERT_TRUE(idx.GetVector(id, out.data()).ok()) << idx.type_name();
    for (size_t t = 0; t < d; ++t) {
      if (tolerance == 0) {
        EXPECT_EQ(out[t], base[id * d + t]) << idx.type_name() << " id " << id;
      } else {
        EXPECT_NEAR(out[t], base[id * d + t], tolerance) << idx.type_name() << " id " << id;
      }
    }
  }
  EXPECT_EQ(idx.GetVector(100000, out.data()).code(), StatusCode::kNotFound);
}

TEST(GetVectorTest, ReturnsTheStoredVector) {
  const size_t n = 500, d = 16;
  auto base = RandomVectors(n, d, 3);
  auto ids = Iota(n);
  FlatIndex flat(d, Metric::kL2);
  ASSERT_TRUE(flat.Add(ids, base).ok());
  ExpectStored(flat, base, d, 0);

  for (auto quant : {HnswQuantization::kNone, HnswQuantization::kSq8}) {
    HnswOptions o;
    o.quantization = quant;
    auto hnsw = std::move(HnswIndex::Create(d, Metric::kL2, o)).value();
    ASSERT_TRUE(hnsw->Add(ids, base).ok());
    ExpectStored(*hnsw, base, d, 0);
    ASSERT_TRUE(hnsw->Remove(std::vector<uint64_t>{7}).ok());
    std::vector<float> out(d);
    EXPECT_EQ(hnsw->GetVector(7, out.data()).code(), StatusCode::kNotFound);
  }

  for (auto store : {RefineStore::kFloat32, RefineStore::kInt8, RefineStore::kNone}) {
    IvfPqOptions o;
    o.nlist = 8;
    o.m = 4;
    o.nbits = 4;
    o.refine_store = store;
    auto ivf = std::move(IvfPqIndex::Create(d, Metric::kL2, o)).value();
    ASSERT_TRUE(ivf->Add(ids, base).ok());
    if (store == RefineStore::kNone) {
      std::vector<float> out(d);
      EXPECT_EQ(ivf->GetVector(0, out.data()).code(), StatusCode::kFailedPrecondition);
      continue;
    }
    float lo = base[0], hi = base[0];
    for (float x : base) lo = std::min(lo, x), hi = std::max(hi, x);
    ExpectStored(*ivf, base, d, store == RefineStore::kFloat32 ? 0.0f : (hi - lo) / 255.0f);
  }
}

}  // namespace
}  // namespace quiver::index
