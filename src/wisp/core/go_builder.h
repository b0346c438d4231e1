// GoBuilder: compiles a Go program-style function at deploy time with the host's Go toolchain
// (Debian's golang-go): `CGO_ENABLED=0 go build` of one main package, as an unprivileged user,
// offline (GOPROXY=off: the standard library only), with its caches in the data directory.
//
// Thread rules: Build blocks for seconds (the first build of a data directory compiles the
// standard library into the cache); run it on the worker pool. Builds of different functions
// may run at once: each has a directory of its own and Go locks its cache.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

#include "wisp/common/result.h"

namespace wisp::core {

struct GoBuildSettings {
  std::string go_binary = "/usr/bin/go";
  std::string work_dir;   // <data-dir>/build: one directory per build, removed afterwards
  std::string cache_dir;  // <data-dir>/go: GOCACHE and GOPATH, kept between builds
  uid_t uid = 65534;      // the build runs as this user when wispd is root
  gid_t gid = 65534;
  std::chrono::seconds timeout{300};
};

// Compiles `source` (a main package in one file) into a static binary at `output`.
// kInvalidArgument with the compiler's message when the code does not compile; kUnavailable
// when the toolchain is missing; kTimeout when it takes too long.
Result<void> BuildGoProgram(const GoBuildSettings& settings, const std::string& build_name,
                            const std::string& source, const std::string& output);

}  // namespace wisp::core
