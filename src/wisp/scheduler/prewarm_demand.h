// PrewarmDemand: how many generic instances one prewarm pool should hold. A pool of a fixed size
// serves one cold start at a time; a burst (a restart, a bulk deploy, many functions called for
// the first time) empties it at the first call and every later one pays a full start. The pool
// therefore follows its runtime's recent demand: every function that started cold within the
// window (and could have used the pool) raises its target by one, between the configured floor
// and a ceiling. When the cold starts stop, they age out of the window and the target falls
// back to the floor.
//
// Functions count, not cold starts: a function scaling out to many instances raises the target
// once. A pool grown for its new instances would load in the background beside its warm calls,
// and their low CPU weight does not keep them out of the way: the kernel preempts a low-weight
// task at once only for a woken task under the same cgroup parent, so wispd and its clients,
// which compare against the sandboxes' top-level group, wait up to a scheduler tick (warm c=1
// p99 0.25 -> 1.8 ms while a pool of 20 filled, in bench/run's warm part; NOTES.md).
//
// Thread rules: a plain value; the scheduler uses it on its io thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <string>
#include <utility>
#include <vector>

namespace wisp::scheduler {

class PrewarmDemand {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // `floor`: the configured size, always kept; `ceiling` (>= floor): the most demand may ask
  // for; `window`: how long a cold start counts.
  PrewarmDemand(size_t floor, size_t ceiling, std::chrono::milliseconds window);

  // A cold start of `function` that fits the pool, whether it found a prewarmed instance or
  // not; a function already counted within the window counts once, from now.
  void RecordColdStart(const std::string& function, TimePoint now);
  // Cold starts known to be coming: functions that have no instance (after a restart, every
  // function that is called again starts cold).
  void RecordColdStarts(const std::vector<std::string>& functions, TimePoint now);

  // The pool's size for now: the floor, or the functions that started cold within the window,
  // up to the ceiling.
  size_t Target(TimePoint now) const;

  size_t floor() const { return floor_; }
  size_t ceiling() const { return ceiling_; }

 private:
  const size_t floor_;
  const size_t ceiling_;
  const std::chrono::milliseconds window_;
  // Each counted function with its latest cold start, oldest first; never more than `ceiling_`
  // kept, since more cannot raise the target further.
  std::deque<std::pair<std::string, TimePoint>> starts_;
};

}  // namespace wisp::scheduler
