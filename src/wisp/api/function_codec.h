// FunctionCodec: a function's fields in and out of JSON, for every API that has them. /v1 and the
// program API (whole programs at root paths) describe the same function; they differ only in
// how a few fields are spelled (`env` / `environment`, `timeout_seconds` / a Go duration
// `timeout`, code as text / base64) and which envelope they use, which the routes own. Both
// refuse a field they do not know, naming it and the field it most likely meant, instead of
// storing defaults the caller did not ask for.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "wisp/api/http.h"
#include "wisp/core/function_spec.h"
#include "wisp/core/runtime_catalog.h"
#include "wisp/store/records.h"

namespace wisp::api {

enum class FunctionApi {
  kV1,       // /v1/functions
  kProgram,  // /functions: whole programs, base64 code, Go durations
};

// Reads a create or update body, a JSON object. kInvalidArgument naming every unknown or
// read-only field (with the likely intended one) or the first field of the wrong type.
Result<core::FunctionFields> DecodeFunctionFields(FunctionApi api, const nlohmann::json& body);

// The function as `api` shows it. A listing passes with_code = false: code can be megabytes per
// function, and a list is for finding one.
nlohmann::json EncodeFunction(FunctionApi api, const store::FunctionRecord& record,
                              const core::RuntimeCatalog& runtimes, bool with_code);

// The runtime as `api` names it (the program API says "nodejs" where /v1 says "node").
std::string_view RuntimeWord(FunctionApi api, std::string_view runtime);

// The field a caller most likely meant by `unknown` among `accepted`: the same name spelled
// in another case or style (memorySize, Runtime), a name other platforms use (environment,
// timeout), or a near miss (memroy_mb); empty when nothing is close.
std::string_view LikelyField(std::string_view unknown,
                             const std::vector<std::string_view>& accepted);

// kInvalidArgument naming every query parameter not in `accepted`, so a misspelt filter is not
// silently ignored.
Result<void> CheckQueryParameters(const HttpRequest& request,
                                  const std::vector<std::string_view>& accepted);

}  // namespace wisp::api
