// The program API, served at root paths beside /v1 by the same core: /functions, /invoke,
// /invocations. Its functions are whole programs (program style) that read FUNCTION_PAYLOAD
// (and FUNCTION_HEADERS) and print their result, in any runtime of the catalog; its bodies are
// {"data": ...}, its code base64 and its timeouts Go duration strings. (It is the API of an
// earlier controller/worker platform, kept so its clients work unchanged.)
#include <algorithm>

#include <nlohmann/json.hpp>

#include "wisp/api/function_codec.h"
#include "wisp/api/json_views.h"
#include "wisp/api/program_api_format.h"
#include "wisp/api/routes.h"
#include "wisp/api/status_words.h"

namespace wisp::api {
namespace {
using nlohmann::json;

constexpr size_t kMaxAsyncEventBytes = 1 << 20;
// The headers of a call reach the function as its Lambda client context (and a program as
// FUNCTION_HEADERS); Lambda caps a client context at 3583 bytes, a little more is harmless.
constexpr size_t kMaxHeadersBytes = 8 << 10;
constexpr int kDefaultListLimit = 100;
constexpr int kMaxListLimit = 1000;

tl::unexpected<Error> Invalid(std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message));
}

json FunctionData(const core::Function& f, const core::RuntimeCatalog& runtimes, bool with_code) {
  return EncodeFunction(FunctionApi::kProgram, f.record, runtimes, with_code);
}

json InvocationData(const queue::Invocation& r) {
  const bool success = r.status == queue::kSuccess;
  return {
      {"id", r.id},
      {"invocation_id", r.id},
      {"function_id", r.function_id},
      {"status", ProgramInvocationStatuses().Word(r.status)},
      {"wisp_status", r.status},
      {"payload", JsonOrString(r.event_json)},
      {"headers", JsonOrString(r.headers_json)},
      {"result", success ? JsonOrString(r.response_json) : json(nullptr)},
      {"error", r.error.empty() ? json(nullptr) : json(r.error)},
      {"error_detail", !success ? JsonOrString(r.response_json) : json(nullptr)},
      {"dead_letter_reason",
       r.dead_letter_reason.empty() ? json(nullptr) : json(r.dead_letter_reason)},
      {"logs", r.logs},
      {"attempts", r.attempts},
      {"duration_ms", r.duration_ms},
      {"created_at", TimestampJson(r.created_at_ms)},
      {"started_at", TimestampJson(r.started_at_ms)},
      {"completed_at", r.pending() ? json(nullptr) : TimestampJson(r.finished_at_ms)},
  };
}

Result<json> ParseObject(const HttpRequest& request) {
  if (!AcceptsJsonBody(request)) {
    return MakeError(ErrorCode::kInvalidArgument, "Content-Type must be application/json");
  }
  if (auto valid = CheckJson(request.body); !valid) return tl::unexpected(valid.error());
  json body = json::parse(request.body, nullptr, false);
  if (!body.is_object()) return Invalid("body must be a JSON object");
  return body;
}

// The fields of a create or update body; every function of this API is program style.
Result<core::FunctionFields> ParseFunctionFields(const json& body, bool create,
                                                 const core::RuntimeCatalog& runtimes) {
  auto fields = DecodeFunctionFields(FunctionApi::kProgram, body);
  if (!fields) return fields;
  core::FunctionFields& f = *fields;
  if (f.runtime) {
    if (auto known = runtimes.Resolve(*f.runtime); !known) return tl::unexpected(known.error());
  }
  if (create) {
    f.style = std::string(core::kProgramStyle);
    if (!f.handler) f.handler = "main";
    if (!f.runtime) {
      return Invalid(fmt::format("runtime is required: one of {}", runtimes.AcceptedNames()));
    }
    if (!f.code) return Invalid("code is required (the program, base64-encoded)");
  }
  return fields;
}

// Waits for a function's first deploy; its state says how it went.
asio::awaitable<void> AwaitFirstDeploy(core::FunctionService& functions, const std::string& id) {
  const core::Function* f = functions.Find(id);
  if (!f || !f->first_deploy) co_return;
  auto deployed = f->first_deploy;
  co_await deployed->Wait();
}

}  // namespace

