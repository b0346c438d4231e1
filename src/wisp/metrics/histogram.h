// Histogram: a latency histogram of fixed buckets, and the outcome of one invocation; shared
// by the registry's series and the recent windows.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace wisp::metrics {

// A latency histogram with fixed buckets: bucket i counts samples of at most kBoundsMicros[i]
// microseconds; one more bucket counts everything above the last bound. Fixed buckets keep
// recording to one atomic add and make histograms of different functions addable.
class Histogram {
 public:
  // 50 µs to 15 min, about three buckets per decade.
  static constexpr std::array<uint64_t, 22> kBoundsMicros = {
      50,         100,         250,         500,        1'000,      2'500,
      5'000,      10'000,      25'000,      50'000,     100'000,    250'000,
      500'000,    1'000'000,   2'500'000,   5'000'000,  10'000'000, 30'000'000,
      60'000'000, 120'000'000, 300'000'000, 900'000'000};
  static constexpr size_t kBuckets = kBoundsMicros.size() + 1;

  struct Snapshot {
    std::array<uint64_t, kBuckets> buckets{};
    uint64_t count = 0;
    uint64_t sum_micros = 0;
    // The upper bound of the bucket that holds quantile `q` (0 < q <= 1), in microseconds: an
    // estimate that never understates. 0 when empty; the last bound when above it.
    uint64_t QuantileMicros(double q) const;
    void Add(const Snapshot& other);
  };

  void Record(std::chrono::nanoseconds value);
  Snapshot Read() const;

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micros_{0};
};

// Outcome of one invocation that ran.
enum class Outcome { kSuccess, kError, kTimeout };

}  // namespace wisp::metrics
