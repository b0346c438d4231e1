// The Lambda API's versions, aliases and tags: PublishVersion, ListVersionsByFunction,
// CreateAlias/GetAlias/UpdateAlias/DeleteAlias/ListAliases, TagResource/ListTags/UntagResource.
// Registered by AddLambdaApiRoutes; same core as /v1's version routes.
#include <algorithm>

#include <nlohmann/json.hpp>

#include "wisp/api/function_codec.h"
#include "wisp/api/json_views.h"
#include "wisp/api/lambda_version_format.h"
#include "wisp/api/program_api_format.h"
#include "wisp/api/routes.h"
#include "wisp/code/code_store.h"
#include "wisp/common/ids.h"

namespace wisp::api {
namespace {
using nlohmann::json;

HttpResponse NoContent() {
  HttpResponse response;
  response.status = 204;
  return response;
}

// The function a {name} path segment names (no qualifier), or the error to answer.
tl::expected<core::Function*, HttpResponse> FindUnqualified(core::FunctionService& functions,
                                                            const std::string& raw,
                                                            const LambdaAccount& account) {
  auto ref = ParseFunctionRef(raw, std::nullopt, account);
  if (!ref) return tl::unexpected(LambdaError(ref.error()));
  if (ref->qualifier) {
    return tl::unexpected(LambdaError(400, "InvalidParameterValueException",
                                      "name the function without a qualifier"));
  }
  core::Function* function = functions.FindByName(ref->name);
  if (!function) {
    return tl::unexpected(
        LambdaError(404, "ResourceNotFoundException",
                    fmt::format("Function not found: {}", FunctionArn(account, ref->name))));
  }
  return function;
}

// Marker/MaxItems paging over `items` (a Marker is the base64 of the last item's key).
Result<json> Page(const HttpRequest& request,
                  const std::vector<std::pair<std::string, json>>& items, const char* list_name) {
  auto max_items = QueryInt(request, "MaxItems", kLambdaDefaultMaxItems, 1, kLambdaMaxMaxItems);
  if (!max_items) return tl::unexpected(max_items.error());
  std::optional<std::string> marker;
  if (auto it = request.query.find("Marker"); it != request.query.end()) {
    auto decoded = DecodeBase64(it->second);
    if (!decoded) {
      return MakeError(ErrorCode::kInvalidArgument, "Marker is not one an answer gave");
    }
    marker = std::move(*decoded);
  }
  json page = json::array();
  bool started = !marker;
  std::string last;
  bool more = false;
  for (const auto& [key, item] : items) {
    if (!started) {
      started = key == *marker;
      continue;
    }
    if (page.size() == static_cast<size_t>(*max_items)) {
      more = true;
      break;
    }
    page.push_back(item);
    last = key;
  }
  json body = {{list_name, std::move(page)}};
  if (more) body["NextMarker"] = EncodeBase64(last);
  return body;
}

Result<json> JsonBodyOf(const HttpRequest& request) {
  if (request.body.find_first_not_of(" \t\r\n") == std::string::npos) return json::object();
  if (auto valid = CheckJson(request.body); !valid) return tl::unexpected(valid.error());
  return json::parse(request.body);
}

}  // namespace

LambdaConfigurationView LambdaViewOf(const store::FunctionRecord& record, bool serving,
                                     const core::RuntimeCatalog& runtimes,
                                     const LambdaAccount& account) {
  LambdaConfigurationView view;
  view.runtime = record.runtime;
  view.handler = record.handler;
  if (const core::RuntimeEntry* runtime = runtimes.Find(record.runtime)) {
    view.runtime = LambdaRuntimeName(*runtime, runtimes.Version(runtime->name));
    if (auto target = core::ParseHandler(*runtime, record.handler)) {
      view.handler = target->ToString();
    }
  }
  view.role = fmt::format("arn:aws:iam::{}:role/wisp-function", account.account_id);
  view.code_size = static_cast<uint64_t>(record.code_size);
  view.code_sha256 = record.code_sha256;
  if (view.code_sha256.empty() && record.code_format == "file") {
    // A /v1 function's one source file, before its first deploy has recorded the figures: they
    // are the file's (what CodeStore::PutFile stores).
    view.code_sha256 = code::Sha256Base64(record.code);
    view.code_size = record.code.size();
  }
  view.description = record.description;
  view.serving = serving;
  return view;
}

json EncodeLambdaVersion(const store::VersionRecord& version, bool serving,
                         const core::RuntimeCatalog& runtimes, const LambdaAccount& account) {
  store::FunctionRecord config = version.config;
  if (!version.description.empty()) config.description = version.description;
  config.updated_at_ms = version.created_at_ms;
  LambdaConfigurationView view = LambdaViewOf(config, serving, runtimes, account);
  view.version = std::to_string(version.number);
  return EncodeLambdaConfiguration(config, view, account);
}

Result<LambdaQualified> ResolveLambdaQualifier(const core::Function& function,
                                               const std::optional<std::string>& qualifier) {
  if (!qualifier || *qualifier == "$LATEST") {
    return LambdaQualified{&function.record, "$LATEST", function.deployment != nullptr};
  }
  int number = 0;
  if (auto parsed = ParseVersionNumber(*qualifier)) {
    number = *parsed;
  } else if (auto alias = function.aliases.find(*qualifier); alias != function.aliases.end()) {
    number = alias->second.version;
  } else {
    return MakeError(ErrorCode::kNotFound,
                     fmt::format("Function not found: {}:{}", function.record.name, *qualifier));
  }
  auto version = function.versions.find(number);
  if (version == function.versions.end()) {
    return MakeError(ErrorCode::kNotFound,
                     fmt::format("Function not found: {}:{}", function.record.name, *qualifier));
  }
  return LambdaQualified{&version->second.record.config, std::to_string(number),
                         version->second.deployment != nullptr};
}

void AddLambdaVersionRoutes(Router& router, core::FunctionService& functions,
                            LambdaAccount account) {
  const core::RuntimeCatalog& runtimes = functions.runtimes();
  // Every answer carries a request id, as Lambda's do (the SDKs put it in their errors).
  const auto route = [&router](std::string method, std::string pattern, auto handler) {
    router.Add(
        std::move(method), std::move(pattern),
        [handler = std::move(handler)](HttpRequest& request) -> asio::awaitable<HttpResponse> {
          HttpResponse response = co_await handler(request);
          response.headers.emplace_back("X-Amzn-RequestId", NewUuid());
          co_return response;
        });
  };
  const auto version_json = [&runtimes, account](const store::VersionRecord& v) {
    return EncodeLambdaVersion(v, true, runtimes, account);
  };

  route("POST", "/2015-03-31/functions/:name/versions",
        [&functions, account, version_json](HttpRequest& request) -> asio::awaitable<HttpResponse> {
          if (auto bad = UnknownLambdaParameters(request, {})) co_return *bad;
          auto function = FindUnqualified(functions, request.params["name"], account);
          if (!function) co_return function.error();
          auto body = JsonBodyOf(request);
          if (!body || !body->is_object()) {
            co_return LambdaError(400, "InvalidRequestContentException",
                                  "the request body must be a JSON object");
          }
          std::string description;
          std::optional<std::string> code_sha256;
          for (const auto& [key, value] : body->items()) {
            if ((key != "Description" && key != "CodeSha256" && key != "RevisionId") ||
                !value.is_string()) {
              co_return LambdaError(
                  400, "InvalidParameterValueException",
                  fmt::format("PublishVersion takes Description, CodeSha256 and RevisionId "
                              "(strings), not '{}'",
                              key));
            }
            if (key == "Description") description = value.get<std::string>();
            if (key == "CodeSha256") code_sha256 = value.get<std::string>();
          }
          const core::Function& f = **function;
          if (code_sha256 && *code_sha256 != f.record.code_sha256) {
            // Lambda's guard against publishing code other than the one the caller saw.
            co_return LambdaError(412, "PreconditionFailedException",
                                  "CodeSha256 does not match $LATEST's code");
          }
          const std::string id = f.record.id;
          auto published = co_await functions.PublishVersion(id, std::move(description));
          if (!published) co_return LambdaError(published.error());
          co_return LambdaJson(201, version_json(*published));
        });

  route("GET", "/2015-03-31/functions/:name/versions",
        [&functions, &runtimes, account,
         version_json](HttpRequest& request) -> asio::awaitable<HttpResponse> {
          if (auto bad = UnknownLambdaParameters(request, {"Marker", "MaxItems"})) co_return *bad;
          auto function = FindUnqualified(functions, request.params["name"], account);
          if (!function) co_return function.error();
          const core::Function& f = **function;
          std::vector<std::pair<std::string, json>> items;
          // $LATEST first, then the versions oldest first, as Lambda lists them.
          items.emplace_back(
              "$LATEST",
              EncodeLambdaConfiguration(
                  f.record, LambdaViewOf(f.record, f.deployment != nullptr, runtimes, account),
                  account));
          for (const auto& [number, version] : f.versions) {
            items.emplace_back(std::to_string(number), version_json(version.record));
          }
          auto page = Page(request, items, "Versions");
          if (!page) co_return LambdaError(page.error());
          co_return LambdaJson(200, *page);
        });

  route("POST", "/2015-03-31/functions/:name/aliases",
        [&functions, account](HttpRequest& request) -> asio::awaitable<HttpResponse> {
          if (auto bad = UnknownLambdaParameters(request, {})) co_return *bad;
          auto function = FindUnqualified(functions, request.params["name"], account);
          if (!function) co_return function.error();
          auto body = JsonBodyOf(request);
          if (!body)
            co_return LambdaError(400, "InvalidRequestContentException", body.error().message);
          auto fields = DecodeLambdaAliasFields(*body, true);
          if (!fields) co_return LambdaError(fields.error());
          store::AliasRecord alias;
          alias.name = *fields->name;
          alias.version = *fields->function_version;
          alias.description = fields->description.value_or("");
          if (fields->routing && *fields->routing) {
            alias.additional_version = (*fields->routing)->first;
            alias.additional_weight = (*fields->routing)->second;
          }
          const std::string id = (*function)->record.id;
          const std::string name = (*function)->record.name;
          auto stored = co_await functions.PutAlias(id, std::move(alias), true, std::nullopt);
          if (!stored) co_return LambdaError(stored.error());
          co_return LambdaJson(201, EncodeAliasConfiguration(*stored, name, account));
        });

  route(
      "GET", "/2015-03-31/functions/:name/aliases",
      [&functions, account](HttpRequest& request) -> asio::awaitable<HttpResponse> {
        if (auto bad = UnknownLambdaParameters(request, {"Marker", "MaxItems", "FunctionVersion"}))
          co_return *bad;
        auto function = FindUnqualified(functions, request.params["name"], account);
        if (!function) co_return function.error();
        std::optional<std::string> only;
        if (auto it = request.query.find("FunctionVersion"); it != request.query.end()) {
          only = it->second;
        }
        std::vector<std::pair<std::string, json>> items;
        for (const auto& [name, alias] : (*function)->aliases) {
          if (only && *only != std::to_string(alias.version)) continue;
          items.emplace_back(name,
                             EncodeAliasConfiguration(alias, (*function)->record.name, account));
        }
        auto page = Page(request, items, "Aliases");
        if (!page) co_return LambdaError(page.error());
        co_return LambdaJson(200, *page);
      });

  route("GET", "/2015-03-31/functions/:name/aliases/:alias",
        [&functions, account](HttpRequest& request) -> asio::awaitable<HttpResponse> {
          if (auto bad = UnknownLambdaParameters(request, {})) co_return *bad;
          auto function = FindUnqualified(functions, request.params["name"], account);
          if (!function) co_return function.error();
          auto it = (*function)->aliases.find(request.params["alias"]);
          if (it == (*function)->aliases.end()) {
            co_return LambdaError(404, "ResourceNotFoundException",
                                  fmt::format("Alias not found: {}:{}",
                                              FunctionArn(account, (*function)->record.name),
                                              request.params["alias"]));
          }
          co_return LambdaJson(
              200, EncodeAliasConfiguration(it->second, (*function)->record.name, account));
        });

  route("PUT", "/2015-03-31/functions/:name/aliases/:alias",
        [&functions, account](HttpRequest& request) -> asio::awaitable<HttpResponse> {
          if (auto bad = UnknownLambdaParameters(request, {})) co_return *bad;
          auto function = FindUnqualified(functions, request.params["name"], account);
          if (!function) co_return function.error();
          auto it = (*function)->aliases.find(request.params["alias"]);
          if (it == (*function)->aliases.end()) {
            co_return LambdaError(404, "ResourceNotFoundException",
                                  fmt::format("Alias not found: {}", request.params["alias"]));
          }
          auto body = JsonBodyOf(request);
          if (!body)
            co_return LambdaError(400, "InvalidRequestContentException", body.error().message);
          auto fields = DecodeLambdaAliasFields(*body, false);
          if (!fields) co_return LambdaError(fields.error());
          // What the body leaves out stays: rolling back is {"FunctionVersion": "<older>"}.
          store::AliasRecord alias = it->second;
          if (fields->function_version) alias.version = *fields->function_version;
          if (fields->description) alias.description = *fields->description;
          if (fields->routing) {
            alias.additional_version.reset();
            alias.additional_weight = 0;
            if (*fields->routing) {
              alias.additional_version = (*fields->routing)->first;
              alias.additional_weight = (*fields->routing)->second;
            }
          }
          const std::string id = (*function)->record.id;
          const std::string name = (*function)->record.name;
          auto stored = co_await functions.PutAlias(id, std::move(alias), false,
                                                    std::move(fields->revision_id));
          if (!stored) {
            if (stored.error().code == ErrorCode::kConflict) {
              co_return LambdaError(412, "PreconditionFailedException", stored.error().message);
            }
            co_return LambdaError(stored.error());
          }
          co_return LambdaJson(200, EncodeAliasConfiguration(*stored, name, account));
        });

  route("DELETE", "/2015-03-31/functions/:name/aliases/:alias",
        [&functions, account](HttpRequest& request) -> asio::awaitable<HttpResponse> {
          if (auto bad = UnknownLambdaParameters(request, {})) co_return *bad;
          auto function = FindUnqualified(functions, request.params["name"], account);
          if (!function) co_return function.error();
          const std::string id = (*function)->record.id;
          auto deleted = co_await functions.DeleteAlias(id, request.params["alias"]);
          // Lambda answers 204 also for an alias that is not there.
          if (!deleted && deleted.error().code != ErrorCode::kNotFound) {
            co_return LambdaError(deleted.error());
          }
          co_return NoContent();
        });

  // Tags: on the function's unqualified ARN, stored in its record.
  const auto tagged =
      [&functions,
       account](const HttpRequest& request) -> tl::expected<core::Function*, HttpResponse> {
    auto name = FunctionNameOfArn(request.params.at("arn"), account);
    if (!name) return tl::unexpected(LambdaError(name.error()));
    core::Function* function = functions.FindByName(*name);
    if (!function) {
      return tl::unexpected(
          LambdaError(404, "ResourceNotFoundException",
                      fmt::format("Function not found: {}", request.params.at("arn"))));
    }
    return function;
  };

  route("GET", "/2017-03-31/tags/:arn",
        [tagged](HttpRequest& request) -> asio::awaitable<HttpResponse> {
          if (auto bad = UnknownLambdaParameters(request, {})) co_return *bad;
          auto function = tagged(request);
          if (!function) co_return function.error();
          co_return LambdaJson(200, json{{"Tags", (*function)->record.tags}});
        });

  route("POST", "/2017-03-31/tags/:arn",
        [&functions, tagged](HttpRequest& request) -> asio::awaitable<HttpResponse> {
          if (auto bad = UnknownLambdaParameters(request, {})) co_return *bad;
          auto function = tagged(request);
          if (!function) co_return function.error();
          auto body = JsonBodyOf(request);
          if (!body) {
            co_return LambdaError(400, "InvalidRequestContentException", body.error().message);
          }
          auto tags = DecodeTags(*body);
          if (!tags) co_return LambdaError(tags.error());
          std::map<std::string, std::string> merged = (*function)->record.tags;
          for (auto& [key, value] : *tags) merged[key] = std::move(value);
          core::FunctionFields fields;
          fields.tags = std::move(merged);
          const std::string id = (*function)->record.id;
          auto updated = co_await functions.Update(id, std::move(fields));
          if (!updated) co_return LambdaError(updated.error());
          co_return NoContent();
        });

  route("DELETE", "/2017-03-31/tags/:arn",
        [&functions, tagged](HttpRequest& request) -> asio::awaitable<HttpResponse> {
          if (auto bad = UnknownLambdaParameters(request, {"tagKeys"})) co_return *bad;
          auto function = tagged(request);
          if (!function) co_return function.error();
          std::map<std::string, std::string> kept = (*function)->record.tags;
          for (const auto& key : TagKeysOf(request.raw_query)) kept.erase(key);
          core::FunctionFields fields;
          fields.tags = std::move(kept);
          const std::string id = (*function)->record.id;
          auto updated = co_await functions.Update(id, std::move(fields));
          if (!updated) co_return LambdaError(updated.error());
          co_return NoContent();
        });
}

}  // namespace wisp::api
