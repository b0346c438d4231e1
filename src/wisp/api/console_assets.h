// The web console's static files (console/ in the source tree), built into wispd by
// cmake/embed_files.cmake, and the routes that serve them.
#pragma once

#include <span>
#include <string_view>

#include "wisp/api/http.h"

namespace wisp::api {

struct ConsoleAsset {
  std::string_view name;  // relative to console/, e.g. "app.js"
  std::string_view bytes;
};

// Every file of the console, in the order of the build's list.
std::span<const ConsoleAsset> ConsoleAssets();

// GET / (and /console) answer the console's page, GET /console/{file} its other files. They
// hold no data: the page asks /v1 for everything, with the caller's key.
void AddConsoleRoutes(Router& router);

// True for the paths of AddConsoleRoutes, which an authentication gate lets through: the page
// must load before its user has entered a key.
bool IsConsolePath(std::string_view method, std::string_view path);

}  // namespace wisp::api
