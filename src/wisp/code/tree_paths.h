// Paths inside a tree being written: checked component by component and walked with directory
// fds that never follow a symbolic link, so nothing written lands outside the tree whatever
// the names say.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "wisp/common/result.h"
#include "wisp/common/unique_fd.h"

namespace wisp::code {

// The components of a relative path: "./" and empty components dropped; kInvalidArgument for an
// absolute path, a ".." component, a NUL byte, a component over 255 bytes, or nothing left.
Result<std::vector<std::string>> SplitRelativePath(std::string_view path);

// Opens the directory `components` names under `root` (an fd of a directory), creating missing
// directories (mode 0755), following no symbolic link. kInvalidArgument when a component is a
// link or not a directory.
Result<UniqueFd> OpenDirectoryIn(int root, const std::vector<std::string>& components);

// Writes all of `bytes` to `fd`.
Result<void> WriteAll(int fd, std::string_view bytes, std::string_view what);

}  // namespace wisp::code
