// Projects: the Vercel-style API of seed 004 at its own paths and JSON shapes, /v1/projects, and
// a project's routes (/p/{project}/... and {project}.<project_domain>). A project is the
// functions whose record names it (core/projects.h): it exists while it has functions.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "wisp/api/function_codec.h"
#include "wisp/api/json_views.h"
#include "wisp/api/project_api_format.h"
#include "wisp/api/routes.h"
#include "wisp/core/projects.h"

namespace wisp::api {
namespace {
using nlohmann::json;

constexpr std::string_view kRoutePrefix = "/p";

HttpResponse Answer(int status, const json& body) { return JsonBody(status, body); }

HttpResponse NotFound() { return Answer(404, ProjectError("Function not found", "")); }

// The Vercel-style API's answer to an error of wispd's.
HttpResponse Refusal(const Error& error) {
  const int status = HttpStatusFor(error.code);
  std::string_view what = "Request failed";
  switch (error.code) {
    case ErrorCode::kInvalidArgument:
      what = "Invalid request";
      break;
    case ErrorCode::kNotFound:
      what = "Function not found";
      break;
    case ErrorCode::kAlreadyExists:
      what = "Function already exists";
      break;
    case ErrorCode::kFailedPrecondition:
      what = "Function is not ready";
      break;
    case ErrorCode::kResourceExhausted:
      what = "Too many requests";
      break;
    default:
      break;
  }
  return Answer(status, ProjectError(what, error.message));
}

core::Function* FindInProject(core::FunctionService& functions, std::string_view project,
                              std::string_view name) {
  if (!core::ValidateProjectName(project)) return nullptr;
  core::Function* f = functions.FindByName(core::GlobalFunctionName(project, name));
  return f && f->record.project == project ? f : nullptr;
}

std::vector<const core::Function*> ProjectFunctions(const core::FunctionService& functions,
                                                    std::string_view project) {
  std::vector<const core::Function*> out;
  for (const core::Function* f : functions.List()) {
    if (f->record.project == project) out.push_back(f);
  }
  return out;
}

json ProjectFunctionJson(const core::Function& f, const core::RuntimeCatalog& runtimes,
                         bool with_code) {
  const auto version = runtimes.Version(f.record.runtime);
  const uint64_t invocations = f.metrics ? f.metrics->Read().invocations() : 0;
  return EncodeProjectFunction(f.record, RuntimeLabel(f.record.runtime, version.value_or("")),
                               invocations, with_code);
}

Result<json> ParseObject(const HttpRequest& request) {
  if (auto valid = CheckJson(request.body); !valid) return tl::unexpected(valid.error());
  const std::string_view body = request.body;
  json parsed = json::parse(
      body.find_first_not_of(" \t\r\n") == std::string_view::npos ? std::string_view("{}") : body,
      nullptr, false);
  if (!parsed.is_object()) {
    return MakeError(ErrorCode::kInvalidArgument, "the body must be a JSON object");
  }
  return parsed;
}

// A management create or update body: /v1's fields, with the seed's "function_name" for
// "name"; the project comes from the path. A create infers the runtime from file_path.
Result<core::FunctionFields> ProjectFields(json body, bool create) {
  if (body.contains("project") || body.contains("project_id")) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "the project is the one in the path: leave \"project\" out of the body");
  }
  if (body.contains("function_name")) {
    if (body.contains("name")) {
      return MakeError(ErrorCode::kInvalidArgument, "give function_name or name, not both");
    }
    body["name"] = std::move(body["function_name"]);
    body.erase("function_name");
  }
  if (create && !body.contains("runtime") && body.contains("file_path") &&
      body["file_path"].is_string()) {
    const std::string runtime = RuntimeForFile(body["file_path"].get<std::string>());
    if (!runtime.empty()) body["runtime"] = runtime;
  }
  return DecodeFunctionFields(FunctionApi::kV1, body);
}

// A request to a project route: its project and the path inside the project.
struct ProjectRequest {
  std::string project;
  std::string path;
};

