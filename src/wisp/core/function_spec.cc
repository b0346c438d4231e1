#include "wisp/core/function_spec.h"

#include <algorithm>

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "wisp/common/unique_fd.h"
#include "wisp/core/projects.h"

namespace wisp::core {
namespace {

bool IsIdentifier(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '$') return false;
  }
  return true;
}

bool IsModulePath(std::string_view s) {
  if (s.empty() || s.front() == '/' || s.back() == '/') return false;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = std::min(s.find('/', start), s.size());
    const std::string_view segment = s.substr(start, end - start);
    if (segment.empty() || segment == "." || segment == "..") return false;
    for (char c : segment) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
    }
    start = end + 1;
  }
  return true;
}

// Variables the platform sets; a function may not override them.
const std::set<std::string, std::less<>> kReservedEnv = {"AWS_LAMBDA_RUNTIME_API",
                                                         "_HANDLER",
                                                         "LAMBDA_TASK_ROOT",
                                                         "LAMBDA_RUNTIME_DIR",
                                                         "AWS_LAMBDA_FUNCTION_NAME",
                                                         "AWS_LAMBDA_FUNCTION_VERSION",
                                                         "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                                                         "AWS_LAMBDA_LOG_GROUP_NAME",
                                                         "AWS_LAMBDA_LOG_STREAM_NAME",
                                                         "AWS_EXECUTION_ENV",
                                                         "_X_AMZN_TRACE_ID",
                                                         "WISP_RUNTIME_API_FD",
                                                         "WISP_PREWARMED",
                                                         "WISP_PROJECT_ID"};

tl::unexpected<Error> Invalid(std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message));
}

}  // namespace

Result<void> ValidateCombination(const RuntimeEntry& runtime, std::string_view style,
                                 const Limits& limits) {
  if (runtime.custom() && !runtime.supports(style)) {
    return Invalid(fmt::format(
        "runtime {} runs the package's own {} executable, which loops over invocations itself: "
        "use style \"handler\" (style \"program\" does not apply)",
        runtime.name, runtime.bootstrap));
  }
  if (!runtime.supports(style)) {
    return Invalid(fmt::format(
        "runtime {} runs whole programs only: use style \"program\" (a main program that reads "
        "FUNCTION_PAYLOAD and prints its result)",
        runtime.name));
  }
  if (limits.min_instances > limits.max_concurrency) {
    return Invalid(fmt::format("min_instances ({}) must not exceed max_concurrency ({})",
                               limits.min_instances, limits.max_concurrency));
  }
  if (limits.instance_concurrency > limits.max_instance_concurrency) {
    return Invalid(fmt::format(
        "instance_concurrency must be between 1 and {} (this node's max_instance_concurrency)",
        limits.max_instance_concurrency));
  }
  if (limits.instance_concurrency > 1 && style == "program") {
    return Invalid(
        "instance_concurrency above 1 needs style \"handler\": a program runs once per event");
  }
  return {};
}

