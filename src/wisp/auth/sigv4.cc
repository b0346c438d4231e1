#include "wisp/auth/sigv4.h"

#include <time.h>

#include <algorithm>
#include <cstdlib>

namespace wisp::auth {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr std::string_view kTerminator = "aws4_request";
// More signed headers than any SDK sends; past it the request is refused before any work.
constexpr size_t kMaxSignedHeaders = 64;

tl::unexpected<AwsError> Fail(std::string_view type, std::string message) {
  return tl::unexpected(AwsError{std::string(type), std::move(message)});
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

void AppendEncoded(std::string& out, std::string_view s, bool keep_slash) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kDigits[c >> 4]);
      out.push_back(kDigits[c & 0xf]);
    }
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX only: in a query a '+' is a plus sign to SigV4 (SDKs send a space as %20).
std::string PercentDecodeStrict(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

bool AllDigits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::vector<std::string_view> Split(std::string_view s, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    const size_t end = s.find(separator, start);
    parts.push_back(s.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

const std::string* FindHeader(const SignedRequest& request, std::string_view name) {
  if (request.headers == nullptr) return nullptr;
  const auto it = request.headers->find(std::string(name));
  return it == request.headers->end() ? nullptr : &it->second;
}

}  // namespace

tl::expected<Authorization, AwsError> ParseAuthorization(std::string_view header) {
  header = Trim(header);
  if (!header.starts_with(kAlgorithm) || header.size() == kAlgorithm.size() ||
      (header[kAlgorithm.size()] != ' ')) {
    return Fail(kIncompleteSignature,
                "the Authorization header must be an AWS Signature Version 4 "
                "(AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...)");
  }
  std::string_view credential, signed_headers, signature;
  for (std::string_view part : Split(header.substr(kAlgorithm.size() + 1), ',')) {
    part = Trim(part);
    const size_t eq = part.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view name = part.substr(0, eq);
    const std::string_view value = part.substr(eq + 1);
    if (name == "Credential") credential = value;
    if (name == "SignedHeaders") signed_headers = value;
    if (name == "Signature") signature = value;
  }
  for (const auto& [name, value] :
       {std::pair{"Credential", credential}, std::pair{"SignedHeaders", signed_headers},
        std::pair{"Signature", signature}}) {
    if (value.empty()) {
      return Fail(kIncompleteSignature,
                  fmt::format("Authorization header requires '{}' parameter", name));
    }
  }
  Authorization out;
  const auto scope = Split(credential, '/');
  if (scope.size() != 5 || scope[0].empty() || scope[1].size() != 8 || !AllDigits(scope[1]) ||
      scope[2].empty() || scope[3].empty() || scope[4] != kTerminator) {
    return Fail(kIncompleteSignature,
                "the Credential must be KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request");
  }
  out.key_id = scope[0];
  out.date = scope[1];
  out.region = scope[2];
  out.service = scope[3];
  for (const std::string_view name : Split(signed_headers, ';')) {
    const bool valid = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    });
    if (!valid) {
      return Fail(kIncompleteSignature,
                  "SignedHeaders must be lower-case header names separated by ';'");
    }
    if (out.signed_headers.size() == kMaxSignedHeaders) {
      return Fail(kIncompleteSignature,
                  fmt::format("more than {} SignedHeaders", kMaxSignedHeaders));
    }
    out.signed_headers.emplace_back(name);
  }
  if (signature.size() != 64 || !std::all_of(signature.begin(), signature.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      })) {
    return Fail(kIncompleteSignature, "the Signature must be 64 lower-case hex digits");
  }
  out.signature = signature;
  return out;
}

std::string CanonicalUri(std::string_view raw_path) {
  if (raw_path.empty()) return "/";
  std::vector<std::string_view> kept;
  for (const std::string_view segment : Split(raw_path, '/')) {
    if (segment.empty() || segment == ".") continue;
    if (segment == "..") {
      if (!kept.empty()) kept.pop_back();
      continue;
    }
    kept.push_back(segment);
  }
  std::string normalized = raw_path.front() == '/' ? "/" : "";
  for (size_t i = 0; i < kept.size(); ++i) {
    if (i > 0) normalized.push_back('/');
    normalized.append(kept[i]);
  }
  if (raw_path.back() == '/' && !kept.empty()) normalized.push_back('/');
  std::string out;
  out.reserve(normalized.size() + 16);
  AppendEncoded(out, normalized, /*keep_slash=*/true);
  return out;
}

