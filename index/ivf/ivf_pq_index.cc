#include "index/ivf/ivf_pq_index.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>

#include "index/kmeans/kmeans.h"
#include "index/simd/fastscan.h"

namespace quiver::index {
namespace {

template <typename C>
bool CloserThan(const C& a, const C& b) {
  return a.distance < b.distance;
}

inline void PrefetchBytes(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (size_t i = 0; i < bytes; i += 64) __builtin_prefetch(c + i);
}

// The cap closest candidates of a stream: a candidate under threshold() is appended, and when
// 2 * cap are held the cap best are kept (nth_element) and the threshold tightens to the worst
// of them. Amortised O(1) per candidate, where a heap pays O(log cap) for each one.
template <typename C>
class TopPool {
 public:
  void Reset(size_t cap) {
    cap_ = cap;
    items_.clear();
    threshold_ = std::numeric_limits<float>::infinity();
  }
  size_t cap() const { return cap_; }
  size_t held() const { return items_.size(); }  // at least min(cap, candidates pushed)
  float threshold() const { return threshold_; }
  // REQUIRES: c.distance < threshold() and cap() > 0.
  void Push(const C& c) {
    items_.push_back(c);
    if (items_.size() >= 2 * cap_) Shrink();
  }
  // The (at most cap) best candidates, in no particular order.
  std::vector<C>& Finish() {
    if (items_.size() > cap_) Shrink();
    return items_;
  }

 private:
  void Shrink() {
    std::nth_element(items_.begin(), items_.begin() + (cap_ - 1), items_.end(), CloserThan<C>);
    threshold_ = items_[cap_ - 1].distance;
    items_.resize(cap_);
  }

  size_t cap_ = 0;
  float threshold_ = std::numeric_limits<float>::infinity();
  std::vector<C> items_;
};

}  // namespace

// Per-thread scratch for searches: reused across queries (and indexes), so a search allocates
// nothing once its thread has warmed up.
struct IvfPqIndex::Scratch {
  std::vector<float> q, coarse_distances, table, lut, residual, mins, sum, query_scaled;
  std::vector<uint8_t> lut8;
  std::vector<std::pair<float, uint32_t>> coarse;
  TopPool<Candidate> pool;
};

IvfPqIndex::Scratch& IvfPqIndex::ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

// Per-query scanning state: the query and its distance tables (in the thread's scratch).
class IvfPqIndex::Scanner {
 public:
  Scanner(const IvfPqIndex& index, const float* q, const IdSelector* filter, Scratch& scratch)
      : x_(index),
        q_(q),
        filter_(filter),
        table_(scratch.table),
        lut_(scratch.lut),
        residual_(scratch.residual),
        lut8_(scratch.lut8),
        mins_(scratch.mins),
        sum_(scratch.sum) {
    const size_t mk = x_.pq_.m() * x_.pq_.ksub();
    table_.resize(mk);
    lut_.resize(mk);
    if (x_.metric_ == Metric::kL2) {
      if (!x_.precomputed_.empty()) {
        x_.pq_.IpTable(q, table_.data());
        for (float& v : table_) v *= -2.0f;  // -2 <q_j, y_jk>
      }
    } else {
      x_.pq_.IpTable(q, table_.data());
      for (float& v : table_) v = -v;  // distance = -dot
    }
    residual_.resize(x_.dim_);
    lut8_.assign(simd::FastScanBlockBytes(x_.pq_.m()), 0);  // odd m: the last half stays 0
    mins_.resize(x_.pq_.m());
    sum_.resize(x_.pq_.m() * 16);
  }

  // Starts loading what scanning list l reads first: its table and its first code blocks.
  void Prefetch(uint32_t l) const {
    const List& list = x_.lists_[l];
    if (!x_.precomputed_.empty()) {
      PrefetchBytes(&x_.precomputed_[size_t(l) * table_.size()], table_.size() * sizeof(float));
    }
    PrefetchBytes(list.codes.data(), std::min<size_t>(list.codes.size(), 1024));
  }

  // Scans list l into pool, returning the number of codes scanned.
  size_t Scan(uint32_t l, TopPool<Candidate>& pool,
              float coarse = std::numeric_limits<float>::quiet_NaN()) {
    const List& list = x_.lists_[l];
    const size_t n = list.ids.size();
    if (n == 0 || pool.cap() == 0) return 0;
    const float* lut = nullptr;  // the list's table is lut (+ lut_add, when not null)
    const float* lut_add = nullptr;
    const float bias = ListTable(l, coarse, &lut, &lut_add);
    auto push = [&](float d, uint32_t pos) {  // REQUIRES: d < pool.threshold()
      if (filter_ && !filter_->Contains(list.ids[pos])) return;
      pool.Push(Candidate{d, l, pos});
    };
    const size_t m = x_.pq_.m(), ksub = x_.pq_.ksub();
    if (x_.pq_.nbits() == 8) {
      if (lut_add) {
        for (size_t i = 0; i < m * ksub; ++i) lut_[i] = lut[i] + lut_add[i];
        lut = lut_.data();
      }
      const size_t cs = x_.pq_.code_size();
      for (size_t i = 0; i < n; ++i) {
        const uint8_t* code = &list.codes[i * cs];
        float d = bias;
        for (size_t j = 0; j < m; ++j) d += lut[j * ksub + code[j]];
        if (d < pool.threshold()) push(d, uint32_t(i));
      }
      return n;
    }
    // 4-bit: quantise the table to uint8 with one scale for all sub-quantisers, so sums of up
    // to m entries stay below 65,536; offsets per sub-quantiser go into the bias.
    const float range = x_.kernels_.lut16_sum_minmax(lut, lut_add, m, sum_.data(), mins_.data());
    float offset = bias;
    for (size_t j = 0; j < m; ++j) offset += mins_[j];
    const float limit = float(std::min<size_t>(255, 65535 / m));
    const float scale = range > 0 ? limit / range : 0.0f;
    const float inv = scale > 0 ? 1.0f / scale : 0.0f;
    x_.kernels_.lut16_quantize(sum_.data(), mins_.data(), m, scale, lut8_.data());
    const size_t pairs = simd::FastScanPairs(m), block_bytes = simd::FastScanBlockBytes(m);
    alignas(64) uint16_t sums[32];
    for (size_t b = 0; b * 32 < n; ++b) {
      // The pool's threshold in table units; with a flat table (scale 0) every lane ties at
      // `offset`. Lanes at or under it may enter the pool (the exact test is on the float).
      const float worst = pool.threshold();
      const float threshold =
          scale > 0 ? (worst - offset) * scale : (worst > offset ? 65535.0f : -1.0f);
      if (threshold < 0) continue;
      const uint16_t t16 = threshold >= 65535.0f ? uint16_t{65535} : uint16_t(threshold);
      if ((b + 2) * 32 < n) PrefetchBytes(&list.codes[(b + 2) * block_bytes], block_bytes);
      uint32_t mask = x_.kernels_.fastscan_block32(&list.codes[b * block_bytes], lut8_.data(),
                                                   pairs, t16, sums);
      const size_t lanes = std::min<size_t>(32, n - b * 32);
      if (lanes < 32) mask &= (uint32_t{1} << lanes) - 1;
      for (; mask; mask &= mask - 1) {
        const uint32_t v = uint32_t(__builtin_ctz(mask));
        const float d = offset + float(sums[v]) * inv;
        if (d < pool.threshold()) push(d, uint32_t(b * 32 + v));
      }
    }
    return n;
  }

