#include "wisp/api/function_codec.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

#include "wisp/api/json_views.h"
#include "wisp/api/program_api_format.h"
#include "wisp/common/json_text.h"
#include "wisp/core/projects.h"
#include "wisp/schedule/schedule_spec.h"

namespace wisp::api {
namespace {
using nlohmann::json;

tl::unexpected<Error> Invalid(std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message));
}

// The fields a caller may send, by API, in the order the error message lists them.
const std::vector<std::string_view>& WritableFields(FunctionApi api) {
  static const std::vector<std::string_view> kV1 = {"name",
                                                    "runtime",
                                                    "handler",
                                                    "code",
                                                    "zip",
                                                    "timeout_seconds",
                                                    "memory_mb",
                                                    "vcpu",
                                                    "env",
                                                    "network",
                                                    "style",
                                                    "max_retries",
                                                    "retry_delay_seconds",
                                                    "max_event_age_seconds",
                                                    "max_concurrency",
                                                    "min_instances",
                                                    "instance_concurrency",
                                                    "metadata",
                                                    "version_label",
                                                    "version",
                                                    "project",
                                                    "file_path",
                                                    "is_active",
                                                    "schedules"};
  static const std::vector<std::string_view> kProgram = {"name",
                                                         "version",
                                                         "runtime",
                                                         "handler",
                                                         "code",
                                                         "timeout",
                                                         "memory_mb",
                                                         "vcpu",
                                                         "environment",
                                                         "network",
                                                         "max_concurrency",
                                                         "min_instances",
                                                         "instance_concurrency",
                                                         "max_retries",
                                                         "retry_delay_seconds",
                                                         "max_event_age_seconds",
                                                         "metadata"};
  return api == FunctionApi::kV1 ? kV1 : kProgram;
}

// Fields the API shows but wispd sets: sending one back is refused, so a client that thinks it
// changes `state` or `id` learns that it does not.
const std::vector<std::string_view>& ReadOnlyFields(FunctionApi api) {
  static const std::vector<std::string_view> kV1 = {
      "id",          "state",           "error",           "created_at",
      "updated_at",  "last_invoked_at", "instances",       "runtime_version",
      "code_sha256", "code_size",       "name_in_project", "route"};
  static const std::vector<std::string_view> kProgram = {
      "id", "status", "error", "deployed_version", "created_at", "updated_at", "runtime_version"};
  return api == FunctionApi::kV1 ? kV1 : kProgram;
}

// "memorySize", "Memory-Size", "memory_size" all become "memorysize".
std::string Normalise(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c == '_' || c == '-' || c == ' ') continue;
    out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return out;
}

// Names other platforms and habits use, by normalised spelling, for the /v1 field they mean.
const std::map<std::string, std::string_view, std::less<>>& OtherPlatformNames() {
  static const std::map<std::string, std::string_view, std::less<>> kNames = {
      {"timeout", "timeout_seconds"},
      {"timeoutms", "timeout_seconds"},
      {"timeoutmillis", "timeout_seconds"},
      {"memorysize", "memory_mb"},
      {"memory", "memory_mb"},
      {"memorylimit", "memory_mb"},
      {"mem", "memory_mb"},
      {"ram", "memory_mb"},
      {"environment", "env"},
      {"environmentvariables", "env"},
      {"envvars", "env"},
      {"variables", "env"},
      {"functionname", "name"},
      {"sourcecode", "code"},
      {"source", "code"},
      {"zipfile", "zip"},
      {"cpu", "vcpu"},
      {"cpus", "vcpu"},
      {"vcpus", "vcpu"},
      {"concurrency", "max_concurrency"},
      {"reservedconcurrency", "max_concurrency"},
      {"reservedconcurrentexecutions", "max_concurrency"},
      {"maxinstances", "max_concurrency"},
      {"retries", "max_retries"},
      {"maximumretryattempts", "max_retries"},
      {"maximumeventageinseconds", "max_event_age_seconds"},
      {"provisionedconcurrency", "min_instances"},
      {"perexecutionenvironmentmaxconcurrency", "instance_concurrency"},
      {"tags", "metadata"},
      {"labels", "metadata"},
      {"entrypoint", "handler"},
      {"label", "version_label"},
      {"schedule", "schedules"},
      {"cron", "schedules"},
      {"events", "schedules"},
  };
  return kNames;
}

