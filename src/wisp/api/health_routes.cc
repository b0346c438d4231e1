#include <nlohmann/json.hpp>

#include "wisp/api/routes.h"

namespace wisp::api {

void AddHealthRoutes(Router& router, HealthInfo info) {
  router.Add("GET", "/health", [info](HttpRequest&) -> asio::awaitable<HttpResponse> {
    const auto& c = *info.counters;
    const double uptime =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - info.started).count();
    const uint64_t success = c.success.load();
    nlohmann::json body = {
        {"status", info.limits_enforced ? "ok" : "degraded"},
        {"uptime", uptime},
        {"totalInvocations", c.total.load()},
        {"successfulInvocations", success},
        {"failedInvocations", c.error.load() + c.timeout.load()},
        {"timedOutInvocations", c.timeout.load()},
        {"rejectedInvocations", c.rejected.load()},
        {"inFlightInvocations", c.in_flight.load()},
        {"functions", info.functions->List().size()},
        {"instances", info.scheduler->instance_count()},
        {"prewarmed", info.scheduler->PrewarmedIdle()},
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
    // Seed 002's clients read {"data": {"status": ...}}; /v1's read the top level.
    body["data"] = {{"status", body["status"]}};
    if (!info.limits_enforced) {
      body["warning"] = "sandbox resource limits are NOT enforced (--no-enforce-limits)";
    }
    co_return JsonResponse(200, body.dump());
  });
}

}  // namespace wisp::api
