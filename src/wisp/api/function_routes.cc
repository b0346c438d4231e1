#include <nlohmann/json.hpp>

#include "wisp/api/json_views.h"
#include "wisp/api/routes.h"
#include "wisp/common/ids.h"

namespace wisp::api {
namespace {
using nlohmann::json;

constexpr int kDefaultLogLimit = 100;
constexpr int kMaxLogLimit = 1000;

json MetadataJson(const std::string& text) {
  json value = json::parse(text, nullptr, false);
  return value.is_object() ? value : json::object();
}

json FunctionJson(const core::Function& f, const scheduler::Scheduler& scheduler) {
  const auto& r = f.record;
  json item = {
      {"id", r.id},
      {"name", r.name},
      {"runtime", r.runtime},
      {"code", r.code},
      {"handler", r.handler},
      {"timeout_seconds", r.timeout_seconds},
      {"memory_mb", r.memory_mb},
      {"vcpu", r.vcpu},
      {"env", r.env},
      {"state", r.state},
      {"version", r.version},
      {"created_at", TimestampJson(r.created_at_ms)},
      {"updated_at", TimestampJson(r.updated_at_ms)},
      {"last_invoked_at", TimestampJson(r.last_invoked_at_ms)},
      {"style", r.style},
      {"max_retries", r.max_retries},
      {"retry_delay_seconds", r.retry_delay_seconds},
      {"max_event_age_seconds", r.max_event_age_seconds},
      {"max_concurrency", r.max_concurrency},
      {"min_instances", r.min_instances},
      {"metadata", MetadataJson(r.metadata_json)},
      {"version_label", r.version_label.empty() ? json(nullptr) : json(r.version_label)},
      {"network", r.network},
  };
  if (!r.error.empty()) item["error"] = r.error;
  // In place of the seeds' vm_id/guest_ip/port: the sandboxes serving this function.
  json instances = json::array();
  for (const auto& i : scheduler.Instances(r.id)) {
    instances.push_back({{"id", i.id},
                         {"version", i.version},
                         {"pid", i.pid},
                         {"state", i.state},
                         {"invocations", i.invocations},
                         {"started_at", TimestampJson(i.started_at_ms)}});
  }
  item["instances"] = std::move(instances);
  return item;
}

json InvocationJson(const store::InvocationRecord& r) {
  json item = {{"id", r.id},
               {"function_id", r.function_id},
               {"request_id", r.request_id},
               {"version", r.version},
               {"status", r.status},
               {"duration_ms", r.duration_ms},
               {"memory_used_mb", r.memory_used_mb ? json(*r.memory_used_mb) : json(nullptr)},
               {"invoked_at", TimestampJson(r.invoked_at_ms)}};
  AddRecordPayloads(item, r);  // event, response, logs and the marks of a cut one
  return item;
}

// Reads the fields of a create or update body, checking each one's type.
Result<core::FunctionFields> ParseFields(const HttpRequest& request) {
  if (auto valid = CheckJson(request.body); !valid) return tl::unexpected(valid.error());
  const json body = json::parse(request.body, nullptr, false);
  if (!body.is_object()) {
    return MakeError(ErrorCode::kInvalidArgument, "body must be a JSON object");
  }
  core::FunctionFields f;
  auto wrong = [](const char* field, const char* type) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("{} must be {}", field, type));
  };
  for (const auto& [key, value] : body.items()) {
    if (key == "name" || key == "runtime" || key == "handler" || key == "code") {
      if (!value.is_string()) return wrong(key.c_str(), "a string");
      std::string s = value.get<std::string>();
      if (key == "name") f.name = std::move(s);
      if (key == "runtime") f.runtime = std::move(s);
      if (key == "handler") f.handler = std::move(s);
      if (key == "code") f.code = std::move(s);
    } else if (key == "timeout_seconds" || key == "memory_mb" || key == "max_retries" ||
               key == "retry_delay_seconds" || key == "max_event_age_seconds" ||
               key == "max_concurrency" || key == "min_instances") {
      if (!value.is_number_integer()) return wrong(key.c_str(), "an integer");
      const auto n = value.get<int64_t>();
      const int clamped = static_cast<int>(std::clamp<int64_t>(n, INT32_MIN, INT32_MAX));
      if (key == "timeout_seconds") f.timeout_seconds = clamped;
      if (key == "memory_mb") f.memory_mb = clamped;
      if (key == "max_retries") f.max_retries = clamped;
      if (key == "retry_delay_seconds") f.retry_delay_seconds = clamped;
      if (key == "max_event_age_seconds") f.max_event_age_seconds = clamped;
      if (key == "max_concurrency") f.max_concurrency = clamped;
      if (key == "min_instances") f.min_instances = clamped;
    } else if (key == "style") {
      if (!value.is_string()) return wrong("style", "a string");
      f.style = value.get<std::string>();
    } else if (key == "network") {
      if (!value.is_string()) return wrong("network", "\"none\" or \"outbound\"");
      f.network = value.get<std::string>();
    } else if (key == "metadata") {
      if (!value.is_object()) return wrong("metadata", "a JSON object");
      f.metadata_json = value.dump();
    } else if (key == "version_label" || (key == "version" && value.is_string())) {
      // The numeric "version" is wispd's and read-only; a string one is the user's label
      // (seed 002 names its versions "1.0.0").
      if (!value.is_string()) return wrong(key.c_str(), "a string");
      f.version_label = value.get<std::string>();
    } else if (key == "vcpu") {
      if (!value.is_number()) return wrong("vcpu", "a number");
      f.vcpu = value.get<double>();
    } else if (key == "env") {
      if (!value.is_object()) return wrong("env", "an object of strings");
      std::map<std::string, std::string> env;
      for (const auto& [name, v] : value.items()) {
        if (!v.is_string()) {
          return MakeError(ErrorCode::kInvalidArgument,
                           fmt::format("env.{} must be a string", name));
        }
        env[name] = v.get<std::string>();
      }
      f.env = std::move(env);
    }
    // Other fields (the seeds' vm_id, guest_ip, ...) are read-only or unknown: ignored.
  }
  return f;
}

