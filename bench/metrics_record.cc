// What counting one call costs the invoke path (Google Benchmark): build/bench/metrics_record.
// FunctionMetrics::RecordInvocation as the invoker calls it after every call (counters, the
// duration histogram and the recent windows), the recent windows alone, the wall clock read
// that places a call in them, and rendering /metrics for 100 functions (per scrape, not per
// call).
#include <benchmark/benchmark.h>

#include <chrono>

#include "wisp/metrics/prometheus.h"
#include "wisp/metrics/recent_windows.h"
#include "wisp/metrics/registry.h"

namespace {

using wisp::metrics::FunctionMetrics;
using wisp::metrics::Outcome;
using wisp::metrics::RecentWindows;

int64_t WallMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void BM_RecordInvocation(benchmark::State& state) {
  FunctionMetrics metrics;
  int64_t i = 0;
  const int64_t now = WallMillis();
  for (auto _ : state) {
    metrics.RecordInvocation(Outcome::kSuccess, std::chrono::microseconds(300 + (i & 1023)),
                             now + (i >> 10));
    ++i;
  }
}
BENCHMARK(BM_RecordInvocation);

// What the invoker does per call: the wall clock read and the recording.
void BM_RecordInvocationWithClock(benchmark::State& state) {
  FunctionMetrics metrics;
  int64_t i = 0;
  for (auto _ : state) {
    metrics.RecordInvocation(Outcome::kSuccess, std::chrono::microseconds(300 + (i & 1023)),
                             WallMillis());
    ++i;
  }
}
BENCHMARK(BM_RecordInvocationWithClock);

void BM_RecentWindowsOnly(benchmark::State& state) {
  RecentWindows windows;
  int64_t i = 0;
  const int64_t now = WallMillis();
  for (auto _ : state) {
    windows.Record(now + (i >> 10), Outcome::kSuccess, std::chrono::microseconds(300 + (i & 1023)));
    ++i;
  }
}
BENCHMARK(BM_RecentWindowsOnly);

// A new minute every call: the worst case, each call clears a slot.
void BM_RecentWindowsNewMinuteEachCall(benchmark::State& state) {
  RecentWindows windows;
  int64_t minute = 0;
  for (auto _ : state) {
    windows.Record(minute * RecentWindows::kMinuteMs, Outcome::kSuccess,
                   std::chrono::microseconds(300));
    ++minute;
  }
}
BENCHMARK(BM_RecentWindowsNewMinuteEachCall);

void BM_WallClock(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(WallMillis());
}
BENCHMARK(BM_WallClock);

void BM_ReadLastHour(benchmark::State& state) {
  FunctionMetrics metrics;
  const int64_t now = WallMillis();
  for (int i = 0; i < 10000; ++i) {
    metrics.RecordInvocation(Outcome::kSuccess, std::chrono::microseconds(i), now - i * 300);
  }
  for (auto _ : state) benchmark::DoNotOptimize(metrics.recent().Minutes(now, 60));
}
BENCHMARK(BM_ReadLastHour);

void BM_RenderPrometheus100Functions(benchmark::State& state) {
  wisp::metrics::Registry registry;
  for (int f = 0; f < 100; ++f) {
    auto m = registry.ForFunction("id-" + std::to_string(f), "function-" + std::to_string(f));
    m->RecordInvocation(Outcome::kSuccess, std::chrono::milliseconds(f), WallMillis());
  }
  const wisp::metrics::NodeGauges gauges;
  for (auto _ : state) {
    benchmark::DoNotOptimize(wisp::metrics::RenderPrometheus(registry.Read(), gauges));
  }
}
BENCHMARK(BM_RenderPrometheus100Functions);

}  // namespace

BENCHMARK_MAIN();
