// The Vercel-style project API's JSON shapes (seed 004): a function's metadata, the invoke
// answer, and how a create names its runtime. Pure: project_api_routes.cc does the I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "wisp/scheduler/deployment.h"
#include "wisp/store/records.h"

namespace wisp::api {

// "node" at "22.3.0" → "node22", "python" at "3.11.2" → "python3.11" (the seed's "node18"
// style); the runtime's name alone when its version is unknown.
std::string RuntimeLabel(std::string_view runtime, std::string_view version);

// The runtime a project file is written for, by its extension: .js .mjs .cjs .ts .mts → node,
// .py → python; empty for anything else.
std::string RuntimeForFile(std::string_view file_path);

// {"id", "function_name" (its name in the project), "project_id", "name" (global), "file_path",
// "route", "runtime", "is_active", "invocation_count", "state", "created_at", "updated_at"};
// with_code adds "code" (a single file's source; null for a package).
nlohmann::json EncodeProjectFunction(const store::FunctionRecord& record,
                                     std::string_view runtime_label, uint64_t invocation_count,
                                     bool with_code);

struct ProjectInvokeAnswer {
  int status = 200;
  nlohmann::json body;
};
// A finished call as the seed answers it: 200 {"success": true, "result", "duration", "logs"},
// or 500 {"error": "Function execution failed", "message", "logs"} where the message is
// "<errorType>: <errorMessage>" of the function's error, or "Function execution timeout
// (<timeout>ms)".
ProjectInvokeAnswer EncodeProjectInvoke(scheduler::InvocationStatus status,
                                        std::string_view response_json,
                                        const std::vector<std::string>& logs, int64_t duration_ms,
                                        int timeout_seconds);

// The project a request's Host names under `domain` ("shop.apps.example.com:8080" under
// "apps.example.com" → "shop"; case-insensitive, one label only); nullopt for any other host or
// an empty domain.
std::optional<std::string> ProjectOfHost(std::string_view host, std::string_view domain);

// API Gateway's route key for a route pattern: "/api/users/:id" → "ANY /api/users/{id}",
// "/api/docs/:path*" → "ANY /api/docs/{path+}".
std::string RouteKey(const std::string& pattern);

// The seed's error body {"error": ..., "message": ...} (no message when empty).
nlohmann::json ProjectError(std::string_view error, std::string_view message);

}  // namespace wisp::api
