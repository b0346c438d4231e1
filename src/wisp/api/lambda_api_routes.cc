// The AWS Lambda control-plane API (REST paths and JSON as the AWS SDKs and CLI send and expect
// them), beside /v1 on the same port and over the same core: a function created here is one
// /v1 lists, and the other way round.
#include <algorithm>

#include <simdjson.h>

#include <nlohmann/json.hpp>

#include "wisp/api/function_codec.h"
#include "wisp/api/json_views.h"
#include "wisp/api/lambda_api_format.h"
#include "wisp/api/lambda_version_format.h"
#include "wisp/api/program_api_format.h"
#include "wisp/api/routes.h"
#include "wisp/code/tree_zip.h"
#include "wisp/code/zip_package.h"
#include "wisp/common/ids.h"

namespace wisp::api {
namespace {
using nlohmann::json;

// Every answer carries a request id, as Lambda's do; the SDKs put it in their errors.
// An Event call's answer already names its invocation's id.
HttpResponse WithRequestId(HttpResponse response, const std::string& request_id) {
  for (const auto& [name, value] : response.headers) {
    if (name == "X-Amzn-RequestId") return response;
  }
  response.headers.emplace_back("X-Amzn-RequestId", request_id);
  return response;
}

struct Target {
  core::Function* function = nullptr;
  LambdaFunctionRef ref;
};

// The function a request's {FunctionName} and ?Qualifier name, or the Lambda error to answer.
tl::expected<Target, HttpResponse> FindTarget(core::FunctionService& functions,
                                              const HttpRequest& request,
                                              const LambdaAccount& account) {
  std::optional<std::string_view> query_qualifier;
  if (auto it = request.query.find("Qualifier"); it != request.query.end()) {
    query_qualifier = it->second;
  }
  auto ref = ParseFunctionRef(request.params.at("name"), query_qualifier, account);
  if (!ref) return tl::unexpected(LambdaError(ref.error()));
  core::Function* function = functions.FindByName(ref->name);
  if (!function) {
    return tl::unexpected(LambdaError(
        404, "ResourceNotFoundException",
        fmt::format("Function not found: {}", FunctionArn(account, ref->name) +
                                                  (ref->qualifier ? ":" + *ref->qualifier : ""))));
  }
  return Target{function, std::move(*ref)};
}

// A qualifier names $LATEST, a published version or an alias (ResolveLambdaQualifier).
std::optional<HttpResponse> CheckQualifier(const Target& target, const LambdaAccount& account) {
  if (ResolveLambdaQualifier(*target.function, target.ref.qualifier)) return std::nullopt;
  return LambdaError(
      404, "ResourceNotFoundException",
      fmt::format("Function not found: {}:{}", FunctionArn(account, target.function->record.name),
                  *target.ref.qualifier));
}

// The alias a reference names ("name:live", ?Qualifier=live), or empty for $LATEST and numbers.
std::string AliasNamed(const LambdaFunctionRef& ref) {
  if (!ref.qualifier || *ref.qualifier == "$LATEST" || ParseVersionNumber(*ref.qualifier))
    return {};
  return *ref.qualifier;
}

LambdaConfigurationView ViewOf(const core::Function& function, const core::RuntimeCatalog& runtimes,
                               const LambdaAccount& account) {
  return LambdaViewOf(function.record, function.deployment != nullptr, runtimes, account);
}

// A function's Lambda log tail: START, its lines, END and REPORT, as X-Amz-Log-Result shows.
std::string ReportLine(const core::InvokeOutcome& outcome, int memory_mb) {
  std::string line = fmt::format(
      "REPORT RequestId: {}\tDuration: {} ms\tBilled Duration: {} ms\tMemory Size: {} MB",
      outcome.request_id, outcome.duration_ms, std::max<int64_t>(outcome.duration_ms, 1),
      memory_mb);
  if (outcome.result.memory_used_mb) {
    line += fmt::format("\tMax Memory Used: {} MB", *outcome.result.memory_used_mb);
  }
  if (outcome.init_duration_ms) {
    line += fmt::format("\tInit Duration: {} ms", *outcome.init_duration_ms);
  }
  return line;
}

// The payload as the function receives it: any JSON text, whatever the Content-Type says (the
// SDKs send none, application/json or an octet stream); none at all is {}.
Result<std::string> PayloadOf(const HttpRequest& request) {
  if (request.body.find_first_not_of(" \t\r\n") == std::string::npos) return std::string("{}");
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (const auto error = parser.parse(request.body.data(), request.body.size()).get(root)) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("Could not parse request body into json: {}", simdjson::error_message(error)));
  }
  return request.body;
}

