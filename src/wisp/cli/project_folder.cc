#include "wisp/cli/project_folder.h"

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <toml.hpp>

#include "wisp/cli/cli_core.h"

namespace wisp::cli {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kNodeExtensions[] = {".js", ".mjs", ".cjs", ".ts", ".mts"};

json TomlToJson(const toml::value& value) {
  if (value.is_table()) {
    json out = json::object();
    for (const auto& [key, item] : value.as_table()) out[key] = TomlToJson(item);
    return out;
  }
  if (value.is_array()) {
    json out = json::array();
    for (const auto& item : value.as_array()) out.push_back(TomlToJson(item));
    return out;
  }
  if (value.is_string()) return value.as_string().str;
  if (value.is_boolean()) return value.as_boolean();
  if (value.is_integer()) return value.as_integer();
  if (value.is_floating()) return value.as_floating();
  // Dates and times: as TOML writes them.
  std::ostringstream text;
  text << value;
  return text.str();
}

// Reads the settings keys of `object` (the top level or a [functions."..."] table) into `out`.
// `where` names the table in messages; `allowed_extra` are keys handled by the caller.
bool ReadSettings(const json& object, const std::string& where,
                  const std::set<std::string>& allowed_extra, FunctionSettings& out,
                  std::string* error) {
  const auto fail = [&](const std::string& message) {
    *error = where.empty() ? message : fmt::format("{}: {}", where, message);
    return false;
  };
  for (const auto& [key, value] : object.items()) {
    if (allowed_extra.count(key)) continue;
    if (key == "name" || key == "handler") {
      if (!value.is_string()) return fail(fmt::format("{} must be a string", key));
      (key == "name" ? out.name : out.handler) = value.get<std::string>();
    } else if (key == "memory" || key == "timeout") {
      if (!value.is_number_integer()) return fail(fmt::format("{} must be an integer", key));
      (key == "memory" ? out.memory_mb : out.timeout_seconds) = value.get<int>();
    } else if (key == "env") {
      if (!value.is_object()) return fail("env must be a table of strings");
      for (const auto& [name, text] : value.items()) {
        if (!text.is_string()) return fail(fmt::format("env.{} must be a string", name));
        out.env[name] = text.get<std::string>();
      }
    } else if (key == "public") {
      if (!value.is_boolean()) return fail("public must be true or false");
      out.is_public = value.get<bool>();
    } else if (key == "schedule" || key == "schedules") {
      json list = value.is_array() ? value : json::array({value});
      json schedules = json::array();
      for (const auto& entry : list) {
        if (entry.is_string()) {
          schedules.push_back({{"expression", entry}});
        } else if (entry.is_object() && entry.contains("expression") &&
                   entry["expression"].is_string()) {
          for (const auto& [field, field_value] : entry.items()) {
            if (field != "expression" && field != "timezone" && field != "payload" &&
                field != "name" && field != "enabled") {
              return fail(fmt::format(
                  "schedule: unknown field '{}' (name, expression, timezone, payload, enabled)",
                  field));
            }
          }
          schedules.push_back(entry);
        } else {
          return fail(
              "schedule must be an expression (\"rate(5 minutes)\", \"cron(0 9 * * ? *)\"), a "
              "list of them, or tables with name, expression, timezone, payload and enabled");
        }
      }
      out.schedules = std::move(schedules);
    } else {
      const std::string keys = where.empty()
                                   ? "project, memory, timeout, env, schedule, public, functions"
                                   : "name, handler, memory, timeout, env, schedule, public";
      return fail(fmt::format("unknown key '{}' (known: {})", key, keys));
    }
  }
  return true;
}

FunctionSettings Merge(const FunctionSettings& defaults, const FunctionSettings& own) {
  FunctionSettings out = defaults;
  out.name = own.name;  // a name is never a default
  if (own.handler) out.handler = own.handler;
  if (own.memory_mb) out.memory_mb = own.memory_mb;
  if (own.timeout_seconds) out.timeout_seconds = own.timeout_seconds;
  for (const auto& [key, value] : own.env) out.env[key] = value;
  if (own.schedules) out.schedules = own.schedules;
  if (own.is_public) out.is_public = own.is_public;
  return out;
}

bool IsHelperName(const std::string& name) {
  return !name.empty() && (name[0] == '_' || name[0] == '.');
}

std::string RuntimeOf(const fs::path& file) {
  const std::string name = file.filename().string();
  if (name.ends_with(".d.ts")) return "";
  const std::string extension = file.extension().string();
  for (const char* node : kNodeExtensions) {
    if (extension == node) return "node";
  }
  if (extension == ".py") return "python";
  return "";
}

// Every regular file under `dir` (no symlinks), relative '/'-separated paths, sorted.
std::vector<std::string> FilesUnder(const fs::path& dir, std::string* error) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_regular_file() && !it->is_symlink()) {
      out.push_back(fs::relative(it->path(), dir).generic_string());
    }
  }
  if (ec) *error = fmt::format("cannot read {}: {}", dir.string(), ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> Split(const std::string& path) {
  std::vector<std::string> out;
  std::stringstream in(path);
  std::string part;
  while (std::getline(in, part, '/')) out.push_back(part);
  return out;
}

// "api/users/[id].ts" → "api/users/_id_.ts": every directory and the stem made safe for a
// handler's module path; the extension stays.
std::string SafePath(const std::string& path) {
  auto parts = Split(path);
  std::string& last = parts.back();
  const size_t dot = last.rfind('.');
  std::string stem = dot == std::string::npos ? last : last.substr(0, dot);
  std::string extension = dot == std::string::npos ? "" : last.substr(dot);
  if (stem.ends_with(".d") && extension == ".ts") {
    stem.resize(stem.size() - 2);
    extension = ".d.ts";
  }
  last = SafeSegment(stem) + extension;
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += '/';
    out += i + 1 == parts.size() ? parts[i] : SafeSegment(parts[i]);
  }
  return out;
}

}  // namespace

