#include "wisp/api/function_url_format.h"

#include <cctype>
#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "wisp/api/http.h"
#include "wisp/api/lambda_api_format.h"
#include "wisp/api/program_api_format.h"

namespace wisp::api {
namespace {
using nlohmann::json;

tl::unexpected<Error> Invalid(std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message));
}

Result<std::vector<std::string>> StringList(const json& value, std::string_view field) {
  if (!value.is_array()) return Invalid(fmt::format("Cors.{} must be a list of strings", field));
  std::vector<std::string> out;
  for (const auto& item : value) {
    if (!item.is_string()) return Invalid(fmt::format("Cors.{} must be a list of strings", field));
    out.push_back(item.get<std::string>());
  }
  return out;
}

Result<FunctionUrlCors> DecodeCors(const json& cors) {
  if (!cors.is_object()) return Invalid("Cors must be an object");
  FunctionUrlCors out;
  for (const auto& [key, value] : cors.items()) {
    std::vector<std::string>* list = nullptr;
    if (key == "AllowOrigins") list = &out.allow_origins;
    if (key == "AllowMethods") list = &out.allow_methods;
    if (key == "AllowHeaders") list = &out.allow_headers;
    if (key == "ExposeHeaders") list = &out.expose_headers;
    if (list != nullptr) {
      auto items = StringList(value, key);
      if (!items) return tl::unexpected(items.error());
      *list = std::move(*items);
    } else if (key == "MaxAge") {
      if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > 86400) {
        return Invalid("Cors.MaxAge must be an integer from 0 to 86400");
      }
      out.max_age = value.get<int>();
    } else if (key == "AllowCredentials") {
      if (!value.is_boolean()) return Invalid("Cors.AllowCredentials must be a boolean");
      out.allow_credentials = value.get<bool>();
    } else {
      return Invalid(fmt::format("unknown Cors field '{}'", key));
    }
  }
  return out;
}

json CorsJson(const FunctionUrlCors& cors) {
  json out = json::object();
  if (!cors.allow_origins.empty()) out["AllowOrigins"] = cors.allow_origins;
  if (!cors.allow_methods.empty()) out["AllowMethods"] = cors.allow_methods;
  if (!cors.allow_headers.empty()) out["AllowHeaders"] = cors.allow_headers;
  if (!cors.expose_headers.empty()) out["ExposeHeaders"] = cors.expose_headers;
  if (cors.max_age) out["MaxAge"] = *cors.max_age;
  out["AllowCredentials"] = cors.allow_credentials;
  return out;
}

bool IsUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t extra = 0;
    if (c < 0x80) {
      extra = 0;
    } else if ((c & 0xE0) == 0xC0 && c >= 0xC2) {
      extra = 1;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
    } else if ((c & 0xF8) == 0xF0 && c <= 0xF4) {
      extra = 3;
    } else {
      return false;
    }
    if (i + extra >= s.size()) return false;
    for (size_t k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += extra + 1;
  }
  return true;
}

// Lambda passes these content types as text; every other body is base64.
bool IsTextual(std::string_view content_type) {
  std::string type(content_type.substr(0, content_type.find(';')));
  for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return type.starts_with("text/") || type.find("json") != std::string::npos ||
         type.find("xml") != std::string::npos || type.find("javascript") != std::string::npos ||
         type == "application/x-www-form-urlencoded";
}

// "04/Dec/2026:13:06:08 +0000", as requestContext.time.
std::string RequestTime(int64_t epoch_ms) {
  const std::time_t seconds = static_cast<std::time_t>(epoch_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[40];
  std::strftime(text, sizeof text, "%d/%b/%Y:%H:%M:%S +0000", &tm);
  return text;
}

std::string Trim(std::string_view s) {
  const size_t begin = s.find_first_not_of(" \t");
  if (begin == std::string_view::npos) return {};
  const size_t end = s.find_last_not_of(" \t");
  return std::string(s.substr(begin, end - begin + 1));
}

std::vector<std::string> SplitTrimmed(std::string_view s, char separator) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(separator, start);
    if (end == std::string_view::npos) end = s.size();
    if (std::string item = Trim(s.substr(start, end - start)); !item.empty()) {
      out.push_back(std::move(item));
    }
    start = end + 1;
  }
  return out;
}

