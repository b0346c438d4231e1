// The code that runs in a freshly cloned sandbox process (pid 1 of its own pid, mount, net,
// ipc and uts namespaces): it builds the sandbox's root file system, drops privileges, starts
// the runtime as pid 2 and stays behind as a tiny init.
//
// Talks to the launcher over `sync_fd` (SOCK_SEQPACKET), one message per datagram:
//   launcher -> child  "G"              cgroup is set up: go
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

namespace wisp::sandbox {

struct SandboxChildArgs {
  const SpawnSpec* spec = nullptr;
  std::string root_dir;  // empty host directory to mount the sandbox's root tmpfs on
  uid_t uid = 65534;
  gid_t gid = 65534;
  int sync_fd = -1;    // child end of the sync socketpair
  int output_fd = -1;  // write end of the stdout+stderr pipe
};

[[noreturn]] void RunSandboxChild(const SandboxChildArgs& args);

}  // namespace wisp::sandbox