std::optional<ProjectRequest> ProjectRequestOf(const HttpRequest& request,
                                               std::string_view domain) {
  if (auto project = ProjectOfHost(request.Header("host"), domain)) {
    return ProjectRequest{std::move(*project), request.path.empty() ? "/" : request.path};
  }
  if (!request.path.starts_with(std::string(kRoutePrefix) + "/")) return std::nullopt;
  std::string_view rest = std::string_view(request.path).substr(kRoutePrefix.size() + 1);
  const size_t slash = rest.find('/');
  ProjectRequest out;
  out.project = PercentDecode(rest.substr(0, slash));
  out.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  return out;
}

struct RoutedFunction {
  const core::Function* function = nullptr;
  core::RouteMatch match;
  std::string pattern;
};

std::optional<RoutedFunction> RouteOf(const core::FunctionService& functions,
                                      const ProjectRequest& request) {
  std::vector<const core::Function*> candidates;
  std::vector<core::ProjectRoute> routes;
  for (const core::Function* f : ProjectFunctions(functions, request.project)) {
    if (f->record.file_path.empty()) continue;
    auto route = core::RouteFromFilePath(f->record.file_path);
    if (!route) continue;
    candidates.push_back(f);
    routes.push_back(std::move(*route));
  }
  auto match = core::MatchRoute(routes, request.path);
  if (!match) return std::nullopt;
  return RoutedFunction{candidates[match->index], *match, routes[match->index].pattern};
}

asio::awaitable<HttpResponse> ServeProjectRoute(core::FunctionService& functions,
                                                core::Invoker& invoker, LambdaAccount account,
                                                std::string domain, HttpRequest& request) {
  auto project_request = ProjectRequestOf(request, domain);
  if (!project_request) co_return ErrorResponse(404, "no project in this request");
  auto routed = RouteOf(functions, *project_request);
  if (!routed) {
    co_return ErrorResponse(404, fmt::format("project '{}' has no route for {}",
                                             project_request->project, project_request->path));
  }
  std::string id = routed->function->record.id;
  std::string name = routed->function->record.name;
  std::optional<FunctionUrlCors> cors;
  if (auto config = ParseStoredUrlConfig(routed->function->record.url_config_json)) {
    cors = std::move(config->cors);
  }
  std::string route_key = RouteKey(routed->pattern);
  std::map<std::string, std::string> parameters = std::move(routed->match.params);
  std::string path = std::move(project_request->path);
  co_return co_await ServeFunctionRequest(
      invoker, std::move(account), std::move(id), std::move(name), std::move(cors), request,
      std::move(path), std::move(parameters), std::move(route_key));
}

asio::awaitable<HttpResponse> InvokeInProject(core::FunctionService& functions,
                                              core::Invoker& invoker, HttpRequest& request) {
  core::Function* f =
      FindInProject(functions, request.params["projectId"], request.params["functionName"]);
  if (!f) co_return NotFound();
  if (!f->record.active) {
    // The invoker refuses it too; said here in the seed's words.
    co_return Answer(
        409, ProjectError("Function is disabled",
                          fmt::format("{}/{} is disabled (is_active false): enable it with "
                                      "PATCH {{\"is_active\": true}} to run it",
                                      f->record.project,
                                      core::NameInProject(f->record.project, f->record.name))));
  }
  // The body is the event, whole (an empty body is {}).
  if (auto valid = CheckJson(request.body); !valid) {
    co_return Answer(400, ProjectError("Invalid request", valid.error().message));
  }
  std::string event =
      request.body.find_first_not_of(" \t\r\n") == std::string::npos ? "{}" : request.body;
  std::string id = f->record.id;
  const int timeout_seconds = f->record.timeout_seconds;
  core::InvokeOptions options;
  options.trace_id = CallerTraceId(request);
  auto outcome = co_await invoker.Invoke(std::move(id), std::move(event), std::move(options));
  if (!outcome) co_return Refusal(outcome.error());
  auto answer = EncodeProjectInvoke(outcome->result.status, outcome->result.response_json,
                                    outcome->result.logs, outcome->duration_ms, timeout_seconds);
  HttpResponse response = Answer(answer.status, answer.body);
  response.headers.emplace_back("X-Wisp-Request-Id", outcome->request_id);
  co_return response;
}

