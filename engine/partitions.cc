#include "engine/partitions.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "base/coding.h"
#include "base/crc32c.h"
#include "engine/schema.h"
#include "index/index_factory.h"
#include "index/io/index_file.h"

namespace quiver::engine {

namespace {

namespace fs = std::filesystem;

constexpr char kMapMagic[8] = {'Q', 'V', 'C', 'L', 'U', 'S', 'T', '1'};

std::string ClusterFile(const std::string& dir, size_t k) {
  return dir + "/cluster-" + std::to_string(k) + ".qvi";
}
std::string TopicFile(const std::string& dir, size_t k) {
  return dir + "/topic-" + std::to_string(k) + ".qvi";
}

// A sub-index of `dim` under `metric`: flat for flat collections, else HNSW with the
// collection's HNSW parameters (the defaults for IVF-PQ collections).
Result<std::unique_ptr<index::VectorIndex>> MakeSubIndex(const CollectionSchema& s, uint32_t dim,
                                                         Metric metric) {
  IndexSpec spec;  // HNSW with the default parameters
  if (s.index.type != IndexSpec::Type::kIvfPq) spec = s.index;
  return index::CreateIndex(spec, dim, metric);
}

Result<std::unique_ptr<index::VectorIndex>> MakeClusterIndex(const CollectionSchema& s) {
  return MakeSubIndex(s, s.dim, s.metric);
}

// Adds the items to idx; an IVF-PQ index that keeps item weights gets their topic weights.
Status AddTo(index::VectorIndex& idx, std::span<const ItemRecord* const> items) {
  if (items.empty()) return Status::Ok();
  std::vector<uint64_t> ids;
  std::vector<float> vectors, weights;
  ids.reserve(items.size());
  vectors.reserve(items.size() * idx.dim());
  index::WeightedIndex* weighted = idx.weighted();
  for (const ItemRecord* item : items) {
    ids.push_back(item->id);
    vectors.insert(vectors.end(), item->vector.begin(), item->vector.end());
    if (weighted)
      weights.insert(weights.end(), item->topic_weights.begin(), item->topic_weights.end());
  }
  return weighted ? weighted->AddWeighted(ids, vectors, weights) : idx.Add(ids, vectors);
}

}  // namespace

Result<std::unique_ptr<Partitions>> Partitions::Create(const CollectionSchema& schema) {
  std::unique_ptr<Partitions> p(new Partitions(schema));
  QV_ASSIGN_OR_RETURN(p->global_, MakeIndex(schema));
  for (uint32_t k = 0; k < schema.clusters; ++k) {
    QV_ASSIGN_OR_RETURN(auto idx, MakeClusterIndex(schema));
    p->clusters_.push_back(std::move(idx));
  }
  for (uint32_t k = 0; k < schema.topics; ++k) {
    QV_ASSIGN_OR_RETURN(auto idx, MakeSubIndex(schema, schema.dim, Metric::kInnerProduct));
    p->topics_.push_back(std::move(idx));
  }
  if (schema.topic_concat) {
    QV_ASSIGN_OR_RETURN(p->concat_,
                        MakeSubIndex(schema, schema.dim * schema.topics, Metric::kInnerProduct));
  }
  p->sums_.assign(size_t(schema.clusters) * schema.dim, 0.0);
  p->counts_.assign(schema.clusters, 0);
  return p;
}

Status Partitions::AddToTopics(std::span<const ItemRecord> items,
                               const std::unordered_map<uint64_t, std::vector<float>>& old) {
  const size_t kt = topics_.size(), dim = schema_.dim;
  const float threshold = schema_.topic_threshold;
  std::vector<std::vector<uint64_t>> ids(kt), leave(kt);
  std::vector<std::vector<float>> vecs(kt);
  std::vector<uint64_t> concat_ids;
  std::vector<float> concat_vecs;
  std::vector<float> t(dim);
  for (const ItemRecord& item : items) {
    // The index's copy of t (normalised under cosine).
    QV_RETURN_IF_ERROR(global_->GetVector(item.id, t.data()));
    auto was = old.find(item.id);
    for (size_t k = 0; k < kt; ++k) {
      const float a = item.topic_weights[k];
      if (a >= threshold) {
        ids[k].push_back(item.id);
        for (float x : t) vecs[k].push_back(a * x);
      } else if (was != old.end() && was->second[k] >= threshold) {
        leave[k].push_back(item.id);
      }
      if (concat_) {
        for (float x : t) concat_vecs.push_back(a * x);
      }
    }
    if (concat_) concat_ids.push_back(item.id);
  }
  for (size_t k = 0; k < kt; ++k) {
    if (!leave[k].empty()) QV_RETURN_IF_ERROR(topics_[k]->Remove(leave[k]));
    if (!ids[k].empty()) QV_RETURN_IF_ERROR(topics_[k]->Add(ids[k], vecs[k]));
  }
  if (concat_ && !concat_ids.empty()) QV_RETURN_IF_ERROR(concat_->Add(concat_ids, concat_vecs));
  return Status::Ok();
}

void Partitions::TopicWeightsFor(std::span<const uint64_t> ids, float* out, uint8_t* found) const {
  const size_t kt = topics_.size();
  std::shared_lock lock(mu_);
  for (size_t i = 0; i < ids.size(); ++i) {
    auto it = attrs_.find(ids[i]);
    found[i] = it != attrs_.end();
    if (found[i])
      std::copy(it->second.topic_weights.begin(), it->second.topic_weights.end(), out + i * kt);
  }
}

void Partitions::Account(uint32_t cluster, std::span<const float> v, double sign) {
  double* sum = &sums_[size_t(cluster) * schema_.dim];
  for (size_t t = 0; t < v.size(); ++t) sum[t] += sign * double(v[t]);
  counts_[cluster] += sign > 0 ? 1 : uint64_t(-1);
}

Status Partitions::Add(std::span<const ItemRecord> items) {
  if (items.empty()) return Status::Ok();
  if (!clusters_.empty()) {
    // Take replaced items out of their clusters first (their old vectors come from the index).
    std::vector<float> old(schema_.dim);
    std::map<uint32_t, std::vector<uint64_t>> leave;
    std::unique_lock lock(mu_);
    for (const ItemRecord& item : items) {
      auto it = cluster_of_.find(item.id);
      if (it == cluster_of_.end()) continue;
      QV_RETURN_IF_ERROR(global_->GetVector(item.id, old.data()));
      Account(it->second, old, -1);
      if (it->second != item.cluster) leave[it->second].push_back(item.id);
    }
    for (auto& [k, ids] : leave) QV_RETURN_IF_ERROR(clusters_[k]->Remove(ids));
  }
  std::vector<const ItemRecord*> all;
  all.reserve(items.size());
  for (const ItemRecord& item : items) all.push_back(&item);
  QV_RETURN_IF_ERROR(AddTo(*global_, all));
  std::unordered_map<uint64_t, std::vector<float>> old_weights;  // of replaced items
  {
    std::unique_lock lock(mu_);
    for (const ItemRecord& item : items) {
      auto it = attrs_.find(item.id);
      if (it != attrs_.end()) {
        if (!topics_.empty()) old_weights[item.id] = std::move(it->second.topic_weights);
        by_time_.erase({it->second.timestamp, item.id});
        it->second = AttrsOf(item);
      } else {
        attrs_.emplace(item.id, AttrsOf(item));
      }
      by_time_.emplace(item.timestamp, item.id);
    }
  }
  if (!topics_.empty()) QV_RETURN_IF_ERROR(AddToTopics(items, old_weights));
  if (clusters_.empty()) return Status::Ok();
  std::map<uint32_t, std::vector<const ItemRecord*>> by_cluster;
  for (const ItemRecord& item : items) by_cluster[item.cluster].push_back(&item);
  for (auto& [k, members] : by_cluster) QV_RETURN_IF_ERROR(AddTo(*clusters_[k], members));
  std::unique_lock lock(mu_);
  std::vector<float> stored(schema_.dim);
  for (const ItemRecord& item : items) {
    cluster_of_[item.id] = item.cluster;
    // The index's copy (normalised under cosine), so that removal later subtracts the same.
    QV_RETURN_IF_ERROR(global_->GetVector(item.id, stored.data()));
    Account(item.cluster, stored, +1);
  }
  return Status::Ok();
}

Status Partitions::Remove(std::span<const uint64_t> ids) {
  std::vector<uint64_t> present;
  for (uint64_t id : ids) {
    if (global_->Contains(id)) present.push_back(id);
  }
  if (present.empty()) return Status::Ok();
  std::vector<index::VectorIndex*> topic_indexes;  // an item may be absent from some of them
  for (auto& t : topics_) topic_indexes.push_back(t.get());
  if (concat_) topic_indexes.push_back(concat_.get());
  for (index::VectorIndex* idx : topic_indexes) {
    std::vector<uint64_t> in;
    for (uint64_t id : present) {
      if (idx->Contains(id)) in.push_back(id);
    }
    if (!in.empty()) QV_RETURN_IF_ERROR(idx->Remove(in));
  }
  {
    std::unique_lock lock(mu_);
    for (uint64_t id : present) {
      auto it = attrs_.find(id);
      if (it == attrs_.end()) continue;
      by_time_.erase({it->second.timestamp, id});
      attrs_.erase(it);
    }
  }
  if (!clusters_.empty()) {
    std::vector<float> old(schema_.dim);
    std::map<uint32_t, std::vector<uint64_t>> leave;
    std::unique_lock lock(mu_);
    for (uint64_t id : present) {
      auto it = cluster_of_.find(id);
      if (it == cluster_of_.end()) continue;
      QV_RETURN_IF_ERROR(global_->GetVector(id, old.data()));
      Account(it->second, old, -1);
      leave[it->second].push_back(id);
      cluster_of_.erase(it);
    }
    for (auto& [k, members] : leave) QV_RETURN_IF_ERROR(clusters_[k]->Remove(members));
  }
  return global_->Remove(present);
}

size_t Partitions::memory_bytes() const {
  size_t n = global_->memory_bytes();
  for (const auto& c : clusters_) n += c->memory_bytes();
  for (const auto& t : topics_) n += t->memory_bytes();
  if (concat_) n += concat_->memory_bytes();
  std::shared_lock lock(mu_);
  return n + cluster_of_.size() * 24 + sums_.size() * sizeof(double);
}

bool Partitions::trained() const { return global_->trained(); }

int64_t Partitions::ClusterOf(uint64_t id) const {
  std::shared_lock lock(mu_);
  auto it = cluster_of_.find(id);
  return it == cluster_of_.end() ? -1 : int64_t(it->second);
}

std::vector<uint64_t> Partitions::ClusterSizes() const {
  std::shared_lock lock(mu_);
  return counts_;
}

std::vector<float> Partitions::Centroids() const {
  std::shared_lock lock(mu_);
  std::vector<float> out(sums_.size(), 0.0f);
  for (size_t k = 0; k < counts_.size(); ++k) {
    if (counts_[k] == 0) continue;
    for (size_t t = 0; t < schema_.dim; ++t) {
      out[k * schema_.dim + t] = float(sums_[k * schema_.dim + t] / double(counts_[k]));
    }
  }
  return out;
}

bool Partitions::Allows(const Filter& f, uint64_t id) const {
  std::shared_lock lock(mu_);
  auto it = attrs_.find(id);
  return it != attrs_.end() && Matches(f, id, it->second);
}

uint64_t Partitions::CountMatching(const Filter& f) const {
  std::shared_lock lock(mu_);
  uint64_t n = 0;
  for (const auto& [id, a] : attrs_) n += Matches(f, id, a);
  return n;
}

std::optional<std::vector<uint64_t>> Partitions::FewMatching(const Filter& f, int64_t cluster,
                                                             size_t limit) const {
  std::vector<uint64_t> out;
  auto take = [&](uint64_t id, const ItemAttrs& a) {
    if ((cluster < 0 || int64_t(a.cluster) == cluster) && Matches(f, id, a)) out.push_back(id);
    return out.size() <= limit;
  };
  std::shared_lock lock(mu_);
  int64_t lo, hi;
  if (TimeBounds(f, &lo, &hi)) {
    // In time order from the bound: cheap for a young pool, and given up on (the caller
    // searches with the filter instead) once it stops being cheap.
    size_t steps = 0;
    for (auto it = by_time_.lower_bound({lo, 0}); it != by_time_.end() && it->first <= hi; ++it) {
      if (++steps > 16 * limit || !take(it->second, attrs_.at(it->second))) return std::nullopt;
    }
    return out;
  }
  // A sample first (hash order is unrelated to the attributes), then an exact count.
  const double scope = double(cluster < 0 ? global_->size() : clusters_[size_t(cluster)]->size());
  size_t seen = 0, match = 0;
  for (const auto& [id, a] : attrs_) {
    match += Matches(f, id, a);
    if (++seen == 1024) break;
  }
  if (seen > 0 && double(match) / double(seen) * scope >= double(limit)) return std::nullopt;
  for (const auto& [id, a] : attrs_) {
    if (!take(id, a)) return std::nullopt;
  }
  return out;
}

bool Partitions::NeedsCompaction() const {
  auto heavy = [](const index::VectorIndex& idx) { return idx.slots() > 2 * idx.size() + 1024; };
  if (heavy(*global_) || (concat_ && heavy(*concat_))) return true;
  for (const auto& c : clusters_) {
    if (heavy(*c)) return true;
  }
  for (const auto& t : topics_) {
    if (heavy(*t)) return true;
  }
  return false;
}

void Partitions::TimestampsFor(std::span<const uint64_t> ids, int64_t* out) const {
  std::shared_lock lock(mu_);
  for (size_t i = 0; i < ids.size(); ++i) {
    auto it = attrs_.find(ids[i]);
    out[i] = it == attrs_.end() ? 0 : it->second.timestamp;
  }
}

bool Partitions::AttrsFor(uint64_t id, ItemAttrs* out) const {
  std::shared_lock lock(mu_);
  auto it = attrs_.find(id);
  if (it == attrs_.end()) return false;
  *out = it->second;
  return true;
}

namespace {

// Version 2 added the topic weights; version 1 files are still read.
constexpr char kAttrMagic[8] = {'Q', 'V', 'A', 'T', 'T', 'R', 'S', '2'};
constexpr char kAttrMagicV1[8] = {'Q', 'V', 'A', 'T', 'T', 'R', 'S', '1'};

std::string EncodeAttrs(const std::unordered_map<uint64_t, ItemAttrs>& attrs) {
  std::string body;
  PutFixed<uint64_t>(&body, attrs.size());
  for (const auto& [id, a] : attrs) {
    PutFixed<uint64_t>(&body, id);
    PutFixed<uint8_t>(&body, a.has_category);
    PutFixed<int64_t>(&body, a.category);
    PutFixed<int64_t>(&body, a.timestamp);
    PutFixed<uint32_t>(&body, a.cluster);
    PutFixed<uint32_t>(&body, uint32_t(a.tags.size()));
    PutArray(&body, a.tags.data(), a.tags.size());
    PutFixed<uint32_t>(&body, uint32_t(a.topic_weights.size()));
    PutArray(&body, a.topic_weights.data(), a.topic_weights.size());
  }
  std::string file(kAttrMagic, sizeof(kAttrMagic));
  PutFixed<uint32_t>(&file, crc32c::Value(body));
  return file + body;
}

Status DecodeAttrs(std::string_view v, std::unordered_map<uint64_t, ItemAttrs>* attrs) {
  uint32_t crc;
  if (v.size() < 12) return DataLossError("not an attribute map");
  const bool v1 = v.substr(0, 8) == std::string_view(kAttrMagicV1, 8);
  if (!v1 && v.substr(0, 8) != std::string_view(kAttrMagic, 8))
    return DataLossError("not an attribute map");
  v.remove_prefix(8);
  GetFixed(&v, &crc);
  if (crc32c::Value(v) != crc) return DataLossError("attribute map fails its checksum");
  uint64_t n;
  if (!GetFixed(&v, &n) || n > v.size() / 33) return DataLossError("corrupt attribute map");
  attrs->reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t id;
    uint8_t has;
    uint32_t ntags;
    ItemAttrs a;
    if (!GetFixed(&v, &id) || !GetFixed(&v, &has) || !GetFixed(&v, &a.category) ||
        !GetFixed(&v, &a.timestamp) || !GetFixed(&v, &a.cluster) || !GetFixed(&v, &ntags) ||
        has > 1 || ntags > v.size() / 8) {
      return DataLossError("corrupt attribute map");
    }
    a.has_category = has != 0;
    a.tags.resize(ntags);
    GetArray(&v, a.tags.data(), ntags);
    uint32_t nweights = 0;
    if (!v1 && (!GetFixed(&v, &nweights) || nweights > v.size() / 4))
      return DataLossError("corrupt attribute map");
    a.topic_weights.resize(nweights);
    GetArray(&v, a.topic_weights.data(), nweights);
    (*attrs)[id] = std::move(a);
  }
  if (!v.empty()) return DataLossError("corrupt attribute map");
  return Status::Ok();
}

}  // namespace

