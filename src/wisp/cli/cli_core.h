#pragma once

// The pure pieces of the `wisp` command-line tool: what a command asks of wispd, how answers
// are shown, and which exit code a failure means. No sockets, no files: unit-tested.

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "wisp/common/base64.h"

namespace wisp::cli {

// Exit codes a script can branch on; `wisp --help` and the README list them.
enum ExitCode : int {
  kOk = 0,
  kUsage = 1,         // bad arguments, or a request wispd refused as invalid (400, 409, 413, ...)
  kNotFound = 2,      // no such function, version, alias or key
  kFailed = 3,        // wispd answered 5xx, or the function itself failed
  kAuth = 4,          // 401/403: WISP_KEY missing or wrong
  kCannotConnect = 5  // nothing answered at WISP_URL
};

int ExitCodeForStatus(int http_status);

// The message wispd put in {"error": "..."} or, failing that, the status and the raw body.
std::string ErrorMessage(int http_status, const std::string& body);

// What to do about a failure of this kind, one line (empty when the message says it all).
std::string Hint(int exit_code, const std::string& url);

// An HTTP request to wispd, before any socket is opened.
struct Request {
  std::string method;
  std::string target;  // path and query
  std::string body;    // JSON, or empty
  std::vector<std::pair<std::string, std::string>> headers;
};

struct ServerUrl {
  std::string host;
  std::string port;
  std::string base_path;  // without a trailing '/'
};
// "http://host[:port][/path]"; https is refused with a reason (no TLS in this client).
std::optional<ServerUrl> ParseUrl(std::string_view url, std::string* error);

// Fixed-width columns, a header row, two spaces between columns; cells are cut at 60 chars.
std::string RenderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

// A JSON value as a table cell: strings bare, null as "-", the rest as compact JSON.
std::string Cell(const nlohmann::json& value);

struct DeployOptions {
  std::string name;
  std::optional<std::string> runtime;
  std::optional<std::string> handler;
  std::optional<int> memory_mb;
  std::optional<int> timeout_seconds;
  std::vector<std::string> env;  // K=V
};
// The body of POST /v1/functions (create) or PUT /v1/functions/{id} (update). The code is
// `code` (one file's text) or `zip` (base64 of a package), whichever is given.
nlohmann::json DeployBody(const DeployOptions& options, bool create,
                          std::optional<std::string> code, std::optional<std::string> zip_base64,
                          std::string* error);

// The runtime a file or folder is written for, from names in it: .py → python, else node.
std::string InferRuntime(const std::vector<std::string>& file_names);

// --data: JSON text, or @path read by `read_file`; "" means {}. The invoke body always wraps
// the event ({"event": ...}) so an event that looks like a wrapper is sent as itself.
std::optional<std::string> InvokeBody(
    const std::string& data,
    const std::function<std::optional<std::string>(const std::string& path)>& read_file,
    std::string* error);

// The id of the function called `name` in a GET /v1/functions page, if there.
std::optional<std::string> FindFunctionId(const nlohmann::json& page, const std::string& name);

// The version `wisp rollback` points `live` at: `requested` if given (it must be published),
// else the newest published version older than the one `live` names now (or, without a `live`
// alias, older than the newest version).
std::optional<int> RollbackTarget(const std::vector<int>& published, std::optional<int> live,
                                  std::optional<int> requested, std::string* error);

// Server-Sent Events, fed the body as it arrives: each complete event to `on_event`
// (its `event:` name, "message" by default, and its data lines joined by '\n').
class SseParser {
 public:
  using Handler = std::function<void(const std::string& event, const std::string& data)>;
  explicit SseParser(Handler on_event) : on_event_(std::move(on_event)) {}
  void Feed(std::string_view bytes);

 private:
  void Line(std::string_view line);
  Handler on_event_;
  std::string partial_;
  std::string event_;
  std::string data_;
  bool has_data_ = false;
};

// One line per invocation record, as `wisp logs --follow` prints them, followed by its logs.
std::string FormatLogRecord(const nlohmann::json& record);

// The bash completion script `wisp completion bash` prints.
std::string BashCompletion();

}  // namespace wisp::cli
