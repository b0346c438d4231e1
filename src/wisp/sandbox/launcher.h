// Launcher: the small privileged process that creates sandboxes. wispd forks it at the very
// start of main(), before any thread exists, because fork() in a threaded process copies only
// the calling thread and whatever locks the others held. The launcher stays single-threaded:
// clone() with new namespaces, mounts, cgroup writes and setuid all happen there, never in
// wispd's threads.
//
// Every sandbox is a process tree in new user, pid, mount, network, ipc, uts and cgroup
// namespaces, in a cgroup of its own, with no capabilities and a seccomp filter: see
// sandbox_child.h for the steps and SECURITY.md for what each one stops.
//
// wispd talks to it over a SOCK_SEQPACKET socketpair (see control_protocol.h). Closing that
// channel, or wispd dying, makes the launcher kill every instance, remove their cgroups and
// exit.
//
// Thread rules: Fork() only before any thread exists. The handle itself is a plain owner: use
// it from one thread at a time (ProcessJail owns it and uses it on its io thread).
#pragma once

#include <sys/types.h>

#include <string>

#include "wisp/common/result.h"
#include "wisp/common/unique_fd.h"

namespace wisp::sandbox {

struct LauncherOptions {
  // An empty host directory wispd creates (e.g. <data-dir>/sandbox/root). Each sandbox mounts a
  // fresh tmpfs on it inside its own mount namespace and pivot_roots there; the host never
  // sees anything on it.
  std::string sandbox_root_dir;
  // The launcher's own cgroup, relative to each hierarchy root: "wisp/<wispd pid>". Instances
  // get "<cgroup_group>/<instance_id>". Groups under "wisp/" named for a pid that is no longer
  // alive are left over from a launcher that died, and are removed at start.
  std::string cgroup_group;
  std::string cgroup_mount = "/sys/fs/cgroup";
  // Root inside each sandbox's user namespace is this uid/gid outside: an unprivileged id that
  // owns nothing on the host.
  uid_t sandbox_uid = 65534;  // nobody
  gid_t sandbox_gid = 65534;  // nogroup
  // The seccomp policy text (syntax: seccomp_policy.txt); empty means DefaultSeccompPolicy().
  // Compiled once at start: a policy that does not compile stops the launcher.
  std::string seccomp_policy;
  // The user-mode network stack started for each instance that asks for outbound access
  // (SpawnSpec::network_outbound). Only those spawns need it; they fail clearly without it.
  std::string slirp4netns_path = "/usr/bin/slirp4netns";
  // When true, Fork() fails unless memory and pids limits can be enforced through cgroups;
  // when false, instances run without cgroups if none are usable (development only).
  bool enforce_limits = true;
};

class Launcher {
 public:
  // Forks the launcher and waits until it is ready: cgroups detected, stale groups removed,
  // its own group created. Fails with the launcher's reason if it cannot run.
  static Result<Launcher> Fork(const LauncherOptions& options);

  Launcher(Launcher&& other) noexcept;
  Launcher& operator=(Launcher&& other) noexcept;
  Launcher(const Launcher&) = delete;
  Launcher& operator=(const Launcher&) = delete;
  // Same as Shutdown().
  ~Launcher();

  // Closes the channel, which makes the launcher kill every instance and exit, and reaps it.
  // Blocks until then.
  void Shutdown();

  pid_t pid() const { return pid_; }
  // The control channel; stays owned by the launcher handle.
  int control_fd() const { return control_.get(); }
  // E.g. "v1 (memory, pids, cpu)", or "none" when running without cgroups.
  const std::string& cgroups() const { return cgroups_; }

 private:
  Launcher(pid_t pid, UniqueFd control, std::string cgroups)
      : pid_(pid), control_(std::move(control)), cgroups_(std::move(cgroups)) {}

  pid_t pid_ = -1;
  UniqueFd control_;
  std::string cgroups_;
};

}  // namespace wisp::sandbox
