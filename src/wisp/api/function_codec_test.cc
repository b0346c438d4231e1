#include "wisp/api/function_codec.h"

#include <gtest/gtest.h>

#include "wisp/api/routes.h"
#include "wisp/api/status_words.h"

namespace wisp::api {
namespace {
using nlohmann::json;

std::string DecodeError(FunctionApi api, const char* body) {
  auto decoded = DecodeFunctionFields(api, json::parse(body));
  if (decoded) return "";
  EXPECT_EQ(decoded.error().code, ErrorCode::kInvalidArgument);
  return decoded.error().message;
}

TEST(DecodeFunctionFields, NamesUnknownFieldsAndWhatTheyLikelyMeant) {
  const std::string message = DecodeError(
      FunctionApi::kV1,
      R"({"name":"f","timeout":5,"memorySize":512,"environment":{"A":"1"},"Runtime":"node"})");
  EXPECT_NE(message.find(R"("timeout" (did you mean "timeout_seconds"?))"), std::string::npos)
      << message;
  EXPECT_NE(message.find(R"("memorySize" (did you mean "memory_mb"?))"), std::string::npos)
      << message;
  EXPECT_NE(message.find(R"("environment" (did you mean "env"?))"), std::string::npos) << message;
  EXPECT_NE(message.find(R"("Runtime" (did you mean "runtime"?))"), std::string::npos) << message;
  EXPECT_NE(DecodeError(FunctionApi::kV1, R"({"memroy_mb":512})").find("memory_mb"),
            std::string::npos);
  EXPECT_NE(DecodeError(FunctionApi::kV1, R"({"zzz":1})").find(R"(unknown field "zzz". )"),
            std::string::npos);
}

TEST(DecodeFunctionFields, EachApiSuggestsItsOwnSpelling) {
  EXPECT_NE(
      DecodeError(FunctionApi::kProgram, R"({"env":{}})").find(R"(did you mean "environment")"),
      std::string::npos);
  EXPECT_NE(DecodeError(FunctionApi::kProgram, R"({"timeout_seconds":3})")
                .find(R"(did you mean "timeout")"),
            std::string::npos);
  auto program = DecodeFunctionFields(
      FunctionApi::kProgram,
      json::parse(
          R"({"timeout":"1m30s","environment":{"A":"1"},"code":"cHJpbnQoMSk=","version":2})"));
  ASSERT_TRUE(program) << program.error().message;
  EXPECT_EQ(program->timeout_seconds, 90);
  EXPECT_EQ(program->code, "print(1)");
  EXPECT_EQ(program->version_label, "2");
  EXPECT_EQ(program->env->at("A"), "1");
}

TEST(DecodeFunctionFields, ANumericVersionIsRefusedWithTheReason) {
  const std::string message = DecodeError(FunctionApi::kV1, R"({"version":1})");
  EXPECT_NE(message.find("version must be a string"), std::string::npos) << message;
  EXPECT_NE(message.find("version_label"), std::string::npos) << message;
  auto label = DecodeFunctionFields(FunctionApi::kV1, json::parse(R"({"version":"1.2.0"})"));
  ASSERT_TRUE(label);
  EXPECT_EQ(label->version_label, "1.2.0");
}

TEST(DecodeFunctionFields, ReadOnlyFieldsAreRefusedNotIgnored) {
  const std::string message = DecodeError(FunctionApi::kV1, R"({"state":"ready","id":"x"})");
  EXPECT_NE(message.find(R"("state" is read-only)"), std::string::npos) << message;
  EXPECT_NE(message.find(R"("id" is read-only)"), std::string::npos) << message;
}

TEST(DecodeFunctionFields, AcceptsEveryDocumentedV1Field) {
  auto f = DecodeFunctionFields(FunctionApi::kV1, json::parse(R"({
      "name":"f","runtime":"nodejs20.x","handler":"index.handler","code":"x",
      "timeout_seconds":5,"memory_mb":512,"vcpu":0.5,"env":{"A":"1"},"network":"none",
      "style":"handler","max_retries":1,"retry_delay_seconds":0,"max_event_age_seconds":60,
      "max_concurrency":3,"min_instances":1,"metadata":{"k":1},"version_label":"v"})"));
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(f->timeout_seconds, 5);
  EXPECT_EQ(f->memory_mb, 512);
  EXPECT_EQ(f->runtime, "nodejs20.x");
  EXPECT_EQ(f->metadata_json, R"({"k":1})");
}

TEST(CheckQueryParameters, NamesTheUnknownOnes) {
  HttpRequest request;
  request.query = {{"limit", "5"}, {"lmit", "5"}, {"verbose", "1"}};
  auto checked = CheckQueryParameters(request, {"limit", "offset"});
  ASSERT_FALSE(checked);
  EXPECT_NE(checked.error().message.find(R"("lmit" (did you mean "limit"?))"), std::string::npos)
      << checked.error().message;
  EXPECT_NE(checked.error().message.find(R"("verbose")"), std::string::npos);
  request.query = {{"offset", "1"}};
  EXPECT_TRUE(CheckQueryParameters(request, {"limit", "offset"}));
}

TEST(ExtractEvent, OnlyTheExactWrapperIsUnwrapped) {
  auto whole = ExtractEvent(R"({"event":"signup","user":"bob"})");
  ASSERT_TRUE(whole);
  EXPECT_EQ(whole->event_json, R"({"event":"signup","user":"bob"})");
  EXPECT_FALSE(whole->wrapped);

  auto wrapped = ExtractEvent(R"({"event": {"event":"signup","user":"bob"}})");
  ASSERT_TRUE(wrapped);
  EXPECT_EQ(wrapped->event_json, R"({"event":"signup","user":"bob"})");
  EXPECT_TRUE(wrapped->wrapped);
  EXPECT_FALSE(wrapped->async);

  auto async = ExtractEvent(R"({"async": true, "event": [1]})");
  ASSERT_TRUE(async);
  EXPECT_EQ(async->event_json, "[1]");
  EXPECT_TRUE(async->async);

  // "async" that is no boolean, or any third key: the body is the event.
  for (const char* body : {R"({"event":1,"async":"yes"})", R"({"event":1,"async":true,"x":2})",
                           R"({"async":true,"n":1})", R"({"event":null,"other":null})"}) {
    auto e = ExtractEvent(body);
    ASSERT_TRUE(e) << body;
    EXPECT_FALSE(e->wrapped) << body;
    EXPECT_FALSE(e->async) << body;
  }
  EXPECT_EQ(ExtractEvent("  ")->event_json, "{}");
  EXPECT_EQ(ExtractEvent(R"("text")")->event_json, R"("text")");
  EXPECT_FALSE(ExtractEvent("{nope"));
}

TEST(StatusWords, MapEachApisWordsBothWays) {
  const StatusWords& program = ProgramInvocationStatuses();
  EXPECT_EQ(program.Word("queued"), "pending");
  EXPECT_EQ(program.Word("success"), "completed");
  EXPECT_EQ(program.Word("dead_letter"), "failed");
  EXPECT_EQ(program.Word("running"), "running");
  EXPECT_EQ(*program.Parse("completed"), "success");
  EXPECT_EQ(*program.Parse("success"), "success");  // Wisp's own word is understood too
  EXPECT_EQ(*program.Parse(""), "");
  auto bad = program.Parse("done");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("pending, running, completed, failed"), std::string::npos);
  EXPECT_FALSE(V1CallStatuses().Parse("queued"));
  EXPECT_EQ(*V1CallStatuses().Parse("timeout"), "timeout");
}

TEST(EncodeFunction, ListingsLeaveTheCodeOut) {
  const core::RuntimeCatalog runtimes(core::StandardRuntimes(core::InterpreterPaths{}));
  store::FunctionRecord r;
  r.id = "f";
  r.runtime = "node";
  r.code = "exports.handler = 1";
  EXPECT_FALSE(EncodeFunction(FunctionApi::kV1, r, runtimes, false).contains("code"));
  EXPECT_EQ(EncodeFunction(FunctionApi::kV1, r, runtimes, true)["code"], r.code);
  const json program = EncodeFunction(FunctionApi::kProgram, r, runtimes, true);
  EXPECT_EQ(program["runtime"], "nodejs");
  EXPECT_EQ(program["code"], "ZXhwb3J0cy5oYW5kbGVyID0gMQ==");
  EXPECT_TRUE(program["runtime_version"].is_null());  // not probed
}

}  // namespace
}  // namespace wisp::api