// PATCH of the v1 path (only is_active) or of the management path (the function's fields).
asio::awaitable<HttpResponse> PatchInProject(core::FunctionService& functions, HttpRequest& request,
                                             bool management) {
  core::Function* f =
      FindInProject(functions, request.params["projectId"], request.params["functionName"]);
  if (!f) co_return NotFound();
  auto body = ParseObject(request);
  if (!body) co_return Refusal(body.error());
  Result<core::FunctionFields> fields = core::FunctionFields{};
  if (management) {
    fields = ProjectFields(std::move(*body), /*create=*/false);
  } else {
    for (const auto& [key, value] : body->items()) {
      if (key != "is_active") {
        co_return Answer(400, ProjectError("Invalid request",
                                           fmt::format("unknown field \"{}\": this route changes "
                                                       "only is_active (PATCH /api/functions/... "
                                                       "changes the rest)",
                                                       key)));
      }
      if (!value.is_boolean()) {
        co_return Answer(400, ProjectError("Invalid request", "is_active must be true or false"));
      }
      fields->active = value.get<bool>();
    }
  }
  if (!fields) co_return Refusal(fields.error());
  std::string id = f->record.id;
  auto updated = co_await functions.Update(id, std::move(*fields));
  if (!updated) co_return Refusal(updated.error());
  const core::Function* now = functions.Find(id);
  if (!now) co_return NotFound();
  co_return Answer(200, json{{"success", true},
                             {"function", ProjectFunctionJson(*now, functions.runtimes(), false)}});
}

HttpResponse ListProject(const core::FunctionService& functions, const std::string& project) {
  if (auto valid = core::ValidateProjectName(project); !valid) {
    return Answer(400, ProjectError("Invalid request", valid.error().message));
  }
  json items = json::array();
  for (const core::Function* f : ProjectFunctions(functions, project)) {
    items.push_back(ProjectFunctionJson(*f, functions.runtimes(), false));
  }
  const size_t count = items.size();
  return Answer(200, json{{"success", true}, {"functions", std::move(items)}, {"count", count}});
}

HttpResponse GetInProject(core::FunctionService& functions, HttpRequest& request, bool with_code) {
  core::Function* f =
      FindInProject(functions, request.params["projectId"], request.params["functionName"]);
  if (!f) return NotFound();
  return Answer(200, json{{"success", true},
                          {"function", ProjectFunctionJson(*f, functions.runtimes(), with_code)}});
}

}  // namespace

bool IsPublicProjectRoute(core::FunctionService& functions, const HttpRequest& request,
                          std::string_view project_domain) {
  const bool by_host = ProjectOfHost(request.Header("host"), project_domain).has_value();
  if (!by_host && !request.path.starts_with(std::string(kRoutePrefix) + "/")) return false;
  auto project_request = ProjectRequestOf(request, project_domain);
  if (!project_request) return false;
  auto routed = RouteOf(functions, *project_request);
  if (!routed) return false;
  const auto config = ParseStoredUrlConfig(routed->function->record.url_config_json);
  return config && config->auth_type == "NONE";
}