Result<void> ValidateFields(const FunctionFields& f, const RuntimeCatalog& runtimes) {
  if (f.name) {
    if (f.name->empty() || f.name->size() > kMaxNameLength) {
      return Invalid(fmt::format("name must be 1 to {} characters", kMaxNameLength));
    }
    for (char c : *f.name) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
        return Invalid("name may contain only letters, digits, '-', '_' and '.'");
      }
    }
  }
  if (f.runtime) {
    if (auto known = runtimes.Resolve(*f.runtime); !known) return tl::unexpected(known.error());
  }
  if (f.style && *f.style != "handler" && *f.style != "program") {
    return Invalid(fmt::format("unknown style '{}': use \"handler\" or \"program\"", *f.style));
  }
  if (f.network && *f.network != "none" && *f.network != "outbound") {
    return Invalid(fmt::format("unknown network '{}': use \"none\" or \"outbound\"", *f.network));
  }
  struct Range {
    const char* name;
    const std::optional<int>& value;
    int min;
    int max;
  };
  for (const Range& r :
       {Range{"max_retries", f.max_retries, 0, kMaxMaxRetries},
        Range{"retry_delay_seconds", f.retry_delay_seconds, 0, kMaxRetryDelaySeconds},
        Range{"max_event_age_seconds", f.max_event_age_seconds, 1, kMaxMaxEventAgeSeconds},
        Range{"max_concurrency", f.max_concurrency, 1, kMaxMaxConcurrency},
        Range{"min_instances", f.min_instances, 0, kMaxMaxConcurrency},
        Range{"instance_concurrency", f.instance_concurrency, 1, kMaxInstanceConcurrency}}) {
    if (r.value && (*r.value < r.min || *r.value > r.max)) {
      return Invalid(fmt::format("{} must be between {} and {}", r.name, r.min, r.max));
    }
  }
  if (f.project && !f.project->empty()) {
    if (auto valid = ValidateProjectName(*f.project); !valid) return valid;
  }
  if (f.file_path && !f.file_path->empty()) {
    if (auto route = RouteFromFilePath(*f.file_path); !route) {
      return tl::unexpected(route.error());
    }
  }
  if (f.version_label && f.version_label->size() > kMaxVersionLabelLength) {
    return Invalid(fmt::format("version must be at most {} characters", kMaxVersionLabelLength));
  }
  if (f.description && f.description->size() > kMaxDescriptionLength) {
    return Invalid(fmt::format("description must be at most {} characters", kMaxDescriptionLength));
  }
  if (f.tags) {
    if (f.tags->size() > kMaxTags) {
      return Invalid(fmt::format("a function has at most {} tags", kMaxTags));
    }
    for (const auto& [key, value] : *f.tags) {
      if (key.empty() || key.size() > kMaxTagKeyLength || value.size() > kMaxTagValueLength) {
        return Invalid(fmt::format("tag keys have 1 to {} characters, values at most {}",
                                   kMaxTagKeyLength, kMaxTagValueLength));
      }
    }
  }
  if (f.metadata_json && f.metadata_json->size() > kMaxMetadataBytes) {
    return Invalid(fmt::format("metadata must be at most {} bytes of JSON", kMaxMetadataBytes));
  }
  if (f.code && f.zip)
    return Invalid("send either code (one source file) or zip (a package), not both");
  if (f.code && f.code->find_first_not_of(" \t\r\n") == std::string::npos) {
    return Invalid("code must not be empty");
  }
  if (f.code && f.code->find('\0') != std::string::npos) {
    return Invalid("code must not contain NUL characters");
  }
  if (f.timeout_seconds &&
      (*f.timeout_seconds < kMinTimeoutSeconds || *f.timeout_seconds > kMaxTimeoutSeconds)) {
    return Invalid(fmt::format("timeout_seconds must be between {} and {}", kMinTimeoutSeconds,
                               kMaxTimeoutSeconds));
  }
  if (f.memory_mb && (*f.memory_mb < kMinMemoryMb || *f.memory_mb > kMaxMemoryMb)) {
    return Invalid(fmt::format("memory_mb must be between {} and {}", kMinMemoryMb, kMaxMemoryMb));
  }
  if (f.vcpu && !(*f.vcpu >= kMinVcpu && *f.vcpu <= kMaxVcpu)) {
    return Invalid(fmt::format("vcpu must be between {} and {}", kMinVcpu, kMaxVcpu));
  }
  if (f.env) {
    for (const auto& [key, value] : *f.env) {
      const bool valid_key = !key.empty() && !std::isdigit(static_cast<unsigned char>(key[0])) &&
                             std::all_of(key.begin(), key.end(), [](char c) {
                               return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
                             });
      if (!valid_key) {
        return Invalid(fmt::format("env: '{}' is not a valid variable name", key));
      }
      if (kReservedEnv.count(key)) {
        return Invalid(fmt::format("env: {} is set by the platform and cannot be changed", key));
      }
      if (value.find('\0') != std::string::npos) {
        return Invalid(fmt::format("env: the value of {} contains a NUL character", key));
      }
    }
  }
  return {};
}

