// The one place that knows every index type: creating an index from a spec and loading one
// from a file. Callers hold a VectorIndex and ask it for capabilities (trained(), weighted()),
// never cast to an implementation.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/index_spec.h"
#include "base/result.h"
#include "index/vector_index.h"

namespace quiver::index {

// A new, empty index of `dim` under `metric` as `spec` describes it (the fields of its type;
// the others are ignored). `item_weights` W > 0 asks for an index that keeps W weights beside
// each item (weighted() non-null): IVF-PQ only, kInvalidArgument for another type. Options out
// of range give kInvalidArgument.
Result<std::unique_ptr<VectorIndex>> CreateIndex(const IndexSpec& spec, size_t dim, Metric metric,
                                                 size_t item_weights = 0);

// Loads any index written by VectorIndex::Save. A file that is truncated, corrupted, or of an
// unknown format gives kDataLoss; a missing file kNotFound.
Result<std::unique_ptr<VectorIndex>> LoadIndex(const std::string& path);

}  // namespace quiver::index
