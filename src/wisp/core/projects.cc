#include "wisp/core/projects.h"

#include <fmt/format.h>

#include <algorithm>

namespace wisp::core {
namespace {

tl::unexpected<Error> Invalid(std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message));
}

std::vector<std::string_view> SplitSegments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t end = std::min(path.find('/', start), path.size());
    if (end > start) out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string Decode(std::string_view segment) {
  std::string out;
  for (size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] == '%' && i + 2 < segment.size()) {
      const int high = HexValue(segment[i + 1]);
      const int low = HexValue(segment[i + 2]);
      if (high >= 0 && low >= 0) {
        out.push_back(static_cast<char>(high * 16 + low));
        i += 2;
        continue;
      }
    }
    out.push_back(segment[i]);
  }
  return out;
}

int Rank(RouteSegment::Kind kind) {
  switch (kind) {
    case RouteSegment::Kind::kStatic:
      return 0;
    case RouteSegment::Kind::kParam:
      return 1;
    case RouteSegment::Kind::kCatchAll:
      return 2;
  }
  return 2;
}

bool IsParamName(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

}  // namespace

Result<void> ValidateProjectName(std::string_view project) {
  if (project.empty() || project.size() > kMaxProjectNameLength) {
    return Invalid(fmt::format("project must be 1 to {} characters", kMaxProjectNameLength));
  }
  for (char c : project) {
    if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c != '-' && c != '_') {
      return Invalid(fmt::format(
          "project '{}' may contain only lower-case letters, digits, '-' and '_'", project));
    }
  }
  if (project.front() == '-' || project.front() == '_' || project.back() == '-') {
    return Invalid(fmt::format(
        "project '{}' must start with a letter or digit and not end with '-'", project));
  }
  if (project == "projects") {
    // /api/functions/projects/:projectId (the seed's listing) would shadow its functions.
    return Invalid("'projects' is reserved: choose another project name");
  }
  if (project.find(kProjectSeparator) != std::string_view::npos) {
    return Invalid(fmt::format(
        "project '{}' may not contain \"--\": it separates a project from a function's name",
        project));
  }
  return {};
}

std::string GlobalFunctionName(std::string_view project, std::string_view name) {
  if (project.empty()) return std::string(name);
  return fmt::format("{}{}{}", project, kProjectSeparator, name);
}

std::string NameInProject(std::string_view project, std::string_view global_name) {
  if (project.empty()) return std::string(global_name);
  const size_t prefix = project.size() + kProjectSeparator.size();
  if (global_name.size() <= prefix || !global_name.starts_with(project) ||
      global_name.substr(project.size(), kProjectSeparator.size()) != kProjectSeparator) {
    return std::string(global_name);
  }
  return std::string(global_name.substr(prefix));
}

Result<void> ValidateUnscopedName(std::string_view name) {
  if (name.find(kProjectSeparator) != std::string_view::npos) {
    return Invalid(fmt::format(
        "name '{}' contains \"--\", which separates a project from a function's name: give the "
        "project as \"project\" and the name without it",
        name));
  }
  return {};
}

Result<ProjectRoute> RouteFromFilePath(std::string_view file_path) {
  if (file_path.empty() || file_path.front() == '/') {
    return Invalid(
        fmt::format("file_path '{}' must be a relative path such as api/hello.js", file_path));
  }
  auto parts = SplitSegments(file_path);
  if (parts.empty()) return Invalid("file_path is empty");
  // The last part loses its extension (the first dot after any bracket: "[id].ts", "a.b.js").
  std::string_view last = parts.back();
  const size_t bracket = last.rfind(']');
  const size_t dot = last.find('.', bracket == std::string_view::npos ? 0 : bracket);
  if (dot != std::string_view::npos) last = last.substr(0, dot);
  parts.back() = last;
  if (parts.back() == "index") parts.pop_back();
  ProjectRoute route;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string_view part = parts[i];
    if (part == "." || part == ".." || part.empty()) {
      return Invalid(fmt::format("file_path '{}' may not contain '.' or '..' segments", file_path));
    }
    RouteSegment segment;
    if (part.front() == '[') {
      if (part.back() != ']' || part.size() < 3) {
        return Invalid(
            fmt::format("file_path '{}': '{}' opens a bracket it does not close", file_path, part));
      }
      std::string_view name = part.substr(1, part.size() - 2);
      if (name.starts_with("...")) {
        if (i + 1 != parts.size()) {
          return Invalid(fmt::format("file_path '{}': the catch-all '{}' must be the last segment",
                                     file_path, part));
        }
        name.remove_prefix(3);
        segment.kind = RouteSegment::Kind::kCatchAll;
      } else {
        segment.kind = RouteSegment::Kind::kParam;
      }
      if (!IsParamName(name)) {
        return Invalid(
            fmt::format("file_path '{}': '{}' is not a parameter name", file_path, name));
      }
      segment.text = std::string(name);
    } else {
      if (part.find_first_of("[]") != std::string_view::npos) {
        return Invalid(fmt::format(
            "file_path '{}': '{}' mixes a bracket with text (a dynamic segment is a whole "
            "segment, e.g. [id])",
            file_path, part));
      }
      segment.text = std::string(part);
    }
    route.pattern += '/';
    switch (segment.kind) {
      case RouteSegment::Kind::kStatic:
        route.pattern += segment.text;
        break;
      case RouteSegment::Kind::kParam:
        route.pattern += ":" + segment.text;
        break;
      case RouteSegment::Kind::kCatchAll:
        route.pattern += ":" + segment.text + "*";
        break;
    }
    route.segments.push_back(std::move(segment));
  }
  if (route.pattern.empty()) route.pattern = "/";
  return route;
}

std::optional<RouteMatch> MatchRoute(const std::vector<ProjectRoute>& routes,
                                     std::string_view path) {
  const auto parts = SplitSegments(path);
  std::optional<RouteMatch> best;
  std::vector<int> best_ranks;
  for (size_t r = 0; r < routes.size(); ++r) {
    const auto& segments = routes[r].segments;
    RouteMatch match{r, {}};
    std::vector<int> ranks;
    bool ok = true;
    size_t i = 0;
    for (; i < segments.size() && ok; ++i) {
      const RouteSegment& segment = segments[i];
      ranks.push_back(Rank(segment.kind));
      if (segment.kind == RouteSegment::Kind::kCatchAll) {
        if (i >= parts.size()) {
          ok = false;
          break;
        }
        std::string joined;
        for (size_t j = i; j < parts.size(); ++j) {
          if (!joined.empty()) joined += '/';
          joined += Decode(parts[j]);
        }
        match.params[segment.text] = std::move(joined);
        i = parts.size();
        break;
      }
      if (i >= parts.size()) {
        ok = false;
        break;
      }
      const std::string decoded = Decode(parts[i]);
      if (segment.kind == RouteSegment::Kind::kStatic) {
        ok = decoded == segment.text;
      } else {
        match.params[segment.text] = decoded;
      }
    }
    if (!ok || i != parts.size()) continue;
    if (!best || ranks < best_ranks) {
      best = std::move(match);
      best_ranks = std::move(ranks);
    }
  }
  return best;
}

}  // namespace wisp::core