std::string CanonicalQuery(std::string_view raw_query) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const std::string_view pair : Split(raw_query, '&')) {
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    std::string name, value;
    AppendEncoded(name, PercentDecodeStrict(pair.substr(0, eq)), false);
    if (eq != std::string_view::npos) {
      AppendEncoded(value, PercentDecodeStrict(pair.substr(eq + 1)), false);
    }
    pairs.emplace_back(std::move(name), std::move(value));
  }
  std::sort(pairs.begin(), pairs.end());
  std::string out;
  for (const auto& [name, value] : pairs) {
    if (!out.empty()) out.push_back('&');
    out += name;
    out.push_back('=');
    out += value;
  }
  return out;
}

std::string CanonicalHeaderValue(std::string_view value) {
  value = Trim(value);
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (c == ' ' && !out.empty() && out.back() == ' ') continue;
    out.push_back(c);
  }
  return out;
}

std::string CanonicalRequest(const SignedRequest& request,
                             const std::vector<std::string>& signed_headers,
                             std::string_view payload_hash) {
  std::string out;
  out.reserve(256 + request.path.size() + request.query.size());
  out.append(request.method);
  out.push_back('\n');
  out += CanonicalUri(request.path);
  out.push_back('\n');
  out += CanonicalQuery(request.query);
  out.push_back('\n');
  std::string names;
  for (const std::string& name : signed_headers) {
    const std::string* value = FindHeader(request, name);
    out += name;
    out.push_back(':');
    if (value) out += CanonicalHeaderValue(*value);
    out.push_back('\n');
    if (!names.empty()) names.push_back(';');
    names += name;
  }
  out.push_back('\n');
  out += names;
  out.push_back('\n');
  out.append(payload_hash);
  return out;
}

std::string StringToSign(std::string_view amz_date, std::string_view scope,
                         std::string_view canonical_request) {
  return fmt::format("{}\n{}\n{}\n{}", kAlgorithm, amz_date, scope, Sha256Hex(canonical_request));
}

Digest SigningKey(std::string_view secret, std::string_view date, std::string_view region,
                  std::string_view service) {
  const std::string first = "AWS4" + std::string(secret);
  const Digest date_key =
      HmacSha256({reinterpret_cast<const uint8_t*>(first.data()), first.size()}, date);
  const Digest region_key = HmacSha256(date_key, region);
  const Digest service_key = HmacSha256(region_key, service);
  return HmacSha256(service_key, kTerminator);
}