bool ContainsIgnoringCase(const std::vector<std::string>& list, std::string_view value) {
  for (const auto& item : list) {
    if (item == "*") return true;
    if (item.size() != value.size()) continue;
    bool same = true;
    for (size_t i = 0; i < item.size() && same; ++i) {
      same = std::tolower(static_cast<unsigned char>(item[i])) ==
             std::tolower(static_cast<unsigned char>(value[i]));
    }
    if (same) return true;
  }
  return false;
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ",";
    out += item;
  }
  return out;
}

// The Access-Control-Allow-Origin value for `origin`, or empty when it is not allowed.
std::string AllowedOrigin(const FunctionUrlCors& cors, std::string_view origin) {
  if (origin.empty()) return {};
  for (const auto& allowed : cors.allow_origins) {
    if (allowed == "*") return cors.allow_credentials ? std::string(origin) : "*";
    if (allowed == origin) return std::string(origin);
  }
  return {};
}

tl::unexpected<std::string> Bad(std::string reason) { return tl::unexpected(std::move(reason)); }

// A header's name or value must not end the header line: the head is written as text.
bool IsFieldText(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

}  // namespace

Result<FunctionUrlConfig> DecodeFunctionUrlConfig(std::string_view text, FunctionUrlConfig base,
                                                  bool require_auth_type) {
  const json body = text.find_first_not_of(" \t\r\n") == std::string_view::npos
                        ? json::object()
                        : json::parse(text, nullptr, false);
  if (!body.is_object()) return Invalid("the body must be a JSON object");
  bool has_auth_type = false;
  for (const auto& [key, value] : body.items()) {
    if (key == "AuthType") {
      if (!value.is_string() || (value != "NONE" && value != "AWS_IAM")) {
        return Invalid("AuthType must be NONE or AWS_IAM");
      }
      base.auth_type = value.get<std::string>();
      has_auth_type = true;
    } else if (key == "Cors") {
      if (value.is_null()) {
        base.cors.reset();
        continue;
      }
      auto cors = DecodeCors(value);
      if (!cors) return tl::unexpected(cors.error());
      base.cors = std::move(*cors);
    } else if (key != "InvokeMode" || value != "BUFFERED") {
      // RESPONSE_STREAM is not offered: responses are buffered.
      return Invalid(key == "InvokeMode" ? "InvokeMode must be BUFFERED"
                                         : fmt::format("unknown field '{}'", key));
    }
  }
  if (require_auth_type && !has_auth_type) return Invalid("AuthType is required (NONE or AWS_IAM)");
  return base;
}

std::string EncodeStoredUrlConfig(const FunctionUrlConfig& config) {
  json out = {{"AuthType", config.auth_type},
              {"CreationTimeMs", config.created_at_ms},
              {"LastModifiedTimeMs", config.updated_at_ms}};
  if (config.cors) out["Cors"] = CorsJson(*config.cors);
  return out.dump();
}

std::optional<FunctionUrlConfig> ParseStoredUrlConfig(std::string_view text) {
  if (text.empty()) return std::nullopt;
  const json stored = json::parse(text, nullptr, false);
  if (!stored.is_object()) return std::nullopt;
  FunctionUrlConfig config;
  config.auth_type = stored.value("AuthType", "AWS_IAM");
  config.created_at_ms = stored.value("CreationTimeMs", int64_t{0});
  config.updated_at_ms = stored.value("LastModifiedTimeMs", int64_t{0});
  if (stored.contains("Cors")) {
    auto cors = DecodeCors(stored["Cors"]);
    if (cors) config.cors = std::move(*cors);
  }
  return config;
}

std::string EncodeLambdaUrlConfig(const FunctionUrlConfig& config, std::string_view url,
                                  std::string_view function_arn) {
  json out = {{"FunctionUrl", url},
              {"FunctionArn", function_arn},
              {"AuthType", config.auth_type},
              {"InvokeMode", "BUFFERED"},
              {"CreationTime", LambdaTimestamp(config.created_at_ms)},
              {"LastModifiedTime", LambdaTimestamp(config.updated_at_ms)}};
  if (config.cors) out["Cors"] = CorsJson(*config.cors);
  return out.dump();
}

