#include "wisp/api/auth_gate.h"

#include <gtest/gtest.h>

namespace wisp::api {
namespace {

class MemoryKeyStore final : public store::ApiKeyStore {
 public:
  Result<void> PutApiKey(const store::ApiKeyRecord& key) override {
    std::lock_guard lock(mutex);
    keys.push_back(key);
    return {};
  }
  Result<std::vector<store::ApiKeyRecord>> ListApiKeys() override {
    std::lock_guard lock(mutex);
    ++reads;
    return keys;
  }
  Result<void> DeleteApiKey(const std::string& id) override {
    std::lock_guard lock(mutex);
    if (std::erase_if(keys, [&id](const auto& k) { return k.id == id; }) == 0) {
      return MakeError(ErrorCode::kNotFound, "no such key");
    }
    return {};
  }
  std::mutex mutex;
  std::vector<store::ApiKeyRecord> keys;
  int reads = 0;
};

class AuthGateTest : public testing::Test {
 protected:
  AuthGateTest() : registry_(store_, clock_, {}) {}

  HttpResponse Dispatch(HttpRequest request) {
    AuthGate gate(io_, workers_, registry_, clock_,
                  AuthGateOptions{"us-east-1", std::chrono::hours(1), std::chrono::milliseconds(1),
                                  std::chrono::seconds(5)});
    if (is_public_) gate.SetPublicRequests(is_public_);
    router_.SetGate(&gate);
    HttpResponse response;
    asio::co_spawn(
        io_, [&]() -> asio::awaitable<void> { response = co_await router_.Dispatch(request); },
        asio::detached);
    io_.restart();
    io_.run();
    return response;
  }

  static HttpRequest Get(std::string path, std::string authorization = "") {
    HttpRequest request;
    request.method = "GET";
    request.path = std::move(path);
    if (!authorization.empty()) request.headers["authorization"] = std::move(authorization);
    return request;
  }

  static std::string Header(const HttpResponse& response, std::string_view name) {
    for (const auto& [n, v] : response.headers) {
      if (n == name) return v;
    }
    return "";
  }

  void SetUp() override {
    router_.Add("GET", "/v1/functions", [](HttpRequest&) -> asio::awaitable<HttpResponse> {
      co_return JsonResponse(200, R"({"items":[]})");
    });
    router_.Add("GET", "/health", [](HttpRequest&) -> asio::awaitable<HttpResponse> {
      co_return JsonResponse(200, R"({"status":"ok","totalInvocations":7})");
    });
    ASSERT_TRUE(registry_.Reload());
  }

