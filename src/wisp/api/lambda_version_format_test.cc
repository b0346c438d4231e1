#include "wisp/api/lambda_version_format.h"

#include <gtest/gtest.h>

namespace wisp::api {
namespace {
using nlohmann::json;

const LambdaAccount kAccount{"eu-west-1", "123456789012"};

TEST(LambdaVersionFormat, AnAliasShowsItsArnAndRoutingOnlyWithACanary) {
  store::AliasRecord alias;
  alias.name = "live";
  alias.version = 3;
  alias.description = "prod";
  alias.revision_id = "r1";
  json plain = EncodeAliasConfiguration(alias, "fn", kAccount);
  EXPECT_EQ(plain["AliasArn"], "arn:aws:lambda:eu-west-1:123456789012:function:fn:live");
  EXPECT_EQ(plain["FunctionVersion"], "3");
  EXPECT_EQ(plain["Description"], "prod");
  EXPECT_EQ(plain["RevisionId"], "r1");
  EXPECT_FALSE(plain.contains("RoutingConfig"));
  alias.additional_version = 4;
  alias.additional_weight = 0.25;
  json canary = EncodeAliasConfiguration(alias, "fn", kAccount);
  EXPECT_DOUBLE_EQ(canary["RoutingConfig"]["AdditionalVersionWeights"]["4"].get<double>(), 0.25);
}

TEST(LambdaVersionFormat, AliasBodiesAreReadAsTheSdksSendThem) {
  auto created =
      DecodeLambdaAliasFields(json::parse(R"({"Name":"live","FunctionVersion":"2","Description":"d",
                      "RoutingConfig":{"AdditionalVersionWeights":{"3":0.1}}})"),
                              true);
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_EQ(created->name, "live");
  EXPECT_EQ(created->function_version, 2);
  ASSERT_TRUE(created->routing && *created->routing);
  EXPECT_EQ((*created->routing)->first, 3);
  EXPECT_DOUBLE_EQ((*created->routing)->second, 0.1);
  // An empty weights object clears the canary.
  auto cleared = DecodeLambdaAliasFields(
      json::parse(R"({"RoutingConfig":{"AdditionalVersionWeights":{}},"RevisionId":"x"})"), false);
  ASSERT_TRUE(cleared);
  ASSERT_TRUE(cleared->routing);
  EXPECT_FALSE(*cleared->routing);
  EXPECT_EQ(cleared->revision_id, "x");
}

TEST(LambdaVersionFormat, BadAliasBodiesAreRefusedByName) {
  for (const char* body : {
           R"({"Name":"live"})",                                // no FunctionVersion
           R"({"Name":"123","FunctionVersion":"1"})",           // a number is not a name
           R"({"Name":"live","FunctionVersion":"$LATEST"})",    // no alias of $LATEST
           R"({"Name":"live","FunctionVersion":"1","Foo":1})",  // unknown field
           R"({"Name":"live","FunctionVersion":"1",
               "RoutingConfig":{"AdditionalVersionWeights":{"2":1.5}}})",
       }) {
    EXPECT_FALSE(DecodeLambdaAliasFields(json::parse(body), true)) << body;
  }
  EXPECT_FALSE(DecodeLambdaAliasFields(json::parse(R"({"Name":"x"})"), false));
}

TEST(LambdaVersionFormat, VersionNumbers) {
  EXPECT_EQ(ParseVersionNumber("12").value(), 12);
  for (const char* bad : {"", "0", "01", "$LATEST", "live", "1234567890"}) {
    EXPECT_FALSE(ParseVersionNumber(bad)) << bad;
  }
}

TEST(LambdaVersionFormat, TagsAndTagKeys) {
  auto tags = DecodeTags(json::parse(R"({"Tags":{"team":"core","env":"prod"}})"));
  ASSERT_TRUE(tags);
  EXPECT_EQ(tags->at("team"), "core");
  EXPECT_FALSE(DecodeTags(json::parse(R"({"Tags":{"a":1}})")));
  EXPECT_FALSE(DecodeTags(json::parse(R"({"tags":{}})")));
  EXPECT_EQ(TagKeysOf("tagKeys=team&tagKeys=a%20b&other=1"),
            (std::vector<std::string>{"team", "a b"}));
  EXPECT_TRUE(TagKeysOf("").empty());
}

TEST(LambdaVersionFormat, TaggingArnsNameAFunctionOfThisAccount) {
  EXPECT_EQ(
      FunctionNameOfArn("arn:aws:lambda:eu-west-1:123456789012:function:fn", kAccount).value(),
      "fn");
  EXPECT_FALSE(FunctionNameOfArn("fn", kAccount));
  EXPECT_FALSE(FunctionNameOfArn("arn:aws:lambda:eu-west-1:123456789012:function:fn:1", kAccount));
  auto other = FunctionNameOfArn("arn:aws:lambda:us-east-1:123456789012:function:fn", kAccount);
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace wisp::api
