#pragma once

#include <optional>
#include <string>
#include <vector>

namespace wisp::cli {

// The files under `dir` (recursively, symlinks skipped, paths relative to `dir`) as a zip
// archive's bytes; nullopt with `error` set if one cannot be read. `names` receives the paths.
std::optional<std::string> ZipDirectory(const std::string& dir, std::vector<std::string>* names,
                                        std::string* error);

}  // namespace wisp::cli
