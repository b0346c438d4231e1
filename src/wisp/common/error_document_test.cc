#include "wisp/common/error_document.h"

#include <gtest/gtest.h>

namespace wisp {
namespace {

TEST(LambdaErrorDocument, HasTypeMessageAndAlwaysAStackTrace) {
  EXPECT_EQ(LambdaErrorDocument("Runtime.ExitError", "exit status 1"),
            R"({"errorType":"Runtime.ExitError","errorMessage":"exit status 1","stackTrace":[]})");
  EXPECT_EQ(LambdaErrorDocument("Error", "a \"quoted\"\nline", {"at f (index.js:1)"}),
            R"json({"errorType":"Error","errorMessage":"a \"quoted\"\nline",)json"
            R"json("stackTrace":["at f (index.js:1)"]})json");
}

}  // namespace
}  // namespace wisp
