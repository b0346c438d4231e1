// Reads a whole file with read(2). For /proc and cgroup files above all: a process that ends
// while its /proc file is read makes read() fail (ESRCH), which std::ifstream's buffer turns into
// an exception whatever the stream's exception mask says (libstdc++ throws __ios_failure from
// underflow). Here that is an error like any other.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "wisp/common/result.h"
#include "wisp/common/unique_fd.h"

namespace wisp {

inline Result<std::string> ReadWholeFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoError("open " + path);
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace wisp
