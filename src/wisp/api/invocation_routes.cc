// /v1's async invocations: the accept path of POST /v1/functions/:id/invoke when asked for,
// the records of every call, sync and async (/v1/invocations), and the dead-letter queue
// (/v1/dead-letters).
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include <nlohmann/json.hpp>

#include "wisp/api/json_views.h"
#include "wisp/api/routes.h"

namespace wisp::api {
namespace {
using nlohmann::json;

const char* const kStatuses[] = {queue::kQueued, queue::kRunning, queue::kSuccess,
                                 queue::kError,  queue::kTimeout, queue::kDeadLetter};

bool IsStatus(const std::string& s) {
  for (const char* status : kStatuses) {
    if (s == status) return true;
  }
  return false;
}

// Deep pages cost a walk over every record before them, in two stores: past this offset, page
// by time (`until`) instead.
constexpr int kMaxListOffset = 100000;

const std::set<std::string, std::less<>> kListParameters = {
    "function_id", "status", "type", "since", "until", "limit", "offset"};

// A `since`/`until` parameter: milliseconds since the epoch, or ISO 8601 in UTC as the API
// writes it ("2025-10-22T08:25:59.898Z", fraction and Z optional).
Result<std::optional<int64_t>> QueryTime(const HttpRequest& request, const char* name) {
  auto it = request.query.find(name);
  if (it == request.query.end() || it->second.empty()) return std::optional<int64_t>();
  const std::string& text = it->second;
  auto bad = [&] {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{} must be milliseconds since the epoch or an ISO 8601 time "
                                 "such as 2025-10-22T08:25:59.898Z, not '{}'",
                                 name, text));
  };
  if (std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (text.size() > 15) return bad();
    return std::optional<int64_t>(std::stoll(text));
  }
  std::tm tm{};
  int millis = 0;
  int used = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &used) != 6) {
    return bad();
  }
  size_t at = static_cast<size_t>(used);
  if (at < text.size() && text[at] == '.') {
    int digits = 0;
    for (++at; at < text.size() && text[at] >= '0' && text[at] <= '9'; ++at, ++digits) {
      if (digits < 3) millis = millis * 10 + (text[at] - '0');
    }
    if (digits == 0) return bad();
    for (; digits < 3; ++digits) millis *= 10;
  }
  if (at < text.size() && text[at] == 'Z') ++at;
  if (at != text.size() || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
      tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
    return bad();
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return std::optional<int64_t>(static_cast<int64_t>(timegm(&tm)) * 1000 + millis);
}

// The error summary of a stored call: the error document's type and message.
json RecordError(const store::InvocationRecord& r) {
  if (r.status == queue::kSuccess) return nullptr;
  if (!r.response_size) {
    const json response = json::parse(r.response_json, nullptr, false);
    if (response.is_object() && response.contains("errorMessage")) {
      const std::string type = response.value("errorType", "");
      const std::string message = response["errorMessage"].is_string()
                                      ? response["errorMessage"].get<std::string>()
                                      : response["errorMessage"].dump();
      return type.empty() ? message : type + ": " + message;
    }
  }
  return r.status;
}

// A sync call's record in the shape of an async invocation's item: one attempt, no queue.
json SyncInvocationItem(const store::InvocationRecord& r) {
  json item = {
      {"id", r.id},
      {"request_id", r.request_id},
      {"function_id", r.function_id},
      {"type", r.async ? "async" : "sync"},
      {"status", r.status},
      {"attempts", 1},
      {"headers", nullptr},
      {"error", RecordError(r)},
      {"dead_letter_reason", nullptr},
      {"version", r.version},
      {"executed_version", r.executed_version.empty() ? json(nullptr) : json(r.executed_version)},
      {"created_at", TimestampJson(r.invoked_at_ms)},
      {"started_at", TimestampJson(r.invoked_at_ms)},
      {"finished_at", TimestampJson(r.invoked_at_ms + r.duration_ms)},
      {"duration_ms", r.duration_ms},
      {"memory_used_mb", r.memory_used_mb ? json(*r.memory_used_mb) : json(nullptr)},
      {"next_attempt_at", nullptr},
      {"timeout_ms", nullptr},
      {"history", json::array()},
  };
  AddRecordPayloads(item, r);
  return item;
}

