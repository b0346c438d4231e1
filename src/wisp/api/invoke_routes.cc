#include <simdjson.h>

#include "wisp/api/function_codec.h"
#include "wisp/api/json_views.h"
#include "wisp/api/routes.h"
#include "wisp/common/json_text.h"

namespace wisp::api {
namespace {

// Lambda's limit for an async event (256 KiB, raised to 1 MiB in 2025): the queue keeps every
// pending event in memory.
constexpr size_t kMaxAsyncEventBytes = 1 << 20;

// simdjson::minify(element), with the builder kept from call to call: a fresh one grew its
// buffer (several allocations) for every event. One that grew for a large event is let go.
std::string Minified(simdjson::dom::element element) {
  constexpr size_t kKeptBuilderBytes = 64 << 10;
  thread_local simdjson::internal::string_builder<> builder;
  builder.clear();
  builder.append(element);
  std::string minified(builder.str());
  if (minified.size() > kKeptBuilderBytes) builder = simdjson::internal::string_builder<>();
  return minified;
}

}  // namespace

Result<RequestEvent> ExtractEvent(std::string_view body) {
  RequestEvent out;
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    out.event_json = "{}";
    return out;
  }
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
  // A wrapper is an object whose keys are "event" and at most the boolean flag "async",
  // nothing else: {"event": "signup", "user": "bob"} is an event that has an `event` key.
  simdjson::dom::object object;
  if (root.get(object) == simdjson::SUCCESS) {
    simdjson::dom::element event;
    bool is_wrapper = object["event"].get(event) == simdjson::SUCCESS;
    bool async = false;
    for (const auto field : object) {
      if (!is_wrapper) break;
      if (field.key == "event") continue;
      is_wrapper = field.key == "async" && field.value.get(async) == simdjson::SUCCESS;
    }
    if (is_wrapper) {
      out.event_json = Minified(event);
      out.wrapped = true;
      out.async = async;
      return out;
    }
  }
  // The event is passed on as minified JSON text, never re-encoded field by field.
  out.event_json = Minified(root);
  return out;
}

namespace {

std::string OutcomeJson(const core::InvokeOutcome& outcome) {
  const auto& result = outcome.result;
  std::string out;
  size_t log_bytes = 0;
  for (const auto& line : result.logs) log_bytes += line.size() + 4;
  out.reserve(result.response_json.size() + log_bytes + 200);
  out += "{\"request_id\":\"";
  out += outcome.request_id;
  out += "\",\"status\":\"";
  out += scheduler::InvocationStatusName(result.status);
  out += "\",\"duration_ms\":";
  out += std::to_string(outcome.duration_ms);
  out += ",\"queue_wait_ms\":";
  out += std::to_string(outcome.queue_wait_ms);
  out += ",\"init_duration_ms\":";
  out += outcome.init_duration_ms ? std::to_string(*outcome.init_duration_ms) : "null";
  out += ",\"version\":";
  out += std::to_string(outcome.version);
  out += ",\"executed_version\":\"";
  out += outcome.executed_version;
  out += "\",\"memory_used_mb\":";
  out += result.memory_used_mb ? std::to_string(*result.memory_used_mb) : "null";
  out += ",\"response\":";
  out += result.response_json.empty() ? "null" : result.response_json;
  out += ",\"logs\":";
  AppendJsonStringArray(out, result.logs);
  out += '}';
  return out;
}

// Queues the call; 202 {"invocation_id", "status": "queued"} once it is durable.
asio::awaitable<HttpResponse> QueueInvocation(core::AsyncDispatcher& async, HttpRequest& request,
                                              std::string event_json, std::string qualifier) {
  if (event_json.size() > kMaxAsyncEventBytes) {
    co_return ErrorResponse(
        413, fmt::format("an async event may be at most {} bytes", kMaxAsyncEventBytes));
  }
  core::SubmitRequest submit;
  submit.function_id = request.params["id"];
  submit.event_json = std::move(event_json);
  submit.trace_id = CallerTraceId(request);
  submit.qualifier = std::move(qualifier);
  auto accepted = co_await async.Submit(std::move(submit));
  if (!accepted) co_return ErrorResponse(accepted.error());
  HttpResponse response =
      JsonResponse(202, fmt::format(R"({{"invocation_id":"{}","status":"queued"}})", accepted->id));
  response.headers.emplace_back("Location", "/v1/invocations/" + accepted->id);
  co_return response;
}

// Appends `d` in milliseconds with three decimals ("0.042"), rounded to the microsecond: from
// integers, since formatting doubles was a measurable part of every call's handling.
void AppendMillis(std::string& out, std::chrono::nanoseconds d) {
  int64_t micros = (d.count() + (d.count() < 0 ? -500 : 500)) / 1000;
  if (micros < 0) {
    out += '-';
    micros = -micros;
  }
  out += std::to_string(micros / 1000);
  const int fraction = static_cast<int>(micros % 1000);
  out += '.';
  out += static_cast<char>('0' + fraction / 100);
  out += static_cast<char>('0' + fraction / 10 % 10);
  out += static_cast<char>('0' + fraction % 10);
}

// Server-Timing (W3C): where a call's time went inside wispd, in milliseconds. The reply's
// own write is what the client measures beyond "total".
std::string ServerTiming(std::chrono::nanoseconds parse, const scheduler::InvocationResult& result,
                         std::chrono::nanoseconds total) {
  std::string out;
  out.reserve(96);
  out += "parse;dur=";
  AppendMillis(out, parse);
  out += ", schedule;dur=";
  AppendMillis(out, result.schedule_time);
  out += ", runtime;dur=";
  AppendMillis(out, result.runtime_time);
  out += ", total;dur=";
  AppendMillis(out, total);
  return out;
}

}  // namespace

