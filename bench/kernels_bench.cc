// Kernel throughput: GB/s of vector data read per kernel, level and dim (BM_L2Sqr/avx2/128),
// beside BM_MemoryRead, a plain read of a buffer larger than the caches.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "bench/read_bandwidth.h"
#include "index/simd/kernels.h"

namespace quiver::simd {
namespace {

std::vector<float> RandomFloats(size_t n) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// Scores one query against a block of rows that fits in L2, so the kernel, not DRAM, is timed.
void BM_Float(benchmark::State& state, const Kernels* k, size_t d, bool ip) {
  const size_t rows = std::max<size_t>(1, (256u << 10) / (d * 4));
  auto base = RandomFloats(rows * d);
  auto q = RandomFloats(d);
  std::vector<float> out(rows);
  for (auto _ : state) {
    if (ip) {
      k->inner_product_batch(q.data(), base.data(), rows, d, out.data());
    } else {
      k->l2sqr_batch(q.data(), base.data(), rows, d, out.data());
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations() * rows * d * 4));
}

void BM_U8(benchmark::State& state, const Kernels* k, size_t d) {
  std::vector<uint8_t> a(d, 3), b(d, 200);
  for (auto _ : state) benchmark::DoNotOptimize(k->l2sqr_u8(a.data(), b.data(), d));
  state.SetBytesProcessed(int64_t(state.iterations() * d));
}

void BM_I8(benchmark::State& state, const Kernels* k, size_t d) {
  std::vector<int8_t> a(d, 3), b(d, -100);
  for (auto _ : state) benchmark::DoNotOptimize(k->inner_product_i8(a.data(), b.data(), d));
  state.SetBytesProcessed(int64_t(state.iterations() * d));
}

void BM_F16(benchmark::State& state, const Kernels* k, size_t d) {
  auto q = RandomFloats(d);
  std::vector<uint16_t> x(d, 0x3C00);
  for (auto _ : state) benchmark::DoNotOptimize(k->l2sqr_f16(q.data(), x.data(), d));
  state.SetBytesProcessed(int64_t(state.iterations() * d * 2));
}

void BM_MemoryRead(benchmark::State& state) {
  const size_t n = (256u << 20) / 8;
  std::vector<uint64_t> buf(n, 1);
  for (auto _ : state) benchmark::DoNotOptimize(bench::SumWords(buf.data(), n));
  state.SetBytesProcessed(int64_t(state.iterations() * n * 8));
}

void RegisterAll() {
  benchmark::RegisterBenchmark("BM_MemoryRead", BM_MemoryRead)->Unit(benchmark::kMillisecond);
  for (SimdLevel l :
       {SimdLevel::kScalar, SimdLevel::kGeneric, SimdLevel::kAvx2, SimdLevel::kAvx512}) {
    const Kernels* k = KernelsFor(l);
    if (!k) continue;
    const std::string level(SimdLevelName(l));
    for (size_t d : {32, 100, 128, 768, 784, 1536}) {
      const std::string suffix = "/" + level + "/" + std::to_string(d);
      benchmark::RegisterBenchmark(("BM_L2Sqr" + suffix).c_str(), BM_Float, k, d, false);
      benchmark::RegisterBenchmark(("BM_InnerProduct" + suffix).c_str(), BM_Float, k, d, true);
      benchmark::RegisterBenchmark(("BM_L2SqrU8" + suffix).c_str(), BM_U8, k, d);
      benchmark::RegisterBenchmark(("BM_InnerProductI8" + suffix).c_str(), BM_I8, k, d);
      benchmark::RegisterBenchmark(("BM_L2SqrF16" + suffix).c_str(), BM_F16, k, d);
    }
  }
}

}  // namespace
}  // namespace quiver::simd

int main(int argc, char** argv) {
  quiver::simd::RegisterAll();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
