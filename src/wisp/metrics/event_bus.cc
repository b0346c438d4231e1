#include "wisp/metrics/event_bus.h"

#include <nlohmann/json.hpp>

namespace wisp::metrics {

uint64_t EventBus::Subscribe(Subscriber subscriber) {
  WISP_DCHECK_ON_THREAD(io_thread_);
  const uint64_t token = next_token_++;
  subscribers_.emplace(token, std::move(subscriber));
  return token;
}

void EventBus::Unsubscribe(uint64_t token) {
  WISP_DCHECK_ON_THREAD(io_thread_);
  subscribers_.erase(token);
}

void EventBus::Publish(const StateEvent& event) {
  WISP_DCHECK_ON_THREAD(io_thread_);
  if (subscribers_.empty()) return;
  const auto text = std::make_shared<const std::string>(Encode(event, clock_.WallNow()));
  // A subscriber may unsubscribe itself (a client too slow to keep up): iterate over a copy
  // of the tokens.
  std::vector<uint64_t> tokens;
  tokens.reserve(subscribers_.size());
  for (const auto& [token, subscriber] : subscribers_) tokens.push_back(token);
  for (uint64_t token : tokens) {
    auto it = subscribers_.find(token);
    if (it != subscribers_.end()) it->second(event, text);
  }
}

std::string EventBus::Encode(const StateEvent& event, std::chrono::system_clock::time_point at) {
  nlohmann::json j = {{"type", event.type}, {"at", FormatIso8601(at)}};
  if (!event.function_id.empty()) j["function_id"] = event.function_id;
  if (!event.function_name.empty()) j["function_name"] = event.function_name;
  if (event.version) j["version"] = *event.version;
  if (!event.instance_id.empty()) j["instance_id"] = event.instance_id;
  if (!event.state.empty()) j["state"] = event.state;
  if (!event.detail.empty()) j["detail"] = event.detail;
  if (event.instances) j["instances"] = *event.instances;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace wisp::metrics