// X-Amz-Client-Context: base64 of a JSON object, which the function sees as its client context.
Result<std::string> ClientContextOf(const HttpRequest& request) {
  const std::string_view header = request.Header("x-amz-client-context");
  if (header.empty()) return std::string();
  auto decoded = DecodeBase64(header);
  if (!decoded || !json::accept(*decoded) || !json::parse(*decoded).is_object()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "X-Amz-Client-Context must be the base64 of a JSON object");
  }
  return json::parse(*decoded).dump();
}

asio::awaitable<HttpResponse> Invoke(core::FunctionService& functions, core::Invoker& invoker,
                                     core::AsyncDispatcher& async, const LambdaAccount& account,
                                     HttpRequest& request, const std::string& request_id) {
  if (auto bad = UnknownLambdaParameters(request, {"Qualifier"})) co_return *bad;
  auto target = FindTarget(functions, request, account);
  if (!target) co_return target.error();
  if (auto missing = CheckQualifier(*target, account)) co_return *missing;
  const std::string_view type = request.Header("x-amz-invocation-type");
  if (!type.empty() && type != "RequestResponse" && type != "Event" && type != "DryRun") {
    co_return LambdaError(400, "InvalidParameterValueException",
                          fmt::format("X-Amz-Invocation-Type '{}' is not RequestResponse, Event "
                                      "or DryRun",
                                      type));
  }
  const std::string_view log_type = request.Header("x-amz-log-type");
  if (!log_type.empty() && log_type != "None" && log_type != "Tail") {
    co_return LambdaError(400, "InvalidParameterValueException",
                          fmt::format("X-Amz-Log-Type '{}' is not None or Tail", log_type));
  }
  auto payload = PayloadOf(request);
  if (!payload)
    co_return LambdaError(400, "InvalidRequestContentException", payload.error().message);
  auto client_context = ClientContextOf(request);
  if (!client_context) {
    co_return LambdaError(400, "InvalidRequestContentException", client_context.error().message);
  }
  if (type == "DryRun") {
    // Lambda's check that the caller may invoke: the function exists and the request is sound.
    HttpResponse response;
    response.status = 204;
    co_return response;
  }
  if (type == "Event") {
    if (payload->size() > kLambdaMaxEventPayloadBytes) {
      co_return LambdaError(
          413, "RequestTooLargeException",
          fmt::format("an Event payload may be at most {} bytes", kLambdaMaxEventPayloadBytes));
    }
    core::SubmitRequest submit;
    submit.function_id = target->function->record.id;
    submit.event_json = std::move(*payload);
    submit.trace_id = CallerTraceId(request);
    if (target->ref.qualifier) submit.qualifier = *target->ref.qualifier;
    auto accepted = co_await async.Submit(std::move(submit));
    if (!accepted) co_return LambdaError(accepted.error());
    HttpResponse response;
    response.status = 202;
    response.headers.emplace_back("X-Amzn-RequestId", accepted->id);
    co_return response;
  }
  core::InvokeOptions options;
  options.request_id = request_id;
  options.trace_id = CallerTraceId(request);
  options.client_context = std::move(*client_context);
  if (target->ref.qualifier) options.qualifier = *target->ref.qualifier;
  const int memory_mb = target->function->record.memory_mb;
  auto outcome =
      co_await invoker.Invoke(target->function->record.id, std::move(*payload), std::move(options));
  if (!outcome) co_return LambdaError(outcome.error());
  HttpResponse response;
  response.status = 200;
  response.body = outcome->result.response_json.empty() ? "null" : outcome->result.response_json;
  const std::string& executed_version = outcome->executed_version;
  response.headers.emplace_back("X-Amz-Executed-Version", executed_version);
  if (outcome->result.status != scheduler::InvocationStatus::kSuccess) {
    // The call worked; the function did not. Lambda says Unhandled for a thrown error, a
    // timeout and a crash alike.
    response.headers.emplace_back("X-Amz-Function-Error", "Unhandled");
  }
  if (log_type == "Tail") {
    response.headers.emplace_back(
        "X-Amz-Log-Result",
        EncodeBase64(LambdaLogTail(outcome->request_id, executed_version, outcome->result.logs,
                                   ReportLine(*outcome, memory_mb), kLambdaLogTailBytes)));
  }
  co_return response;
}

