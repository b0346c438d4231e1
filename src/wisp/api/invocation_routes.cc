// /v1's async invocations: the accept path of POST /v1/functions/:id/invoke when asked for,
// the records (/v1/invocations), and the dead-letter queue (/v1/dead-letters).
#include <nlohmann/json.hpp>

#include "wisp/api/json_views.h"
#include "wisp/api/routes.h"

namespace wisp::api {
namespace {
using nlohmann::json;

// Lambda's limit for an async event (256 KiB, raised to 1 MiB in 2025): the queue keeps every
// pending event in memory.
constexpr size_t kMaxAsyncEventBytes = 1 << 20;

const char* const kStatuses[] = {queue::kQueued, queue::kRunning, queue::kSuccess,
                                 queue::kError,  queue::kTimeout, queue::kDeadLetter};

bool IsStatus(const std::string& s) {
  for (const char* status : kStatuses) {
    if (s == status) return true;
  }
  return false;
}

// The event of an async call: the body's "event", or the body without its "async" flag.
Result<std::string> AsyncEvent(const std::string& body) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return std::string("{}");
  if (auto valid = CheckJson(body); !valid) return tl::unexpected(valid.error());
  json root = json::parse(body, nullptr, false);
  if (root.is_object()) {
    if (root.contains("event")) return root["event"].dump();
    root.erase("async");
  }
  return root.dump();
}

}  // namespace

json JsonOrString(const std::string& text) {
  if (text.empty()) return nullptr;
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return value.is_discarded() ? json(text) : value;
}

json TimestampJson(std::optional<int64_t> ms) {
  if (!ms) return nullptr;
  return FormatIso8601(std::chrono::system_clock::time_point(std::chrono::milliseconds(*ms)));
}

HttpResponse JsonBody(int status, const json& body) {
  return JsonResponse(status, body.dump(-1, ' ', false, json::error_handler_t::replace));
}

Result<int> QueryInt(const HttpRequest& request, const std::string& name, int fallback, int min,
                     int max) {
  auto it = request.query.find(name);
  if (it == request.query.end() || it->second.empty()) return fallback;
  try {
    size_t used = 0;
    const long value = std::stol(it->second, &used);
    if (used == it->second.size() && value >= min && value <= max) return static_cast<int>(value);
  } catch (const std::exception&) {
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("{} must be an integer from {} to {}", name, min, max));
}

json InvocationItem(const queue::Invocation& r) {
  json history = json::array();
  for (const auto& a : r.history) {
    json entry = {{"attempt", a.number},
                  {"status", a.status},
                  {"started_at", TimestampJson(a.started_at_ms)},
                  {"finished_at", TimestampJson(a.finished_at_ms)}};
    if (!a.error.empty()) entry["error"] = a.error;
    history.push_back(std::move(entry));
  }
  return {
      {"id", r.id},
      {"request_id", r.id},
      {"function_id", r.function_id},
      {"status", r.status},
      {"attempts", r.attempts},
      {"event", JsonOrString(r.event_json)},
      {"headers", JsonOrString(r.headers_json)},
      {"response", JsonOrString(r.response_json)},
      {"logs", r.logs},
      {"error", r.error.empty() ? json(nullptr) : json(r.error)},
      {"dead_letter_reason",
       r.dead_letter_reason.empty() ? json(nullptr) : json(r.dead_letter_reason)},
      {"version", r.version},
      {"created_at", TimestampJson(r.created_at_ms)},
      {"started_at", TimestampJson(r.started_at_ms)},
      {"finished_at", TimestampJson(r.finished_at_ms)},
      {"duration_ms", r.duration_ms},
      {"next_attempt_at",
       r.status == queue::kQueued ? TimestampJson(r.next_attempt_at_ms) : json(nullptr)},
      {"timeout_ms", r.timeout_ms > 0 ? json(r.timeout_ms) : json(nullptr)},
      {"history", std::move(history)},
  };
}

