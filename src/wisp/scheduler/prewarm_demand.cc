#include "wisp/scheduler/prewarm_demand.h"

#include <algorithm>

namespace wisp::scheduler {

PrewarmDemand::PrewarmDemand(size_t floor, size_t ceiling, std::chrono::milliseconds window)
    : floor_(floor), ceiling_(std::max(floor, ceiling)), window_(window) {}

void PrewarmDemand::RecordColdStart(const std::string& function, TimePoint now) {
  while (!starts_.empty() && now - starts_.front().second >= window_) starts_.pop_front();
  if (ceiling_ == 0) return;
  auto counted = std::find_if(starts_.begin(), starts_.end(),
                              [&](const auto& start) { return start.first == function; });
  if (counted != starts_.end()) {
    starts_.erase(counted);
  } else if (starts_.size() >= ceiling_) {
    // The newest count longest: an older one leaves room when the deque is full.
    starts_.pop_front();
  }
  starts_.emplace_back(function, now);
}

void PrewarmDemand::RecordColdStarts(const std::vector<std::string>& functions, TimePoint now) {
  for (const auto& function : functions) RecordColdStart(function, now);
}

size_t PrewarmDemand::Target(TimePoint now) const {
  const auto recent = std::count_if(starts_.begin(), starts_.end(), [&](const auto& start) {
    return now - start.second < window_;
  });
  return std::clamp(static_cast<size_t>(recent), floor_, ceiling_);
}

}  // namespace wisp::scheduler
