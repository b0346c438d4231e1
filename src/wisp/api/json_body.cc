#include <simdjson.h>

#include "wisp/api/routes.h"

namespace wisp::api {

Result<void> CheckJson(std::string_view body) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element element;
  const auto error = parser.parse(body.data(), body.size()).get(element);
  if (error == simdjson::DEPTH_ERROR) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("JSON is nested too deeply (limit {} levels)", simdjson::DEFAULT_MAX_DEPTH));
  }
  if (error) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("body is not valid JSON: {}", simdjson::error_message(error)));
  }
  return {};
}

}  // namespace wisp::api
