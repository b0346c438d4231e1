#include "wisp/code/tree_paths.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

namespace wisp::code {

Result<std::vector<std::string>> SplitRelativePath(std::string_view path) {
  auto refuse = [&](std::string_view why) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}': {}", path, why));
  };
  if (path.find('\0') != std::string_view::npos) return refuse("the path has a NUL byte");
  if (path.starts_with('/')) return refuse("absolute paths are refused");
  std::vector<std::string> components;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view part = path.substr(start, end - start);
    start = end + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") return refuse("paths with '..' are refused (they could leave the tree)");
    if (part.size() > 255) return refuse("a path component is longer than 255 bytes");
    components.emplace_back(part);
  }
  if (components.empty()) return refuse("the path names no file");
  return components;
}

Result<UniqueFd> OpenDirectoryIn(int root, const std::vector<std::string>& components) {
  UniqueFd current(::dup(root));
  if (!current) return ErrnoError("dup");
  std::string walked;
  for (const auto& name : components) {
    walked += walked.empty() ? name : "/" + name;
    if (::mkdirat(current.get(), name.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoError("mkdir " + walked);
    }
    UniqueFd next(
        ::openat(current.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next) {
      const int err = errno;
      struct stat st;
      if ((err == ELOOP || err == ENOTDIR) &&
          ::fstatat(current.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("'{}' is {} and cannot hold other entries", walked,
                                     S_ISLNK(st.st_mode) ? "a symbolic link" : "not a directory"));
      }
      return ErrnoError("open " + walked, err);
    }
    current = std::move(next);
  }
  return current;
}

Result<void> WriteAll(int fd, std::string_view bytes, std::string_view what) {
  for (size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoError(fmt::format("write {}", what));
    done += static_cast<size_t>(n);
  }
  return {};
}

}  // namespace wisp::code
