#include "wisp/api/lambda_api_format.h"

#include <cctype>
#include <ctime>

#include <fmt/format.h>

#include "wisp/api/function_codec.h"
#include "wisp/api/program_api_format.h"

namespace wisp::api {
namespace {
using nlohmann::json;

tl::unexpected<Error> Invalid(std::string message) {
  return tl::unexpected(Error{ErrorCode::kInvalidArgument, std::move(message)});
}

bool IsNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
}

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > core::kMaxNameLength) return false;
  for (char c : name) {
    if (!IsNameChar(c)) return false;
  }
  return true;
}

std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

// Lambda's words for where a function is: State (the function as a whole) and LastUpdateStatus
// (its newest change), from Wisp's one word and whether a version serves calls.
struct LambdaStateWords {
  std::string_view state;
  std::string_view last_update_status;
};
LambdaStateWords StateWords(std::string_view wisp_state, bool serving, bool failed_update) {
  // A failed update leaves the version before it serving, and says so.
  if (wisp_state == "ready") return {"Active", failed_update ? "Failed" : "Successful"};
  if (wisp_state == "error") return {serving ? "Active" : "Failed", "Failed"};
  // creating, deploying: a first deploy is Pending; an update of a serving function is Active
  // with its update in progress.
  return {serving ? "Active" : "Pending", "InProgress"};
}

}  // namespace

bool IsValidQualifier(std::string_view qualifier) {
  if (qualifier == "$LATEST") return true;
  if (qualifier.empty() || qualifier.size() > 128) return false;
  bool all_digits = true;
  for (char c : qualifier) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
    all_digits &= std::isdigit(static_cast<unsigned char>(c)) != 0;
  }
  // A version number: digits, from 1 and without a leading zero.
  return !all_digits || qualifier[0] != '0';
}

Result<LambdaFunctionRef> ParseFunctionRef(std::string_view raw,
                                           std::optional<std::string_view> query_qualifier,
                                           const LambdaAccount& account) {
  const auto bad_name = [&raw] {
    return Invalid(fmt::format(
        "FunctionName '{}' is not a function name, a partial ARN "
        "(123456789012:function:name) or an ARN (arn:aws:lambda:region:account:function:name), "
        "with an optional :qualifier",
        raw));
  };
  const std::vector<std::string_view> parts = Split(raw, ':');
  std::string_view name;
  std::optional<std::string_view> qualifier;
  std::optional<std::string_view> region;
  std::optional<std::string_view> account_id;
  if (parts[0] == "arn") {
    // arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]
    if ((parts.size() != 7 && parts.size() != 8) || !parts[1].starts_with("aws") ||
        parts[2] != "lambda" || parts[5] != "function") {
      return bad_name();
    }
    region = parts[3];
    account_id = parts[4];
    name = parts[6];
    if (parts.size() == 8) qualifier = parts[7];
  } else if (parts.size() >= 3 && parts[1] == "function") {
    // <account>:function:<name>[:<qualifier>]
    if (parts.size() > 4) return bad_name();
    account_id = parts[0];
    name = parts[2];
    if (parts.size() == 4) qualifier = parts[3];
  } else {
    if (parts.size() > 2) return bad_name();
    name = parts[0];
    if (parts.size() == 2) qualifier = parts[1];
  }
  if (!IsValidName(name)) return bad_name();
  if (qualifier && !IsValidQualifier(*qualifier)) {
    return Invalid(fmt::format("qualifier '{}' is not $LATEST, a version number or an alias name",
                               *qualifier));
  }
  if (query_qualifier) {
    if (!IsValidQualifier(*query_qualifier)) {
      return Invalid(fmt::format("Qualifier '{}' is not $LATEST, a version number or an alias name",
                                 *query_qualifier));
    }
    if (qualifier && *qualifier != *query_qualifier) {
      return Invalid(fmt::format(
          "the qualifier in the function name ('{}') does not match the Qualifier parameter ('{}')",
          *qualifier, *query_qualifier));
    }
    qualifier = query_qualifier;
  }
  if ((region && *region != account.region) || (account_id && *account_id != account.account_id)) {
    // Another region's or account's function is not one this node has.
    return MakeError(ErrorCode::kNotFound, fmt::format("Function not found: {}", raw));
  }
  LambdaFunctionRef ref;
  ref.name = std::string(name);
  if (qualifier) ref.qualifier = std::string(*qualifier);
  return ref;
}