 private:
  // Points lut (and lut_add, to be added to it) at list l's table and returns the list's
  // constant term. `coarse` is
  // the coarse-step distance of the query to the list's centroid (NaN if not computed).
  float ListTable(uint32_t l, float coarse, const float** lut, const float** lut_add) {
    const float* c = &x_.centroids_[size_t(l) * x_.dim_];
    if (std::isnan(coarse)) {
      coarse = x_.metric_ == Metric::kL2 ? x_.kernels_.l2sqr(q_, c, x_.dim_)
                                         : -x_.kernels_.inner_product(q_, c, x_.dim_);
    }
    if (x_.metric_ != Metric::kL2) {  // the table is the same for every list
      *lut = table_.data();
      return x_.metric_ == Metric::kCosine ? 1.0f + coarse : coarse;
    }
    if (x_.precomputed_.empty()) {
      for (size_t t = 0; t < x_.dim_; ++t) residual_[t] = q_[t] - c[t];
      x_.pq_.L2Table(residual_.data(), lut_.data());
      *lut = lut_.data();
      return 0.0f;
    }
    *lut = &x_.precomputed_[size_t(l) * table_.size()];
    *lut_add = table_.data();
    return coarse;
  }

  const IvfPqIndex& x_;
  const float* q_;
  const IdSelector* filter_;
  std::vector<float>& table_;
  std::vector<float>& lut_;
  std::vector<float>& residual_;
  std::vector<uint8_t>& lut8_;
  std::vector<float>& mins_;
  std::vector<float>& sum_;
};

Result<std::unique_ptr<IvfPqIndex>> IvfPqIndex::Create(size_t dim, Metric metric,
                                                       const IvfPqOptions& o) {
  if (dim == 0 || dim > 65536) return InvalidArgumentError("dim must be in [1, 65536]");
  if (o.nlist == 0 || o.nlist > (1u << 20))
    return InvalidArgumentError("nlist must be in [1, 2^20]");
  if (o.m == 0 || dim % o.m != 0) {
    return InvalidArgumentError("PQ m (" + std::to_string(o.m) + ") must divide dim (" +
                                std::to_string(dim) + ")");
  }
  if (o.nbits != 4 && o.nbits != 8) return InvalidArgumentError("nbits must be 4 or 8");
  if (o.nbits == 4 && o.m > 1024) return InvalidArgumentError("4-bit PQ supports m up to 1024");
  if (o.nprobe == 0) return InvalidArgumentError("nprobe must be at least 1");
  if (o.refine_store > RefineStore::kInt8) return InvalidArgumentError("unknown refine store");
  return std::unique_ptr<IvfPqIndex>(new IvfPqIndex(dim, metric, o));
}

IvfPqIndex::IvfPqIndex(size_t dim, Metric metric, const IvfPqOptions& options)
    : dim_(dim),
      metric_(metric),
      options_(options),
      kernels_(simd::GetKernels()),
      refine_row_bytes_(options.refine_store == RefineStore::kFloat32 ? dim * sizeof(float)
                        : options.refine_store == RefineStore::kInt8  ? dim
                                                                      : 0) {
  lists_.resize(options.nlist);
}

size_t IvfPqIndex::size() const {
  std::shared_lock lock(mu_);
  return where_.size();
}

bool IvfPqIndex::trained() const {
  std::shared_lock lock(mu_);
  return trained_;
}

std::vector<size_t> IvfPqIndex::ListSizes() const {
  std::shared_lock lock(mu_);
  std::vector<size_t> sizes;
  for (const List& l : lists_) sizes.push_back(l.ids.size());
  return sizes;
}

size_t IvfPqIndex::memory_bytes() const {
  std::shared_lock lock(mu_);
  size_t bytes = (centroids_.capacity() + precomputed_.capacity() + pq_.centroids().size() +
                  lift_e_.capacity() + probe_bias_.capacity() + lifted_centroids_.capacity()) *
                 4;
  for (const List& l : lists_) {
    bytes +=
        l.ids.capacity() * 8 + l.codes.capacity() + l.rows.capacity() + l.weights.capacity() * 4;
  }
  return bytes + where_.size() * 32;
}

bool IvfPqIndex::Contains(uint64_t id) const {
  std::shared_lock lock(mu_);
  return where_.count(id) != 0;
}

Status IvfPqIndex::GetVector(uint64_t id, float* out) const {
  std::shared_lock lock(mu_);
  auto it = where_.find(id);
  if (it == where_.end()) return NotFoundError("id " + std::to_string(id) + " is not in the index");
  const List& list = lists_[it->second.first];
  const uint8_t* row = list.rows.data() + size_t(it->second.second) * refine_row_bytes_;
  switch (options_.refine_store) {
    case RefineStore::kFloat32:
      std::memcpy(out, row, dim_ * sizeof(float));
      return Status::Ok();
    case RefineStore::kInt8:
      RowQuantizer(row).Decode(row, dim_, out);
      return Status::Ok();
    case RefineStore::kNone:
      break;
  }
  return FailedPreconditionError("this IVF-PQ index keeps no vectors (no refine store)");
}

const float* IvfPqIndex::RowsForMetric(std::span<const float> rows,
                                       std::vector<float>* storage) const {
  if (metric_ != Metric::kCosine) return rows.data();
  storage->assign(rows.begin(), rows.end());
  for (size_t i = 0; i < storage->size(); i += dim_) kernels_.normalize(&(*storage)[i], dim_);
  return storage->data();
}

simd::ScalarQuantizer IvfPqIndex::RowQuantizer(const uint8_t* row) const {
  if (!refine_per_row_) return refine_sq_;
  float lo, step;
  std::memcpy(&lo, row + dim_, sizeof(float));
  std::memcpy(&step, row + dim_ + sizeof(float), sizeof(float));
  return simd::ScalarQuantizer(refine_sq_.kind(), lo, step);
}

void IvfPqIndex::PrepareQuery(const float* query, std::vector<float>* q) const {
  q->assign(query, query + dim_);
  if (metric_ == Metric::kCosine) kernels_.normalize(q->data(), dim_);
}

Status IvfPqIndex::Train(std::span<const float> sample) {
  std::unique_lock lock(mu_);
  if (trained_) return FailedPreconditionError("IVF-PQ index is already trained");
  if (sample.size() % dim_ != 0) return InvalidArgumentError("training sample is not whole rows");
  for (float v : sample) {
    if (!std::isfinite(v)) return InvalidArgumentError("training sample has NaN or Inf");
  }
  std::vector<float> normalized;
  return TrainLocked({RowsForMetric(sample, &normalized), sample.size()});
}

Status IvfPqIndex::SetCoarseCentroids(std::span<const float> centroids) {
  std::unique_lock lock(mu_);
  if (trained_) return FailedPreconditionError("IVF-PQ index is already trained");
  if (centroids.size() != options_.nlist * dim_) {
    return InvalidArgumentError("expected nlist * dim = " + std::to_string(options_.nlist * dim_) +
                                " centroid floats, got " + std::to_string(centroids.size()));
  }
  for (float v : centroids) {
    if (!std::isfinite(v)) return InvalidArgumentError("centroids have NaN or Inf");
  }
  centroids_.assign(centroids.begin(), centroids.end());
  coarse_given_ = true;
  UpdateListTermsLocked();
  return Status::Ok();
}

Status IvfPqIndex::TrainLocked(std::span<const float> sample) {
  const size_t n = sample.size() / dim_;
  const size_t ksub = size_t{1} << options_.nbits;
  const size_t need = std::max(coarse_given_ ? 0 : options_.nlist, ksub);
  if (n < need) {
    return FailedPreconditionError("IVF-PQ needs at least " + std::to_string(need) +
                                   " vectors to train (nlist " + std::to_string(options_.nlist) +
                                   ", 2^nbits " + std::to_string(ksub) + "); got " +
                                   std::to_string(n));
  }
  if (!coarse_given_) {
    KMeansOptions ko;
    ko.k = options_.nlist;
    ko.seed = options_.seed;
    ko.threads = options_.threads;
    ko.max_points_per_centroid = options_.max_train_points_per_list;
    if (metric_ == Metric::kInnerProduct) {
      // k-means of the lifted sample (see lift_e_): dim + 1 columns, the last sqrt(M^2 - |x|^2).
      float m2 = 0;
      for (size_t i = 0; i < n; ++i) {
        m2 = std::max(m2, kernels_.inner_product(&sample[i * dim_], &sample[i * dim_], dim_));
      }
      const size_t d1 = dim_ + 1;
      std::vector<float> lifted(n * d1);
      for (size_t i = 0; i < n; ++i) {
        const float* x = &sample[i * dim_];
        std::copy_n(x, dim_, &lifted[i * d1]);
        lifted[i * d1 + dim_] = std::sqrt(std::max(0.0f, m2 - kernels_.inner_product(x, x, dim_)));
      }
      QV_ASSIGN_OR_RETURN(KMeansResult km, TrainKMeans(lifted, d1, ko));
      centroids_.resize(options_.nlist * dim_);
      lift_e_.resize(options_.nlist);
      for (size_t l = 0; l < options_.nlist; ++l) {
        std::copy_n(&km.centroids[l * d1], dim_, &centroids_[l * dim_]);
        lift_e_[l] = km.centroids[l * d1 + dim_];
      }
      lift_m2_ = m2;
    } else {
      QV_ASSIGN_OR_RETURN(KMeansResult km, TrainKMeans(sample, dim_, ko));
      centroids_ = std::move(km.centroids);
    }
  }
  UpdateListTermsLocked();
  // PQ on residuals of (at most) ksub * 100 training points, from the lists they go to.
  const size_t pq_n = std::min(n, ksub * 100);
  const size_t stride = n / pq_n;
  std::vector<float> rows(pq_n * dim_);
  for (size_t i = 0; i < pq_n; ++i) std::copy_n(&sample[i * stride * dim_], dim_, &rows[i * dim_]);
  const std::vector<uint32_t> labels = AssignLists(rows.data(), pq_n);
  for (size_t i = 0; i < pq_n; ++i) {
    const float* c = &centroids_[size_t(labels[i]) * dim_];
    for (size_t t = 0; t < dim_; ++t) rows[i * dim_ + t] -= c[t];
  }
  QV_ASSIGN_OR_RETURN(pq_, ProductQuantizer::Train(rows, dim_, options_.m, options_.nbits,
                                                   options_.seed + 1, options_.threads));
  if (options_.refine_store == RefineStore::kInt8) {
    refine_sq_ = simd::ScalarQuantizer::Train(metric_ == Metric::kL2
                                                  ? simd::ScalarQuantizer::Kind::kUnsignedL2
                                                  : simd::ScalarQuantizer::Kind::kSignedIp,
                                              sample);
    refine_per_row_ = !(refine_sq_.kind() == simd::ScalarQuantizer::Kind::kUnsignedL2 &&
                        refine_sq_.lo() == 0 && refine_sq_.step() == 1);
    refine_row_bytes_ = dim_ + (refine_per_row_ ? 2 * sizeof(float) : 0);
  }
  BuildPrecomputedLocked();
  trained_ = true;
  return Status::Ok();
}

void IvfPqIndex::BuildPrecomputedLocked() {
  precomputed_.clear();
  const size_t m = pq_.m(), ksub = pq_.ksub(), dsub = pq_.dsub();
  // Bounded at 64 MiB; larger configurations compute residual tables per probed list.
  if (metric_ != Metric::kL2 || options_.nlist * m * ksub > (size_t{16} << 20)) return;
  precomputed_.resize(options_.nlist * m * ksub);
  const auto& y = pq_.centroids();
  for (size_t l = 0; l < options_.nlist; ++l) {
    const float* c = &centroids_[l * dim_];
    float* p = &precomputed_[l * m * ksub];
    for (size_t j = 0; j < m; ++j) {
      for (size_t k = 0; k < ksub; ++k) {
        const float* yk = &y[(j * ksub + k) * dsub];
        float norm = 0, dot = 0;
        for (size_t t = 0; t < dsub; ++t) {
          norm += yk[t] * yk[t];
          dot += c[j * dsub + t] * yk[t];
        }
        p[j * ksub + k] = norm + 2 * dot;
      }
    }
  }
}

void IvfPqIndex::UpdateListTermsLocked() {
  probe_bias_.clear();
  lifted_centroids_.clear();
  if (metric_ == Metric::kL2 || centroids_.empty()) return;
  // Cosine: unit rows in L2 cells, so |q - c|^2 = 1 - 2 q.c + |c|^2 orders the lists. Inner
  // product: the same in the lifted space; without lifted lists, the largest dot alone.
  if (metric_ == Metric::kInnerProduct && lift_e_.empty()) return;
  probe_bias_.resize(options_.nlist);
  const float lift_m = lift_e_.empty() ? 1.0f : std::max(std::sqrt(lift_m2_), 1e-30f);
  for (size_t l = 0; l < options_.nlist; ++l) {
    const float* c = &centroids_[l * dim_];
    const float e = lift_e_.empty() ? 0.0f : lift_e_[l];
    probe_bias_[l] = 0.5f * (kernels_.inner_product(c, c, dim_) + e * e) / lift_m;
  }
  if (lift_e_.empty()) return;
  const size_t d1 = dim_ + 1;
  lifted_centroids_.resize(options_.nlist * d1);
  for (size_t l = 0; l < options_.nlist; ++l) {
    std::copy_n(&centroids_[l * dim_], dim_, &lifted_centroids_[l * d1]);
    lifted_centroids_[l * d1 + dim_] = lift_e_[l];
  }
}

std::vector<uint32_t> IvfPqIndex::AssignLists(const float* x, size_t n) const {
  std::vector<uint32_t> lists(n);
  if (metric_ == Metric::kInnerProduct && !lift_e_.empty()) {
    // The nearest lifted centroid; a row longer than M (added after training) lifts to 0.
    const size_t d1 = dim_ + 1;
    std::vector<float> lifted(n * d1);
    for (size_t i = 0; i < n; ++i) {
      const float* v = x + i * dim_;
      std::copy_n(v, dim_, &lifted[i * d1]);
      lifted[i * d1 + dim_] =
          std::sqrt(std::max(0.0f, lift_m2_ - kernels_.inner_product(v, v, dim_)));
    }
    AssignNearest(lifted.data(), n, lifted_centroids_.data(), options_.nlist, d1, lists.data(),
                  nullptr, options_.threads);
  } else if (metric_ == Metric::kInnerProduct) {
    for (size_t i = 0; i < n; ++i) {
      float best = -std::numeric_limits<float>::infinity();
      for (size_t l = 0; l < options_.nlist; ++l) {
        float v = kernels_.inner_product(x + i * dim_, &centroids_[l * dim_], dim_);
        if (v > best) {
          best = v;
          lists[i] = uint32_t(l);
        }
      }
    }
  } else {
    AssignNearest(x, n, centroids_.data(), options_.nlist, dim_, lists.data(), nullptr,
                  options_.threads);
  }
  return lists;
}

Status IvfPqIndex::Add(std::span<const uint64_t> ids, std::span<const float> vectors) {
  QV_RETURN_IF_ERROR(ValidateAdd(ids, vectors));
  if (ids.empty()) return Status::Ok();
  std::vector<float> normalized;
  const float* x = RowsForMetric(vectors, &normalized);
  std::unique_lock lock(mu_);
  if (!trained_) QV_RETURN_IF_ERROR(TrainLocked({x, ids.size() * dim_}));
  return AddLocked(ids, x, AssignLists(x, ids.size()).data());
}

Status IvfPqIndex::AddWeighted(std::span<const uint64_t> ids, std::span<const float> vectors,
                               std::span<const float> weights) {
  const size_t w = options_.weights;
  if (w == 0) return FailedPreconditionError("this IVF-PQ index keeps no item weights");
  QV_RETURN_IF_ERROR(ValidateAdd(ids, vectors));
  if (weights.size() != ids.size() * w) {
    return InvalidArgumentError("AddWeighted needs " + std::to_string(w) + " weights per item (" +
                                std::to_string(ids.size() * w) + "), got " +
                                std::to_string(weights.size()));
  }
  for (float v : weights) {
    if (!std::isfinite(v)) return InvalidArgumentError("item weights must be finite");
  }
  if (ids.empty()) return Status::Ok();
  std::vector<float> normalized;
  const float* x = RowsForMetric(vectors, &normalized);
  std::unique_lock lock(mu_);
  if (!trained_) QV_RETURN_IF_ERROR(TrainLocked({x, ids.size() * dim_}));
  return AddLocked(ids, x, AssignLists(x, ids.size()).data(), weights.data());
}

Status IvfPqIndex::AddToLists(std::span<const uint64_t> ids, std::span<const float> vectors,
                              std::span<const uint32_t> lists) {
  QV_RETURN_IF_ERROR(ValidateAdd(ids, vectors));
  if (lists.size() != ids.size()) {
    return InvalidArgumentError("AddToLists needs one list per id (" + std::to_string(ids.size()) +
                                " ids, " + std::to_string(lists.size()) + " lists)");
  }
  for (uint32_t l : lists) {
    if (l >= options_.nlist) {
      return InvalidArgumentError("list " + std::to_string(l) + " is out of range (nlist " +
                                  std::to_string(options_.nlist) + ")");
    }
  }
  std::vector<float> normalized;
  const float* x = RowsForMetric(vectors, &normalized);
  std::unique_lock lock(mu_);
  if (!trained_) {
    if (!coarse_given_) {
      return FailedPreconditionError(
          "AddToLists needs coarse centroids (SetCoarseCentroids or Train)");
    }
    QV_RETURN_IF_ERROR(TrainLocked({x, ids.size() * dim_}));
  }
  return AddLocked(ids, x, lists.data());
}

Status IvfPqIndex::AddLocked(std::span<const uint64_t> ids, const float* x, const uint32_t* lists,
                             const float* weights) {
  const size_t n = ids.size(), cs = pq_.code_size();
  std::vector<float> residuals(n * dim_);
  for (size_t i = 0; i < n; ++i) {
    const float* c = &centroids_[size_t(lists[i]) * dim_];
    for (size_t t = 0; t < dim_; ++t) residuals[i * dim_ + t] = x[i * dim_ + t] - c[t];
  }
  std::vector<uint8_t> codes(n * cs);
  pq_.EncodeBatch(residuals.data(), n, codes.data(), options_.threads);
  for (size_t i = 0; i < n; ++i) {
    auto it = where_.find(ids[i]);
    if (it != where_.end()) RemoveFromList(it->second.first, it->second.second);
    List& list = lists_[lists[i]];
    where_[ids[i]] = {lists[i], uint32_t(list.ids.size())};
    AppendToList(list, ids[i], &codes[i * cs], x + i * dim_,
                 weights ? weights + i * options_.weights : nullptr);
  }
  return Status::Ok();
}

void IvfPqIndex::AppendToList(List& list, uint64_t id, const uint8_t* code, const float* vector,
                              const float* weights) {
  const size_t pos = list.ids.size();
  list.ids.push_back(id);
  if (const size_t w = options_.weights) {
    list.weight_sums.resize(w, 0.0);
    for (size_t k = 0; k < w; ++k) {
      const float v = weights ? weights[k] : 0.0f;
      list.weights.push_back(v);
      list.weight_sums[k] += v;
    }
  }
  if (options_.refine_store == RefineStore::kFloat32) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(vector);
    list.rows.insert(list.rows.end(), bytes, bytes + refine_row_bytes_);
  } else if (options_.refine_store == RefineStore::kInt8) {
    list.rows.resize(list.rows.size() + refine_row_bytes_);
    uint8_t* row = &list.rows[pos * refine_row_bytes_];
    simd::ScalarQuantizer sq = refine_sq_;
    if (refine_per_row_) {
      sq = simd::ScalarQuantizer::Train(refine_sq_.kind(), {vector, dim_});
      const float lo = sq.lo(), step = sq.step();
      std::memcpy(row + dim_, &lo, sizeof(float));
      std::memcpy(row + dim_ + sizeof(float), &step, sizeof(float));
    }
    sq.Encode(vector, dim_, row);
  }
  if (pq_.nbits() == 8) {
    list.codes.insert(list.codes.end(), code, code + pq_.code_size());
    return;
  }
  const size_t block_bytes = simd::FastScanBlockBytes(pq_.m());
  if (pos % 32 == 0) list.codes.resize(list.codes.size() + block_bytes, 0);
  uint8_t* block = &list.codes[(pos / 32) * block_bytes];
  for (size_t j = 0; j < pq_.m(); ++j)
    simd::FastScanSet(block, pos % 32, j, uint8_t(pq_.SubCode(code, j)));
}