Status Partitions::Save(const std::string& dir) const {
  QV_RETURN_IF_ERROR(global_->Save(dir + "/global.qvi"));
  {
    std::string attrs;
    {
      std::shared_lock lock(mu_);
      attrs = EncodeAttrs(attrs_);
    }
    QV_RETURN_IF_ERROR(index::WriteFileAtomically(dir + "/attrs.bin", attrs));
  }
  for (size_t k = 0; k < topics_.size(); ++k)
    QV_RETURN_IF_ERROR(topics_[k]->Save(TopicFile(dir, k)));
  if (concat_) QV_RETURN_IF_ERROR(concat_->Save(dir + "/concat.qvi"));
  if (clusters_.empty()) return Status::Ok();
  for (size_t k = 0; k < clusters_.size(); ++k)
    QV_RETURN_IF_ERROR(clusters_[k]->Save(ClusterFile(dir, k)));
  std::string body;
  {
    std::shared_lock lock(mu_);
    PutFixed<uint64_t>(&body, cluster_of_.size());
    for (const auto& [id, k] : cluster_of_) {
      PutFixed<uint64_t>(&body, id);
      PutFixed<uint32_t>(&body, k);
    }
    PutArray(&body, sums_.data(), sums_.size());
    PutArray(&body, counts_.data(), counts_.size());
  }
  std::string file(kMapMagic, sizeof(kMapMagic));
  PutFixed<uint32_t>(&file, crc32c::Value(body));
  file += body;
  return index::WriteFileAtomically(dir + "/clusters.bin", file);
}

