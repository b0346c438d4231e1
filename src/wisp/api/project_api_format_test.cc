#include "wisp/api/project_api_format.h"

#include <gtest/gtest.h>

namespace wisp::api {
namespace {
using nlohmann::json;

TEST(ProjectApiFormat, RuntimeLabelsAsTheSeedWritesThem) {
  EXPECT_EQ(RuntimeLabel("node", "22.3.0"), "node22");
  EXPECT_EQ(RuntimeLabel("python", "3.11.2"), "python3.11");
  EXPECT_EQ(RuntimeLabel("go", ""), "go");
}

TEST(ProjectApiFormat, RuntimeFromTheFileExtension) {
  EXPECT_EQ(RuntimeForFile("api/hello.js"), "node");
  EXPECT_EQ(RuntimeForFile("api/users/[id].ts"), "node");
  EXPECT_EQ(RuntimeForFile("api/x.mts"), "node");
  EXPECT_EQ(RuntimeForFile("api/x.cjs"), "node");
  EXPECT_EQ(RuntimeForFile("api/report.py"), "python");
  EXPECT_EQ(RuntimeForFile("api/README.md"), "");
  EXPECT_EQ(RuntimeForFile("api/Makefile"), "");
}

TEST(ProjectApiFormat, MetadataHasTheSeedsFields) {
  store::FunctionRecord r;
  r.id = "fn-1";
  r.name = "shop--hello";
  r.project = "shop";
  r.file_path = "api/users/[id].js";
  r.code = "exports.handler = async () => 1";
  r.active = false;
  const json item = EncodeProjectFunction(r, "node22", 42, /*with_code=*/true);
  EXPECT_EQ(item["id"], "fn-1");
  EXPECT_EQ(item["function_name"], "hello");
  EXPECT_EQ(item["project_id"], "shop");
  EXPECT_EQ(item["name"], "shop--hello");
  EXPECT_EQ(item["file_path"], "api/users/[id].js");
  EXPECT_EQ(item["route"], "/api/users/:id");
  EXPECT_EQ(item["runtime"], "node22");
  EXPECT_EQ(item["is_active"], false);
  EXPECT_EQ(item["invocation_count"], 42);
  EXPECT_TRUE(item.contains("created_at"));
  EXPECT_TRUE(item.contains("updated_at"));
  EXPECT_EQ(item["code"], r.code);
  EXPECT_FALSE(EncodeProjectFunction(r, "node22", 0, false).contains("code"));
}

TEST(ProjectApiFormat, TheHostNamesTheProjectUnderTheDomain) {
  EXPECT_EQ(ProjectOfHost("shop.apps.example.com", "apps.example.com"), "shop");
  EXPECT_EQ(ProjectOfHost("Shop.Apps.Example.com:8080", "apps.example.COM"), "shop");
  EXPECT_EQ(ProjectOfHost("apps.example.com", "apps.example.com"), std::nullopt);
  EXPECT_EQ(ProjectOfHost("a.b.apps.example.com", "apps.example.com"), std::nullopt);
  EXPECT_EQ(ProjectOfHost("shopapps.example.com", "apps.example.com"), std::nullopt);
  EXPECT_EQ(ProjectOfHost("shop.apps.example.com", ""), std::nullopt);
  EXPECT_EQ(ProjectOfHost("127.0.0.1:18080", "apps.example.com"), std::nullopt);
}

TEST(ProjectApiFormat, RouteKeysAsApiGatewayWritesThem) {
  EXPECT_EQ(RouteKey("/api/users/:id"), "ANY /api/users/{id}");
  EXPECT_EQ(RouteKey("/api/docs/:path*"), "ANY /api/docs/{path+}");
  EXPECT_EQ(RouteKey("/api/hello"), "ANY /api/hello");
}

TEST(ProjectApiFormat, SuccessCarriesResultDurationAndLogs) {
  const auto answer = EncodeProjectInvoke(scheduler::InvocationStatus::kSuccess, R"({"a":1})",
                                          {"line one"}, 145, 30);
  EXPECT_EQ(answer.status, 200);
  EXPECT_EQ(answer.body["success"], true);
  EXPECT_EQ(answer.body["result"], json({{"a", 1}}));
  EXPECT_EQ(answer.body["duration"], 145);
  EXPECT_EQ(answer.body["logs"], json::array({"line one"}));
}

TEST(ProjectApiFormat, FailuresCarryTheErrorAndLogs) {
  auto answer = EncodeProjectInvoke(
      scheduler::InvocationStatus::kError,
      R"({"errorType":"ReferenceError","errorMessage":"x is not defined"})", {"a"}, 3, 30);
  EXPECT_EQ(answer.status, 500);
  EXPECT_EQ(answer.body["error"], "Function execution failed");
  EXPECT_EQ(answer.body["message"], "ReferenceError: x is not defined");
  EXPECT_EQ(answer.body["logs"], json::array({"a"}));
  EXPECT_FALSE(answer.body.contains("success"));

  answer = EncodeProjectInvoke(scheduler::InvocationStatus::kTimeout, "", {}, 30000, 30);
  EXPECT_EQ(answer.body["message"], "Function execution timeout (30000ms)");
}

}  // namespace
}  // namespace wisp::api
