#include "wisp/cli/cli_core.h"

#include <algorithm>

#include <fmt/format.h>

namespace wisp::cli {
using nlohmann::json;

int ExitCodeForStatus(int http_status) {
  if (http_status >= 200 && http_status < 300) return kOk;
  if (http_status == 401 || http_status == 403) return kAuth;
  if (http_status == 404) return kNotFound;
  if (http_status >= 400 && http_status < 500 && http_status != 408 && http_status != 429) {
    return kUsage;
  }
  return kFailed;
}

std::string ErrorMessage(int http_status, const std::string& body) {
  const json parsed = json::parse(body, nullptr, false);
  if (parsed.is_object()) {
    if (auto it = parsed.find("error"); it != parsed.end()) {
      if (it->is_string()) return it->get<std::string>();
      if (it->is_object() && it->contains("message") && (*it)["message"].is_string()) {
        return (*it)["message"].get<std::string>();
      }
    }
    if (auto it = parsed.find("message"); it != parsed.end() && it->is_string()) {
      return it->get<std::string>();
    }
  }
  std::string text = body.substr(0, 200);
  return text.empty() ? fmt::format("HTTP {}", http_status)
                      : fmt::format("HTTP {}: {}", http_status, text);
}

std::string Hint(int exit_code, const std::string& url) {
  switch (exit_code) {
    case kCannotConnect:
      return fmt::format(
          "is wispd running at {}? start it with `make run`, or set WISP_URL to where it listens",
          url);
    case kAuth:
      return "set WISP_KEY to an API key's secret (create one with `wispd keys create`, or "
             "`wisp keys create` with a working key)";
    case kNotFound:
      return "`wisp ls` lists the functions there are";
    default:
      return "";
  }
}

std::optional<ServerUrl> ParseUrl(std::string_view url, std::string* error) {
  constexpr std::string_view kHttp = "http://";
  if (url.starts_with("https://")) {
    *error = "https is not supported by this client: use http:// (wispd speaks plain HTTP)";
    return std::nullopt;
  }
  if (!url.starts_with(kHttp)) {
    *error = fmt::format("WISP_URL must start with http:// (got '{}')", url);
    return std::nullopt;
  }
  url.remove_prefix(kHttp.size());
  ServerUrl out;
  const size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  if (slash != std::string_view::npos) out.base_path = std::string(url.substr(slash));
  while (!out.base_path.empty() && out.base_path.back() == '/') out.base_path.pop_back();
  out.port = "80";
  if (authority.starts_with('[')) {  // [::1]:port
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      *error = "WISP_URL has an unclosed '[' in its host";
      return std::nullopt;
    }
    out.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size() && authority[close + 1] == ':') {
      out.port = std::string(authority.substr(close + 2));
    }
  } else if (const size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    out.host = std::string(authority.substr(0, colon));
    out.port = std::string(authority.substr(colon + 1));
  } else {
    out.host = std::string(authority);
  }
  if (out.host.empty() || out.port.empty() ||
      out.port.find_first_not_of("0123456789") != std::string::npos) {
    *error = fmt::format("WISP_URL '{}' has no valid host and port", url);
    return std::nullopt;
  }
  return out;
}

std::string RenderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  constexpr size_t kMaxCell = 60;
  const auto cut = [](const std::string& cell) {
    std::string out = cell.size() > kMaxCell ? cell.substr(0, kMaxCell - 3) + "..." : cell;
    std::replace(out.begin(), out.end(), '\n', ' ');
    return out;
  };
  std::vector<size_t> widths(header.size(), 0);
  for (size_t i = 0; i < header.size(); ++i) widths[i] = header[i].size();
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], cut(row[i]).size());
    }
  }
  std::string out;
  const auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (size_t i = 0; i < widths.size(); ++i) {
      const std::string cell = i < cells.size() ? cut(cells[i]) : "";
      text += cell;
      if (i + 1 < widths.size()) text += std::string(widths[i] - cell.size() + 2, ' ');
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text + "\n";
  };
  line(header);
  for (const auto& row : rows) line(row);
  return out;
}

std::string Cell(const json& value) {
  if (value.is_null()) return "-";
  if (value.is_string()) return value.get<std::string>().empty() ? "-" : value.get<std::string>();
  return value.dump();
}

json DeployBody(const DeployOptions& options, bool create, std::optional<std::string> code,
                std::optional<std::string> zip_base64, std::string* error) {
  json body = json::object();
  if (create) body["name"] = options.name;
  if (options.runtime) body["runtime"] = *options.runtime;
  if (options.handler) body["handler"] = *options.handler;
  if (options.memory_mb) body["memory_mb"] = *options.memory_mb;
  if (options.timeout_seconds) body["timeout_seconds"] = *options.timeout_seconds;
  if (!options.env.empty()) {
    json env = json::object();
    for (const auto& pair : options.env) {
      const size_t equals = pair.find('=');
      if (equals == std::string::npos || equals == 0) {
        *error = fmt::format("--env takes KEY=VALUE (got '{}')", pair);
        return nullptr;
      }
      env[pair.substr(0, equals)] = pair.substr(equals + 1);
    }
    body["env"] = std::move(env);
  }
  if (code) body["code"] = std::move(*code);
  if (zip_base64) body["zip"] = std::move(*zip_base64);
  return body;
}

std::string InferRuntime(const std::vector<std::string>& file_names) {
  for (const auto& name : file_names) {
    if (name.ends_with(".py")) return "python";
  }
  return "node";
}

