#include "engine/schema.h"

#include <cmath>
#include <unordered_set>

#include "index/index_factory.h"

namespace quiver::engine {
namespace {

Status Bad(const std::string& message) { return InvalidArgumentError(message); }

std::string ItemName(const ItemRecord& item) { return "item " + std::to_string(item.id); }

bool AllFinite(std::span<const float> v) {
  for (float x : v) {
    if (!std::isfinite(x)) return false;
  }
  return true;
}

bool NameCharOk(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

Status CheckVector(const CollectionSchema& schema, std::span<const float> v,
                   const std::string& who) {
  if (v.size() != schema.dim) {
    return Bad(who + ": vector has " + std::to_string(v.size()) + " values; collection '" +
               schema.name + "' has dim " + std::to_string(schema.dim));
  }
  if (!AllFinite(v)) return Bad(who + ": vector holds NaN or Inf");
  if (schema.metric == index::Metric::kCosine) {
    double norm = 0;
    for (float x : v) norm += double(x) * x;
    if (norm == 0) return Bad(who + ": zero vector under cosine has no direction");
  }
  return Status::Ok();
}

}  // namespace

Status ValidateSchema(const CollectionSchema& s) {
  if (s.name.empty() || s.name.size() > kMaxNameBytes) {
    return Bad("collection name must be 1 to " + std::to_string(kMaxNameBytes) + " bytes");
  }
  for (char c : s.name) {
    if (!NameCharOk(c)) return Bad("collection name '" + s.name + "' may use only [A-Za-z0-9_.-]");
  }
  // ".", ".." and the like are path segments, not names a URL can reach.
  if (s.name[0] == '.') return Bad("collection name '" + s.name + "' may not start with '.'");
  if (s.dim == 0 || s.dim > kMaxDim)
    return Bad("dim must be in [1, " + std::to_string(kMaxDim) + "]");
  if (uint8_t(s.metric) > uint8_t(index::Metric::kCosine)) return Bad("unknown metric");
  if (s.clusters > kMaxClusters)
    return Bad("clusters must be at most " + std::to_string(kMaxClusters));
  if (s.topics > kMaxTopics) return Bad("topics must be at most " + std::to_string(kMaxTopics));
  if (!std::isfinite(s.topic_threshold) || s.topic_threshold < 0 || s.topic_threshold >= 1) {
    return Bad("topic_threshold must be in [0, 1)");
  }
  if (s.topics == 0 && (s.topic_threshold > 0 || s.topic_concat)) {
    return Bad("topic_threshold and topic_concat need topics > 0");
  }
  if (s.topic_concat && uint64_t(s.topics) * s.dim > kMaxDim) {
    return Bad("topic_concat needs topics x dim <= " + std::to_string(kMaxDim));
  }
  if (s.topics > 0 && s.index.type == IndexSpec::Type::kIvfPq &&
      (s.index.ivf_refine == 0 || s.index.ivf_refine_int8)) {
    return Bad(
        "topics on an IVF-PQ collection need a float32 refine store (refine > 0, refine_int8 "
        "false): "
        "MVKE scores are computed exactly from the stored vectors");
  }
  if (s.shards == 0 || s.shards > kMaxShards) {
    return Bad("shards must be in [1, " + std::to_string(kMaxShards) + "]");
  }
  if (s.max_history == 0 || s.max_history > kMaxHistory) {
    return Bad("max_history must be in [1, " + std::to_string(kMaxHistory) + "]");
  }
  // The index constructors check their own parameters; build one to get their message.
  return MakeIndex(s).status();
}

Status ValidateItems(const CollectionSchema& schema, std::span<const ItemRecord> items) {
  std::unordered_set<uint64_t> seen;
  seen.reserve(items.size());
  for (const ItemRecord& item : items) {
    const std::string who = ItemName(item);
    if (!seen.insert(item.id).second) return Bad(who + " appears twice in the batch");
    QV_RETURN_IF_ERROR(CheckVector(schema, item.vector, who));
    if (schema.clusters == 0 ? item.cluster != 0 : item.cluster >= schema.clusters) {
      return Bad(who + ": cluster " + std::to_string(item.cluster) +
                 " is out of range (collection has " + std::to_string(schema.clusters) +
                 " clusters)");
    }
    if (item.topic_weights.size() != schema.topics) {
      return Bad(who + ": has " + std::to_string(item.topic_weights.size()) +
                 " topic weights; the collection has " + std::to_string(schema.topics) + " topics");
    }
    if (schema.topics > 0) {
      double sum = 0;
      for (float a : item.topic_weights) {
        if (!std::isfinite(a) || a < 0) return Bad(who + ": topic weights must be finite and >= 0");
        sum += a;
      }
      if (std::fabs(sum - 1.0) > 1e-3) {
        return Bad(who + ": topic weights must sum to 1 (they sum to " + std::to_string(sum) + ")");
      }
    }
    if (item.tags.size() > kMaxTags)
      return Bad(who + ": more than " + std::to_string(kMaxTags) + " tags");
    if (item.payload.size() > kMaxPayloadBytes) {
      return Bad(who + ": payload is larger than " + std::to_string(kMaxPayloadBytes) + " bytes");
    }
  }
  return Status::Ok();
}

Status ValidateUser(const CollectionSchema& schema, const UserRecord& user) {
  const std::string who = "user " + std::to_string(user.id);
  if (!user.vector.empty()) QV_RETURN_IF_ERROR(CheckVector(schema, user.vector, who));
  if (user.history.size() > schema.max_history) {
    return Bad(who + ": history longer than the collection's max_history (" +
               std::to_string(schema.max_history) + ")");
  }
  return Status::Ok();
}

Result<std::unique_ptr<index::VectorIndex>> MakeIndex(const CollectionSchema& s) {
  // The weighted scan needs alpha beside each code: IVF-PQ collections with topics keep it.
  const size_t weights = s.index.type == IndexSpec::Type::kIvfPq ? s.topics : 0;
  return index::CreateIndex(s.index, s.dim, s.metric, weights);
}

Status CheckIndexMatches(const CollectionSchema& s, const index::VectorIndex& idx) {
  QV_ASSIGN_OR_RETURN(auto fresh, MakeIndex(s));
  const size_t weights = idx.weighted() ? idx.weighted()->weights_per_item() : 0;
  const size_t wanted = fresh->weighted() ? fresh->weighted()->weights_per_item() : 0;
  if (weights != wanted) {  // an IVF-PQ snapshot written before IVF-PQ kept topic weights
    return DataLossError("snapshot's index keeps " + std::to_string(weights) +
                         " weights per item; collection '" + s.name + "' has " +
                         std::to_string(s.topics) + " topics");
  }
  if (idx.type_name() != fresh->type_name() || idx.dim() != s.dim || idx.metric() != s.metric) {
    return DataLossError("snapshot holds a " + std::string(idx.type_name()) + " index of dim " +
                         std::to_string(idx.dim()) + "; collection '" + s.name + "' is " +
                         std::string(fresh->type_name()) + " of dim " + std::to_string(s.dim));
  }
  return Status::Ok();
}

size_t MinFirstBatch(const CollectionSchema& s) {
  if (s.index.type != IndexSpec::Type::kIvfPq) return 0;
  return std::max<size_t>(s.index.ivf_nlist, size_t{1} << s.index.ivf_nbits);
}

}  // namespace quiver::engine
