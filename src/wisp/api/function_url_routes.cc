// Function URLs: /fn/{name}/... runs the function with the request as Lambda's function-URL
// event and answers with what it returns; /v1/functions/:id/url and the Lambda API's
// /2021-10-31/functions/{name}/url configure them. A result is mapped whole (at most the invoke
// result limit); a streamed response (Lambda's response streaming) is relayed as chunked
// transfer as its bytes arrive (at most the Runtime API's max_streamed_response_bytes).
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "wisp/api/function_url_format.h"
#include "wisp/api/routes.h"
#include "wisp/common/ids.h"
#include "wisp/common/json_text.h"

namespace wisp::api {
namespace {

constexpr std::string_view kPrefix = "/fn";

// "/fn/{name}/rest" → {name, "/rest"}; "/fn/{name}" → {name, "/"}.
std::pair<std::string, std::string> SplitUrlPath(std::string_view path) {
  std::string_view rest = path.substr(kPrefix.size());
  if (!rest.empty() && rest[0] == '/') rest.remove_prefix(1);
  const size_t slash = rest.find('/');
  std::string name = PercentDecode(rest.substr(0, slash));
  std::string raw_path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  return {std::move(name), std::move(raw_path)};
}

std::optional<FunctionUrlConfig> UrlConfigOf(core::FunctionService& functions,
                                             std::string_view name) {
  core::Function* function = functions.FindByName(name);
  if (!function) return std::nullopt;
  return ParseStoredUrlConfig(function->record.url_config_json);
}

HttpResponse NoUrl(std::string_view name) {
  return ErrorResponse(404, fmt::format("no function URL named '{}'", name));
}

// The function's own headers, except those the server writes itself.
void PutFunctionHeaders(HttpResponse& response, FunctionUrlResponse mapped) {
  response.status = mapped.status;
  response.body = std::move(mapped.body);
  for (auto& [name, value] : mapped.headers) {
    std::string lower = name;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "content-type") {
      response.content_type = std::move(value);
    } else if (lower != "content-length" && lower != "transfer-encoding" && lower != "connection" &&
               lower != "server") {
      response.headers.emplace_back(std::move(name), std::move(value));
    }
  }
}

HttpResponse BadGateway(std::string_view message, std::string_view detail_key,
                        std::string_view detail_json) {
  return JsonResponse(502, fmt::format(R"({{"message":{},"{}":{}}})", JsonString(message),
                                       detail_key, detail_json));
}

// A response the function streams, between the Runtime API (which appends) and the client's
// connection (which sends): the prelude (status and headers as JSON and 8 NUL bytes, as
// awslambda.HttpResponseStream.from writes them) and the body's bytes not yet sent. Io thread.
struct UrlStream {
  explicit UrlStream(const asio::any_io_executor& executor)
      : executor(executor), changed(std::make_shared<Event>(executor)) {}
  // A prelude longer than this is not one: the bytes are body.
  static constexpr size_t kMaxPrelude = 64 << 10;

  void Append(std::string_view bytes) {
    started = true;
    pending.append(bytes);
    Notify();
  }
  void Notify() {
    auto event = std::move(changed);
    changed = std::make_shared<Event>(executor);
    event->Set();
  }
  asio::awaitable<void> WaitChange() {
    const auto event = changed;
    co_await event->Wait();
  }
  // Whether the head can go out: the prelude is complete, or there is none.
  bool HeadKnown() {
    if (prelude_checked) return true;
    if (!started || pending.empty()) return false;
    const size_t end = pending.find(std::string_view("\0\0\0\0\0\0\0\0", 8));
    if (pending[0] == '{' && end != std::string::npos) {
      prelude = pending.substr(0, end);
      pending.erase(0, end + 8);
      prelude_checked = true;
    } else if (pending[0] != '{' || pending.size() > kMaxPrelude || finished) {
      prelude_checked = true;
    }
    return prelude_checked;
  }

