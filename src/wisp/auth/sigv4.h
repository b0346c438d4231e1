// AWS Signature Version 4, the server's side: rebuilds the canonical request from what arrived,
// derives the signing key from the named key's secret and compares signatures, as AWS does for
// the Lambda API (a non-S3 service: the path is URI-encoded a second time in the canonical
// request, the payload is always hashed).
//
// Only the Authorization header form is accepted (what the SDKs send); presigned URLs (query
// parameters X-Amz-Signature...) are not, and temporary credentials (X-Amz-Security-Token) are
// refused: Wisp issues long-term keys only.
//
// Thread rules: SigV4Verifier is immutable after construction; any thread.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wisp/auth/crypto.h"
#include "wisp/common/result.h"

namespace wisp::auth {

// An AWS error: the type (the X-Amzn-ErrorType header) and the message.
struct AwsError {
  std::string type;
  std::string message;
};

inline constexpr std::string_view kMissingAuthenticationToken =
    "MissingAuthenticationTokenException";
inline constexpr std::string_view kIncompleteSignature = "IncompleteSignatureException";
inline constexpr std::string_view kInvalidSignature = "InvalidSignatureException";
inline constexpr std::string_view kUnrecognizedClient = "UnrecognizedClientException";

// What the verifier reads of a request. Everything borrowed.
struct SignedRequest {
  std::string_view method;
  std::string_view path;   // as sent: still percent-encoded, without the query
  std::string_view query;  // as sent, without '?'
  const std::map<std::string, std::string>* headers = nullptr;  // lower-case names
  std::string_view body;
};

// The parts of "AWS4-HMAC-SHA256 Credential=ID/DATE/REGION/SERVICE/aws4_request,
// SignedHeaders=a;b, Signature=HEX".
struct Authorization {
  std::string key_id;
  std::string date;  // YYYYMMDD
  std::string region;
  std::string service;
  std::vector<std::string> signed_headers;
  std::string signature;
};

// IncompleteSignatureException for a header that is not a complete SigV4 authorization.
tl::expected<Authorization, AwsError> ParseAuthorization(std::string_view header);

// The canonical URI of a non-S3 service: dot segments and empty segments removed, then every
// byte but the unreserved ones and '/' percent-encoded, including the '%' of the encoding the
// client already applied (so "arn%3Aaws" becomes "arn%253Aaws"). botocore and the JS SDK
// normalise the same way.
std::string CanonicalUri(std::string_view raw_path);
// The canonical query: each name and value percent-decoded, then encoded with only the
// unreserved characters left bare, sorted by name and then value; "a&b=" has the pairs a= and b=.
std::string CanonicalQuery(std::string_view raw_query);
// Header values trimmed, runs of spaces made one.
std::string CanonicalHeaderValue(std::string_view value);
std::string CanonicalRequest(const SignedRequest& request,
                             const std::vector<std::string>& signed_headers,
                             std::string_view payload_hash);
std::string StringToSign(std::string_view amz_date, std::string_view scope,
                         std::string_view canonical_request);
Digest SigningKey(std::string_view secret, std::string_view date, std::string_view region,
                  std::string_view service);

// "20150830T123600Z" as a time, or nullopt; also what a Date header (IMF-fixdate, "Sun, 30 Aug
// 2015 12:36:00 GMT") becomes.
std::optional<std::chrono::system_clock::time_point> ParseAmzDate(std::string_view text);
std::optional<std::chrono::system_clock::time_point> ParseHttpDate(std::string_view text);
std::string FormatAmzDate(std::chrono::system_clock::time_point t);

struct SigV4Options {
  std::string region;              // the only region a credential scope may name
  std::string service = "lambda";  // the only service
  // How far the request's date may be from ours, either way (AWS allows 15 minutes for
  // Lambda's signature).
  std::chrono::seconds max_skew = std::chrono::minutes(15);
};

class SigV4Verifier {
 public:
  explicit SigV4Verifier(SigV4Options options) : options_(std::move(options)) {}

  // The secret of a key id, or nullptr for an unknown id.
  using SecretOf = std::function<const std::string*(std::string_view key_id)>;

  // The key id when the request's signature is right; otherwise the AWS error:
  // MissingAuthenticationTokenException (no Authorization header), IncompleteSignature
  // (malformed header, no date), UnrecognizedClient (unknown key id, a security token),
  // InvalidSignature (a wrong region, service or scope date, a date too far from `now`, a
  // payload hash header that does not match the body, a wrong signature). The body is hashed
  // only once everything cheaper has passed.
  tl::expected<std::string, AwsError> Verify(const SignedRequest& request,
                                             std::chrono::system_clock::time_point now,
                                             const SecretOf& secret_of) const;

 private:
  SigV4Options options_;
};

}  // namespace wisp::auth
