#include "wisp/scheduler/prewarm_demand.h"

#include <gtest/gtest.h>

namespace wisp::scheduler {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const PrewarmDemand::TimePoint kStart{seconds(1000)};

TEST(PrewarmDemandTest, WithoutColdStartsTheTargetIsTheFloor) {
  PrewarmDemand demand(2, 10, seconds(60));
  EXPECT_EQ(demand.Target(kStart), 2u);
  PrewarmDemand none(0, 10, seconds(60));
  EXPECT_EQ(none.Target(kStart), 0u);
}

TEST(PrewarmDemandTest, EachColdStartInTheWindowRaisesTheTarget) {
  PrewarmDemand demand(1, 10, seconds(60));
  demand.RecordColdStart(kStart);
  EXPECT_EQ(demand.Target(kStart), 1u);  // one cold start: the floor already covers it
  for (int i = 0; i < 4; ++i) demand.RecordColdStart(kStart + seconds(i));
  EXPECT_EQ(demand.Target(kStart + seconds(5)), 5u);
}

TEST(PrewarmDemandTest, TheCeilingBoundsTheTarget) {
  PrewarmDemand demand(1, 4, seconds(60));
  demand.RecordColdStarts(20, kStart);
  EXPECT_EQ(demand.Target(kStart), 4u);
  // A ceiling below the floor is the floor: the configured size is always kept.
  PrewarmDemand low(3, 1, seconds(60));
  EXPECT_EQ(low.ceiling(), 3u);
  low.RecordColdStarts(20, kStart);
  EXPECT_EQ(low.Target(kStart), 3u);
}

TEST(PrewarmDemandTest, TheTargetFallsBackToTheFloorAsColdStartsAgeOut) {
  PrewarmDemand demand(1, 20, seconds(60));
  demand.RecordColdStarts(6, kStart);
  for (int i = 1; i <= 4; ++i) demand.RecordColdStart(kStart + seconds(30));
  EXPECT_EQ(demand.Target(kStart + seconds(59)), 10u);
  EXPECT_EQ(demand.Target(kStart + seconds(60)), 4u);  // the first six are a window old
  EXPECT_EQ(demand.Target(kStart + seconds(89)), 4u);
  EXPECT_EQ(demand.Target(kStart + seconds(90)), 1u);
}

TEST(PrewarmDemandTest, NewColdStartsCountLongestWhenTheCeilingIsReached) {
  PrewarmDemand demand(0, 3, seconds(10));
  demand.RecordColdStarts(3, kStart);
  demand.RecordColdStarts(2, kStart + seconds(8));
  // Kept: one of the first three and the two newer ones; the old one ages out first.
  EXPECT_EQ(demand.Target(kStart + seconds(9)), 3u);
  EXPECT_EQ(demand.Target(kStart + seconds(10)), 2u);
  EXPECT_EQ(demand.Target(kStart + seconds(18)), 0u);
}

TEST(PrewarmDemandTest, AZeroCeilingAndFloorKeepsNoPool) {
  PrewarmDemand demand(0, 0, seconds(10));
  demand.RecordColdStarts(5, kStart);
  EXPECT_EQ(demand.Target(kStart + milliseconds(1)), 0u);
}

}  // namespace
}  // namespace wisp::scheduler
