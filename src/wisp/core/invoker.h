// Invoker: the synchronous invoke path. Finds the function in memory, runs the call through
// the scheduler, hands the record to the batched writer (never waiting for disk) and counts
// outcomes in the metrics registry.
//
// Thread rules: the io thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "wisp/common/asio.h"
#include "wisp/common/clock.h"
#include "wisp/common/thread_role.h"
#include "wisp/core/function_service.h"
#include "wisp/core/log_feed.h"
#include "wisp/metrics/registry.h"
#include "wisp/scheduler/scheduler.h"
#include "wisp/store/invocation_writer.h"

namespace wisp::core {

struct InvokeOutcome {
  std::string request_id;
  scheduler::InvocationResult result;
  // The function's own run, as Lambda's Duration: from the event handed to the runtime until
  // its answer. The wait before it is apart: queue_wait_ms (waiting for an instance, including a
  // cold start's initialisation) and init_duration_ms (that initialisation, cold starts only).
  int64_t duration_ms = 0;
  int64_t queue_wait_ms = 0;
  std::optional<int64_t> init_duration_ms;
  int version = 0;
  std::string executed_version;  // "$LATEST" or the published version's number
};

// Per-call choices the async path makes; a sync call takes the defaults.
struct InvokeOptions {
  std::string request_id;  // empty: a new one. The async path passes its invocation id, so
                           // every attempt of one invocation shows the function the same id.
  std::optional<std::chrono::milliseconds> timeout;  // instead of the function's own
  // The caller's X-Amzn-Trace-Id, passed to the function as Lambda-Runtime-Trace-Id (and so
  // _X_AMZN_TRACE_ID); empty: none. Wisp makes up none of its own: a runtime puts the value in
  // its environment, and glibc never frees a replaced environment value, so a fresh id on
  // every call would grow each warm instance on every call (measured in NOTES.md).
  std::string trace_id;
  // Run only on this version of the function (the serving one); nullopt: whichever serves.
  std::optional<int> version;
  // Which version runs: empty or "$LATEST", a published version's number, or an alias.
  std::string qualifier;
  // The Lambda client context the function sees (context.clientContext / client_context), as
  // JSON; empty: none. The program API passes a call's headers this way.
  std::string client_context;
  bool async = false;  // an attempt of an async invocation (its record says so)
  // Receives a streamed response's bytes as they arrive (scheduler::InvokeRequest's).
  std::function<void(std::string_view)> on_stream_chunk;
};

class Invoker {
 public:
  Invoker(FunctionService& functions, scheduler::Scheduler& scheduler,
          store::InvocationWriter& writer, metrics::Registry& metrics, const Clock& clock);

  // Errors: kNotFound (no such function), kFailedPrecondition (not ready), kResourceExhausted
  // (at the concurrency limit), kUnavailable (shutting down, sandbox failure).
  asio::awaitable<Result<InvokeOutcome>> Invoke(std::string function_id, std::string event_json,
                                                InvokeOptions options);
  // A sync call. (An overload, not a default argument: g++ 12 destroys a coroutine's default
  // argument twice.)
  asio::awaitable<Result<InvokeOutcome>> Invoke(std::string function_id, std::string event_json) {
    return Invoke(std::move(function_id), std::move(event_json), InvokeOptions{});
  }

  // Every call's record also goes to `feed` (logs that follow), when someone follows it.
  void SetLogFeed(LogFeed* feed) { log_feed_ = feed; }

 private:
  FunctionService& functions_;
  scheduler::Scheduler& scheduler_;
  store::InvocationWriter& writer_;
  metrics::Registry& metrics_;
  const Clock& clock_;
  LogFeed* log_feed_ = nullptr;
  ThreadRole io_thread_;
};

}  // namespace wisp::core
