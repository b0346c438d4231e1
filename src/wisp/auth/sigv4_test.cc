#include "wisp/auth/sigv4.h"

#include <gtest/gtest.h>

namespace wisp::auth {
namespace {

// The key of AWS's published SigV4 test suite.
constexpr const char* kKeyId = "AKIDEXAMPLE";
constexpr const char* kSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr const char* kAmzDate = "20150830T123600Z";

std::chrono::system_clock::time_point SignedAt() { return *ParseAmzDate(kAmzDate); }

struct Fixture {
  std::string method = "GET";
  std::string path = "/";
  std::string query;
  std::map<std::string, std::string> headers;
  std::string body;

  SignedRequest View() const { return SignedRequest{method, path, query, &headers, body}; }
};

const std::string* LookUpExample(std::string_view id) {
  static const std::string secret = kSecret;
  return id == kKeyId ? &secret : nullptr;
}

// AWS's SigV4 test suite, "get-vanilla".
Fixture GetVanilla() {
  Fixture f;
  f.headers = {{"host", "example.amazonaws.com"},
               {"x-amz-date", kAmzDate},
               {"authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                "aws4_request, SignedHeaders=host;x-amz-date, "
                "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"}};
  return f;
}

// Signed by botocore 1.29 (SigV4Auth, service lambda) at kAmzDate with the suite's key: an
// invoke whose function name is an ARN, so the path carries %3A, which the canonical request
// encodes again.
Fixture BotocoreInvoke() {
  Fixture f;
  f.method = "POST";
  f.path =
      "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Amy-fn/"
      "invocations";
  f.query = "Qualifier=prod";
  f.body = R"({"a":1})";
  f.headers = {{"host", "127.0.0.1:18080"},
               {"x-amz-date", kAmzDate},
               {"content-length", "7"},
               {"authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/lambda/aws4_request, "
                "SignedHeaders=host;x-amz-date, "
                "Signature=d9a0cb153eb664ff240ce4f716376f1ad8ad43e3dac0b05f9b260fca77ff6011"}};
  return f;
}

// botocore again, a listing with repeated and encoded query parameters, in eu-west-1.
Fixture BotocoreQuery() {
  Fixture f;
  f.path = "/2015-03-31/functions/";
  f.query = "b=2&a=1&a=0&c=x%20y&d=%2B";
  f.headers = {{"host", "127.0.0.1:18080"},
               {"x-amz-date", kAmzDate},
               {"authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/lambda/aws4_request, "
                "SignedHeaders=host;x-amz-date, "
                "Signature=0cb3b7ec7491351f3b2a0114074b9e92d3dce4879fb95bf5e28adf3c0785b99b"}};
  return f;
}

tl::expected<std::string, AwsError> Verify(const Fixture& f, std::string region,
                                           std::string service = "lambda",
                                           std::chrono::seconds offset = {}) {
  const SigV4Verifier verifier(SigV4Options{std::move(region), std::move(service)});
  return verifier.Verify(f.View(), SignedAt() + offset, LookUpExample);
}

TEST(SigV4Test, CanonicalUriEncodesTheSentPathAgain) {
  EXPECT_EQ(CanonicalUri(""), "/");
  EXPECT_EQ(CanonicalUri("/"), "/");
  EXPECT_EQ(CanonicalUri("/2015-03-31/functions/arn%3Aaws%3Alambda/invocations"),
            "/2015-03-31/functions/arn%253Aaws%253Alambda/invocations");
  EXPECT_EQ(CanonicalUri("/a/./b/../c//d/"), "/a/c/d/");
  EXPECT_EQ(CanonicalUri("/../.."), "/");
  EXPECT_EQ(CanonicalUri("/a b~_.-"), "/a%20b~_.-");
  EXPECT_EQ(CanonicalUri("/f:x"), "/f%3Ax");
}

TEST(SigV4Test, CanonicalQuerySortsAndNormalisesEncoding) {
  EXPECT_EQ(CanonicalQuery(""), "");
  EXPECT_EQ(CanonicalQuery("b=2&a=1&a=0&c=x%20y&d=%2B"), "a=0&a=1&b=2&c=x%20y&d=%2B");
  EXPECT_EQ(CanonicalQuery("flag&x="), "flag=&x=");
  EXPECT_EQ(CanonicalQuery("k=a%3ab"), "k=a%3Ab");  // hex case is normalised
  EXPECT_EQ(CanonicalQuery("k=a:b/c"), "k=a%3Ab%2Fc");
  EXPECT_EQ(CanonicalQuery("Marker=x&&MaxItems=5"), "Marker=x&MaxItems=5");
}

TEST(SigV4Test, CanonicalHeaderValueTrimsAndCollapsesSpaces) {
  EXPECT_EQ(CanonicalHeaderValue("  a   b  c "), "a b c");
  EXPECT_EQ(CanonicalHeaderValue("value"), "value");
}

TEST(SigV4Test, SigningKeyOfTheAwsDocumentation) {
  // The derived key of AWS's "Examples of how to derive a signing key" (IAM, 20120215).
  EXPECT_EQ(
      Hex(SigningKey("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam")),
      "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

TEST(SigV4Test, AcceptsAwsTestSuiteGetVanilla) {
  const auto verified = Verify(GetVanilla(), "us-east-1", "service");
  ASSERT_TRUE(verified) << verified.error().type << ": " << verified.error().message;
  EXPECT_EQ(*verified, kKeyId);
}

TEST(SigV4Test, AcceptsBotocoreSignedRequests) {
  auto verified = Verify(BotocoreInvoke(), "us-east-1");
  ASSERT_TRUE(verified) << verified.error().type << ": " << verified.error().message;
  verified = Verify(BotocoreQuery(), "eu-west-1");
  ASSERT_TRUE(verified) << verified.error().type << ": " << verified.error().message;
  // The same request with its query in another order and other (equivalent) encodings.
  Fixture reordered = BotocoreQuery();
  reordered.query = "d=%2b&c=x%20y&a=0&b=2&a=1";
  EXPECT_TRUE(Verify(reordered, "eu-west-1"));
}

TEST(SigV4Test, UnsignedHeadersMayChange) {
  Fixture f = BotocoreInvoke();
  f.headers["user-agent"] = "anything";
  EXPECT_TRUE(Verify(f, "us-east-1"));
}

void ExpectError(const tl::expected<std::string, AwsError>& verified, std::string_view type) {
  ASSERT_FALSE(verified) << "accepted";
  EXPECT_EQ(verified.error().type, type) << verified.error().message;
}

TEST(SigV4Test, TamperedRequestsFail) {
  Fixture body = BotocoreInvoke();
  body.body = R"({"a":2})";
  ExpectError(Verify(body, "us-east-1"), kInvalidSignature);

  Fixture path = BotocoreInvoke();
  path.path.replace(path.path.find("my-fn"), 5, "other");
  ExpectError(Verify(path, "us-east-1"), kInvalidSignature);

  Fixture query = BotocoreInvoke();
  query.query = "Qualifier=dev";
  ExpectError(Verify(query, "us-east-1"), kInvalidSignature);

  Fixture method = BotocoreInvoke();
  method.method = "PUT";
  ExpectError(Verify(method, "us-east-1"), kInvalidSignature);

  Fixture host = BotocoreInvoke();
  host.headers["host"] = "127.0.0.1:18081";
  ExpectError(Verify(host, "us-east-1"), kInvalidSignature);

  Fixture signature = BotocoreInvoke();
  signature.headers["authorization"].back() = '0';
  ExpectError(Verify(signature, "us-east-1"), kInvalidSignature);
}

TEST(SigV4Test, PayloadHashHeaderMustMatchTheBody) {
  Fixture unsigned_payload = BotocoreInvoke();
  unsigned_payload.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD";
  ExpectError(Verify(unsigned_payload, "us-east-1"), kInvalidSignature);
  Fixture matching = BotocoreInvoke();
  matching.headers["x-amz-content-sha256"] = Sha256Hex(matching.body);
  EXPECT_TRUE(Verify(matching, "us-east-1"));
}

TEST(SigV4Test, WrongSecretOrUnknownKey) {
  const SigV4Verifier verifier(SigV4Options{"us-east-1"});
  const std::string other = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEz";
  ExpectError(verifier.Verify(BotocoreInvoke().View(), SignedAt(),
                              [&other](std::string_view) { return &other; }),
              kInvalidSignature);
  ExpectError(verifier.Verify(BotocoreInvoke().View(), SignedAt(),
                              [](std::string_view) -> const std::string* { return nullptr; }),
              kUnrecognizedClient);
}

TEST(SigV4Test, DateSkewIsFifteenMinutesEitherWay) {
  using std::chrono::minutes;
  using std::chrono::seconds;
  EXPECT_TRUE(Verify(BotocoreInvoke(), "us-east-1", "lambda", minutes(15)));
  EXPECT_TRUE(Verify(BotocoreInvoke(), "us-east-1", "lambda", -minutes(15)));
  ExpectError(Verify(BotocoreInvoke(), "us-east-1", "lambda", minutes(15) + seconds(1)),
              kInvalidSignature);
  ExpectError(Verify(BotocoreInvoke(), "us-east-1", "lambda", -minutes(15) - seconds(1)),
              kInvalidSignature);
}

TEST(SigV4Test, ScopeMustNameOurRegionAndService) {
  ExpectError(Verify(BotocoreInvoke(), "eu-west-1"), kInvalidSignature);
  ExpectError(Verify(BotocoreInvoke(), "us-east-1", "s3"), kInvalidSignature);
}

TEST(SigV4Test, TheDateHeaderServesWhenThereIsNoXAmzDate) {
  // get-vanilla's date given as an HTTP date: the string to sign holds the same ISO 8601 basic
  // time, so the signature still matches.
  Fixture f = GetVanilla();
  f.headers.erase("x-amz-date");
  f.headers["date"] = "Sun, 30 Aug 2015 12:36:00 GMT";
  f.headers["authorization"] =
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=date;host, Signature=" +
      Hex(HmacSha256(SigningKey(kSecret, "20150830", "us-east-1", "service"),
                     StringToSign(kAmzDate, "20150830/us-east-1/service/aws4_request",
                                  CanonicalRequest(f.View(), {"date", "host"}, Sha256Hex("")))));
  EXPECT_TRUE(Verify(f, "us-east-1", "service"));
  f.headers.erase("date");
  ExpectError(Verify(f, "us-east-1", "service"), kIncompleteSignature);
}

TEST(SigV4Test, MissingOrMalformedAuthorization) {
  Fixture none = BotocoreInvoke();
  none.headers.erase("authorization");
  ExpectError(Verify(none, "us-east-1"), kMissingAuthenticationToken);

  for (const std::string& header : {
           std::string("Bearer abc"),
           std::string("AWS4-HMAC-SHA256"),
           std::string("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/lambda/"
                       "aws4_request, SignedHeaders=host;x-amz-date"),
           std::string("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/lambda, "
                       "SignedHeaders=host, Signature=") +
               std::string(64, 'a'),
           std::string("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/lambda/"
                       "aws4_request, SignedHeaders=Host;X-Amz-Date, Signature=") +
               std::string(64, 'a'),
           std::string("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/lambda/"
                       "aws4_request, SignedHeaders=host, Signature=xyz"),
       }) {
    Fixture f = BotocoreInvoke();
    f.headers["authorization"] = header;
    ExpectError(Verify(f, "us-east-1"), kIncompleteSignature);
  }
}

TEST(SigV4Test, TooManySignedHeadersAreRefusedBeforeAnyWork) {
  std::string names = "host";
  for (int i = 0; i < 100; ++i) names += fmt::format(";x-h{}", i);
  Fixture f = BotocoreInvoke();
  f.headers["authorization"] =
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/lambda/aws4_request, "
      "SignedHeaders=" +
      names + ", Signature=" + std::string(64, 'a');
  ExpectError(Verify(f, "us-east-1"), kIncompleteSignature);
}

TEST(SigV4Test, SessionTokensAreRefused) {
  Fixture f = BotocoreInvoke();
  f.headers["x-amz-security-token"] = "token";
  ExpectError(Verify(f, "us-east-1"), kUnrecognizedClient);
}

TEST(SigV4Test, SignedHostIsRequired) {
  Fixture f = GetVanilla();
  f.headers["authorization"] =
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=x-amz-date, Signature=" +
      Hex(HmacSha256(SigningKey(kSecret, "20150830", "us-east-1", "service"),
                     StringToSign(kAmzDate, "20150830/us-east-1/service/aws4_request",
                                  CanonicalRequest(f.View(), {"x-amz-date"}, Sha256Hex("")))));
  ExpectError(Verify(f, "us-east-1", "service"), kInvalidSignature);
}

TEST(SigV4Test, Dates) {
  EXPECT_EQ(FormatAmzDate(*ParseAmzDate("20150830T123600Z")), "20150830T123600Z");
  EXPECT_FALSE(ParseAmzDate("2015-08-30T12:36:00Z"));
  EXPECT_FALSE(ParseAmzDate("20151330T123600Z"));
  EXPECT_EQ(ParseHttpDate("Sun, 30 Aug 2015 12:36:00 GMT"), ParseAmzDate("20150830T123600Z"));
  EXPECT_FALSE(ParseHttpDate("Sunday, 30-Aug-15 12:36:00 GMT"));
}

}  // namespace
}  // namespace wisp::auth