std::optional<std::string> InvokeBody(
    const std::string& data,
    const std::function<std::optional<std::string>(const std::string& path)>& read_file,
    std::string* error) {
  std::string text = data;
  if (data.starts_with('@')) {
    auto read = read_file(data.substr(1));
    if (!read) {
      *error = fmt::format("cannot read {}", data.substr(1));
      return std::nullopt;
    }
    text = std::move(*read);
  }
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) text = "{}";
  json event = json::parse(text, nullptr, false);
  if (event.is_discarded()) {
    *error = "--data is not valid JSON (pass JSON text, or @FILE to read it from a file)";
    return std::nullopt;
  }
  return json{{"event", std::move(event)}}.dump();
}

std::optional<std::string> FindFunctionId(const json& page, const std::string& name) {
  if (!page.is_object() || !page.contains("items") || !page["items"].is_array()) {
    return std::nullopt;
  }
  for (const auto& item : page["items"]) {
    if (item.value("name", "") == name && item.contains("id") && item["id"].is_string()) {
      return item["id"].get<std::string>();
    }
  }
  return std::nullopt;
}

std::optional<int> RollbackTarget(const std::vector<int>& published, std::optional<int> live,
                                  std::optional<int> requested, std::string* error) {
  if (requested) {
    if (std::find(published.begin(), published.end(), *requested) == published.end()) {
      *error = fmt::format("version {} is not published (see `wisp versions NAME`)", *requested);
      return std::nullopt;
    }
    return requested;
  }
  std::vector<int> sorted = published;
  std::sort(sorted.begin(), sorted.end());
  if (sorted.empty()) {
    *error = "nothing to roll back to: the function has no published version (`wisp publish`)";
    return std::nullopt;
  }
  const int current = live.value_or(sorted.back());
  auto older = std::lower_bound(sorted.begin(), sorted.end(), current);
  if (older == sorted.begin()) {
    *error = fmt::format("nothing to roll back to: no published version older than {}", current);
    return std::nullopt;
  }
  return *std::prev(older);
}

void SseParser::Feed(std::string_view bytes) {
  partial_ += bytes;
  size_t start = 0;
  for (size_t newline; (newline = partial_.find('\n', start)) != std::string::npos;
       start = newline + 1) {
    std::string_view line(partial_.data() + start, newline - start);
    if (line.ends_with('\r')) line.remove_suffix(1);
    Line(line);
  }
  partial_.erase(0, start);
}

void SseParser::Line(std::string_view line) {
  if (line.empty()) {
    if (has_data_) on_event_(event_.empty() ? "message" : event_, data_);
    event_.clear();
    data_.clear();
    has_data_ = false;
    return;
  }
  if (line.starts_with(':')) return;  // a comment: heartbeats
  const size_t colon = line.find(':');
  const std::string_view field = line.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
  if (value.starts_with(' ')) value.remove_prefix(1);
  if (field == "event") {
    event_ = std::string(value);
  } else if (field == "data") {
    if (has_data_) data_ += '\n';
    data_ += value;
    has_data_ = true;
  }
}

std::string FormatLogRecord(const json& record) {
  std::string out = fmt::format(
      "{}  {}  {}  v{}  {}ms\n", Cell(record.value("invoked_at", json(nullptr))),
      Cell(record.value("request_id", json(nullptr))), Cell(record.value("status", json(nullptr))),
      Cell(record.value("version", json(nullptr))), Cell(record.value("duration_ms", json(0))));
  if (record.contains("logs") && record["logs"].is_array()) {
    for (const auto& line : record["logs"]) out += "    " + Cell(line) + "\n";
  }
  return out;
}

std::string BashCompletion() {
  return R"BASH(# bash completion for wisp: source <(wisp completion bash)
_wisp() {
  local cur prev words cword
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  local commands="deploy ls get invoke logs rm versions publish rollback keys completion"
  if [[ ${COMP_CWORD} -eq 1 ]]; then
    COMPREPLY=( $(compgen -W "${commands} --help --json --url" -- "${cur}") )
    return
  fi
  case "${COMP_WORDS[1]}" in
    get|invoke|logs|rm|versions|publish|rollback)
      if [[ ${COMP_CWORD} -eq 2 ]]; then
        COMPREPLY=( $(compgen -W "$(wisp ls --quiet 2>/dev/null)" -- "${cur}") )
      else
        case "${COMP_WORDS[1]}" in
          invoke) COMPREPLY=( $(compgen -W "--data --async --qualifier --json" -- "${cur}") ) ;;
          logs) COMPREPLY=( $(compgen -W "--follow --limit --json" -- "${cur}") ) ;;
        esac
      fi ;;
    deploy)
      if [[ "${cur}" == -* ]]; then
        COMPREPLY=( $(compgen -W "--name --project --prune --runtime --handler --memory --timeout --env --json" -- "${cur}") )
      else
        COMPREPLY=( $(compgen -f -- "${cur}") )
      fi ;;
    keys)
      if [[ ${COMP_CWORD} -eq 2 ]]; then
        COMPREPLY=( $(compgen -W "create ls revoke" -- "${cur}") )
      fi ;;
    completion)
      COMPREPLY=( $(compgen -W "bash" -- "${cur}") ) ;;
  esac
}
complete -F _wisp wisp
)BASH";
}

}  // namespace wisp::cli