void IvfPqIndex::RemoveFromList(uint32_t l, uint32_t pos) {
  List& list = lists_[l];
  const size_t last = list.ids.size() - 1;
  const size_t cs = pq_.code_size(), block_bytes = simd::FastScanBlockBytes(pq_.m());
  if (const size_t w = options_.weights) {
    for (size_t k = 0; k < w; ++k) list.weight_sums[k] -= list.weights[size_t(pos) * w + k];
    std::copy_n(&list.weights[last * w], w, &list.weights[size_t(pos) * w]);
    list.weights.resize(last * w);
    if (last == 0) std::fill(list.weight_sums.begin(), list.weight_sums.end(), 0.0);  // no drift
  }
  if (pos != last) {
    list.ids[pos] = list.ids[last];
    where_[list.ids[pos]] = {l, pos};
    std::copy_n(list.rows.data() + last * refine_row_bytes_, refine_row_bytes_,
                list.rows.data() + size_t(pos) * refine_row_bytes_);
    if (pq_.nbits() == 8) {
      std::copy_n(&list.codes[last * cs], cs, &list.codes[size_t(pos) * cs]);
    } else {
      const uint8_t* from = &list.codes[(last / 32) * block_bytes];
      uint8_t* to = &list.codes[(pos / 32) * block_bytes];
      for (size_t j = 0; j < pq_.m(); ++j) {
        simd::FastScanSet(to, pos % 32, j, simd::FastScanGet(from, last % 32, j));
      }
    }
  }
  list.ids.pop_back();
  list.rows.resize(last * refine_row_bytes_);
  if (pq_.nbits() == 8) {
    list.codes.resize(last * cs);
  } else if (last % 32 == 0) {
    list.codes.resize((last / 32) * block_bytes);
  } else {
    uint8_t* block = &list.codes[(last / 32) * block_bytes];
    for (size_t j = 0; j < pq_.m(); ++j) simd::FastScanSet(block, last % 32, j, 0);
  }
}