bool WantsAsyncInvoke(const HttpRequest& request) {
  const std::string_view type = request.Header("x-invocation-type");
  if (!type.empty()) return type == "Event" || type == "event";
  // Only a body that mentions the flag pays for a parse here.
  if (request.body.find("\"async\"") == std::string::npos) return false;
  const json root = json::parse(request.body, nullptr, false);
  return root.is_object() && root.contains("async") && root["async"] == true;
}

asio::awaitable<HttpResponse> AcceptAsyncInvoke(core::AsyncDispatcher& async,
                                                HttpRequest& request) {
  auto event = AsyncEvent(request.body);
  if (!event) co_return ErrorResponse(event.error());
  if (event->size() > kMaxAsyncEventBytes) {
    co_return ErrorResponse(
        413, fmt::format("an async event may be at most {} bytes", kMaxAsyncEventBytes));
  }
  core::SubmitRequest submit;
  submit.function_id = request.params["id"];
  submit.event_json = std::move(*event);
  submit.trace_id = CallerTraceId(request);
  auto accepted = co_await async.Submit(std::move(submit));
  if (!accepted) co_return ErrorResponse(accepted.error());
  HttpResponse response =
      JsonResponse(202, fmt::format(R"({{"invocation_id":"{}","status":"queued"}})", accepted->id));
  response.headers.emplace_back("Location", "/v1/invocations/" + accepted->id);
  co_return response;
}

asio::awaitable<Result<std::vector<queue::Invocation>>> ListInvocations(queue::Queue& queue,
                                                                        asio::thread_pool& workers,
                                                                        const HttpRequest& request,
                                                                        queue::ListFilter filter) {
  constexpr int kDefaultListLimit = 100;
  constexpr int kMaxListLimit = 1000;
  auto limit = QueryInt(request, "limit", kDefaultListLimit, 1, kMaxListLimit);
  if (!limit) co_return tl::unexpected(limit.error());
  auto offset = QueryInt(request, "offset", 0, 0, INT32_MAX);
  if (!offset) co_return tl::unexpected(offset.error());
  filter.limit = *limit;
  filter.offset = *offset;
  auto work = [&queue, filter] { return queue.List(filter); };
  co_return co_await Offload(workers, std::move(work));
}

void AddInvocationRoutes(Router& router, core::AsyncDispatcher& async, queue::Queue& queue,
                         asio::thread_pool& workers) {
  router.Add("GET", "/v1/invocations/:id",
             [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               auto get = [&queue, id = request.params["id"]] { return queue.Get(id); };
               auto invocation = co_await Offload(workers, std::move(get));
               if (!invocation) co_return ErrorResponse(invocation.error());
               co_return JsonBody(200, json{{"item", InvocationItem(*invocation)}});
             });

  auto list = [&](HttpRequest& request,
                  std::string forced_status) -> asio::awaitable<HttpResponse> {
    queue::ListFilter filter;
    filter.function_id = request.query["function_id"];
    filter.status = forced_status.empty() ? request.query["status"] : forced_status;
    if (!filter.status.empty() && !IsStatus(filter.status)) {
      co_return ErrorResponse(
          400, fmt::format("unknown status '{}': use queued, running, success, error, timeout "
                           "or dead_letter",
                           filter.status));
    }
    auto records = co_await ListInvocations(queue, workers, request, std::move(filter));
    if (!records) co_return ErrorResponse(records.error());
    json items = json::array();
    for (const auto& r : *records) items.push_back(InvocationItem(r));
    co_return JsonBody(200, json{{"items", std::move(items)}});
  };
  router.Add("GET", "/v1/invocations", [list](HttpRequest& request) { return list(request, ""); });
  router.Add("GET", "/v1/dead-letters",
             [list](HttpRequest& request) { return list(request, queue::kDeadLetter); });

  auto requeue = [&async](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    auto requeued = co_await async.Requeue(request.params["id"]);
    if (!requeued) co_return ErrorResponse(requeued.error());
    co_return JsonBody(202, json{{"invocation_id", requeued->id},
                                 {"status", requeued->status},
                                 {"item", InvocationItem(*requeued)}});
  };
  router.Add("POST", "/v1/dead-letters/:id/requeue", requeue);
  router.Add("POST", "/v1/invocations/:id/requeue", requeue);
}

}  // namespace wisp::api