  asio::io_context io_;
  asio::thread_pool workers_{1};
  MemoryKeyStore store_;
  ManualClock clock_;
  auth::KeyRegistry registry_;
  Router router_;
  std::function<bool(const HttpRequest&)> is_public_;
};

TEST(AuthGatePaths, AwsPathsStartWithADate) {
  EXPECT_TRUE(AuthGate::IsAwsPath("/2015-03-31/functions"));
  EXPECT_TRUE(AuthGate::IsAwsPath("/2015-03-31"));
  EXPECT_TRUE(AuthGate::IsAwsPath("/2016-08-19/account-settings/"));
  EXPECT_TRUE(AuthGate::IsAwsPath("/2021-10-31/functions/f/url"));
  EXPECT_FALSE(AuthGate::IsAwsPath("/v1/functions"));
  EXPECT_FALSE(AuthGate::IsAwsPath("/health"));
  EXPECT_FALSE(AuthGate::IsAwsPath("/2015-03-31x/functions"));
  EXPECT_FALSE(AuthGate::IsAwsPath("/2015-3-31/functions"));
  EXPECT_FALSE(AuthGate::IsAwsPath("/functions/2015-03-31"));
  EXPECT_FALSE(AuthGate::IsAwsPath(""));
}

TEST_F(AuthGateTest, BearerRightWrongAndMissing) {
  auto key = registry_.Create("test");
  ASSERT_TRUE(key);
  EXPECT_EQ(Dispatch(Get("/v1/functions", "Bearer " + key->secret)).status, 200);
  EXPECT_EQ(Dispatch(Get("/v1/functions", "bearer " + key->secret)).status, 200);

  const HttpResponse missing = Dispatch(Get("/v1/functions"));
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(Header(missing, "WWW-Authenticate"), R"(Bearer realm="wisp")");
  EXPECT_NE(missing.body.find("\"error\""), std::string::npos);

  const HttpResponse wrong = Dispatch(Get("/v1/functions", "Bearer " + key->secret + "x"));
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(Header(wrong, "WWW-Authenticate"), R"(Bearer realm="wisp", error="invalid_token")");
  EXPECT_EQ(Dispatch(Get("/v1/functions", "Basic abc")).status, 401);
  EXPECT_EQ(Dispatch(Get("/v1/functions", "Bearer ")).status, 401);
  // A route that does not exist is refused the same way: no probing for routes.
  EXPECT_EQ(Dispatch(Get("/v1/nothing")).status, 401);
}

TEST_F(AuthGateTest, AWebSocketMayOfferTheSecretAsASubprotocol) {
  auto key = registry_.Create("test");
  ASSERT_TRUE(key);
  HttpRequest offered = Get("/v1/functions");
  offered.headers["sec-websocket-protocol"] = "wisp, wisp.bearer." + key->secret;
  EXPECT_EQ(Dispatch(offered).status, 200);
  HttpRequest wrong = Get("/v1/functions");
  wrong.headers["sec-websocket-protocol"] = "wisp, wisp.bearer." + key->secret + "x";
  EXPECT_EQ(Dispatch(wrong).status, 401);
  HttpRequest other = Get("/v1/functions");
  other.headers["sec-websocket-protocol"] = "wisp, chat";
  EXPECT_EQ(Dispatch(other).status, 401);
  // The Authorization header, when sent, is what counts.
  HttpRequest both = Get("/v1/functions", "Bearer wrong-wrong-wrong");
  both.headers["sec-websocket-protocol"] = "wisp.bearer." + key->secret;
  EXPECT_EQ(Dispatch(both).status, 401);
}

TEST_F(AuthGateTest, HealthWithoutCredentialsIsLivenessOnly) {
  const HttpResponse open = Dispatch(Get("/health"));
  EXPECT_EQ(open.status, 200);
  EXPECT_EQ(open.body.find("totalInvocations"), std::string::npos);
  auto key = registry_.Create("");
  ASSERT_TRUE(key);
  const HttpResponse full = Dispatch(Get("/health", "Bearer " + key->secret));
  EXPECT_NE(full.body.find("totalInvocations"), std::string::npos);
  EXPECT_EQ(Dispatch(Get("/health", "Bearer wrong-wrong-wrong")).status, 401);
}

TEST_F(AuthGateTest, ReadinessNeedsNoKey) {
  router_.Add("GET", "/health/ready", [](HttpRequest&) -> asio::awaitable<HttpResponse> {
    co_return JsonResponse(200, R"({"ready":true})");
  });
  EXPECT_EQ(Dispatch(Get("/health/ready")).status, 200);
  EXPECT_EQ(Dispatch(Get("/health/ready", "Bearer wrong-wrong-wrong")).status, 401);
  EXPECT_EQ(Dispatch(Get("/health/readyx")).status, 401);
}

TEST_F(AuthGateTest, PublicRequestsNeedNoKeyAndOnlyThey) {
  router_.AddPrefix("/fn", [](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    co_return JsonResponse(200, request.method + " " + request.path);
  });
  is_public_ = [](const HttpRequest& request) { return request.path.starts_with("/fn/open/"); };
  auto key = registry_.Create("test");
  ASSERT_TRUE(key);
  HttpRequest post = Get("/fn/open/any/path");
  post.method = "POST";
  const HttpResponse open = Dispatch(post);
  EXPECT_EQ(open.status, 200);
  EXPECT_EQ(open.body, "POST /fn/open/any/path");  // the prefix route takes every method
  EXPECT_EQ(Dispatch(Get("/fn/closed/x")).status, 401);
  EXPECT_EQ(Dispatch(Get("/fn/closed/x", "Bearer " + key->secret)).status, 200);
  EXPECT_EQ(Dispatch(Get("/v1/functions")).status, 401);
  EXPECT_EQ(Dispatch(Get("/fnord")).status, 401);
}

TEST_F(AuthGateTest, ConsoleFilesNeedNoKeyButItsApiDoes) {
  router_.Add("GET", "/", [](HttpRequest&) -> asio::awaitable<HttpResponse> {
    co_return JsonResponse(200, "page");
  });
  router_.Add("GET", "/console/:file", [](HttpRequest&) -> asio::awaitable<HttpResponse> {
    co_return JsonResponse(200, "file");
  });
  EXPECT_EQ(Dispatch(Get("/")).status, 200);
  EXPECT_EQ(Dispatch(Get("/console/app.js")).status, 200);
  EXPECT_EQ(Dispatch(Get("/console/a/b")).status, 401);
  HttpRequest post = Get("/");
  post.method = "POST";
  EXPECT_EQ(Dispatch(post).status, 401);
  EXPECT_EQ(Dispatch(Get("/functions")).status, 401);
}

TEST_F(AuthGateTest, AKeyAnotherProcessStoredWorksAtOnce) {
  store_.keys.push_back({"WKOTHERPROCESS000000", "written-by-the-cli-0123", "", 1});
  EXPECT_EQ(Dispatch(Get("/v1/functions", "Bearer written-by-the-cli-0123")).status, 200);
}

TEST_F(AuthGateTest, RevokedKeysStopAtOnce) {
  auto key = registry_.Create("");
  ASSERT_TRUE(key);
  ASSERT_TRUE(registry_.Revoke(key->id));
  EXPECT_EQ(Dispatch(Get("/v1/functions", "Bearer " + key->secret)).status, 401);
}

TEST_F(AuthGateTest, LambdaPathsTakeSigV4InAwsShape) {
  auto key = registry_.Create("");
  ASSERT_TRUE(key);
  const HttpResponse missing = Dispatch(Get("/2015-03-31/functions/"));
  EXPECT_EQ(missing.status, 403);
  EXPECT_EQ(Header(missing, "X-Amzn-ErrorType"), "MissingAuthenticationTokenException");
  EXPECT_NE(missing.body.find(R"("Type":"User")"), std::string::npos);
  EXPECT_NE(missing.body.find(R"("message":)"), std::string::npos);
  EXPECT_NE(missing.body.find(R"("Message":)"), std::string::npos);
  // A bearer key is not a signature.
  const HttpResponse bearer = Dispatch(Get("/2015-03-31/functions/", "Bearer " + key->secret));
  EXPECT_EQ(bearer.status, 403);
  EXPECT_EQ(Header(bearer, "X-Amzn-ErrorType"), "IncompleteSignatureException");

  // Signed with the key at the clock's time: through (then 404, no such route here).
  HttpRequest signed_request = Get("/2015-03-31/functions/");
  const std::string amz_date = auth::FormatAmzDate(clock_.WallNow());
  signed_request.headers["host"] = "127.0.0.1:1";
  signed_request.headers["x-amz-date"] = amz_date;
  const std::string scope = amz_date.substr(0, 8) + "/us-east-1/lambda/aws4_request";
  const auth::SignedRequest view{"GET", signed_request.path, "", &signed_request.headers, ""};
  const std::string signature = auth::Hex(auth::HmacSha256(
      auth::SigningKey(key->secret, amz_date.substr(0, 8), "us-east-1", "lambda"),
      auth::StringToSign(
          amz_date, scope,
          auth::CanonicalRequest(view, {"host", "x-amz-date"}, auth::Sha256Hex("")))));
  signed_request.headers["authorization"] =
      "AWS4-HMAC-SHA256 Credential=" + key->id + "/" + scope +
      ", SignedHeaders=host;x-amz-date, Signature=" + signature;
  EXPECT_EQ(Dispatch(signed_request).status, 404);

  HttpRequest unknown = signed_request;
  unknown.headers["authorization"].replace(unknown.headers["authorization"].find(key->id), 20,
                                           "WKUNKNOWNUNKNOWNUNKN");
  const HttpResponse unrecognized = Dispatch(unknown);
  EXPECT_EQ(unrecognized.status, 403);
  EXPECT_EQ(Header(unrecognized, "X-Amzn-ErrorType"), "UnrecognizedClientException");
}

TEST_F(AuthGateTest, ConcurrentMissesShareOneReload) {
  AuthGate gate(io_, workers_, registry_, clock_,
                AuthGateOptions{"us-east-1", std::chrono::hours(1), std::chrono::milliseconds(1),
                                std::chrono::seconds(5)});
  router_.SetGate(&gate);
  const int before = store_.reads;
  constexpr int kCalls = 50;
  std::vector<HttpRequest> requests(kCalls, Get("/v1/functions", "Bearer wrong-wrong-wrong"));
  int refused = 0;
  for (auto& request : requests) {
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          const HttpResponse response = co_await router_.Dispatch(request);
          if (response.status == 401) ++refused;
        },
        asio::detached);
  }
  io_.run();
  EXPECT_EQ(refused, kCalls);
  // Fifty wrong keys at once cost one read of the store, not fifty.
  EXPECT_LE(store_.reads - before, 2);
}

}  // namespace
}  // namespace wisp::api