Status IvfPqIndex::Remove(std::span<const uint64_t> ids) {
  std::unique_lock lock(mu_);
  for (uint64_t id : ids) {
    if (!where_.count(id))
      return NotFoundError("id " + std::to_string(id) + " is not in the index");
  }
  for (uint64_t id : ids) {
    auto it = where_.find(id);
    if (it == where_.end()) continue;  // listed twice
    auto [l, pos] = it->second;
    where_.erase(it);
    RemoveFromList(l, pos);
  }
  return Status::Ok();
}

Status IvfPqIndex::Search(std::span<const float> query, const SearchParams& params,
                          std::vector<Neighbor>* out, SearchStats* stats) const {
  QV_RETURN_IF_ERROR(ValidateQuery(query, params));
  out->clear();
  Scratch& scratch = ThreadScratch();
  std::vector<float>& q = scratch.q;
  PrepareQuery(query.data(), &q);
  if (metric_ == Metric::kCosine && kernels_.inner_product(q.data(), q.data(), dim_) == 0) {
    return InvalidArgumentError("query is a zero vector; cosine needs a direction");
  }
  std::shared_lock lock(mu_);
  if (!trained_ || where_.empty()) return Status::Ok();
  const size_t nlist = options_.nlist;
  const size_t nprobe = std::min(nlist, params.nprobe ? params.nprobe : options_.nprobe);
  // Coarse step: the nprobe closest lists.
  std::vector<std::pair<float, uint32_t>>& coarse = scratch.coarse;
  std::vector<float>& cd = scratch.coarse_distances;
  coarse.resize(nlist);
  cd.resize(nlist);
  if (metric_ == Metric::kL2) {
    kernels_.l2sqr_batch(q.data(), centroids_.data(), nlist, dim_, cd.data());
  } else {
    kernels_.inner_product_batch(q.data(), centroids_.data(), nlist, dim_, cd.data());
    for (float& v : cd) v = -v;
  }
  // Probe order: cd, plus the centroid-norm terms where the metric has them (probe_bias_,
  // times |q|: the lifted query scaled to the items' sphere, |q'| = M, which keeps the order of
  // its neighbours); the scan's list term stays cd.
  const float qn = probe_bias_.empty() || metric_ == Metric::kCosine
                       ? 1.0f
                       : std::sqrt(kernels_.inner_product(q.data(), q.data(), dim_));
  for (size_t l = 0; l < nlist; ++l) {
    coarse[l] = {probe_bias_.empty() ? cd[l] : cd[l] + qn * probe_bias_[l], uint32_t(l)};
  }
  std::partial_sort(coarse.begin(), coarse.begin() + nprobe, coarse.end());

  const size_t refine = RefineFactor(params);
  const size_t cap = params.k * std::max<size_t>(refine, 1);
  Scanner scanner(*this, q.data(), params.filter, scratch);
  TopPool<Candidate>& pool = scratch.pool;
  pool.Reset(cap);
  size_t scanned = 0;
  // Past nprobe while fewer than k candidates are held (k near the collection's size, a
  // filter passing few): the next closest lists, so that asking for k gives k when there are k.
  for (size_t i = 0; i < nlist && (i < nprobe || pool.held() < params.k); ++i) {
    if (i == nprobe) std::sort(coarse.begin() + ptrdiff_t(nprobe), coarse.end());
    if (i + 1 < nprobe) scanner.Prefetch(coarse[i + 1].second);
    scanned += scanner.Scan(coarse[i].second, pool, cd[coarse[i].second]);
  }
  std::vector<Candidate>& candidates = pool.Finish();
  if (stats) stats->distances += scanned + (refine ? candidates.size() : 0) + nlist;
  FinishLocked(q.data(), refine > 0, params.k, candidates, out);
  return Status::Ok();
}

