#include "base/log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testing/temp_dir.h"

namespace quiver::log {
namespace {

// The lines the process's log wrote to stderr while `body` ran.
template <typename F>
std::vector<std::string> Captured(const std::string& path, F body) {
  std::fflush(stderr);
  const int saved = ::dup(2);
  FILE* f = std::fopen(path.c_str(), "w");
  ::dup2(::fileno(f), 2);
  body();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::fclose(f);
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(LogTest, TextAndJsonLinesCarryTheEventAndEscapedFields) {
  quiver::testing::ScopedTempDir dir;
  const std::string path = dir.path() + "/stderr";
  auto lines = Captured(path, [] {
    Configure(Format::kText, Level::kInfo);
    Info("reload", {{"version", "v2"}, {"ms", 1200}, {"ok", true}});
    Warn("odd", {{"what", "a \"quoted\" = value\n"}, {"ratio", 0.25}, {"delta", -3}});
    Debug("hidden");  // below the level
    Configure(Format::kJson, Level::kDebug);
    Debug("shown", {{"path", "/v1/collections/m/search"}});
    Error("failed", {{"message", "tab\there \"q\" \\ \x01"}, {"n", uint64_t{1} << 63}});
    Configure(Format::kText, Level::kOff);
    Error("silent");
  });
  ASSERT_EQ(lines.size(), 4u);
  // 2026-12-01T02:41:11.123Z info reload version=v2 ms=1200 ok=true
  EXPECT_EQ(lines[0][4], '-');
  EXPECT_EQ(lines[0][23], 'Z') << lines[0];
  EXPECT_TRUE(lines[0].ends_with(" info reload version=v2 ms=1200 ok=true")) << lines[0];
  EXPECT_TRUE(
      lines[1].ends_with(R"( warning odd what="a \"quoted\" = value\n" ratio=0.25 delta=-3)"))
      << lines[1];
  EXPECT_TRUE(lines[2].starts_with(R"({"time":")")) << lines[2];
  EXPECT_TRUE(
      lines[2].ends_with(R"(","level":"debug","event":"shown","path":"/v1/collections/m/search"})"))
      << lines[2];
  EXPECT_TRUE(lines[3].ends_with(
      R"("level":"error","event":"failed","message":"tab\there \"q\" \\ \u0001","n":9223372036854775808})"))
      << lines[3];
  Level level;
  EXPECT_TRUE(ParseLevel("warn", &level).ok());
  EXPECT_EQ(level, Level::kWarn);
  EXPECT_FALSE(ParseLevel("verbose", &level).ok());
  Format format;
  EXPECT_TRUE(ParseFormat("json", &format).ok());
  EXPECT_EQ(format, Format::kJson);
  EXPECT_FALSE(ParseFormat("xml", &format).ok());
  Configure(Format::kText, Level::kInfo);
}

}  // namespace
}  // namespace quiver::log