// ---- Code operations: CreateFunction, UpdateFunctionCode, and the package download ----

// Where GetFunction's Code.Location points: this API's own route serving the function's code as
// a zip, on the address the caller reached (its Host header). With auth on it takes SigV4 like
// every path of this API (`curl --aws-sigv4`), where Lambda's would be a presigned S3 URL.
std::string CodeLocation(const HttpRequest& request, std::string_view name,
                         const LambdaFunctionRef& ref) {
  std::string_view host = request.Header("host");
  if (host.empty()) host = "localhost";
  std::string url = fmt::format("http://{}/2015-03-31/functions/{}/code-zip", host, name);
  if (ref.qualifier)
    url += "?Qualifier=" + (*ref.qualifier == "$LATEST" ? "%24LATEST" : *ref.qualifier);
  return url;
}

HttpResponse ZipTooLarge(uint64_t size, uint64_t max_zip_bytes) {
  return LambdaError(
      413, "RequestTooLargeException",
      fmt::format("the zip is {} bytes, over the limit of {} bytes zipped", size, max_zip_bytes));
}

// The answer to a failure of the core's create or update: a package it refused is
// InvalidZipFileException, with the reason.
HttpResponse CodeChangeError(const Error& error) {
  if (code::IsPackageRefusal(error))
    return LambdaError(400, "InvalidZipFileException", error.message);
  return LambdaError(error);
}

// simdjson's tree as nlohmann's, but for the string `zip_field` names (the object it is a
// member of, and its key), which is handed out as a view instead: nlohmann's lexer reads a
// string a byte at a time, simdjson tens of MB in milliseconds.
struct ZipField {
  std::optional<simdjson::dom::object> parent;  // none: no ZipFile to look for
  std::string_view key;
  std::optional<std::string_view> base64;
};
json ToJsonWithoutZip(simdjson::dom::element element, ZipField& zip_field) {
  switch (element.type()) {
    case simdjson::dom::element_type::OBJECT: {
      json out = json::object();
      simdjson::dom::object object;
      if (element.get(object) != simdjson::SUCCESS) break;
      // One document: distinct objects start at distinct places of its tape.
      const bool is_parent = zip_field.parent && object.begin() == zip_field.parent->begin();
      for (const auto field : object) {
        if (is_parent && field.key == zip_field.key && field.value.is_string()) {
          zip_field.base64 = field.value.get_string().value_unsafe();
          continue;
        }
        out[std::string(field.key)] = ToJsonWithoutZip(field.value, zip_field);
      }
      return out;
    }
    case simdjson::dom::element_type::ARRAY: {
      json out = json::array();
      simdjson::dom::array array;
      if (element.get(array) != simdjson::SUCCESS) break;
      for (const auto item : array) {
        out.push_back(ToJsonWithoutZip(item, zip_field));
      }
      return out;
    }
    case simdjson::dom::element_type::STRING:
      return std::string(element.get_string().value_unsafe());
    case simdjson::dom::element_type::INT64:
      return element.get_int64().value_unsafe();
    case simdjson::dom::element_type::UINT64:
      return element.get_uint64().value_unsafe();
    case simdjson::dom::element_type::DOUBLE:
      return element.get_double().value_unsafe();
    case simdjson::dom::element_type::BOOL:
      return element.get_bool().value_unsafe();
    case simdjson::dom::element_type::NULL_VALUE:
      break;
  }
  return nullptr;
}