size_t IvfPqIndex::RefineFactor(const SearchParams& params) const {
  if (options_.refine_store == RefineStore::kNone) return 0;
  return params.refine ? params.refine : options_.refine;
}

void IvfPqIndex::FinishLocked(const float* q, bool refine, size_t k,
                              std::vector<Candidate>& candidates,
                              std::vector<Neighbor>* out) const {
  // Candidate rows are scattered: start loading a few ahead of the one being scored.
  constexpr size_t kAhead = 4;
  const size_t row_bytes = refine_row_bytes_;
  auto row = [&](const Candidate& c) {
    return lists_[c.list].rows.data() + size_t(c.pos) * row_bytes;
  };
  auto prefetch = [&](size_t i) {
    if (i < candidates.size()) PrefetchBytes(row(candidates[i]), row_bytes);
  };
  if (refine && options_.refine_store != RefineStore::kNone) {
    for (size_t i = 0; i < kAhead; ++i) prefetch(i);
  }
  if (refine && options_.refine_store == RefineStore::kFloat32) {
    for (size_t i = 0; i < candidates.size(); ++i) {
      prefetch(i + kAhead);
      Candidate& c = candidates[i];
      const float* v = reinterpret_cast<const float*>(row(c));
      switch (metric_) {
        case Metric::kL2:
          c.distance = kernels_.l2sqr(q, v, dim_);
          break;
        case Metric::kInnerProduct:
          c.distance = -kernels_.inner_product(q, v, dim_);
          break;
        case Metric::kCosine:
          c.distance = 1.0f - kernels_.inner_product(q, v, dim_);
          break;
      }
    }
  } else if (refine && options_.refine_store == RefineStore::kInt8) {
    // Asymmetric: the query stays float and meets each row's codes as the values they stand
    // for (x = lo + step * c for L2, step * c for inner product), so a query outside the rows'
    // range (another tower's user vector, noise) is scored as exactly as one inside: nothing of
    // it is clamped or rounded. With a scale per row the query is moved into each row's code
    // space (one pass over dim floats, in L1) instead of once.
    std::vector<float>& qs = ThreadScratch().query_scaled;
    auto to_code_space = [&](const simd::ScalarQuantizer& sq) {
      qs.resize(dim_);
      const float lo = sq.lo(), inv = 1.0f / sq.step();
      for (size_t j = 0; j < dim_; ++j) qs[j] = (q[j] - lo) * inv;
    };
    if (metric_ == Metric::kL2 && !refine_per_row_) to_code_space(refine_sq_);
    for (size_t i = 0; i < candidates.size(); ++i) {
      prefetch(i + kAhead);
      Candidate& c = candidates[i];
      const uint8_t* v = row(c);
      const simd::ScalarQuantizer sq = RowQuantizer(v);
      const float step = sq.step();
      if (metric_ == Metric::kL2) {
        if (refine_per_row_) to_code_space(sq);
        c.distance = step * step * kernels_.l2sqr_f32_u8(qs.data(), v, dim_);
      } else {
        const float dot =
            step * kernels_.inner_product_f32_i8(q, reinterpret_cast<const int8_t*>(v), dim_);
        c.distance = metric_ == Metric::kCosine ? 1.0f - dot : -dot;
      }
    }
  }
  std::sort(candidates.begin(), candidates.end(), CloserThan<Candidate>);
  const size_t n = std::min(k, candidates.size());
  out->clear();
  for (size_t i = 0; i < n; ++i)
    out->push_back({lists_[candidates[i].list].ids[candidates[i].pos], candidates[i].distance});
}

