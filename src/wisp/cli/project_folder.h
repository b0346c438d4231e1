#pragma once

// `wisp deploy [DIR]`: a project folder as the functions it deploys (Vercel's layout). Every
// file under api/ with a Node (.js .mjs .cjs .ts .mts) or Python (.py) extension is a function
// whose route is its path (api/users/[id].ts → /api/users/:id); files and folders whose name
// starts with '_' or '.' are helpers, never functions, and ship with the functions that may
// import them. A Node function's package holds its file, the helpers under api/, package.json
// and node_modules/ (the user's own `npm install`); a Python function's holds its file and its
// directory's other files (helpers, data), side by side at the package's root so that
// `import helper` works. wisp.toml (or wisp.json) sets the project's name and defaults and
// per-function overrides (ParseManifest).
//
// Packages are built the same way every time (sorted entries, no timestamps): the same files
// make the same bytes, so the CodeSha256 wispd reports says whether a function's code changed.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace wisp::cli {

// A function's settings from the manifest; unset fields take the project's, then wispd's.
struct FunctionSettings {
  std::optional<std::string> name;     // its name in the project (default: from its path)
  std::optional<std::string> handler;  // the exported function's name (default "handler")
  std::optional<int> memory_mb;
  std::optional<int> timeout_seconds;
  std::map<std::string, std::string> env;  // merged over the project's
  // Schedules as wispd's `schedules` field takes them: [{"expression", "name"?, "timezone"?,
  // "payload"?, "enabled"?}]; nullopt: none set.
  std::optional<nlohmann::json> schedules;
  std::optional<bool> is_public;  // its route answers without a key
};

struct Manifest {
  std::string project;  // empty: from the folder's name
  FunctionSettings defaults;
  std::map<std::string, FunctionSettings> functions;  // by file path ("api/users/[id].ts")
  std::string source;                                 // "wisp.toml", "wisp.json" or "" (none)
};

// Parses wisp.toml (`toml` true) or wisp.json text. Keys: project, memory, timeout, env (table),
// schedule (a string, a list of strings, or a list of tables {expression, timezone, payload}),
// public, and [functions."<file path>"] with name, handler, memory, timeout, env, schedule,
// public. nullopt with `error` naming the key for anything else.
std::optional<Manifest> ParseManifest(const std::string& text, bool toml, std::string* error);

// Reads DIR/wisp.toml or DIR/wisp.json (not both); a folder without either has an empty
// manifest.
std::optional<Manifest> ReadManifest(const std::string& dir, std::string* error);

// One file in a package: where it goes and where it comes from.
struct PackageEntry {
  std::string archive_path;
  std::string host_path;
};

struct ProjectFunction {
  std::string file_path;  // relative to the folder, '/'-separated: "api/users/[id].ts"
  std::string name;       // in the project
  std::string runtime;    // "node" | "python"
  std::string handler;    // "<module>.<function>" inside the package
  std::vector<PackageEntry> package;
  FunctionSettings settings;  // the project's defaults with the function's overrides applied
};

struct ProjectPlan {
  std::string project;
  std::vector<ProjectFunction> functions;  // by file path
};

// The functions of the folder `dir` with `manifest` applied. nullopt with `error` for a folder
// without api/, a manifest naming a file that is not a function, two functions with one name,
// or a project name wispd would refuse.
std::optional<ProjectPlan> PlanProject(const std::string& dir, const Manifest& manifest,
                                       std::string* error);

// The name a function's path gives it: the path under api/ without its extension, '/' → '-',
// brackets dropped ("api/users/[id].ts" → "users-id", "api/index.js" → "index").
std::string FunctionNameFromPath(const std::string& file_path);

// A path segment as a module path may spell it: every character other than letters, digits,
// '_' and '-' becomes '_' ("[id]" → "_id_").
std::string SafeSegment(const std::string& segment);

// Whether the schedules wispd shows (`stored`, which it may fill with defaults) are the ones
// `wanted`: the same number, each with the same value for every field `wanted` gives.
bool SchedulesMatch(const nlohmann::json& stored, const nlohmann::json& wanted);

// The package's zip bytes (entries sorted by archive path, no timestamps); nullopt with
// `error` if a file cannot be read.
std::optional<std::string> ZipEntries(std::vector<PackageEntry> entries, std::string* error);

// Lambda's CodeSha256: standard base64 of the SHA-256 of `bytes`.
std::string CodeSha256(const std::string& bytes);

}  // namespace wisp::cli
