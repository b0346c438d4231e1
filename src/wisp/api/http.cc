#include "wisp/api/http.h"

#include <cctype>

#include "wisp/common/json_text.h"

namespace wisp::api {
namespace {

// The segments of `path`, viewing into it.
std::vector<std::string_view> SplitPathViews(std::string_view path) {
  std::vector<std::string_view> segments;
  size_t start = 0;
  while (start < path.size()) {
    if (path[start] == '/') {
      ++start;
      continue;
    }
    const size_t end = std::min(path.find('/', start), path.size());
    segments.push_back(path.substr(start, end - start));
    start = end;
  }
  return segments;
}

std::vector<std::string> SplitPath(std::string_view path) {
  const std::vector<std::string_view> views = SplitPathViews(path);
  return std::vector<std::string>(views.begin(), views.end());
}

// The pattern's ":name" segments match any one segment.
bool MatchesPattern(const std::vector<std::string>& pattern,
                    const std::vector<std::string_view>& segments) {
  if (pattern.size() != segments.size()) return false;
  for (size_t i = 0; i < segments.size(); ++i) {
    if (!pattern[i].starts_with(':') && pattern[i] != segments[i]) return false;
  }
  return true;
}

}  // namespace

HttpResponse ErrorResponse(int status, std::string_view message) {
  HttpResponse response;
  response.status = status;
  response.body = "{\"error\":" + JsonString(message) + "}";
  return response;
}

int HttpStatusFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return 400;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kAlreadyExists:
      return 409;
    case ErrorCode::kFailedPrecondition:
      return 409;
    case ErrorCode::kConflict:
      return 409;
    case ErrorCode::kTooLarge:
      return 413;
    case ErrorCode::kResourceExhausted:
      return 429;
    case ErrorCode::kUnavailable:
      return 503;
    case ErrorCode::kTimeout:
      return 504;
    case ErrorCode::kInternal:
      return 500;
  }
  return 500;
}

HttpResponse ErrorResponse(const Error& error) {
  HttpResponse response = ErrorResponse(HttpStatusFor(error.code), error.message);
  if (error.code == ErrorCode::kResourceExhausted || error.code == ErrorCode::kUnavailable) {
    response.headers.emplace_back("Retry-After", "1");
  }
  return response;
}

HttpResponse JsonResponse(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

void Router::Add(std::string method, std::string pattern, Handler handler) {
  routes_.push_back(Route{std::move(method), SplitPath(pattern), std::move(handler)});
}

void Router::SetBodyPolicy(std::string method, std::string pattern, BodyPolicy policy) {
  body_policies_.push_back(PolicyEntry{std::move(method), SplitPath(pattern), std::move(policy)});
}

const Router::BodyPolicy* Router::BodyPolicyFor(std::string_view method,
                                                std::string_view path) const {
  if (body_policies_.empty()) return nullptr;
  const auto segments = SplitPathViews(path);
  for (const auto& entry : body_policies_) {
    if (entry.method == method && MatchesPattern(entry.segments, segments)) return &entry.policy;
  }
  return nullptr;
}

void Router::AddPrefix(std::string prefix, Handler handler) {
  prefixes_.emplace_back(std::move(prefix), std::move(handler));
}

void Router::AddHostRoute(std::function<bool(std::string_view host)> matches, Handler handler) {
  host_routes_.emplace_back(std::move(matches), std::move(handler));
}

asio::awaitable<HttpResponse> Router::Dispatch(HttpRequest& request) const {
  if (gate_ != nullptr) {
    std::optional<HttpResponse> refusal = co_await gate_->Admit(request);
    if (refusal) co_return std::move(*refusal);
  }
  for (const auto& [matches, handler] : host_routes_) {
    if (matches(request.Header("host"))) co_return co_await handler(request);
  }
  for (const auto& [prefix, handler] : prefixes_) {
    if (request.path.starts_with(prefix) &&
        (request.path.size() == prefix.size() || request.path[prefix.size()] == '/')) {
      co_return co_await handler(request);
    }
  }
  // Views into request.path, which no route changes (and they are not used once one runs).
  const auto segments = SplitPathViews(request.path);
  std::string allowed;  // the methods of the routes whose pattern matches, for a 405's Allow
  for (const auto& route : routes_) {
    if (!MatchesPattern(route.segments, segments)) continue;
    if (route.method != request.method) {
      if (allowed.find(route.method) == std::string::npos) {
        allowed += allowed.empty() ? route.method : ", " + route.method;
      }
      continue;
    }
    // Captured only for the route that runs: decoding for every candidate cost allocations.
    std::map<std::string, std::string> params;
    for (size_t i = 0; i < segments.size(); ++i) {
      if (route.segments[i].starts_with(':')) {
        params[route.segments[i].substr(1)] = PercentDecode(segments[i]);
      }
    }
    request.params = std::move(params);
    co_return co_await route.handler(request);
  }
  if (!allowed.empty()) {
    // RFC 9110 §15.5.6: a 405 names the methods the resource does support.
    HttpResponse response =
        ErrorResponse(405, fmt::format("method {} not allowed on {} (allowed: {})", request.method,
                                       request.path, allowed));
    response.headers.emplace_back("Allow", std::move(allowed));
    co_return response;
  }
  co_return ErrorResponse(404,
                          fmt::format("no such endpoint: {} {}", request.method, request.path));
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::map<std::string, std::string> ParseQuery(std::string_view query) {
  std::map<std::string, std::string> out;
  size_t start = 0;
  while (start < query.size()) {
    const size_t end = std::min(query.find('&', start), query.size());
    const std::string_view pair = query.substr(start, end - start);
    const size_t eq = pair.find('=');
    if (!pair.empty()) {
      out[PercentDecode(pair.substr(0, eq))] =
          eq == std::string_view::npos ? std::string() : PercentDecode(pair.substr(eq + 1));
    }
    start = end + 1;
  }
  return out;
}

std::string CallerTraceId(const HttpRequest& request) {
  constexpr size_t kMaxTraceIdBytes = 256;
  const auto it = request.headers.find("x-amzn-trace-id");
  if (it == request.headers.end() || it->second.size() > kMaxTraceIdBytes) return {};
  for (const char c : it->second) {
    if (c < ' ' || c > '~') return {};
  }
  return it->second;
}

bool AcceptsJsonBody(const HttpRequest& request) {
  std::string_view type = request.Header("content-type");
  if (type.empty()) return true;
  type = type.substr(0, type.find(';'));
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  return type == "application/json" || type == "text/json" ||
         (type.starts_with("application/") && type.ends_with("+json")) ||
         type == "application/x-www-form-urlencoded";
}

}  // namespace wisp::api
