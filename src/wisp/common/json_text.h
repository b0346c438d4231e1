// Helpers for building JSON text by hand on the hot path, where a DOM would cost a copy.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace wisp {

// Appends `s` as a quoted JSON string, escaping what RFC 8259 requires. Invalid UTF-8 bytes
// are replaced with U+FFFD so the output is always valid JSON.
void AppendJsonString(std::string& out, std::string_view s);

std::string JsonString(std::string_view s);

// Appends `strings` as a JSON array of strings (invocation logs, mostly).
void AppendJsonStringArray(std::string& out, const std::vector<std::string>& strings);

}  // namespace wisp
