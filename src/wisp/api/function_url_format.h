// Function URLs: the configuration a function's URL has (Lambda's FunctionUrlConfig), the event
// a request becomes (Lambda's payload format 2.0) and the HTTP response a function's result
// becomes (Lambda's rules, including its inference for results that are not a response
// object). Pure functions: the routes (function_url_routes.cc) do the I/O.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wisp/common/result.h"

namespace wisp::api {

// Lambda's Cors object. Empty lists mean "not set".
struct FunctionUrlCors {
  std::vector<std::string> allow_origins;
  std::vector<std::string> allow_methods;
  std::vector<std::string> allow_headers;
  std::vector<std::string> expose_headers;
  std::optional<int> max_age;
  bool allow_credentials = false;
};

struct FunctionUrlConfig {
  // "NONE": anyone may call the URL. "AWS_IAM": the caller needs a Wisp key (the same Bearer
  // key every /v1 route takes, when the server requires authentication).
  std::string auth_type = "AWS_IAM";
  std::optional<FunctionUrlCors> cors;
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
};

// Reads Lambda's request body shape {"AuthType": ..., "Cors": {...}} on top of `base` (an
// update changes only what it names). kInvalidArgument naming the field.
Result<FunctionUrlConfig> DecodeFunctionUrlConfig(std::string_view json, FunctionUrlConfig base,
                                                  bool require_auth_type);
// The stored form (the same shape, with the times): what FunctionRecord::url_config_json holds.
std::string EncodeStoredUrlConfig(const FunctionUrlConfig& config);
// Empty text (no URL) or unreadable text: nullopt.
std::optional<FunctionUrlConfig> ParseStoredUrlConfig(std::string_view json);
// Lambda's FunctionUrlConfig answer: FunctionUrl, FunctionArn, AuthType, Cors, CreationTime,
// LastModifiedTime (ISO-8601).
std::string EncodeLambdaUrlConfig(const FunctionUrlConfig& config, std::string_view url,
                                  std::string_view function_arn);

// One HTTP request to a function URL.
struct FunctionUrlRequest {
  std::string method;
  std::string raw_path;   // the path after /fn/{name}, starting with '/'
  std::string raw_query;  // without '?'
  // Lower-case names; a name sent twice holds its values comma-joined.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string source_ip;
  std::string domain_name;  // the Host header
  std::string request_id;
  std::string account_id;
  std::string api_id;  // the function's name
  int64_t time_epoch_ms = 0;
  // A project route's parameters ("id" → "42" for /api/users/:id), the event's pathParameters;
  // empty: none (a function URL has none).
  std::map<std::string, std::string> path_parameters;
  // The route that matched, as API Gateway's routeKey ("ANY /api/users/{id}"); empty:
  // "$default".
  std::string route_key;
};

// The payload format 2.0 event. The body is text when its content type is textual (text/*,
// JSON, XML, JavaScript, form data) and valid UTF-8, else base64 with isBase64Encoded true.
std::string BuildFunctionUrlEvent(const FunctionUrlRequest& request);

struct FunctionUrlResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // Set-Cookie may repeat
  std::string body;
};

// Lambda's mapping of a function's result: an object with "statusCode" is a response
// (statusCode, headers, multiValueHeaders, cookies, body, isBase64Encoded); any other JSON
// (a bare object, a string, a number) is a 200 whose body is that JSON, as application/json.
// An invalid response (statusCode not an integer from 100 to 599, body not a string, headers
// not strings, bad base64) is the reason, for the caller's 502.
tl::expected<FunctionUrlResponse, std::string> MapFunctionUrlResult(std::string_view result_json);

// CORS for a request whose config has `cors`: the headers every response to it carries
// (Access-Control-Allow-Origin when its Origin is allowed, -Expose-Headers, -Allow-Credentials).
std::vector<std::pair<std::string, std::string>> CorsResponseHeaders(const FunctionUrlCors& cors,
                                                                     std::string_view origin);
// The answer to a preflight (OPTIONS with Origin and Access-Control-Request-Method): 200 with
// the allowed origin, methods, headers and max age, or without them when not allowed.
FunctionUrlResponse CorsPreflight(const FunctionUrlCors& cors, std::string_view origin,
                                  std::string_view request_method,
                                  std::string_view request_headers);

}  // namespace wisp::api
