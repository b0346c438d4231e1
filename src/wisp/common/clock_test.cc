#include "wisp/common/clock.h"

#include <gtest/gtest.h>

namespace wisp {
namespace {

TEST(FormatIso8601, FormatsUtcWithMillis) {
  const auto t = std::chrono::system_clock::time_point(std::chrono::milliseconds(1761121559898));
  EXPECT_EQ(FormatIso8601(t), "2025-10-22T08:25:59.898Z");
}

TEST(ManualClock, AdvancesBothClocks) {
  ManualClock clock;
  const auto start = clock.Now();
  const auto wall = clock.WallNow();
  clock.Advance(std::chrono::seconds(5));
  EXPECT_EQ(clock.Now() - start, std::chrono::seconds(5));
  EXPECT_EQ(clock.WallNow() - wall, std::chrono::seconds(5));
}

}  // namespace
}  // namespace wisp