std::optional<std::chrono::system_clock::time_point> ParseAmzDate(std::string_view text) {
  // YYYYMMDDTHHMMSSZ
  if (text.size() != 16 || text[8] != 'T' || text[15] != 'Z' || !AllDigits(text.substr(0, 8)) ||
      !AllDigits(text.substr(9, 6))) {
    return std::nullopt;
  }
  const auto number = [&text](size_t at, size_t length) {
    int value = 0;
    for (size_t i = at; i < at + length; ++i) value = value * 10 + (text[i] - '0');
    return value;
  };
  std::tm tm{};
  tm.tm_year = number(0, 4) - 1900;
  tm.tm_mon = number(4, 2) - 1;
  tm.tm_mday = number(6, 2);
  tm.tm_hour = number(9, 2);
  tm.tm_min = number(11, 2);
  tm.tm_sec = number(13, 2);
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60) {
    return std::nullopt;
  }
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::optional<std::chrono::system_clock::time_point> ParseHttpDate(std::string_view text) {
  // IMF-fixdate, the one form RFC 9110 senders produce: "Sun, 06 Nov 1994 08:49:37 GMT".
  if (text.size() != 29) return std::nullopt;
  const std::string copy(text);
  std::tm tm{};
  const char* end = strptime(copy.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string FormatAmzDate(std::chrono::system_clock::time_point t) {
  const time_t seconds = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  strftime(text, sizeof text, "%Y%m%dT%H%M%SZ", &tm);
  return text;
}

tl::expected<std::string, AwsError> SigV4Verifier::Verify(const SignedRequest& request,
                                                          std::chrono::system_clock::time_point now,
                                                          const SecretOf& secret_of) const {
  const std::string* header = FindHeader(request, "authorization");
  if (header == nullptr) {
    return Fail(kMissingAuthenticationToken,
                "Missing Authentication Token: the Lambda API takes requests signed with AWS "
                "Signature Version 4 with a Wisp key");
  }
  auto authorization = ParseAuthorization(*header);
  if (!authorization) return tl::unexpected(authorization.error());
  if (FindHeader(request, "x-amz-security-token") != nullptr) {
    return Fail(kUnrecognizedClient,
                "The security token included in the request is invalid: Wisp keys are "
                "long-term keys, send no session token");
  }
  const std::string* secret = secret_of(authorization->key_id);
  if (secret == nullptr) {
    return Fail(kUnrecognizedClient, "The security token included in the request is invalid.");
  }

  std::string amz_date;
  std::optional<std::chrono::system_clock::time_point> signed_at;
  if (const std::string* x_amz_date = FindHeader(request, "x-amz-date")) {
    amz_date = *x_amz_date;
    signed_at = ParseAmzDate(amz_date);
  } else if (const std::string* date = FindHeader(request, "date")) {
    signed_at = ParseHttpDate(*date);
    if (signed_at) amz_date = FormatAmzDate(*signed_at);
  } else {
    return Fail(kIncompleteSignature,
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
                "header.");
  }
  if (!signed_at) {
    return Fail(kIncompleteSignature,
                "the request's date is not in ISO 8601 basic format (X-Amz-Date: "
                "20150830T123600Z) or an HTTP date");
  }
  if (*signed_at < now - options_.max_skew) {
    return Fail(kInvalidSignature,
                fmt::format("Signature expired: {} is now earlier than {} ({} - {} min.)", amz_date,
                            FormatAmzDate(now - options_.max_skew), FormatAmzDate(now),
                            options_.max_skew.count() / 60));
  }
  if (*signed_at > now + options_.max_skew) {
    return Fail(kInvalidSignature,
                fmt::format("Signature not yet current: {} is still later than {} ({} + {} min.)",
                            amz_date, FormatAmzDate(now + options_.max_skew), FormatAmzDate(now),
                            options_.max_skew.count() / 60));
  }
  if (authorization->date != std::string_view(amz_date).substr(0, 8)) {
    return Fail(kInvalidSignature,
                fmt::format("Date in Credential scope does not match YYYYMMDD from ISO-8601 "
                            "version of date from HTTP: '{}' != '{}'",
                            authorization->date, amz_date.substr(0, 8)));
  }
  if (authorization->region != options_.region) {
    return Fail(kInvalidSignature,
                fmt::format("Credential should be scoped to a valid region: '{}', not '{}'",
                            options_.region, authorization->region));
  }
  if (authorization->service != options_.service) {
    return Fail(
        kInvalidSignature,
        fmt::format("Credential should be scoped to correct service: '{}'", options_.service));
  }
  if (std::find(authorization->signed_headers.begin(), authorization->signed_headers.end(),
                "host") == authorization->signed_headers.end()) {
    return Fail(kInvalidSignature,
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
  }

  const std::string payload_hash = Sha256Hex(request.body);
  if (const std::string* claimed = FindHeader(request, "x-amz-content-sha256")) {
    if (*claimed != payload_hash) {
      return Fail(kInvalidSignature,
                  "The provided x-amz-content-sha256 header does not match what was computed "
                  "(the Lambda API signs the payload itself: no UNSIGNED-PAYLOAD)");
    }
  }
  const std::string scope = fmt::format("{}/{}/{}/{}", authorization->date, authorization->region,
                                        authorization->service, kTerminator);
  const std::string string_to_sign = StringToSign(
      amz_date, scope, CanonicalRequest(request, authorization->signed_headers, payload_hash));
  const Digest key =
      SigningKey(*secret, authorization->date, authorization->region, authorization->service);
  const std::string expected = Hex(HmacSha256(key, string_to_sign));
  if (!ConstantTimeEquals(expected, authorization->signature)) {
    return Fail(kInvalidSignature,
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method. Consult the service "
                "documentation for details.");
  }
  return std::move(authorization->key_id);
}

}  // namespace wisp::auth
