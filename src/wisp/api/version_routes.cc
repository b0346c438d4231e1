// /v1/functions/{id}/versions and /v1/functions/{id}/aliases: publish and list versions, and
// name them with aliases (optionally routing a weighted share of calls to a second version).
// Invoking `{id}:{qualifier}` or with `?qualifier=` runs a version or an alias (invoke_routes).
#include <nlohmann/json.hpp>

#include "wisp/api/function_codec.h"
#include "wisp/api/json_views.h"
#include "wisp/api/routes.h"

namespace wisp::api {
namespace {
using nlohmann::json;

json VersionJson(const store::VersionRecord& v, const core::RuntimeCatalog& runtimes) {
  return {{"version", v.number},
          {"description", v.description},
          {"created_at", TimestampJson(v.created_at_ms)},
          {"code_sha256", v.config.code_sha256},
          {"function", EncodeFunction(FunctionApi::kV1, v.config, runtimes, false)}};
}

json AliasJson(const store::AliasRecord& a) {
  json item = {{"name", a.name},
               {"version", a.version},
               {"description", a.description},
               {"revision_id", a.revision_id},
               {"created_at", TimestampJson(a.created_at_ms)},
               {"updated_at", TimestampJson(a.updated_at_ms)}};
  if (a.additional_version) {
    item["additional_version"] = *a.additional_version;
    item["additional_weight"] = a.additional_weight;
  }
  return item;
}

tl::unexpected<Error> Invalid(std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message));
}

// An alias body: {"name" (create only), "version", "additional_version", "additional_weight",
// "description", "revision_id" (update only: applied only if the alias still has it)}.
struct AliasBody {
  store::AliasRecord alias;
  std::optional<std::string> revision_id;
};
Result<AliasBody> ParseAlias(const HttpRequest& request, bool create,
                             const store::AliasRecord* current) {
  if (auto valid = CheckJson(request.body); !valid) return tl::unexpected(valid.error());
  const json body = json::parse(request.body, nullptr, false);
  if (!body.is_object()) return Invalid("the body must be a JSON object");
  AliasBody out;
  if (current) out.alias = *current;
  std::vector<std::string_view> accepted = {"version", "additional_version", "additional_weight",
                                            "description"};
  accepted.push_back(create ? "name" : "revision_id");
  for (const auto& [key, value] : body.items()) {
    if (std::find(accepted.begin(), accepted.end(), key) == accepted.end()) {
      const std::string_view meant = LikelyField(key, accepted);
      return Invalid(fmt::format("unknown field '{}'{}", key,
                                 meant.empty() ? "" : fmt::format(" (did you mean '{}'?)", meant)));
    }
    if (key == "name" || key == "description" || key == "revision_id") {
      if (!value.is_string()) return Invalid(fmt::format("{} must be a string", key));
      if (key == "name") out.alias.name = value.get<std::string>();
      if (key == "description") out.alias.description = value.get<std::string>();
      if (key == "revision_id") out.revision_id = value.get<std::string>();
    } else if (key == "version") {
      if (!value.is_number_integer()) return Invalid("version must be an integer");
      out.alias.version = value.get<int>();
    } else if (key == "additional_version") {
      if (value.is_null()) {
        out.alias.additional_version.reset();
        out.alias.additional_weight = 0;
      } else if (!value.is_number_integer()) {
        return Invalid("additional_version must be an integer or null");
      } else {
        out.alias.additional_version = value.get<int>();
      }
    } else if (key == "additional_weight") {
      if (!value.is_number()) return Invalid("additional_weight must be a number from 0 to 1");
      out.alias.additional_weight = value.get<double>();
    }
  }
  if (create) {
    if (out.alias.name.empty()) return Invalid("name is required");
    if (!body.contains("version")) return Invalid("version is required");
    if (!IsValidQualifier(out.alias.name) || out.alias.name == "$LATEST" ||
        out.alias.name.find_first_not_of("0123456789") == std::string::npos) {
      return Invalid(
          "an alias name has letters, digits, '-' and '_' (not only digits), at most 128");
    }
  }
  return out;
}

}  // namespace

