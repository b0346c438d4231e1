#include "wisp/common/base64.h"

#include <gtest/gtest.h>

#include <string>

namespace wisp {
namespace {

TEST(Base64Test, EncodesWithPadding) {
  EXPECT_EQ(EncodeBase64(""), "");
  EXPECT_EQ(EncodeBase64("f"), "Zg==");
  EXPECT_EQ(EncodeBase64("fo"), "Zm8=");
  EXPECT_EQ(EncodeBase64("foo"), "Zm9v");
  EXPECT_EQ(EncodeBase64(std::string("\xff\x00\x10", 3)), "/wAQ");
}

}  // namespace
}  // namespace wisp
