#include "wisp/common/json_text.h"

#include <gtest/gtest.h>

namespace wisp {
namespace {

TEST(JsonString, EscapesControlAndQuotes) {
  EXPECT_EQ(JsonString("a\"b\\c\n\t\x01"), R"("a\"b\\c\n\t\u0001")");
}

TEST(JsonString, KeepsValidUtf8) {
  EXPECT_EQ(JsonString("h\xc3\xa9llo \xf0\x9f\x98\x80"), "\"h\xc3\xa9llo \xf0\x9f\x98\x80\"");
}

TEST(JsonString, ReplacesInvalidUtf8) {
  EXPECT_EQ(JsonString("a\xff"
                       "b"),
            "\"a\xef\xbf\xbd"
            "b\"");
  EXPECT_EQ(JsonString("\xc3"), "\"\xef\xbf\xbd\"");  // truncated sequence
  EXPECT_EQ(JsonString("\xed\xa0\x80"), "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");  // surrogate
}

TEST(JsonStringArray, AppendsEveryStringEscaped) {
  std::string out = "logs:";
  AppendJsonStringArray(out, {"one", "t\"wo\n"});
  EXPECT_EQ(out, R"(logs:["one","t\"wo\n"])");
  out.clear();
  AppendJsonStringArray(out, {});
  EXPECT_EQ(out, "[]");
}

}  // namespace
}  // namespace wisp
