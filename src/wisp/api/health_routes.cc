#include <nlohmann/json.hpp>

#include "wisp/api/routes.h"

namespace wisp::api {

void AddHealthRoutes(Router& router, HealthInfo info) {
  router.Add("GET", "/health", [info](HttpRequest&) -> asio::awaitable<HttpResponse> {
    const auto snapshot = info.metrics->Read();
    const auto& node = snapshot.node;
    const double uptime =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - info.started).count();
    nlohmann::json body = {
        {"status", info.limits_enforced ? "ok" : "degraded"},
        {"uptime", uptime},
        {"totalInvocations", node.invocations()},
        {"successfulInvocations", node.success},
        {"failedInvocations", node.error + node.timeout},
        {"timedOutInvocations", node.timeout},
        // Refused before running: throttled, not found, not ready, no sandbox.
        {"rejectedInvocations", node.throttles + snapshot.rejected_before_run},
        {"throttledInvocations", node.throttles},
        {"coldStarts", node.cold_starts},
        {"inFlightInvocations", node.in_flight},
        // Upper bounds of the histogram buckets that hold the quantiles (see metrics::Histogram).
        {"durationP50Micros", node.duration.QuantileMicros(0.5)},
        {"durationP99Micros", node.duration.QuantileMicros(0.99)},
        {"functions", info.functions->List().size()},
        {"instances", info.scheduler->instance_count()},
        {"prewarmed", info.scheduler->PrewarmedIdle()},
        // What each pool is growing (or shrinking) to: its size raised by recent cold starts.
        {"prewarmTargets", info.scheduler->PrewarmTargets()},
        // Warmed up since the start (GET /health/ready).
        {"ready", info.scheduler->WarmedUp()},
        {"sandboxLimitsEnforced", info.limits_enforced},
        {"invocationRecordsStored", info.writer ? info.writer->written() : 0},
        // A failed batch costs records of calls that did answer: worth an operator's look.
        {"invocationRecordBatchesLost", info.writer ? info.writer->failed_batches() : 0},
        {"invocationRecordsPruned", info.writer ? info.writer->pruned() : 0},
        // Of those pruned, the ones deleted by the node-wide byte budget.
        {"invocationRecordsEvicted", info.writer ? info.writer->evicted() : 0},
        {"invocationRecordBytesReclaimed", info.writer ? info.writer->reclaimed_bytes() : 0},
    };
    if (info.queue) {
      const auto q = info.queue->stats();
      body["asyncQueue"] = {{"queued", q.queued},
                            {"running", q.running},
                            {"accepted", q.accepted},
                            {"commits", q.commits}};
    }
    // The program API's clients read {"data": {"status": ...}}; /v1's read the top level.
    body["data"] = {{"status", body["status"]}};
    if (!info.limits_enforced) {
      body["warning"] = "sandbox resource limits are NOT enforced (--no-enforce-limits)";
    }
    co_return JsonResponse(200, body.dump());
  });
  // Readiness, for a load balancer or an orchestrator: 503 while a restarted node's prewarm
  // pools are still filling (a burst of first calls now would pay full starts), 200 once they
  // hold what they are filling to (Scheduler::WarmedUp). /health is liveness: 200 while wispd
  // answers at all. Calls are served either way.
  router.Add("GET", "/health/ready", [info](HttpRequest&) -> asio::awaitable<HttpResponse> {
    // Answered without credentials too (a load balancer has none): it says nothing else. The
    // pools' counts are in /health.
    const bool ready = info.scheduler->WarmedUp();
    nlohmann::json body = {{"ready", ready}};
    if (!ready) body["waitingFor"] = "the prewarm pools to fill after the start";
    co_return JsonResponse(ready ? 200 : 503, body.dump());
  });
}

}  // namespace wisp::api