std::string BuildFunctionUrlEvent(const FunctionUrlRequest& request) {
  json headers = json::object();
  json cookies = json::array();
  std::string content_type;
  std::string user_agent;
  for (const auto& [name, value] : request.headers) {
    if (name == "cookie") {
      // Payload 2.0 moves cookies out of the headers into their own list.
      for (auto& cookie : SplitTrimmed(value, ';')) cookies.push_back(std::move(cookie));
      continue;
    }
    if (name == "content-type") content_type = value;
    if (name == "user-agent") user_agent = value;
    headers[name] = value;
  }
  json event = {{"version", "2.0"},
                {"routeKey", "$default"},
                {"rawPath", request.raw_path},
                {"rawQueryString", request.raw_query},
                {"headers", headers}};
  if (!cookies.empty()) event["cookies"] = cookies;
  if (!request.raw_query.empty()) {
    // Repeated parameters are comma-joined, as Lambda does.
    json params = json::object();
    for (const auto& pair : SplitTrimmed(request.raw_query, '&')) {
      const size_t eq = pair.find('=');
      const std::string key = PercentDecode(pair.substr(0, eq));
      const std::string value = eq == std::string::npos ? "" : PercentDecode(pair.substr(eq + 1));
      if (params.contains(key)) {
        params[key] = params[key].get<std::string>() + "," + value;
      } else {
        params[key] = value;
      }
    }
    event["queryStringParameters"] = params;
  }
  event["requestContext"] = {
      {"accountId", request.account_id},
      {"apiId", request.api_id},
      {"domainName", request.domain_name},
      {"domainPrefix", request.domain_name.substr(0, request.domain_name.find('.'))},
      {"http",
       {{"method", request.method},
        {"path", request.raw_path},
        {"protocol", "HTTP/1.1"},
        {"sourceIp", request.source_ip},
        {"userAgent", user_agent}}},
      {"requestId", request.request_id},
      {"routeKey", "$default"},
      {"stage", "$default"},
      {"time", RequestTime(request.time_epoch_ms)},
      {"timeEpoch", request.time_epoch_ms}};
  if (!request.path_parameters.empty()) {
    // A project route's dynamic segments, as API Gateway passes a route's parameters.
    event["pathParameters"] = request.path_parameters;
  }
  if (!request.route_key.empty()) {
    event["routeKey"] = request.route_key;
    event["requestContext"]["routeKey"] = request.route_key;
  }
  if (!request.body.empty()) {
    const bool text = IsTextual(content_type) && IsUtf8(request.body);
    event["body"] = text ? request.body : EncodeBase64(request.body);
    event["isBase64Encoded"] = !text;
  } else {
    event["isBase64Encoded"] = false;
  }
  return event.dump();
}

