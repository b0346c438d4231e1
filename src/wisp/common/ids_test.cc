#include "wisp/common/ids.h"

#include <set>

#include <gtest/gtest.h>

namespace wisp {
namespace {

TEST(NewUuid, IsCanonicalVersion4AndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = NewUuid();
    ASSERT_EQ(id.size(), 36u) << id;
    EXPECT_EQ(id[14], '4') << id;
    EXPECT_TRUE(id[19] == '8' || id[19] == '9' || id[19] == 'a' || id[19] == 'b') << id;
    EXPECT_TRUE(seen.insert(id).second) << "duplicate " << id;
  }
}

}  // namespace
}  // namespace wisp
