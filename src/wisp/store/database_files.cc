#include "wisp/store/database_files.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "wisp/common/unique_fd.h"

namespace wisp::store {
namespace {

constexpr mode_t kPrivateFile = 0600;

Result<void> MakePrivate(const std::string& path, bool create) {
  const int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0);
  UniqueFd fd(::open(path.c_str(), flags, kPrivateFile));
  if (!fd.valid()) {
    if (!create && errno == ENOENT) return {};
    return MakeError(ErrorCode::kInternal, fmt::format("open {}: {}", path, std::strerror(errno)));
  }
  if (::fchmod(fd.get(), kPrivateFile) != 0) {
    return MakeError(ErrorCode::kInternal,
                     fmt::format("chmod 0600 {}: {}", path, std::strerror(errno)));
  }
  return {};
}

}  // namespace

Result<void> MakeDatabaseFilesPrivate(const std::string& path) {
  if (auto made = MakePrivate(path, /*create=*/true); !made) return made;
  for (const char* suffix : {"-wal", "-shm"}) {
    if (auto made = MakePrivate(path + suffix, /*create=*/false); !made) return made;
  }
  return {};
}

}  // namespace wisp::store