Status IvfPqIndex::SearchLists(std::span<const float> query, std::span<const ListQuota> quotas,
                               const SearchParams& params,
                               std::vector<std::vector<Neighbor>>* out) const {
  SearchParams checked = params;
  checked.k = 1;  // per-list k comes from the quotas
  QV_RETURN_IF_ERROR(ValidateQuery(query, checked));
  for (const ListQuota& lq : quotas) {
    if (lq.list >= options_.nlist) {
      return InvalidArgumentError("list " + std::to_string(lq.list) + " is out of range (nlist " +
                                  std::to_string(options_.nlist) + ")");
    }
  }
  Scratch& scratch = ThreadScratch();
  std::vector<float>& q = scratch.q;
  PrepareQuery(query.data(), &q);
  out->assign(quotas.size(), {});
  std::shared_lock lock(mu_);
  if (!trained_) return Status::Ok();
  const size_t refine = RefineFactor(params);
  Scanner scanner(*this, q.data(), params.filter, scratch);
  TopPool<Candidate>& pool = scratch.pool;
  for (size_t i = 0; i < quotas.size(); ++i) {
    pool.Reset(quotas[i].k * std::max<size_t>(refine, 1));
    scanner.Scan(quotas[i].list, pool);
    FinishLocked(q.data(), refine > 0, quotas[i].k, pool.Finish(), &(*out)[i]);
  }
  return Status::Ok();
}

