#include "base/status.h"

#include <gtest/gtest.h>

#include "base/result.h"

namespace quiver {
namespace {

TEST(StatusTest, ReplyMessagesAreCutAtACharacterBoundary) {
  EXPECT_EQ(ReplyMessage("short"), "short");
  const std::string limit(kMaxReplyMessageBytes, 'a');
  EXPECT_EQ(ReplyMessage(limit), limit);
  std::string accents;  // 2-byte characters, so some cut would split one
  while (accents.size() < 5000) accents += "\u00e9";
  for (const std::string& odd : {accents, "x" + accents}) {
    const std::string cut = ReplyMessage(odd);
    EXPECT_LE(cut.size(), kMaxReplyMessageBytes);
    const std::string tail = "... (" + std::to_string(odd.size()) + " bytes, cut)";
    ASSERT_TRUE(cut.ends_with(tail)) << cut;
    const std::string kept = cut.substr(0, cut.size() - tail.size());
    EXPECT_EQ(odd.substr(0, kept.size()), kept);
    EXPECT_EQ(kept.size() % 2, odd.size() % 2) << "a character was split";
  }
}

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, CarriesCodeAndMessage) {
  Status s = DataLossError("checksum mismatch");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_EQ(s.message(), "checksum mismatch");
  EXPECT_EQ(s.ToString(), "DATA_LOSS: checksum mismatch");
  Status copy = s;  // NOLINT(performance-unnecessary-copy-initialization): the copy is tested
  EXPECT_EQ(copy, s);
  EXPECT_EQ(s.WithContext("file x").message(), "file x: checksum mismatch");
  EXPECT_TRUE(Status().WithContext("ignored").ok());
}

Status FailsWhen(bool fail) { return fail ? InvalidArgumentError("bad") : Status::Ok(); }

Status Chain(bool fail, int* reached) {
  QV_RETURN_IF_ERROR(FailsWhen(fail));
  *reached = 1;
  return Status::Ok();
}

TEST(StatusTest, ReturnIfErrorStopsAtFirstError) {
  int reached = 0;
  EXPECT_EQ(Chain(true, &reached).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(reached, 0);
  EXPECT_TRUE(Chain(false, &reached).ok());
  EXPECT_EQ(reached, 1);
}

Result<int> Half(int x) {
  if (x % 2) return InvalidArgumentError("odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  QV_ASSIGN_OR_RETURN(int h, Half(x));
  QV_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

TEST(ResultTest, ValueOrError) {
  EXPECT_EQ(*Quarter(8), 2);
  Result<int> r = Quarter(6);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "odd");
}

TEST(ResultTest, OkStatusWithoutValueBecomesInternal) {
  Result<int> r{Status::Ok()};
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
}

TEST(ResultDeathTest, ValueOfErrorAborts) {
  Result<int> r{NotFoundError("nope")};
  EXPECT_DEATH((void)r.value(), "nope");
}

}  // namespace
}  // namespace quiver
