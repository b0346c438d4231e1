#include "wisp/metrics/recent_windows.h"

#include <algorithm>

namespace wisp::metrics {
namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;

int64_t PeriodStart(int64_t at_ms, int64_t period_ms) {
  // Floor division: times before the epoch (test clocks) still fall into whole periods.
  const int64_t q = at_ms / period_ms;
  return (at_ms % period_ms < 0 ? q - 1 : q) * period_ms;
}

size_t Index(int64_t start_ms, int64_t period_ms, int size) {
  const int64_t n = start_ms / period_ms % size;
  return static_cast<size_t>(n < 0 ? n + size : n);
}

}  // namespace

void RecentWindows::Slot::Add(const Slot& other) {
  success += other.success;
  error += other.error;
  timeout += other.timeout;
  throttled += other.throttled;
  duration.Add(other.duration);
}

RecentWindows::Ring& RecentWindows::SlotFor(Ring* ring, int size, int64_t period_ms,
                                            int64_t at_ms) {
  const int64_t start = PeriodStart(at_ms, period_ms);
  Ring& slot = ring[Index(start, period_ms, size)];
  if (slot.start_ms.load(kRelaxed) != start) {
    // The slot held a period one ring ago (or never one): it starts over for this one.
    slot.success.store(0, kRelaxed);
    slot.error.store(0, kRelaxed);
    slot.timeout.store(0, kRelaxed);
    slot.throttled.store(0, kRelaxed);
    slot.duration_sum_micros.store(0, kRelaxed);
    for (auto& bucket : slot.duration) bucket.store(0, kRelaxed);
    slot.start_ms.store(start, std::memory_order_release);
  }
  return slot;
}

void RecentWindows::Record(int64_t at_ms, Outcome outcome, std::chrono::nanoseconds duration) {
  const uint64_t micros =
      duration.count() <= 0 ? 0 : static_cast<uint64_t>(duration.count()) / 1000;
  const auto bound =
      std::lower_bound(Histogram::kBoundsMicros.begin(), Histogram::kBoundsMicros.end(), micros);
  const auto bucket = static_cast<size_t>(bound - Histogram::kBoundsMicros.begin());
  for (Ring* slot : {&SlotFor(minutes_.data(), kMinuteSlots, kMinuteMs, at_ms),
                     &SlotFor(hours_.data(), kHourSlots, kHourMs, at_ms)}) {
    switch (outcome) {
      case Outcome::kSuccess:
        slot->success.fetch_add(1, kRelaxed);
        break;
      case Outcome::kError:
        slot->error.fetch_add(1, kRelaxed);
        break;
      case Outcome::kTimeout:
        slot->timeout.fetch_add(1, kRelaxed);
        break;
    }
    slot->duration[bucket].fetch_add(1, kRelaxed);
    slot->duration_sum_micros.fetch_add(micros, kRelaxed);
  }
}

void RecentWindows::RecordThrottle(int64_t at_ms) {
  SlotFor(minutes_.data(), kMinuteSlots, kMinuteMs, at_ms).throttled.fetch_add(1, kRelaxed);
  SlotFor(hours_.data(), kHourSlots, kHourMs, at_ms).throttled.fetch_add(1, kRelaxed);
}

std::vector<RecentWindows::Slot> RecentWindows::Read(const Ring* ring, int size, int64_t period_ms,
                                                     int64_t now_ms, int slots) {
  slots = std::clamp(slots, 1, size);
  std::vector<Slot> out(static_cast<size_t>(slots));
  const int64_t newest = PeriodStart(now_ms, period_ms);
  for (int i = 0; i < slots; ++i) {
    Slot& slot = out[static_cast<size_t>(i)];
    slot.start_ms = newest - static_cast<int64_t>(slots - 1 - i) * period_ms;
    const Ring& r = ring[Index(slot.start_ms, period_ms, size)];
    if (r.start_ms.load(std::memory_order_acquire) != slot.start_ms) continue;
    slot.success = r.success.load(kRelaxed);
    slot.error = r.error.load(kRelaxed);
    slot.timeout = r.timeout.load(kRelaxed);
    slot.throttled = r.throttled.load(kRelaxed);
    for (size_t b = 0; b < Histogram::kBuckets; ++b) {
      slot.duration.buckets[b] = r.duration[b].load(kRelaxed);
      slot.duration.count += slot.duration.buckets[b];
    }
    slot.duration.sum_micros = r.duration_sum_micros.load(kRelaxed);
  }
  return out;
}

std::vector<RecentWindows::Slot> RecentWindows::Minutes(int64_t now_ms, int slots) const {
  return Read(minutes_.data(), kMinuteSlots, kMinuteMs, now_ms, slots);
}

std::vector<RecentWindows::Slot> RecentWindows::Hours(int64_t now_ms, int slots) const {
  return Read(hours_.data(), kHourSlots, kHourMs, now_ms, slots);
}

}  // namespace wisp::metrics