// A package request's body: its JSON without the zip's base64, and that text (a view into
// `parser`). `zip_parent` is the member holding ZipFile ("Code"), empty for the top level.
struct PackageBody {
  json rest;
  std::optional<std::string_view> zip_base64;
};
tl::expected<PackageBody, HttpResponse> ParsePackageBody(simdjson::dom::parser& parser,
                                                         const std::string& body,
                                                         std::string_view zip_parent) {
  simdjson::dom::element root;
  if (const auto error = parser.parse(body).get(root)) {
    return tl::unexpected(
        LambdaError(400, "InvalidRequestContentException",
                    fmt::format("the body is not valid JSON: {}", simdjson::error_message(error))));
  }
  ZipField zip_field{{}, "ZipFile", std::nullopt};
  simdjson::dom::object top;
  if (root.get(top) == simdjson::SUCCESS) {
    simdjson::dom::object parent = top;
    if (zip_parent.empty() || top[zip_parent].get(parent) == simdjson::SUCCESS) {
      zip_field.parent = parent;
    }
  }
  PackageBody out;
  out.rest = ToJsonWithoutZip(root, zip_field);
  out.zip_base64 = zip_field.base64;
  return out;
}

// Parsed on the worker pool: a package's JSON and base64 are tens of MB.
tl::expected<LambdaFunctionFields, HttpResponse> ParseCreateFunction(const std::string& body,
                                                                     uint64_t max_zip_bytes) {
  simdjson::dom::parser parser;
  auto parsed = ParsePackageBody(parser, body, "Code");
  if (!parsed) return tl::unexpected(std::move(parsed.error()));
  auto fields = DecodeLambdaFunctionFields(parsed->rest, /*create=*/true);
  if (!fields) return tl::unexpected(LambdaError(fields.error()));
  auto zip = DecodeLambdaZipFile(*fields->code, parsed->zip_base64);
  if (!zip) return tl::unexpected(LambdaError(zip.error()));
  fields->code.reset();
  if (zip->size() > max_zip_bytes) return tl::unexpected(ZipTooLarge(zip->size(), max_zip_bytes));
  fields->fields.zip = std::move(*zip);
  return std::move(*fields);
}

tl::expected<LambdaCodeUpdate, HttpResponse> ParseUpdateFunctionCode(const std::string& body,
                                                                     uint64_t max_zip_bytes) {
  simdjson::dom::parser parser;
  auto parsed = ParsePackageBody(parser, body, "");
  if (!parsed) return tl::unexpected(std::move(parsed.error()));
  auto update = DecodeLambdaCodeUpdate(parsed->rest, parsed->zip_base64);
  if (!update) return tl::unexpected(LambdaError(update.error()));
  if (update->zip.size() > max_zip_bytes) {
    return tl::unexpected(ZipTooLarge(update->zip.size(), max_zip_bytes));
  }
  return std::move(*update);
}

struct CodeRouteContext {
  core::FunctionService& functions;
  const core::RuntimeCatalog& runtimes;
  asio::thread_pool& workers;
  code::CodeStore& code_store;
  LambdaAccount account;
  uint64_t max_zip_bytes;
};

// Publish: true on CreateFunction and UpdateFunctionCode: once the new code has deployed (the
// publish waits for the update in progress), it is frozen as the next version, and the answer
// is that version's configuration, as Lambda's is.
asio::awaitable<HttpResponse> PublishAfterChange(const CodeRouteContext& context, std::string id,
                                                 int status) {
  auto published = co_await context.functions.PublishVersion(id, "");
  if (!published) co_return CodeChangeError(published.error());
  co_return LambdaJson(status,
                       EncodeLambdaVersion(*published, true, context.runtimes, context.account));
}

// A DryRun's check of a package: unpacked into a draft, which is dropped whatever the outcome.
Result<void> CheckPackage(code::CodeStore& store, const std::string& zip) {
  auto draft = store.NewDraft();
  if (!draft) return tl::unexpected(draft.error());
  return store.UnpackZip(**draft, zip);
}

