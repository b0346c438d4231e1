#include "wisp/api/program_api_format.h"

#include <gtest/gtest.h>

namespace wisp::api {
namespace {
using namespace std::chrono_literals;

TEST(GoDuration, ParsesGoSyntax) {
  EXPECT_EQ(*ParseGoDuration("30s"), 30s);
  EXPECT_EQ(*ParseGoDuration("1m30s"), 90s);
  EXPECT_EQ(*ParseGoDuration("500ms"), 500ms);
  EXPECT_EQ(*ParseGoDuration("1.5h"), 90min);
  EXPECT_EQ(*ParseGoDuration("2h45m"), 165min);
  EXPECT_EQ(*ParseGoDuration("0"), 0s);
  EXPECT_EQ(*ParseGoDuration("1us"), 1us);
  EXPECT_EQ(*ParseGoDuration("1\xC2\xB5s"), 1us);
  EXPECT_EQ(*ParseGoDuration("10ns"), 10ns);
  EXPECT_EQ(*ParseGoDuration(".5s"), 500ms);
  EXPECT_EQ(*ParseGoDuration("-3s"), -3s);
}

TEST(GoDuration, RejectsWhatGoRejects) {
  for (const char* bad : {"", "30", "s", "3x", "1m30", "abc", "3 s", "--1s", "1.s.", "."}) {
    auto parsed = ParseGoDuration(bad);
    EXPECT_FALSE(parsed) << bad;
    if (!parsed) {
      EXPECT_NE(parsed.error().message.find("invalid duration"), std::string::npos);
    }
  }
}

TEST(GoDuration, FormatsLikeGo) {
  EXPECT_EQ(FormatGoDuration(30s), "30s");
  EXPECT_EQ(FormatGoDuration(90s), "1m30s");
  EXPECT_EQ(FormatGoDuration(1h), "1h0m0s");
  EXPECT_EQ(FormatGoDuration(500ms), "500ms");
  EXPECT_EQ(FormatGoDuration(1500ms), "1.5s");
  EXPECT_EQ(FormatGoDuration(0s), "0s");
  EXPECT_EQ(FormatGoDuration(-2s), "-2s");
  EXPECT_EQ(*ParseGoDuration(FormatGoDuration(3723s)), 3723s);
}

TEST(Base64, RoundTripsEveryLength) {
  std::string bytes;
  for (int i = 0; i < 300; ++i) {
    auto decoded = DecodeBase64(EncodeBase64(bytes));
    ASSERT_TRUE(decoded) << i;
    EXPECT_EQ(*decoded, bytes);
    bytes.push_back(static_cast<char>(i * 37));
  }
  EXPECT_EQ(EncodeBase64("hello"), "aGVsbG8=");
  EXPECT_EQ(*DecodeBase64("aGVsbG8"), "hello");       // padding optional
  EXPECT_EQ(*DecodeBase64("aGVs\nbG8=\n"), "hello");  // line breaks ignored
}

TEST(Base64, RejectsGarbageWithItsOffset) {
  auto bad = DecodeBase64("aGVs*bG8=");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("offset 4"), std::string::npos) << bad.error().message;
  EXPECT_FALSE(DecodeBase64("aGVsbG8=x"));  // data after padding
  EXPECT_FALSE(DecodeBase64("a"));          // not a whole byte
  EXPECT_FALSE(
      DecodeBase64("aG=="
                   "="));
  EXPECT_FALSE(DecodeBase64("not base64!"));
}

}  // namespace
}  // namespace wisp::api