Result<HandlerTarget> ParseHandler(const RuntimeEntry& runtime, std::string_view handler) {
  if (handler.empty())
    return Invalid("handler is empty: name the function to call, e.g. \"handler\"");
  HandlerTarget target;
  if (runtime.custom()) {
    // Lambda's own limits for the field; the bootstrap reads it from _HANDLER.
    const bool printable = std::all_of(handler.begin(), handler.end(), [](char c) {
      return !std::isspace(static_cast<unsigned char>(c)) &&
             !std::iscntrl(static_cast<unsigned char>(c));
    });
    if (handler.size() > kMaxCustomHandlerLength || !printable) {
      return Invalid(fmt::format("handler must be 1 to {} characters without white space",
                                 kMaxCustomHandlerLength));
    }
    target.function = std::string(handler);
    return target;
  }
  const auto dot = handler.rfind('.');
  if (dot == std::string_view::npos) {
    target.module = runtime.default_module;
    target.function = std::string(handler);
  } else {
    target.module = std::string(handler.substr(0, dot));
    target.function = std::string(handler.substr(dot + 1));
  }
  // Python names a module in a package with dots, as Lambda's Python runtime takes it:
  // "app.main.handler" is the file app/main.py.
  if (runtime.source_extension == ".py")
    std::replace(target.module.begin(), target.module.end(), '.', '/');
  if (!IsModulePath(target.module)) {
    return Invalid(fmt::format(
        "handler '{}': '{}' is not a file path inside the function (no '..', no leading '/')",
        handler, target.module));
  }
  if (!IsIdentifier(target.function)) {
    return Invalid(
        fmt::format("handler '{}': '{}' is not a function name", handler, target.function));
  }
  return target;
}

Result<void> CheckBootstrap(const RuntimeEntry& runtime, const std::string& code_dir) {
  const std::string& name = runtime.bootstrap;
  const UniqueFd root(::open(code_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) {
    return MakeError(ErrorCode::kInternal,
                     fmt::format("cannot open the function's code: {}", std::strerror(errno)));
  }
  // Resolved as the sandbox will: a link may lead elsewhere in the tree, never out of it (the
  // code store refuses such links already; this is not the place to trust that).
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  UniqueFd file(
      static_cast<int>(::syscall(SYS_openat2, root.get(), name.c_str(), &how, sizeof how)));
  if (!file && errno == ENOSYS) {
    // A kernel before 5.6: the code store's refusal of links out of the tree is all there is.
    file.Reset(::openat(root.get(), name.c_str(), O_PATH | O_CLOEXEC));
  }
  struct stat st {};
  if (!file) {
    if (errno == ENOENT || errno == ELOOP || errno == EXDEV) {
      return Invalid(
          fmt::format("runtime {}: the package has no {} at its root (the executable that runs the "
                      "function and speaks the Runtime API)",
                      runtime.name, name));
    }
    return MakeError(ErrorCode::kInternal,
                     fmt::format("cannot open {}: {}", name, std::strerror(errno)));
  }
  if (::fstat(file.get(), &st) != 0) {
    return MakeError(ErrorCode::kInternal,
                     fmt::format("cannot read {}: {}", name, std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return Invalid(
        fmt::format("runtime {}: {} at the package's root is not a file", runtime.name, name));
  }
  if ((st.st_mode & 0111) == 0) {
    return Invalid(fmt::format(
        "runtime {}: {} is not executable: give it the executable bit in the zip (e.g. chmod "
        "755 {} before zipping)",
        runtime.name, name, name));
  }
  return {};
}

}  // namespace wisp::core
