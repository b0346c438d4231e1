// Projects: a group of functions (the Vercel-style API's projectId), how a function in a project
// is named where every other API sees it, and the routes a project's functions answer.
//
// Names. A project's functions are named within it ("hello"), and every function, in a project
// or not, also has a global name, the one the Lambda API, /v1 and /fn/{name} use: "<project>--
// <name>" ("shop--hello"). A project name never holds "--", so the global name splits at its
// first "--"; a function outside projects may not have "--" in its name, so no global name is
// ambiguous and the store's unique global names make a name unique per project.
//
// Routes. A function may answer a route of its project, written as the file it came from
// ("api/users/[id].ts" → /api/users/:id; "api/index.js" → /api). A request path matches the
// route with the most specific segments: segment by segment from the left, a static segment
// beats a dynamic one ("/api/users/me" over "/api/users/[id]"), and a catch-all ("[...path]")
// loses to both.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wisp/common/result.h"

namespace wisp::core {

constexpr std::string_view kProjectSeparator = "--";
constexpr size_t kMaxProjectNameLength = 40;

// 1 to 40 characters of a-z, 0-9, '-' and '_', starting with a letter or digit, without "--"
// and without a trailing '-'. kInvalidArgument saying what is wrong.
Result<void> ValidateProjectName(std::string_view project);

// "<project>--<name>", or `name` alone for no project.
std::string GlobalFunctionName(std::string_view project, std::string_view name);

// The name a function has in its project: the global name after "<project>--" (the whole name
// for no project).
std::string NameInProject(std::string_view project, std::string_view global_name);

// A name given for a function outside projects may not contain "--" (it would read as a
// project's); kInvalidArgument saying so.
Result<void> ValidateUnscopedName(std::string_view name);

// One segment of a route.
struct RouteSegment {
  enum class Kind { kStatic, kParam, kCatchAll };
  Kind kind = Kind::kStatic;
  std::string text;  // the static text, or the parameter's name
};

struct ProjectRoute {
  std::vector<RouteSegment> segments;
  // "/api/users/:id", "/api/docs/:path*": how listings show it.
  std::string pattern;
};

// The route a project file's path makes: "api/users/[id].ts" → /api/users/:id. The extension
// goes; a last segment "index" goes too. kInvalidArgument for an empty or unsafe path (".."),
// a bracket that does not close, or a catch-all that is not the last segment.
Result<ProjectRoute> RouteFromFilePath(std::string_view file_path);

struct RouteMatch {
  size_t index = 0;  // into the routes given
  std::map<std::string, std::string> params;
};

// The route of `routes` that `path` ("/api/users/42", percent-decoded per segment) reaches, most
// specific first (see above); nullopt when none does.
std::optional<RouteMatch> MatchRoute(const std::vector<ProjectRoute>& routes,
                                     std::string_view path);

}  // namespace wisp::core
