// What the scheduler runs and what a call gets back: a function version's deployment, the
// request and result of one invocation, and why an instance failed to start.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wisp/sandbox/backend.h"

namespace wisp::scheduler {

// Shared by every deployment of one function. Set once the function is deleted, so that a call
// or a deploy still holding one of its deployments starts nothing more for it.
struct FunctionLifetime {
  bool deleted = false;
};

// What the instances of one version of one function run. Immutable once published.
struct Deployment {
  std::string function_id;
  std::string function_name;
  int version = 0;
  // The pool whose instances run it: empty for $LATEST's (the function id), "<id>#<n>" for a
  // published version's, so that versions run side by side.
  std::string pool;
  // What the call records and the APIs say ran: "$LATEST" or a published version's number.
  std::string executed_version = "$LATEST";
  const std::string& pool_key() const { return pool.empty() ? function_id : pool; }
  sandbox::SpawnSpec spawn;  // instance_id is filled in per instance
  std::string function_arn;
  uint32_t max_instances = 100;  // the function's concurrency limit
  uint32_t min_instances = 0;    // kept warm even without traffic (provisioned concurrency)
  // Calls one instance serves at once; max_instances still bounds the calls in flight.
  uint32_t instance_concurrency = 1;
  int memory_mb = 256;
  // A prewarm pool's generic deployment: no function's code yet (see PrewarmPool).
  bool prewarmed = false;
  // Null for generic deployments, which belong to no function.
  std::shared_ptr<FunctionLifetime> lifetime;
  // Holds spawn.code_dir's tree in the code store (a code::Tree) while the deployment may still
  // start instances, so it is never collected under them. Null for generic deployments.
  std::shared_ptr<const void> code;
};

enum class InvocationStatus { kSuccess, kError, kTimeout };
std::string_view InvocationStatusName(InvocationStatus status);

struct InvocationResult {
  InvocationStatus status = InvocationStatus::kError;
  std::string response_json;  // the result, or an error document {errorType, errorMessage, ...}
  std::vector<std::string> logs;
  std::string instance_id;
  int version = 0;  // of the instance that ran the call
  bool cold_start = false;
  // Peak memory of the instance so far, at the end of the call, in MiB rounded up: Lambda's
  // "Max Memory Used" (it never decreases over one instance's calls). nullopt: unknown.
  std::optional<int64_t> memory_used_mb;
  // Where the time went, for the Server-Timing header: finding or starting an instance, and
  // from handing the event to the runtime until its answer.
  std::chrono::nanoseconds schedule_time{0};
  std::chrono::nanoseconds runtime_time{0};
  // A cold start's initialisation of the instance that ran the call (part of schedule_time
  // when this call waited for it); nullopt when a warm instance took the call.
  std::optional<std::chrono::nanoseconds> init_time;
  // The runtime streamed its response: its bytes went to InvokeRequest::on_stream_chunk.
  bool streamed = false;
};

// Shared, not copied: the event goes to the runtime, and the invocation record takes it back
// afterwards (see Invoker::Invoke).
using SharedEvent = std::shared_ptr<std::string>;

struct InvokeRequest {
  std::string request_id;
  SharedEvent event_json;
  std::chrono::milliseconds timeout{30000};
  std::string trace_id;
  std::string client_context;  // JSON for Lambda-Runtime-Client-Context; empty: none
  // Receives a streamed response's bytes as they arrive (Lambda's response streaming), on the
  // io thread; the result then carries no body. Empty: a streamed response is kept whole as
  // the result, a JSON string.
  std::function<void(std::string_view)> on_stream_chunk;
};

// Why an instance failed to become ready, in the terms a caller sees.
struct StartFailure {
  std::string error_type;     // e.g. Runtime.ImportModuleError, Runtime.ExitError
  std::string document_json;  // {errorType, errorMessage, stackTrace}
  std::string message;        // errorMessage, for the function's `error` field
  std::vector<std::string> logs;
};

}  // namespace wisp::scheduler
