#include "bench/ann/datasets.h"

#include <zlib.h>

#include <cstdio>
#include <cstring>

#include "base/coding.h"
#include "index/flat/flat_index.h"
#include "index/io/index_file.h"

namespace quiver::bench {
namespace {

Result<std::string> ReadGzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return NotFoundError("cannot open " + path + " (apt-get install dataset-fashion-mnist)");
  std::string out;
  char buf[1 << 16];
  int r;
  while ((r = gzread(f, buf, sizeof(buf))) > 0) out.append(buf, size_t(r));
  bool failed = r < 0;
  gzclose(f);
  if (failed) return DataLossError("corrupt gzip stream in " + path);
  return out;
}

uint32_t BigEndian32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t(u[0]) << 24 | uint32_t(u[1]) << 16 | uint32_t(u[2]) << 8 | u[3];
}

Result<std::vector<float>> ReadIdxImages(const std::string& path, size_t* n, size_t* dim) {
  QV_ASSIGN_OR_RETURN(std::string raw, ReadGzip(path));
  if (raw.size() < 16 || BigEndian32(raw.data()) != 2051) {
    return DataLossError(path + " is not an IDX image file");
  }
  *n = BigEndian32(raw.data() + 4);
  *dim = size_t(BigEndian32(raw.data() + 8)) * BigEndian32(raw.data() + 12);
  if (raw.size() != 16 + *n * *dim) return DataLossError(path + " has the wrong length");
  std::vector<float> out(*n * *dim);
  for (size_t i = 0; i < out.size(); ++i) out[i] = float(uint8_t(raw[16 + i]));
  return out;
}

template <typename T>
Result<std::vector<T>> ReadVecs(const std::string& path, size_t* dim) {
  QV_ASSIGN_OR_RETURN(std::string raw, index::ReadFileToString(path));
  if (raw.size() < 4) return DataLossError(path + " is empty");
  uint32_t d = DecodeFixed<uint32_t>(raw.data());
  const size_t row = 4 + size_t(d) * 4;
  if (d == 0 || raw.size() % row != 0) return DataLossError(path + " is not a .vecs file");
  const size_t n = raw.size() / row;
  std::vector<T> out(n * d);
  for (size_t i = 0; i < n; ++i) {
    if (DecodeFixed<uint32_t>(raw.data() + i * row) != d)
      return DataLossError(path + ": ragged rows");
    std::memcpy(&out[i * d], raw.data() + i * row + 4, size_t(d) * 4);
  }
  *dim = d;
  return out;
}

}  // namespace

Result<std::vector<float>> ReadFvecs(const std::string& path, size_t* dim) {
  return ReadVecs<float>(path, dim);
}
Result<std::vector<int32_t>> ReadIvecs(const std::string& path, size_t* dim) {
  return ReadVecs<int32_t>(path, dim);
}

Status WriteIvecs(const std::string& path, const std::vector<int32_t>& data, size_t dim) {
  std::string out;
  for (size_t i = 0; i < data.size(); i += dim) {
    PutFixed<uint32_t>(&out, uint32_t(dim));
    PutArray(&out, &data[i], dim);
  }
  return index::WriteFileAtomically(path, out);
}

Result<Dataset> LoadFashionMnist(const std::string& dir) {
  Dataset ds;
  ds.name = "fashion-mnist";
  size_t d2 = 0;
  QV_ASSIGN_OR_RETURN(ds.base, ReadIdxImages(dir + "/train-images-idx3-ubyte.gz", &ds.n, &ds.dim));
  QV_ASSIGN_OR_RETURN(ds.queries, ReadIdxImages(dir + "/t10k-images-idx3-ubyte.gz", &ds.nq, &d2));
  if (d2 != ds.dim) return DataLossError("train and test images differ in size");
  return ds;
}

Result<Dataset> LoadFvecsDir(const std::string& dir, const std::string& name) {
  Dataset ds;
  ds.name = name;
  size_t d2 = 0;
  QV_ASSIGN_OR_RETURN(ds.base, ReadFvecs(dir + "/base.fvecs", &ds.dim));
  QV_ASSIGN_OR_RETURN(ds.queries, ReadFvecs(dir + "/query.fvecs", &d2));
  if (d2 != ds.dim) return DataLossError("base and query dims differ in " + dir);
  ds.n = ds.base.size() / ds.dim;
  ds.nq = ds.queries.size() / ds.dim;
  return ds;
}

Status EnsureGroundTruth(Dataset* ds, size_t k, const std::string& cache_path, int threads) {
  size_t cached_k = 0;
  auto cached = ReadIvecs(cache_path, &cached_k);
  if (cached.ok() && cached_k >= k && cached->size() == ds->nq * cached_k) {
    ds->truth = std::move(*cached);
    ds->truth_k = cached_k;
    return Status::Ok();
  }
  std::fprintf(stderr, "computing exact top-%zu for %zu queries over %zu vectors...\n", k, ds->nq,
               ds->n);
  index::FlatIndex flat(ds->dim,
                        ds->inner_product ? index::Metric::kInnerProduct : index::Metric::kL2);
  std::vector<uint64_t> ids(ds->n);
  for (size_t i = 0; i < ds->n; ++i) ids[i] = i;
  QV_RETURN_IF_ERROR(flat.Add(ids, ds->base));
  std::vector<std::vector<index::Neighbor>> found;
  QV_RETURN_IF_ERROR(flat.SearchBatch(ds->queries, {.k = k}, &found, threads));
  ds->truth.assign(ds->nq * k, -1);
  for (size_t q = 0; q < ds->nq; ++q) {
    for (size_t i = 0; i < found[q].size(); ++i) ds->truth[q * k + i] = int32_t(found[q][i].id);
  }
  ds->truth_k = k;
  Status s = WriteIvecs(cache_path, ds->truth, k);
  if (!s.ok()) std::fprintf(stderr, "warning: ground truth not cached: %s\n", s.ToString().c_str());
  return Status::Ok();
}

}  // namespace quiver::bench