// The /v1 field `v1_field` as `api` spells it.
std::string_view Spelling(FunctionApi api, std::string_view v1_field) {
  if (api == FunctionApi::kV1) return v1_field;
  if (v1_field == "timeout_seconds") return "timeout";
  if (v1_field == "env") return "environment";
  if (v1_field == "version_label") return "version";
  return v1_field;
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string QuotedList(const std::vector<std::string_view>& names) {
  std::string out;
  for (const auto& name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

Result<std::map<std::string, std::string>> StringMap(std::string_view field, const json& value) {
  if (!value.is_object()) return Invalid(fmt::format("{} must be an object of strings", field));
  std::map<std::string, std::string> out;
  for (const auto& [name, v] : value.items()) {
    if (!v.is_string()) return Invalid(fmt::format("{}.{} must be a string", field, name));
    out[name] = v.get<std::string>();
  }
  return out;
}

// A Go duration string (or a number of seconds) as whole seconds, rounded up: wispd's function
// timeouts are in seconds.
Result<int> DurationSeconds(std::string_view field, const json& value) {
  int64_t millis = 0;
  if (value.is_number()) {
    millis = static_cast<int64_t>(std::ceil(value.get<double>() * 1000));
  } else if (value.is_string()) {
    auto parsed = ParseGoDuration(value.get<std::string>());
    if (!parsed) return tl::unexpected(parsed.error());
    millis = std::chrono::ceil<std::chrono::milliseconds>(*parsed).count();
  } else {
    return Invalid(fmt::format("{} must be a duration string such as \"30s\"", field));
  }
  if (millis <= 0 || millis > int64_t{core::kMaxTimeoutSeconds} * 1000) {
    return Invalid(fmt::format("{} must be more than 0s and at most {}", field,
                               FormatGoDuration(std::chrono::seconds(core::kMaxTimeoutSeconds))));
  }
  return static_cast<int>((millis + 999) / 1000);
}

// Reads one accepted field into `f`.
Result<void> DecodeField(FunctionApi api, const std::string& key, const json& value,
                         core::FunctionFields& f) {
  auto wrong = [&key](const char* type) {
    return Invalid(fmt::format("{} must be {}", key, type));
  };
  auto integer = [&](std::optional<int>& out) -> Result<void> {
    if (!value.is_number_integer()) return wrong("an integer");
    out = static_cast<int>(std::clamp<int64_t>(value.get<int64_t>(), INT32_MIN, INT32_MAX));
    return {};
  };
  auto text = [&](std::optional<std::string>& out) -> Result<void> {
    if (!value.is_string()) return wrong("a string");
    out = value.get<std::string>();
    return {};
  };
  const bool v1 = api == FunctionApi::kV1;
  if (key == "name") return text(f.name);
  if (key == "runtime") return text(f.runtime);
  if (key == "handler") return text(f.handler);
  if (key == "style") return text(f.style);
  if (key == "network") {
    if (!value.is_string()) return wrong("\"none\" or \"outbound\"");
    f.network = value.get<std::string>();
    return {};
  }
  if (key == "code") {
    if (v1) return text(f.code);
    if (!value.is_string()) return wrong("a base64-encoded string");
    auto code = DecodeBase64(value.get<std::string>());
    if (!code) return tl::unexpected(code.error());
    f.code = std::move(*code);
    return {};
  }
  if (key == "zip") {
    // A deployment package: the zip's bytes in standard base64 (as Lambda's ZipFile).
    if (!value.is_string()) return wrong("a base64-encoded zip file");
    auto zip = DecodeBase64(value.get<std::string>());
    if (!zip) return Invalid(fmt::format("zip: {}", zip.error().message));
    f.zip = std::move(*zip);
    return {};
  }
  if (key == "timeout_seconds") return integer(f.timeout_seconds);
  if (key == "timeout") {
    auto seconds = DurationSeconds(key, value);
    if (!seconds) return tl::unexpected(seconds.error());
    f.timeout_seconds = *seconds;
    return {};
  }
  if (key == "memory_mb") return integer(f.memory_mb);
  if (key == "max_retries") return integer(f.max_retries);
  if (key == "retry_delay_seconds") return integer(f.retry_delay_seconds);
  if (key == "max_event_age_seconds") return integer(f.max_event_age_seconds);
  if (key == "max_concurrency") return integer(f.max_concurrency);
  if (key == "min_instances") return integer(f.min_instances);
  if (key == "instance_concurrency") return integer(f.instance_concurrency);
  if (key == "vcpu") {
    if (!value.is_number()) return wrong("a number");
    f.vcpu = value.get<double>();
    return {};
  }
  if (key == "env" || key == "environment") {
    auto env = StringMap(key, value);
    if (!env) return tl::unexpected(env.error());
    f.env = std::move(*env);
    return {};
  }
  if (key == "metadata") {
    if (!value.is_object()) return wrong("a JSON object");
    f.metadata_json = value.dump();
    return {};
  }
  if (key == "schedules") {
    const auto now =
        std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
    auto schedules = schedule::DecodeSchedules(value, now);
    if (!schedules) return tl::unexpected(schedules.error());
    f.schedules_json = schedule::StoreSchedules(*schedules);
    return {};
  }
  if (key == "version_label") return text(f.version_label);
  if (key == "project") return text(f.project);
  if (key == "file_path") return text(f.file_path);
  if (key == "is_active") {
    if (!value.is_boolean()) return wrong("true or false");
    f.active = value.get<bool>();
    return {};
  }
  if (key == "version") {
    if (value.is_string()) {
      f.version_label = value.get<std::string>();
      return {};
    }
    if (!v1 && value.is_number()) {
      // The program API's version is only ever a label; a number is one too.
      f.version_label = value.dump();
      return {};
    }
    return Invalid(
        "version must be a string: it is your label for this version (e.g. \"1.2.0\", shown as "
        "version_label). The version number is wispd's: every change of code or configuration "
        "makes a new one, and no request sets it");
  }
  return Invalid(fmt::format("{} is not a field", key));  // WritableFields and this disagree
}

}  // namespace

std::string_view LikelyField(std::string_view unknown,
                             const std::vector<std::string_view>& accepted) {
  const std::string key = Normalise(unknown);
  for (const auto& name : accepted) {
    if (Normalise(name) == key) return name;
  }
  // The /v1 field under this API's spelling, or under a name other platforms use for it.
  std::string_view meant;
  for (const auto& name : WritableFields(FunctionApi::kV1)) {
    if (Normalise(name) == key) meant = name;
  }
  const auto& others = OtherPlatformNames();
  if (auto it = others.find(key); meant.empty() && it != others.end()) meant = it->second;
  if (!meant.empty()) {
    for (const auto& name : accepted) {
      if (name == meant || name == Spelling(FunctionApi::kProgram, meant)) return name;
    }
  }
  std::string_view best;
  size_t best_distance = 3;
  for (const auto& name : accepted) {
    const std::string candidate = Normalise(name);
    if (candidate.size() < 3 || key.size() < 3) continue;
    const size_t distance = EditDistance(key, candidate);
    if (distance < best_distance && distance * 3 <= candidate.size()) {
      best = name;
      best_distance = distance;
    }
  }
  return best;
}

Result<core::FunctionFields> DecodeFunctionFields(FunctionApi api, const json& body) {
  if (!body.is_object()) return Invalid("body must be a JSON object");
  const auto& writable = WritableFields(api);
  const auto& read_only = ReadOnlyFields(api);
  std::vector<std::string> unknown;
  std::vector<std::string> fixed;
  for (const auto& [key, value] : body.items()) {
    if (std::find(writable.begin(), writable.end(), key) != writable.end()) continue;
    if (std::find(read_only.begin(), read_only.end(), key) != read_only.end()) {
      fixed.push_back(key);
    } else {
      unknown.push_back(key);
    }
  }
  if (!unknown.empty() || !fixed.empty()) {
    std::string message;
    for (const auto& key : unknown) {
      message += message.empty() ? "unknown field " : "; unknown field ";
      message += JsonString(key);
      if (const auto likely = LikelyField(key, writable); !likely.empty()) {
        message += fmt::format(" (did you mean \"{}\"?)", likely);
      }
    }
    for (const auto& key : fixed) {
      message += message.empty() ? "" : "; ";
      message += fmt::format("\"{}\" is read-only (wispd sets it)", key);
    }
    message += fmt::format(". Fields you can set: {}", QuotedList(writable));
    return Invalid(std::move(message));
  }
  core::FunctionFields f;
  for (const auto& [key, value] : body.items()) {
    if (auto decoded = DecodeField(api, key, value, f); !decoded) {
      return tl::unexpected(decoded.error());
    }
  }
  return f;
}

std::string_view RuntimeWord(FunctionApi api, std::string_view runtime) {
  // The platform whose API the program API serves calls Node.js "nodejs", and its clients do.
  if (api == FunctionApi::kProgram && runtime == "node") return "nodejs";
  return runtime;
}

json EncodeFunction(FunctionApi api, const store::FunctionRecord& r,
                    const core::RuntimeCatalog& runtimes, bool with_code) {
  const auto version = runtimes.Version(r.runtime);
  json metadata = json::parse(r.metadata_json, nullptr, false);
  if (!metadata.is_object()) metadata = json::object();
  json item;
  if (api == FunctionApi::kV1) {
    item = {
        {"id", r.id},
        {"name", r.name},
        {"runtime", r.runtime},
        {"runtime_version", version ? json(*version) : json(nullptr)},
        {"handler", r.handler},
        {"timeout_seconds", r.timeout_seconds},
        {"memory_mb", r.memory_mb},
        {"vcpu", r.vcpu},
        {"env", r.env},
        {"state", r.state},
        {"version", r.version},
        {"created_at", TimestampJson(r.created_at_ms)},
        {"updated_at", TimestampJson(r.updated_at_ms)},
        {"last_invoked_at", TimestampJson(r.last_invoked_at_ms)},
        {"style", r.style},
        {"max_retries", r.max_retries},
        {"retry_delay_seconds", r.retry_delay_seconds},
        {"max_event_age_seconds", r.max_event_age_seconds},
        {"max_concurrency", r.max_concurrency},
        {"min_instances", r.min_instances},
        {"instance_concurrency", r.instance_concurrency},
        {"metadata", std::move(metadata)},
        {"version_label", r.version_label.empty() ? json(nullptr) : json(r.version_label)},
        {"network", r.network},
        {"code_sha256", r.code_sha256},
        {"code_size", r.code_size},
        {"project", r.project.empty() ? json(nullptr) : json(r.project)},
        {"name_in_project", core::NameInProject(r.project, r.name)},
        {"file_path", r.file_path.empty() ? json(nullptr) : json(r.file_path)},
        {"is_active", r.active},
        {"schedules",
         r.schedules_json.empty() ? json::array() : json::parse(r.schedules_json, nullptr, false)},
    };
    if (auto route = r.file_path.empty() ? std::nullopt
                                         : std::optional(core::RouteFromFilePath(r.file_path));
        route && *route) {
      item["route"] = (*route)->pattern;
    }
    // A package's code is its tree, not one text: only a single file is shown back.
    if (with_code) item["code"] = r.code_format == "zip" ? json(nullptr) : json(r.code);
    if (!r.error.empty()) item["error"] = r.error;
    return item;
  }
  item = {
      {"id", r.id},
      {"name", r.name},
      {"version", r.version_label},
      {"runtime", RuntimeWord(api, r.runtime)},
      {"runtime_version", version ? json(*version) : json(nullptr)},
      {"handler", r.handler},
      {"timeout", FormatGoDuration(std::chrono::seconds(r.timeout_seconds))},
      {"memory_mb", r.memory_mb},
      {"vcpu", r.vcpu},
      {"network", r.network},
      {"max_concurrency", r.max_concurrency},
      {"min_instances", r.min_instances},
      {"instance_concurrency", r.instance_concurrency},
      {"environment", r.env},
      {"metadata", std::move(metadata)},
      {"max_retries", r.max_retries},
      {"retry_delay_seconds", r.retry_delay_seconds},
      {"max_event_age_seconds", r.max_event_age_seconds},
      {"status", r.state},
      {"deployed_version", r.version},
      {"created_at", TimestampJson(r.created_at_ms)},
      {"updated_at", TimestampJson(r.updated_at_ms)},
      {"error", r.error.empty() ? json(nullptr) : json(r.error)},
  };
  if (with_code) item["code"] = EncodeBase64(r.code);
  return item;
}

Result<void> CheckQueryParameters(const HttpRequest& request,
                                  const std::vector<std::string_view>& accepted) {
  std::string message;
  for (const auto& [key, value] : request.query) {
    if (std::find(accepted.begin(), accepted.end(), key) != accepted.end()) continue;
    message += message.empty() ? "unknown query parameter " : "; unknown query parameter ";
    message += JsonString(key);
    if (const auto likely = LikelyField(key, accepted); !likely.empty()) {
      message += fmt::format(" (did you mean \"{}\"?)", likely);
    }
  }
  if (message.empty()) return {};
  message += accepted.empty() ? ". This endpoint takes no query parameters"
                              : fmt::format(". Accepted: {}", QuotedList(accepted));
  return Invalid(std::move(message));
}

}  // namespace wisp::api