  asio::any_io_executor executor;
  std::shared_ptr<Event> changed;  // set (and replaced) at every change
  std::string pending;
  std::string prelude;
  bool started = false;  // the function streams
  bool prelude_checked = false;
  bool finished = false;  // the invocation ended
  std::optional<Result<core::InvokeOutcome>> outcome;
};

asio::awaitable<void> RunStreamable(core::Invoker& invoker, std::shared_ptr<UrlStream> stream,
                                    std::string function_id, std::string event,
                                    core::InvokeOptions options) {
  auto outcome =
      co_await invoker.Invoke(std::move(function_id), std::move(event), std::move(options));
  stream->outcome = std::move(outcome);
  stream->finished = true;
  stream->Notify();
}

// The head of a streamed response from its prelude (200, application/octet-stream without
// one), or the 502 that says why it is not one.
tl::expected<FunctionUrlResponse, HttpResponse> StreamHead(const std::string& prelude) {
  FunctionUrlResponse head;
  head.headers.emplace_back("content-type", "application/octet-stream");
  if (prelude.empty()) return head;
  nlohmann::json parsed = nlohmann::json::parse(prelude, nullptr, false);
  if (!parsed.is_object()) {
    return tl::unexpected(BadGateway("the function returned an invalid response", "reason",
                                     JsonString("the stream's prelude is not a JSON object")));
  }
  if (!parsed.contains("statusCode")) parsed["statusCode"] = 200;
  parsed.erase("body");
  parsed.erase("isBase64Encoded");
  bool typed = false;
  if (parsed.contains("headers") && parsed["headers"].is_object()) {
    for (const auto& item : parsed["headers"].items()) {
      std::string key = item.key();
      for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      typed = typed || key == "content-type";
    }
  }
  if (!typed) parsed["headers"]["content-type"] = "application/octet-stream";
  auto mapped = MapFunctionUrlResult(parsed.dump());
  if (!mapped) {
    return tl::unexpected(BadGateway("the function returned an invalid response", "reason",
                                     JsonString(mapped.error())));
  }
  return std::move(*mapped);
}

asio::awaitable<HttpResponse> ServeFunctionUrl(core::FunctionService& functions,
                                               core::Invoker& invoker, const LambdaAccount& account,
                                               HttpRequest& request) {
  auto [name, raw_path] = SplitUrlPath(request.path);
  core::Function* function = functions.FindByName(name);
  if (!function) co_return NoUrl(name);
  auto config = ParseStoredUrlConfig(function->record.url_config_json);
  if (!config) co_return NoUrl(name);
  std::string id = function->record.id;
  std::map<std::string, std::string> no_parameters;
  co_return co_await ServeFunctionRequest(invoker, account, std::move(id), std::move(name),
                                          std::move(config->cors), request, std::move(raw_path),
                                          std::move(no_parameters), "");
}

}  // namespace