// POST /2015-03-31/functions. Answers 201 as soon as the function is stored and its package
// unpacked, as Lambda does: State is Pending until the first deploy has loaded the handler
// (Active) or failed to (Failed, with StateReason); clients wait with `aws lambda wait
// function-active` or GetFunction. A call that arrives while it is Pending waits for the deploy
// instead of being refused.
asio::awaitable<HttpResponse> CreateFunction(const CodeRouteContext& context,
                                             HttpRequest& request) {
  if (auto bad = UnknownLambdaParameters(request, {})) co_return *bad;
  auto parse = [body = std::move(request.body), max = context.max_zip_bytes] {
    return ParseCreateFunction(body, max);
  };
  auto parsed = co_await Offload(context.workers, std::move(parse));
  if (!parsed) co_return parsed.error();
  auto created = co_await context.functions.Create(std::move(parsed->fields));
  if (!created) co_return CodeChangeError(created.error());
  if (parsed->publish) co_return co_await PublishAfterChange(context, created->id, 201);
  const core::Function* f = context.functions.Find(created->id);
  if (!f) co_return LambdaError(404, "ResourceNotFoundException", "Function deleted meanwhile");
  co_return LambdaJson(
      201, EncodeLambdaConfiguration(f->record, ViewOf(*f, context.runtimes, context.account),
                                     context.account));
}

// PUT /2015-03-31/functions/{name}/code. Answers once the new code serves (LastUpdateStatus
// Successful) or failed to load (Failed, the code before it still serving).
asio::awaitable<HttpResponse> UpdateFunctionCode(const CodeRouteContext& context,
                                                 HttpRequest& request) {
  if (auto bad = UnknownLambdaParameters(request, {})) co_return *bad;
  auto target = FindTarget(context.functions, request, context.account);
  if (!target) co_return target.error();
  if (target->ref.qualifier) {
    co_return LambdaError(400, "InvalidParameterValueException",
                          "UpdateFunctionCode changes $LATEST: name the function without a "
                          "qualifier");
  }
  const std::string id = target->function->record.id;
  auto parse = [body = std::move(request.body), max = context.max_zip_bytes] {
    return ParseUpdateFunctionCode(body, max);
  };
  auto parsed = co_await Offload(context.workers, std::move(parse));
  if (!parsed) co_return parsed.error();
  if (parsed->publish && parsed->dry_run) {
    co_return LambdaError(400, "InvalidParameterValueException",
                          "DryRun checks a package without changing the function: it cannot "
                          "Publish");
  }
  const core::Function* f = context.functions.Find(id);
  if (!f) co_return LambdaError(404, "ResourceNotFoundException", "Function not found");
  if (parsed->revision_id && *parsed->revision_id != LambdaRevisionId(f->record)) {
    co_return LambdaError(412, "PreconditionFailedException",
                          "RevisionId does not match the function's latest revision");
  }
  if (parsed->dry_run) {
    auto check = [&store = context.code_store, zip = std::move(parsed->zip)] {
      return CheckPackage(store, zip);
    };
    auto checked = co_await Offload(context.workers, std::move(check));
    if (!checked) co_return CodeChangeError(checked.error());
    f = context.functions.Find(id);
    if (!f) co_return LambdaError(404, "ResourceNotFoundException", "Function deleted meanwhile");
  } else {
    core::FunctionFields fields;
    fields.zip = std::move(parsed->zip);
    auto updated = co_await context.functions.Update(id, std::move(fields));
    if (!updated) co_return CodeChangeError(updated.error());
    if (parsed->publish) co_return co_await PublishAfterChange(context, id, 200);
    f = context.functions.Find(id);
    if (!f) co_return LambdaError(404, "ResourceNotFoundException", "Function deleted meanwhile");
  }
  co_return LambdaJson(
      200, EncodeLambdaConfiguration(f->record, ViewOf(*f, context.runtimes, context.account),
                                     context.account));
}

