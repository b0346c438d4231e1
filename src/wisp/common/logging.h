// Process-wide logging set-up: readable text by default, JSON lines when asked.
#pragma once

#include <string_view>

namespace wisp {

void SetUpLogging(bool json, std::string_view level);

}  // namespace wisp
