// The HTTP types routes see. Routes never see Beast: they take an HttpRequest and return an
// HttpResponse, which keeps Beast in one translation unit (http_server.cc) and routes testable.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wisp/common/asio.h"
#include "wisp/common/result.h"

namespace wisp::api {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query string
  std::map<std::string, std::string> query;
  std::string raw_query;  // as sent, without '?' (a SigV4 signature covers this form)
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string body;
  std::map<std::string, std::string> params;  // captured by the route pattern (":id")
  asio::ip::address client;                   // the peer's address (a function URL's sourceIp)

  std::string_view Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string_view() : std::string_view(it->second);
  }
};

// The open end of a response that stays open after its head: an event stream (Server-Sent
// Events) or a WebSocket. Routes see only this, never Beast. Io thread only.
class Stream {
 public:
  virtual ~Stream() = default;
  // Sends one message: a WebSocket text frame, or the bytes given on an event stream. False
  // once the client is gone, or too slow: a send that cannot finish in time ends the stream.
  virtual asio::awaitable<bool> Send(std::string text) = 0;
  // Waits until `deadline`, a Wake(), or the client leaving, whichever comes first; false once
  // the stream is closed. A Wake() while not waiting ends the next wait at once.
  virtual asio::awaitable<bool> WaitUntil(std::chrono::steady_clock::time_point deadline) = 0;
  virtual void Wake() = 0;
  virtual bool open() const = 0;
};

enum class StreamKind {
  kNone,
  kEventStream,  // text/event-stream, the body ends when the connection closes
  kWebSocket,    // the request must be a WebSocket upgrade; else 426
  // Chunked transfer with the response's status, content type and headers: each Send is a
  // chunk, the last chunk follows when the route's stream returns.
  kChunked,
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  // A response that stays open: once the head (or the WebSocket handshake) is sent, `stream`
  // runs until it returns or the client leaves; then the connection closes. `status` and
  // `body` are unused.
  StreamKind stream_kind = StreamKind::kNone;
  std::function<asio::awaitable<void>(Stream&)> stream;
};

// {"error": message} with the status.
HttpResponse ErrorResponse(int status, std::string_view message);
// The HTTP status for an expected failure.
int HttpStatusFor(ErrorCode code);
HttpResponse ErrorResponse(const Error& error);
HttpResponse JsonResponse(int status, std::string body);

using Handler = std::function<asio::awaitable<HttpResponse>(HttpRequest&)>;

// A layer every request passes before routing (authentication): nullopt lets the request
// through, a response refuses it. Runs on the io thread.
class RequestGate {
 public:
  virtual ~RequestGate() = default;
  virtual asio::awaitable<std::optional<HttpResponse>> Admit(HttpRequest& request) = 0;
};

// Maps METHOD + path pattern ("/v1/functions/:id/invoke") to a handler. A path that matches
// with another method is 405; no match is 404.
class Router {
 public:
  void Add(std::string method, std::string pattern, Handler handler);
  asio::awaitable<HttpResponse> Dispatch(HttpRequest& request) const;
  // Every request passes `gate` first, whether a route matches or not (so a refused caller
  // learns nothing of which routes exist). None by default: then routing costs nothing more.
  void SetGate(RequestGate* gate) { gate_ = gate; }
  // Every request whose path is `prefix` or starts with `prefix` + '/', whatever its method,
  // goes to `handler` (after the gate): the function URLs' /fn tree.
  void AddPrefix(std::string prefix, Handler handler);
  // Every request whose Host header `matches` goes to `handler` (after the gate, before the
  // prefixes and routes): a project's own host name.
  void AddHostRoute(std::function<bool(std::string_view host)> matches, Handler handler);

  // A route whose requests may be larger than the server's limit (a deployment package), or
  // whose too-large answer is its API's own. Read by the server before the body is: only for a
  // request that declares a body over the server's limit, or declares no length (chunked), so
  // other requests pay nothing for it.
  struct BodyPolicy {
    std::optional<uint64_t> max_bytes;  // nullopt: the server's limit
    // The answer to a body over the limit (given the limit); null: the server's own.
    std::function<HttpResponse(uint64_t max_bytes)> too_large;
  };
  void SetBodyPolicy(std::string method, std::string pattern, BodyPolicy policy);
  const BodyPolicy* BodyPolicyFor(std::string_view method, std::string_view path) const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;
    Handler handler;
  };
  struct PolicyEntry {
    std::string method;
    std::vector<std::string> segments;
    BodyPolicy policy;
  };
  std::vector<Route> routes_;
  std::vector<std::pair<std::string, Handler>> prefixes_;
  std::vector<std::pair<std::function<bool(std::string_view)>, Handler>> host_routes_;
  std::vector<PolicyEntry> body_policies_;
  RequestGate* gate_ = nullptr;
};

// Splits "a=1&b=two%20words" into decoded pairs.
std::map<std::string, std::string> ParseQuery(std::string_view query);
std::string PercentDecode(std::string_view s);

// The caller's X-Amzn-Trace-Id when it is one a runtime can carry (at most 256 bytes, printable
// ASCII), for the function to see as Lambda-Runtime-Trace-Id; else empty.
std::string CallerTraceId(const HttpRequest& request);

// The request's body is JSON (or declares nothing, or is form-encoded the way `curl -d` sends
// JSON by default); false for any other declared content type.
bool AcceptsJsonBody(const HttpRequest& request);

}  // namespace wisp::api
