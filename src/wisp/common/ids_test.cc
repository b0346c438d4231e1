#include "wisp/common/ids.h"

#include <set>

#include <gtest/gtest.h>

namespace wisp {
namespace {

TEST(NewUuid, IsCanonicalVersion4AndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = NewUuid();
    ASSERT_TRUE(IsUuid(id)) << id;
    EXPECT_EQ(id[14], '4') << id;
    EXPECT_TRUE(id[19] == '8' || id[19] == '9' || id[19] == 'a' || id[19] == 'b') << id;
    EXPECT_TRUE(seen.insert(id).second) << "duplicate " << id;
  }
}

TEST(IsUuid, RejectsMalformed) {
  EXPECT_FALSE(IsUuid(""));
  EXPECT_FALSE(IsUuid("550e8400-e29b-41d4-a716-44665544000"));
  EXPECT_FALSE(IsUuid("550e8400xe29b-41d4-a716-446655440000"));
  EXPECT_FALSE(IsUuid("550e8400-e29b-41d4-a716-44665544000g"));
  EXPECT_FALSE(IsUuid("../../../../../../../../etc/passwd00"));
  EXPECT_TRUE(IsUuid("550e8400-e29b-41d4-a716-446655440000"));
}

}  // namespace
}  // namespace wisp
