#include "wisp/api/auth_gate.h"

#include <spdlog/spdlog.h>

#include "wisp/api/console_assets.h"
#include "wisp/common/json_text.h"

namespace wisp::api {
namespace {

constexpr std::string_view kBearerChallenge = R"(Bearer realm="wisp")";
constexpr std::string_view kInvalidTokenChallenge = R"(Bearer realm="wisp", error="invalid_token")";

HttpResponse Unauthorized(std::string_view message, std::string_view challenge) {
  HttpResponse response = ErrorResponse(401, message);
  response.headers.emplace_back("WWW-Authenticate", std::string(challenge));
  return response;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// The token of "Bearer <token>" (the scheme's name is case-insensitive, RFC 9110 §11.1), or
// nullopt for another scheme.
std::optional<std::string_view> BearerToken(std::string_view header) {
  constexpr std::string_view kScheme = "bearer ";
  if (header.size() < kScheme.size()) return std::nullopt;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return std::nullopt;
  }
  std::string_view token = header.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  return token;
}

// A browser cannot set headers on a WebSocket handshake, only the subprotocols it offers: the
// secret may come as the offer "wisp.bearer.<secret>" (beside "wisp", the protocol the server
// then picks), kept out of URLs and so out of access logs.
std::optional<std::string_view> WebSocketBearerToken(const HttpRequest& request) {
  constexpr std::string_view kPrefix = "wisp.bearer.";
  std::string_view offers = request.Header("sec-websocket-protocol");
  while (!offers.empty()) {
    const size_t comma = offers.find(',');
    std::string_view offer = offers.substr(0, comma);
    offers = comma == std::string_view::npos ? std::string_view() : offers.substr(comma + 1);
    while (!offer.empty() && offer.front() == ' ') offer.remove_prefix(1);
    while (!offer.empty() && offer.back() == ' ') offer.remove_suffix(1);
    if (offer.substr(0, kPrefix.size()) == kPrefix) return offer.substr(kPrefix.size());
  }
  return std::nullopt;
}

}  // namespace

HttpResponse AwsErrorResponse(int status, std::string_view type, std::string_view message) {
  HttpResponse response;
  response.status = status;
  const std::string text = JsonString(message);
  response.body = fmt::format(R"({{"Type":"User","message":{},"Message":{}}})", text, text);
  response.headers.emplace_back("X-Amzn-ErrorType", std::string(type));
  return response;
}

AuthGate::AuthGate(asio::io_context& io, asio::thread_pool& workers, auth::KeyRegistry& keys,
                   const Clock& clock, AuthGateOptions options)
    : io_(io),
      workers_(workers),
      keys_(keys),
      clock_(clock),
      options_(std::move(options)),
      verifier_(auth::SigV4Options{options_.region}),
      next_reload_done_(std::make_shared<Event>(io.get_executor())) {}

void AuthGate::Start() { asio::co_spawn(io_, ReloadPeriodically(), asio::detached); }

bool AuthGate::IsAwsPath(std::string_view path) {
  // "/YYYY-MM-DD" then the end or '/'.
  if (path.size() < 11 || path[0] != '/') return false;
  for (size_t i = 1; i <= 10; ++i) {
    const bool dash = i == 5 || i == 8;
    if (dash ? path[i] != '-' : !IsDigit(path[i])) return false;
  }
  return path.size() == 11 || path[11] == '/';
}

asio::awaitable<std::optional<HttpResponse>> AuthGate::Admit(HttpRequest& request) {
  if (IsAwsPath(request.path)) co_return co_await AdmitSigned(request);
  if (IsConsolePath(request.method, request.path)) co_return std::nullopt;
  if (is_public_ && is_public_(request)) co_return std::nullopt;
  co_return co_await AdmitBearer(request);
}

asio::awaitable<std::optional<HttpResponse>> AuthGate::AdmitBearer(HttpRequest& request) {
  const auto header = request.headers.find("authorization");
  std::optional<std::string_view> token;
  if (header == request.headers.end()) token = WebSocketBearerToken(request);
  if (header == request.headers.end() && !token) {
    if (request.path == "/health" && request.method == "GET") {
      co_return JsonResponse(200, R"({"status":"ok","data":{"status":"ok"}})");
    }
    // Readiness says one word, for load balancers, which hold no key.
    if (request.path == "/health/ready" && request.method == "GET") co_return std::nullopt;
    co_return Unauthorized(
        "authentication required: send \"Authorization: Bearer <secret>\" with a Wisp API key "
        "(create one with `wispd keys create`)",
        kBearerChallenge);
  }
  if (!token) token = BearerToken(header->second);
  if (!token || token->empty()) {
    co_return Unauthorized(
        "the Authorization header must be \"Bearer <secret>\" (AWS signatures are for the "
        "Lambda API's paths, /2015-03-31/...)",
        kBearerChallenge);
  }
  if (keys_.Snapshot()->FindBySecret(*token) != nullptr) co_return std::nullopt;
  // Perhaps a key created a moment ago by another process.
  co_await AwaitFreshKeys();
  if (keys_.Snapshot()->FindBySecret(*token) != nullptr) co_return std::nullopt;
  co_return Unauthorized("invalid API key (revoked, or never issued)", kInvalidTokenChallenge);
}

asio::awaitable<std::optional<HttpResponse>> AuthGate::AdmitSigned(HttpRequest& request) {
  const auth::SignedRequest view{request.method, request.path, request.raw_query, &request.headers,
                                 request.body};
  for (int attempt = 0;; ++attempt) {
    // Held for the whole verification: the secret it returns lives in this snapshot.
    const std::shared_ptr<const auth::KeySet> keys = keys_.Snapshot();
    const auto secret_of = [&keys](std::string_view id) -> const std::string* {
      const auth::ApiKey* key = keys->FindById(id);
      return key ? &key->secret : nullptr;
    };
    auto verified = verifier_.Verify(view, clock_.WallNow(), secret_of);
    if (verified) co_return std::nullopt;
    const bool unknown_key = verified.error().type == auth::kUnrecognizedClient &&
                             request.headers.count("x-amz-security-token") == 0;
    if (unknown_key && attempt == 0) {
      co_await AwaitFreshKeys();
      continue;
    }
    co_return AwsErrorResponse(403, verified.error().type, verified.error().message);
  }
}

asio::awaitable<void> AuthGate::AwaitFreshKeys() {
  const std::shared_ptr<Event> done = next_reload_done_;
  reload_wanted_ = true;
  if (!reloading_) asio::co_spawn(io_, RunReloads(), asio::detached);
  co_await done->Wait(std::chrono::steady_clock::now() + options_.miss_wait);
}

asio::awaitable<void> AuthGate::RunReloads() {
  reloading_ = true;
  while (reload_wanted_) {
    reload_wanted_ = false;
    const std::shared_ptr<Event> done =
        std::exchange(next_reload_done_, std::make_shared<Event>(io_.get_executor()));
    auto reload = [this] { return keys_.Reload(); };
    const Result<void> reloaded = co_await Offload(workers_, std::move(reload));
    if (!reloaded) spdlog::warn("cannot read the API keys: {}", reloaded.error().message);
    done->Set();
    asio::steady_timer gap(io_, options_.min_reload_gap);
    boost::system::error_code ec;
    co_await gap.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  reloading_ = false;
}

asio::awaitable<void> AuthGate::ReloadPeriodically() {
  asio::steady_timer timer(io_);
  for (;;) {
    timer.expires_after(options_.reload_interval);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    reload_wanted_ = true;
    if (!reloading_) asio::co_spawn(io_, RunReloads(), asio::detached);
  }
}

}  // namespace wisp::api