void AddProgramApiRoutes(Router& router, core::FunctionService& functions,
                         core::AsyncDispatcher& async, queue::Queue& queue,
                         asio::thread_pool& workers) {
  const core::RuntimeCatalog& runtimes = functions.runtimes();
  router.Add("POST", "/functions", [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    if (auto known = CheckQueryParameters(request, {}); !known) {
      co_return ErrorResponse(known.error());
    }
    auto body = ParseObject(request);
    if (!body) co_return ErrorResponse(body.error());
    auto fields = ParseFunctionFields(*body, /*create=*/true, runtimes);
    if (!fields) co_return ErrorResponse(fields.error());
    auto created = co_await functions.Create(std::move(*fields));
    if (!created) co_return ErrorResponse(created.error());
    // This API answers a create once the function can run: a Go compile error is this
    // request's error, and the failed function is not left behind.
    const std::string id = created->id;
    co_await AwaitFirstDeploy(functions, id);
    const core::Function* f = functions.Find(id);
    if (!f) co_return ErrorResponse(404, "the function was deleted while it deployed");
    if (f->record.state != "ready") {
      const std::string error = f->record.error;
      co_await functions.Delete(id);
      co_return ErrorResponse(400, "deploy failed: " + error);
    }
    co_return JsonBody(201, json{{"data", FunctionData(*f, runtimes, true)}});
  });

  router.Add("GET", "/functions", [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    if (auto known = CheckQueryParameters(request, {"runtime", "limit", "offset"}); !known) {
      co_return ErrorResponse(known.error());
    }
    std::string runtime;
    if (auto it = request.query.find("runtime"); it != request.query.end() && !it->second.empty()) {
      auto entry = runtimes.Resolve(it->second);
      if (!entry) co_return ErrorResponse(entry.error());
      runtime = (*entry)->name;
    }
    auto limit = QueryInt(request, "limit", kDefaultListLimit, 1, kMaxListLimit);
    if (!limit) co_return ErrorResponse(limit.error());
    auto offset = QueryInt(request, "offset", 0, 0, INT32_MAX);
    if (!offset) co_return ErrorResponse(offset.error());
    // A listing is metadata: each function's code is on GET /functions/{id}.
    json data = json::array();
    int skipped = 0;
    for (const auto* f : functions.List()) {
      if (!runtime.empty() && f->record.runtime != runtime) continue;
      if (skipped++ < *offset) continue;
      if (static_cast<int>(data.size()) == *limit) break;
      data.push_back(FunctionData(*f, runtimes, false));
    }
    co_return JsonBody(200, json{{"data", std::move(data)}});
  });

  router.Add("GET", "/functions/:id", [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    if (auto known = CheckQueryParameters(request, {}); !known) {
      co_return ErrorResponse(known.error());
    }
    const auto* f = functions.Find(request.params["id"]);
    if (!f) co_return ErrorResponse(404, "function not found");
    co_return JsonBody(200, json{{"data", FunctionData(*f, runtimes, true)}});
  });

  router.Add("PUT", "/functions/:id", [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    if (auto known = CheckQueryParameters(request, {}); !known) {
      co_return ErrorResponse(known.error());
    }
    const std::string id = request.params["id"];
    if (!functions.Find(id)) co_return ErrorResponse(404, "function not found");
    auto body = ParseObject(request);
    if (!body) co_return ErrorResponse(body.error());
    auto fields = ParseFunctionFields(*body, /*create=*/false, runtimes);
    if (!fields) co_return ErrorResponse(fields.error());
    auto updated = co_await functions.Update(id, std::move(*fields));
    if (!updated) co_return ErrorResponse(updated.error());
    co_await AwaitFirstDeploy(functions, id);
    const auto* f = functions.Find(id);
    if (!f) co_return ErrorResponse(404, "function not found");
    if (f->record.state != "ready" || f->latest_version != f->record.version) {
      // The new version did not load; the one before (if any) still serves.
      co_return ErrorResponse(400, "deploy failed: " + f->record.error);
    }
    co_return JsonBody(200, json{{"data", FunctionData(*f, runtimes, true)}});
  });

  router.Add("DELETE", "/functions/:id",
             [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               if (auto known = CheckQueryParameters(request, {}); !known) {
                 co_return ErrorResponse(known.error());
               }
               const std::string id = request.params["id"];
               auto deleted = co_await functions.Delete(id);
               if (!deleted) co_return ErrorResponse(deleted.error());
               co_return JsonBody(200, json{{"data", {{"id", id}, {"deleted", true}}}});
             });

  router.Add("POST", "/invoke", [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    if (auto known = CheckQueryParameters(request, {}); !known) {
      co_return ErrorResponse(known.error());
    }
    auto body = ParseObject(request);
    if (!body) co_return ErrorResponse(body.error());
    const json& b = *body;
    std::string unknown;
    for (const auto& [key, value] : b.items()) {
      static const std::vector<std::string_view> kFields = {"function_id", "payload", "headers",
                                                            "timeout"};
      if (std::find(kFields.begin(), kFields.end(), key) != kFields.end()) continue;
      const auto likely = LikelyField(key, kFields);
      unknown += fmt::format("{}unknown field \"{}\"{}", unknown.empty() ? "" : "; ", key,
                             likely.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", likely));
    }
    if (!unknown.empty()) {
      co_return ErrorResponse(
          400, unknown + ". Fields of an invocation: function_id, payload, headers, timeout");
    }
    core::SubmitRequest submit;
    if (!b.contains("function_id") || !b["function_id"].is_string() ||
        b["function_id"].get<std::string>().empty()) {
      co_return ErrorResponse(400, "function_id is required (a string)");
    }
    submit.function_id = b["function_id"].get<std::string>();
    if (b.contains("payload") && !b["payload"].is_null()) submit.event_json = b["payload"].dump();
    if (submit.event_json.size() > kMaxAsyncEventBytes) {
      co_return ErrorResponse(413,
                              fmt::format("payload may be at most {} bytes", kMaxAsyncEventBytes));
    }
    if (b.contains("headers") && !b["headers"].is_null()) {
      if (!b["headers"].is_object()) co_return ErrorResponse(400, "headers must be an object");
      for (const auto& [name, value] : b["headers"].items()) {
        if (!value.is_string()) {
          co_return ErrorResponse(400, fmt::format("headers.{} must be a string", name));
        }
      }
      // ASCII only: the headers travel to the function in a header of the Runtime API.
      submit.headers_json = b["headers"].dump(-1, ' ', /*ensure_ascii=*/true);
      if (submit.headers_json.size() > kMaxHeadersBytes) {
        co_return ErrorResponse(
            413, fmt::format("headers may be at most {} bytes of JSON", kMaxHeadersBytes));
      }
    }
    submit.trace_id = CallerTraceId(request);
    if (b.contains("timeout") && !b["timeout"].is_null()) {
      if (!b["timeout"].is_string()) {
        co_return ErrorResponse(400, "timeout must be a duration string such as \"30s\"");
      }
      auto timeout = ParseGoDuration(b["timeout"].get<std::string>());
      if (!timeout) co_return ErrorResponse(timeout.error());
      const auto ms = std::chrono::ceil<std::chrono::milliseconds>(*timeout).count();
      if (ms <= 0 || ms > int64_t{core::kMaxTimeoutSeconds} * 1000) {
        co_return ErrorResponse(
            400, fmt::format("timeout must be more than 0s and at most {}",
                             FormatGoDuration(std::chrono::seconds(core::kMaxTimeoutSeconds))));
      }
      submit.timeout_ms = ms;
    }
    auto accepted = co_await async.Submit(std::move(submit));
    if (!accepted) co_return ErrorResponse(accepted.error());
    co_return JsonBody(202, json{{"data",
                                  {{"invocation_id", accepted->id},
                                   {"status", ProgramInvocationStatuses().Word(queue::kQueued)}}}});
  });

  router.Add("GET", "/invocations/:id", [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    if (auto known = CheckQueryParameters(request, {}); !known) {
      co_return ErrorResponse(known.error());
    }
    auto get = [&queue, id = request.params["id"]] { return queue.Get(id); };
    auto invocation = co_await Offload(workers, std::move(get));
    if (!invocation) co_return ErrorResponse(invocation.error());
    co_return JsonBody(200, json{{"data", InvocationData(*invocation)}});
  });

  router.Add("GET", "/invocations", [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    if (auto known = CheckQueryParameters(request, {"function_id", "status", "limit", "offset"});
        !known) {
      co_return ErrorResponse(known.error());
    }
    queue::ListFilter filter;
    filter.function_id = request.query["function_id"];
    auto status = ProgramInvocationStatuses().Parse(request.query["status"]);
    if (!status) co_return ErrorResponse(status.error());
    filter.status = std::move(*status);
    auto records = co_await ListInvocations(queue, workers, request, std::move(filter));
    if (!records) co_return ErrorResponse(records.error());
    json data = json::array();
    for (const auto& r : *records) data.push_back(InvocationData(r));
    co_return JsonBody(200, json{{"data", std::move(data)}});
  });
}

}  // namespace wisp::api