asio::awaitable<HttpResponse> ServeFunctionRequest(
    core::Invoker& invoker, LambdaAccount account, std::string function_id, std::string api_id,
    std::optional<FunctionUrlCors> cors, HttpRequest& request, std::string raw_path,
    std::map<std::string, std::string> path_parameters, std::string route_key) {
  const std::string origin(request.Header("origin"));
  if (cors && request.method == "OPTIONS" && !origin.empty() &&
      !request.Header("access-control-request-method").empty()) {
    // A preflight is answered here, as Lambda does, without running the function.
    FunctionUrlResponse preflight =
        CorsPreflight(*cors, origin, request.Header("access-control-request-method"),
                      request.Header("access-control-request-headers"));
    HttpResponse response;
    PutFunctionHeaders(response, std::move(preflight));
    co_return response;
  }
  FunctionUrlRequest event_request;
  event_request.method = request.method;
  event_request.raw_path = std::move(raw_path);
  event_request.raw_query = request.raw_query;
  for (const auto& [header, value] : request.headers) {
    // The caller's key is for wispd, not for the function.
    if (header == "authorization") continue;
    event_request.headers.emplace_back(header, value);
  }
  event_request.body = std::move(request.body);
  event_request.source_ip = request.client.is_unspecified() ? "" : request.client.to_string();
  event_request.domain_name = request.Header("host");
  event_request.request_id = NewUuid();
  event_request.account_id = account.account_id;
  event_request.api_id = api_id;
  event_request.path_parameters = std::move(path_parameters);
  event_request.route_key = std::move(route_key);
  event_request.time_epoch_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
  core::InvokeOptions options;
  options.request_id = event_request.request_id;
  options.trace_id = CallerTraceId(request);
  // The call runs on its own: a streamed response is answered while the function still runs.
  const auto stream = std::make_shared<UrlStream>(co_await asio::this_coro::executor);
  options.on_stream_chunk = [stream](std::string_view bytes) { stream->Append(bytes); };
  asio::co_spawn(stream->executor,
                 RunStreamable(invoker, stream, function_id, BuildFunctionUrlEvent(event_request),
                               std::move(options)),
                 asio::detached);
  while (!stream->finished && !stream->HeadKnown()) co_await stream->WaitChange();
  if (stream->started) {
    stream->HeadKnown();  // decides, now that the call may have ended
    auto head = StreamHead(stream->prelude);
    if (!head) co_return head.error();
    HttpResponse response;
    PutFunctionHeaders(response, std::move(*head));
    response.headers.emplace_back("X-Wisp-Request-Id", event_request.request_id);
    if (cors && !origin.empty()) {
      for (auto& header : CorsResponseHeaders(*cors, origin)) {
        response.headers.push_back(std::move(header));
      }
    }
    // A HEAD's answer has no body: the head alone, while the call goes on.
    if (request.method == "HEAD") co_return response;
    response.stream_kind = StreamKind::kChunked;
    response.stream = [stream](Stream& out) -> asio::awaitable<void> {
      for (;;) {
        if (!stream->pending.empty()) {
          std::string bytes;
          bytes.swap(stream->pending);
          if (!co_await out.Send(std::move(bytes))) co_return;
          continue;
        }
        if (stream->finished) co_return;
        co_await stream->WaitChange();
      }
    };
    co_return response;
  }
  Result<core::InvokeOutcome> outcome = std::move(*stream->outcome);
  if (!outcome) co_return ErrorResponse(outcome.error());
  const auto& result = outcome->result;
  HttpResponse response;
  if (result.status == scheduler::InvocationStatus::kTimeout) {
    // A gateway's answer to a backend that did not answer in time (API Gateway's too); any
    // other failure of the function is a 502, as Lambda's URLs answer.
    response = BadGateway("the function timed out", "error",
                          result.response_json.empty() ? "null" : result.response_json);
    response.status = 504;
  } else if (result.status != scheduler::InvocationStatus::kSuccess) {
    response = BadGateway("the function failed", "error",
                          result.response_json.empty() ? "null" : result.response_json);
  } else if (auto mapped =
                 MapFunctionUrlResult(result.response_json.empty() ? "null" : result.response_json);
             !mapped) {
    response = BadGateway("the function returned an invalid response", "reason",
                          JsonString(mapped.error()));
  } else {
    PutFunctionHeaders(response, std::move(*mapped));
  }
  if (result.status != scheduler::InvocationStatus::kSuccess) {
    response.headers.emplace_back(
        "X-Wisp-Function-Error",
        result.status == scheduler::InvocationStatus::kTimeout ? "Timeout" : "Unhandled");
  }
  response.headers.emplace_back("X-Wisp-Request-Id", outcome->request_id);
  // A HEAD's answer has no body, whatever the function wrote.
  if (request.method == "HEAD") response.body.clear();
  if (cors && !origin.empty()) {
    for (auto& header : CorsResponseHeaders(*cors, origin)) {
      response.headers.push_back(std::move(header));
    }
  }
  co_return response;
}

