#include "wisp/api/program_api_format.h"

#include <array>
#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace wisp::api {
namespace {

tl::unexpected<Error> BadDuration(std::string_view text, std::string_view why) {
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("invalid duration \"{}\": {} (use Go's format, e.g. \"30s\", "
                               "\"1m30s\", \"500ms\")",
                               text, why));
}

// Nanoseconds per unit; 0 for an unknown unit.
int64_t UnitNanos(std::string_view unit) {
  if (unit == "ns") return 1;
  if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") return 1'000;  // µ, μ
  if (unit == "ms") return 1'000'000;
  if (unit == "s") return 1'000'000'000;
  if (unit == "m") return 60'000'000'000;
  if (unit == "h") return 3'600'000'000'000;
  return 0;
}

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Base64Value of every byte, for the fast path of DecodeBase64.
const std::array<int8_t, 256>& Base64Table() {
  static const std::array<int8_t, 256> table = [] {
    std::array<int8_t, 256> t{};
    for (int c = 0; c < 256; ++c) t[c] = static_cast<int8_t>(Base64Value(static_cast<char>(c)));
    return t;
  }();
  return table;
}

}  // namespace

Result<std::chrono::nanoseconds> ParseGoDuration(std::string_view text) {
  std::string_view s = text;
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return std::chrono::nanoseconds(0);
  if (s.empty()) return BadDuration(text, "it is empty");
  long double total = 0;
  while (!s.empty()) {
    size_t i = 0;
    long double value = 0;
    bool digits = false;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      value = value * 10 + (s[i] - '0');
      digits = true;
      ++i;
    }
    if (i < s.size() && s[i] == '.') {
      ++i;
      long double scale = 0.1L;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        value += (s[i] - '0') * scale;
        scale /= 10;
        digits = true;
        ++i;
      }
    }
    if (!digits) return BadDuration(text, "expected a number");
    size_t j = i;
    while (j < s.size() && s[j] != '.' && !(s[j] >= '0' && s[j] <= '9')) ++j;
    if (j == i) return BadDuration(text, "a number has no unit");
    const int64_t unit = UnitNanos(s.substr(i, j - i));
    if (unit == 0) {
      return BadDuration(text, fmt::format("unknown unit \"{}\"", s.substr(i, j - i)));
    }
    total += value * unit;
    if (total > static_cast<long double>(std::numeric_limits<int64_t>::max())) {
      return BadDuration(text, "it is too long");
    }
    s.remove_prefix(j);
  }
  const auto nanos = static_cast<int64_t>(std::llround(total));
  return std::chrono::nanoseconds(negative ? -nanos : nanos);
}

std::string FormatGoDuration(std::chrono::nanoseconds d) {
  int64_t n = d.count();
  if (n == 0) return "0s";
  std::string sign = n < 0 ? "-" : "";
  const uint64_t u = n < 0 ? static_cast<uint64_t>(-(n + 1)) + 1 : static_cast<uint64_t>(n);
  auto fraction = [](uint64_t value, uint64_t scale) {
    // value / scale with the fraction's trailing zeros dropped, as Go prints it.
    std::string out = std::to_string(value / scale);
    uint64_t rest = value % scale;
    if (rest == 0) return out;
    std::string digits = std::to_string(rest);
    digits.insert(0, std::to_string(scale).size() - 1 - digits.size(), '0');
    while (!digits.empty() && digits.back() == '0') digits.pop_back();
    return out + "." + digits;
  };
  if (u < 1'000) return sign + std::to_string(u) + "ns";
  if (u < 1'000'000) return sign + fraction(u, 1'000) + "\xC2\xB5s";
  if (u < 1'000'000'000) return sign + fraction(u, 1'000'000) + "ms";
  const uint64_t hours = u / 3'600'000'000'000ULL;
  const uint64_t minutes = (u / 60'000'000'000ULL) % 60;
  const std::string seconds = fraction(u % 60'000'000'000ULL, 1'000'000'000) + "s";
  if (hours > 0) return fmt::format("{}{}h{}m{}", sign, hours, minutes, seconds);
  if (minutes > 0) return fmt::format("{}{}m{}", sign, minutes, seconds);
  return sign + seconds;
}

Result<std::string> DecodeBase64(std::string_view text) {
  std::string out;
  // The fast path: whole groups of four alphabet characters (a package's tens of MB are), up to
  // the first group holding anything else; the byte-at-a-time loop below takes the rest.
  const auto& table = Base64Table();
  out.resize(text.size() / 4 * 3);
  char* written = out.data();
  size_t i = 0;
  for (; i + 4 <= text.size(); i += 4) {
    const int a = table[static_cast<uint8_t>(text[i])];
    const int b = table[static_cast<uint8_t>(text[i + 1])];
    const int c = table[static_cast<uint8_t>(text[i + 2])];
    const int d = table[static_cast<uint8_t>(text[i + 3])];
    if ((a | b | c | d) < 0) break;
    const uint32_t group = static_cast<uint32_t>(a << 18 | b << 12 | c << 6 | d);
    *written++ = static_cast<char>(group >> 16);
    *written++ = static_cast<char>((group >> 8) & 0xff);
    *written++ = static_cast<char>(group & 0xff);
  }
  out.resize(static_cast<size_t>(written - out.data()));
  out.reserve(text.size() / 4 * 3 + 3);
  uint32_t buffer = 0;
  int bits = 0;
  size_t padding = 0;
  size_t symbols = i;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      ++padding;
      if (padding > 2) {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("code is not valid base64: too much padding at offset {}", i));
      }
      continue;
    }
    const int value = Base64Value(c);
    if (value < 0 || padding > 0) {
      return MakeError(
          ErrorCode::kInvalidArgument,
          fmt::format("code is not valid base64: unexpected character '{}' at offset {}",
                      (c >= 0x20 && c < 0x7f) ? std::string(1, c)
                                              : fmt::format("\\x{:02x}", static_cast<uint8_t>(c)),
                      i));
    }
    ++symbols;
    buffer = (buffer << 6) | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  if (symbols % 4 == 1) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "code is not valid base64: its length is not a whole number of bytes");
  }
  if (padding > 0 && (symbols + padding) % 4 != 0) {
    return MakeError(ErrorCode::kInvalidArgument, "code is not valid base64: wrong padding");
  }
  return out;
}

}  // namespace wisp::api