std::string SafeSegment(const std::string& segment) {
  std::string out = segment;
  for (char& c : out) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') c = '_';
  }
  return out;
}

std::string FunctionNameFromPath(const std::string& file_path) {
  std::string path = file_path;
  if (path.starts_with("api/")) path = path.substr(4);
  // The extension starts at the first dot after the last bracket ("[...path].mjs").
  const size_t slash = path.rfind('/');
  const size_t bracket = path.rfind(']');
  size_t from = slash == std::string::npos ? 0 : slash;
  if (bracket != std::string::npos && bracket > from) from = bracket;
  const size_t dot = path.find('.', from);
  if (dot != std::string::npos) path.resize(dot);
  std::string out;
  for (char c : path) {
    if (c == '[' || c == ']') continue;
    if (c == '/') {
      out += '-';
    } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-') {
      out += c;
    } else if (c == '.') {
      continue;  // "[...path]" → "path"
    } else {
      out += '_';
    }
  }
  return out;
}

std::optional<Manifest> ParseManifest(const std::string& text, bool is_toml, std::string* error) {
  json root;
  if (is_toml) {
    try {
      std::istringstream in(text);
      root = TomlToJson(toml::parse(in, "wisp.toml"));
    } catch (const std::exception& e) {
      *error = e.what();
      return std::nullopt;
    }
  } else {
    root = json::parse(text, nullptr, false);
    if (root.is_discarded() || !root.is_object()) {
      *error = "wisp.json is not a JSON object";
      return std::nullopt;
    }
  }
  Manifest manifest;
  manifest.source = is_toml ? "wisp.toml" : "wisp.json";
  if (root.contains("project")) {
    if (!root["project"].is_string()) {
      *error = "project must be a string";
      return std::nullopt;
    }
    manifest.project = root["project"].get<std::string>();
  }
  if (!ReadSettings(root, "", {"project", "functions"}, manifest.defaults, error)) {
    return std::nullopt;
  }
  if (manifest.defaults.name || manifest.defaults.handler) {
    *error = "name and handler belong to a function: set them under [functions.\"<file>\"]";
    return std::nullopt;
  }
  if (root.contains("functions")) {
    if (!root["functions"].is_object()) {
      *error = "functions must be a table of tables keyed by file path";
      return std::nullopt;
    }
    for (const auto& [file, settings] : root["functions"].items()) {
      if (!settings.is_object()) {
        *error = fmt::format("functions.\"{}\" must be a table", file);
        return std::nullopt;
      }
      FunctionSettings own;
      if (!ReadSettings(settings, fmt::format("functions.\"{}\"", file), {}, own, error)) {
        return std::nullopt;
      }
      manifest.functions[file] = std::move(own);
    }
  }
  return manifest;
}

