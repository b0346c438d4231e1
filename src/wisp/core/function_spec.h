// What a user asks for when creating or updating a function, validated, and how a function's
// handler names the file and the function inside it.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "wisp/common/result.h"
#include "wisp/core/runtime_catalog.h"

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
constexpr size_t kMaxCustomHandlerLength = 128;  // Lambda's limit for the Handler field
// Asynchronous invocations: AWS Lambda's defaults; a zero delay is allowed for tests.
constexpr int kDefaultMaxRetries = 2;
constexpr int kMaxMaxRetries = 10;
constexpr int kDefaultRetryDelaySeconds = 60;
constexpr int kMaxRetryDelaySeconds = 86400;
constexpr int kDefaultMaxEventAgeSeconds = 21600;
constexpr int kMaxMaxEventAgeSeconds = 7 * 86400;
constexpr int kDefaultMaxConcurrency = 100;
constexpr int kMaxMaxConcurrency = 10000;
// Calls one instance serves at once: 1 is Lambda's model; more is Lambda Managed Instances'
// (PerExecutionEnvironmentMaxConcurrency, up to 1,600), further capped per node
// (max_instance_concurrency).
constexpr int kDefaultInstanceConcurrency = 1;
constexpr int kMaxInstanceConcurrency = 1600;
constexpr size_t kMaxVersionLabelLength = 64;
constexpr size_t kMaxMetadataBytes = 64 << 10;
// Lambda's limits.
constexpr size_t kMaxDescriptionLength = 256;
constexpr size_t kMaxTags = 50;
constexpr size_t kMaxTagKeyLength = 128;
constexpr size_t kMaxTagValueLength = 256;

// Every field optional: a create fills in defaults, an update changes what is present.
struct FunctionFields {
  std::optional<std::string> name;
  std::optional<std::string> runtime;
  std::optional<std::string> handler;
  std::optional<std::string> code;
  // A deployment package: the bytes of a zip (code::UnpackZipInto says what it may hold). The
  // alternative to `code`; the handler names a file inside it.
  std::optional<std::string> zip;
  std::optional<int> timeout_seconds;
  std::optional<int> memory_mb;
  std::optional<double> vcpu;
  std::optional<std::map<std::string, std::string>> env;
  std::optional<std::string> style;  // "handler" | "program"
  std::optional<int> max_retries;
  std::optional<int> retry_delay_seconds;
  std::optional<int> max_event_age_seconds;
  std::optional<int> max_concurrency;
  std::optional<int> min_instances;
  std::optional<int> instance_concurrency;
  std::optional<std::string> metadata_json;  // a JSON object, checked by the API layer
  std::optional<std::string> version_label;
  std::optional<std::string> network;  // "none" | "outbound"
  std::optional<std::string> description;
  std::optional<std::map<std::string, std::string>> tags;  // replaces every tag
  // The function URL's stored configuration (checked by the API layer); "" removes the URL.
  std::optional<std::string> url_config_json;
  // The project (core/projects.h), given at create only: `name` is then the name in the
  // project. An update may not move a function to another project.
  std::optional<std::string> project;
  std::optional<std::string> file_path;  // its project file, which makes its route
  std::optional<bool> active;            // false: disabled, no API runs it
  // The function's schedules' stored JSON (checked by the API layer, schedule::DecodeSchedules);
  // "" removes them all.
  std::optional<std::string> schedules_json;
};

// Checks every present field (names, ranges, reserved environment variables, a runtime the
// catalog knows); the message names the field.
Result<void> ValidateFields(const FunctionFields& fields, const RuntimeCatalog& runtimes);

// The handler as the runtime's shim receives it: "<module>.<function>", where module is a path
// relative to /var/task without extension. "handler" alone means the runtime's default module.
// A custom runtime's handler means whatever its bootstrap makes of it: kept as given.
struct HandlerTarget {
  std::string module;    // e.g. "index", "src/app"; empty for a custom runtime
  std::string function;  // e.g. "handler"; a custom runtime's whole handler
  // The file the function's code must hold: the handler's module, or a custom runtime's
  // bootstrap.
  std::string file_name(const RuntimeEntry& runtime) const {
    if (runtime.custom()) return runtime.bootstrap;
    return module + runtime.source_extension;
  }
  std::string ToString() const { return module.empty() ? function : module + "." + function; }
};
// A clear error for a missing, empty or unsafe handler ("../", absolute paths, bad names). A
// custom runtime's handler only has to be what Lambda accepts: up to 128 characters, no white
// space.
Result<HandlerTarget> ParseHandler(const RuntimeEntry& runtime, std::string_view handler);

// A custom runtime's code must hold its bootstrap at the root (`code_dir`, the host path of the
// tree): an executable regular file, or a link to one inside the tree. kInvalidArgument saying
// what is wrong otherwise, before any sandbox is started for it.
Result<void> CheckBootstrap(const RuntimeEntry& runtime, const std::string& code_dir);

// Checks a whole function (after defaults and changes are applied): the combinations single
// fields cannot judge, such as Go in handler style, min_instances above max_concurrency, or
// instance_concurrency above the node's cap or for a program (run once per event).
struct Limits {
  int min_instances = 0;
  int max_concurrency = kDefaultMaxConcurrency;
  int instance_concurrency = kDefaultInstanceConcurrency;
  int max_instance_concurrency = kMaxInstanceConcurrency;  // the node's cap
};
Result<void> ValidateCombination(const RuntimeEntry& runtime, std::string_view style,
                                 const Limits& limits);

}  // namespace wisp::core
