#include "base/crc32c.h"

#include <gtest/gtest.h>

#include <string>

namespace quiver {
namespace {

// Check values from RFC 3720 (iSCSI), appendix B.4.
TEST(Crc32cTest, StandardVectors) {
  std::string zeros(32, '\0');
  EXPECT_EQ(crc32c::Value(zeros), 0x8A9136AAu);
  std::string ones(32, '\xFF');
  EXPECT_EQ(crc32c::Value(ones), 0x62A8AB43u);
  std::string inc(32, 0);
  for (int i = 0; i < 32; ++i) inc[i] = char(i);
  EXPECT_EQ(crc32c::Value(inc), 0x46DD794Eu);
  EXPECT_EQ(crc32c::Value(std::string("123456789")), 0xE3069283u);
}

TEST(Crc32cTest, ExtendEqualsWhole) {
  std::string data = "the quick brown fox jumps over the lazy dog, twice over";
  for (size_t cut = 0; cut <= data.size(); ++cut) {
    uint32_t a = crc32c::Value(data.data(), cut);
    EXPECT_EQ(crc32c::Extend(a, data.data() + cut, data.size() - cut), crc32c::Value(data));
  }
}

TEST(Crc32cTest, DetectsEverySingleBitFlip) {
  std::string data(100, 'x');
  const uint32_t base = crc32c::Value(data);
  for (size_t i = 0; i < data.size() * 8; ++i) {
    std::string d = data;
    d[i / 8] ^= char(1 << (i % 8));
    EXPECT_NE(crc32c::Value(d), base) << "bit " << i;
  }
}

}  // namespace
}  // namespace quiver
