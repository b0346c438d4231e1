#include <gtest/gtest.h>

#include "wisp/api/console_assets.h"

namespace wisp::api {
namespace {

HttpResponse Get(const Router& router, std::string path) {
  HttpRequest request;
  request.method = "GET";
  request.path = std::move(path);
  asio::io_context io;
  HttpResponse response;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { response = co_await router.Dispatch(request); },
      asio::detached);
  io.run();
  return response;
}

std::string Header(const HttpResponse& response, std::string_view name) {
  for (const auto& [n, v] : response.headers) {
    if (n == name) return v;
  }
  return "";
}

TEST(ConsoleRoutes, ServeTheEmbeddedFilesWithTheirTypes) {
  Router router;
  AddConsoleRoutes(router);
  const HttpResponse page = Get(router, "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_NE(page.body.find("<!doctype html>"), std::string::npos);
  EXPECT_NE(Header(page, "Content-Security-Policy").find("frame-ancestors 'none'"),
            std::string::npos);
  EXPECT_EQ(Get(router, "/console").body, page.body);
  EXPECT_EQ(Get(router, "/console/").body, page.body);

  const HttpResponse script = Get(router, "/console/app.js");
  EXPECT_EQ(script.status, 200);
  EXPECT_EQ(script.content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(Get(router, "/console/app.css").content_type, "text/css; charset=utf-8");

  EXPECT_EQ(Get(router, "/console/nothing.js").status, 404);
  EXPECT_EQ(Get(router, "/console/..%2fCMakeLists.txt").status, 404);
}

TEST(ConsoleRoutes, EveryAssetIsEmbeddedWhole) {
  ASSERT_FALSE(ConsoleAssets().empty());
  for (const ConsoleAsset& asset : ConsoleAssets()) {
    EXPECT_FALSE(asset.bytes.empty()) << asset.name;
    EXPECT_NE(asset.bytes.back(), '\0') << asset.name;
  }
}

TEST(ConsoleRoutes, ConsolePathsAreGetsOfThePageAndItsFiles) {
  EXPECT_TRUE(IsConsolePath("GET", "/"));
  EXPECT_TRUE(IsConsolePath("GET", "/console"));
  EXPECT_TRUE(IsConsolePath("GET", "/console/app.js"));
  EXPECT_FALSE(IsConsolePath("POST", "/"));
  EXPECT_FALSE(IsConsolePath("GET", "/console/a/b"));
  EXPECT_FALSE(IsConsolePath("GET", "/consoles"));
  EXPECT_FALSE(IsConsolePath("GET", "/functions"));
  EXPECT_FALSE(IsConsolePath("GET", "/v1/functions"));
}

}  // namespace
}  // namespace wisp::api
