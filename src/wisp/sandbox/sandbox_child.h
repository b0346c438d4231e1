// The code that runs in a freshly cloned sandbox process (pid 1 of its own user, pid, mount,
// net, ipc and uts namespaces): it builds the sandbox's root file system, drops every
// privilege, installs the seccomp filter, starts the runtime as pid 2 and stays behind as a
// tiny init.
//
// The steps, in order, each for a reason (see the functions for details):
//   wait for "G"      the launcher has put us in our cgroup and written our uid/gid maps
//   cgroup namespace  created after joining the cgroup, so the sandbox's view starts there
//   open stage paths  root tmpfs, code and shims, by paths relative to the working directory:
//                     the launcher's stage (Stage in launcher.cc), never the host's layout
//   become root       inside the user namespace = the instance's own unprivileged host uid
//   network           bring up lo; with outbound network, routes that refuse private and
//                     metadata addresses (unless the operator allows them); make the Runtime API
//                     listener, send it to the launcher
//   build root        tmpfs + read-only binds, /proc with masks, minimal /dev, /tmp, /dev/shm,
//                     and a job's writable binds (SpawnSpec::writable_binds: nosuid, noexec)
//   pivot_root        the host's tree is detached entirely
//   drop privileges   rlimits, securebits, bounding/ambient/effective caps, no_new_privs
//   seccomp           installed in init, inherited by the runtime and all it ever starts
//   wait for "N"      only with outbound network: the launcher's slirp4netns configured tap0
//   fork + execve     the runtime as pid 2, with only fds 0, 1, 2 and 3 (the Runtime API
//                     channel, kRuntimeApiChannelFd)
//
// Talks to the launcher over `sync_fd` (SOCK_SEQPACKET), one message per datagram:
//   launcher -> child  "G"              cgroup and uid/gid maps are set up: go
//                      "N"              (outbound network only) tap0 and its route are up
//   child -> launcher  "L" + fd         the Runtime API listener, made inside the sandbox
//                      "E<step>: <why>" a setup step failed; the child then exits
//                      "R"              the runtime was exec'd: the instance is ready
//                      "S<wait status>" the runtime ended (sent by init just before it exits)
//
// Thread rules: runs only in the single-threaded child of the launcher; never returns.
#pragma once

#include <sys/types.h>

#include <string>

#include "wisp/sandbox/backend.h"
#include "wisp/sandbox/seccomp_filter.h"

namespace wisp::sandbox {

struct SandboxChildArgs {
  const SpawnSpec* spec = nullptr;
  // Relative to the working directory, which is the launcher's stage: the empty directory to
  // mount the sandbox's root tmpfs on, and the stage's copies of SpawnSpec::code_dir (for a
  // prewarmed instance, its own live directory) and runtime_dir (empty: none). The spec's own
  // paths are host paths the sandbox never uses.
  std::string root_dir;
  std::string code_dir;
  std::string runtime_dir;
  const SeccompFilter* seccomp = nullptr;  // compiled by the launcher; installed before exec
  int sync_fd = -1;                        // child end of the sync socketpair
  int output_fd = -1;                      // write end of the stdout+stderr pipe
  int channel_fd = -1;                     // the runtime's end of the Runtime API channel
};

[[noreturn]] void RunSandboxChild(const SandboxChildArgs& args);

}  // namespace wisp::sandbox
