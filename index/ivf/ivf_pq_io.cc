// IvfPqIndex file sections (docs/file-formats.md). Every count and size is checked against
// the options before anything is allocated; a file that lies is kDataLoss.
#include <cmath>

#include "base/coding.h"
#include "index/ivf/ivf_pq_index.h"
#include "index/simd/fastscan.h"

namespace quiver::index {
namespace {
constexpr uint32_t kSectionMeta = 1;
constexpr uint32_t kSectionCentroids = 2;
constexpr uint32_t kSectionPq = 3;
constexpr uint32_t kSectionLists = 4;
constexpr uint32_t kSectionWeights = 5;  // only with options.weights > 0
constexpr uint32_t kSectionLift = 6;     // only for inner product with lifted lists
}  // namespace

class IvfPqSerializer {
 public:
  static Status Save(const IvfPqIndex& x, const std::string& path);
  static Result<std::unique_ptr<IvfPqIndex>> Load(const IndexFileReader& file);
};

Status IvfPqIndex::Save(const std::string& path) const {
  return IvfPqSerializer::Save(*this, path);
}

Result<std::unique_ptr<IvfPqIndex>> IvfPqIndex::Load(const IndexFileReader& file) {
  return IvfPqSerializer::Load(file);
}

Status IvfPqSerializer::Save(const IvfPqIndex& x, const std::string& path) {
  std::shared_lock lock(x.mu_);
  IndexFileWriter w(path, IndexType::kIvfPq);
  const IvfPqOptions& o = x.options_;
  std::string meta;
  PutFixed<uint64_t>(&meta, x.dim_);
  PutFixed<uint8_t>(&meta, static_cast<uint8_t>(x.metric_));
  PutFixed<uint64_t>(&meta, o.nlist);
  PutFixed<uint64_t>(&meta, o.m);
  PutFixed<uint64_t>(&meta, o.nbits);
  PutFixed<uint64_t>(&meta, o.nprobe);
  PutFixed<uint8_t>(&meta, static_cast<uint8_t>(o.refine_store));
  PutFixed<uint64_t>(&meta, o.refine);
  PutFixed<uint64_t>(&meta, o.seed);
  PutFixed<uint8_t>(&meta, x.trained_ ? 1 : 0);
  PutFixed<uint8_t>(&meta, x.coarse_given_ ? 1 : 0);
  // The int8 quantiser's kind, plus 2 when each row has its own scale.
  PutFixed<uint8_t>(
      &meta, uint8_t(static_cast<uint8_t>(x.refine_sq_.kind()) + (x.refine_per_row_ ? 2 : 0)));
  PutFixed<float>(&meta, x.refine_sq_.lo());
  PutFixed<float>(&meta, x.refine_sq_.step());
  w.AddSection(kSectionMeta, std::move(meta));
  std::string centroids;
  PutArray(&centroids, x.centroids_.data(), x.centroids_.size());
  w.AddSection(kSectionCentroids, std::move(centroids));
  std::string pq;
  if (x.trained_) x.pq_.AppendTo(&pq);
  w.AddSection(kSectionPq, std::move(pq));
  std::string lists;
  for (const auto& l : x.lists_) {
    PutFixed<uint64_t>(&lists, l.ids.size());
    PutArray(&lists, l.ids.data(), l.ids.size());
    PutArray(&lists, l.codes.data(), l.codes.size());
    PutArray(&lists, l.rows.data(), l.rows.size());
  }
  w.AddSection(kSectionLists, std::move(lists));
  if (!x.lift_e_.empty()) {
    std::string lift;
    PutFixed<float>(&lift, x.lift_m2_);
    PutArray(&lift, x.lift_e_.data(), x.lift_e_.size());
    w.AddSection(kSectionLift, std::move(lift));
  }
  if (o.weights > 0) {
    std::string weights;
    PutFixed<uint64_t>(&weights, o.weights);
    for (const auto& l : x.lists_) PutArray(&weights, l.weights.data(), l.weights.size());
    w.AddSection(kSectionWeights, std::move(weights));
  }
  lock.unlock();  // the sections are copies: the file is written without the lock
  return w.Finish();
}

Result<std::unique_ptr<IvfPqIndex>> IvfPqSerializer::Load(const IndexFileReader& file) {
  auto corrupt = [](const std::string& why) { return DataLossError("ivf_pq index: " + why); };
  QV_ASSIGN_OR_RETURN(std::string_view meta, file.Section(kSectionMeta));
  uint64_t dim, nlist, m, nbits, nprobe, refine, seed;
  uint8_t metric, store, trained, given, sq_kind;
  float sq_lo, sq_step;
  if (!GetFixed(&meta, &dim) || !GetFixed(&meta, &metric) || !GetFixed(&meta, &nlist) ||
      !GetFixed(&meta, &m) || !GetFixed(&meta, &nbits) || !GetFixed(&meta, &nprobe) ||
      !GetFixed(&meta, &store) || !GetFixed(&meta, &refine) || !GetFixed(&meta, &seed) ||
      !GetFixed(&meta, &trained) || !GetFixed(&meta, &given) || !GetFixed(&meta, &sq_kind) ||
      !GetFixed(&meta, &sq_lo) || !GetFixed(&meta, &sq_step) || !meta.empty()) {
    return corrupt("malformed metadata");
  }
  if (metric > 2 || store > 2 || trained > 1 || given > 1 || sq_kind > 3 || !std::isfinite(sq_lo) ||
      !(sq_step > 0) || !std::isfinite(sq_step)) {
    return corrupt("metadata out of range");
  }
  IvfPqOptions o;
  o.nlist = nlist;
  o.m = m;
  o.nbits = nbits;
  o.nprobe = nprobe;
  o.refine_store = static_cast<RefineStore>(store);
  o.refine = refine;
  o.seed = seed;
  auto weights = file.Section(kSectionWeights);  // absent: no item weights
  uint64_t nweights = 0;
  if (weights.ok()) {
    if (!GetFixed(&*weights, &nweights) || nweights == 0 || nweights > 1024)
      return corrupt("weight count");
    o.weights = nweights;
  }
  auto created = IvfPqIndex::Create(dim, static_cast<Metric>(metric), o);
  if (!created.ok()) return corrupt(std::string(created.status().message()));
  std::unique_ptr<IvfPqIndex> x = std::move(created).value();

  QV_ASSIGN_OR_RETURN(std::string_view centroids, file.Section(kSectionCentroids));
  const bool has_centroids = trained || given;
  if (centroids.size() != (has_centroids ? nlist * dim * 4 : 0)) return corrupt("centroid size");
  x->centroids_.resize(has_centroids ? nlist * dim : 0);
  GetArray(&centroids, x->centroids_.data(), x->centroids_.size());
  for (float v : x->centroids_) {
    if (!std::isfinite(v)) return corrupt("non-finite centroid");
  }
  x->coarse_given_ = given != 0;
  if (auto lift = file.Section(kSectionLift); lift.ok()) {  // absent: lists by largest dot
    if (metric != static_cast<uint8_t>(Metric::kInnerProduct) || !trained || given)
      return corrupt("lifted lists on an index that cannot have them");
    x->lift_e_.resize(nlist);
    if (!GetFixed(&*lift, &x->lift_m2_) || !GetArray(&*lift, x->lift_e_.data(), nlist) ||
        !lift->empty()) {
      return corrupt("malformed lifted-list section");
    }
    if (!std::isfinite(x->lift_m2_) || x->lift_m2_ < 0) return corrupt("lifted norm out of range");
    for (float e : x->lift_e_) {
      if (!std::isfinite(e)) return corrupt("non-finite lifted centroid");
    }
  }
  x->UpdateListTermsLocked();
  x->refine_sq_ =
      simd::ScalarQuantizer(static_cast<simd::ScalarQuantizer::Kind>(sq_kind & 1), sq_lo, sq_step);
  x->refine_per_row_ = sq_kind >= 2;
  if (x->refine_per_row_) {
    if (o.refine_store != RefineStore::kInt8) return corrupt("per-row scales without int8 rows");
    x->refine_row_bytes_ = dim + 2 * sizeof(float);
  }
  QV_ASSIGN_OR_RETURN(std::string_view pq, file.Section(kSectionPq));
  if (trained) {
    auto parsed = ProductQuantizer::Parse(&pq);
    if (!parsed.ok()) return corrupt(std::string(parsed.status().message()));
    if (parsed->dim() != dim || parsed->m() != m || parsed->nbits() != nbits || !pq.empty()) {
      return corrupt("product quantiser does not match the options");
    }
    x->pq_ = std::move(parsed).value();
    x->trained_ = true;
    x->BuildPrecomputedLocked();
  } else if (!pq.empty()) {
    return corrupt("untrained index with a product quantiser");
  }

  QV_ASSIGN_OR_RETURN(std::string_view lists, file.Section(kSectionLists));
  const size_t cs = trained ? x->pq_.code_size() : 0;
  const size_t block_bytes = simd::FastScanBlockBytes(m);
  for (uint32_t l = 0; l < nlist; ++l) {
    uint64_t n;
    if (!GetFixed(&lists, &n)) return corrupt("truncated list header");
    if (n > lists.size() / 8 || (n > 0 && !trained)) return corrupt("list size out of range");
    IvfPqIndex::List& list = x->lists_[l];
    list.ids.resize(n);
    if (!GetArray(&lists, list.ids.data(), n)) return corrupt("truncated ids");
    const size_t code_bytes = nbits == 8 ? n * cs : (n + 31) / 32 * block_bytes;
    if (code_bytes > lists.size()) return corrupt("truncated codes");
    list.codes.assign(lists.begin(), lists.begin() + code_bytes);
    lists.remove_prefix(code_bytes);
    const size_t row_bytes = n * x->refine_row_bytes_;
    if (row_bytes > lists.size()) return corrupt("truncated refine rows");
    list.rows.assign(lists.begin(), lists.begin() + row_bytes);
    lists.remove_prefix(row_bytes);
    for (uint32_t pos = 0; pos < n; ++pos) {
      if (!x->where_.emplace(list.ids[pos], std::make_pair(l, pos)).second) {
        return corrupt("id " + std::to_string(list.ids[pos]) + " stored twice");
      }
    }
  }
  if (!lists.empty()) return corrupt("trailing bytes in lists");
  if (nweights > 0) {
    for (IvfPqIndex::List& list : x->lists_) {
      const size_t count = list.ids.size() * nweights;
      if (count > weights->size() / sizeof(float)) return corrupt("truncated item weights");
      list.weights.resize(count);
      GetArray(&*weights, list.weights.data(), count);
      list.weight_sums.assign(nweights, 0.0);
      for (size_t i = 0; i < count; ++i) {
        if (!std::isfinite(list.weights[i])) return corrupt("non-finite item weight");
        list.weight_sums[i % nweights] += list.weights[i];
      }
    }
    if (!weights->empty()) return corrupt("trailing bytes in item weights");
  }
  return x;
}

}  // namespace quiver::index
