// The one shape of a failed invocation's answer, as AWS Lambda writes it and as the README
// promises: {"errorType": ..., "errorMessage": ..., "stackTrace": [...]}. Every part of wispd
// that makes up an error for a caller (a sandbox that did not start, an instance that ended, a
// function that is not ready, a runtime that broke the protocol) writes it through here, so a
// client parses one document whichever layer failed.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace wisp {

// The document as JSON text; `stack_trace` may be empty (the array is always present).
std::string LambdaErrorDocument(std::string_view error_type, std::string_view error_message,
                                const std::vector<std::string>& stack_trace = {});

}  // namespace wisp