// GET /2015-03-31/functions/{name}/code-zip: the function's code as a zip (code::ZipTree), for
// packages and single-file functions alike.
asio::awaitable<HttpResponse> DownloadFunctionCode(const CodeRouteContext& context,
                                                   HttpRequest& request) {
  if (auto bad = UnknownLambdaParameters(request, {"Qualifier"})) co_return *bad;
  auto target = FindTarget(context.functions, request, context.account);
  if (!target) co_return target.error();
  if (auto missing = CheckQualifier(*target, context.account)) co_return *missing;
  code::TreeHandle tree = target->function->code;
  if (!tree) {
    co_return LambdaError(409, "ResourceConflictException",
                          "the function's code is still being deployed: try again when its State "
                          "is Active");
  }
  auto pack = [tree] { return code::ZipTree(tree->path()); };
  auto zipped = co_await Offload(context.workers, std::move(pack));
  if (!zipped) co_return LambdaError(zipped.error());
  HttpResponse response;
  response.status = 200;
  response.content_type = "application/zip";
  response.body = std::move(*zipped);
  co_return response;
}

// Lambda's own answer to a request body over its operation's limit.
std::function<HttpResponse(uint64_t)> TooLargeFor(std::string operation) {
  return [operation = std::move(operation)](uint64_t max_bytes) {
    return LambdaError(413, "RequestTooLargeException",
                       fmt::format("Request must be smaller than {} bytes for the {} operation",
                                   max_bytes, operation));
  };
}

template <typename AddRoute>
void AddLambdaCodeRoutes(Router& router, const AddRoute& route, const CodeRouteContext& context) {
  // These two take a whole package: a larger body than the server lets other routes have.
  const uint64_t package_limit = LambdaPackageRequestLimit(context.max_zip_bytes);
  router.SetBodyPolicy("POST", "/2015-03-31/functions",
                       Router::BodyPolicy{package_limit, TooLargeFor("CreateFunction")});
  router.SetBodyPolicy("PUT", "/2015-03-31/functions/:name/code",
                       Router::BodyPolicy{package_limit, TooLargeFor("UpdateFunctionCode")});

  route("POST", "/2015-03-31/functions",
        [context](HttpRequest& request, const std::string&) -> asio::awaitable<HttpResponse> {
          co_return co_await CreateFunction(context, request);
        });
  route("PUT", "/2015-03-31/functions/:name/code",
        [context](HttpRequest& request, const std::string&) -> asio::awaitable<HttpResponse> {
          co_return co_await UpdateFunctionCode(context, request);
        });
  route("GET", "/2015-03-31/functions/:name/code-zip",
        [context](HttpRequest& request, const std::string&) -> asio::awaitable<HttpResponse> {
          co_return co_await DownloadFunctionCode(context, request);
        });
}

}  // namespace

