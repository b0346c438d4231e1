#include <algorithm>

#include "wisp/api/console_assets.h"

namespace wisp::api {
namespace {

constexpr std::string_view kIndex = "index.html";

std::string_view ContentType(std::string_view name) {
  if (name.ends_with(".html")) return "text/html; charset=utf-8";
  if (name.ends_with(".js")) return "text/javascript; charset=utf-8";
  if (name.ends_with(".css")) return "text/css; charset=utf-8";
  if (name.ends_with(".svg")) return "image/svg+xml";
  return "application/octet-stream";
}

const ConsoleAsset* FindAsset(std::string_view name) {
  const auto assets = ConsoleAssets();
  const auto it = std::find_if(assets.begin(), assets.end(),
                               [name](const ConsoleAsset& a) { return a.name == name; });
  return it == assets.end() ? nullptr : &*it;
}

HttpResponse AssetResponse(const ConsoleAsset& asset) {
  HttpResponse response;
  response.body = std::string(asset.bytes);
  response.content_type = std::string(ContentType(asset.name));
  // The files change only with the binary; no-cache makes a browser revalidate, so an upgraded
  // wispd never runs an old page against a new API.
  response.headers.emplace_back("Cache-Control", "no-cache");
  response.headers.emplace_back("X-Content-Type-Options", "nosniff");
  // The page runs only its own scripts and talks only to this origin (fetch, the events
  // WebSocket); it may not be framed, so another site cannot overlay it to steal clicks.
  response.headers.emplace_back(
      "Content-Security-Policy",
      "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
      "frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
  response.headers.emplace_back("Referrer-Policy", "no-referrer");
  return response;
}

}  // namespace

bool IsConsolePath(std::string_view method, std::string_view path) {
  if (method != "GET") return false;
  return path == "/" || path == "/console" || path == "/console/" ||
         (path.starts_with("/console/") && path.find('/', 9) == std::string_view::npos);
}

void AddConsoleRoutes(Router& router) {
  auto index = [](HttpRequest&) -> asio::awaitable<HttpResponse> {
    const ConsoleAsset* asset = FindAsset(kIndex);
    if (asset == nullptr) co_return ErrorResponse(404, "this wispd was built without a console");
    co_return AssetResponse(*asset);
  };
  // The router ignores empty segments: "/", "/console" and "/console/" are one route each.
  router.Add("GET", "/", index);
  router.Add("GET", "/console", index);
  router.Add("GET", "/console/:file", [](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    const ConsoleAsset* asset = FindAsset(request.params["file"]);
    if (asset == nullptr) co_return ErrorResponse(404, "no such console file");
    co_return AssetResponse(*asset);
  });
}

}  // namespace wisp::api