Result<std::unique_ptr<Partitions>> Partitions::Load(const CollectionSchema& schema,
                                                     const std::string& dir) {
  std::unique_ptr<Partitions> p(new Partitions(schema));
  QV_ASSIGN_OR_RETURN(p->global_, index::LoadIndex(dir + "/global.qvi"));
  QV_RETURN_IF_ERROR(CheckIndexMatches(schema, *p->global_));
  {
    std::ifstream in(dir + "/attrs.bin", std::ios::binary);
    if (!in) return DataLossError(dir + "/attrs.bin is missing");
    std::stringstream ss;
    ss << in.rdbuf();
    Status s = DecodeAttrs(ss.str(), &p->attrs_);
    if (!s.ok()) return DataLossError(dir + "/attrs.bin: " + std::string(s.message()));
    if (p->attrs_.size() != p->global_->size())
      return DataLossError(dir + "/attrs.bin does not match the index");
  }
  for (uint32_t k = 0; k < schema.topics; ++k) {
    QV_ASSIGN_OR_RETURN(auto idx, index::LoadIndex(TopicFile(dir, k)));
    if (idx->dim() != schema.dim)
      return DataLossError("topic snapshot " + std::to_string(k) + " has the wrong dim");
    p->topics_.push_back(std::move(idx));
  }
  if (schema.topic_concat) {
    QV_ASSIGN_OR_RETURN(p->concat_, index::LoadIndex(dir + "/concat.qvi"));
    if (p->concat_->dim() != size_t(schema.dim) * schema.topics ||
        p->concat_->size() != p->global_->size()) {
      return DataLossError(dir + "/concat.qvi does not match the collection");
    }
  }
  for (const auto& [id, a] : p->attrs_) {
    if (a.topic_weights.size() != schema.topics)
      return DataLossError(dir + "/attrs.bin lacks topic weights");
    p->by_time_.emplace(a.timestamp, id);
  }
  p->sums_.assign(size_t(schema.clusters) * schema.dim, 0.0);
  p->counts_.assign(schema.clusters, 0);
  if (schema.clusters == 0) return p;
  for (uint32_t k = 0; k < schema.clusters; ++k) {
    QV_ASSIGN_OR_RETURN(auto idx, index::LoadIndex(ClusterFile(dir, k)));
    if (idx->dim() != schema.dim)
      return DataLossError("cluster snapshot " + std::to_string(k) + " has the wrong dim");
    p->clusters_.push_back(std::move(idx));
  }
  std::ifstream in(dir + "/clusters.bin", std::ios::binary);
  if (!in) return DataLossError(dir + "/clusters.bin is missing");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string file = ss.str();
  std::string_view v(file);
  uint32_t crc;
  if (v.size() < sizeof(kMapMagic) + 4 ||
      v.substr(0, sizeof(kMapMagic)) != std::string_view(kMapMagic, 8)) {
    return DataLossError(dir + "/clusters.bin is not a cluster map");
  }
  v.remove_prefix(sizeof(kMapMagic));
  GetFixed(&v, &crc);
  if (crc32c::Value(v) != crc) return DataLossError(dir + "/clusters.bin fails its checksum");
  uint64_t n;
  if (!GetFixed(&v, &n) || n > v.size() / 12) return DataLossError("corrupt cluster map");
  p->cluster_of_.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t id = 0;
    uint32_t k = 0;
    GetFixed(&v, &id);  // n <= size / 12 was checked: both reads succeed
    GetFixed(&v, &k);
    if (k >= schema.clusters)
      return DataLossError("cluster map names cluster " + std::to_string(k));
    p->cluster_of_[id] = k;
  }
  if (!GetArray(&v, p->sums_.data(), p->sums_.size()) ||
      !GetArray(&v, p->counts_.data(), p->counts_.size()) || !v.empty()) {
    return DataLossError("corrupt cluster map");
  }
  if (p->cluster_of_.size() != p->global_->size()) {
    return DataLossError("cluster map holds " + std::to_string(p->cluster_of_.size()) +
                         " items; the index " + std::to_string(p->global_->size()));
  }
  return p;
}

}  // namespace quiver::engine
