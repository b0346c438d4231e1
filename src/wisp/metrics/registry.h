// Registry: the node's metrics, one object injected wherever something is counted (the invoke
// path, the scheduler) and read wherever it is shown (/health today; /metrics and the console
// render the same snapshot). Per function: invocations by outcome, throttles, cold starts, calls
// in flight, and latency histograms of duration, init duration and queue wait.
//
// Thread rules: any thread. Series are created under a mutex (once per function); recording
// is lock-free (relaxed atomics), so the hot path pays a few atomic adds per call.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "wisp/common/thread_role.h"
#include "wisp/metrics/histogram.h"
#include "wisp/metrics/recent_windows.h"

namespace wisp::metrics {

// The series of one function. Held by whoever records for it; outlives the function's
// deletion harmlessly (the registry drops it from snapshots then).
class FunctionMetrics {
 public:
  // `at_ms` (wall clock, epoch ms) places the call in the recent windows.
  void RecordInvocation(Outcome outcome, std::chrono::nanoseconds duration, int64_t at_ms);
  // A call refused before it ran: at the function's concurrency limit or the node's capacity.
  void RecordThrottle(int64_t at_ms);
  void RecordColdStart(std::chrono::nanoseconds init_duration);
  void RecordQueueWait(std::chrono::nanoseconds wait) { queue_wait_.Record(wait); }
  // Calls running now.
  void CallStarted() { in_flight_.fetch_add(1, std::memory_order_relaxed); }
  void CallEnded() { in_flight_.fetch_sub(1, std::memory_order_relaxed); }

  struct Snapshot {
    uint64_t success = 0;
    uint64_t error = 0;
    uint64_t timeout = 0;
    uint64_t throttles = 0;
    uint64_t cold_starts = 0;
    int64_t in_flight = 0;
    Histogram::Snapshot duration;
    Histogram::Snapshot init_duration;
    Histogram::Snapshot queue_wait;
    uint64_t invocations() const { return success + error + timeout; }
    void Add(const Snapshot& other);
  };
  Snapshot Read() const;
  // The last hour by minute and the last day by hour (recorded from one thread: see there).
  const RecentWindows& recent() const { return recent_; }

 private:
  std::atomic<uint64_t> success_{0};
  std::atomic<uint64_t> error_{0};
  std::atomic<uint64_t> timeout_{0};
  std::atomic<uint64_t> throttles_{0};
  std::atomic<uint64_t> cold_starts_{0};
  std::atomic<int64_t> in_flight_{0};
  Histogram duration_;
  Histogram init_duration_;
  Histogram queue_wait_;
  RecentWindows recent_;
};

class Registry {
 public:
  // The series of `function_id` (created on first use). `name` labels it in snapshots.
  std::shared_ptr<FunctionMetrics> ForFunction(const std::string& function_id,
                                               std::string_view name);
  // The function is gone: its series leave the snapshots (its calls stay in the node totals).
  void RemoveFunction(const std::string& function_id);
  // Calls refused before a function could even be found or was ready: node-wide only.
  void RecordRejectedBeforeRun() { rejected_before_run_.fetch_add(1, std::memory_order_relaxed); }

  struct FunctionSnapshot {
    std::string id;
    std::string name;
    FunctionMetrics::Snapshot metrics;
  };
  struct Snapshot {
    std::vector<FunctionSnapshot> functions;  // live functions, by id
    // Every call since start, deleted functions' included.
    FunctionMetrics::Snapshot node;
    uint64_t rejected_before_run = 0;
  };
  Snapshot Read() const;

 private:
  struct Entry {
    std::string name;
    std::shared_ptr<FunctionMetrics> metrics;
  };
  mutable std::mutex mutex_;
  std::map<std::string, Entry> functions_ WISP_GUARDED_BY(mutex_);
  // What deleted functions counted, so node totals never go backwards.
  FunctionMetrics::Snapshot retired_ WISP_GUARDED_BY(mutex_);
  std::atomic<uint64_t> rejected_before_run_{0};
};

}  // namespace wisp::metrics
