// Seed 002's API (a controller/worker platform's), served beside /v1 by the same core:
// /functions, /invoke, /invocations. Its bodies are {"data": ...}; its code is base64, its
// timeouts Go duration strings; its functions are whole programs (program style) that read
// FUNCTION_PAYLOAD and print their result, in go, python or nodejs.
#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

#include "wisp/api/json_views.h"
#include "wisp/api/routes.h"
#include "wisp/api/program_api_format.h"

namespace wisp::api {
namespace {
using nlohmann::json;

constexpr size_t kMaxAsyncEventBytes = 1 << 20;

tl::unexpected<Error> Invalid(std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message));
}

std::string SeedRuntime(const std::string& runtime) {
  return runtime == "node" ? "nodejs" : runtime;
}

// Seed 002 names statuses its own way; both names are accepted in filters.
std::string SeedStatus(const std::string& status) {
  if (status == queue::kQueued) return "pending";
  if (status == queue::kSuccess) return "completed";
  if (status == queue::kDeadLetter) return "failed";
  return status;
}
std::string WispStatus(const std::string& status) {
  if (status == "pending") return queue::kQueued;
  if (status == "completed") return queue::kSuccess;
  if (status == "failed") return queue::kDeadLetter;
  return status;
}

json FunctionData(const core::Function& f) {
  const auto& r = f.record;
  json environment = json::object();
  for (const auto& [k, v] : r.env) environment[k] = v;
  json data = {
      {"id", r.id},
      {"name", r.name},
      {"version", r.version_label},
      {"runtime", SeedRuntime(r.runtime)},
      {"handler", r.handler},
      {"code", EncodeBase64(r.code)},
      {"timeout", FormatGoDuration(std::chrono::seconds(r.timeout_seconds))},
      {"memory_mb", r.memory_mb},
      {"max_concurrency", r.max_concurrency},
      {"environment", std::move(environment)},
      {"metadata", JsonOrString(r.metadata_json)},
      {"max_retries", r.max_retries},
      {"retry_delay_seconds", r.retry_delay_seconds},
      {"max_event_age_seconds", r.max_event_age_seconds},
      {"status", r.state},
      {"deployed_version", r.version},
      {"created_at", TimestampJson(r.created_at_ms)},
      {"updated_at", TimestampJson(r.updated_at_ms)},
  };
  data["error"] = r.error.empty() ? json(nullptr) : json(r.error);
  return data;
}

