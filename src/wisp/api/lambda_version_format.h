// The Lambda API's words for versions, aliases and tags: AliasConfiguration, the bodies of
// CreateAlias/UpdateAlias/TagResource, UntagResource's repeated tagKeys. Pure functions of their
// inputs; the routes (lambda_version_routes.cc) own the HTTP side.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "wisp/api/lambda_api_format.h"
#include "wisp/store/records.h"

namespace wisp::api {

// AliasConfiguration: AliasArn, Name, FunctionVersion, Description, RoutingConfig (only with a
// second version), RevisionId.
nlohmann::json EncodeAliasConfiguration(const store::AliasRecord& alias,
                                        std::string_view function_name,
                                        const LambdaAccount& account);

// A CreateAlias (create = true: Name and FunctionVersion required) or UpdateAlias body. Unset
// fields are left as they are by an update. `routing` set to nullopt-in-optional clears it.
struct LambdaAliasFields {
  std::optional<std::string> name;
  std::optional<int> function_version;
  std::optional<std::string> description;
  // Set when the body has RoutingConfig: the additional version and its weight, or none
  // (an empty AdditionalVersionWeights removes the canary).
  std::optional<std::optional<std::pair<int, double>>> routing;
  std::optional<std::string> revision_id;
};
Result<LambdaAliasFields> DecodeLambdaAliasFields(const nlohmann::json& body, bool create);

// A version number as the Lambda API writes one ("3"); $LATEST and anything else is
// kInvalidArgument.
Result<int> ParseVersionNumber(std::string_view text);

// TagResource's {"Tags": {...}}: string keys and values within Lambda's limits.
Result<std::map<std::string, std::string>> DecodeTags(const nlohmann::json& body);

// Every tagKeys value of an UntagResource query ("tagKeys=a&tagKeys=b"), percent-decoded.
std::vector<std::string> TagKeysOf(std::string_view raw_query);

// The function name a tagging ARN names (arn:aws:lambda:<region>:<account>:function:<name>);
// another region's or account's, or a qualified or malformed ARN, is an error to answer.
Result<std::string> FunctionNameOfArn(std::string_view arn, const LambdaAccount& account);

}  // namespace wisp::api
