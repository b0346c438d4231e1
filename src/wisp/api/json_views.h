// JSON views shared by the routes: invocation records, timestamps, listings.
#pragma once

#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "wisp/api/http.h"
#include "wisp/queue/queue.h"
#include "wisp/store/records.h"

namespace wisp::api {

// The /v1 item: {id, function_id, status, attempts, event, response, logs, error, ...}.
nlohmann::json InvocationItem(const queue::Invocation& invocation);

// A stored record's event, response and logs into `item`, with the marks of a cut field:
// `<field>_truncated`, `<field>_size` (the original bytes) and, when cut, `<field>_preview`.
void AddRecordPayloads(nlohmann::json& item, const store::InvocationRecord& record);

// JSON text as a value (a string if it is not JSON: a function's plain-text result).
nlohmann::json JsonOrString(const std::string& text);

// An ISO 8601 timestamp, or null.
nlohmann::json TimestampJson(std::optional<int64_t> ms);

// limit and offset of a listing; kInvalidArgument naming the bad one.
Result<int> QueryInt(const HttpRequest& request, const std::string& name, int fallback, int min,
                     int max);

HttpResponse JsonBody(int status, const nlohmann::json& body);

// Runs a listing of async invocations with the request's limit and offset (default 100, at most
// 1000) on the worker pool.
asio::awaitable<Result<std::vector<queue::Invocation>>> ListInvocations(queue::Queue& queue,
                                                                        asio::thread_pool& workers,
                                                                        const HttpRequest& request,
                                                                        queue::ListFilter filter);

}  // namespace wisp::api
