// HnswIndex file sections (docs/file-formats.md). Blocks are written as they lie in memory,
// which is little-endian on every platform Quiver builds for (checked below); the reader
// validates every link, level and count before the index is used, so a file that passes its
// checksums but lies about its structure is still kDataLoss, never a crash.
#include <bit>
#include <cmath>
#include <cstring>

#include "base/coding.h"
#include "index/hnsw/hnsw_index.h"

namespace quiver::index {

static_assert(std::endian::native == std::endian::little,
              "HNSW files store blocks in memory order; add byte swapping for big-endian hosts");

namespace {
constexpr uint32_t kSectionMeta = 1;
constexpr uint32_t kSectionLevel0 = 2;
constexpr uint32_t kSectionLevels = 3;
constexpr uint32_t kSectionUpper = 4;
constexpr uint32_t kSectionFloats = 5;
constexpr uint64_t kNoEntry = ~uint64_t{0};
constexpr int kMaxLevel = 31;
}  // namespace

class HnswSerializer {
 public:
  static Status Save(const HnswIndex& index, const std::string& path);
  static Result<std::unique_ptr<HnswIndex>> Load(const IndexFileReader& file);
};

Status HnswIndex::Save(const std::string& path) const { return HnswSerializer::Save(*this, path); }

Result<std::unique_ptr<HnswIndex>> HnswIndex::Load(const IndexFileReader& file) {
  return HnswSerializer::Load(file);
}

Status HnswSerializer::Save(const HnswIndex& x, const std::string& path) {
  // Exclusive: inserts hold the grow lock shared, so the file is one consistent graph. The
  // sections are copies made under the locks; the file is written and synced after they are
  // released, so searches (which take the grow lock shared) wait only for the copy, not for the
  // disk.
  std::unique_lock grow(x.grow_mu_);
  std::unique_lock<std::mutex> labels(x.label_mu_);
  const uint64_t n = x.count_.load();
  IndexFileWriter w(path, IndexType::kHnsw);
  std::string meta;
  PutFixed<uint64_t>(&meta, x.dim_);
  PutFixed<uint8_t>(&meta, static_cast<uint8_t>(x.metric_));
  PutFixed<uint64_t>(&meta, x.options_.m);
  PutFixed<uint64_t>(&meta, x.options_.ef_construction);
  PutFixed<uint64_t>(&meta, x.options_.ef_search);
  PutFixed<uint8_t>(&meta, static_cast<uint8_t>(x.options_.quantization));
  PutFixed<uint64_t>(&meta, x.options_.seed);
  PutFixed<uint64_t>(&meta, n);
  PutFixed<uint64_t>(&meta, x.entry_.load());
  PutFixed<uint64_t>(&meta, x.live_.load());
  PutFixed<uint8_t>(&meta, static_cast<uint8_t>(x.quantizer_.kind()));
  PutFixed<float>(&meta, x.quantizer_.lo());
  PutFixed<float>(&meta, x.quantizer_.step());
  PutFixed<uint8_t>(&meta, x.quantizer_trained_ ? 1 : 0);
  w.AddSection(kSectionMeta, std::move(meta));
  w.AddSection(kSectionLevel0, std::string(x.level0_.data(), n * x.block_size_));
  w.AddSection(kSectionLevels, std::string(reinterpret_cast<const char*>(x.levels_.data()), n));
  std::string upper;
  for (uint64_t i = 0; i < n; ++i) {
    PutArray(&upper, x.upper_[i].get(), size_t(x.levels_[i]) * (x.options_.m + 1));
  }
  w.AddSection(kSectionUpper, std::move(upper));
  if (x.options_.quantization != HnswQuantization::kNone) {
    std::string floats;
    PutArray(&floats, reinterpret_cast<const float*>(x.floats_.data()), n * x.dim_);
    w.AddSection(kSectionFloats, std::move(floats));
  }
  labels.unlock();
  grow.unlock();
  return w.Finish();
}

Result<std::unique_ptr<HnswIndex>> HnswSerializer::Load(const IndexFileReader& file) {
  auto corrupt = [](const std::string& why) { return DataLossError("hnsw index: " + why); };
  QV_ASSIGN_OR_RETURN(std::string_view meta, file.Section(kSectionMeta));
  uint64_t dim, m, efc, efs, seed, n, entry, live;
  uint8_t metric, quant, qkind, trained;
  float lo, step;
  if (!GetFixed(&meta, &dim) || !GetFixed(&meta, &metric) || !GetFixed(&meta, &m) ||
      !GetFixed(&meta, &efc) || !GetFixed(&meta, &efs) || !GetFixed(&meta, &quant) ||
      !GetFixed(&meta, &seed) || !GetFixed(&meta, &n) || !GetFixed(&meta, &entry) ||
      !GetFixed(&meta, &live) || !GetFixed(&meta, &qkind) || !GetFixed(&meta, &lo) ||
      !GetFixed(&meta, &step) || !GetFixed(&meta, &trained) || !meta.empty()) {
    return corrupt("malformed metadata");
  }
  if (metric > 2 || quant > 1 || qkind > 1 || !(step > 0) || !std::isfinite(lo) ||
      !std::isfinite(step)) {
    return corrupt("metadata out of range");
  }
  HnswOptions options;
  options.m = m;
  options.ef_construction = efc;
  options.ef_search = efs;
  options.quantization = static_cast<HnswQuantization>(quant);
  options.seed = seed;
  auto created = HnswIndex::Create(dim, static_cast<Metric>(metric), options);
  if (!created.ok()) return corrupt(std::string(created.status().message()));
  std::unique_ptr<HnswIndex> x = std::move(created).value();
  if (n >= (uint64_t{1} << 32) - 1) return corrupt("node count out of range");

  QV_ASSIGN_OR_RETURN(std::string_view level0, file.Section(kSectionLevel0));
  QV_ASSIGN_OR_RETURN(std::string_view levels, file.Section(kSectionLevels));
  QV_ASSIGN_OR_RETURN(std::string_view upper, file.Section(kSectionUpper));
  if (level0.size() / x->block_size_ != n || level0.size() % x->block_size_ != 0 ||
      levels.size() != n) {
    return corrupt("section sizes do not match the node count");
  }
  uint64_t upper_words = 0;
  for (uint64_t i = 0; i < n; ++i) {
    if (uint8_t(levels[i]) > kMaxLevel) return corrupt("node level out of range");
    upper_words += uint64_t(uint8_t(levels[i])) * (m + 1);
  }
  if (upper.size() != upper_words * 4) return corrupt("upper-level links have the wrong size");
  std::string_view floats;
  if (options.quantization != HnswQuantization::kNone) {
    QV_ASSIGN_OR_RETURN(floats, file.Section(kSectionFloats));
    if (floats.size() != n * dim * 4) return corrupt("float vectors have the wrong size");
  }

  x->reserved_ = n;
  x->GrowLocked(n);
  std::memcpy(x->level0_.data(), level0.data(), level0.size());
  std::memcpy(x->levels_.data(), levels.data(), n);
  for (uint64_t i = 0; i < n; ++i) {
    size_t words = size_t(x->levels_[i]) * (m + 1);
    if (words == 0) continue;
    x->upper_[i].reset(new uint32_t[words]);
    GetArray(&upper, x->upper_[i].get(), words);
  }
  if (!floats.empty()) GetArray(&floats, reinterpret_cast<float*>(x->floats_.data()), n * dim);
  x->count_.store(uint32_t(n));
  x->quantizer_ = simd::ScalarQuantizer(static_cast<simd::ScalarQuantizer::Kind>(qkind), lo, step);
  x->quantizer_trained_ = trained != 0;

  // Structure: link counts, link targets, flags, entry point, and unique live labels.
  int top_level = -1;
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t flags = x->Links0(i)[1];
    if (flags & ~1u) return corrupt("node flags out of range");
    for (int level = 0; level <= x->levels_[i]; ++level) {
      const uint32_t* links = x->LinksAt(i, level);
      const uint32_t count = links[0];
      if (count > x->MaxLinks(level)) return corrupt("link count out of range");
      const uint32_t* ids = level == 0 ? links + 2 : links + 1;
      for (uint32_t j = 0; j < count; ++j) {
        if (ids[j] >= n || x->levels_[ids[j]] < level) return corrupt("link to a missing node");
      }
    }
    top_level = std::max(top_level, int(x->levels_[i]));
    if (!(flags & 1u)) {
      if (!x->node_of_.emplace(x->Label(i), i).second) return corrupt("live id stored twice");
    }
  }
  if (n == 0 ? entry != kNoEntry
             : (uint32_t(entry) >= n || int(entry >> 32) != top_level ||
                x->levels_[uint32_t(entry)] != top_level)) {
    return corrupt("bad entry point");
  }
  if (x->node_of_.size() != live) return corrupt("live count does not match the tombstones");
  x->entry_.store(entry);
  x->live_.store(live);
  return x;
}

}  // namespace quiver::index