namespace {

std::string UrlOf(const HttpRequest& request, std::string_view name) {
  const std::string_view host = request.Header("host");
  return fmt::format("http://{}/fn/{}/", host.empty() ? "localhost" : host, name);
}

// Sets (or with nullopt removes) a function's URL configuration; returns the stored one.
asio::awaitable<Result<store::FunctionRecord>> StoreUrlConfig(
    core::FunctionService& functions, std::string id, std::optional<FunctionUrlConfig> config) {
  core::FunctionFields fields;
  fields.url_config_json = config ? EncodeStoredUrlConfig(*config) : "";
  co_return co_await functions.Update(std::move(id), std::move(fields));
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The configuration a create (POST) or update (PUT) leaves, or the answer to refuse it with.
// `lambda`: Lambda's answers (a create of an existing URL is a conflict, an update of a
// missing one not found); /v1's PUT creates or replaces.
tl::expected<FunctionUrlConfig, HttpResponse> ChangedConfig(const store::FunctionRecord& record,
                                                            const HttpRequest& request, bool create,
                                                            bool lambda) {
  auto existing = ParseStoredUrlConfig(record.url_config_json);
  if (lambda && create && existing) {
    return tl::unexpected(LambdaError(409, "ResourceConflictException",
                                      "the function already has a URL configuration"));
  }
  if (lambda && !create && !existing) {
    return tl::unexpected(
        LambdaError(404, "ResourceNotFoundException", "the function has no URL configuration"));
  }
  FunctionUrlConfig base = existing.value_or(FunctionUrlConfig{});
  const bool replace = !lambda || create;
  if (replace) {
    // A create or a /v1 PUT states the whole configuration.
    const int64_t created = existing ? existing->created_at_ms : 0;
    base = FunctionUrlConfig{};
    base.created_at_ms = created;
  }
  auto decoded = DecodeFunctionUrlConfig(request.body, std::move(base), replace);
  if (!decoded) {
    if (lambda)
      return tl::unexpected(
          LambdaError(400, "InvalidParameterValueException", decoded.error().message));
    return tl::unexpected(ErrorResponse(decoded.error()));
  }
  const int64_t now = NowMs();
  if (decoded->created_at_ms == 0) decoded->created_at_ms = now;
  decoded->updated_at_ms = now;
  return std::move(*decoded);
}

core::Function* FindV1(core::FunctionService& functions, const std::string& id) {
  if (core::Function* f = functions.Find(id)) return f;
  return functions.FindByName(id);
}

}  // namespace

bool IsPublicFunctionUrl(core::FunctionService& functions, const HttpRequest& request) {
  if (!request.path.starts_with("/fn/")) return false;
  const auto config = UrlConfigOf(functions, SplitUrlPath(request.path).first);
  return config && config->auth_type == "NONE";
}

void AddFunctionUrlRoutes(Router& router, core::FunctionService& functions, core::Invoker& invoker,
                          LambdaAccount account) {
  router.AddPrefix(std::string(kPrefix), [&functions, &invoker, account](HttpRequest& request) {
    return ServeFunctionUrl(functions, invoker, account, request);
  });

  // /v1: PUT creates or replaces, GET reads, DELETE removes (the URL then answers 404).
  router.Add("PUT", "/v1/functions/:id/url",
             [&functions, account](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               core::Function* f = FindV1(functions, request.params["id"]);
               if (!f) co_return ErrorResponse(404, "function not found");
               auto config = ChangedConfig(f->record, request, true, false);
               if (!config) co_return config.error();
               const std::string name = f->record.name;
               auto stored = co_await StoreUrlConfig(functions, f->record.id, *config);
               if (!stored) co_return ErrorResponse(stored.error());
               co_return JsonResponse(200, EncodeLambdaUrlConfig(*config, UrlOf(request, name),
                                                                 FunctionArn(account, name)));
             });
  router.Add("GET", "/v1/functions/:id/url",
             [&functions, account](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               core::Function* f = FindV1(functions, request.params["id"]);
               if (!f) co_return ErrorResponse(404, "function not found");
               auto config = ParseStoredUrlConfig(f->record.url_config_json);
               if (!config) co_return ErrorResponse(404, "the function has no URL");
               co_return JsonResponse(200,
                                      EncodeLambdaUrlConfig(*config, UrlOf(request, f->record.name),
                                                            FunctionArn(account, f->record.name)));
             });
  router.Add("DELETE", "/v1/functions/:id/url",
             [&functions](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               core::Function* f = FindV1(functions, request.params["id"]);
               if (!f) co_return ErrorResponse(404, "function not found");
               if (!ParseStoredUrlConfig(f->record.url_config_json)) {
                 co_return ErrorResponse(404, "the function has no URL");
               }
               auto stored = co_await StoreUrlConfig(functions, f->record.id, std::nullopt);
               if (!stored) co_return ErrorResponse(stored.error());
               HttpResponse response;
               response.status = 204;
               co_return response;
             });

  // Lambda's CreateFunctionUrlConfig (POST), GetFunctionUrlConfig, UpdateFunctionUrlConfig
  // (PUT), DeleteFunctionUrlConfig. The URL belongs to the function, not to a qualifier.
  const std::string lambda_path = "/2021-10-31/functions/:name/url";
  for (const char* method : {"POST", "PUT"}) {
    const bool create = std::string_view(method) == "POST";
    router.Add(
        method, lambda_path,
        [&functions, account, create](HttpRequest& request) -> asio::awaitable<HttpResponse> {
          auto ref = ParseFunctionRef(request.params["name"], std::nullopt, account);
          if (!ref) co_return LambdaError(ref.error());
          core::Function* f = functions.FindByName(ref->name);
          if (!f) {
            co_return LambdaError(
                404, "ResourceNotFoundException",
                fmt::format("Function not found: {}", FunctionArn(account, ref->name)));
          }
          auto config = ChangedConfig(f->record, request, create, true);
          if (!config) co_return config.error();
          const std::string name = f->record.name;
          auto stored = co_await StoreUrlConfig(functions, f->record.id, *config);
          if (!stored) co_return LambdaError(stored.error());
          co_return JsonResponse(
              create ? 201 : 200,
              EncodeLambdaUrlConfig(*config, UrlOf(request, name), FunctionArn(account, name)));
        });
  }
  router.Add("GET", lambda_path,
             [&functions, account](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               auto ref = ParseFunctionRef(request.params["name"], std::nullopt, account);
               if (!ref) co_return LambdaError(ref.error());
               core::Function* f = functions.FindByName(ref->name);
               auto config = f ? ParseStoredUrlConfig(f->record.url_config_json) : std::nullopt;
               if (!config) {
                 co_return LambdaError(404, "ResourceNotFoundException",
                                       "The resource you requested does not exist.");
               }
               co_return JsonResponse(200,
                                      EncodeLambdaUrlConfig(*config, UrlOf(request, f->record.name),
                                                            FunctionArn(account, f->record.name)));
             });
  router.Add("DELETE", lambda_path,
             [&functions, account](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               auto ref = ParseFunctionRef(request.params["name"], std::nullopt, account);
               if (!ref) co_return LambdaError(ref.error());
               core::Function* f = functions.FindByName(ref->name);
               if (!f || !ParseStoredUrlConfig(f->record.url_config_json)) {
                 co_return LambdaError(404, "ResourceNotFoundException",
                                       "The resource you requested does not exist.");
               }
               auto stored = co_await StoreUrlConfig(functions, f->record.id, std::nullopt);
               if (!stored) co_return LambdaError(stored.error());
               HttpResponse response;
               response.status = 204;
               co_return response;
             });
}

}  // namespace wisp::api