std::optional<Manifest> ReadManifest(const std::string& dir, std::string* error) {
  const fs::path toml_path = fs::path(dir) / "wisp.toml";
  const fs::path json_path = fs::path(dir) / "wisp.json";
  const bool has_toml = fs::exists(toml_path);
  const bool has_json = fs::exists(json_path);
  if (has_toml && has_json) {
    *error = fmt::format("{} has both wisp.toml and wisp.json: keep one", dir);
    return std::nullopt;
  }
  if (!has_toml && !has_json) return Manifest{};
  const fs::path path = has_toml ? toml_path : json_path;
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) {
    *error = fmt::format("cannot read {}", path.string());
    return std::nullopt;
  }
  std::string parse_error;
  auto manifest = ParseManifest(text.str(), has_toml, &parse_error);
  if (!manifest) *error = fmt::format("{}: {}", path.string(), parse_error);
  return manifest;
}

std::optional<ProjectPlan> PlanProject(const std::string& dir, const Manifest& manifest,
                                       std::string* error) {
  const fs::path root(dir);
  if (!fs::is_directory(root / "api")) {
    *error = fmt::format(
        "{} has no api/ folder: `wisp deploy DIR` deploys every file under DIR/api as a "
        "function (or give --name to deploy DIR as one function)",
        dir);
    return std::nullopt;
  }
  ProjectPlan plan;
  plan.project = manifest.project;
  if (plan.project.empty()) {
    // The folder's own name, in the form project names take.
    std::string base = fs::weakly_canonical(root).filename().string();
    for (char& c : base) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') c = '-';
    }
    while (base.find("--") != std::string::npos) base.erase(base.find("--"), 1);
    while (!base.empty() && (base.front() == '-' || base.front() == '_')) base.erase(0, 1);
    while (!base.empty() && base.back() == '-') base.pop_back();
    plan.project = base.substr(0, 40);
  }
  if (plan.project.empty()) {
    *error = "cannot make a project name of the folder's name: set project in wisp.toml";
    return std::nullopt;
  }

  std::string walk_error;
  std::vector<std::string> api_files = FilesUnder(root / "api", &walk_error);
  if (!walk_error.empty()) {
    *error = walk_error;
    return std::nullopt;
  }
  // Helpers: any file under api/ with a '_' or '.' segment, and node_modules inside api/.
  std::vector<std::string> helpers;
  std::vector<std::string> functions;
  for (const auto& file : api_files) {
    const auto parts = Split(file);
    const bool helper = std::any_of(parts.begin(), parts.end(), [](const std::string& part) {
      return IsHelperName(part) || part == "node_modules";
    });
    if (helper) {
      helpers.push_back("api/" + file);
    } else if (!RuntimeOf(file).empty()) {
      functions.push_back("api/" + file);
    } else {
      helpers.push_back("api/" + file);  // data files: shipped, never run
    }
  }
  std::vector<std::string> node_shared;
  if (fs::is_regular_file(root / "package.json")) node_shared.push_back("package.json");
  for (const auto& file : FilesUnder(root / "node_modules", &walk_error)) {
    node_shared.push_back("node_modules/" + file);
  }
  if (!walk_error.empty()) {
    *error = walk_error;
    return std::nullopt;
  }

  for (const auto& [file, settings] : manifest.functions) {
    if (std::find(functions.begin(), functions.end(), file) == functions.end()) {
      *error = fmt::format(
          "{}: functions.\"{}\" names no function (functions are the .js, .mjs, .cjs, .ts, .mts "
          "and .py files under api/ not starting with '_')",
          manifest.source, file);
      return std::nullopt;
    }
  }
  std::map<std::string, std::string> names;  // name → file
  for (const auto& file : functions) {
    ProjectFunction fn;
    fn.file_path = file;
    fn.runtime = RuntimeOf(file);
    auto own = manifest.functions.find(file);
    fn.settings = Merge(manifest.defaults,
                        own == manifest.functions.end() ? FunctionSettings{} : own->second);
    fn.name = fn.settings.name.value_or(FunctionNameFromPath(file));
    if (fn.name.empty() || fn.name.find("--") != std::string::npos) {
      *error = fmt::format(
          "{}: its name would be '{}'; set one in wisp.toml ([functions.\"{}\"] name = \"...\")",
          file, fn.name, file);
      return std::nullopt;
    }
    if (auto [it, fresh] = names.emplace(fn.name, file); !fresh) {
      *error = fmt::format(
          "{} and {} would both be the function '{}': rename one, or set a name in wisp.toml",
          it->second, file, fn.name);
      return std::nullopt;
    }
    const std::string function_name = fn.settings.handler.value_or("handler");
    std::set<std::string> taken;
    const auto add = [&](const std::string& archive, const std::string& host) {
      if (!taken.insert(archive).second) return false;
      fn.package.push_back({archive, (root / host).string()});
      return true;
    };
    if (fn.runtime == "node") {
      const std::string safe = SafePath(file);
      add(safe, file);
      for (const auto& helper : helpers) {
        if (!add(SafePath(helper), helper)) {
          *error = fmt::format("{} and another file under api/ map to the same package path {}",
                               helper, SafePath(helper));
          return std::nullopt;
        }
      }
      for (const auto& shared : node_shared) add(shared, shared);
      const size_t dot = safe.rfind('.');
      fn.handler = safe.substr(0, safe.ends_with(".d.ts") ? dot - 2 : dot) + "." + function_name;
    } else {
      // Python: the file and its directory's other files that are not functions, at the root.
      const fs::path parent = fs::path(file).parent_path();
      const std::string stem = SafeSegment(fs::path(file).stem().string());
      add(stem + ".py", file);
      for (const auto& helper : helpers) {
        const fs::path helper_path(helper);
        const auto relative = helper_path.lexically_relative(parent).generic_string();
        if (relative.starts_with("..") || relative.find("node_modules") != std::string::npos) {
          continue;
        }
        add(relative, helper);
      }
      fn.handler = stem + "." + function_name;
    }
    plan.functions.push_back(std::move(fn));
  }
  if (plan.functions.empty()) {
    *error = fmt::format("{}/api has no functions (.js, .mjs, .cjs, .ts, .mts or .py files)", dir);
    return std::nullopt;
  }
  return plan;
}

