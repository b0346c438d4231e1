#include "wisp/api/function_url_format.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace wisp::api {
namespace {
using nlohmann::json;

FunctionUrlRequest SampleRequest() {
  FunctionUrlRequest request;
  request.method = "POST";
  request.raw_path = "/items/7";
  request.raw_query = "a=1&b=two%20words&a=3";
  request.headers = {{"content-type", "application/json"},
                     {"user-agent", "curl/8"},
                     {"x-multi", "one, two"},
                     {"cookie", "s=1; theme=dark"}};
  request.body = R"({"x":1})";
  request.source_ip = "127.0.0.1";
  request.domain_name = "localhost:8080";
  request.request_id = "req-1";
  request.account_id = "000000000000";
  request.api_id = "hello";
  request.time_epoch_ms = 1583348638390;
  return request;
}

TEST(FunctionUrlEventTest, CarriesThePayloadFormat2Fields) {
  const json event = json::parse(BuildFunctionUrlEvent(SampleRequest()));
  EXPECT_EQ(event["version"], "2.0");
  EXPECT_EQ(event["routeKey"], "$default");
  EXPECT_EQ(event["rawPath"], "/items/7");
  EXPECT_EQ(event["rawQueryString"], "a=1&b=two%20words&a=3");
  EXPECT_EQ(event["queryStringParameters"]["a"], "1,3");
  EXPECT_EQ(event["queryStringParameters"]["b"], "two words");
  EXPECT_EQ(event["headers"]["x-multi"], "one, two");
  EXPECT_FALSE(event["headers"].contains("cookie"));
  EXPECT_EQ(event["cookies"], json::array({"s=1", "theme=dark"}));
  const json& context = event["requestContext"];
  EXPECT_EQ(context["http"]["method"], "POST");
  EXPECT_EQ(context["http"]["path"], "/items/7");
  EXPECT_EQ(context["http"]["sourceIp"], "127.0.0.1");
  EXPECT_EQ(context["http"]["userAgent"], "curl/8");
  EXPECT_EQ(context["stage"], "$default");
  EXPECT_EQ(context["requestId"], "req-1");
  EXPECT_EQ(context["apiId"], "hello");
  EXPECT_EQ(context["domainPrefix"], "localhost:8080");
  EXPECT_EQ(context["time"], "04/Mar/2020:19:03:58 +0000");
  EXPECT_EQ(context["timeEpoch"], 1583348638390);
  EXPECT_EQ(event["body"], R"({"x":1})");
  EXPECT_EQ(event["isBase64Encoded"], false);
}

TEST(FunctionUrlEventTest, BinaryBodiesAreBase64AndEmptyOnesAbsent) {
  FunctionUrlRequest request = SampleRequest();
  request.headers = {{"content-type", "application/octet-stream"}};
  request.body = std::string("\x00\xff\x01", 3);
  json event = json::parse(BuildFunctionUrlEvent(request));
  EXPECT_EQ(event["body"], "AP8B");
  EXPECT_EQ(event["isBase64Encoded"], true);
  EXPECT_FALSE(event.contains("cookies"));

  // Text that is not UTF-8 cannot travel as a JSON string.
  request.headers = {{"content-type", "text/plain"}};
  request.body = "\xff";
  event = json::parse(BuildFunctionUrlEvent(request));
  EXPECT_EQ(event["isBase64Encoded"], true);

  request.body.clear();
  request.raw_query.clear();
  event = json::parse(BuildFunctionUrlEvent(request));
  EXPECT_FALSE(event.contains("body"));
  EXPECT_FALSE(event.contains("queryStringParameters"));
}

TEST(FunctionUrlEventTest, AProjectRouteAddsItsParametersAndRouteKey) {
  FunctionUrlRequest request = SampleRequest();
  json event = json::parse(BuildFunctionUrlEvent(request));
  EXPECT_FALSE(event.contains("pathParameters"));  // a function URL has none
  EXPECT_EQ(event["routeKey"], "$default");

  request.path_parameters = {{"id", "42"}};
  request.route_key = "ANY /api/users/{id}";
  event = json::parse(BuildFunctionUrlEvent(request));
  EXPECT_EQ(event["pathParameters"], json({{"id", "42"}}));
  EXPECT_EQ(event["routeKey"], "ANY /api/users/{id}");
  EXPECT_EQ(event["requestContext"]["routeKey"], "ANY /api/users/{id}");
}

std::string Header(const FunctionUrlResponse& response, std::string_view name) {
  std::string out;
  for (const auto& [key, value] : response.headers) {
    if (key == name) out += out.empty() ? value : "|" + value;
  }
  return out;
}

TEST(FunctionUrlResultTest, MapsAResponseObject) {
  auto mapped = MapFunctionUrlResult(R"({"statusCode": 201,
      "headers": {"Content-Type": "text/plain", "X-One": "1"},
      "multiValueHeaders": {"X-Many": ["a", "b"]},
      "cookies": ["a=1; Path=/", "b=2"], "body": "made"})");
  ASSERT_TRUE(mapped) << mapped.error();
  EXPECT_EQ(mapped->status, 201);
  EXPECT_EQ(mapped->body, "made");
  EXPECT_EQ(Header(*mapped, "Content-Type"), "text/plain");
  EXPECT_EQ(Header(*mapped, "content-type"), "");
  EXPECT_EQ(Header(*mapped, "X-Many"), "a|b");
  EXPECT_EQ(Header(*mapped, "set-cookie"), "a=1; Path=/|b=2");
}

