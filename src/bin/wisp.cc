// wisp: the command-line tool for wispd's /v1 API (WISP_URL, WISP_KEY from the environment).

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "wisp/cli/cli_core.h"
#include "wisp/cli/http_client.h"
#include "wisp/cli/project_folder.h"
#include "wisp/cli/zip_package.h"

namespace {
using nlohmann::json;
using namespace wisp::cli;
using wisp::EncodeBase64;
namespace fs = std::filesystem;

constexpr const char* kDefaultUrl = "http://127.0.0.1:18080";
// A rollback moves this alias; publish points it at the version it made.
constexpr const char* kLiveAlias = "live";

constexpr const char* kExitCodes = R"(
Exit codes:
  0  success
  1  usage error: bad arguments, or a request wispd refused as invalid
  2  not found: no function (version, alias, key) by that name
  3  failure: wispd answered with a server error, or the invoked function failed
  4  authentication: WISP_KEY is missing or not a valid key
  5  cannot connect: nothing answers at WISP_URL

Environment:
  WISP_URL  wispd's address (default http://127.0.0.1:18080)
  WISP_KEY  an API key's secret, sent as a bearer token (needed when wispd requires auth)
)";

// A failure that ends the command with an exit code and a message on stderr.
struct Failure {
  int code;
  std::string message;
  // Set when the message already says what to do: the exit code's general hint is left out.
  bool says_what_to_do = false;
};

class Api {
 public:
  Api(std::string url, std::string key) : url_(std::move(url)), key_(std::move(key)) {}

  // The answer's JSON for a 2xx; a Failure (thrown) for anything else.
  json Call(const std::string& method, const std::string& target, const std::string& body = "",
            std::vector<std::pair<std::string, std::string>> extra = {}) {
    const Response response = Raw(method, target, body, std::move(extra));
    if (response.status < 200 || response.status >= 300) {
      throw Failure{ExitCodeForStatus(response.status),
                    ErrorMessage(response.status, response.body)};
    }
    if (response.body.empty()) return json::object();
    json parsed = json::parse(response.body, nullptr, false);
    if (parsed.is_discarded()) throw Failure{kFailed, "wispd's answer is not JSON"};
    return parsed;
  }

  Response Raw(const std::string& method, const std::string& target, const std::string& body,
               std::vector<std::pair<std::string, std::string>> extra = {},
               const std::function<void(std::string_view)>& on_body = nullptr) {
    Request request{method, target, body, std::move(extra)};
    if (!body.empty()) request.headers.emplace_back("Content-Type", "application/json");
    if (!key_.empty()) request.headers.emplace_back("Authorization", "Bearer " + key_);
    std::string error;
    const auto server = ParseUrl(url_, &error);
    if (!server) throw Failure{kUsage, error};
    TransportError transport;
    auto response = Send(*server, request, &transport, on_body);
    if (!response) throw Failure{kCannotConnect, transport.message};
    return *response;
  }

  // Every function (of `project`, when given), page by page, as one listing ({"items": [...],
  // "total": n}).
  json AllFunctions(const std::string& project = "") {
    constexpr int kPage = 1000;
    json all = {{"items", json::array()}, {"total", 0}};
    const std::string filter = project.empty() ? "" : "&project=" + project;
    for (int offset = 0;; offset += kPage) {
      json page =
          Call("GET", fmt::format("/v1/functions?limit={}&offset={}{}", kPage, offset, filter));
      for (auto& item : page["items"]) all["items"].push_back(std::move(item));
      all["total"] = page.value("total", 0);
      if (page.value("total", 0) <= offset + kPage) return all;
    }
  }

  // Functions are addressed by id on /v1: the name is looked up in the list.
  std::string IdOf(const std::string& name) {
    if (auto id = FindFunctionId(AllFunctions(), name)) return *id;
    throw Failure{kNotFound, fmt::format("no function named '{}'", name)};
  }

  const std::string& url() const { return url_; }

 private:
  std::string url_;
  std::string key_;
};

void Print(const std::string& text) { std::fwrite(text.data(), 1, text.size(), stdout); }
void PrintJson(const json& value) { Print(value.dump(2) + "\n"); }

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

std::string EnvOr(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value && *value ? value : fallback;
}

