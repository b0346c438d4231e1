#include "wisp/api/key_routes.h"

#include <nlohmann/json.hpp>

#include "wisp/api/function_codec.h"
#include "wisp/api/json_views.h"
#include "wisp/api/routes.h"

namespace wisp::api {
namespace {

using json = nlohmann::json;

json KeyJson(const auth::ApiKey& key) {
  json item = {{"id", key.id},
               {"description", key.description},
               {"source", key.source == auth::KeySource::kConfig ? "config" : "store"}};
  item["created_at"] =
      key.created_at_ms > 0 ? TimestampJson(key.created_at_ms) : TimestampJson(std::nullopt);
  return item;
}

// {"description": "..."} or nothing.
Result<std::string> DescriptionOf(const HttpRequest& request) {
  if (request.body.empty()) return std::string();
  if (auto checked = CheckJson(request.body); !checked) return tl::unexpected(checked.error());
  const json body = json::parse(request.body, nullptr, false);
  if (!body.is_object()) {
    return MakeError(ErrorCode::kInvalidArgument, "the body must be a JSON object");
  }
  for (const auto& [name, value] : body.items()) {
    if (name != "description") {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("unknown field '{}' (a key takes only \"description\")", name));
    }
    if (!value.is_string()) {
      return MakeError(ErrorCode::kInvalidArgument, "description must be a string");
    }
  }
  return body.contains("description") ? body["description"].get<std::string>() : std::string();
}

}  // namespace

void AddKeyRoutes(Router& router, auth::KeyRegistry& keys, asio::thread_pool& workers) {
  router.Add("POST", "/v1/keys", [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    if (auto known = CheckQueryParameters(request, {}); !known) {
      co_return ErrorResponse(known.error());
    }
    auto description = DescriptionOf(request);
    if (!description) co_return ErrorResponse(description.error());
    auto create = [&keys, text = std::move(*description)]() mutable {
      return keys.Create(std::move(text));
    };
    const Result<auth::ApiKey> created = co_await Offload(workers, std::move(create));
    if (!created) co_return ErrorResponse(created.error());
    json item = KeyJson(*created);
    item["secret"] = created->secret;
    co_return JsonBody(201, json{{"item", std::move(item)},
                                 {"message", "the secret is shown only this once: store it now"}});
  });

  router.Add("GET", "/v1/keys", [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    if (auto known = CheckQueryParameters(request, {}); !known) {
      co_return ErrorResponse(known.error());
    }
    // Read the store first: keys the `wispd keys` command wrote a moment ago are listed too.
    auto reload = [&keys] { return keys.Reload(); };
    const Result<void> reloaded = co_await Offload(workers, std::move(reload));
    if (!reloaded) co_return ErrorResponse(reloaded.error());
    json items = json::array();
    for (const auth::ApiKey& key : keys.Snapshot()->keys()) items.push_back(KeyJson(key));
    co_return JsonBody(200, json{{"items", std::move(items)}});
  });

  router.Add("DELETE", "/v1/keys/:id", [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    if (auto known = CheckQueryParameters(request, {}); !known) {
      co_return ErrorResponse(known.error());
    }
    auto revoke = [&keys, id = request.params["id"]] { return keys.Revoke(id); };
    const Result<void> revoked = co_await Offload(workers, std::move(revoke));
    if (!revoked) co_return ErrorResponse(revoked.error());
    co_return JsonResponse(200, R"({"message":"Key revoked"})");
  });
}

}  // namespace wisp::api