TEST(FunctionUrlResultTest, DecodesABase64Body) {
  auto mapped =
      MapFunctionUrlResult(R"({"statusCode": 200, "body": "AP8B", "isBase64Encoded": true})");
  ASSERT_TRUE(mapped) << mapped.error();
  EXPECT_EQ(mapped->body, std::string("\x00\xff\x01", 3));
  EXPECT_EQ(Header(*mapped, "content-type"), "application/json");
}

TEST(FunctionUrlResultTest, InfersA200ForAnythingWithoutStatusCode) {
  for (const char* result : {R"({"message":"hi"})", R"("hello")", "42", "[1,2]", "null"}) {
    auto mapped = MapFunctionUrlResult(result);
    ASSERT_TRUE(mapped) << result;
    EXPECT_EQ(mapped->status, 200) << result;
    EXPECT_EQ(mapped->body, result);
    EXPECT_EQ(Header(*mapped, "content-type"), "application/json");
  }
}

TEST(FunctionUrlResultTest, RefusesInvalidResponsesWithAReason) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"statusCode": "200"})", "statusCode"},
      {R"({"statusCode": 99})", "statusCode"},
      {R"({"statusCode": 600})", "statusCode"},
      {R"({"statusCode": 200.5})", "statusCode"},
      {R"({"statusCode": 200, "body": {"a": 1}})", "body"},
      {R"({"statusCode": 200, "body": "!!", "isBase64Encoded": true})", "base64"},
      {R"({"statusCode": 200, "headers": {"a": ["x"]}})", "header"},
      {R"({"statusCode": 200, "headers": {"a": "x\r\nInjected: 1"}})", "line break"},
      {R"({"statusCode": 200, "cookies": "a=1"})", "cookies"},
      {"not json", "not JSON"},
  };
  for (const auto& [result, reason] : cases) {
    auto mapped = MapFunctionUrlResult(result);
    ASSERT_FALSE(mapped) << result;
    EXPECT_NE(mapped.error().find(reason), std::string::npos) << result << ": " << mapped.error();
  }
}

TEST(FunctionUrlConfigTest, DecodesStoresAndValidates) {
  auto config = DecodeFunctionUrlConfig(
      R"({"AuthType": "NONE", "Cors": {"AllowOrigins": ["https://a.example"],
          "AllowMethods": ["GET", "POST"], "MaxAge": 60, "AllowCredentials": true}})",
      {}, true);
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->auth_type, "NONE");
  ASSERT_TRUE(config->cors);
  EXPECT_EQ(config->cors->max_age, 60);
  auto stored = ParseStoredUrlConfig(EncodeStoredUrlConfig(*config));
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->auth_type, "NONE");
  EXPECT_EQ(stored->cors->allow_methods, (std::vector<std::string>{"GET", "POST"}));
  EXPECT_TRUE(stored->cors->allow_credentials);

  EXPECT_FALSE(ParseStoredUrlConfig(""));
  EXPECT_FALSE(DecodeFunctionUrlConfig(R"({"Cors": {}})", {}, true));  // AuthType required
  EXPECT_FALSE(DecodeFunctionUrlConfig(R"({"AuthType": "OPEN"})", {}, true));
  EXPECT_FALSE(
      DecodeFunctionUrlConfig(R"({"AuthType": "NONE", "Cors": {"MaxAge": -1}})", {}, true));
  EXPECT_FALSE(DecodeFunctionUrlConfig(R"({"AuthType": "NONE", "Bogus": 1})", {}, true));
  // An update keeps what it does not name.
  auto updated = DecodeFunctionUrlConfig(R"({"Cors": {"AllowOrigins": ["*"]}})", *config, false);
  ASSERT_TRUE(updated);
  EXPECT_EQ(updated->auth_type, "NONE");
}

TEST(FunctionUrlCorsTest, AnswersPreflightsAndMarksResponses) {
  FunctionUrlCors cors;
  cors.allow_origins = {"https://a.example"};
  cors.allow_methods = {"GET", "PUT"};
  cors.allow_headers = {"x-custom"};
  cors.expose_headers = {"x-out"};
  cors.max_age = 300;
  FunctionUrlResponse allowed = CorsPreflight(cors, "https://a.example", "PUT", "X-Custom");
  EXPECT_EQ(Header(allowed, "access-control-allow-origin"), "https://a.example");
  EXPECT_EQ(Header(allowed, "access-control-allow-methods"), "GET,PUT");
  EXPECT_EQ(Header(allowed, "access-control-max-age"), "300");
  EXPECT_EQ(
      Header(CorsPreflight(cors, "https://b.example", "PUT", ""), "access-control-allow-origin"),
      "");
  EXPECT_EQ(
      Header(CorsPreflight(cors, "https://a.example", "DELETE", ""), "access-control-allow-origin"),
      "");
  EXPECT_EQ(Header(CorsPreflight(cors, "https://a.example", "GET", "x-other"),
                   "access-control-allow-origin"),
            "");

  FunctionUrlResponse marked{200, CorsResponseHeaders(cors, "https://a.example"), ""};
  EXPECT_EQ(Header(marked, "access-control-allow-origin"), "https://a.example");
  EXPECT_EQ(Header(marked, "access-control-expose-headers"), "x-out");
  EXPECT_TRUE(CorsResponseHeaders(cors, "https://evil.example").empty());
  cors.allow_origins = {"*"};
  FunctionUrlResponse any{200, CorsResponseHeaders(cors, "https://b.example"), ""};
  EXPECT_EQ(Header(any, "access-control-allow-origin"), "*");
}

}  // namespace
}  // namespace wisp::api
