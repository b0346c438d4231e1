#include "wisp/api/lambda_version_format.h"

#include <fmt/format.h>

#include "wisp/api/http.h"
#include "wisp/core/function_spec.h"

namespace wisp::api {
namespace {
using nlohmann::json;

tl::unexpected<Error> Invalid(std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message));
}

}  // namespace

json EncodeAliasConfiguration(const store::AliasRecord& alias, std::string_view function_name,
                              const LambdaAccount& account) {
  json out = {{"AliasArn", FunctionArn(account, function_name) + ":" + alias.name},
              {"Name", alias.name},
              {"FunctionVersion", std::to_string(alias.version)},
              {"Description", alias.description},
              {"RevisionId", alias.revision_id}};
  if (alias.additional_version) {
    out["RoutingConfig"] = {
        {"AdditionalVersionWeights",
         {{std::to_string(*alias.additional_version), alias.additional_weight}}}};
  }
  return out;
}

Result<int> ParseVersionNumber(std::string_view text) {
  if (text.empty() || text.size() > 9 || text[0] == '0' ||
      text.find_first_not_of("0123456789") != std::string_view::npos) {
    return Invalid(fmt::format("'{}' is not a published version's number", text));
  }
  return std::stoi(std::string(text));
}

Result<LambdaAliasFields> DecodeLambdaAliasFields(const json& body, bool create) {
  if (!body.is_object()) return Invalid("the request body must be a JSON object");
  LambdaAliasFields out;
  static const std::vector<std::string_view> kCreate = {"Name", "FunctionVersion", "Description",
                                                        "RoutingConfig"};
  static const std::vector<std::string_view> kUpdate = {"FunctionVersion", "Description",
                                                        "RoutingConfig", "RevisionId"};
  const auto& accepted = create ? kCreate : kUpdate;
  for (const auto& [key, value] : body.items()) {
    if (std::find(accepted.begin(), accepted.end(), key) == accepted.end()) {
      return Invalid(
          fmt::format("{} does not take '{}'", create ? "CreateAlias" : "UpdateAlias", key));
    }
    if (key != "RoutingConfig" && !value.is_string()) {
      return Invalid(fmt::format("{} must be a string", key));
    }
    if (key == "Name") {
      out.name = value.get<std::string>();
      if (!IsValidQualifier(*out.name) || *out.name == "$LATEST" ||
          out.name->find_first_not_of("0123456789") == std::string::npos) {
        return Invalid(fmt::format(
            "Name '{}' must have letters, digits, '-' or '_', not only digits, at most 128",
            *out.name));
      }
    } else if (key == "FunctionVersion") {
      auto number = ParseVersionNumber(value.get<std::string>());
      if (!number) {
        return Invalid(
            "FunctionVersion must be a published version's number: an alias cannot "
            "point at $LATEST on Wisp");
      }
      out.function_version = *number;
    } else if (key == "Description") {
      if (value.get<std::string>().size() > core::kMaxDescriptionLength) {
        return Invalid("Description must be at most 256 characters");
      }
      out.description = value.get<std::string>();
    } else if (key == "RevisionId") {
      out.revision_id = value.get<std::string>();
    } else if (key == "RoutingConfig") {
      if (!value.is_object()) return Invalid("RoutingConfig must be an object");
      std::optional<std::pair<int, double>> routing;
      for (const auto& [inner, weights] : value.items()) {
        if (inner != "AdditionalVersionWeights" || !weights.is_object()) {
          return Invalid("RoutingConfig takes AdditionalVersionWeights: {\"<version>\": weight}");
        }
        if (weights.size() > 1) {
          return Invalid("AdditionalVersionWeights takes one additional version");
        }
        for (const auto& [version, weight] : weights.items()) {
          auto number = ParseVersionNumber(version);
          if (!number) return tl::unexpected(number.error());
          if (!weight.is_number() || weight.get<double>() < 0 || weight.get<double>() > 1) {
            return Invalid("an additional version's weight is a number from 0.0 to 1.0");
          }
          routing = std::make_pair(*number, weight.get<double>());
        }
      }
      out.routing = routing;
    }
  }
  if (create && (!out.name || !out.function_version)) {
    return Invalid("CreateAlias needs Name and FunctionVersion");
  }
  return out;
}

Result<std::map<std::string, std::string>> DecodeTags(const json& body) {
  if (!body.is_object() || !body.contains("Tags") || !body["Tags"].is_object() ||
      body.size() != 1) {
    return Invalid("TagResource takes {\"Tags\": {\"key\": \"value\", ...}}");
  }
  std::map<std::string, std::string> tags;
  for (const auto& [key, value] : body["Tags"].items()) {
    if (!value.is_string()) return Invalid(fmt::format("Tags.{} must be a string", key));
    if (key.empty() || key.size() > core::kMaxTagKeyLength ||
        value.get<std::string>().size() > core::kMaxTagValueLength) {
      return Invalid(fmt::format("tag keys have 1 to {} characters, values at most {}",
                                 core::kMaxTagKeyLength, core::kMaxTagValueLength));
    }
    tags[key] = value.get<std::string>();
  }
  return tags;
}

std::vector<std::string> TagKeysOf(std::string_view raw_query) {
  std::vector<std::string> keys;
  size_t start = 0;
  while (start < raw_query.size()) {
    const size_t end = std::min(raw_query.find('&', start), raw_query.size());
    const std::string_view pair = raw_query.substr(start, end - start);
    const size_t eq = pair.find('=');
    if (eq != std::string_view::npos && PercentDecode(pair.substr(0, eq)) == "tagKeys") {
      keys.push_back(PercentDecode(pair.substr(eq + 1)));
    }
    start = end + 1;
  }
  return keys;
}

Result<std::string> FunctionNameOfArn(std::string_view arn, const LambdaAccount& account) {
  auto ref = ParseFunctionRef(arn, std::nullopt, account);
  if (!ref) return tl::unexpected(ref.error());
  if (!arn.starts_with("arn:")) return Invalid(fmt::format("'{}' is not a function's ARN", arn));
  if (ref->qualifier) {
    return Invalid("tags belong to the function: name it without a version or alias");
  }
  return ref->name;
}

}  // namespace wisp::api
