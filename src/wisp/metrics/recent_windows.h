// RecentWindows: one function's calls over the last hour, minute by minute, and over the last
// day, hour by hour, for GET /v1/functions/{id}/metrics and the console's graphs. Fixed size:
// 60 minute slots and 24 hour slots, each a few counters and a coarse duration histogram, in a
// ring indexed by the slot's start time; a slot whose start is older than its ring is stale
// and is cleared by the next call that falls into it. Nothing is allocated after construction.
//
// Thread rules: one thread records at a time (the io thread: the invoker); any thread may read.
// Counters are relaxed atomics, so a reader sees a slot that is at worst a call behind.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

#include "wisp/metrics/histogram.h"

namespace wisp::metrics {

class RecentWindows {
 public:
  static constexpr int kMinuteSlots = 60;
  static constexpr int kHourSlots = 24;
  static constexpr int64_t kMinuteMs = 60'000;
  static constexpr int64_t kHourMs = 3'600'000;

  // A call that ran, counted in the minute and the hour of `at_ms` (wall clock, epoch ms).
  void Record(int64_t at_ms, Outcome outcome, std::chrono::nanoseconds duration);
  // A call refused at the function's concurrency limit or the node's capacity.
  void RecordThrottle(int64_t at_ms);

  struct Slot {
    int64_t start_ms = 0;
    uint64_t success = 0;
    uint64_t error = 0;
    uint64_t timeout = 0;
    uint64_t throttled = 0;
    Histogram::Snapshot duration;  // durations of the calls that ran
    uint64_t invocations() const { return success + error + timeout; }
    void Add(const Slot& other);
  };
  // The slots of the `slots` minutes (or hours) that end with the one holding `now_ms`, oldest
  // first; a slot nothing was recorded in is all zeros. `slots` is clamped to 1..the ring size.
  std::vector<Slot> Minutes(int64_t now_ms, int slots) const;
  std::vector<Slot> Hours(int64_t now_ms, int slots) const;

 private:
  struct Ring {
    // Start of the period this slot counts, epoch ms; -1: never used.
    std::atomic<int64_t> start_ms{-1};
    std::atomic<uint32_t> success{0};
    std::atomic<uint32_t> error{0};
    std::atomic<uint32_t> timeout{0};
    std::atomic<uint32_t> throttled{0};
    std::atomic<uint64_t> duration_sum_micros{0};
    std::array<std::atomic<uint32_t>, Histogram::kBuckets> duration{};
  };
  static Ring& SlotFor(Ring* ring, int size, int64_t period_ms, int64_t at_ms);
  static std::vector<Slot> Read(const Ring* ring, int size, int64_t period_ms, int64_t now_ms,
                                int slots);

  std::array<Ring, kMinuteSlots> minutes_;
  std::array<Ring, kHourSlots> hours_;
};

}  // namespace wisp::metrics
