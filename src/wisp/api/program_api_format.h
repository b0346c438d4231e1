// The value formats of the program API: Go duration strings ("30s", "1m30s", "500ms") and
// base64-encoded code.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "wisp/common/base64.h"
#include "wisp/common/result.h"

namespace wisp::api {

// Parses a duration as Go's time.ParseDuration does: an optional sign, then one or more
// decimal numbers, each with an optional fraction and a unit (ns, us, µs, ms, s, m, h); "0"
// alone is zero. kInvalidArgument with a message that quotes the input.
Result<std::chrono::nanoseconds> ParseGoDuration(std::string_view text);

// Formats as Go's Duration.String() does ("30s", "1m30s", "1h0m0s", "500ms", "0s").
std::string FormatGoDuration(std::chrono::nanoseconds d);

// Standard base64 (RFC 4648 §4) with or without padding; whitespace (line breaks from
// `base64`) is ignored. kInvalidArgument naming the first bad character's offset.
Result<std::string> DecodeBase64(std::string_view text);

}  // namespace wisp::api