void AddLambdaApiRoutes(Router& router, core::FunctionService& functions, core::Invoker& invoker,
                        core::AsyncDispatcher& async, const scheduler::Scheduler& scheduler,
                        asio::thread_pool& workers, code::CodeStore& code_store,
                        LambdaAccount account) {
  const core::RuntimeCatalog& runtimes = functions.runtimes();
  // Each route gets its own copy of what it needs; the router outlives none of them.
  const auto route = [&router](std::string method, std::string pattern, auto handler) {
    router.Add(
        std::move(method), std::move(pattern),
        [handler = std::move(handler)](HttpRequest& request) -> asio::awaitable<HttpResponse> {
          const std::string request_id = NewUuid();
          co_return WithRequestId(co_await handler(request, request_id), request_id);
        });
  };

  route(
      "GET", "/2015-03-31/functions",
      [&functions, &runtimes, account](HttpRequest& request,
                                       const std::string&) -> asio::awaitable<HttpResponse> {
        if (auto bad = UnknownLambdaParameters(
                request, {"MaxItems", "Marker", "FunctionVersion", "MasterRegion"})) {
          co_return *bad;
        }
        auto max_items =
            QueryInt(request, "MaxItems", kLambdaDefaultMaxItems, 1, kLambdaMaxMaxItems);
        if (!max_items) co_return LambdaError(max_items.error());
        bool all_versions = false;
        if (auto it = request.query.find("FunctionVersion"); it != request.query.end()) {
          if (it->second != "ALL") {
            co_return LambdaError(400, "InvalidParameterValueException",
                                  "FunctionVersion must be ALL");
          }
          all_versions = true;
        }
        // By name, then version ($LATEST as 0): a Marker is the last entry of the page before
        // ("name", or "name\0version" when listing all versions), so a page is stable while
        // functions are created or deleted around it.
        std::vector<const core::Function*> all = functions.List();
        std::sort(all.begin(), all.end(),
                  [](const auto* a, const auto* b) { return a->record.name < b->record.name; });
        std::pair<std::string, int> marker{"", -1};
        if (auto it = request.query.find("Marker"); it != request.query.end()) {
          auto decoded = DecodeBase64(it->second);
          if (!decoded) {
            co_return LambdaError(400, "InvalidParameterValueException",
                                  "Marker is not one a ListFunctions answer gave");
          }
          const size_t split = decoded->find('\0');
          marker.first = decoded->substr(0, split);
          marker.second = split == std::string::npos ? 0 : std::atoi(decoded->c_str() + split + 1);
        }
        json items = json::array();
        std::pair<std::string, int> last;
        bool more = false;
        auto add = [&](const std::pair<std::string, int>& key, json item) {
          if (!marker.first.empty() && key <= marker) return true;
          if (items.size() == static_cast<size_t>(*max_items)) {
            more = true;
            return false;
          }
          items.push_back(std::move(item));
          last = key;
          return true;
        };
        for (const auto* f : all) {
          if (!add({f->record.name, 0},
                   EncodeLambdaConfiguration(f->record, ViewOf(*f, runtimes, account), account))) {
            break;
          }
          if (!all_versions) continue;
          bool full = false;
          for (const auto& [number, published] : f->versions) {
            if (!add({f->record.name, number},
                     EncodeLambdaVersion(published.record, published.deployment != nullptr,
                                         runtimes, account))) {
              full = true;
              break;
            }
          }
          if (full) break;
        }
        json body = {{"Functions", std::move(items)}};
        if (more) {
          body["NextMarker"] = EncodeBase64(
              all_versions ? last.first + '\0' + std::to_string(last.second) : last.first);
        }
        co_return LambdaJson(200, body);
      });

  route("GET", "/2015-03-31/functions/:name",
        [&functions, &runtimes, account](HttpRequest& request,
                                         const std::string&) -> asio::awaitable<HttpResponse> {
          if (auto bad = UnknownLambdaParameters(request, {"Qualifier"})) co_return *bad;
          auto target = FindTarget(functions, request, account);
          if (!target) co_return target.error();
          if (auto missing = CheckQualifier(*target, account)) co_return *missing;
          const core::Function& f = *target->function;
          auto qualified = ResolveLambdaQualifier(f, target->ref.qualifier);
          if (!qualified) co_return LambdaError(qualified.error());
          LambdaConfigurationView view =
              LambdaViewOf(*qualified->record, qualified->serving, runtimes, account);
          view.version = qualified->version;
          view.arn_qualifier = AliasNamed(target->ref);
          co_return LambdaJson(
              200,
              json{{"Configuration", EncodeLambdaConfiguration(*qualified->record, view, account)},
                   {"Code",
                    {{"RepositoryType", "S3"},
                     {"Location", CodeLocation(request, f.record.name, target->ref)}}},
                   {"Tags", f.record.tags}});
        });

  route("GET", "/2015-03-31/functions/:name/configuration",
        [&functions, &runtimes, account](HttpRequest& request,
                                         const std::string&) -> asio::awaitable<HttpResponse> {
          if (auto bad = UnknownLambdaParameters(request, {"Qualifier"})) co_return *bad;
          auto target = FindTarget(functions, request, account);
          if (!target) co_return target.error();
          if (auto missing = CheckQualifier(*target, account)) co_return *missing;
          auto qualified = ResolveLambdaQualifier(*target->function, target->ref.qualifier);
          if (!qualified) co_return LambdaError(qualified.error());
          LambdaConfigurationView view =
              LambdaViewOf(*qualified->record, qualified->serving, runtimes, account);
          view.version = qualified->version;
          view.arn_qualifier = AliasNamed(target->ref);
          co_return LambdaJson(200, EncodeLambdaConfiguration(*qualified->record, view, account));
        });

  route("PUT", "/2015-03-31/functions/:name/configuration",
        [&functions, &runtimes, account](HttpRequest& request,
                                         const std::string&) -> asio::awaitable<HttpResponse> {
          if (auto bad = UnknownLambdaParameters(request, {})) co_return *bad;
          auto target = FindTarget(functions, request, account);
          if (!target) co_return target.error();
          if (target->ref.qualifier) {
            co_return LambdaError(400, "InvalidParameterValueException",
                                  "UpdateFunctionConfiguration changes $LATEST: name the "
                                  "function without a qualifier");
          }
          if (auto valid = CheckJson(request.body); !valid) {
            co_return LambdaError(400, "InvalidRequestContentException", valid.error().message);
          }
          auto fields = DecodeLambdaFunctionFields(json::parse(request.body), /*create=*/false);
          if (!fields) co_return LambdaError(fields.error());
          const std::string id = target->function->record.id;
          auto updated = co_await functions.Update(id, std::move(fields->fields));
          if (!updated) co_return LambdaError(updated.error());
          const core::Function* f = functions.Find(id);
          if (!f) co_return LambdaError(404, "ResourceNotFoundException", "Function not found");
          co_return LambdaJson(
              200, EncodeLambdaConfiguration(f->record, ViewOf(*f, runtimes, account), account));
        });

  route("DELETE", "/2015-03-31/functions/:name",
        [&functions, account](HttpRequest& request,
                              const std::string&) -> asio::awaitable<HttpResponse> {
          if (auto bad = UnknownLambdaParameters(request, {"Qualifier"})) co_return *bad;
          auto target = FindTarget(functions, request, account);
          if (!target) co_return target.error();
          if (target->ref.qualifier && *target->ref.qualifier != "$LATEST") {
            // A qualifier deletes that version only (never one an alias points at).
            auto number = ParseVersionNumber(*target->ref.qualifier);
            if (!number) {
              co_return LambdaError(400, "InvalidParameterValueException",
                                    "DeleteFunction takes a version number as qualifier, not "
                                    "an alias: delete an alias with DeleteAlias");
            }
            const std::string id = target->function->record.id;
            auto deleted = co_await functions.DeleteVersion(id, *number);
            if (!deleted) co_return LambdaError(deleted.error());
            HttpResponse response;
            response.status = 204;
            co_return response;
          }
          // A copy: the delete destroys the function, and the record's id with it.
          const std::string id = target->function->record.id;
          auto deleted = co_await functions.Delete(id);
          if (!deleted) co_return LambdaError(deleted.error());
          HttpResponse response;
          response.status = 204;
          co_return response;
        });

  // An Invoke over the server's limit gets Lambda's answer, which the SDKs raise by name.
  router.SetBodyPolicy("POST", "/2015-03-31/functions/:name/invocations",
                       Router::BodyPolicy{std::nullopt, TooLargeFor("Invoke")});
  route("POST", "/2015-03-31/functions/:name/invocations",
        [&functions, &invoker, &async, account](
            HttpRequest& request, const std::string& request_id) -> asio::awaitable<HttpResponse> {
          co_return co_await Invoke(functions, invoker, async, account, request, request_id);
        });

  AddLambdaCodeRoutes(router, route,
                      CodeRouteContext{functions, runtimes, workers, code_store, account,
                                       code_store.limits().max_zip_bytes});
  AddLambdaVersionRoutes(router, functions, account);

  route("GET", "/2016-08-19/account-settings",
        [&functions, &scheduler](HttpRequest& request,
                                 const std::string&) -> asio::awaitable<HttpResponse> {
          if (auto bad = UnknownLambdaParameters(request, {})) co_return *bad;
          uint64_t code_bytes = 0;
          const auto all = functions.List();
          for (const auto* f : all) code_bytes += static_cast<uint64_t>(f->record.code_size);
          const uint64_t concurrency = scheduler.max_instances();
          co_return LambdaJson(
              200, json{{"AccountLimit",
                         {{"TotalCodeSize", 75ull << 30},
                          {"CodeSizeUnzipped", 250ull << 20},
                          {"CodeSizeZipped", 50ull << 20},
                          {"ConcurrentExecutions", concurrency},
                          {"UnreservedConcurrentExecutions", concurrency}}},
                        {"AccountUsage",
                         {{"TotalCodeSize", code_bytes}, {"FunctionCount", all.size()}}}});
        });
}

}  // namespace wisp::api