// A listed call: enough to merge both sources' pages before reading the records of one.
struct PageKey {
  int64_t time_ms;
  std::string id;
  bool async;
};

struct ListQuery {
  std::string function_id;
  std::string status;
  std::string type;  // "", "sync" or "async"
  std::optional<int64_t> since_ms;
  std::optional<int64_t> until_ms;
  int limit = 100;
  int offset = 0;
};

bool IsSyncStatus(const std::string& status) {
  return status.empty() || status == queue::kSuccess || status == queue::kError ||
         status == queue::kTimeout;
}

// Blocking (the worker pool): reads keys of both sources, merges them, then reads the records
// of the page only.
Result<json> ListEveryInvocation(queue::Queue& queue, store::Store& store,
                                 store::InvocationWriter& writer, const ListQuery& q) {
  const int wanted = q.offset + q.limit;
  std::vector<PageKey> keys;
  if (q.type != "async" && IsSyncStatus(q.status)) {
    writer.Flush();  // the newest calls are in the batch not yet written
    store::InvocationQuery query;
    query.function_id = q.function_id;
    query.status = q.status;
    query.async = false;  // an async call's attempts show as the queue's invocation
    query.since_ms = q.since_ms;
    query.until_ms = q.until_ms;
    query.limit = wanted;
    query.keys_only = true;
    auto records = store.QueryInvocations(query);
    if (!records) return tl::unexpected(records.error());
    for (auto& r : *records) keys.push_back({r.invoked_at_ms, std::move(r.id), false});
  }
  if (q.type != "sync") {
    queue::ListFilter filter;
    filter.function_id = q.function_id;
    filter.status = q.status;
    filter.since_ms = q.since_ms;
    filter.until_ms = q.until_ms;
    filter.limit = wanted;
    filter.keys_only = true;
    auto invocations = queue.List(filter);
    if (!invocations) return tl::unexpected(invocations.error());
    for (auto& i : *invocations) keys.push_back({i.created_at_ms, std::move(i.id), true});
  }
  // Each source is in order already (ties: the later written first); at equal times sync calls
  // come before async invocations. A stable sort keeps both orders.
  std::stable_sort(keys.begin(), keys.end(),
                   [](const PageKey& a, const PageKey& b) { return a.time_ms > b.time_ms; });
  json items = json::array();
  for (size_t i = static_cast<size_t>(q.offset); i < keys.size() && i < size_t(wanted); ++i) {
    const PageKey& key = keys[i];
    if (key.async) {
      auto invocation = queue.Get(key.id);
      if (!invocation) continue;  // gone since the keys were read
      items.push_back(InvocationItem(*invocation));
    } else {
      auto record = store.GetInvocation(key.id);
      if (!record) continue;  // pruned since the keys were read
      items.push_back(SyncInvocationItem(*record));
    }
  }
  return items;
}

}  // namespace

