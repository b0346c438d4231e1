#include "wisp/metrics/registry.h"

#include <thread>

#include <gtest/gtest.h>

namespace wisp::metrics {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

TEST(HistogramTest, QuantilesAreTheUpperBoundOfTheirBucket) {
  Histogram h;
  for (int i = 0; i < 98; ++i) h.Record(microseconds(300));  // (250, 500]
  h.Record(milliseconds(40));                                // (25 ms, 50 ms]
  h.Record(std::chrono::hours(2));                           // beyond the last bound
  const auto s = h.Read();
  EXPECT_EQ(s.count, 100u);
  EXPECT_EQ(s.QuantileMicros(0.5), 500u);
  EXPECT_EQ(s.QuantileMicros(0.99), 50'000u);
  EXPECT_EQ(s.QuantileMicros(1.0), Histogram::kBoundsMicros.back());
  EXPECT_EQ(Histogram::Snapshot{}.QuantileMicros(0.5), 0u);
}

TEST(HistogramTest, ABoundItselfFallsInItsOwnBucket) {
  Histogram h;
  h.Record(microseconds(100));
  EXPECT_EQ(h.Read().QuantileMicros(1.0), 100u);
  h.Record(microseconds(0));
  EXPECT_EQ(h.Read().QuantileMicros(0.5), 50u);
}

TEST(RegistryTest, CountsPerFunctionAndForTheNodeAndKeepDeletedFunctionsInTotals) {
  Registry registry;
  auto a = registry.ForFunction("a", "alpha");
  auto b = registry.ForFunction("b", "beta");
  a->RecordInvocation(Outcome::kSuccess, milliseconds(1), 0);
  a->RecordInvocation(Outcome::kTimeout, milliseconds(3000), 0);
  a->RecordColdStart(milliseconds(7));
  b->RecordInvocation(Outcome::kError, milliseconds(2), 0);
  b->RecordThrottle(0);
  b->CallStarted();
  registry.RecordRejectedBeforeRun();
  EXPECT_EQ(registry.ForFunction("a", "alpha"), a);  // one series per function

  auto snapshot = registry.Read();
  ASSERT_EQ(snapshot.functions.size(), 2u);
  EXPECT_EQ(snapshot.functions[0].name, "alpha");
  EXPECT_EQ(snapshot.functions[0].metrics.invocations(), 2u);
  EXPECT_EQ(snapshot.functions[0].metrics.cold_starts, 1u);
  EXPECT_EQ(snapshot.functions[1].metrics.throttles, 1u);
  EXPECT_EQ(snapshot.node.invocations(), 3u);
  EXPECT_EQ(snapshot.node.in_flight, 1);
  EXPECT_EQ(snapshot.rejected_before_run, 1u);

  registry.RemoveFunction("a");
  snapshot = registry.Read();
  EXPECT_EQ(snapshot.functions.size(), 1u);
  EXPECT_EQ(snapshot.node.invocations(), 3u);
  EXPECT_EQ(snapshot.node.timeout, 1u);
  EXPECT_EQ(snapshot.node.duration.count, 3u);
}

TEST(RegistryTest, RecordingFromManyThreadsLosesNothing) {
  Registry registry;
  auto f = registry.ForFunction("f", "f");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) f->RecordInvocation(Outcome::kSuccess, microseconds(i), 0);
    });
  }
  for (auto& t : threads) t.join();
  const auto s = registry.Read();
  EXPECT_EQ(s.node.success, 40000u);
  EXPECT_EQ(s.node.duration.count, 40000u);
}

}  // namespace
}  // namespace wisp::metrics
