#include "wisp/sandbox/host_ids.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace wisp::sandbox {
namespace {

using ::testing::HasSubstr;

TEST(HostIdPoolTest, HandsOutEachIdOnceAndReusesReleasedOnesLast) {
  HostIdPool pool(100000, 3);
  EXPECT_EQ(pool.Acquire(), 100000u);
  EXPECT_EQ(pool.Acquire(), 100001u);
  pool.Release(100000);
  EXPECT_EQ(pool.Acquire(), 100002u);  // round robin: the released id waits its turn
  EXPECT_EQ(pool.Acquire(), 100000u);
  EXPECT_EQ(pool.Acquire(), std::nullopt);  // all three in use
  EXPECT_EQ(pool.in_use(), 3u);
  pool.Release(99999);   // outside the range: ignored
  pool.Release(100001);  // in use: freed
  pool.Release(100001);  // twice: ignored
  EXPECT_EQ(pool.in_use(), 2u);
  EXPECT_EQ(pool.Acquire(), 100001u);
}

TEST(HostIdPoolTest, ValidatesTheRange) {
  EXPECT_TRUE(ValidateHostIdRange(0x70000000, 65536));
  EXPECT_TRUE(ValidateHostIdRange(65536, 1));
  EXPECT_THAT(ValidateHostIdRange(0x70000000, 0).error().message, HasSubstr("at least 1"));
  EXPECT_THAT(ValidateHostIdRange(1000, 10).error().message, HasSubstr("below 65536"));
  EXPECT_THAT(ValidateHostIdRange(0xffff0000, 65536).error().message, HasSubstr("4294967294"));
  EXPECT_TRUE(ValidateHostIdRange(0xffff0000, 65535));
}

TEST(HostIdPoolTest, RefusesRangesThatOverlapSubordinateIdsOrAccounts) {
  const char* subuid = "# comment\nalice:100000:65536\nbob:165536:65536\n\nbroken line\n";
  EXPECT_TRUE(CheckSubordinateIds("/etc/subuid", subuid, 0x70000000, 65536));
  EXPECT_TRUE(CheckSubordinateIds("/etc/subuid", subuid, 231072, 10));  // just after bob's
  auto overlap = CheckSubordinateIds("/etc/subuid", subuid, 200000, 100000);
  ASSERT_FALSE(overlap);
  EXPECT_THAT(overlap.error().message, HasSubstr("/etc/subuid's entry for bob (165536..231071)"));
  EXPECT_FALSE(CheckSubordinateIds("/etc/subuid", subuid, 90000, 10001));  // touches alice's

  const char* passwd = "root:x:0:0:root:/root:/bin/bash\nfar:x:1879048200:100::/:/bin/false\n";
  EXPECT_TRUE(CheckAccountIds("/etc/passwd", passwd, 65536, 65536));
  auto taken = CheckAccountIds("/etc/passwd", passwd, 0x70000000, 65536);
  ASSERT_FALSE(taken);
  EXPECT_THAT(taken.error().message, HasSubstr("id 1879048200 of far in /etc/passwd"));
}

}  // namespace
}  // namespace wisp::sandbox
