// Invoker: the synchronous invoke path. Finds the function in memory, runs the call through
// the scheduler, hands the record to the batched writer (never waiting for disk) and counts
// outcomes for /health.
//
// Thread rules: the io thread only, except the counters, which any thread may read.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "wisp/common/asio.h"
#include "wisp/common/clock.h"
#include "wisp/core/function_service.h"
#include "wisp/scheduler/scheduler.h"
#include "wisp/store/invocation_writer.h"

namespace wisp::core {

struct InvokeOutcome {
  std::string request_id;
  scheduler::InvocationResult result;
  int64_t duration_ms = 0;
  int version = 0;
};

// Per-call choices the async path makes; a sync call takes the defaults.
struct InvokeOptions {
  std::string request_id;  // empty: a new one. The async path passes its invocation id, so
                           // every attempt of one invocation shows the function the same id.
  std::optional<std::chrono::milliseconds> timeout;  // instead of the function's own
  // The caller's X-Amzn-Trace-Id, passed to the function as Lambda-Runtime-Trace-Id (and so
  // _X_AMZN_TRACE_ID); empty: none. Wisp makes up none of its own: a runtime puts the value in
  // its environment, and glibc never frees a replaced environment value, so a fresh id on
  // every call would grow each warm instance by ~170 bytes per call.
  std::string trace_id;
  bool async = false;  // an attempt of an async invocation (its record says so)
};

struct InvocationCounters {
  std::atomic<uint64_t> total{0};
  std::atomic<uint64_t> success{0};
  std::atomic<uint64_t> error{0};
  std::atomic<uint64_t> timeout{0};
  std::atomic<uint64_t> rejected{0};  // refused before running: throttled, not ready
  std::atomic<uint64_t> in_flight{0};
};

class Invoker {
 public:
  Invoker(FunctionService& functions, scheduler::Scheduler& scheduler,
          store::InvocationWriter& writer, const Clock& clock);

  // Errors: kNotFound (no such function), kFailedPrecondition (not ready), kResourceExhausted
  // (at the concurrency limit), kUnavailable (shutting down, sandbox failure).
  asio::awaitable<Result<InvokeOutcome>> Invoke(std::string function_id, std::string event_json,
                                                InvokeOptions options);
  // A sync call. (An overload, not a default argument: g++ 12 destroys a coroutine's default
  // argument twice.)
  asio::awaitable<Result<InvokeOutcome>> Invoke(std::string function_id, std::string event_json) {
    return Invoke(std::move(function_id), std::move(event_json), InvokeOptions{});
  }

  const InvocationCounters& counters() const { return counters_; }

 private:
  FunctionService& functions_;
  scheduler::Scheduler& scheduler_;
  store::InvocationWriter& writer_;
  const Clock& clock_;
  InvocationCounters counters_;
};

}  // namespace wisp::core
