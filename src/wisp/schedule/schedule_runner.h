// ScheduleRunner: fires the functions' schedules. Once a second (and whenever RunOnce is
// called) it looks at every function's schedules and, for each slot that is due, moves the
// schedule's last slot in the store from the value it read to the new slot (compare-and-set,
// store::ScheduleStore); only the node whose move succeeded submits the firing, as an async
// invocation on the durable queue (the schedule's payload, or EventBridge's Scheduled Event),
// so retries and dead letters apply as to any async call. Several wispd on one store fire each
// slot once.
//
// Policy for slots missed while no wispd ran (or the node fell behind): of the slots since the
// last firing, only the newest fires, and only if it is at most `catch_up_window` old; older
// ones are skipped (logged). A new or re-enabled schedule starts at the first slot after wispd
// saw it. A crash between the store's move and the queue's accept loses that one slot (at most
// once per slot).
//
// Thread rules: the io thread only; store calls run on the worker pool.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "wisp/common/asio.h"
#include "wisp/common/clock.h"
#include "wisp/core/async_dispatcher.h"
#include "wisp/core/function_service.h"
#include "wisp/schedule/schedule_spec.h"
#include "wisp/store/schedule_store.h"

namespace wisp::schedule {

struct RunnerOptions {
  std::chrono::milliseconds catch_up_window{std::chrono::hours(1)};
  std::chrono::milliseconds period{1000};  // how often the loop looks
  std::string region = "us-east-1";        // for the Scheduled Event
  std::string account_id = "000000000000";
};

// What one pass did.
struct PassReport {
  int fired = 0;    // slots this node claimed and submitted
  int lost = 0;     // slots another node claimed first
  int skipped = 0;  // schedules whose missed slots were older than the catch-up window
  std::vector<std::string> invocation_ids;
};

// A wall clock that stands still until told to move: the schedules' clock when the test knob
// `schedule_test_clock_start` is set. Io thread only.
class SteppedClock final : public Clock {
 public:
  explicit SteppedClock(std::chrono::system_clock::time_point start) : wall_(start) {}
  std::chrono::steady_clock::time_point Now() const override {
    return std::chrono::steady_clock::now();
  }
  std::chrono::system_clock::time_point WallNow() const override { return wall_; }
  void Advance(std::chrono::milliseconds d) { wall_ += d; }

 private:
  std::chrono::system_clock::time_point wall_;
};

class ScheduleRunner {
 public:
  ScheduleRunner(asio::io_context& io, asio::thread_pool& workers, store::ScheduleStore& store,
                 core::FunctionService& functions, core::AsyncDispatcher& dispatcher,
                 const Clock& clock, RunnerOptions options);

  void Start();
  void Stop();
  // One pass now, after any pass in progress: what it did.
  asio::awaitable<PassReport> RunOnce();
  // When `schedule` of the function fires next after the runner's now; nullopt: never.
  std::optional<TimePoint> NextFiring(const Schedule& schedule) const;
  TimePoint now() const;

 private:
  // What the runner knows of one schedule of one function.
  struct Slot {
    std::string signature;        // expression and time zone: a change starts afresh
    std::optional<int64_t> last;  // the store's last slot, as read or moved by this node
    bool loaded = false;          // `last` was read since the signature changed or a lost move
    int64_t next_check_ms = 0;    // nothing to do before this
    bool disabled = false;        // forgotten in the store while disabled
  };
  using SlotKey = std::pair<std::string, std::string>;  // function id, schedule name
  struct ParsedSchedules {
    std::string json;  // the record's schedules_json they were parsed from
    std::vector<Schedule> schedules;
  };

  asio::awaitable<void> Loop();
  asio::awaitable<PassReport> Pass();
  asio::awaitable<void> Visit(const std::string& function_id, const std::string& function_name,
                              const Schedule& schedule, int64_t now_ms, PassReport& report);
  asio::awaitable<void> Forget(SlotKey key);

  asio::io_context& io_;
  asio::thread_pool& workers_;
  store::ScheduleStore& store_;
  core::FunctionService& functions_;
  core::AsyncDispatcher& dispatcher_;
  const Clock& clock_;
  RunnerOptions options_;
  std::map<SlotKey, Slot> slots_;
  std::map<std::string, ParsedSchedules> parsed_;  // by function id
  std::shared_ptr<Event> running_;                 // set while a pass runs; passes never overlap
  asio::steady_timer wake_;
  bool stopping_ = false;
};

}  // namespace wisp::schedule
