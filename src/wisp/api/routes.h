// The public API's routes, one function per resource; each adds its routes to the router.
#pragma once

#include <chrono>

#include "wisp/api/http.h"
#include "wisp/core/function_service.h"
#include "wisp/core/invoker.h"
#include "wisp/store/invocation_writer.h"
#include "wisp/store/store.h"

namespace wisp::api {

// /v1/functions: create, list, get, update, delete, and the invocation logs.
void AddFunctionRoutes(Router& router, core::FunctionService& functions,
                       scheduler::Scheduler& scheduler, store::Store& store,
                       store::InvocationWriter& writer, asio::thread_pool& workers);

// /v1/functions/:id/invoke: the synchronous invoke.
void AddInvokeRoutes(Router& router, core::Invoker& invoker);

// /health: liveness, uptime and invocation counters.
struct HealthInfo {
  std::chrono::steady_clock::time_point started;
  const core::InvocationCounters* counters;
  const core::FunctionService* functions;
  const scheduler::Scheduler* scheduler;
  bool limits_enforced = true;
};
void AddHealthRoutes(Router& router, HealthInfo info);

// Checks that `body` is JSON within the nesting limit, so no later parser can be driven into
// deep recursion. The message says what is wrong.
Result<void> CheckJson(std::string_view body);

}  // namespace wisp::api
