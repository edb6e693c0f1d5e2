// ProductQuantizer: splits a d-dimensional vector into m sub-vectors of d/m components and
// encodes each as the index of the nearest of 2^nbits centroids of its sub-space (Jegou et
// al., 2011). nbits is 8 (one byte per sub-vector) or 4 (two sub-vectors per byte, the even
// sub-vector in the low nibble).
//
// Distance tables (asymmetric distance computation): for a query x, table[j * ksub + c] is
//   L2: ||x_j - y_jc||^2        IP: <x_j, y_jc>
// and the distance to a code is the sum over j of table[j * ksub + code_j].
//
// Thread-safety: immutable after Train; every const method is safe from any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace quiver::index {

class ProductQuantizer {
 public:
  ProductQuantizer() = default;

  // kInvalidArgument unless d % m == 0, nbits is 4 or 8, and there are at least 2^nbits rows.
  static Result<ProductQuantizer> Train(std::span<const float> data, size_t d, size_t m,
                                        size_t nbits, uint64_t seed = 1234, int threads = 0);

  size_t dim() const { return d_; }
  size_t m() const { return m_; }
  size_t nbits() const { return nbits_; }
  size_t ksub() const { return size_t{1} << nbits_; }
  size_t dsub() const { return d_ / m_; }
  size_t code_size() const { return (m_ * nbits_ + 7) / 8; }
  // m * ksub * dsub floats: sub-space j's centroid c at (j * ksub + c) * dsub.
  const std::vector<float>& centroids() const { return centroids_; }

  // Sub-code j of a code.
  uint32_t SubCode(const uint8_t* code, size_t j) const {
    return nbits_ == 8 ? code[j] : (code[j >> 1] >> ((j & 1) * 4)) & 0xF;
  }

  void Encode(const float* x, uint8_t* code) const;
  void EncodeBatch(const float* x, size_t n, uint8_t* codes, int threads) const;
  void Decode(const uint8_t* code, float* x) const;

  // m * ksub floats each.
  void L2Table(const float* x, float* table) const;
  void IpTable(const float* x, float* table) const;
  float TableDistance(const float* table, const uint8_t* code) const;

  // Serialised form (little-endian), and its inverse (kDataLoss on malformed input).
  void AppendTo(std::string* out) const;
  static Result<ProductQuantizer> Parse(std::string_view* in);

 private:
  ProductQuantizer(size_t d, size_t m, size_t nbits, std::vector<float> centroids);

  size_t d_ = 0, m_ = 0, nbits_ = 8;
  std::vector<float> centroids_;   // [m][ksub][dsub]
  std::vector<float> transposed_;  // [m][dsub][ksub]: tables for short sub-vectors run along k
};

}  // namespace quiver::index