void AddRecordPayloads(json& item, const store::InvocationRecord& r) {
  // A cut field is never shown in the field itself, where its first bytes would pass for a
  // (string) value: the field is null, `<field>_truncated` is true, and `<field>_preview` has
  // the bytes kept, as text.
  auto payload = [&item](const char* name, const std::string& text,
                         const std::optional<int64_t>& cut_size) {
    const std::string field = name;
    item[field] = cut_size ? json(nullptr) : JsonOrString(text);
    item[field + "_truncated"] = cut_size.has_value();
    item[field + "_size"] = cut_size.value_or(static_cast<int64_t>(text.size()));
    if (cut_size) item[field + "_preview"] = text;
  };
  payload("event", r.event_json, r.event_size);
  payload("response", r.response_json, r.response_size);
  int64_t logs_bytes = 0;
  for (const auto& line : r.logs) logs_bytes += static_cast<int64_t>(line.size());
  item["logs"] = r.logs;  // when cut: the last lines, whole lines of the call's own output
  item["logs_truncated"] = r.logs_size.has_value();
  item["logs_size"] = r.logs_size.value_or(logs_bytes);
}

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
  json item = {
      {"id", r.id},
      {"request_id", r.id},
      {"function_id", r.function_id},
      {"type", "async"},
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
      // Each attempt of an alias's invocation may run another version: its record says which.
      {"qualifier", r.qualifier.empty() ? json("$LATEST") : json(r.qualifier)},
      {"created_at", TimestampJson(r.created_at_ms)},
      {"started_at", TimestampJson(r.started_at_ms)},
      {"finished_at", TimestampJson(r.finished_at_ms)},
      {"duration_ms", r.duration_ms},
      {"next_attempt_at",
       r.status == queue::kQueued ? TimestampJson(r.next_attempt_at_ms) : json(nullptr)},
      {"timeout_ms", r.timeout_ms > 0 ? json(r.timeout_ms) : json(nullptr)},
      {"history", std::move(history)},
  };
  // The queue keeps an async invocation whole (its event is at most 1 MiB).
  item["event_truncated"] = false;
  item["response_truncated"] = false;
  item["logs_truncated"] = false;
  return item;
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
                         store::Store& store, store::InvocationWriter& writer,
                         asio::thread_pool& workers) {
  // An async invocation's id, or a sync call's (its request id).
  router.Add("GET", "/v1/invocations/:id",
             [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               auto get = [&queue, &store, &writer, id = request.params["id"]]() -> Result<json> {
                 auto invocation = queue.Get(id);
                 if (invocation) return InvocationItem(*invocation);
                 if (invocation.error().code != ErrorCode::kNotFound) {
                   return tl::unexpected(invocation.error());
                 }
                 writer.Flush();  // a call that just ended may still be in the writer's batch
                 auto record = store.GetInvocation(id);
                 if (!record) return tl::unexpected(record.error());
                 return SyncInvocationItem(*record);
               };
               auto item = co_await Offload(workers, std::move(get));
               if (!item) co_return ErrorResponse(item.error());
               co_return JsonBody(200, json{{"item", std::move(*item)}});
             });

  router.Add("GET", "/v1/invocations", [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    for (const auto& parameter : request.query) {
      if (!kListParameters.count(parameter.first)) {
        co_return ErrorResponse(
            400, fmt::format("unknown parameter '{}': use function_id, status, type, since, "
                             "until, limit or offset",
                             parameter.first));
      }
    }
    ListQuery q;
    q.function_id = request.query["function_id"];
    q.status = request.query["status"];
    q.type = request.query["type"];
    if (!q.status.empty() && !IsStatus(q.status)) {
      co_return ErrorResponse(
          400, fmt::format("unknown status '{}': use queued, running, success, error, "
                           "timeout or dead_letter",
                           q.status));
    }
    if (!q.type.empty() && q.type != "sync" && q.type != "async") {
      co_return ErrorResponse(400, fmt::format("unknown type '{}': use sync or async", q.type));
    }
    auto since = QueryTime(request, "since");
    if (!since) co_return ErrorResponse(since.error());
    auto until = QueryTime(request, "until");
    if (!until) co_return ErrorResponse(until.error());
    q.since_ms = *since;
    q.until_ms = *until;
    auto limit = QueryInt(request, "limit", 100, 1, 1000);
    if (!limit) co_return ErrorResponse(limit.error());
    auto offset = QueryInt(request, "offset", 0, 0, kMaxListOffset);
    if (!offset) co_return ErrorResponse(offset.error());
    q.limit = *limit;
    q.offset = *offset;
    auto list = [&queue, &store, &writer, q] {
      return ListEveryInvocation(queue, store, writer, q);
    };
    auto items = co_await Offload(workers, std::move(list));
    if (!items) co_return ErrorResponse(items.error());
    co_return JsonBody(200, json{{"items", std::move(*items)}});
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
