// AuthGate: the authentication layer in front of every route, installed only when auth is
// required (Router::SetGate); without it no request pays anything for authentication.
//
// Which scheme a request must use is decided by its path alone:
// - AWS-style paths, those whose first segment is a date (YYYY-MM-DD: "/2015-03-31/functions",
//   "/2016-08-19/account-settings", "/2017-03-31/tags/...", "/2018-10-31/layers",
//   "/2021-10-31/functions/.../url"), are the Lambda API's: AWS Signature Version 4 with a
//   Wisp key, errors in AWS's shape (403, X-Amzn-ErrorType).
// - Every other path (/v1, the program API, anything added later) takes
//   "Authorization: Bearer <secret>", errors in /v1's shape (401, WWW-Authenticate: Bearer).
//   A WebSocket handshake without that header may offer the subprotocol "wisp.bearer.<secret>"
//   instead (browsers cannot set headers on one); the server then answers with "wisp".
// - The web console's static files (GET /, /console/{file}) need no credentials: the page
//   must load to ask its user for a key, and it holds no data.
// - GET /health without credentials is answered here with liveness only ({"status":"ok"}), so
//   load balancers and the e2e fixture can probe it; its counters need a key.
//
// Keys come from a KeyRegistry snapshot (no store access on the request path). The store is
// re-read every second, so keys created or revoked by `wispd keys` in another process take
// effect within about a second; a request with an unknown key also waits (at most
// kMissWait) for a reload that starts after it arrived, so a key created a moment ago works at
// once. Reloads run one at a time, at least kMinReloadGap apart: wrong keys cannot load the
// store.
//
// Thread rules: the io thread only.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string_view>

#include "wisp/api/http.h"
#include "wisp/auth/api_keys.h"
#include "wisp/auth/sigv4.h"
#include "wisp/common/asio.h"
#include "wisp/common/clock.h"

namespace wisp::api {

struct AuthGateOptions {
  std::string region;  // the region SigV4 credential scopes must name
  std::chrono::milliseconds reload_interval = std::chrono::seconds(1);
  std::chrono::milliseconds min_reload_gap = std::chrono::milliseconds(100);
  std::chrono::milliseconds miss_wait = std::chrono::seconds(2);
};

class AuthGate final : public RequestGate {
 public:
  AuthGate(asio::io_context& io, asio::thread_pool& workers, auth::KeyRegistry& keys,
           const Clock& clock, AuthGateOptions options);
  AuthGate(const AuthGate&) = delete;
  AuthGate& operator=(const AuthGate&) = delete;

  // Starts the periodic reload of the stored keys.
  void Start();

  asio::awaitable<std::optional<HttpResponse>> Admit(HttpRequest& request) override;

  // Requests that need no key: a function URL whose AuthType is NONE. Asked before the Bearer
  // check; io thread.
  void SetPublicRequests(std::function<bool(const HttpRequest&)> is_public) {
    is_public_ = std::move(is_public);
  }

  // True for a path whose first segment is a date (YYYY-MM-DD): the Lambda API and the other
  // AWS-style APIs, which take SigV4.
  static bool IsAwsPath(std::string_view path);

 private:
  asio::awaitable<std::optional<HttpResponse>> AdmitSigned(HttpRequest& request);
  asio::awaitable<std::optional<HttpResponse>> AdmitBearer(HttpRequest& request);
  // Returns once a reload that started after this call has finished (or miss_wait passed).
  asio::awaitable<void> AwaitFreshKeys();
  asio::awaitable<void> RunReloads();
  asio::awaitable<void> ReloadPeriodically();

  asio::io_context& io_;
  asio::thread_pool& workers_;
  auth::KeyRegistry& keys_;
  const Clock& clock_;
  const AuthGateOptions options_;
  const auth::SigV4Verifier verifier_;
  std::function<bool(const HttpRequest&)> is_public_;
  bool reloading_ = false;
  bool reload_wanted_ = false;
  // Set when the next reload to start has finished.
  std::shared_ptr<Event> next_reload_done_;
};

// The AWS shape of an error: X-Amzn-ErrorType and {"Type": "User", "message": ..., "Message":
// ...}, which botocore and the other SDKs read.
HttpResponse AwsErrorResponse(int status, std::string_view type, std::string_view message);

}  // namespace wisp::api
