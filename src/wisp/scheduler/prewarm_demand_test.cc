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

// Functions named f0, f1, ...
std::vector<std::string> Functions(int count, int first = 0) {
  std::vector<std::string> names;
  for (int i = first; i < first + count; ++i) names.push_back("f" + std::to_string(i));
  return names;
}

TEST(PrewarmDemandTest, EachFunctionThatStartsColdInTheWindowRaisesTheTarget) {
  PrewarmDemand demand(1, 10, seconds(60));
  demand.RecordColdStart("f0", kStart);
  EXPECT_EQ(demand.Target(kStart), 1u);  // one function: the floor already covers it
  for (int i = 1; i < 5; ++i) demand.RecordColdStart("f" + std::to_string(i), kStart + seconds(i));
  EXPECT_EQ(demand.Target(kStart + seconds(5)), 5u);
}

TEST(PrewarmDemandTest, AFunctionScalingOutCountsOnce) {
  PrewarmDemand demand(1, 20, seconds(60));
  for (int i = 0; i < 64; ++i) demand.RecordColdStart("busy", kStart + milliseconds(i));
  demand.RecordColdStart("other", kStart + seconds(1));
  EXPECT_EQ(demand.Target(kStart + seconds(1)), 2u);
  // It counts from its latest cold start.
  demand.RecordColdStart("busy", kStart + seconds(50));
  EXPECT_EQ(demand.Target(kStart + seconds(61)), 1u);  // "other" aged out, "busy" did not
  EXPECT_EQ(demand.Target(kStart + seconds(109)), 1u);
  demand.RecordColdStart("third", kStart + seconds(100));
  EXPECT_EQ(demand.Target(kStart + seconds(100)), 2u);
}

TEST(PrewarmDemandTest, TheCeilingBoundsTheTarget) {
  PrewarmDemand demand(1, 4, seconds(60));
  demand.RecordColdStarts(Functions(20), kStart);
  EXPECT_EQ(demand.Target(kStart), 4u);
  // A ceiling below the floor is the floor: the configured size is always kept.
  PrewarmDemand low(3, 1, seconds(60));
  EXPECT_EQ(low.ceiling(), 3u);
  low.RecordColdStarts(Functions(20), kStart);
  EXPECT_EQ(low.Target(kStart), 3u);
}

TEST(PrewarmDemandTest, TheTargetFallsBackToTheFloorAsColdStartsAgeOut) {
  PrewarmDemand demand(1, 20, seconds(60));
  demand.RecordColdStarts(Functions(6), kStart);
  demand.RecordColdStarts(Functions(4, 6), kStart + seconds(30));
  EXPECT_EQ(demand.Target(kStart + seconds(59)), 10u);
  EXPECT_EQ(demand.Target(kStart + seconds(60)), 4u);  // the first six are a window old
  EXPECT_EQ(demand.Target(kStart + seconds(89)), 4u);
  EXPECT_EQ(demand.Target(kStart + seconds(90)), 1u);
}

TEST(PrewarmDemandTest, NewColdStartsCountLongestWhenTheCeilingIsReached) {
  PrewarmDemand demand(0, 3, seconds(10));
  demand.RecordColdStarts(Functions(3), kStart);
  demand.RecordColdStarts(Functions(2, 3), kStart + seconds(8));
  // Kept: one of the first three and the two newer ones; the old one ages out first.
  EXPECT_EQ(demand.Target(kStart + seconds(9)), 3u);
  EXPECT_EQ(demand.Target(kStart + seconds(10)), 2u);
  EXPECT_EQ(demand.Target(kStart + seconds(18)), 0u);
}

TEST(PrewarmDemandTest, AZeroCeilingAndFloorKeepsNoPool) {
  PrewarmDemand demand(0, 0, seconds(10));
  demand.RecordColdStarts(Functions(5), kStart);
  EXPECT_EQ(demand.Target(kStart + milliseconds(1)), 0u);
}

}  // namespace
}  // namespace wisp::scheduler
