#include "wisp/common/logging.h"

#include <memory>
#include <string>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace wisp {

void SetUpLogging(bool json, std::string_view level) {
  auto logger = spdlog::stderr_logger_mt("wisp");
  if (json) {
    // One JSON object a line; the message is the last field so it may hold anything spdlog
    // escapes for us (%v is not escaped, so messages must not carry raw quotes: the callers
    // log ids and numbers, and user text only through JsonString).
    logger->set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","thread":%t,"message":"%v"})",
        spdlog::pattern_time_type::utc);
  } else {
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %v");
  }
  logger->set_level(spdlog::level::from_str(std::string(level)));
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace wisp
