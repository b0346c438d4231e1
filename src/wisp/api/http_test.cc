#include "wisp/api/http.h"

#include <gtest/gtest.h>

#include "wisp/api/routes.h"

namespace wisp::api {
namespace {

HttpResponse DispatchOnce(const Router& router, std::string method, std::string path) {
  asio::io_context io;
  HttpRequest request;
  request.method = std::move(method);
  request.path = std::move(path);
  HttpResponse response;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { response = co_await router.Dispatch(request); },
      asio::detached);
  io.run();
  return response;
}

TEST(Router, MatchesPatternsCapturesParamsAndSays405Or404) {
  Router router;
  std::string captured;
  router.Add("GET", "/v1/functions/:id/logs", [&](HttpRequest& r) -> asio::awaitable<HttpResponse> {
    captured = r.params["id"];
    co_return JsonResponse(200, "{}");
  });
  EXPECT_EQ(DispatchOnce(router, "GET", "/v1/functions/abc%2Fdef/logs").status, 200);
  EXPECT_EQ(captured, "abc/def");
  EXPECT_EQ(DispatchOnce(router, "DELETE", "/v1/functions/abc/logs").status, 405);
  EXPECT_EQ(DispatchOnce(router, "GET", "/v1/functions/abc").status, 404);
}

TEST(Router, A405NamesTheAllowedMethods) {
  Router router;
  auto ok = [](HttpRequest&) -> asio::awaitable<HttpResponse> {
    co_return JsonResponse(200, "{}");
  };
  router.Add("GET", "/v1/functions/:id", ok);
  router.Add("PUT", "/v1/functions/:id", ok);
  router.Add("DELETE", "/v1/functions/:id", ok);
  router.Add("POST", "/v1/functions/:id/invoke", ok);
  const HttpResponse response = DispatchOnce(router, "PATCH", "/v1/functions/x");
  EXPECT_EQ(response.status, 405);
  ASSERT_EQ(response.headers.size(), 1u);
  EXPECT_EQ(response.headers[0].first, "Allow");
  EXPECT_EQ(response.headers[0].second, "GET, PUT, DELETE");
  EXPECT_NE(response.body.find("GET, PUT, DELETE"), std::string::npos);
  EXPECT_TRUE(DispatchOnce(router, "GET", "/v1/functions/x").headers.empty());
}

TEST(ParseQuery, DecodesPairs) {
  auto q = ParseQuery("limit=5&offset=10&name=a%20b+c&flag");
  EXPECT_EQ(q["limit"], "5");
  EXPECT_EQ(q["offset"], "10");
  EXPECT_EQ(q["name"], "a b c");
  EXPECT_EQ(q.count("flag"), 1u);
}

TEST(ErrorResponse, IsJsonWithEscapedMessage) {
  auto r = ErrorResponse(400, "bad \"thing\"");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, R"({"error":"bad \"thing\""})");
  EXPECT_EQ(HttpStatusFor(ErrorCode::kResourceExhausted), 429);
}

TEST(CheckJson, RefusesDeepNestingAndGarbage) {
  EXPECT_TRUE(CheckJson(R"({"a":[1,2,{"b":null}]})"));
  EXPECT_FALSE(CheckJson(std::string(100000, '[') + std::string(100000, ']')));
  EXPECT_FALSE(CheckJson("{nope"));
}

TEST(AcceptsJsonBody, KnowsJsonTypes) {
  HttpRequest r;
  EXPECT_TRUE(AcceptsJsonBody(r));
  r.headers["content-type"] = "application/json; charset=utf-8";
  EXPECT_TRUE(AcceptsJsonBody(r));
  r.headers["content-type"] = "text/plain";
  EXPECT_FALSE(AcceptsJsonBody(r));
}

}  // namespace
}  // namespace wisp::api

namespace wisp::api {
namespace {

TEST(Router, BodyPoliciesAreFoundByMethodAndPattern) {
  Router router;
  EXPECT_EQ(router.BodyPolicyFor("POST", "/2015-03-31/functions"), nullptr);
  router.SetBodyPolicy("PUT", "/2015-03-31/functions/:name/code", Router::BodyPolicy{123, nullptr});
  const Router::BodyPolicy* policy = router.BodyPolicyFor("PUT", "/2015-03-31/functions/f/code");
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(policy->max_bytes, 123u);
  EXPECT_EQ(router.BodyPolicyFor("GET", "/2015-03-31/functions/f/code"), nullptr);
  EXPECT_EQ(router.BodyPolicyFor("PUT", "/2015-03-31/functions/f/configuration"), nullptr);
  EXPECT_EQ(router.BodyPolicyFor("PUT", "/2015-03-31/functions/code"), nullptr);
}

}  // namespace
}  // namespace wisp::api