HttpResponse UnsupportedType() {
  return ErrorResponse(415, "Content-Type must be application/json");
}

}  // namespace

void AddFunctionRoutes(Router& router, core::FunctionService& functions,
                       scheduler::Scheduler& scheduler, store::Store& store,
                       store::InvocationWriter& writer, asio::thread_pool& workers) {
  router.Add("POST", "/v1/functions", [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    if (!AcceptsJsonBody(request)) co_return UnsupportedType();
    auto fields = ParseFields(request);
    if (!fields) co_return ErrorResponse(fields.error());
    auto created = co_await functions.Create(std::move(*fields));
    if (!created) co_return ErrorResponse(created.error());
    co_return JsonBody(201, json{{"id", created->id}});
  });

  router.Add("GET", "/v1/functions", [&](HttpRequest&) -> asio::awaitable<HttpResponse> {
    json items = json::array();
    for (const auto* f : functions.List()) items.push_back(FunctionJson(*f, scheduler));
    co_return JsonBody(200, json{{"items", std::move(items)}});
  });

  router.Add("GET", "/v1/functions/:id",
             [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               const auto* f = functions.Find(request.params["id"]);
               if (!f) co_return ErrorResponse(404, "function not found");
               co_return JsonBody(200, json{{"item", FunctionJson(*f, scheduler)}});
             });

  router.Add("PUT", "/v1/functions/:id",
             [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               if (!AcceptsJsonBody(request)) co_return UnsupportedType();
               if (!functions.Find(request.params["id"]))
                 co_return ErrorResponse(404, "function not found");
               auto fields = ParseFields(request);
               if (!fields) co_return ErrorResponse(fields.error());
               const std::string id = request.params["id"];
               auto updated = co_await functions.Update(id, std::move(*fields));
               if (!updated) co_return ErrorResponse(updated.error());
               const auto* f = functions.Find(id);
               if (!f) co_return ErrorResponse(404, "function not found");
               co_return JsonBody(200, json{{"item", FunctionJson(*f, scheduler)}});
             });

  router.Add("DELETE", "/v1/functions/:id",
             [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               auto deleted = co_await functions.Delete(request.params["id"]);
               if (!deleted) co_return ErrorResponse(deleted.error());
               co_return JsonResponse(200, R"({"message":"Function deleted"})");
             });

  router.Add("GET", "/v1/functions/:id/logs",
             [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               const std::string id = request.params["id"];
               if (!functions.Find(id)) co_return ErrorResponse(404, "function not found");
               auto limit = QueryInt(request, "limit", kDefaultLogLimit, 1, kMaxLogLimit);
               if (!limit) co_return ErrorResponse(limit.error());
               auto offset = QueryInt(request, "offset", 0, 0, INT32_MAX);
               if (!offset) co_return ErrorResponse(offset.error());
               auto list = [&writer, &store, id, l = *limit, o = *offset] {
                 writer.Flush();  // the newest calls are in the batch not yet written
                 return store.ListInvocations(id, l, o);
               };
               auto records = co_await Offload(workers, std::move(list));
               if (!records) co_return ErrorResponse(records.error());
               json items = json::array();
               for (const auto& r : *records) items.push_back(InvocationJson(r));
               co_return JsonBody(200, json{{"items", std::move(items)}});
             });
}

}  // namespace wisp::api
