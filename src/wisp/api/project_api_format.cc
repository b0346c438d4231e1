#include "wisp/api/project_api_format.h"

#include <fmt/format.h>

#include "wisp/api/json_views.h"
#include "wisp/core/projects.h"

namespace wisp::api {
namespace {
using nlohmann::json;
}  // namespace

std::string RuntimeLabel(std::string_view runtime, std::string_view version) {
  if (version.empty()) return std::string(runtime);
  // Node is known by its major version, Python by major.minor.
  const size_t first_dot = version.find('.');
  size_t end = first_dot;
  if (runtime == "python" && first_dot != std::string_view::npos) {
    end = version.find('.', first_dot + 1);
  }
  return fmt::format("{}{}", runtime, version.substr(0, end));
}

std::string RuntimeForFile(std::string_view file_path) {
  const size_t slash = file_path.rfind('/');
  const std::string_view file =
      slash == std::string_view::npos ? file_path : file_path.substr(slash + 1);
  const size_t dot = file.rfind('.');
  if (dot == std::string_view::npos) return "";
  const std::string_view extension = file.substr(dot);
  for (std::string_view node : {".js", ".mjs", ".cjs", ".ts", ".mts"}) {
    if (extension == node) return "node";
  }
  if (extension == ".py") return "python";
  return "";
}

json EncodeProjectFunction(const store::FunctionRecord& r, std::string_view runtime_label,
                           uint64_t invocation_count, bool with_code) {
  json item = {
      {"id", r.id},
      {"function_name", core::NameInProject(r.project, r.name)},
      {"project_id", r.project},
      {"name", r.name},
      {"file_path", r.file_path.empty() ? json(nullptr) : json(r.file_path)},
      {"route", nullptr},
      {"runtime", runtime_label},
      {"is_active", r.active},
      {"invocation_count", invocation_count},
      {"state", r.state},
      {"created_at", TimestampJson(r.created_at_ms)},
      {"updated_at", TimestampJson(r.updated_at_ms)},
  };
  if (!r.file_path.empty()) {
    if (auto route = core::RouteFromFilePath(r.file_path)) item["route"] = route->pattern;
  }
  if (!r.error.empty()) item["error"] = r.error;
  if (with_code) item["code"] = r.code_format == "zip" ? json(nullptr) : json(r.code);
  return item;
}

ProjectInvokeAnswer EncodeProjectInvoke(scheduler::InvocationStatus status,
                                        std::string_view response_json,
                                        const std::vector<std::string>& logs, int64_t duration_ms,
                                        int timeout_seconds) {
  const json parsed = json::parse(response_json.empty() ? "null" : response_json, nullptr, false);
  if (status == scheduler::InvocationStatus::kSuccess) {
    return {200, json{{"success", true},
                      {"result", parsed.is_discarded() ? json(nullptr) : parsed},
                      {"duration", duration_ms},
                      {"logs", logs}}};
  }
  std::string message;
  if (status == scheduler::InvocationStatus::kTimeout) {
    message = fmt::format("Function execution timeout ({}ms)", int64_t{timeout_seconds} * 1000);
  } else if (parsed.is_object()) {
    const std::string type = parsed.value("errorType", "");
    const std::string text = parsed.value("errorMessage", "");
    message = type.empty() ? text : text.empty() ? type : fmt::format("{}: {}", type, text);
  }
  if (message.empty()) message = "the function failed without an error message";
  json body = ProjectError("Function execution failed", message);
  body["logs"] = logs;
  return {500, std::move(body)};
}

std::optional<std::string> ProjectOfHost(std::string_view host, std::string_view domain_text) {
  if (domain_text.empty()) return std::nullopt;
  std::string domain(domain_text);
  for (char& c : domain) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (const size_t colon = host.rfind(':');
      colon != std::string_view::npos && host.find(']') == std::string_view::npos) {
    host = host.substr(0, colon);
  }
  std::string lower(host);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.size() <= domain.size() + 1 || !lower.ends_with(domain) ||
      lower[lower.size() - domain.size() - 1] != '.') {
    return std::nullopt;
  }
  std::string project = lower.substr(0, lower.size() - domain.size() - 1);
  if (project.find('.') != std::string::npos) return std::nullopt;
  return project;
}

std::string RouteKey(const std::string& pattern) {
  std::string out = "ANY ";
  size_t i = 0;
  while (i < pattern.size()) {
    if (pattern[i] == ':') {
      const size_t end = std::min(pattern.find('/', i), pattern.size());
      std::string name = pattern.substr(i + 1, end - i - 1);
      if (name.ends_with('*')) name.back() = '+';
      out += "{" + name + "}";
      i = end;
    } else {
      out += pattern[i++];
    }
  }
  return out;
}

json ProjectError(std::string_view error, std::string_view message) {
  json body = {{"error", error}};
  if (!message.empty()) body["message"] = message;
  return body;
}

}  // namespace wisp::api
