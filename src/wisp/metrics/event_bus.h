// EventBus: state changes of functions and instances, published by whatever causes them
// (FunctionService, the Scheduler; version publishing later) and pushed to whoever listens (the
// /v1/events WebSocket), so a page updates without polling. One small object, injected; with
// nobody listening a Publish costs a branch (the event is not even encoded).
//
// Types published (see README "Events"): function.created, function.deploying, function.ready,
// function.error, function.deleted, instance.started, instance.ready, instance.reaped,
// instance.stopped, function.scaled.
//
// Thread rules: the io thread only; subscribers are called on it, synchronously, and must not
// block (queue the text and return).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "wisp/common/clock.h"
#include "wisp/common/thread_role.h"

namespace wisp::metrics {

struct StateEvent {
  std::string type;  // "function.ready", "instance.started", ...
  std::string function_id;
  std::string function_name;
  std::optional<int> version;
  std::string instance_id;            // instance events
  std::string state;                  // the new state, when there is one
  std::string detail;                 // why: an error message, a retirement's reason
  std::optional<uint64_t> instances;  // function.scaled: the function's live instances now
};

class EventBus {
 public:
  explicit EventBus(const Clock& clock) : clock_(clock) {}

  // `text` is `event` as one JSON object (encoded once for every subscriber).
  using Subscriber =
      std::function<void(const StateEvent& event, const std::shared_ptr<const std::string>& text)>;
  uint64_t Subscribe(Subscriber subscriber);
  void Unsubscribe(uint64_t token);

  bool has_subscribers() const { return !subscribers_.empty(); }
  void Publish(const StateEvent& event);

  // The JSON text of `event` at `at` (what subscribers receive).
  static std::string Encode(const StateEvent& event, std::chrono::system_clock::time_point at);

 private:
  const Clock& clock_;
  ThreadRole io_thread_;
  uint64_t next_token_ = 1;
  std::map<uint64_t, Subscriber> subscribers_;
};

}  // namespace wisp::metrics
