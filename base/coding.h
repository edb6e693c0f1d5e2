// Little-endian fixed-width encoding of integers and floats, independent of the host's
// byte order. Used by every on-disk and on-wire format in Quiver.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace quiver {

template <typename T>
inline T ByteSwapIfBig(T v) {
  if constexpr (std::endian::native == std::endian::little || sizeof(T) == 1) {
    return v;
  } else {
    unsigned char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    for (size_t i = 0; i < sizeof(T) / 2; ++i) std::swap(b[i], b[sizeof(T) - 1 - i]);
    std::memcpy(&v, b, sizeof(T));
    return v;
  }
}

// Writes sizeof(T) bytes at dst. REQUIRES: dst has room for them.
template <typename T>
inline void EncodeFixed(char* dst, T value) {
  static_assert(std::is_trivially_copyable_v<T>);
  value = ByteSwapIfBig(value);
  std::memcpy(dst, &value, sizeof(T));
}

// Reads sizeof(T) bytes at src. REQUIRES: src holds them.
template <typename T>
inline T DecodeFixed(const char* src) {
  static_assert(std::is_trivially_copyable_v<T>);
  T value;
  std::memcpy(&value, src, sizeof(T));
  return ByteSwapIfBig(value);
}

template <typename T>
inline void PutFixed(std::string* dst, T value) {
  char buf[sizeof(T)];
  EncodeFixed(buf, value);
  dst->append(buf, sizeof(T));
}

// Consumes sizeof(T) bytes from the front of *input. Returns false (and leaves *input as it
// was) if there are not enough bytes.
template <typename T>
inline bool GetFixed(std::string_view* input, T* value) {
  if (input->size() < sizeof(T)) return false;
  *value = DecodeFixed<T>(input->data());
  input->remove_prefix(sizeof(T));
  return true;
}

// Appends an array of trivially copyable values in little-endian order.
template <typename T>
inline void PutArray(std::string* dst, const T* values, size_t n) {
  if constexpr (std::endian::native == std::endian::little) {
    dst->append(reinterpret_cast<const char*>(values), n * sizeof(T));
  } else {
    for (size_t i = 0; i < n; ++i) PutFixed(dst, values[i]);
  }
}

// Consumes n values from *input; false if there are not enough bytes.
template <typename T>
inline bool GetArray(std::string_view* input, T* values, size_t n) {
  if (n > input->size() / sizeof(T)) return false;
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(values, input->data(), n * sizeof(T));
    input->remove_prefix(n * sizeof(T));
  } else {
    for (size_t i = 0; i < n; ++i) GetFixed(input, &values[i]);
  }
  return true;
}

}  // namespace quiver
