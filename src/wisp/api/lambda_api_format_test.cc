#include "wisp/api/lambda_api_format.h"

#include <gtest/gtest.h>

namespace wisp::api {
namespace {
using nlohmann::json;

const LambdaAccount kAccount{"eu-central-1", "123456789012"};

TEST(ParseFunctionRef, TakesNamesPartialAndFullArnsWithQualifiers) {
  struct Case {
    const char* raw;
    const char* name;
    std::optional<std::string> qualifier;
  };
  for (const Case& c : std::vector<Case>{
           {"my-fn", "my-fn", std::nullopt},
           {"my_fn.v2", "my_fn.v2", std::nullopt},
           {"my-fn:3", "my-fn", "3"},
           {"my-fn:prod", "my-fn", "prod"},
           {"my-fn:$LATEST", "my-fn", "$LATEST"},
           {"123456789012:function:my-fn", "my-fn", std::nullopt},
           {"123456789012:function:my-fn:live", "my-fn", "live"},
           {"arn:aws:lambda:eu-central-1:123456789012:function:my-fn", "my-fn", std::nullopt},
           {"arn:aws:lambda:eu-central-1:123456789012:function:my-fn:7", "my-fn", "7"},
       }) {
    auto ref = ParseFunctionRef(c.raw, std::nullopt, kAccount);
    ASSERT_TRUE(ref) << c.raw << ": " << ref.error().message;
    EXPECT_EQ(ref->name, c.name) << c.raw;
    EXPECT_EQ(ref->qualifier, c.qualifier) << c.raw;
  }
}

TEST(ParseFunctionRef, RefusesMalformedNamesAndQualifiers) {
  for (const char* raw :
       {"", "a/b", "my fn", "a:b:c", "arn:aws:s3:eu-central-1:123456789012:function:f",
        "arn:aws:lambda:eu-central-1:123456789012:layer:f", "my-fn:07",
        "my-fn:", "my-fn:bad qualifier", "123456789012:function:a:b:c"}) {
    auto ref = ParseFunctionRef(raw, std::nullopt, kAccount);
    ASSERT_FALSE(ref) << raw;
    EXPECT_EQ(ref.error().code, ErrorCode::kInvalidArgument) << raw;
  }
  const std::string long_name(65, 'a');
  EXPECT_FALSE(ParseFunctionRef(long_name, std::nullopt, kAccount));
}

TEST(ParseFunctionRef, AnotherRegionOrAccountIsNotFoundHere) {
  for (const char* raw :
       {"arn:aws:lambda:us-east-1:123456789012:function:f",
        "arn:aws:lambda:eu-central-1:999999999999:function:f", "999999999999:function:f"}) {
    auto ref = ParseFunctionRef(raw, std::nullopt, kAccount);
    ASSERT_FALSE(ref) << raw;
    EXPECT_EQ(ref.error().code, ErrorCode::kNotFound) << raw;
  }
}

TEST(ParseFunctionRef, TheQualifierParameterMustAgreeWithTheName) {
  auto from_query = ParseFunctionRef("f", std::string_view("prod"), kAccount);
  ASSERT_TRUE(from_query);
  EXPECT_EQ(from_query->qualifier, "prod");
  EXPECT_TRUE(ParseFunctionRef("f:prod", std::string_view("prod"), kAccount));
  auto conflict = ParseFunctionRef("f:prod", std::string_view("3"), kAccount);
  ASSERT_FALSE(conflict);
  EXPECT_NE(conflict.error().message.find("does not match"), std::string::npos);
  EXPECT_FALSE(ParseFunctionRef("f", std::string_view("no/slash"), kAccount));
}

TEST(LambdaError, CarriesTheTypeHeaderAndBothMessageSpellings) {
  const HttpResponse response = LambdaError(404, "ResourceNotFoundException", "Function not found");
  EXPECT_EQ(response.status, 404);
  ASSERT_EQ(response.headers.size(), 1u);
  EXPECT_EQ(response.headers[0].first, "X-Amzn-ErrorType");
  EXPECT_EQ(response.headers[0].second, "ResourceNotFoundException");
  const json body = json::parse(response.body);
  EXPECT_EQ(body["Type"], "User");
  EXPECT_EQ(body["message"], "Function not found");
  EXPECT_EQ(body["Message"], "Function not found");
  EXPECT_EQ(json::parse(LambdaError(500, "ServiceException", "x").body)["Type"], "Service");
}

TEST(LambdaError, MapsEachExpectedFailureOntoItsException) {
  const std::vector<std::tuple<ErrorCode, int, std::string>> cases = {
      {ErrorCode::kInvalidArgument, 400, "InvalidParameterValueException"},
      {ErrorCode::kNotFound, 404, "ResourceNotFoundException"},
      {ErrorCode::kAlreadyExists, 409, "ResourceConflictException"},
      {ErrorCode::kFailedPrecondition, 409, "ResourceConflictException"},
      {ErrorCode::kTooLarge, 413, "RequestTooLargeException"},
      {ErrorCode::kResourceExhausted, 429, "TooManyRequestsException"},
      {ErrorCode::kUnavailable, 503, "ServiceException"},
      {ErrorCode::kInternal, 500, "ServiceException"},
  };
  for (const auto& [code, status, type] : cases) {
    const HttpResponse response = LambdaError(Error{code, "why"});
    EXPECT_EQ(response.status, status) << type;
    EXPECT_EQ(response.headers.at(0).second, type);
  }
}

TEST(LambdaRuntimeName, PrefersTheIdentifierOfTheInstalledInterpreter) {
  core::RuntimeEntry node;
  node.name = "node";
  node.aliases = {"nodejs", "node20", "nodejs18.x", "nodejs20.x", "nodejs22.x"};
  EXPECT_EQ(LambdaRuntimeName(node, std::string("20.19.2")), "nodejs20.x");
  EXPECT_EQ(LambdaRuntimeName(node, std::string("22.1.0")), "nodejs22.x");
  EXPECT_EQ(LambdaRuntimeName(node, std::string("16.0.0")), "nodejs18.x");
  EXPECT_EQ(LambdaRuntimeName(node, std::nullopt), "nodejs18.x");
  core::RuntimeEntry python;
  python.name = "python";
  python.aliases = {"python3", "python3.10", "python3.11", "python3.12"};
  EXPECT_EQ(LambdaRuntimeName(python, std::string("3.11.2")), "python3.11");
  core::RuntimeEntry plain;
  plain.name = "custom";
  EXPECT_EQ(LambdaRuntimeName(plain, std::nullopt), "custom");
  const core::RuntimeCatalog catalog(core::StandardRuntimes(core::InterpreterPaths{}));
  for (const char* name : {"provided", "provided.al2", "provided.al2023"}) {
    EXPECT_EQ(LambdaRuntimeName(*catalog.Find(name), std::nullopt), name);
  }
}

TEST(LambdaTimestamp, IsLambdasFormat) {
  EXPECT_EQ(LambdaTimestamp(1700000000123), "2023-11-14T22:13:20.123+0000");
  EXPECT_EQ(LambdaTimestamp(0), "1970-01-01T00:00:00.000+0000");
}

store::FunctionRecord Record(std::string state, std::string error = "") {
  store::FunctionRecord record;
  record.id = "id1";
  record.name = "fn";
  record.runtime = "node";
  record.handler = "index.handler";
  record.timeout_seconds = 3;
  record.memory_mb = 128;
  record.state = std::move(state);
  record.error = std::move(error);
  record.updated_at_ms = 1700000000000;
  return record;
}

TEST(EncodeLambdaConfiguration, ShowsTheFieldsTheSdksRead) {
  store::FunctionRecord record = Record("ready");
  record.env = {{"A", "1"}};
  LambdaConfigurationView view;
  view.runtime = "nodejs20.x";
  view.handler = "index.handler";
  view.serving = true;
  view.code_size = 42;
  const json c = EncodeLambdaConfiguration(record, view, kAccount);
  EXPECT_EQ(c["FunctionName"], "fn");
  EXPECT_EQ(c["FunctionArn"], "arn:aws:lambda:eu-central-1:123456789012:function:fn");
  EXPECT_EQ(c["Runtime"], "nodejs20.x");
  EXPECT_EQ(c["Handler"], "index.handler");
  EXPECT_EQ(c["Timeout"], 3);
  EXPECT_EQ(c["MemorySize"], 128);
  EXPECT_EQ(c["CodeSize"], 42);
  EXPECT_EQ(c["Version"], "$LATEST");
  EXPECT_EQ(c["State"], "Active");
  EXPECT_EQ(c["LastUpdateStatus"], "Successful");
  EXPECT_EQ(c["PackageType"], "Zip");
  EXPECT_EQ(c["Architectures"], json::array({"x86_64"}));
  EXPECT_EQ(c["Environment"]["Variables"]["A"], "1");
  EXPECT_EQ(c["LastModified"], "2023-11-14T22:13:20.000+0000");
  EXPECT_FALSE(c.contains("StateReason"));

  view.version = "4";
  EXPECT_EQ(EncodeLambdaConfiguration(record, view, kAccount)["FunctionArn"],
            "arn:aws:lambda:eu-central-1:123456789012:function:fn:4");
}

TEST(EncodeLambdaConfiguration, SaysPendingFailedAndFailedUpdatesAsLambdaDoes) {
  LambdaConfigurationView first;  // nothing serves yet
  const json pending = EncodeLambdaConfiguration(Record("deploying"), first, kAccount);
  EXPECT_EQ(pending["State"], "Pending");
  EXPECT_EQ(pending["LastUpdateStatus"], "InProgress");
  const json failed = EncodeLambdaConfiguration(Record("error", "boom"), first, kAccount);
  EXPECT_EQ(failed["State"], "Failed");
  EXPECT_EQ(failed["StateReason"], "boom");
  LambdaConfigurationView serving;
  serving.serving = true;
  const json failed_update = EncodeLambdaConfiguration(Record("error", "boom"), serving, kAccount);
  EXPECT_EQ(failed_update["State"], "Active");
  EXPECT_EQ(failed_update["LastUpdateStatus"], "Failed");
  EXPECT_EQ(failed_update["LastUpdateStatusReason"], "boom");
  EXPECT_FALSE(failed_update.contains("StateReason"));
}

TEST(DecodeLambdaFunctionFields, CreateTakesLambdasFieldsAndItsDefaults) {
  const json body = {{"FunctionName", "fn"},
                     {"Runtime", "nodejs20.x"},
                     {"Role", "arn:aws:iam::123456789012:role/r"},
                     {"Handler", "index.handler"},
                     {"Code", {{"ZipFile", "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}}},
                     {"Environment", {{"Variables", {{"K", "V"}}}}},
                     {"Description", "d"},
                     {"Publish", true},
                     {"Architectures", json::array({"x86_64"})},
                     {"PackageType", "Zip"},
                     {"Tags", {{"team", "a"}}}};
  auto fields = DecodeLambdaFunctionFields(body, /*create=*/true);
  ASSERT_TRUE(fields) << fields.error().message;
  EXPECT_EQ(fields->fields.name, "fn");
  EXPECT_EQ(fields->fields.runtime, "nodejs20.x");
  EXPECT_EQ(fields->fields.timeout_seconds, kLambdaDefaultTimeoutSeconds);
  EXPECT_EQ(fields->fields.memory_mb, kLambdaDefaultMemoryMb);
  EXPECT_EQ((*fields->fields.env).at("K"), "V");
  EXPECT_EQ(fields->description, "d");
  EXPECT_TRUE(fields->publish);
  ASSERT_TRUE(fields->code);
  EXPECT_EQ((*fields->code)["ZipFile"], "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==");
  ASSERT_TRUE(fields->tags);
}

TEST(DecodeLambdaFunctionFields, RefusesWhatWispCannotDoByName) {
  const auto refusal = [](json body, bool create = false) {
    auto fields = DecodeLambdaFunctionFields(body, create);
    return fields ? std::string() : fields.error().message;
  };
  EXPECT_NE(refusal({{"VpcConfig", json::object()}}).find("VpcConfig"), std::string::npos);
  EXPECT_NE(refusal({{"memorysize", 256}}).find("MemorySize"), std::string::npos);
  EXPECT_NE(refusal({{"Timeout", "3"}}).find("integer"), std::string::npos);
  EXPECT_NE(refusal({{"Architectures", json::array({"arm64"})}}, true).find("x86_64"),
            std::string::npos);
  EXPECT_NE(refusal({{"PackageType", "Image"}}, true).find("Zip"), std::string::npos);
  EXPECT_NE(refusal({{"Environment", {{"Vars", json::object()}}}}).find("Vars"), std::string::npos);
  EXPECT_NE(refusal({{"FunctionName", "f"}}, true).find("Code"), std::string::npos);
  // An update names no function and takes no code.
  EXPECT_NE(refusal({{"FunctionName", "f"}}).find("FunctionName"), std::string::npos);
  EXPECT_NE(refusal({{"Code", json::object()}}).find("Code"), std::string::npos);
  EXPECT_EQ(refusal({{"Timeout", 10}, {"Role", "r"}}), "");
}

// Where Lambda Managed Instances put it: CapacityProviderConfig.
TEST(LambdaInstanceConcurrency, IsPerExecutionEnvironmentMaxConcurrency) {
  const json config = {
      {"CapacityProviderConfig",
       {{"LambdaManagedInstancesCapacityProviderConfig",
         {{"CapacityProviderArn", "arn:aws:lambda:eu-central-1:123456789012:capacity-provider:p"},
          {"PerExecutionEnvironmentMaxConcurrency", 8}}}}}};
  auto fields = DecodeLambdaFunctionFields(config, /*create=*/false);
  ASSERT_TRUE(fields) << fields.error().message;
  EXPECT_EQ(fields->fields.instance_concurrency, 8);
  const auto refusal = [](json inner) {
    auto decoded = DecodeLambdaFunctionFields(
        {{"CapacityProviderConfig", {{"LambdaManagedInstancesCapacityProviderConfig", inner}}}},
        false);
    return decoded ? std::string() : decoded.error().message;
  };
  EXPECT_NE(refusal({{"PerExecutionEnvironmentMaxConcurrency", "8"}}).find("integer"),
            std::string::npos);
  EXPECT_NE(refusal({{"Other", 1}}).find("Other"), std::string::npos);

  store::FunctionRecord record = Record("ready");
  LambdaConfigurationView view;
  EXPECT_FALSE(
      EncodeLambdaConfiguration(record, view, kAccount).contains("CapacityProviderConfig"));
  record.instance_concurrency = 8;
  EXPECT_EQ(EncodeLambdaConfiguration(
                record, view,
                kAccount)["CapacityProviderConfig"]["LambdaManagedInstancesCapacityProviderConfig"]
                         ["PerExecutionEnvironmentMaxConcurrency"],
            8);
}

TEST(LambdaLogTail, EndsWithEndAndReportAndKeepsTheNewestWholeLines) {
  const std::string tail =
      LambdaLogTail("req", "$LATEST", {"one", "two"}, "REPORT RequestId: req", 4096);
  EXPECT_EQ(tail,
            "START RequestId: req Version: $LATEST\none\ntwo\nEND RequestId: req\n"
            "REPORT RequestId: req\n");
  std::vector<std::string> many(1000, std::string(20, 'x'));
  many.back() = "last line";
  const std::string cut = LambdaLogTail("req", "$LATEST", many, "REPORT", 4096);
  EXPECT_LE(cut.size(), 4096u);
  EXPECT_EQ(cut.substr(0, 20), std::string(20, 'x'));  // starts at a line's start
  EXPECT_NE(cut.find("last line\nEND RequestId: req\nREPORT\n"), std::string::npos);
}

}  // namespace
}  // namespace wisp::api

namespace wisp::api {
namespace {

TEST(LambdaCode, ZipFileIsDecodedAndOtherSourcesAreRefusedByName) {
  auto zip = DecodeLambdaZipFile(nlohmann::json::object(), "UEsFBg==");
  ASSERT_TRUE(zip) << zip.error().message;
  EXPECT_EQ(*zip, std::string("PK\x05\x06", 4));
  for (const char* key : {"S3Bucket", "ImageUri"}) {
    auto refused = DecodeLambdaZipFile(nlohmann::json{{key, "x"}}, "UEsFBg==");
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find(key), std::string::npos);
  }
  EXPECT_FALSE(DecodeLambdaZipFile(nlohmann::json::object(), std::nullopt));
  EXPECT_FALSE(DecodeLambdaZipFile(nlohmann::json::object(), "not base64!"));
  // A ZipFile left in the JSON is one that was not a string.
  EXPECT_FALSE(DecodeLambdaZipFile(nlohmann::json{{"ZipFile", 7}}, std::nullopt));
}

TEST(LambdaCode, UpdateFunctionCodeTakesZipFileDryRunPublishAndRevisionId) {
  auto update = DecodeLambdaCodeUpdate(
      nlohmann::json{{"DryRun", true}, {"Publish", false}, {"RevisionId", "r"}}, "UEsFBg==");
  ASSERT_TRUE(update) << update.error().message;
  EXPECT_EQ(update->zip.size(), 4u);
  EXPECT_TRUE(update->dry_run);
  EXPECT_FALSE(update->publish);
  EXPECT_EQ(update->revision_id, "r");
  EXPECT_FALSE(DecodeLambdaCodeUpdate(nlohmann::json{{"DryRun", true}}, std::nullopt));
  EXPECT_FALSE(DecodeLambdaCodeUpdate(nlohmann::json{{"S3Key", "k"}}, "UEsFBg=="));
  EXPECT_FALSE(DecodeLambdaCodeUpdate(nlohmann::json{{"Publish", 1}}, "UEsFBg=="));
}

TEST(LambdaCode, ThePackageRequestLimitIsLambdas) {
  // Lambda refuses a CreateFunction body over 69905067 bytes: 50 MB in base64.
  EXPECT_GE(LambdaPackageRequestLimit(50ull << 20), 69905067u);
  EXPECT_LT(LambdaPackageRequestLimit(50ull << 20), 69905067u + (2 << 20));
}

TEST(LambdaConfiguration, AFailedUpdateOfAServingFunctionSaysFailed) {
  store::FunctionRecord record;
  record.name = "f";
  record.state = "ready";
  record.error = "version 2 failed to load: boom";
  LambdaConfigurationView view;
  view.serving = true;
  const auto configuration = EncodeLambdaConfiguration(record, view, LambdaAccount{});
  EXPECT_EQ(configuration["State"], "Active");
  EXPECT_EQ(configuration["LastUpdateStatus"], "Failed");
  EXPECT_EQ(configuration["LastUpdateStatusReason"], record.error);
}

}  // namespace
}  // namespace wisp::api