void AddProjectRoutes(Router& router, core::FunctionService& functions, core::Invoker& invoker,
                      LambdaAccount account, std::string project_domain) {
  // The management routes first: /api/functions/projects/:projectId would otherwise read as
  // the function "projects/..." (a project may not be called "projects", see projects.h).
  router.Add("POST", "/api/functions/projects/:projectId",
             [&functions](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               const std::string project = request.params["projectId"];
               if (auto valid = core::ValidateProjectName(project); !valid) {
                 co_return Refusal(valid.error());
               }
               auto body = ParseObject(request);
               if (!body) co_return Refusal(body.error());
               auto fields = ProjectFields(std::move(*body), /*create=*/true);
               if (!fields) co_return Refusal(fields.error());
               fields->project = project;
               auto created = co_await functions.Create(std::move(*fields));
               if (!created) co_return Refusal(created.error());
               const core::Function* f = functions.Find(created->id);
               if (!f) co_return NotFound();
               co_return Answer(
                   201, json{{"success", true},
                             {"function", ProjectFunctionJson(*f, functions.runtimes(), false)}});
             });
  router.Add("GET", "/api/functions/projects/:projectId",
             [&functions](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               co_return ListProject(functions, request.params["projectId"]);
             });
  router.Add("GET", "/api/functions/:projectId/:functionName",
             [&functions](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               co_return GetInProject(functions, request, /*with_code=*/true);
             });
  router.Add("PATCH", "/api/functions/:projectId/:functionName",
             [&functions](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               co_return co_await PatchInProject(functions, request, /*management=*/true);
             });
  router.Add("DELETE", "/api/functions/:projectId/:functionName",
             [&functions](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               core::Function* f = FindInProject(functions, request.params["projectId"],
                                                 request.params["functionName"]);
               if (!f) co_return NotFound();
               std::string id = f->record.id;
               auto deleted = co_await functions.Delete(std::move(id));
               if (!deleted) co_return Refusal(deleted.error());
               co_return Answer(200, json{{"success", true}});
             });

  // The service API: invoke, metadata, enable/disable, the project's functions.
  router.Add("POST", "/api/v1/functions/:projectId/:functionName",
             [&functions, &invoker](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               co_return co_await InvokeInProject(functions, invoker, request);
             });
  router.Add("GET", "/api/v1/functions/:projectId/:functionName",
             [&functions](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               co_return GetInProject(functions, request, /*with_code=*/false);
             });
  router.Add("PATCH", "/api/v1/functions/:projectId/:functionName",
             [&functions](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               co_return co_await PatchInProject(functions, request, /*management=*/false);
             });
  router.Add("GET", "/api/v1/projects/:projectId/functions",
             [&functions](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               co_return ListProject(functions, request.params["projectId"]);
             });

  // /v1: the projects there are, and a project's delete with every function in it.
  router.Add("GET", "/v1/projects", [&functions](HttpRequest&) -> asio::awaitable<HttpResponse> {
    std::map<std::string, size_t> counts;
    for (const core::Function* f : functions.List()) {
      if (!f->record.project.empty()) ++counts[f->record.project];
    }
    json items = json::array();
    for (const auto& [project, count] : counts) {
      items.push_back({{"project", project}, {"functions", count}});
    }
    const size_t total = items.size();
    co_return JsonBody(200, json{{"items", std::move(items)}, {"total", total}});
  });
  router.Add("DELETE", "/v1/projects/:project",
             [&functions](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               const std::string project = request.params["project"];
               std::vector<std::pair<std::string, std::string>> doomed;  // id, name
               for (const core::Function* f : ProjectFunctions(functions, project)) {
                 doomed.emplace_back(f->record.id, f->record.name);
               }
               if (doomed.empty()) {
                 co_return ErrorResponse(404,
                                         fmt::format("project '{}' has no functions", project));
               }
               json deleted = json::array();
               for (auto& [id, name] : doomed) {
                 auto done = co_await functions.Delete(id);
                 // One deleted by someone else meanwhile is gone all the same.
                 if (!done && done.error().code != ErrorCode::kNotFound) {
                   co_return ErrorResponse(done.error());
                 }
                 deleted.push_back(name);
               }
               co_return JsonBody(200, json{{"project", project}, {"deleted", std::move(deleted)}});
             });

  // The project's routes.
  auto serve = [&functions, &invoker, account,
                project_domain](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    return ServeProjectRoute(functions, invoker, account, project_domain, request);
  };
  router.AddPrefix(std::string(kRoutePrefix), serve);
  if (!project_domain.empty()) {
    router.AddHostRoute(
        [project_domain](std::string_view host) {
          return ProjectOfHost(host, project_domain).has_value();
        },
        serve);
  }
}

}  // namespace wisp::api