Status IvfPqIndex::SearchWeighted(std::span<const float> queries, const SearchParams& params,
                                  std::vector<Neighbor>* out, std::vector<uint32_t>* terms) const {
  const size_t w = options_.weights;
  if (w == 0)
    return FailedPreconditionError("this IVF-PQ index keeps no item weights (options.weights = 0)");
  if (queries.size() != w * dim_) {
    return InvalidArgumentError("SearchWeighted needs " + std::to_string(w) + " queries of dim " +
                                std::to_string(dim_) + " (" + std::to_string(w * dim_) +
                                " floats), got " + std::to_string(queries.size()));
  }
  if (params.k == 0) return InvalidArgumentError("k must be at least 1");
  for (float v : queries) {
    if (!std::isfinite(v)) return InvalidArgumentError("query holds NaN or Inf");
  }
  out->clear();
  if (terms) terms->clear();
  std::shared_lock lock(mu_);
  if (!trained_ || where_.empty()) return Status::Ok();
  const bool exact = ExactWeighted(params);
  const size_t nlist = options_.nlist, m = pq_.m(), ksub = pq_.ksub(), mk = m * ksub;
  const size_t nprobe = std::min(nlist, params.nprobe ? params.nprobe : options_.nprobe);
  // Per query: its dot with every centroid, and its table, negated into distance units.
  std::vector<float> dots(w * nlist), tables(w * mk);
  for (size_t k = 0; k < w; ++k) {
    kernels_.inner_product_batch(&queries[k * dim_], centroids_.data(), nlist, dim_,
                                 &dots[k * nlist]);
    pq_.IpTable(&queries[k * dim_], &tables[k * mk]);
    for (size_t i = 0; i < mk; ++i) tables[k * mk + i] = -tables[k * mk + i];
  }
  std::vector<std::pair<float, uint32_t>> order;  // (-estimate, list) of the non-empty lists
  for (size_t l = 0; l < nlist; ++l) {
    const List& list = lists_[l];
    if (list.ids.empty()) continue;
    double est = 0;
    for (size_t k = 0; k < w; ++k) est += list.weight_sums[k] * dots[k * nlist + l];
    order.emplace_back(float(-est / double(list.ids.size())), uint32_t(l));
  }
  const size_t probes = std::min(nprobe, order.size());
  std::partial_sort(order.begin(), order.begin() + probes, order.end());

  TopPool<Candidate> pool;
  pool.Reset(exact ? params.k * RefineFactor(params) : params.k);
  auto push = [&](const List& list, uint32_t l, size_t pos, float d) {
    if (d >= pool.threshold()) return;
    if (params.filter && !params.filter->Contains(list.ids[pos])) return;
    pool.Push(Candidate{d, l, uint32_t(pos)});
  };
  if (pq_.nbits() == 8) {
    const size_t cs = pq_.code_size();
    for (size_t p = 0; p < probes; ++p) {
      const uint32_t l = order[p].second;
      const List& list = lists_[l];
      for (size_t i = 0; i < list.ids.size(); ++i) {
        const uint8_t* code = &list.codes[i * cs];
        const float* wi = &list.weights[i * w];
        float d = 0;
        for (size_t k = 0; k < w; ++k) {
          const float* t = &tables[k * mk];
          float dk = -dots[k * nlist + l];
          for (size_t j = 0; j < m; ++j) dk += t[j * ksub + code[j]];
          d += wi[k] * dk;
        }
        push(list, l, i, d);
      }
    }
  } else {
    // 4-bit: each query's table quantised once (inner-product tables do not depend on the
    // list); per block of 32 codes, one fast-scan pass per query, combined per lane with the
    // item's own weights in float.
    const size_t pairs = simd::FastScanPairs(m), block_bytes = simd::FastScanBlockBytes(m);
    std::vector<uint8_t> lut8(w * block_bytes, 0);
    std::vector<float> offset(w), inv(w), sum(m * 16), mins(m);
    const float limit = float(std::min<size_t>(255, 65535 / m));
    for (size_t k = 0; k < w; ++k) {
      const float range =
          kernels_.lut16_sum_minmax(&tables[k * mk], nullptr, m, sum.data(), mins.data());
      const float scale = range > 0 ? limit / range : 0.0f;
      inv[k] = scale > 0 ? 1.0f / scale : 0.0f;
      offset[k] = 0;
      for (size_t j = 0; j < m; ++j) offset[k] += mins[j];
      kernels_.lut16_quantize(sum.data(), mins.data(), m, scale, &lut8[k * block_bytes]);
    }
    std::vector<uint16_t> sums_storage(w * 32 + 32);
    void* aligned = sums_storage.data();
    size_t space = sums_storage.size() * sizeof(uint16_t);
    uint16_t* sums =
        static_cast<uint16_t*>(std::align(64, w * 32 * sizeof(uint16_t), aligned, space));
    std::vector<float> bias(w);
    for (size_t p = 0; p < probes; ++p) {
      const uint32_t l = order[p].second;
      const List& list = lists_[l];
      const size_t n = list.ids.size();
      for (size_t k = 0; k < w; ++k) bias[k] = offset[k] - dots[k * nlist + l];
      for (size_t b = 0; b * 32 < n; ++b) {
        const uint8_t* codes = &list.codes[b * block_bytes];
        if ((b + 2) * 32 < n) PrefetchBytes(&list.codes[(b + 2) * block_bytes], block_bytes);
        for (size_t k = 0; k < w; ++k) {
          kernels_.fastscan_block32(codes, &lut8[k * block_bytes], pairs, 65535, sums + k * 32);
        }
        const size_t lanes = std::min<size_t>(32, n - b * 32);
        const float* wb = &list.weights[b * 32 * w];
        for (size_t v = 0; v < lanes; ++v) {
          float d = 0;
          for (size_t k = 0; k < w; ++k)
            d += wb[v * w + k] * (bias[k] + float(sums[k * 32 + v]) * inv[k]);
          push(list, l, b * 32 + v, d);
        }
      }
    }
  }
  std::vector<Candidate>& candidates = pool.Finish();
  std::vector<uint32_t> best_term(exact ? candidates.size() : 0);
  if (exact) {
    // The rows are scattered: load a few ahead of the one being scored.
    constexpr size_t kAhead = 4;
    auto row = [&](const Candidate& c) {
      return reinterpret_cast<const float*>(lists_[c.list].rows.data() +
                                            size_t(c.pos) * refine_row_bytes_);
    };
    for (size_t i = 0; i < std::min(kAhead, candidates.size()); ++i)
      PrefetchBytes(row(candidates[i]), refine_row_bytes_);
    for (size_t i = 0; i < candidates.size(); ++i) {
      if (i + kAhead < candidates.size())
        PrefetchBytes(row(candidates[i + kAhead]), refine_row_bytes_);
      Candidate& c = candidates[i];
      const float* x = row(c);
      const float* wi = &lists_[c.list].weights[size_t(c.pos) * w];
      double s = 0;
      float top = -std::numeric_limits<float>::infinity();
      for (size_t k = 0; k < w; ++k) {
        if (wi[k] == 0) continue;
        const float term = wi[k] * kernels_.inner_product(&queries[k * dim_], x, dim_);
        s += term;
        if (term > top) top = term, best_term[i] = uint32_t(k);
      }
      c.distance = float(-s);
    }
  }
  std::vector<uint32_t> order_of(candidates.size());
  for (size_t i = 0; i < order_of.size(); ++i) order_of[i] = uint32_t(i);
  std::sort(order_of.begin(), order_of.end(), [&](uint32_t a, uint32_t b) {
    const Candidate& x = candidates[a];
    const Candidate& y = candidates[b];
    if (x.distance != y.distance) return x.distance < y.distance;
    return lists_[x.list].ids[x.pos] < lists_[y.list].ids[y.pos];
  });
  const size_t n = std::min(params.k, order_of.size());
  for (size_t i = 0; i < n; ++i) {
    const Candidate& c = candidates[order_of[i]];
    out->push_back({lists_[c.list].ids[c.pos], c.distance});
    if (terms && exact) terms->push_back(best_term[order_of[i]]);
  }
  return Status::Ok();
}

}  // namespace quiver::index
