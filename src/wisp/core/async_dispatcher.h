// AsyncDispatcher: the asynchronous invoke path. Submit puts an invocation on the durable
// queue and returns once it is on disk; the dispatch loop takes due invocations off the queue
// and runs them through the Invoker (the same scheduler path as a synchronous call, with the
// invocation id as the request id), then records each attempt's outcome, which the queue turns
// into success, a retry later, or a dead letter.
//
// Each claimed invocation runs under a lease of the queue (queue.h): one loop renews every
// lease this dispatcher holds at a third of the lease's length, so an attempt may run as long
// as its function's timeout; if wispd dies or hangs, the leases lapse and the invocations run
// again (here after a restart, or on another node sharing the queue).
//
// Concurrency: at most a function's concurrency limit of its async attempts run at once, and
// at most `max_in_flight` in all; the rest wait in the queue. A call the scheduler still turns
// away (sync calls took the instances) goes back to the queue without counting as an attempt.
//
// Thread rules: the io thread only (the queue's completion callbacks are posted back to it).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>

#include "wisp/common/asio.h"
#include "wisp/common/clock.h"
#include "wisp/common/task_tracker.h"
#include "wisp/core/function_service.h"
#include "wisp/core/invoker.h"
#include "wisp/queue/queue.h"

namespace wisp::core {

struct AsyncOptions {
  // Async attempts running at once on this node: leaves room for sync calls on a small node.
  uint32_t max_in_flight = 64;
  // When the scheduler turned an attempt away for lack of an instance, the wait before trying
  // again (the scheduler itself already waited its queue time).
  std::chrono::milliseconds throttle_retry{500};
  // Queued invocations beyond this are refused (429): memory holds every pending event.
  uint64_t max_queued = 1'000'000;
  // How long a claim holds an invocation unless renewed (every third of it). Long enough that
  // a busy io thread never misses a renewal; short enough that a dead node's work restarts soon.
  std::chrono::milliseconds lease{30'000};
  // This dispatcher's name on its leases; empty: "wispd <pid>@<host name>".
  std::string lease_owner;
};

// One async call as a client asks for it.
struct SubmitRequest {
  std::string function_id;
  std::string event_json = "{}";
  std::string headers_json = "{}";
  int64_t timeout_ms = 0;  // 0: the function's timeout
  std::string trace_id;    // the caller's X-Amzn-Trace-Id (see InvokeOptions); empty: none
  std::string qualifier;   // a published version or an alias (see InvokeOptions); empty: $LATEST
};

class AsyncDispatcher {
 public:
  // `workers` runs the queue's blocking calls (Requeue).
  // Each running attempt is a task of `tasks`, which a graceful stop waits for.
  AsyncDispatcher(asio::io_context& io, asio::thread_pool& workers, queue::Queue& queue,
                  FunctionService& functions, Invoker& invoker, const Clock& clock,
                  TaskTracker& tasks, AsyncOptions options);
  AsyncDispatcher(const AsyncDispatcher&) = delete;
  AsyncDispatcher& operator=(const AsyncDispatcher&) = delete;

  // Starts the dispatch loop.
  void Start();
  // No attempt starts after this; those running finish (or go back to the queue).
  void Stop();

  // Accepts an invocation: returns it (status queued) once it is durable. kNotFound for an
  // unknown function; kResourceExhausted when the queue is full.
  asio::awaitable<Result<queue::Invocation>> Submit(SubmitRequest request);
  // Queues a dead-lettered invocation again; returns once that is durable.
  asio::awaitable<Result<queue::Invocation>> Requeue(std::string id);

  uint32_t in_flight() const { return in_flight_; }

 private:
  asio::awaitable<void> Loop();
  asio::awaitable<void> RenewLeases();
  asio::awaitable<void> Execute(queue::Invocation invocation);
  void Kick();
  int64_t NowMs() const { return ToEpochMillis(clock_.WallNow()); }

  asio::io_context& io_;
  asio::thread_pool& workers_;
  queue::Queue& queue_;
  FunctionService& functions_;
  Invoker& invoker_;
  const Clock& clock_;
  TaskTracker& tasks_;
  const AsyncOptions options_;
  const std::string owner_;
  asio::steady_timer wake_;
  asio::steady_timer renew_wake_;
  bool kicked_ = false;
  bool stopping_ = false;
  bool started_ = false;
  uint32_t in_flight_ = 0;
  std::unordered_map<std::string, uint32_t> in_flight_by_function_;
  // The leases of the attempts running here, by (invocation id, token): the same invocation may
  // run twice at once if a lease of ours lapsed.
  std::map<std::pair<std::string, uint64_t>, queue::Lease> leases_;
  // The same attempts, as tasks a graceful stop waits for.
  std::map<std::pair<std::string, uint64_t>, TaskTracker::Task> attempts_;
};

// The retry policy a function's record asks for.
queue::RetryPolicy RetryPolicyOf(const store::FunctionRecord& record);

}  // namespace wisp::core
