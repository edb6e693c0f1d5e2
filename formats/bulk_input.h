// Readers for bulk builds: item vectors from .fvecs or .npy, item attributes from CSV or JSONL.
//
// Attribute row i describes vector row i. Fields (all optional except where the schema needs
// them): id (default: the row number), cluster, topics (weights; CSV: separated by ';'),
// category, tags (CSV: ';'-separated integers), timestamp, payload (a JSON value; in CSV a
// quoted field holding JSON text). The formats are documented in docs/storage.md ("Bulk builds").
// Every error names the file and line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/model.h"
#include "base/result.h"

namespace quiver::formats {

struct VectorFile {
  size_t n = 0;
  size_t dim = 0;
  std::vector<float> data;  // n * dim, row-major
};

// .fvecs (int32 dim, then dim float32, per row) or .npy (float32, 2-D, C order, little-endian).
Result<VectorFile> ReadVectors(const std::string& path);

// Attributes from .csv (a header row names the columns) or .jsonl (one object per line).
// The records come back without vectors.
Result<std::vector<ItemRecord>> ReadAttributes(const std::string& path);

// Users for a bulk build: .jsonl (one user object per line) or .json ({"users": [...]}, the
// body of POST .../users); fields as in the REST API (id, vector, history).
Result<std::vector<UserRecord>> ReadUsers(const std::string& path);

// Items from vectors and (optionally) attributes; kInvalidArgument if the row counts differ.
Result<std::vector<ItemRecord>> AssembleItems(VectorFile vectors,
                                              std::vector<ItemRecord> attributes);

}  // namespace quiver::formats