void AddInvokeRoutes(Router& router, core::Invoker& invoker, core::AsyncDispatcher* async) {
  router.Add(
      "POST", "/v1/functions/:id/invoke",
      [&invoker, async](HttpRequest& request) -> asio::awaitable<HttpResponse> {
        if (!request.query.empty()) {
          if (auto known = CheckQueryParameters(request, {"version", "qualifier"}); !known) {
            co_return ErrorResponse(known.error());
          }
        }
        if (!AcceptsJsonBody(request)) {
          co_return ErrorResponse(415, "Content-Type must be application/json");
        }
        const auto received = std::chrono::steady_clock::now();
        auto event = ExtractEvent(request.body);
        if (!event) co_return ErrorResponse(event.error());
        const std::string_view type = request.Header("x-invocation-type");
        if (!type.empty() && type != "Event" && type != "event" && type != "RequestResponse") {
          co_return ErrorResponse(
              400, fmt::format("unknown X-Invocation-Type '{}': use Event (async) or "
                               "RequestResponse (sync)",
                               type));
        }
        const bool wants_async = type.empty() ? event->async : (type == "Event" || type == "event");
        core::InvokeOptions options;
        if (auto it = request.query.find("version"); it != request.query.end()) {
          // An empty value (QueryInt's fallback 0) is refused like any other non-version.
          auto version = QueryInt(request, "version", 0, 1, INT32_MAX);
          if (!version || *version == 0) {
            co_return ErrorResponse(400, "version must be an integer from 1 (the version to run)");
          }
          options.version = *version;
        }
        // The version to run: `{id}:{qualifier}` in the path or `?qualifier=`, a published
        // version's number or an alias (ids never hold a colon).
        std::string id = request.params["id"];
        if (const size_t colon = id.find(':'); colon != std::string::npos) {
          options.qualifier = id.substr(colon + 1);
          id.resize(colon);
          request.params["id"] = id;
        }
        if (auto it = request.query.find("qualifier"); it != request.query.end()) {
          if (!options.qualifier.empty() && options.qualifier != it->second) {
            co_return ErrorResponse(400, "the qualifier in the path and ?qualifier= differ");
          }
          options.qualifier = it->second;
        }
        if (async && wants_async) {
          if (options.version) {
            co_return ErrorResponse(
                400,
                "version applies to synchronous calls: an async call runs on the "
                "version that serves when it starts");
          }
          co_return co_await QueueInvocation(*async, request, std::move(event->event_json),
                                             std::move(options.qualifier));
        }
        const auto parsed = std::chrono::steady_clock::now();
        options.trace_id = CallerTraceId(request);
        auto outcome = co_await invoker.Invoke(std::move(id), std::move(event->event_json),
                                               std::move(options));
        if (!outcome) co_return ErrorResponse(outcome.error());
        HttpResponse response = JsonResponse(200, OutcomeJson(*outcome));
        response.headers.reserve(3);  // the two below, and X-Wisp-Function-Error
        response.headers.emplace_back("X-Wisp-Executed-Version", outcome->executed_version);
        response.headers.emplace_back("Server-Timing",
                                      ServerTiming(parsed - received, outcome->result,
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
