// A function's schedules: GET and PUT /v1/functions/:id/schedules (the same list the function's
// `schedules` field holds, with each one's next firing), and, only when the test clock is on,
// POST /v1/test/schedule-clock.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "wisp/api/routes.h"
#include "wisp/api/schedule_routes.h"
#include "wisp/common/json_text.h"

namespace wisp::api {
namespace {

using nlohmann::json;

core::Function* FindV1(core::FunctionService& functions, const std::string& id) {
  if (core::Function* f = functions.Find(id)) return f;
  return functions.FindByName(id);
}

json SchedulesView(const schedule::ScheduleRunner& runner, const store::FunctionRecord& record) {
  const auto schedules = schedule::ParseStoredSchedules(record.schedules_json);
  json items = schedule::EncodeSchedules(schedules);
  for (size_t i = 0; i < schedules.size(); ++i) {
    const auto next = runner.NextFiring(schedules[i]);
    items[i]["next_at"] =
        next ? json(FormatIso8601(std::chrono::system_clock::time_point(*next))) : json(nullptr);
  }
  return json{{"function_id", record.id}, {"schedules", std::move(items)}};
}

std::string ReportJson(const schedule::ScheduleRunner& runner, const schedule::PassReport& r) {
  return json{{"now", FormatIso8601(std::chrono::system_clock::time_point(runner.now()))},
              {"fired", r.fired},
              {"lost", r.lost},
              {"skipped", r.skipped},
              {"invocation_ids", r.invocation_ids}}
      .dump();
}

}  // namespace

void AddScheduleRoutes(Router& router, core::FunctionService& functions,
                       schedule::ScheduleRunner& runner, schedule::SteppedClock* test_clock) {
  router.Add("GET", "/v1/functions/:id/schedules",
             [&functions, &runner](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               core::Function* f = FindV1(functions, request.params["id"]);
               if (!f) co_return ErrorResponse(404, "function not found");
               co_return JsonResponse(200, SchedulesView(runner, f->record).dump());
             });
  // Replaces every schedule: the body is {"schedules": [...]} or the array itself.
  router.Add("PUT", "/v1/functions/:id/schedules",
             [&functions, &runner](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               core::Function* f = FindV1(functions, request.params["id"]);
               if (!f) co_return ErrorResponse(404, "function not found");
               json body = json::parse(request.body, nullptr, false);
               if (body.is_object() && body.size() == 1 && body.contains("schedules")) {
                 body = body["schedules"];
               }
               const auto now =
                   std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
               auto schedules = schedule::DecodeSchedules(body, now);
               if (!schedules) co_return ErrorResponse(schedules.error());
               core::FunctionFields fields;
               fields.schedules_json = schedule::StoreSchedules(*schedules);
               auto stored = co_await functions.Update(f->record.id, std::move(fields));
               if (!stored) co_return ErrorResponse(stored.error());
               co_return JsonResponse(200, SchedulesView(runner, *stored).dump());
             });
  if (!test_clock) return;
  // Tests only (schedule_test_clock_start): one pass at the current time, so that schedules
  // created since are armed, then the clock moves and a second pass fires what became due.
  router.Add("POST", "/v1/test/schedule-clock",
             [&runner, test_clock](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               const json body = json::parse(request.body, nullptr, false);
               if (!body.is_object() || !body.contains("advance_seconds") ||
                   !body["advance_seconds"].is_number_integer() ||
                   body["advance_seconds"].get<int64_t>() < 0) {
                 co_return ErrorResponse(
                     400, "body must be {\"advance_seconds\": N} with N a whole number >= 0");
               }
               const auto advance = std::chrono::seconds(body["advance_seconds"].get<int64_t>());
               (void)co_await runner.RunOnce();
               test_clock->Advance(advance);
               const schedule::PassReport report = co_await runner.RunOnce();
               co_return JsonResponse(200, ReportJson(runner, report));
             });
}

}  // namespace wisp::api
