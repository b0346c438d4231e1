// What a user asks for when creating or updating a function, validated, and how a function's
// handler names the file and the function inside it.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "wisp/common/result.h"

namespace wisp::core {

constexpr int kDefaultTimeoutSeconds = 30;
constexpr int kMinTimeoutSeconds = 1;
constexpr int kMaxTimeoutSeconds = 900;  // Lambda's limit
constexpr int kDefaultMemoryMb = 256;
constexpr int kMinMemoryMb = 128;
constexpr int kMaxMemoryMb = 10240;  // Lambda's limit
constexpr double kMinVcpu = 0.1;
constexpr double kMaxVcpu = 64;
constexpr size_t kMaxNameLength = 64;

// Every field optional: a create fills in defaults, an update changes what is present.
struct FunctionFields {
  std::optional<std::string> name;
  std::optional<std::string> runtime;
  std::optional<std::string> handler;
  std::optional<std::string> code;
  std::optional<int> timeout_seconds;
  std::optional<int> memory_mb;
  std::optional<double> vcpu;
  std::optional<std::map<std::string, std::string>> env;
};

// "node" and "python", and the aliases seeds and AWS use for them; nullopt if unknown.
std::optional<std::string> CanonicalRuntime(std::string_view runtime);

// Checks every present field (names, ranges, reserved environment variables); the message
// names the field.
Result<void> ValidateFields(const FunctionFields& fields);

// The handler as the runtime's shim receives it: "<module>.<function>", where module is a path
// relative to /var/task without extension. "handler" alone means the runtime's default module.
struct HandlerTarget {
  std::string module;    // e.g. "index", "src/app"
  std::string function;  // e.g. "handler"
  std::string file_name(std::string_view runtime) const;
  std::string ToString() const { return module + "." + function; }
};
// A clear error for a missing, empty or unsafe handler ("../", absolute paths, bad names).
Result<HandlerTarget> ParseHandler(std::string_view runtime, std::string_view handler);

}  // namespace wisp::core