namespace {
la_ssize_t AppendTo(archive*, void* out, const void* data, size_t size) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(data), size);
  return static_cast<la_ssize_t>(size);
}
}  // namespace

std::optional<std::string> ZipEntries(std::vector<PackageEntry> entries, std::string* error) {
  std::sort(entries.begin(), entries.end(), [](const PackageEntry& a, const PackageEntry& b) {
    return a.archive_path < b.archive_path;
  });
  std::string out;
  std::unique_ptr<archive, decltype(&archive_write_free)> zip(archive_write_new(),
                                                              archive_write_free);
  archive_write_set_format_zip(zip.get());
  archive_write_open(zip.get(), &out, nullptr, AppendTo, nullptr);
  for (const auto& entry : entries) {
    std::ifstream in(entry.host_path, std::ios::binary);
    std::stringstream content;
    content << in.rdbuf();
    if (!in) {
      *error = fmt::format("cannot read {}", entry.host_path);
      return std::nullopt;
    }
    const std::string bytes = content.str();
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> item(archive_entry_new(),
                                                                       archive_entry_free);
    archive_entry_set_pathname(item.get(), entry.archive_path.c_str());
    archive_entry_set_size(item.get(), static_cast<la_int64_t>(bytes.size()));
    archive_entry_set_filetype(item.get(), AE_IFREG);
    const bool executable =
        (fs::status(entry.host_path).permissions() & fs::perms::owner_exec) != fs::perms::none;
    archive_entry_set_perm(item.get(), executable ? 0755 : 0644);
    if (archive_write_header(zip.get(), item.get()) != ARCHIVE_OK ||
        archive_write_data(zip.get(), bytes.data(), bytes.size()) < 0) {
      *error =
          fmt::format("cannot zip {}: {}", entry.archive_path, archive_error_string(zip.get()));
      return std::nullopt;
    }
  }
  if (archive_write_close(zip.get()) != ARCHIVE_OK) {
    *error = fmt::format("cannot zip: {}", archive_error_string(zip.get()));
    return std::nullopt;
  }
  return out;
}

bool SchedulesMatch(const json& stored, const json& wanted) {
  if (!stored.is_array() || !wanted.is_array() || stored.size() != wanted.size()) return false;
  for (size_t i = 0; i < wanted.size(); ++i) {
    if (!stored[i].is_object()) return false;
    for (const auto& [key, value] : wanted[i].items()) {
      if (!stored[i].contains(key) || stored[i][key] != value) return false;
    }
  }
  return true;
}

std::string CodeSha256(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr);
  return EncodeBase64(std::string_view(reinterpret_cast<const char*>(digest), size));
}

}  // namespace wisp::cli
