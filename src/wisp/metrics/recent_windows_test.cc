#include "wisp/metrics/recent_windows.h"

#include <gtest/gtest.h>

namespace wisp::metrics {
namespace {

using std::chrono::milliseconds;

constexpr int64_t kT0 = 1'700'000'080'000;  // 40 s into a minute

TEST(RecentWindowsTest, CountsCallsInTheirMinuteAndHour) {
  RecentWindows w;
  w.Record(kT0, Outcome::kSuccess, milliseconds(3));
  w.Record(kT0 + 1000, Outcome::kError, milliseconds(30));
  w.RecordThrottle(kT0 + 2000);
  w.Record(kT0 + 60'000, Outcome::kTimeout, milliseconds(3000));  // the next minute

  const auto minutes = w.Minutes(kT0 + 60'000, 3);
  ASSERT_EQ(minutes.size(), 3u);
  EXPECT_EQ(minutes[0].invocations(), 0u);
  EXPECT_EQ(minutes[1].start_ms, kT0 - 40'000);
  EXPECT_EQ(minutes[1].success, 1u);
  EXPECT_EQ(minutes[1].error, 1u);
  EXPECT_EQ(minutes[1].throttled, 1u);
  EXPECT_EQ(minutes[1].duration.count, 2u);
  EXPECT_EQ(minutes[1].duration.sum_micros, 33'000u);
  EXPECT_EQ(minutes[1].duration.QuantileMicros(0.5), 5'000u);
  EXPECT_EQ(minutes[2].timeout, 1u);

  const auto hours = w.Hours(kT0 + 60'000, 1);
  ASSERT_EQ(hours.size(), 1u);
  EXPECT_EQ(hours[0].invocations(), 3u);
  EXPECT_EQ(hours[0].throttled, 1u);
  EXPECT_EQ(hours[0].duration.QuantileMicros(1.0), 5'000'000u);
}

TEST(RecentWindowsTest, ASlotAFullRingLaterStartsOver) {
  RecentWindows w;
  w.Record(kT0, Outcome::kSuccess, milliseconds(1));
  // Sixty minutes later the same slot serves a new minute: the old call is gone from it.
  const int64_t later = kT0 + 60 * RecentWindows::kMinuteMs;
  EXPECT_EQ(w.Minutes(later, 60)[0].invocations(), 0u);  // the old minute is out of reach
  w.Record(later, Outcome::kError, milliseconds(1));
  const auto minutes = w.Minutes(later, 1);
  EXPECT_EQ(minutes[0].success, 0u);
  EXPECT_EQ(minutes[0].error, 1u);
  // A day later the hour slot is stale and reads as empty without a new call in it.
  EXPECT_EQ(w.Hours(kT0 + 24 * RecentWindows::kHourMs, 1)[0].invocations(), 0u);
}

TEST(RecentWindowsTest, ReadingAWindowOlderThanARingSeesNothingStale) {
  RecentWindows w;
  w.Record(kT0, Outcome::kSuccess, milliseconds(1));
  // Two minutes on, the window of the last minute does not include it; of the last three does.
  EXPECT_EQ(w.Minutes(kT0 + 120'000, 1)[0].invocations(), 0u);
  uint64_t total = 0;
  for (const auto& slot : w.Minutes(kT0 + 120'000, 3)) total += slot.invocations();
  EXPECT_EQ(total, 1u);
}

TEST(RecentWindowsTest, SlotCountsAreClampedToTheRing) {
  RecentWindows w;
  EXPECT_EQ(w.Minutes(kT0, 0).size(), 1u);
  EXPECT_EQ(w.Minutes(kT0, 1000).size(), 60u);
  EXPECT_EQ(w.Hours(kT0, 1000).size(), 24u);
}

}  // namespace
}  // namespace wisp::metrics
