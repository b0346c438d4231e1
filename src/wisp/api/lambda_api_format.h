// The AWS Lambda control-plane API's words: how it names a function (a name, a partial or full
// ARN, a qualifier), how it spells a function's configuration, and how it reports an error, so
// the AWS SDKs and the AWS CLI parse what Wisp answers as they parse Lambda's own answers.
// Pure functions of their inputs: the routes (lambda_api_routes.cc) own the HTTP side.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "wisp/api/http.h"
#include "wisp/core/function_spec.h"
#include "wisp/core/runtime_catalog.h"
#include "wisp/store/records.h"

namespace wisp::api {

// Where the ARNs Wisp shows say the functions live. Both come from the configuration: an SDK
// inside a function, or a tool comparing ARNs, checks their format.
struct LambdaAccount {
  std::string region = "us-east-1";
  std::string account_id = "000000000000";
};

// Lambda's defaults for what a CreateFunction leaves out (they differ from /v1's own).
constexpr int kLambdaDefaultTimeoutSeconds = 3;
constexpr int kLambdaDefaultMemoryMb = 128;
// Lambda's payload limits: a synchronous call's request and response, an Event call's request.
constexpr size_t kLambdaMaxSyncPayloadBytes = 6 * 1024 * 1024;
constexpr size_t kLambdaMaxEventPayloadBytes = 1024 * 1024;
// X-Amz-Log-Result carries the last 4 KB of the call's log.
constexpr size_t kLambdaLogTailBytes = 4096;

// A function as a Lambda request names it: the {FunctionName} path segment (already
// percent-decoded) and the Qualifier query parameter.
struct LambdaFunctionRef {
  std::string name;
  std::optional<std::string> qualifier;  // "$LATEST", a version number or an alias name
};

// Accepts "my-function", "my-function:3", "123456789012:function:my-function[:q]" and
// "arn:aws:lambda:us-east-1:123456789012:function:my-function[:q]". A region or account that is
// not this node's is kNotFound (the function is not here); a malformed name, or a qualifier in
// the name that contradicts `query_qualifier`, is kInvalidArgument.
Result<LambdaFunctionRef> ParseFunctionRef(std::string_view raw,
                                           std::optional<std::string_view> query_qualifier,
                                           const LambdaAccount& account);

// A qualifier Lambda would accept: "$LATEST", a version number, or an alias name (letters,
// digits, '-' and '_', not all digits, at most 128 characters).
bool IsValidQualifier(std::string_view qualifier);

std::string FunctionArn(const LambdaAccount& account, std::string_view name);

// An error as the SDKs parse it: the X-Amzn-ErrorType header and {"Type", "message",
// "Message"}. `type` is the exception's name (ResourceNotFoundException, ...).
HttpResponse LambdaError(int status, std::string_view type, std::string_view message);
// The exception an expected failure of the core means on this API.
HttpResponse LambdaError(const Error& error);

// A JSON answer of this API.
HttpResponse LambdaJson(int status, const nlohmann::json& body);
// The query parameters an operation takes: any other is refused by name
// (InvalidParameterValueException), or nullopt when all are known.
std::optional<HttpResponse> UnknownLambdaParameters(const HttpRequest& request,
                                                    const std::vector<std::string_view>& accepted);
// List operations' MaxItems: Lambda's default page and the most one page may ask for.
inline constexpr int kLambdaDefaultMaxItems = 50;
inline constexpr int kLambdaMaxMaxItems = 10000;

// The Lambda runtime identifier a function shows: the one it was created with when it is one of
// the runtime's AWS names, else the one matching the installed interpreter's major version
// ("nodejs20.x" for node 20), else the runtime's first AWS alias.
std::string LambdaRuntimeName(const core::RuntimeEntry& runtime,
                              const std::optional<std::string>& interpreter_version);

// What the configuration shows of a function besides its record.
struct LambdaConfigurationView {
  std::string version = "$LATEST";
  // What FunctionArn ends with when not the version: the alias a request named, as Lambda
  // shows an alias's configuration (Version is still the number it points at).
  std::string arn_qualifier;
  std::string runtime;  // LambdaRuntimeName
  std::string handler;  // as the runtime resolves it ("index.handler")
  std::string role;
  std::string description;
  uint64_t code_size = 0;
  std::string code_sha256;              // base64 of the SHA-256 of the code, as Lambda shows it
  uint64_t ephemeral_storage_mb = 512;  // the size of the sandbox's /tmp
  bool serving = false;  // a version of the function serves calls (its State is not Pending)
};

// FunctionConfiguration: FunctionName, FunctionArn, Runtime, Handler, CodeSize, CodeSha256,
// Timeout, MemorySize, Environment.Variables, LastModified, Version, State/StateReason,
// LastUpdateStatus, PackageType, Architectures, and the rest Lambda always sends.
nlohmann::json EncodeLambdaConfiguration(const store::FunctionRecord& record,
                                         const LambdaConfigurationView& view,
                                         const LambdaAccount& account);

// Changes whenever the function does: what a conditional update (RevisionId) compares.
std::string LambdaRevisionId(const store::FunctionRecord& record);

// Lambda's timestamp format: "2024-01-31T12:34:56.789+0000".
std::string LambdaTimestamp(int64_t epoch_ms);

// The fields of a CreateFunction (create = true) or UpdateFunctionConfiguration body, mapped
// onto the core's. Fields Lambda has and Wisp does not implement are refused by name
// (kInvalidArgument), never ignored; Role and RevisionId are checked for type only (Wisp has no
// IAM; the route compares a RevisionId). A create gets Lambda's defaults for Timeout and
// MemorySize.
struct LambdaFunctionFields {
  core::FunctionFields fields;
  std::string description;
  bool publish = false;
  std::optional<nlohmann::json> tags;
  std::optional<nlohmann::json> code;  // CreateFunction's Code object
};
Result<LambdaFunctionFields> DecodeLambdaFunctionFields(const nlohmann::json& body, bool create);

// The base64 text of a package request's ZipFile is tens of MB: the routes parse it out of the
// body themselves (simdjson) and pass it beside the rest of the JSON, which then has no ZipFile
// string; `zip_base64` is nullopt when the request had none.

// The zip a CreateFunction's Code object carries: {"ZipFile": <base64>}. S3 locations and
// container images are refused by name (Wisp takes the package itself).
Result<std::string> DecodeLambdaZipFile(const nlohmann::json& code,
                                        std::optional<std::string_view> zip_base64);

// An UpdateFunctionCode body: ZipFile, and DryRun, Publish, RevisionId, Architectures.
struct LambdaCodeUpdate {
  std::string zip;  // the package's bytes
  bool dry_run = false;
  bool publish = false;
  std::optional<std::string> revision_id;
};
Result<LambdaCodeUpdate> DecodeLambdaCodeUpdate(const nlohmann::json& body,
                                                std::optional<std::string_view> zip_base64);

// The largest CreateFunction or UpdateFunctionCode request body: a zip of `max_zip_bytes` in
// base64 (Lambda's 50 MB is its 69905067-byte request limit) and room for the other fields.
uint64_t LambdaPackageRequestLimit(uint64_t max_zip_bytes);

// The last `max_bytes` of a call's log as Lambda's Tail shows it: START, the function's lines,
// END and REPORT, cut at a line start where possible.
std::string LambdaLogTail(std::string_view request_id, std::string_view version,
                          const std::vector<std::string>& lines, std::string_view report_line,
                          size_t max_bytes);

}  // namespace wisp::api
