#include "index/hnsw/hnsw_index.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <thread>

#include "base/parallelism.h"

namespace quiver::index {
namespace {

constexpr uint64_t kNoEntry = ~uint64_t{0};
constexpr uint32_t kDeletedFlag = 1;
constexpr int kMaxLevel = 31;

size_t RoundUp(size_t x, size_t to) { return (x + to - 1) / to * to; }

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Link words are read by searches while inserts rewrite them under the node's lock: both sides
// use relaxed atomic accesses (plain moves on x86 and ARM), and the release store / acquire
// load of the link count orders a new node's data before the link that reaches it.
inline uint32_t LoadLink(const uint32_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
inline void StoreLink(uint32_t* p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

inline void PrefetchLines(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off, 0, 3);
}

struct FartherFirst {  // max-heap on distance
  template <typename C>
  bool operator()(const C& a, const C& b) const {
    return a.distance < b.distance;
  }
};
struct CloserFirst {  // min-heap on distance
  template <typename C>
  bool operator()(const C& a, const C& b) const {
    return a.distance > b.distance;
  }
};

}  // namespace

// Per-search scratch, pooled so searches and inserts do not allocate in steady state.
struct HnswIndex::SearchContext {
  // Visited set: one bit per node (small enough to stay in cache), cleared word by word after
  // each traversal, so a reset costs O(nodes visited), not O(index size).
  std::vector<uint64_t> visited;
  std::vector<uint32_t> touched;      // words of `visited` that are non-zero
  std::vector<Candidate> top;         // max-heap: the ef best found
  std::vector<Candidate> candidates;  // min-heap: frontier
  std::vector<uint32_t> pending;      // unvisited neighbours of the expanded node
  std::vector<float> query;           // normalised query (cosine)
  std::vector<uint8_t> code;          // encoded query (quantised traversal)

