#include <simdjson.h>

#include "wisp/api/routes.h"
#include "wisp/common/json_text.h"

namespace wisp::api {
namespace {

// The event a call carries: the "event" member of the body as the seeds send it; a body
// without one is itself the event (seed 004 posts the event bare); an empty body is {}.
// The event is passed on as minified JSON text, never re-encoded field by field.
Result<std::string> ExtractEvent(const std::string& body) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return std::string("{}");
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  const auto error = parser.parse(body.data(), body.size()).get(root);
  if (error == simdjson::DEPTH_ERROR) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("event is nested too deeply (limit {} levels)", simdjson::DEFAULT_MAX_DEPTH));
  }
  if (error) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("body is not valid JSON: {}", simdjson::error_message(error)));
  }
  simdjson::dom::element event;
  if (root.is_object() && root["event"].get(event) == simdjson::SUCCESS) {
    return simdjson::minify(event);
  }
  return simdjson::minify(root);
}

std::string OutcomeJson(const core::InvokeOutcome& outcome) {
  const auto& result = outcome.result;
  std::string out;
  size_t log_bytes = 0;
  for (const auto& line : result.logs) log_bytes += line.size() + 4;
  out.reserve(result.response_json.size() + log_bytes + 160);
  out += "{\"request_id\":\"";
  out += outcome.request_id;
  out += "\",\"status\":\"";
  out += scheduler::InvocationStatusName(result.status);
  out += "\",\"duration_ms\":";
  out += std::to_string(outcome.duration_ms);
  out += ",\"version\":";
  out += std::to_string(outcome.version);
  out += ",\"memory_used_mb\":";
  out += result.memory_used_mb ? std::to_string(*result.memory_used_mb) : "null";
  out += ",\"response\":";
  out += result.response_json.empty() ? "null" : result.response_json;
  out += ",\"logs\":";
  AppendJsonStringArray(out, result.logs);
  out += '}';
  return out;
}

// Server-Timing (W3C): where a call's time went inside wispd, in milliseconds. The reply's
// own write is what the client measures beyond "total".
std::string ServerTiming(std::chrono::nanoseconds parse, const scheduler::InvocationResult& result,
                         std::chrono::nanoseconds total) {
  const auto ms = [](std::chrono::nanoseconds d) {
    return std::chrono::duration<double, std::milli>(d).count();
  };
  return fmt::format("parse;dur={:.3f}, schedule;dur={:.3f}, runtime;dur={:.3f}, total;dur={:.3f}",
                     ms(parse), ms(result.schedule_time), ms(result.runtime_time), ms(total));
}

}  // namespace

void AddInvokeRoutes(Router& router, core::Invoker& invoker, core::AsyncDispatcher* async) {
  router.Add("POST", "/v1/functions/:id/invoke",
             [&invoker, async](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               if (!AcceptsJsonBody(request)) {
                 co_return ErrorResponse(415, "Content-Type must be application/json");
               }
               if (async && WantsAsyncInvoke(request)) {
                 co_return co_await AcceptAsyncInvoke(*async, request);
               }
               const auto received = std::chrono::steady_clock::now();
               auto event = ExtractEvent(request.body);
               if (!event) co_return ErrorResponse(event.error());
               const auto parsed = std::chrono::steady_clock::now();
               core::InvokeOptions options;
               options.trace_id = CallerTraceId(request);
               auto outcome = co_await invoker.Invoke(request.params["id"], std::move(*event),
                                                      std::move(options));
               if (!outcome) co_return ErrorResponse(outcome.error());
               HttpResponse response = JsonResponse(200, OutcomeJson(*outcome));
               response.headers.emplace_back(
                   "Server-Timing", ServerTiming(parsed - received, outcome->result,
                                                 std::chrono::steady_clock::now() - received));
               if (outcome->result.status != scheduler::InvocationStatus::kSuccess) {
                 // As Lambda's X-Amz-Function-Error: the call worked, the function did not.
                 response.headers.emplace_back(
                     "X-Wisp-Function-Error",
                     outcome->result.status == scheduler::InvocationStatus::kTimeout ? "Timeout"
                                                                                     : "Unhandled");
               }
               co_return response;
             });
}

}  // namespace wisp::api