json InvocationData(const queue::Invocation& r) {
  const bool success = r.status == queue::kSuccess;
  return {
      {"id", r.id},
      {"invocation_id", r.id},
      {"function_id", r.function_id},
      {"status", SeedStatus(r.status)},
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

// A Go duration string (or a number of seconds) as whole seconds, rounded up: wispd's function
// timeouts are in seconds.
Result<int> TimeoutSeconds(const json& value) {
  int64_t millis = 0;
  if (value.is_number()) {
    millis = static_cast<int64_t>(std::ceil(value.get<double>() * 1000));
  } else if (value.is_string()) {
    auto parsed = ParseGoDuration(value.get<std::string>());
    if (!parsed) return tl::unexpected(parsed.error());
    millis = std::chrono::ceil<std::chrono::milliseconds>(*parsed).count();
  } else {
    return Invalid("timeout must be a duration string such as \"30s\"");
  }
  if (millis <= 0 || millis > int64_t{core::kMaxTimeoutSeconds} * 1000) {
    return Invalid(fmt::format("timeout must be more than 0s and at most {}",
                               FormatGoDuration(std::chrono::seconds(core::kMaxTimeoutSeconds))));
  }
  return static_cast<int>((millis + 999) / 1000);
}

// The fields of a create or update body; every function of this API is program style.
Result<core::FunctionFields> ParseFunctionFields(const json& body, bool create) {
  core::FunctionFields f;
  auto wrong = [](const std::string& field, const char* type) {
    return Invalid(fmt::format("{} must be {}", field, type));
  };
  for (const auto& [key, value] : body.items()) {
    if (key == "name" || key == "handler") {
      if (!value.is_string()) return wrong(key, "a string");
      (key == "name" ? f.name : f.handler) = value.get<std::string>();
    } else if (key == "version") {
      if (value.is_string()) {
        f.version_label = value.get<std::string>();
      } else if (value.is_number()) {
        f.version_label = value.dump();
      } else {
        return wrong(key, "a string");
      }
    } else if (key == "runtime") {
      if (!value.is_string()) return wrong(key, "a string");
      const std::string runtime = value.get<std::string>();
      if (!core::CanonicalRuntime(runtime)) {
        return Invalid(
            fmt::format("unknown runtime '{}': use \"go\", \"python\" or \"nodejs\"", runtime));
      }
      f.runtime = runtime;
    } else if (key == "code") {
      if (!value.is_string()) return wrong(key, "a base64-encoded string");
      auto code = DecodeBase64(value.get<std::string>());
      if (!code) return tl::unexpected(code.error());
      f.code = std::move(*code);
    } else if (key == "timeout") {
      auto seconds = TimeoutSeconds(value);
      if (!seconds) return tl::unexpected(seconds.error());
      f.timeout_seconds = *seconds;
    } else if (key == "memory_mb" || key == "max_concurrency" || key == "max_retries" ||
               key == "retry_delay_seconds" || key == "max_event_age_seconds" ||
               key == "min_instances") {
      if (!value.is_number_integer()) return wrong(key, "an integer");
      const int n =
          static_cast<int>(std::clamp<int64_t>(value.get<int64_t>(), INT32_MIN, INT32_MAX));
      if (key == "memory_mb") f.memory_mb = n;
      if (key == "max_concurrency") f.max_concurrency = n;
      if (key == "max_retries") f.max_retries = n;
      if (key == "retry_delay_seconds") f.retry_delay_seconds = n;
      if (key == "max_event_age_seconds") f.max_event_age_seconds = n;
      if (key == "min_instances") f.min_instances = n;
    } else if (key == "environment") {
      if (!value.is_object()) return wrong(key, "an object of strings");
      std::map<std::string, std::string> env;
      for (const auto& [name, v] : value.items()) {
        if (!v.is_string()) return Invalid(fmt::format("environment.{} must be a string", name));
        env[name] = v.get<std::string>();
      }
      f.env = std::move(env);
    } else if (key == "metadata") {
      if (!value.is_object()) return wrong(key, "a JSON object");
      f.metadata_json = value.dump();
    }
    // Anything else (id, created_at, ...) is read-only or unknown: ignored, as /v1 does.
  }
  if (create) {
    f.style = "program";
    if (!f.handler) f.handler = "main";
    if (!f.runtime) return Invalid("runtime is required: \"go\", \"python\" or \"nodejs\"");
    if (!f.code) return Invalid("code is required (the program, base64-encoded)");
  }
  return f;
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
  router.Add("POST", "/functions", [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    auto body = ParseObject(request);
    if (!body) co_return ErrorResponse(body.error());
    auto fields = ParseFunctionFields(*body, /*create=*/true);
    if (!fields) co_return ErrorResponse(fields.error());
    auto created = co_await functions.Create(std::move(*fields));
    if (!created) co_return ErrorResponse(created.error());
    // Seed 002 answers a create once the function can run: a Go compile error is this
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
    co_return JsonBody(201, json{{"data", FunctionData(*f)}});
  });

  router.Add("GET", "/functions", [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    std::string runtime;
    if (auto it = request.query.find("runtime"); it != request.query.end() && !it->second.empty()) {
      auto canonical = core::CanonicalRuntime(it->second);
      if (!canonical) {
        co_return ErrorResponse(
            400, fmt::format("unknown runtime '{}': use go, python or nodejs", it->second));
      }
      runtime = *canonical;
    }
    json data = json::array();
    for (const auto* f : functions.List()) {
      if (runtime.empty() || f->record.runtime == runtime) data.push_back(FunctionData(*f));
    }
    co_return JsonBody(200, json{{"data", std::move(data)}});
  });

  router.Add("GET", "/functions/:id", [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    const auto* f = functions.Find(request.params["id"]);
    if (!f) co_return ErrorResponse(404, "function not found");
    co_return JsonBody(200, json{{"data", FunctionData(*f)}});
  });

  router.Add("PUT", "/functions/:id", [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    const std::string id = request.params["id"];
    if (!functions.Find(id)) co_return ErrorResponse(404, "function not found");
    auto body = ParseObject(request);
    if (!body) co_return ErrorResponse(body.error());
    auto fields = ParseFunctionFields(*body, /*create=*/false);
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
    co_return JsonBody(200, json{{"data", FunctionData(*f)}});
  });

  router.Add("DELETE", "/functions/:id",
             [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               const std::string id = request.params["id"];
               auto deleted = co_await functions.Delete(id);
               if (!deleted) co_return ErrorResponse(deleted.error());
               co_return JsonBody(200, json{{"data", {{"id", id}, {"deleted", true}}}});
             });

  router.Add("POST", "/invoke", [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    auto body = ParseObject(request);
    if (!body) co_return ErrorResponse(body.error());
    core::SubmitRequest submit;
    const json& b = *body;
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
      submit.headers_json = b["headers"].dump();
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
    co_return JsonBody(202,
                       json{{"data", {{"invocation_id", accepted->id}, {"status", "pending"}}}});
  });

  router.Add("GET", "/invocations/:id", [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    auto get = [&queue, id = request.params["id"]] { return queue.Get(id); };
    auto invocation = co_await Offload(workers, std::move(get));
    if (!invocation) co_return ErrorResponse(invocation.error());
    co_return JsonBody(200, json{{"data", InvocationData(*invocation)}});
  });

  router.Add("GET", "/invocations", [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    queue::ListFilter filter;
    filter.function_id = request.query["function_id"];
    filter.status = WispStatus(request.query["status"]);
    static const std::set<std::string> kKnown = {"",
                                                 queue::kQueued,
                                                 queue::kRunning,
                                                 queue::kSuccess,
                                                 queue::kError,
                                                 queue::kTimeout,
                                                 queue::kDeadLetter};
    if (!kKnown.count(filter.status)) {
      co_return ErrorResponse(
          400, fmt::format("unknown status '{}': use pending, running, completed or failed",
                           request.query["status"]));
    }
    auto records = co_await ListInvocations(queue, workers, request, std::move(filter));
    if (!records) co_return ErrorResponse(records.error());
    json data = json::array();
    for (const auto& r : *records) data.push_back(InvocationData(r));
    co_return JsonBody(200, json{{"data", std::move(data)}});
  });
}

}  // namespace wisp::api