std::string FunctionArn(const LambdaAccount& account, std::string_view name) {
  return fmt::format("arn:aws:lambda:{}:{}:function:{}", account.region, account.account_id, name);
}

HttpResponse LambdaJson(int status, const json& body) {
  HttpResponse response;
  response.status = status;
  response.body = body.dump();
  return response;
}

std::optional<HttpResponse> UnknownLambdaParameters(const HttpRequest& request,
                                                    const std::vector<std::string_view>& accepted) {
  if (auto known = CheckQueryParameters(request, accepted); !known) {
    return LambdaError(400, "InvalidParameterValueException", known.error().message);
  }
  return std::nullopt;
}

HttpResponse LambdaError(int status, std::string_view type, std::string_view message) {
  // Lambda's own error bodies say "message"; some clients read "Message". "Type" says whose
  // fault it was.
  const json body = {
      {"Type", status >= 500 ? "Service" : "User"}, {"message", message}, {"Message", message}};
  HttpResponse response;
  response.status = status;
  response.body = body.dump();
  response.headers.emplace_back("X-Amzn-ErrorType", std::string(type));
  return response;
}

HttpResponse LambdaError(const Error& error) {
  switch (error.code) {
    case ErrorCode::kInvalidArgument:
      return LambdaError(400, "InvalidParameterValueException", error.message);
    case ErrorCode::kNotFound:
      return LambdaError(404, "ResourceNotFoundException", error.message);
    case ErrorCode::kAlreadyExists:
    case ErrorCode::kFailedPrecondition:
    case ErrorCode::kConflict:
      return LambdaError(409, "ResourceConflictException", error.message);
    case ErrorCode::kTooLarge:
      return LambdaError(413, "RequestTooLargeException", error.message);
    case ErrorCode::kResourceExhausted: {
      HttpResponse response = LambdaError(429, "TooManyRequestsException", error.message);
      response.headers.emplace_back("Retry-After", "1");
      return response;
    }
    case ErrorCode::kUnavailable: {
      // 503: the SDKs retry it.
      HttpResponse response = LambdaError(503, "ServiceException", error.message);
      response.headers.emplace_back("Retry-After", "1");
      return response;
    }
    case ErrorCode::kTimeout:
    case ErrorCode::kInternal:
      break;
  }
  return LambdaError(500, "ServiceException", error.message);
}

std::string LambdaRuntimeName(const core::RuntimeEntry& runtime,
                              const std::optional<std::string>& interpreter_version) {
  std::vector<std::string_view> aws_names;
  for (const auto& alias : runtime.aliases) {
    // AWS's identifiers are the dotted ones: nodejs20.x, python3.11, go1.x, provided.al2023.
    if (alias.find('.') != std::string::npos) aws_names.push_back(alias);
  }
  if (aws_names.empty()) return runtime.name;
  if (interpreter_version) {
    const std::string major = interpreter_version->substr(0, interpreter_version->find('.'));
    const size_t second_dot = interpreter_version->find('.', major.size() + 1);
    const std::string major_minor = interpreter_version->substr(0, second_dot);
    for (std::string_view name : aws_names) {
      if (name == "nodejs" + major + ".x" || name == "python" + major_minor) {
        return std::string(name);
      }
    }
  }
  return std::string(aws_names.front());
}