struct Options {
  bool json = false;
  bool quiet = false;
  std::string url;
  DeployOptions deploy;
  std::string path;
  std::string name;
  std::string data;
  bool async = false;
  std::string qualifier;
  bool follow = false;
  std::optional<int> limit;
  std::optional<int> version;
  std::string description;
  std::string key_id;
  std::string shell;
  std::string project;  // wisp deploy DIR: instead of wisp.toml's or the folder's name
  bool prune = false;   // wisp deploy DIR: delete the project's functions the folder no longer has
};

// How long `wisp deploy DIR` waits for a new function's first version to load.
constexpr auto kDeployWait = std::chrono::seconds(180);

// The function's state once its deploy has ended (ready or error).
json WaitDeployed(Api& api, const std::string& id) {
  const auto deadline = std::chrono::steady_clock::now() + kDeployWait;
  for (;;) {
    json item = api.Call("GET", "/v1/functions/" + id)["item"];
    const std::string state = item.value("state", "");
    if (state != "creating" && state != "deploying") return item;
    if (std::chrono::steady_clock::now() > deadline) return item;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

// A create or update that wispd refused because of `schedules`: say what that means.
[[noreturn]] void RethrowDeployFailure(const Failure& failure, const ProjectFunction& fn) {
  if (failure.code == kUsage && failure.message.find("\"schedules\"") != std::string::npos) {
    throw Failure{kUsage,
                  fmt::format("{}: this wispd does not take schedules (it refused the field "
                              "\"schedules\": {}); remove the schedule from the manifest or "
                              "deploy to a wispd with schedule support",
                              fn.file_path, failure.message),
                  true};
  }
  throw Failure{failure.code, fmt::format("{}: {}", fn.file_path, failure.message),
                failure.says_what_to_do};
}

// Makes the function's URL public (AuthType NONE) or not, as the manifest says; nothing when it
// says nothing. Returns whether it changed anything.
bool ApplyPublic(Api& api, const std::string& id, std::optional<bool> is_public) {
  if (!is_public) return false;
  const Response current = api.Raw("GET", "/v1/functions/" + id + "/url", "");
  json config = current.status == 200 ? json::parse(current.body, nullptr, false) : json();
  const bool is_none = config.is_object() && config.value("AuthType", "") == "NONE";
  if (*is_public && !is_none) {
    api.Call("PUT", "/v1/functions/" + id + "/url", json{{"AuthType", "NONE"}}.dump());
    return true;
  }
  if (!*is_public && is_none) {
    api.Call("DELETE", "/v1/functions/" + id + "/url");
    return true;
  }
  return false;
}

// wisp deploy DIR: every function of the project folder, uploading only changed code.
int DeployProject(Api& api, const Options& o) {
  const std::string dir = o.path.empty() ? "." : o.path;
  if (!fs::is_directory(dir)) {
    throw Failure{kUsage,
                  fmt::format("{} is not a folder: give a project folder (with api/), "
                              "or --name to deploy one file as a function",
                              dir),
                  true};
  }
  std::string error;
  auto manifest = ReadManifest(dir, &error);
  if (!manifest) throw Failure{kUsage, error, true};
  if (!o.project.empty()) manifest->project = o.project;
  auto plan = PlanProject(dir, *manifest, &error);
  if (!plan) throw Failure{kUsage, error, true};

  const json listing = api.Call("GET", "/v1/functions?limit=1000&project=" + plan->project);
  std::map<std::string, json> existing;  // by name in the project
  for (const auto& item : listing["items"]) {
    existing[item.value("name_in_project", item.value("name", ""))] = item;
  }
  json results = json::array();
  bool failed = false;
  int uploaded = 0;
  for (const auto& fn : plan->functions) {
    auto zip = ZipEntries(fn.package, &error);
    if (!zip) throw Failure{kUsage, error, true};
    const std::string sha = CodeSha256(*zip);
    json env = fn.settings.env;
    json body = json::object();
    std::string action;
    std::string id;
    auto found = existing.find(fn.name);
    if (found == existing.end()) {
      body = {{"name", fn.name},          {"project", plan->project}, {"file_path", fn.file_path},
              {"runtime", fn.runtime},    {"handler", fn.handler},    {"env", env},
              {"zip", EncodeBase64(*zip)}};
      if (fn.settings.memory_mb) body["memory_mb"] = *fn.settings.memory_mb;
      if (fn.settings.timeout_seconds) body["timeout_seconds"] = *fn.settings.timeout_seconds;
      if (fn.settings.schedules) body["schedules"] = *fn.settings.schedules;
      try {
        id = api.Call("POST", "/v1/functions", body.dump()).value("id", "");
      } catch (const Failure& f) {
        RethrowDeployFailure(f, fn);
      }
      action = "created";
    } else {
      const json& item = found->second;
      id = item.value("id", "");
      const auto differs = [&item](const char* key, const json& wanted) {
        return !item.contains(key) || item[key] != wanted;
      };
      if (differs("file_path", fn.file_path)) body["file_path"] = fn.file_path;
      if (differs("runtime", fn.runtime)) body["runtime"] = fn.runtime;
      if (differs("handler", fn.handler)) body["handler"] = fn.handler;
      if (differs("env", env)) body["env"] = env;
      if (fn.settings.memory_mb && differs("memory_mb", *fn.settings.memory_mb)) {
        body["memory_mb"] = *fn.settings.memory_mb;
      }
      if (fn.settings.timeout_seconds && differs("timeout_seconds", *fn.settings.timeout_seconds)) {
        body["timeout_seconds"] = *fn.settings.timeout_seconds;
      }
      if (fn.settings.schedules &&
          !SchedulesMatch(item.value("schedules", json()), *fn.settings.schedules)) {
        body["schedules"] = *fn.settings.schedules;
      }
      // The package goes up only when its bytes differ from what the function runs.
      if (item.value("code_sha256", "") != sha) body["zip"] = EncodeBase64(*zip);
      if (!body.empty()) {
        try {
          api.Call("PUT", "/v1/functions/" + id, body.dump());
        } catch (const Failure& f) {
          RethrowDeployFailure(f, fn);
        }
      }
      action = body.empty() ? "unchanged" : "updated";
      existing.erase(found);
    }
    const bool sent_code = body.contains("zip");
    if (sent_code) ++uploaded;
    if (ApplyPublic(api, id, fn.settings.is_public) && action == "unchanged") action = "updated";
    const json item = WaitDeployed(api, id);
    const std::string state = item.value("state", "");
    if (state != "ready") failed = true;
    results.push_back({{"file_path", fn.file_path},
                       {"function_name", fn.name},
                       {"name", item.value("name", "")},
                       {"id", id},
                       {"route", item.value("route", json(nullptr))},
                       {"runtime", fn.runtime},
                       {"action", action},
                       {"uploaded", sent_code},
                       {"code_sha256", sha},
                       {"state", state},
                       {"error", item.value("error", json(nullptr))}});
  }
  // The project's functions the folder no longer has.
  for (const auto& [name, item] : existing) {
    std::string action = "stale";
    if (o.prune) {
      api.Call("DELETE", "/v1/functions/" + item.value("id", ""));
      action = "deleted";
    }
    results.push_back({{"file_path", item.value("file_path", json(nullptr))},
                       {"function_name", name},
                       {"name", item.value("name", "")},
                       {"id", item.value("id", "")},
                       {"route", item.value("route", json(nullptr))},
                       {"runtime", item.value("runtime", "")},
                       {"action", action},
                       {"uploaded", false},
                       {"code_sha256", item.value("code_sha256", "")},
                       {"state", item.value("state", "")},
                       {"error", json(nullptr)}});
  }
  if (o.json) {
    PrintJson(json{{"project", plan->project},
                   {"routes", "/p/" + plan->project},
                   {"uploaded", uploaded},
                   {"functions", results}});
  } else {
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : results) {
      std::string state = r.value("state", "");
      if (r["error"].is_string()) state += ": " + r["error"].get<std::string>();
      rows.push_back({Cell(r["function_name"]), Cell(r["route"]), Cell(r["runtime"]),
                      Cell(r["action"]), state});
    }
    Print(RenderTable({"FUNCTION", "ROUTE", "RUNTIME", "ACTION", "STATE"}, rows));
    Print(fmt::format("Project {}: {} functions, {} uploaded; routes at {}/p/{}/...\n",
                      plan->project, plan->functions.size(), uploaded, api.url(), plan->project));
  }
  if (failed) {
    std::cerr << "wisp: some functions failed to deploy (see STATE above)\n";
    return kFailed;
  }
  return kOk;
}

int Deploy(Api& api, const Options& o) {
  // Without --name: a project folder (api/ and wisp.toml), not one function.
  if (o.deploy.name.empty()) return DeployProject(api, o);
  if (o.path.empty()) {
    throw Failure{kUsage, fmt::format("give the file or folder to deploy as {}", o.deploy.name)};
  }
  std::optional<std::string> code, zip;
  std::vector<std::string> names;
  std::string error;
  if (fs::is_directory(o.path)) {
    auto bytes = ZipDirectory(o.path, &names, &error);
    if (!bytes) throw Failure{kUsage, error};
    if (names.empty()) throw Failure{kUsage, fmt::format("{} has no files to deploy", o.path)};
    zip = EncodeBase64(*bytes);
  } else {
    code = ReadFile(o.path);
    if (!code) throw Failure{kUsage, fmt::format("cannot read {}: no such file", o.path)};
    names.push_back(o.path);
  }
  DeployOptions options = o.deploy;
  std::optional<std::string> id;
  try {
    id = api.IdOf(options.name);
  } catch (const Failure& f) {
    if (f.code != kNotFound) throw;
  }
  if (!id) {
    // A new function needs a runtime and handler: guessed from the files unless given.
    if (!options.runtime) options.runtime = InferRuntime(names);
    if (!options.handler) options.handler = zip ? "index.handler" : "handler";
  }
  json body = DeployBody(options, !id, std::move(code), std::move(zip), &error);
  if (body.is_null()) throw Failure{kUsage, error};
  std::string text;
  try {
    text = body.dump();
  } catch (const json::type_error&) {
    throw Failure{kUsage,
                  fmt::format("{} is not UTF-8 text: put it in a folder and deploy the folder "
                              "(sent as a zip package)",
                              o.path),
                  true};
  }
  const json answer =
      id ? api.Call("PUT", "/v1/functions/" + *id, text) : api.Call("POST", "/v1/functions", text);
  if (o.json) {
    PrintJson(answer);
  } else {
    Print(fmt::format("{} function {} ({})\n", id ? "Updated" : "Created", options.name,
                      id ? *id : answer.value("id", "")));
  }
  return kOk;
}

int List(Api& api, const Options& o) {
  const json page = api.AllFunctions(o.project);
  if (o.json) {
    PrintJson(page);
    return kOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& f : page["items"]) {
    if (o.quiet) {
      Print(Cell(f.value("name", json(nullptr))) + "\n");
      continue;
    }
    rows.push_back({Cell(f.value("name", json(nullptr))), Cell(f.value("runtime", json(nullptr))),
                    Cell(f.value("state", json(nullptr))), Cell(f.value("version", json(nullptr))),
                    Cell(f.value("memory_mb", json(nullptr))),
                    Cell(f.value("updated_at", json(nullptr))),
                    Cell(f.value("id", json(nullptr)))});
  }
  if (!o.quiet) {
    Print(RenderTable({"NAME", "RUNTIME", "STATE", "VERSION", "MEMORY", "UPDATED", "ID"}, rows));
  }
  return kOk;
}

int Get(Api& api, const Options& o) {
  const json answer = api.Call("GET", "/v1/functions/" + api.IdOf(o.name));
  if (o.json) {
    PrintJson(answer);
    return kOk;
  }
  const json& f = answer["item"];
  std::vector<std::vector<std::string>> rows;
  for (const char* field : {"name", "id", "runtime", "runtime_version", "handler", "state", "error",
                            "version", "memory_mb", "timeout_seconds", "env", "code_sha256",
                            "code_size", "created_at", "updated_at"}) {
    if (f.contains(field)) rows.push_back({field, Cell(f[field])});
  }
  Print(RenderTable({"FIELD", "VALUE"}, rows));
  return kOk;
}

int Invoke(Api& api, const Options& o) {
  std::string error;
  auto body = InvokeBody(o.data, ReadFile, &error);
  if (!body) throw Failure{kUsage, error};
  std::string target = "/v1/functions/" + api.IdOf(o.name) + "/invoke";
  if (!o.qualifier.empty()) target += "?qualifier=" + o.qualifier;
  std::vector<std::pair<std::string, std::string>> headers;
  if (o.async) headers.emplace_back("X-Invocation-Type", "Event");
  const json answer = api.Call("POST", target, *body, std::move(headers));
  const bool failed = !o.async && answer.value("status", "success") != "success";
  if (o.json) {
    PrintJson(answer);
  } else if (o.async) {
    Print(fmt::format("Queued invocation {}\n", answer.value("invocation_id", "")));
  } else {
    if (answer.contains("logs")) {
      for (const auto& line : answer["logs"]) std::cerr << Cell(line) << "\n";
    }
    Print(answer.value("response", json(nullptr)).dump(2) + "\n");
  }
  if (failed) {
    throw Failure{kFailed, fmt::format("the function failed (status {}): see `wisp logs {}`",
                                       answer.value("status", ""), o.name)};
  }
  return kOk;
}

int Logs(Api& api, const Options& o) {
  std::string target = "/v1/functions/" + api.IdOf(o.name) + "/logs";
  std::vector<std::string> query;
  if (o.limit) query.push_back(fmt::format("limit={}", *o.limit));
  if (o.follow) query.push_back("follow=true");
  for (size_t i = 0; i < query.size(); ++i) target += (i ? "&" : "?") + query[i];
  if (!o.follow) {
    const json answer = api.Call("GET", target);
    if (o.json) {
      PrintJson(answer);
      return kOk;
    }
    const json& items = answer["items"];
    for (auto it = items.rbegin(); it != items.rend(); ++it) Print(FormatLogRecord(*it));
    return kOk;
  }
  bool deleted = false;
  SseParser parser([&](const std::string& event, const std::string& data) {
    if (event == "deleted") {
      deleted = true;
      return;
    }
    const json record = json::parse(data, nullptr, false);
    Print(o.json ? record.dump() + "\n" : FormatLogRecord(record));
    std::fflush(stdout);
  });
  const Response response =
      api.Raw("GET", target, "", {}, [&](std::string_view bytes) { parser.Feed(bytes); });
  if (response.status < 200 || response.status >= 300) {
    throw Failure{ExitCodeForStatus(response.status), ErrorMessage(response.status, response.body)};
  }
  if (deleted) throw Failure{kNotFound, fmt::format("function {} was deleted", o.name), true};
  return kOk;
}

int Remove(Api& api, const Options& o) {
  if (!o.project.empty()) {
    if (!o.name.empty()) {
      throw Failure{kUsage, "give a function NAME or --project, not both"};
    }
    const json answer = api.Call("DELETE", "/v1/projects/" + o.project);
    if (o.json) {
      PrintJson(answer);
    } else {
      Print(fmt::format("Deleted project {} and its {} functions\n", o.project,
                        answer["deleted"].size()));
    }
    return kOk;
  }
  if (o.name.empty()) throw Failure{kUsage, "give the function's NAME (or --project NAME)"};
  const std::string id = api.IdOf(o.name);
  const json answer = api.Call("DELETE", "/v1/functions/" + id);
  if (o.json) {
    PrintJson(answer);
  } else {
    Print(fmt::format("Deleted function {} ({})\n", o.name, id));
  }
  return kOk;
}

std::optional<int> LiveVersion(const json& aliases) {
  for (const auto& alias : aliases["aliases"]) {
    if (alias.value("name", "") == kLiveAlias) return alias.value("version", 0);
  }
  return std::nullopt;
}

int Versions(Api& api, const Options& o) {
  const std::string id = api.IdOf(o.name);
  const json versions = api.Call("GET", "/v1/functions/" + id + "/versions");
  const json aliases = api.Call("GET", "/v1/functions/" + id + "/aliases");
  if (o.json) {
    PrintJson({{"versions", versions["versions"]}, {"aliases", aliases["aliases"]}});
    return kOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& v : versions["versions"]) {
    std::string names;
    for (const auto& a : aliases["aliases"]) {
      if (a.value("version", 0) == v.value("version", -1)) {
        names += (names.empty() ? "" : ",") + a.value("name", "");
      }
    }
    rows.push_back({Cell(v["version"]), names.empty() ? "-" : names,
                    Cell(v.value("created_at", json(nullptr))),
                    Cell(v.value("description", json(nullptr))),
                    Cell(v.value("code_sha256", json(nullptr))).substr(0, 12)});
  }
  Print(RenderTable({"VERSION", "ALIASES", "CREATED", "DESCRIPTION", "CODE"}, rows));
  return kOk;
}

// Points `live` at `version`, creating the alias the first time.
json MoveLive(Api& api, const std::string& id, int version) {
  const Response current =
      api.Raw("GET", fmt::format("/v1/functions/{}/aliases/{}", id, kLiveAlias), "");
  if (current.status == 404) {
    return api.Call("POST", fmt::format("/v1/functions/{}/aliases", id),
                    json{{"name", kLiveAlias}, {"version", version}}.dump());
  }
  return api.Call("PUT", fmt::format("/v1/functions/{}/aliases/{}", id, kLiveAlias),
                  json{{"version", version}, {"additional_version", nullptr}}.dump());
}

int Publish(Api& api, const Options& o) {
  const std::string id = api.IdOf(o.name);
  const json body = o.description.empty() ? json::object() : json{{"description", o.description}};
  const json version = api.Call("POST", "/v1/functions/" + id + "/versions", body.dump());
  const int number = version.value("version", 0);
  const json alias = MoveLive(api, id, number);
  if (o.json) {
    PrintJson({{"version", version}, {"alias", alias}});
  } else {
    Print(fmt::format("Published {} version {}; alias {} points at it\n", o.name, number,
                      kLiveAlias));
  }
  return kOk;
}

int Rollback(Api& api, const Options& o) {
  const std::string id = api.IdOf(o.name);
  const json versions = api.Call("GET", "/v1/functions/" + id + "/versions");
  const json aliases = api.Call("GET", "/v1/functions/" + id + "/aliases");
  std::vector<int> published;
  for (const auto& v : versions["versions"]) published.push_back(v.value("version", 0));
  std::string error;
  const auto target = RollbackTarget(published, LiveVersion(aliases), o.version, &error);
  if (!target) throw Failure{o.version ? kNotFound : kUsage, error, true};
  const json alias = MoveLive(api, id, *target);
  if (o.json) {
    PrintJson(alias);
  } else {
    Print(fmt::format("Rolled back {}: alias {} points at version {}\n", o.name, kLiveAlias,
                      *target));
  }
  return kOk;
}

int KeysCreate(Api& api, const Options& o) {
  const json body = o.description.empty() ? json::object() : json{{"description", o.description}};
  const json answer = api.Call("POST", "/v1/keys", body.dump());
  if (o.json) {
    PrintJson(answer);
  } else {
    Print(
        fmt::format("Created key {}\nsecret: {}\n(the secret is shown only this once: store it "
                    "now, e.g. export WISP_KEY=...)\n",
                    answer["item"].value("id", ""), answer["item"].value("secret", "")));
  }
  return kOk;
}

int KeysList(Api& api, const Options& o) {
  const json answer = api.Call("GET", "/v1/keys");
  if (o.json) {
    PrintJson(answer);
    return kOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& k : answer["items"]) {
    rows.push_back({Cell(k.value("id", json(nullptr))), Cell(k.value("source", json(nullptr))),
                    Cell(k.value("created_at", json(nullptr))),
                    Cell(k.value("description", json(nullptr)))});
  }
  Print(RenderTable({"ID", "SOURCE", "CREATED", "DESCRIPTION"}, rows));
  return kOk;
}

int KeysRevoke(Api& api, const Options& o) {
  const json answer = api.Call("DELETE", "/v1/keys/" + o.key_id);
  if (o.json) {
    PrintJson(answer);
  } else {
    Print(fmt::format("Revoked key {}\n", o.key_id));
  }
  return kOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wisp: deploy, call and watch functions on a wispd server"};
  app.footer(kExitCodes);
  app.require_subcommand(1);
  Options o;
  o.url = EnvOr("WISP_URL", kDefaultUrl);
  app.add_flag("--json", o.json, "Print the API's JSON instead of tables");
  app.add_option("--url", o.url,
                 "wispd's address (default: $WISP_URL or " + std::string(kDefaultUrl) + ")");
  std::function<int(Api&, const Options&)> run;
  const auto command = [&](CLI::App* sub, int (*fn)(Api&, const Options&)) {
    sub->callback([&run, fn] { run = fn; });
    sub->add_flag("--json", o.json, "Print the API's JSON instead of tables");
    return sub;
  };

  auto* deploy = command(app.add_subcommand("deploy",
                                            "Deploy a project folder (every file under api/ "
                                            "becomes a function with its route), or with --name "
                                            "one function from a file or a folder (zipped)"),
                         Deploy);
  deploy->add_option("DIR", o.path,
                     "The project folder (default: the current one); with --name, a source file "
                     "or a folder to deploy as a package");
  deploy->add_option("--name,-n", o.deploy.name, "Deploy DIR as the one function of this name");
  deploy->add_option("--project", o.project,
                     "The project's name (default: wisp.toml's project, else the folder's name)");
  deploy->add_flag("--prune", o.prune,
                   "Delete the project's functions whose files are gone from the folder");
  deploy->add_option("--runtime,-r", o.deploy.runtime, "node or python (guessed from the files)");
  deploy->add_option("--handler", o.deploy.handler,
                     "handler (a single file) or file.function (default index.handler for a "
                     "folder)");
  deploy->add_option("--memory", o.deploy.memory_mb, "Memory in MB");
  deploy->add_option("--timeout", o.deploy.timeout_seconds, "Timeout in seconds");
  deploy->add_option("--env,-e", o.deploy.env, "KEY=VALUE, repeatable");

  auto* ls = command(app.add_subcommand("ls", "List functions"), List);
  ls->add_flag("--quiet,-q", o.quiet, "Names only, one a line");
  ls->add_option("--project", o.project, "Only the functions of this project");

  auto* get = command(app.add_subcommand("get", "Show a function"), Get);
  get->add_option("NAME", o.name, "Function name")->required();

  auto* invoke = command(app.add_subcommand("invoke", "Call a function"), Invoke);
  invoke->add_option("NAME", o.name, "Function name")->required();
  invoke->add_option("--data,-d", o.data, "The event: JSON text, or @FILE");
  invoke->add_flag("--async", o.async, "Queue the call and return its invocation id");
  invoke->add_option("--qualifier,-q", o.qualifier, "A published version or an alias (live)");

  auto* logs = command(app.add_subcommand("logs", "Show a function's invocation records"), Logs);
  logs->add_option("NAME", o.name, "Function name")->required();
  logs->add_flag("--follow,-f", o.follow, "Keep printing new calls as they end (Ctrl-C stops)");
  logs->add_option("--limit", o.limit, "How many records (newest)")->check(CLI::Range(1, 1000));

  auto* rm = command(app.add_subcommand("rm", "Delete a function, or a project with its functions"),
                     Remove);
  rm->add_option("NAME", o.name, "Function name");
  rm->add_option("--project", o.project, "Delete this project and every function in it");

  auto* versions =
      command(app.add_subcommand("versions", "List published versions and aliases"), Versions);
  versions->add_option("NAME", o.name, "Function name")->required();

  auto* publish = command(
      app.add_subcommand("publish", "Publish $LATEST as a version and point alias `live` at it"),
      Publish);
  publish->add_option("NAME", o.name, "Function name")->required();
  publish->add_option("--description", o.description, "What changed");

  auto* rollback = command(
      app.add_subcommand("rollback",
                         "Point alias `live` at VERSION, or at the published version before "
                         "the one it names"),
      Rollback);
  rollback->add_option("NAME", o.name, "Function name")->required();
  rollback->add_option("VERSION", o.version, "A published version")->check(CLI::PositiveNumber);

  auto* keys = app.add_subcommand("keys", "Manage API keys")->require_subcommand(1);
  auto* keys_create = command(keys->add_subcommand("create", "Create a key"), KeysCreate);
  keys_create->add_option("--description", o.description, "What the key is for");
  command(keys->add_subcommand("ls", "List keys"), KeysList);
  auto* revoke = command(keys->add_subcommand("revoke", "Revoke a key"), KeysRevoke);
  revoke->add_option("ID", o.key_id, "The key's id")->required();

  auto* completion = app.add_subcommand("completion", "Print a shell completion script");
  completion->add_option("SHELL", o.shell, "bash")->required()->check(CLI::IsMember({"bash"}));
  completion->callback([&run] {
    run = [](Api&, const Options&) {
      Print(BashCompletion());
      return static_cast<int>(kOk);
    };
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kOk : kUsage;
  }
  Api api(o.url, EnvOr("WISP_KEY", ""));
  try {
    return run(api, o);
  } catch (const Failure& failure) {
    std::cerr << "wisp: " << failure.message << "\n";
    const std::string hint = failure.says_what_to_do ? "" : Hint(failure.code, api.url());
    if (!hint.empty()) {
      std::cerr << "hint: " << hint << "\n";
    }
    return failure.code;
  } catch (const json::exception& e) {
    // An answer of an unexpected shape, or text that is not UTF-8 where JSON needs it.
    std::cerr << "wisp: " << e.what() << "\n";
    return kFailed;
  }
}
