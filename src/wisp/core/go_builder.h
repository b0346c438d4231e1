// GoBuilder: runs deploy-time builds in sandboxes: Go program-style functions, and TypeScript
// (Node) packages with tsc. It compiles Go program-style functions at deploy time (`CGO_ENABLED=0
// go build` of one main package with Debian's golang-go, offline: GOPROXY=off, the standard library
// only), each build in a sandbox of its own like any function: namespaces, a cgroup with the build
// limits below, seccomp, no network, a wall-time limit. The sandboxes come from a launcher of their
// own (forked by main() before any thread, like the functions' launcher), so builds never take the
// store's worker pool, the scheduler's instances or its exit callback; at most `concurrency`
// run at once, the rest wait in arrival order.
//
// On the host, everything of a build lives under `build_dir` (root's, mode 0700, so no other
// local user reaches anything below it):
//   go/            GOCACHE and GOPATH, kept between builds; owned by the build uid, mode 0700:
//                  its one writer is the build sandbox (bound read-write at /go)
//   work/<name>/   one per build, removed afterwards: src/ (main.go, go.mod; root's, bound
//                  read-only at /var/task) and out/ (the build uid's, bound read-write at /out)
// The result is taken by TakeBuildOutput once the sandbox is dead.
//
// Thread rules: construct, call and destroy on the io thread that runs `io`. File work (writing
// the source, copying the result) runs on a thread of the builder's own.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "wisp/common/asio.h"
#include "wisp/common/result.h"
#include "wisp/sandbox/backend.h"

namespace wisp::core {

struct GoBuildSettings {
  // Host path of the toolchain; the same inside the sandbox, which mounts the host's /usr.
  std::string go_binary = "/usr/bin/go";
  // Debian's node-typescript; a script run by the node the sandbox finds on its PATH.
  std::string tsc_binary = "/usr/bin/tsc";
  std::string build_dir;  // <data-dir>/build (see above)
  // The build sandbox's uid/gid outside (root inside): it owns the cache. An id of its own: a
  // host process with the same uid could signal or ptrace the compiler.
  uid_t uid = 0x70000000 - 1;
  gid_t gid = 0x70000000 - 1;
  // Limits of each build's sandbox. The Go compiler needs a few hundred MB for large packages.
  uint64_t memory_limit_bytes = 1ull << 30;
  uint32_t pids_limit = 512;
  double vcpu = 1.0;  // relative CPU weight, as a function's vcpu
  std::chrono::seconds timeout{300};
  uint32_t concurrency = 1;  // builds running at once; more wait for their turn
};

// Prepares `settings.build_dir` for builds: makes it root's with mode 0700 (refusing a symlink),
// keeps `go/` only if it is a directory of the build uid with mode 0700 (else starts it afresh),
// and removes everything else (work of an earlier run, directories of older layouts). Blocking:
// call at start.
Result<void> PrepareBuildDir(const GoBuildSettings& settings);

// Copies a finished build's `<work_dir>/out/function` to `output` (mode 0755), trusting nothing
// the build could have changed: `out` is opened without following symlinks and taken over by
// root (owner root, mode 0700) before anything in it is opened, so no other uid can change it
// from then on; `function` is opened with O_NOFOLLOW relative to it and must be a regular file
// with one link, owned by `build_uid`; the copy is read from that very fd. `work_dir` must be
// root's and reachable by root only (it is under build_dir). Blocking.
Result<void> TakeBuildOutput(const std::string& work_dir, uid_t build_uid,
                             const std::string& output);
// The same for a build that leaves a directory tree in `<work_dir>/out`: each directory is taken
// over by root before it is read; only directories and regular files of the build's own (one
// link) are accepted, at most `max_bytes` and `max_entries` in all; they are copied to the same
// relative paths under `output_dir` (replacing files there). Blocking.
Result<void> TakeBuildOutputTree(const std::string& work_dir, uid_t build_uid,
                                 const std::string& output_dir, uint64_t max_bytes,
                                 uint64_t max_entries);

// The TypeScript sources of a Node package at `dir` (relative paths of .ts, .mts and .cts files,
// no declaration files, nothing under node_modules), sorted. Blocking.
std::vector<std::string> TypeScriptSources(const std::string& dir);
// tsc's messages for the user: paths relative to the package, positions as file:line:column.
std::string TidyTypeScriptMessages(std::string text);

class GoBuilder {
 public:
  // `sandboxes`: the builds' own backend (a ProcessJail on the build launcher); the builder
  // takes its exit callback.
  GoBuilder(asio::io_context& io, std::unique_ptr<sandbox::Backend> sandboxes,
            GoBuildSettings settings);
  ~GoBuilder();
  GoBuilder(const GoBuilder&) = delete;
  GoBuilder& operator=(const GoBuilder&) = delete;

  // Compiles `source` (a main package in one file) into a static binary at `output`, waiting
  // for a turn first. kInvalidArgument with the compiler's message when the code does not
  // compile; kResourceExhausted when the build hit its memory limit; kTimeout when it ran
  // longer than the limit; kUnavailable when the toolchain is missing or too many builds wait.
  // `build_name` names the build's directory and sandbox: [A-Za-z0-9_-], unique among builds.
  asio::awaitable<Result<void>> Build(std::string build_name, std::string source,
                                      std::string output);
  // Compiles the TypeScript of the Node package at `source_dir` (a code tree) with tsc (type
  // checked, strict) into `output_dir`, each .ts/.mts/.cts file's JavaScript at its own relative
  // path (.js/.mjs/.cjs), in a build sandbox under the same limits and turns as Go builds.
  // kInvalidArgument with tsc's messages (file:line:column) on a type or syntax error;
  // kUnavailable when tsc is not installed; kTimeout, kResourceExhausted as Build.
  asio::awaitable<Result<void>> CompileTypeScript(std::string build_name, std::string source_dir,
                                                  std::string output_dir);

  const GoBuildSettings& settings() const { return settings_; }
  size_t running() const { return running_; }
  size_t waiting() const { return waiting_.size(); }

 private:
  struct RunningBuild;
  class Turn;
  // One build: the command, and how its sandbox's source is made and its result taken (both on
  // the file thread).
  struct Job {
    std::string what;  // "go build", "tsc": for messages
    std::vector<std::string> argv;
    std::vector<std::string> env;
    bool go_cache = false;  // the Go cache bound read-write at /go
    std::function<Result<void>(const std::string& src_dir)> prepare;
    std::function<Result<void>(const std::string& work_dir)> take;
    std::function<std::string(std::string)> tidy;  // the tool's output as the user reads it
  };

  // Waits for a turn, runs `job` in a sandbox, takes its result, removes its work directory.
  asio::awaitable<Result<void>> Run(std::string build_name, Job job);
  asio::awaitable<Result<void>> Compile(const std::string& build_name, const std::string& work_dir,
                                        const Job& job);
  sandbox::SpawnSpec SpecFor(const std::string& build_name, const std::string& work_dir,
                             const Job& job) const;

  asio::io_context& io_;
  std::unique_ptr<sandbox::Backend> sandboxes_;
  const GoBuildSettings settings_;
  // Writing sources and copying results: off the io thread, and off the store's pool.
  asio::thread_pool files_{1};
  size_t running_ = 0;
  std::deque<std::shared_ptr<Event>> waiting_;  // builds waiting for a turn, oldest first
  std::map<std::string, std::shared_ptr<RunningBuild>> builds_;  // by sandbox instance id
  // Lets handlers and coroutine frames that outlive the builder see that it is gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace wisp::core