void AddVersionRoutes(Router& router, core::FunctionService& functions) {
  const core::RuntimeCatalog& runtimes = functions.runtimes();
  const auto not_found = [](const std::string& id) {
    return ErrorResponse(404, fmt::format("function {} not found", id));
  };

  router.Add("POST", "/v1/functions/:id/versions",
             [&functions, &runtimes](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               if (auto known = CheckQueryParameters(request, {}); !known) {
                 co_return ErrorResponse(known.error());
               }
               std::string description;
               if (request.body.find_first_not_of(" \t\r\n") != std::string::npos) {
                 if (auto valid = CheckJson(request.body); !valid) {
                   co_return ErrorResponse(valid.error());
                 }
                 const json body = json::parse(request.body, nullptr, false);
                 for (const auto& [key, value] : body.items()) {
                   if (key != "description" || !value.is_string()) {
                     co_return ErrorResponse(400,
                                             "a publish takes only {\"description\": \"...\"}");
                   }
                   description = value.get<std::string>();
                 }
               }
               auto published =
                   co_await functions.PublishVersion(request.params["id"], std::move(description));
               if (!published) co_return ErrorResponse(published.error());
               co_return JsonBody(201, VersionJson(*published, runtimes));
             });

  router.Add(
      "GET", "/v1/functions/:id/versions",
      [&functions, &runtimes, not_found](HttpRequest& request) -> asio::awaitable<HttpResponse> {
        if (auto known = CheckQueryParameters(request, {}); !known) {
          co_return ErrorResponse(known.error());
        }
        const core::Function* f = functions.Find(request.params["id"]);
        if (!f) co_return not_found(request.params["id"]);
        json items = json::array();
        for (const auto& [number, version] : f->versions) {
          items.push_back(VersionJson(version.record, runtimes));
        }
        co_return JsonBody(200, json{{"versions", std::move(items)}});
      });

  router.Add("DELETE", "/v1/functions/:id/versions/:version",
             [&functions](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               const std::string& text = request.params["version"];
               if (text.empty() || text.size() > 9 ||
                   text.find_first_not_of("0123456789") != std::string::npos) {
                 co_return ErrorResponse(400, "a version is a number from 1");
               }
               auto deleted =
                   co_await functions.DeleteVersion(request.params["id"], std::stoi(text));
               if (!deleted) co_return ErrorResponse(deleted.error());
               HttpResponse response;
               response.status = 204;
               co_return response;
             });

  router.Add("POST", "/v1/functions/:id/aliases",
             [&functions](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               if (!AcceptsJsonBody(request)) {
                 co_return ErrorResponse(415, "Content-Type must be application/json");
               }
               auto parsed = ParseAlias(request, true, nullptr);
               if (!parsed) co_return ErrorResponse(parsed.error());
               auto stored = co_await functions.PutAlias(
                   request.params["id"], std::move(parsed->alias), true, std::nullopt);
               if (!stored) co_return ErrorResponse(stored.error());
               co_return JsonBody(201, AliasJson(*stored));
             });

  router.Add("GET", "/v1/functions/:id/aliases",
             [&functions, not_found](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               const core::Function* f = functions.Find(request.params["id"]);
               if (!f) co_return not_found(request.params["id"]);
               json items = json::array();
               for (const auto& [name, alias] : f->aliases) items.push_back(AliasJson(alias));
               co_return JsonBody(200, json{{"aliases", std::move(items)}});
             });

  router.Add("GET", "/v1/functions/:id/aliases/:alias",
             [&functions, not_found](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               const core::Function* f = functions.Find(request.params["id"]);
               if (!f) co_return not_found(request.params["id"]);
               auto it = f->aliases.find(request.params["alias"]);
               if (it == f->aliases.end()) {
                 co_return ErrorResponse(
                     404, fmt::format("alias {} not found", request.params["alias"]));
               }
               co_return JsonBody(200, AliasJson(it->second));
             });

  router.Add(
      "PUT", "/v1/functions/:id/aliases/:alias",
      [&functions, not_found](HttpRequest& request) -> asio::awaitable<HttpResponse> {
        if (!AcceptsJsonBody(request)) {
          co_return ErrorResponse(415, "Content-Type must be application/json");
        }
        const core::Function* f = functions.Find(request.params["id"]);
        if (!f) co_return not_found(request.params["id"]);
        auto it = f->aliases.find(request.params["alias"]);
        if (it == f->aliases.end()) {
          co_return ErrorResponse(404, fmt::format("alias {} not found", request.params["alias"]));
        }
        // Fields left out keep their values: moving an alias is {"version": N}.
        auto parsed = ParseAlias(request, false, &it->second);
        if (!parsed) co_return ErrorResponse(parsed.error());
        auto stored = co_await functions.PutAlias(request.params["id"], std::move(parsed->alias),
                                                  false, std::move(parsed->revision_id));
        if (!stored) co_return ErrorResponse(stored.error());
        co_return JsonBody(200, AliasJson(*stored));
      });

  router.Add("DELETE", "/v1/functions/:id/aliases/:alias",
             [&functions](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               auto deleted =
                   co_await functions.DeleteAlias(request.params["id"], request.params["alias"]);
               if (!deleted) co_return ErrorResponse(deleted.error());
               HttpResponse response;
               response.status = 204;
               co_return response;
             });
}

}  // namespace wisp::api
