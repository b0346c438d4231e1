// PrewarmDemand: how many generic instances one prewarm pool should hold. A pool of a fixed size
// serves one cold start at a time; a burst (a restart, a bulk deploy, many functions called for
// the first time) empties it at the first call and every later one pays a full start. The pool
// therefore follows its runtime's recent demand: every cold start that could have used it within
// the window raises its target by one, between the configured floor and a ceiling. When the
// cold starts stop, they age out of the window and the target falls back to the floor.
//
// Thread rules: a plain value; the scheduler uses it on its io thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>

namespace wisp::scheduler {

class PrewarmDemand {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // `floor`: the configured size, always kept; `ceiling` (>= floor): the most demand may ask
  // for; `window`: how long a cold start counts.
  PrewarmDemand(size_t floor, size_t ceiling, std::chrono::milliseconds window);

  // A cold start that fits the pool, whether it found a prewarmed instance or not.
  void RecordColdStart(TimePoint now) { RecordColdStarts(1, now); }
  // Cold starts known to be coming: `count` functions that have no instance (after a restart,
  // every function that is called again starts cold).
  void RecordColdStarts(size_t count, TimePoint now);

  // The pool's size for now: the floor, or the cold starts within the window up to the ceiling.
  size_t Target(TimePoint now) const;

  size_t floor() const { return floor_; }
  size_t ceiling() const { return ceiling_; }

 private:
  const size_t floor_;
  const size_t ceiling_;
  const std::chrono::milliseconds window_;
  // When each counted cold start happened, oldest first; never more than `ceiling_` kept, since
  // more cannot raise the target further.
  std::deque<TimePoint> starts_;
};

}  // namespace wisp::scheduler
