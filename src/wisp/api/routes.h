// The public API's routes, one function per resource; each adds its routes to the router.
#pragma once

#include <chrono>

#include "wisp/api/function_url_format.h"
#include "wisp/api/http.h"
#include "wisp/api/lambda_api_format.h"
#include "wisp/core/async_dispatcher.h"
#include "wisp/core/function_service.h"
#include "wisp/core/invoker.h"
#include "wisp/core/log_feed.h"
#include "wisp/metrics/event_bus.h"
#include "wisp/metrics/registry.h"
#include "wisp/queue/queue.h"
#include "wisp/store/invocation_writer.h"
#include "wisp/store/store.h"

namespace wisp::api {

// /v1/functions: create, list, get, update, delete, and the invocation logs (?follow=true:
// new records as Server-Sent Events, from `log_feed`).
void AddFunctionRoutes(Router& router, core::FunctionService& functions,
                       scheduler::Scheduler& scheduler, store::Store& store,
                       store::InvocationWriter& writer, asio::thread_pool& workers,
                       core::LogFeed& log_feed);

// /v1/functions/:id/invoke: the synchronous invoke, or the asynchronous one when `async` is
// given and the request asks for it (X-Invocation-Type: Event, or a wrapper with "async": true).
// ?version=N runs the call only if version N serves.
void AddInvokeRoutes(Router& router, core::Invoker& invoker,
                     core::AsyncDispatcher* async = nullptr);

// The event of an invoke request, the one way every invoke route takes it out of a body.
struct RequestEvent {
  std::string event_json;  // minified JSON
  bool wrapped = false;    // the body was the wrapper {"event": ..., "async": ...}
  bool async = false;      // the wrapper's "async" flag
};
// An empty body is the event {}. A JSON object whose keys are exactly "event" and at most the
// boolean "async" is the wrapper, and its "event" the event; any other body is itself the
// event, so {"event": "signup", "user": "bob"} arrives whole. kInvalidArgument for a body that
// is not JSON or is nested too deeply.
Result<RequestEvent> ExtractEvent(std::string_view body);

// /v1/invocations: every call, sync (the store's records) and async (the queue's invocations),
// filtered by function, status, type and time; /v1/dead-letters and requeue.
void AddInvocationRoutes(Router& router, core::AsyncDispatcher& async, queue::Queue& queue,
                         store::Store& store, store::InvocationWriter& writer,
                         asio::thread_pool& workers);

// The program API at root paths beside /v1: /functions, /invoke, /invocations, with
// {"data": ...} bodies, base64 code, Go durations and program-style functions.
void AddProgramApiRoutes(Router& router, core::FunctionService& functions,
                         core::AsyncDispatcher& async, queue::Queue& queue,
                         asio::thread_pool& workers);

// The AWS Lambda control-plane API at its own paths (/2015-03-31/functions, ...), with the
// ARNs of `account`. Packages (CreateFunction, UpdateFunctionCode) are parsed on `workers`, up
// to the code store's zipped limit; a DryRun unpacks one into a draft of `code_store` to check
// it, and drops it.
void AddLambdaApiRoutes(Router& router, core::FunctionService& functions, core::Invoker& invoker,
                        core::AsyncDispatcher& async, const scheduler::Scheduler& scheduler,
                        asio::thread_pool& workers, code::CodeStore& code_store,
                        LambdaAccount account);

// Function URLs: /fn/{name}/... for any method (the function's URL, when it has one), their
// configuration at /v1/functions/:id/url (PUT, GET, DELETE) and the Lambda API's
// /2021-10-31/functions/{name}/url (POST creates, GET, PUT updates, DELETE).
void AddFunctionUrlRoutes(Router& router, core::FunctionService& functions, core::Invoker& invoker,
                          LambdaAccount account);
// True for a request to the URL of a function whose AuthType is NONE: the auth gate lets it
// through without a key.
bool IsPublicFunctionUrl(core::FunctionService& functions, const HttpRequest& request);
// Runs a function with `request` as Lambda's function-URL event and answers with its result
// mapped to HTTP, as a function URL does: `raw_path` is the path the function sees,
// `path_parameters` (a project route's) and `route_key` go into the event, `cors` (the URL's)
// answers preflights and adds its headers. `api_id`: the event's requestContext.apiId.
asio::awaitable<HttpResponse> ServeFunctionRequest(
    core::Invoker& invoker, LambdaAccount account, std::string function_id, std::string api_id,
    std::optional<FunctionUrlCors> cors, HttpRequest& request, std::string raw_path,
    std::map<std::string, std::string> path_parameters, std::string route_key);

// The Vercel-style project API (seed 004): /api/v1/functions/:projectId/:functionName (invoke,
// metadata, is_active), /api/v1/projects/:projectId/functions, the management routes under
// /api/functions, and /v1/projects (list, delete a project with its functions). Also a
// project's routes (core/projects.h): /p/{project}/<route> and, when `project_domain` is set,
// any path on the host {project}.<project_domain>.
void AddProjectRoutes(Router& router, core::FunctionService& functions, core::Invoker& invoker,
                      LambdaAccount account, std::string project_domain);
// True for a request to a project route whose function's URL has AuthType NONE (the gate lets
// it through without a key, as IsPublicFunctionUrl).
bool IsPublicProjectRoute(core::FunctionService& functions, const HttpRequest& request,
                          std::string_view project_domain);

// /v1/functions/:id/versions (publish, list, delete) and /v1/functions/:id/aliases[/:alias].
void AddVersionRoutes(Router& router, core::FunctionService& functions);

// The Lambda API's PublishVersion, ListVersionsByFunction, aliases and tags; called by
// AddLambdaApiRoutes.
void AddLambdaVersionRoutes(Router& router, core::FunctionService& functions,
                            LambdaAccount account);
// A published version's FunctionConfiguration (Version "N", the version's description and
// publication time), as PublishVersion, ListVersionsByFunction and Publish: true answer it.
nlohmann::json EncodeLambdaVersion(const store::VersionRecord& version, bool serving,
                                   const core::RuntimeCatalog& runtimes,
                                   const LambdaAccount& account);
// What a Lambda configuration shows of `record` beside its fields.
LambdaConfigurationView LambdaViewOf(const store::FunctionRecord& record, bool serving,
                                     const core::RuntimeCatalog& runtimes,
                                     const LambdaAccount& account);
// The configuration a qualifier ($LATEST, a version number, an alias) names, and the version it
// is ("$LATEST" or "N"); kNotFound for an unknown one.
struct LambdaQualified {
  const store::FunctionRecord* record = nullptr;
  std::string version;
  bool serving = false;
};
Result<LambdaQualified> ResolveLambdaQualifier(const core::Function& function,
                                               const std::optional<std::string>& qualifier);

// /health: liveness, uptime and invocation counters.
struct HealthInfo {
  std::chrono::steady_clock::time_point started;
  const metrics::Registry* metrics;
  const core::FunctionService* functions;
  const scheduler::Scheduler* scheduler;
  bool limits_enforced = true;
  const queue::Queue* queue = nullptr;              // the async queue's depth, when there is one
  const store::InvocationWriter* writer = nullptr;  // records stored and pruned, batches lost
};
void AddHealthRoutes(Router& router, HealthInfo info);

// What runs: GET /metrics (Prometheus text), /v1/functions/:id/metrics (recent windows as
// JSON), /v1/instances and /v1/functions/:id/instances, and the WebSockets
// /v1/instances/:id/metrics/ws (alias /v1/vms/:id/metrics/ws) and /v1/events/ws.
struct ObserveInfo {
  const metrics::Registry* metrics;
  core::FunctionService* functions;
  const scheduler::Scheduler* scheduler;
  metrics::EventBus* events;
  asio::thread_pool* workers;
  const Clock* clock;
  const queue::Queue* queue = nullptr;  // the async queue's depth and dead letters
};
void AddObserveRoutes(Router& router, ObserveInfo info);

// Checks that `body` is JSON within the nesting limit, so no later parser can be driven into
// deep recursion. The message says what is wrong.
Result<void> CheckJson(std::string_view body);

}  // namespace wisp::api
