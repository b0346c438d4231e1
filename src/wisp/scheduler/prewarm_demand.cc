#include "wisp/scheduler/prewarm_demand.h"

#include <algorithm>

namespace wisp::scheduler {

PrewarmDemand::PrewarmDemand(size_t floor, size_t ceiling, std::chrono::milliseconds window)
    : floor_(floor), ceiling_(std::max(floor, ceiling)), window_(window) {}

void PrewarmDemand::RecordColdStarts(size_t count, TimePoint now) {
  while (!starts_.empty() && now - starts_.front() >= window_) starts_.pop_front();
  for (size_t i = 0; i < count && ceiling_ > 0; ++i) {
    // The newest count longest: an older one leaves room when the deque is full.
    if (starts_.size() >= ceiling_) starts_.pop_front();
    starts_.push_back(now);
  }
}

size_t PrewarmDemand::Target(TimePoint now) const {
  const auto recent = std::count_if(starts_.begin(), starts_.end(),
                                    [&](TimePoint start) { return now - start < window_; });
  return std::clamp(static_cast<size_t>(recent), floor_, ceiling_);
}

}  // namespace wisp::scheduler