  // Starts a new traversal over node ids below n.
  void ResetVisited(size_t n) {
    for (uint32_t w : touched) visited[w] = 0;
    touched.clear();
    if (visited.size() < (n + 63) / 64) visited.resize((n + 63) / 64, 0);
  }
  void PrefetchVisited(uint32_t node) const { __builtin_prefetch(&visited[node >> 6]); }
  // Returns true the first time `node` is seen in this traversal.
  bool Visit(uint32_t node) {
    uint64_t& word = visited[node >> 6];
    const uint64_t bit = uint64_t{1} << (node & 63);
    if (word & bit) return false;
    if (word == 0) touched.push_back(node >> 6);
    word |= bit;
    return true;
  }
};

Result<std::unique_ptr<HnswIndex>> HnswIndex::Create(size_t dim, Metric metric,
                                                     const HnswOptions& options) {
  if (dim == 0 || dim > 65536) return InvalidArgumentError("dim must be in [1, 65536]");
  if (options.m < 2 || options.m > 128) return InvalidArgumentError("M must be in [2, 128]");
  if (options.ef_construction < 1 || options.ef_construction > 100000) {
    return InvalidArgumentError("ef_construction must be in [1, 100000]");
  }
  if (options.ef_search < 1 || options.ef_search > 100000) {
    return InvalidArgumentError("ef_search must be in [1, 100000]");
  }
  if (options.build_threads < 0) return InvalidArgumentError("build_threads must be >= 0");
  return std::unique_ptr<HnswIndex>(new HnswIndex(dim, metric, options));
}

HnswIndex::HnswIndex(size_t dim, Metric metric, const HnswOptions& options)
    : dim_(dim),
      metric_(metric),
      options_(options),
      kernels_(simd::GetKernels()),
      m0_(2 * options.m),
      code_size_(options.quantization == HnswQuantization::kSq8 ? dim : dim * sizeof(float)),
      links_offset_(RoundUp(code_size_, 8)),
      label_offset_(links_offset_ + 8 + 4 * RoundUp(2 * options.m, 2)),
      block_size_(RoundUp(label_offset_ + 8, 64)),
      level_mult_(1.0 / std::log(double(options.m))),
      link_locks_(new std::mutex[kLockStripes]),
      entry_(kNoEntry) {
  const bool sq8 = options.quantization == HnswQuantization::kSq8;
  if (metric == Metric::kL2) {
    dist_kind_ = sq8 ? DistKind::kSq8L2 : DistKind::kFloatL2;
  } else {
    dist_kind_ = sq8 ? DistKind::kSq8Ip
                     : (metric == Metric::kCosine ? DistKind::kFloatCos : DistKind::kFloatIp);
  }
  quantizer_ =
      simd::ScalarQuantizer(metric == Metric::kL2 ? simd::ScalarQuantizer::Kind::kUnsignedL2
                                                  : simd::ScalarQuantizer::Kind::kSignedIp,
                            0, 1);
}

HnswIndex::~HnswIndex() = default;

size_t HnswIndex::memory_bytes() const {
  std::shared_lock lock(grow_mu_);
  size_t n = count_.load();
  size_t upper = 0;
  for (size_t i = 0; i < n; ++i) upper += size_t(levels_[i]) * (options_.m + 1) * 4;
  std::lock_guard<std::mutex> l(label_mu_);
  return level0_.size() + floats_.size() + upper + levels_.capacity() +
         upper_.capacity() * sizeof(void*) + node_of_.size() * 32;
}

uint32_t* HnswIndex::LinksAt(uint32_t node, int level) const {
  if (level == 0) return Links0(node);
  return upper_[node].get() + size_t(level - 1) * (options_.m + 1);
}

uint64_t HnswIndex::Label(uint32_t node) const {
  uint64_t label;
  std::memcpy(&label, Block(node) + label_offset_, sizeof(label));
  return label;
}

bool HnswIndex::IsDeleted(uint32_t node) const {
  return std::atomic_ref<uint32_t>(Links0(node)[1]).load(std::memory_order_relaxed) & kDeletedFlag;
}

void HnswIndex::SetDeleted(uint32_t node) {
  std::atomic_ref<uint32_t>(Links0(node)[1]).fetch_or(kDeletedFlag, std::memory_order_relaxed);
}

const float* HnswIndex::FloatVector(uint32_t node) const {
  if (options_.quantization == HnswQuantization::kNone) {
    return reinterpret_cast<const float*>(Code(node));
  }
  return reinterpret_cast<const float*>(floats_.data()) + size_t(node) * dim_;
}

inline float HnswIndex::Distance(const void* q, uint32_t node) const {
  const void* x = Code(node);
  switch (dist_kind_) {
    case DistKind::kFloatL2:
      return kernels_.l2sqr(static_cast<const float*>(q), static_cast<const float*>(x), dim_);
    case DistKind::kFloatIp:
      return -kernels_.inner_product(static_cast<const float*>(q), static_cast<const float*>(x),
                                     dim_);
    case DistKind::kFloatCos:
      return 1.0f - kernels_.inner_product(static_cast<const float*>(q),
                                           static_cast<const float*>(x), dim_);
    case DistKind::kSq8L2:
      return quantizer_.scale() * float(kernels_.l2sqr_u8(static_cast<const uint8_t*>(q),
                                                          static_cast<const uint8_t*>(x), dim_));
    case DistKind::kSq8Ip:
      return -quantizer_.scale() *
             float(kernels_.inner_product_i8(static_cast<const int8_t*>(q),
                                             static_cast<const int8_t*>(x), dim_));
  }
  return 0;
}

float HnswIndex::ExactDistance(const float* q, uint32_t node) const {
  const float* x = FloatVector(node);
  switch (metric_) {
    case Metric::kL2:
      return kernels_.l2sqr(q, x, dim_);
    case Metric::kInnerProduct:
      return -kernels_.inner_product(q, x, dim_);
    case Metric::kCosine:
      return 1.0f - kernels_.inner_product(q, x, dim_);
  }
  return 0;
}

int HnswIndex::RandomLevel(uint64_t insertion) const {
  uint64_t r = SplitMix64(options_.seed * 0x100000001B3ull ^ insertion);
  double u = (double(r >> 11) + 0.5) * (1.0 / 9007199254740992.0);  // (0, 1)
  return std::min(kMaxLevel, int(-std::log(u) * level_mult_));
}

std::unique_ptr<HnswIndex::SearchContext> HnswIndex::AcquireContext() const {
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (!pool_.empty()) {
      auto ctx = std::move(pool_.back());
      pool_.pop_back();
      return ctx;
    }
  }
  return std::make_unique<SearchContext>();
}

void HnswIndex::ReleaseContext(std::unique_ptr<SearchContext> ctx) const {
  std::lock_guard<std::mutex> lock(pool_mu_);
  pool_.push_back(std::move(ctx));
}

void HnswIndex::PrepareQuery(const float* query, SearchContext& ctx) const {
  ctx.query.assign(query, query + dim_);
  if (metric_ == Metric::kCosine) kernels_.normalize(ctx.query.data(), dim_);
  if (options_.quantization == HnswQuantization::kSq8) {
    ctx.code.resize(dim_);
    quantizer_.Encode(ctx.query.data(), dim_, ctx.code.data());
  }
}

void HnswIndex::Reserve(size_t extra) {
  std::unique_lock lock(grow_mu_);
  reserved_ += extra;
  if (reserved_ > capacity_) GrowLocked(std::max(reserved_, capacity_ * 2));
}

void HnswIndex::GrowLocked(size_t new_capacity) {
  new_capacity = std::max<size_t>(new_capacity, 1024);
  level0_.Resize(new_capacity * block_size_);
  if (options_.quantization != HnswQuantization::kNone) {
    floats_.Resize(new_capacity * dim_ * sizeof(float));
  }
  upper_.resize(new_capacity);
  levels_.resize(new_capacity);
  capacity_ = new_capacity;
}

Status HnswIndex::Train(std::span<const float> sample) {
  if (options_.quantization == HnswQuantization::kNone) return Status::Ok();
  std::unique_lock lock(grow_mu_);
  if (count_.load() != 0)
    return FailedPreconditionError("HNSW quantiser must be trained before adding");
  return TrainLocked(sample);
}

Status HnswIndex::TrainLocked(std::span<const float> sample) {
  if (sample.empty() || sample.size() % dim_ != 0) {
    return InvalidArgumentError("training sample is not a whole number of vectors");
  }
  for (float v : sample) {
    if (!std::isfinite(v)) return InvalidArgumentError("training sample has NaN or Inf");
  }
  if (metric_ == Metric::kCosine) {
    std::vector<float> normalized(sample.begin(), sample.end());
    for (size_t i = 0; i < normalized.size(); i += dim_) kernels_.normalize(&normalized[i], dim_);
    quantizer_ = simd::ScalarQuantizer::Train(quantizer_.kind(), normalized);
  } else {
    quantizer_ = simd::ScalarQuantizer::Train(quantizer_.kind(), sample);
  }
  quantizer_trained_ = true;
  return Status::Ok();
}

bool HnswIndex::Contains(uint64_t id) const {
  std::lock_guard<std::mutex> lock(label_mu_);
  return node_of_.count(id) != 0;
}

Status HnswIndex::Add(std::span<const uint64_t> ids, std::span<const float> vectors) {
  QV_RETURN_IF_ERROR(ValidateAdd(ids, vectors));
  if (ids.empty()) return Status::Ok();
  if (options_.quantization != HnswQuantization::kNone) {
    // The first batch fits the quantiser unless Train ran; the exclusive lock orders this
    // against concurrent first batches and keeps searches from reading a changing quantiser.
    std::unique_lock lock(grow_mu_);
    if (!quantizer_trained_ && count_.load() == 0) QV_RETURN_IF_ERROR(TrainLocked(vectors));
  }
  Reserve(ids.size());
  int threads = options_.build_threads > 0 ? options_.build_threads : int(ParallelismBudget());
  threads = int(std::min<size_t>(size_t(threads), (ids.size() + 63) / 64));
  std::atomic<size_t> next{0};
  auto worker = [&] {
    auto ctx = AcquireContext();
    for (size_t i; (i = next.fetch_add(1)) < ids.size();) Insert(ids[i], &vectors[i * dim_], *ctx);
    ReleaseContext(std::move(ctx));
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  return Status::Ok();
}

size_t HnswIndex::GetVectors(std::span<const uint64_t> ids, float* out, uint8_t* found) const {
  std::shared_lock grow(grow_mu_);
  std::vector<uint32_t> nodes(ids.size(), UINT32_MAX);
  {
    std::lock_guard<std::mutex> lock(label_mu_);
    for (size_t i = 0; i < ids.size(); ++i) {
      auto it = node_of_.find(ids[i]);
      if (it != node_of_.end()) nodes[i] = it->second;
    }
  }
  constexpr size_t kAhead = 4;
  auto prefetch = [&](size_t i) {
    if (i >= nodes.size() || nodes[i] == UINT32_MAX) return;
    const char* p = reinterpret_cast<const char*>(FloatVector(nodes[i]));
    for (size_t b = 0; b < dim_ * sizeof(float); b += 64) __builtin_prefetch(p + b);
  };
  for (size_t i = 0; i < kAhead; ++i) prefetch(i);
  size_t n = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    prefetch(i + kAhead);
    found[i] = nodes[i] != UINT32_MAX;
    if (!found[i]) continue;
    std::memcpy(out + i * dim_, FloatVector(nodes[i]), dim_ * sizeof(float));
    ++n;
  }
  return n;
}

Status HnswIndex::GetVector(uint64_t id, float* out) const {
  std::shared_lock grow(grow_mu_);
  uint32_t node;
  {
    std::lock_guard<std::mutex> lock(label_mu_);
    auto it = node_of_.find(id);
    if (it == node_of_.end())
      return NotFoundError("id " + std::to_string(id) + " is not in the index");
    node = it->second;
  }
  std::memcpy(out, FloatVector(node), dim_ * sizeof(float));
  return Status::Ok();
}

Status HnswIndex::Remove(std::span<const uint64_t> ids) {
  std::shared_lock grow(grow_mu_);
  std::lock_guard<std::mutex> lock(label_mu_);
  for (uint64_t id : ids) {
    if (!node_of_.count(id))
      return NotFoundError("id " + std::to_string(id) + " is not in the index");
  }
  for (uint64_t id : ids) {
    auto it = node_of_.find(id);
    if (it == node_of_.end()) continue;  // listed twice
    SetDeleted(it->second);
    node_of_.erase(it);
    live_.fetch_sub(1, std::memory_order_relaxed);
  }
  return Status::Ok();
}

void HnswIndex::Insert(uint64_t label, const float* vector, SearchContext& ctx) {
  std::shared_lock grow(grow_mu_);
  // Replace: the old node becomes a tombstone first, so a search never sees the id twice.
  {
    std::lock_guard<std::mutex> lock(label_mu_);
    auto it = node_of_.find(label);
    if (it != node_of_.end()) {
      SetDeleted(it->second);
      node_of_.erase(it);
      live_.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  PrepareQuery(vector, ctx);
  const uint32_t id = count_.fetch_add(1, std::memory_order_acq_rel);
  QV_CHECK(id < capacity_) << "HNSW insert beyond reserved capacity";
  const int level = RandomLevel(id);
  // The node is unreachable until Connect links it, so its block is written without locks.
  char* block = Block(id);
  std::memset(block, 0, block_size_);
  std::memcpy(block + label_offset_, &label, sizeof(label));
  if (options_.quantization == HnswQuantization::kNone) {
    std::memcpy(block, ctx.query.data(), code_size_);
  } else {
    std::memcpy(block, ctx.code.data(), code_size_);
    std::memcpy(floats_.data() + size_t(id) * dim_ * sizeof(float), ctx.query.data(),
                dim_ * sizeof(float));
  }
  if (level > 0) upper_[id].reset(new uint32_t[size_t(level) * (options_.m + 1)]());
  levels_[id] = uint8_t(level);
  const void* q = Code(id);

  // An insert that may raise the top level holds entry_mu_ throughout, as in hnswlib.
  std::unique_lock<std::mutex> entry_lock(entry_mu_, std::defer_lock);
  uint64_t entry = entry_.load(std::memory_order_acquire);
  if (entry == kNoEntry || level > int(entry >> 32)) {
    entry_lock.lock();
    entry = entry_.load(std::memory_order_acquire);
    if (entry != kNoEntry && level <= int(entry >> 32)) entry_lock.unlock();
  }
  if (entry == kNoEntry) {
    entry_.store((uint64_t(level) << 32) | id, std::memory_order_release);
  } else {
    uint32_t ep = uint32_t(entry);
    const int top = int(entry >> 32);
    ep = GreedyDescend(q, ep, top, level, /*locked=*/true, nullptr);
    for (int lc = std::min(level, top); lc >= 0; --lc) {
      SearchLayer<true, false>(ctx, q, ep, lc, options_.ef_construction, nullptr, nullptr);
      ep = Connect(id, ctx, lc);
    }
    if (level > top) entry_.store((uint64_t(level) << 32) | id, std::memory_order_release);
  }
  {
    std::lock_guard<std::mutex> lock(label_mu_);
    // A concurrent Add of the same id may have finished first; the later insert wins.
    auto [it, inserted] = node_of_.try_emplace(label, id);
    if (!inserted) {
      SetDeleted(it->second);
      it->second = id;
    } else {
      live_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

uint32_t HnswIndex::GreedyDescend(const void* q, uint32_t ep, int from_level, int to_level,
                                  bool locked, SearchStats* stats) const {
  float best = Distance(q, ep);
  for (int level = from_level; level > to_level; --level) {
    bool changed = true;
    while (changed) {
      changed = false;
      std::unique_lock<std::mutex> lock(link_locks_[ep & (kLockStripes - 1)], std::defer_lock);
      if (locked) lock.lock();
      if (levels_[ep] < level) break;  // a concurrent insert has not linked this level yet
      const uint32_t* links = LinksAt(ep, level);
      const uint32_t n = std::atomic_ref<const uint32_t>(links[0]).load(std::memory_order_acquire);
      const uint32_t* ids = level == 0 ? links + 2 : links + 1;
      for (uint32_t j = 0; j < n; ++j) {
        const uint32_t nb = LoadLink(&ids[j]);
        float d = Distance(q, nb);
        if (d < best) {
          best = d;
          ep = nb;
          changed = true;
        }
      }
      if (stats) {
        stats->distances += n;
        ++stats->hops;
      }
    }
  }
  return ep;
}

template <bool kConstruction, bool kHasFilter>
void HnswIndex::SearchLayer(SearchContext& ctx, const void* q, uint32_t ep, int level, size_t ef,
                            const IdSelector* filter, SearchStats* stats) const {
  ctx.ResetVisited(capacity_);  // ids seen mid-search stay below capacity_
  ctx.top.clear();
  ctx.candidates.clear();
  size_t distances = 1, hops = 0;
  auto returnable = [&](uint32_t node) {
    if constexpr (kConstruction) return true;
    if (IsDeleted(node)) return false;
    if constexpr (kHasFilter) return filter->Contains(Label(node));
    return true;
  };
  float d0 = Distance(q, ep);
  ctx.Visit(ep);
  ctx.candidates.push_back({d0, ep});
  if (returnable(ep)) ctx.top.push_back({d0, ep});
  float bound = ctx.top.empty() ? std::numeric_limits<float>::infinity() : d0;
  // Prefetch depth, tuned on the benchmarks (bench/results/): the first two lines of every new
  // neighbour while collecting them, then all of the next one while scoring the current one.
  const size_t prefetch_bytes = std::min<size_t>(code_size_, 128);

  while (!ctx.candidates.empty()) {
    const Candidate c = ctx.candidates.front();
    if (c.distance > bound && ctx.top.size() >= ef) break;
    std::pop_heap(ctx.candidates.begin(), ctx.candidates.end(), CloserFirst{});
    ctx.candidates.pop_back();
    ++hops;

    // Phase 1: collect unvisited neighbours and start fetching their vectors.
    std::unique_lock<std::mutex> lock(link_locks_[c.node & (kLockStripes - 1)], std::defer_lock);
    if constexpr (kConstruction) lock.lock();
    const uint32_t* links = LinksAt(c.node, level);
    const uint32_t n = std::atomic_ref<const uint32_t>(links[0]).load(std::memory_order_acquire);
    const uint32_t* ids = level == 0 ? links + 2 : links + 1;
    ctx.pending.clear();
    for (uint32_t j = 0; j < n; ++j) ctx.PrefetchVisited(LoadLink(&ids[j]));
    for (uint32_t j = 0; j < n; ++j) {
      const uint32_t nb = LoadLink(&ids[j]);
      if (!ctx.Visit(nb)) continue;
      ctx.pending.push_back(nb);
      PrefetchLines(Code(nb), prefetch_bytes);
    }
    if constexpr (kConstruction) lock.unlock();

    // Phase 2: score them; keep those that beat the current bound.
    for (size_t j = 0; j < ctx.pending.size(); ++j) {
      const uint32_t nb = ctx.pending[j];
      if (j + 1 < ctx.pending.size()) PrefetchLines(Code(ctx.pending[j + 1]), code_size_);
      const float d = Distance(q, nb);
      if (ctx.top.size() < ef || d < bound) {
        ctx.candidates.push_back({d, nb});
        std::push_heap(ctx.candidates.begin(), ctx.candidates.end(), CloserFirst{});
        if (returnable(nb)) {
          ctx.top.push_back({d, nb});
          std::push_heap(ctx.top.begin(), ctx.top.end(), FartherFirst{});
          if (ctx.top.size() > ef) {
            std::pop_heap(ctx.top.begin(), ctx.top.end(), FartherFirst{});
            ctx.top.pop_back();
          }
          bound = ctx.top.front().distance;
        }
      }
    }
    distances += ctx.pending.size();
  }
  if (stats) {
    stats->distances += distances;
    stats->hops += hops;
  }
}

// Heuristic of the HNSW paper (algorithm 4): keep a candidate only if it is closer to the
// new node than to every neighbour kept so far. Leaves the kept ones, closest first.
void HnswIndex::SelectNeighbors(std::vector<Candidate>& cands, size_t m) const {
  std::sort(cands.begin(), cands.end(),
            [](const Candidate& a, const Candidate& b) { return a.distance < b.distance; });
  if (cands.size() <= m) return;
  size_t kept = 0;
  for (size_t i = 0; i < cands.size() && kept < m; ++i) {
    bool good = true;
    const void* ci = Code(cands[i].node);
    for (size_t j = 0; j < kept; ++j) {
      if (Distance(ci, cands[j].node) < cands[i].distance) {
        good = false;
        break;
      }
    }
    if (good) cands[kept++] = cands[i];
  }
  cands.resize(kept);
}

uint32_t HnswIndex::Connect(uint32_t node, SearchContext& ctx, int level) {
  std::vector<Candidate>& cands = ctx.top;
  const size_t max_links = MaxLinks(level);
  SelectNeighbors(cands, options_.m);
  const uint32_t next_ep = cands.front().node;
  {
    std::lock_guard<std::mutex> lock(link_locks_[node & (kLockStripes - 1)]);
    uint32_t* links = LinksAt(node, level);
    uint32_t* ids = level == 0 ? links + 2 : links + 1;
    for (size_t i = 0; i < cands.size(); ++i) StoreLink(&ids[i], cands[i].node);
    std::atomic_ref<uint32_t>(links[0]).store(uint32_t(cands.size()), std::memory_order_release);
  }
  std::vector<Candidate> pruned;
  for (const Candidate& c : cands) {
    std::lock_guard<std::mutex> lock(link_locks_[c.node & (kLockStripes - 1)]);
    if (levels_[c.node] < level) continue;
    uint32_t* links = LinksAt(c.node, level);
    uint32_t* ids = level == 0 ? links + 2 : links + 1;
    const uint32_t n = links[0];
    if (n < max_links) {
      StoreLink(&ids[n], node);
      std::atomic_ref<uint32_t>(links[0]).store(n + 1, std::memory_order_release);
      continue;
    }
    pruned.clear();
    const void* cc = Code(c.node);
    pruned.push_back({Distance(cc, node), node});
    for (uint32_t j = 0; j < n; ++j) pruned.push_back({Distance(cc, ids[j]), ids[j]});
    SelectNeighbors(pruned, max_links);
    for (size_t j = 0; j < pruned.size(); ++j) StoreLink(&ids[j], pruned[j].node);
    std::atomic_ref<uint32_t>(links[0]).store(uint32_t(pruned.size()), std::memory_order_release);
  }
  return next_ep;
}

Status HnswIndex::Search(std::span<const float> query, const SearchParams& params,
                         std::vector<Neighbor>* out, SearchStats* stats) const {
  QV_RETURN_IF_ERROR(ValidateQuery(query, params));
  out->clear();
  if (metric_ == Metric::kCosine && kernels_.inner_product(query.data(), query.data(), dim_) == 0) {
    return InvalidArgumentError("query is a zero vector; cosine needs a direction");
  }
  const size_t ef = std::max(params.ef ? params.ef : options_.ef_search, params.k);
  auto ctx = AcquireContext();
  {
    std::shared_lock grow(grow_mu_);
    PrepareQuery(query.data(), *ctx);
    const uint64_t entry = entry_.load(std::memory_order_acquire);
    // A beam as wide as half the collection visits most of it anyway: every item is scored.
    if (entry != kNoEntry && ef * 2 >= size()) {
      ScanAll(ctx->query.data(), params.k, params.filter, out, stats);
    } else if (entry != kNoEntry) {
      const void* q = options_.quantization == HnswQuantization::kNone
                          ? static_cast<const void*>(ctx->query.data())
                          : static_cast<const void*>(ctx->code.data());
      uint32_t ep = GreedyDescend(q, uint32_t(entry), int(entry >> 32), 0, false, stats);
      if (params.filter) {
        SearchLayer<false, true>(*ctx, q, ep, 0, ef, params.filter, stats);
      } else {
        SearchLayer<false, false>(*ctx, q, ep, 0, ef, nullptr, stats);
      }
      if (options_.quantization != HnswQuantization::kNone) {
        for (Candidate& c : ctx->top) c.distance = ExactDistance(ctx->query.data(), c.node);
        if (stats) stats->distances += ctx->top.size();
      }
      std::sort(ctx->top.begin(), ctx->top.end(), [](const Candidate& a, const Candidate& b) {
        return a.distance < b.distance || (a.distance == b.distance && a.node < b.node);
      });
      const size_t k = std::min(params.k, ctx->top.size());
      out->reserve(k);
      for (size_t i = 0; i < k; ++i)
        out->push_back({Label(ctx->top[i].node), ctx->top[i].distance});
      // The traversal reached fewer than k items while more exist (with inner product, items
      // of low norm may be in no beam; a filter may hide what it passes behind what it does
      // not): the answer is the exact one, so that asking for k gives k when there are k.
      if (out->size() < params.k && out->size() < size()) {
        ScanAll(ctx->query.data(), params.k, params.filter, out, stats);
      }
    }
  }
  ReleaseContext(std::move(ctx));
  return Status::Ok();
}

void HnswIndex::ScanAll(const float* query, size_t k, const IdSelector* filter,
                        std::vector<Neighbor>* out, SearchStats* stats) const {
  std::vector<uint32_t> nodes;
  {
    // Ids are published here once their node is written (Insert), so each listed node is whole.
    std::lock_guard<std::mutex> lock(label_mu_);
    nodes.reserve(node_of_.size());
    for (const auto& [label, node] : node_of_) nodes.push_back(node);
  }
  std::vector<Candidate> scored;
  scored.reserve(nodes.size());
  for (uint32_t node : nodes) {
    if (filter != nullptr && !filter->Contains(Label(node))) continue;
    scored.push_back({ExactDistance(query, node), node});
  }
  if (stats) stats->distances += scored.size();
  const auto better = [](const Candidate& a, const Candidate& b) {
    return a.distance < b.distance || (a.distance == b.distance && a.node < b.node);
  };
  const size_t n = std::min(k, scored.size());
  std::partial_sort(scored.begin(), scored.begin() + ptrdiff_t(n), scored.end(), better);
  out->clear();
  out->reserve(n);
  for (size_t i = 0; i < n; ++i) out->push_back({Label(scored[i].node), scored[i].distance});
}

}  // namespace quiver::index
