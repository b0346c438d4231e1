// JSON views shared by the routes: invocation records, timestamps, listings.
#pragma once

#include <optional>

#include <nlohmann/json.hpp>

#include "wisp/api/http.h"
#include "wisp/queue/queue.h"

namespace wisp::api {

// The /v1 item: {id, function_id, status, attempts, event, response, logs, error, ...}.
nlohmann::json InvocationItem(const queue::Invocation& invocation);

// JSON text as a value (a string if it is not JSON: a function's plain-text result).
nlohmann::json JsonOrString(const std::string& text);

// An ISO 8601 timestamp, or null.
nlohmann::json TimestampJson(std::optional<int64_t> ms);

// limit and offset of a listing; kInvalidArgument naming the bad one.
Result<int> QueryInt(const HttpRequest& request, const std::string& name, int fallback, int min,
                     int max);

HttpResponse JsonBody(int status, const nlohmann::json& body);

}  // namespace wisp::api
