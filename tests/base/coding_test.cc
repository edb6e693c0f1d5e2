#include "base/coding.h"

#include <gtest/gtest.h>

namespace quiver {
namespace {

TEST(CodingTest, FixedIsLittleEndian) {
  std::string s;
  PutFixed<uint32_t>(&s, 0x04030201u);
  PutFixed<uint64_t>(&s, 0x0807060504030201ull);
  ASSERT_EQ(s.size(), 12u);
  EXPECT_EQ(s[0], 1);
  EXPECT_EQ(s[3], 4);
  EXPECT_EQ(s[4], 1);
  EXPECT_EQ(s[11], 8);
}

TEST(CodingTest, RoundTripsAndRefusesShortInput) {
  std::string s;
  PutFixed<uint16_t>(&s, 0xBEEF);
  PutFixed<float>(&s, -1.5f);
  PutFixed<int64_t>(&s, -42);
  std::string_view in(s);
  uint16_t a;
  float b;
  int64_t c;
  ASSERT_TRUE(GetFixed(&in, &a));
  ASSERT_TRUE(GetFixed(&in, &b));
  ASSERT_TRUE(GetFixed(&in, &c));
  EXPECT_EQ(a, 0xBEEF);
  EXPECT_EQ(b, -1.5f);
  EXPECT_EQ(c, -42);
  EXPECT_TRUE(in.empty());
  uint32_t d = 7;
  std::string_view short_in("abc", 3);
  EXPECT_FALSE(GetFixed(&short_in, &d));
  EXPECT_EQ(short_in.size(), 3u);
  EXPECT_EQ(d, 7u);
}

TEST(CodingTest, ArraysRoundTripAndRefuseShortInput) {
  const uint32_t values[] = {1, 2, 0xFFFFFFFF};
  std::string s;
  PutArray(&s, values, 3);
  std::string_view in(s);
  uint32_t out[3] = {};
  EXPECT_FALSE(GetArray(&in, out, 4));
  ASSERT_TRUE(GetArray(&in, out, 3));
  EXPECT_EQ(out[2], 0xFFFFFFFFu);
  std::string_view huge(s);
  EXPECT_FALSE(GetArray(&huge, out, size_t(1) << 62));
}

}  // namespace
}  // namespace quiver
