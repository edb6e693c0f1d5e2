#include "index/flat/flat_index.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <mutex>

#include "base/coding.h"

namespace quiver::index {
namespace {

bool Worse(const Neighbor& a, const Neighbor& b) {
  return a.distance < b.distance || (a.distance == b.distance && a.id < b.id);
}

constexpr uint32_t kSectionMeta = 1;
constexpr uint32_t kSectionIds = 2;
constexpr uint32_t kSectionVectors = 3;
constexpr size_t kScanBlock = 1024;  // rows per kernel call: the distances stay in L1

}  // namespace

void TopK::Push(uint64_t id, float distance) {
  Neighbor n{id, distance};
  if (heap_.size() < k_) {
    heap_.push_back(n);
    std::push_heap(heap_.begin(), heap_.end(), Worse);
  } else if (Worse(n, heap_.front())) {
    std::pop_heap(heap_.begin(), heap_.end(), Worse);
    heap_.back() = n;
    std::push_heap(heap_.begin(), heap_.end(), Worse);
  }
}

void TopK::Extract(std::vector<Neighbor>* out) {
  std::sort_heap(heap_.begin(), heap_.end(), Worse);
  out->assign(heap_.begin(), heap_.end());
  heap_.clear();
}

FlatIndex::FlatIndex(size_t dim, Metric metric)
    : dim_(dim), metric_(metric), kernels_(simd::GetKernels()) {}

size_t FlatIndex::size() const {
  std::shared_lock lock(mu_);
  return ids_.size();
}

size_t FlatIndex::memory_bytes() const {
  std::shared_lock lock(mu_);
  return vectors_.size() + ids_.capacity() * sizeof(uint64_t) +
         row_of_.size() * (sizeof(uint64_t) + sizeof(size_t) + 16);
}

bool FlatIndex::Contains(uint64_t id) const {
  std::shared_lock lock(mu_);
  return row_of_.count(id) != 0;
}

Status FlatIndex::GetVector(uint64_t id, float* out) const {
  std::shared_lock lock(mu_);
  auto it = row_of_.find(id);
  if (it == row_of_.end())
    return NotFoundError("id " + std::to_string(id) + " is not in the index");
  std::memcpy(out, Row(it->second), dim_ * sizeof(float));
  return Status::Ok();
}

Status FlatIndex::Add(std::span<const uint64_t> ids, std::span<const float> vectors) {
  QV_RETURN_IF_ERROR(ValidateAdd(ids, vectors));
  std::unique_lock lock(mu_);
  ReserveRowsLocked(ids_.size() + ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    auto [it, inserted] = row_of_.try_emplace(ids[i], ids_.size());
    if (inserted) ids_.push_back(ids[i]);
    float* row = Row(it->second);
    std::copy_n(vectors.data() + i * dim_, dim_, row);
    if (metric_ == Metric::kCosine) kernels_.normalize(row, dim_);
  }
  return Status::Ok();
}

Status FlatIndex::Remove(std::span<const uint64_t> ids) {
  std::unique_lock lock(mu_);
  for (uint64_t id : ids) {
    if (!row_of_.count(id))
      return NotFoundError("id " + std::to_string(id) + " is not in the index");
  }
  for (uint64_t id : ids) {
    auto it = row_of_.find(id);
    if (it == row_of_.end()) continue;  // listed twice
    size_t row = it->second, last = ids_.size() - 1;
    if (row != last) {
      std::copy_n(Row(last), dim_, Row(row));
      ids_[row] = ids_[last];
      row_of_[ids_[row]] = row;
    }
    ids_.pop_back();
    row_of_.erase(it);
  }
  return Status::Ok();
}

void FlatIndex::ReserveRowsLocked(size_t rows) {
  if (rows <= row_capacity_) return;
  row_capacity_ = std::max({rows, row_capacity_ * 2, size_t{1024}});
  vectors_.Resize(row_capacity_ * dim_ * sizeof(float));
}

void FlatIndex::DistancesLocked(const float* q, size_t begin, size_t end, float* out) const {
  const float* base = Row(begin);
  if (metric_ == Metric::kL2) {
    kernels_.l2sqr_batch(q, base, end - begin, dim_, out);
    return;
  }
  kernels_.inner_product_batch(q, base, end - begin, dim_, out);
  const float offset = metric_ == Metric::kCosine ? 1.0f : 0.0f;
  for (size_t i = 0; i < end - begin; ++i) out[i] = offset - out[i];
}

Status FlatIndex::Search(std::span<const float> query, const SearchParams& params,
                         std::vector<Neighbor>* out, SearchStats* stats) const {
  QV_RETURN_IF_ERROR(ValidateQuery(query, params));
  std::vector<float> normalized;
  const float* q = query.data();
  if (metric_ == Metric::kCosine) {
    normalized.assign(query.begin(), query.end());
    if (kernels_.normalize(normalized.data(), dim_) == 0) {
      return InvalidArgumentError("query is a zero vector; cosine needs a direction");
    }
    q = normalized.data();
  }
  std::shared_lock lock(mu_);
  const size_t n = ids_.size();
  if (n == 0) {
    out->clear();
    return Status::Ok();
  }
  TopK top(std::min(params.k, n));
  float dist[kScanBlock];
  for (size_t begin = 0; begin < n; begin += kScanBlock) {
    size_t end = std::min(n, begin + kScanBlock);
    DistancesLocked(q, begin, end, dist);
    for (size_t r = begin; r < end; ++r) {
      float dd = dist[r - begin];
      if (dd > top.threshold()) continue;
      if (params.filter && !params.filter->Contains(ids_[r])) continue;
      top.Push(ids_[r], dd);
    }
  }
  if (stats) stats->distances += n;
  top.Extract(out);
  return Status::Ok();
}

Status FlatIndex::Save(const std::string& path) const {
  IndexFileWriter w(path, IndexType::kFlat);
  // The sections are copied under the lock; the file is written and synced after it (writes
  // need not wait for the disk).
  std::shared_lock lock(mu_);
  std::string meta;
  PutFixed<uint64_t>(&meta, dim_);
  PutFixed<uint8_t>(&meta, static_cast<uint8_t>(metric_));
  PutFixed<uint64_t>(&meta, ids_.size());
  w.AddSection(kSectionMeta, std::move(meta));
  std::string ids;
  PutArray(&ids, ids_.data(), ids_.size());
  w.AddSection(kSectionIds, std::move(ids));
  std::string vecs;
  PutArray(&vecs, Row(0), ids_.size() * dim_);
  w.AddSection(kSectionVectors, std::move(vecs));
  lock.unlock();
  return w.Finish();
}

Result<std::unique_ptr<FlatIndex>> FlatIndex::Load(const IndexFileReader& file) {
  QV_ASSIGN_OR_RETURN(std::string_view meta, file.Section(kSectionMeta));
  uint64_t dim, n;
  uint8_t metric;
  if (!GetFixed(&meta, &dim) || !GetFixed(&meta, &metric) || !GetFixed(&meta, &n) ||
      !meta.empty()) {
    return DataLossError("flat index: malformed metadata");
  }
  if (dim == 0 || dim > (1u << 20) || metric > 2)
    return DataLossError("flat index: bad dim or metric");
  QV_ASSIGN_OR_RETURN(std::string_view ids, file.Section(kSectionIds));
  QV_ASSIGN_OR_RETURN(std::string_view vecs, file.Section(kSectionVectors));
  if (ids.size() != n * 8 || vecs.size() / 4 / dim != n || vecs.size() != n * dim * 4) {
    return DataLossError("flat index: section sizes do not match the item count");
  }
  auto index = std::make_unique<FlatIndex>(dim, static_cast<Metric>(metric));
  index->ids_.resize(n);
  index->ReserveRowsLocked(n);
  GetArray(&ids, index->ids_.data(), n);
  GetArray(&vecs, index->Row(0), n * dim);
  index->row_of_.reserve(n);
  for (size_t r = 0; r < n; ++r) {
    if (!index->row_of_.emplace(index->ids_[r], r).second) {
      return DataLossError("flat index: id " + std::to_string(index->ids_[r]) + " stored twice");
    }
  }
  return index;
}

}  // namespace quiver::index