tl::expected<FunctionUrlResponse, std::string> MapFunctionUrlResult(std::string_view result_json) {
  const json result = json::parse(result_json, nullptr, false);
  if (result.is_discarded()) return Bad("the function's result is not JSON");
  FunctionUrlResponse out;
  if (!result.is_object() || !result.contains("statusCode")) {
    // Lambda's inference: any JSON without a statusCode is the body of a 200.
    out.headers.emplace_back("content-type", "application/json");
    out.body = std::string(result_json);
    return out;
  }
  const json& status = result["statusCode"];
  if (!status.is_number_integer() || status.get<int64_t>() < 100 || status.get<int64_t>() > 599) {
    return Bad("statusCode must be an integer from 100 to 599");
  }
  out.status = status.get<int>();
  bool has_content_type = false;
  if (auto it = result.find("headers"); it != result.end() && !it->is_null()) {
    if (!it->is_object()) return Bad("headers must be an object of strings");
    for (const auto& [name, value] : it->items()) {
      if (!value.is_string() && !value.is_number() && !value.is_boolean()) {
        return Bad(fmt::format("header '{}' must be a string", name));
      }
      has_content_type |= ContainsIgnoringCase({"content-type"}, name);
      out.headers.emplace_back(name, value.is_string() ? value.get<std::string>() : value.dump());
      if (!IsFieldText(name) || !IsFieldText(out.headers.back().second)) {
        return Bad(fmt::format("header '{}' holds a line break", name));
      }
    }
  }
  if (auto it = result.find("multiValueHeaders"); it != result.end() && !it->is_null()) {
    if (!it->is_object()) return Bad("multiValueHeaders must be an object of lists");
    for (const auto& [name, values] : it->items()) {
      if (!values.is_array()) {
        return Bad(fmt::format("multiValueHeaders '{}' must be a list", name));
      }
      for (const auto& value : values) {
        if (!value.is_string()) {
          return Bad(fmt::format("multiValueHeaders '{}' must hold strings", name));
        }
        has_content_type |= ContainsIgnoringCase({"content-type"}, name);
        out.headers.emplace_back(name, value.get<std::string>());
        if (!IsFieldText(name) || !IsFieldText(out.headers.back().second)) {
          return Bad(fmt::format("header '{}' holds a line break", name));
        }
      }
    }
  }
  if (auto it = result.find("cookies"); it != result.end() && !it->is_null()) {
    if (!it->is_array()) return Bad("cookies must be a list of strings");
    for (const auto& cookie : *it) {
      if (!cookie.is_string()) return Bad("cookies must be a list of strings");
      out.headers.emplace_back("set-cookie", cookie.get<std::string>());
      if (!IsFieldText(out.headers.back().second)) {
        return Bad("a cookie holds a line break");
      }
    }
  }
  bool base64 = false;
  if (auto it = result.find("isBase64Encoded"); it != result.end() && !it->is_null()) {
    if (!it->is_boolean()) return Bad("isBase64Encoded must be a boolean");
    base64 = it->get<bool>();
  }
  if (auto it = result.find("body"); it != result.end() && !it->is_null()) {
    if (!it->is_string()) return Bad("body must be a string");
    if (base64) {
      auto decoded = DecodeBase64(it->get<std::string>());
      if (!decoded) return Bad("body is not valid base64 (isBase64Encoded is true)");
      out.body = std::move(*decoded);
    } else {
      out.body = it->get<std::string>();
    }
  }
  // Lambda's default for a response object that names no content type.
  if (!has_content_type) out.headers.emplace_back("content-type", "application/json");
  return out;
}

std::vector<std::pair<std::string, std::string>> CorsResponseHeaders(const FunctionUrlCors& cors,
                                                                     std::string_view origin) {
  std::vector<std::pair<std::string, std::string>> out;
  const std::string allowed = AllowedOrigin(cors, origin);
  if (allowed.empty()) return out;
  out.emplace_back("access-control-allow-origin", allowed);
  if (allowed != "*") out.emplace_back("vary", "Origin");
  if (!cors.expose_headers.empty()) {
    out.emplace_back("access-control-expose-headers", Join(cors.expose_headers));
  }
  if (cors.allow_credentials) out.emplace_back("access-control-allow-credentials", "true");
  return out;
}

FunctionUrlResponse CorsPreflight(const FunctionUrlCors& cors, std::string_view origin,
                                  std::string_view request_method,
                                  std::string_view request_headers) {
  FunctionUrlResponse out;
  out.headers.emplace_back("content-type", "text/plain");
  const std::string allowed = AllowedOrigin(cors, origin);
  if (allowed.empty() || !ContainsIgnoringCase(cors.allow_methods, request_method)) return out;
  for (const auto& header : SplitTrimmed(request_headers, ',')) {
    if (!ContainsIgnoringCase(cors.allow_headers, header)) return out;
  }
  out.headers.emplace_back("access-control-allow-origin", allowed);
  if (allowed != "*") out.headers.emplace_back("vary", "Origin");
  out.headers.emplace_back("access-control-allow-methods", Join(cors.allow_methods));
  if (!cors.allow_headers.empty()) {
    out.headers.emplace_back("access-control-allow-headers", Join(cors.allow_headers));
  }
  if (cors.max_age)
    out.headers.emplace_back("access-control-max-age", std::to_string(*cors.max_age));
  if (cors.allow_credentials) out.headers.emplace_back("access-control-allow-credentials", "true");
  return out;
}

}  // namespace wisp::api