std::string LambdaTimestamp(int64_t epoch_ms) {
  const std::time_t seconds = static_cast<std::time_t>(epoch_ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  return fmt::format("{}.{:03d}+0000", text, static_cast<int>(epoch_ms % 1000));
}

std::string LambdaRevisionId(const store::FunctionRecord& record) {
  return fmt::format("{}-{}-{}", record.id, record.version, record.updated_at_ms);
}

json EncodeLambdaConfiguration(const store::FunctionRecord& record,
                               const LambdaConfigurationView& view, const LambdaAccount& account) {
  const LambdaStateWords words = StateWords(record.state, view.serving, !record.error.empty());
  std::string arn = FunctionArn(account, record.name);
  if (!view.arn_qualifier.empty()) {
    arn += ":" + view.arn_qualifier;
  } else if (view.version != "$LATEST") {
    arn += ":" + view.version;
  }
  json configuration = {
      {"FunctionName", record.name},
      {"FunctionArn", std::move(arn)},
      {"Runtime", view.runtime},
      {"Role", view.role},
      {"Handler", view.handler},
      {"CodeSize", view.code_size},
      {"Description", view.description},
      {"Timeout", record.timeout_seconds},
      {"MemorySize", record.memory_mb},
      {"LastModified", LambdaTimestamp(record.updated_at_ms)},
      {"CodeSha256", view.code_sha256},
      {"Version", view.version},
      {"TracingConfig", {{"Mode", "PassThrough"}}},
      {"RevisionId", LambdaRevisionId(record)},
      {"State", words.state},
      {"LastUpdateStatus", words.last_update_status},
      {"PackageType", "Zip"},
      {"Architectures", json::array({"x86_64"})},
      {"EphemeralStorage", {{"Size", view.ephemeral_storage_mb}}},
      {"LoggingConfig", {{"LogFormat", "Text"}, {"LogGroup", "/aws/lambda/" + record.name}}},
  };
  if (!record.env.empty()) configuration["Environment"] = {{"Variables", record.env}};
  if (record.instance_concurrency > 1) {
    // Where Lambda Managed Instances show how many calls one execution environment serves.
    configuration["CapacityProviderConfig"] = {
        {"LambdaManagedInstancesCapacityProviderConfig",
         {{"PerExecutionEnvironmentMaxConcurrency", record.instance_concurrency}}}};
  }
  if (!record.error.empty()) {
    if (words.state == "Failed") {
      configuration["StateReason"] = record.error;
      configuration["StateReasonCode"] = "InvalidCode";
    }
    configuration["LastUpdateStatusReason"] = record.error;
    configuration["LastUpdateStatusReasonCode"] = "InvalidCode";
  }
  return configuration;
}

namespace {

// Lambda Managed Instances' CapacityProviderConfig: Wisp runs on its own node, so of the
// capacity provider it takes only how many calls one execution environment serves (its
// instance_concurrency); the provider's ARN and memory per vCPU are accepted and not used.
Result<void> DecodeCapacityProviderConfig(const json& value,
                                          std::optional<int>& instance_concurrency) {
  constexpr std::string_view kInner = "LambdaManagedInstancesCapacityProviderConfig";
  if (!value.is_object()) {
    return Invalid(
        "CapacityProviderConfig must be an object "
        "{\"LambdaManagedInstancesCapacityProviderConfig\": "
        "{...}}");
  }
  for (const auto& [key, inner] : value.items()) {
    if (key != kInner)
      return Invalid(fmt::format("CapacityProviderConfig does not take '{}'", key));
    if (!inner.is_object())
      return Invalid(fmt::format("CapacityProviderConfig.{} must be an object", kInner));
    for (const auto& [field, v] : inner.items()) {
      if (field == "PerExecutionEnvironmentMaxConcurrency") {
        if (!v.is_number_integer()) {
          return Invalid(fmt::format("{}.{} must be an integer", kInner, field));
        }
        instance_concurrency =
            static_cast<int>(std::clamp<int64_t>(v.get<int64_t>(), INT32_MIN, INT32_MAX));
      } else if (field == "CapacityProviderArn") {
        if (!v.is_string()) return Invalid(fmt::format("{}.{} must be a string", kInner, field));
      } else if (field == "ExecutionEnvironmentMemoryGiBPerVCpu") {
        if (!v.is_number()) return Invalid(fmt::format("{}.{} must be a number", kInner, field));
      } else {
        return Invalid(fmt::format("{} does not take '{}'", kInner, field));
      }
    }
  }
  return {};
}

}  // namespace

Result<LambdaFunctionFields> DecodeLambdaFunctionFields(const json& body, bool create) {
  if (!body.is_object()) return Invalid("the request body must be a JSON object");
  LambdaFunctionFields out;
  core::FunctionFields& f = out.fields;
  // What each operation takes; anything else is refused by name, never dropped.
  static const std::vector<std::string_view> kCreate = {
      "FunctionName", "Runtime",     "Role",          "Handler",       "Code",
      "Description",  "Timeout",     "MemorySize",    "Publish",       "Environment",
      "Tags",         "PackageType", "Architectures", "TracingConfig", "CapacityProviderConfig"};
  static const std::vector<std::string_view> kUpdate = {
      "Role",        "Handler", "Description", "Timeout",       "MemorySize",
      "Environment", "Runtime", "RevisionId",  "TracingConfig", "CapacityProviderConfig"};
  const auto& accepted = create ? kCreate : kUpdate;
  for (const auto& [key, value] : body.items()) {
    if (std::find(accepted.begin(), accepted.end(), key) == accepted.end()) {
      const std::string_view meant = LikelyField(key, accepted);
      return Invalid(fmt::format("{} does not take '{}'{}",
                                 create ? "CreateFunction" : "UpdateFunctionConfiguration", key,
                                 meant.empty() ? std::string(" (Wisp does not implement it)")
                                               : fmt::format(" (did you mean '{}'?)", meant)));
    }
    const auto string_field = [&](std::optional<std::string>& target) -> Result<void> {
      if (!value.is_string()) return Invalid(fmt::format("{} must be a string", key));
      target = value.get<std::string>();
      return {};
    };
    const auto integer_field = [&](std::optional<int>& target) -> Result<void> {
      if (!value.is_number_integer()) return Invalid(fmt::format("{} must be an integer", key));
      target = static_cast<int>(std::clamp<int64_t>(value.get<int64_t>(), INT32_MIN, INT32_MAX));
      return {};
    };
    Result<void> read;
    if (key == "FunctionName") {
      read = string_field(f.name);
    } else if (key == "Runtime") {
      read = string_field(f.runtime);
    } else if (key == "Handler") {
      read = string_field(f.handler);
    } else if (key == "Timeout") {
      read = integer_field(f.timeout_seconds);
    } else if (key == "MemorySize") {
      read = integer_field(f.memory_mb);
    } else if (key == "Role" || key == "RevisionId") {
      // Wisp has no IAM: the role is accepted as the tools send it and shown as the
      // function's own. A RevisionId is compared by the route.
      if (!value.is_string()) read = Invalid(fmt::format("{} must be a string", key));
    } else if (key == "Description") {
      if (!value.is_string()) {
        read = Invalid("Description must be a string");
      } else if (value.get<std::string>().size() > 256) {
        read = Invalid("Description must be at most 256 characters");
      } else {
        out.description = value.get<std::string>();
        f.description = out.description;
      }
    } else if (key == "Publish") {
      if (!value.is_boolean()) {
        read = Invalid("Publish must be a boolean");
      } else {
        out.publish = value.get<bool>();
      }
    } else if (key == "Environment") {
      if (!value.is_object()) {
        read = Invalid("Environment must be an object {\"Variables\": {...}}");
      } else {
        std::map<std::string, std::string> variables;
        for (const auto& [inner, v] : value.items()) {
          if (inner != "Variables") {
            read = Invalid(fmt::format("Environment does not take '{}'", inner));
            break;
          }
          if (!v.is_object()) {
            read = Invalid("Environment.Variables must be an object of strings");
            break;
          }
          for (const auto& [name, text] : v.items()) {
            if (!text.is_string()) {
              read = Invalid(fmt::format("Environment.Variables.{} must be a string", name));
              break;
            }
            variables[name] = text.get<std::string>();
          }
        }
        if (read) f.env = std::move(variables);
      }
    } else if (key == "Tags") {
      if (!value.is_object()) {
        read = Invalid("Tags must be an object of strings");
      } else {
        for (const auto& [name, text] : value.items()) {
          if (!text.is_string()) read = Invalid(fmt::format("Tags.{} must be a string", name));
        }
        if (read) {
          out.tags = value;
          f.tags = value.get<std::map<std::string, std::string>>();
        }
      }
    } else if (key == "PackageType") {
      if (value != "Zip") {
        read = Invalid("PackageType must be Zip: Wisp does not run container images");
      }
    } else if (key == "Architectures") {
      if (value != json::array({"x86_64"})) {
        read = Invalid("Architectures must be [\"x86_64\"]: the architecture of this node");
      }
    } else if (key == "TracingConfig") {
      if (!value.is_object() || (value.contains("Mode") && value["Mode"] != "PassThrough")) {
        read = Invalid("TracingConfig.Mode must be PassThrough: Wisp sends no traces");
      }
    } else if (key == "CapacityProviderConfig") {
      read = DecodeCapacityProviderConfig(value, f.instance_concurrency);
    } else if (key == "Code") {
      if (!value.is_object()) {
        read = Invalid("Code must be an object {\"ZipFile\": <base64>}");
      } else {
        out.code = value;
      }
    }
    if (!read) return tl::unexpected(read.error());
  }
  if (create) {
    if (!f.name) return Invalid("CreateFunction needs FunctionName");
    if (!out.code) return Invalid("CreateFunction needs Code");
    if (!f.runtime) return Invalid("CreateFunction needs Runtime for a Zip package");
    if (!f.handler) return Invalid("CreateFunction needs Handler for a Zip package");
    if (!f.timeout_seconds) f.timeout_seconds = kLambdaDefaultTimeoutSeconds;
    if (!f.memory_mb) f.memory_mb = kLambdaDefaultMemoryMb;
  }
  return out;
}

Result<std::string> DecodeLambdaZipFile(const json& code,
                                        std::optional<std::string_view> zip_base64) {
  if (!code.is_object()) return Invalid("Code must be an object {\"ZipFile\": <base64>}");
  for (const auto& [key, value] : code.items()) {
    if (key == "ZipFile") return Invalid("Code.ZipFile must be a base64-encoded zip file");
    if (key == "S3Bucket" || key == "S3Key" || key == "S3ObjectVersion" || key == "ImageUri" ||
        key == "SourceKMSKeyArn") {
      return Invalid(fmt::format(
          "Code.{} is not supported: Wisp takes the package itself, as Code.ZipFile", key));
    }
    return Invalid(fmt::format("Code does not take '{}'", key));
  }
  if (!zip_base64) return Invalid("Code needs ZipFile (the zip, base64-encoded)");
  auto bytes = DecodeBase64(*zip_base64);
  if (!bytes) return Invalid(fmt::format("Code.ZipFile: {}", bytes.error().message));
  return bytes;
}

Result<LambdaCodeUpdate> DecodeLambdaCodeUpdate(const json& body,
                                                std::optional<std::string_view> zip_base64) {
  if (!body.is_object()) return Invalid("the request body must be a JSON object");
  LambdaCodeUpdate out;
  for (const auto& [key, value] : body.items()) {
    if (key == "ZipFile") {
      return Invalid("ZipFile must be a base64-encoded zip file");
    } else if (key == "DryRun" || key == "Publish") {
      if (!value.is_boolean()) return Invalid(fmt::format("{} must be a boolean", key));
      (key == "DryRun" ? out.dry_run : out.publish) = value.get<bool>();
    } else if (key == "RevisionId") {
      if (!value.is_string()) return Invalid("RevisionId must be a string");
      out.revision_id = value.get<std::string>();
    } else if (key == "Architectures") {
      if (value != json::array({"x86_64"})) {
        return Invalid("Architectures must be [\"x86_64\"]: the architecture of this node");
      }
    } else if (key == "S3Bucket" || key == "S3Key" || key == "S3ObjectVersion" ||
               key == "ImageUri" || key == "SourceKMSKeyArn") {
      return Invalid(
          fmt::format("{} is not supported: Wisp takes the package itself, as ZipFile", key));
    } else {
      return Invalid(fmt::format("UpdateFunctionCode does not take '{}'", key));
    }
  }
  if (!zip_base64) return Invalid("UpdateFunctionCode needs ZipFile (the zip, base64-encoded)");
  auto bytes = DecodeBase64(*zip_base64);
  if (!bytes) return Invalid(fmt::format("ZipFile: {}", bytes.error().message));
  out.zip = std::move(*bytes);
  return out;
}

uint64_t LambdaPackageRequestLimit(uint64_t max_zip_bytes) {
  // Base64's 4 characters per 3 bytes, and 1 MB for the rest (Environment is at most 4 KB).
  return (max_zip_bytes + 2) / 3 * 4 + (1 << 20);
}

std::string LambdaLogTail(std::string_view request_id, std::string_view version,
                          const std::vector<std::string>& lines, std::string_view report_line,
                          size_t max_bytes) {
  std::string log = fmt::format("START RequestId: {} Version: {}\n", request_id, version);
  for (const auto& line : lines) {
    log += line;
    log += '\n';
  }
  log += fmt::format("END RequestId: {}\n", request_id);
  log += report_line;
  log += '\n';
  if (log.size() <= max_bytes) return log;
  // Keep the newest bytes, from the first whole line among them when there is one.
  std::string_view tail(log);
  tail.remove_prefix(log.size() - max_bytes);
  if (const size_t newline = tail.find('\n');
      newline != std::string_view::npos && newline + 1 < tail.size()) {
    tail.remove_prefix(newline + 1);
  }
  return std::string(tail);
}

}  // namespace wisp::api
