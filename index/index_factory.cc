#include "index/index_factory.h"

#include "index/flat/flat_index.h"
#include "index/hnsw/hnsw_index.h"
#include "index/io/index_file.h"
#include "index/ivf/ivf_pq_index.h"

namespace quiver::index {

Result<std::unique_ptr<VectorIndex>> CreateIndex(const IndexSpec& spec, size_t dim, Metric metric,
                                                 size_t item_weights) {
  if (item_weights > 0 && spec.type != IndexSpec::Type::kIvfPq) {
    return InvalidArgumentError(
        "only an ivf_pq index keeps weights beside its items; this one is " +
        std::string(IndexTypeName(spec.type)));
  }
  switch (spec.type) {
    case IndexSpec::Type::kFlat:
      return std::unique_ptr<VectorIndex>(new FlatIndex(dim, metric));
    case IndexSpec::Type::kHnsw: {
      HnswOptions o;
      o.m = spec.hnsw_m;
      o.ef_construction = spec.hnsw_ef_construction;
      o.ef_search = spec.hnsw_ef_search;
      o.quantization = spec.hnsw_sq8 ? HnswQuantization::kSq8 : HnswQuantization::kNone;
      QV_ASSIGN_OR_RETURN(auto idx, HnswIndex::Create(dim, metric, o));
      return std::unique_ptr<VectorIndex>(std::move(idx));
    }
    case IndexSpec::Type::kIvfPq: {
      IvfPqOptions o;
      o.nlist = spec.ivf_nlist;
      o.m = spec.ivf_m;
      o.nbits = spec.ivf_nbits;
      o.nprobe = spec.ivf_nprobe;
      o.refine = spec.ivf_refine;
      o.refine_store = spec.ivf_refine == 0   ? RefineStore::kNone
                       : spec.ivf_refine_int8 ? RefineStore::kInt8
                                              : RefineStore::kFloat32;
      o.weights = item_weights;
      QV_ASSIGN_OR_RETURN(auto idx, IvfPqIndex::Create(dim, metric, o));
      return std::unique_ptr<VectorIndex>(std::move(idx));
    }
  }
  return InvalidArgumentError("unknown index type " +
                              std::to_string(static_cast<uint32_t>(spec.type)));
}

Result<std::unique_ptr<VectorIndex>> LoadIndex(const std::string& path) {
  QV_ASSIGN_OR_RETURN(IndexFileReader file, IndexFileReader::Open(path));
  switch (file.type()) {
    case IndexType::kFlat: {
      QV_ASSIGN_OR_RETURN(auto flat, FlatIndex::Load(file));
      return std::unique_ptr<VectorIndex>(std::move(flat));
    }
    case IndexType::kHnsw: {
      QV_ASSIGN_OR_RETURN(auto hnsw, HnswIndex::Load(file));
      return std::unique_ptr<VectorIndex>(std::move(hnsw));
    }
    case IndexType::kIvfPq: {
      QV_ASSIGN_OR_RETURN(auto ivf, IvfPqIndex::Load(file));
      return std::unique_ptr<VectorIndex>(std::move(ivf));
    }
  }
  return DataLossError("index file " + path + " has an unknown index type " +
                       std::to_string(static_cast<uint32_t>(file.type())));
}

}  // namespace quiver::index
