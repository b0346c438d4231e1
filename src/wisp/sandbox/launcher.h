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

#include <cstdint>
#include <string>

#include "wisp/common/result.h"
#include "wisp/common/unique_fd.h"

namespace wisp::sandbox {

// The first host uid (and gid) of the default range sandboxes are created from: 0x70000000,
// above every range the usual tools hand out (useradd's /etc/subuid allocations end at
// 600,100,000; systemd-nspawn's container pool ends at 1,879,048,191) and below both systemd's
// foreign-uid range (2,147,352,576) and 2^31, where tools that read uids as signed break.
inline constexpr uint32_t kDefaultSandboxIdBase = 0x70000000;
inline constexpr uint32_t kDefaultSandboxIdCount = 65536;

struct LauncherOptions {
  // An empty host directory wispd creates (e.g. <data-dir>/sandbox/root). The launcher mounts
  // a private tmpfs of its own on it, in a mount namespace of its own (the host only ever sees
  // the empty directory): the stage. It holds the mount point of each sandbox's root, the
  // copies of code and shim trees sandboxes bind (so that /proc/self/mountinfo inside names
  // neutral paths, never the host's), and the prewarmed instances' code directories, which
  // Backend::Specialize fills with hard links to such a copy.
  std::string sandbox_root_dir;
  // The launcher's own cgroup, relative to each hierarchy root: "wisp/<wispd pid>". Instances
  // get "<cgroup_group>/<instance_id>". Groups under "wisp/" named for a pid that is no longer
  // alive are left over from a launcher that died, and are removed at start.
  std::string cgroup_group;
  std::string cgroup_mount = "/sys/fs/cgroup";
  // Each sandbox is created by, and its root inside is, a host uid (and the gid of the same
  // number) of its own from [sandbox_id_base, sandbox_id_base + sandbox_id_count), taken when it
  // starts and given back when its last process is gone. The kernel charges per-user limits
  // (inotify instances, queued signals, pipe buffers, processes) to the creator of a user
  // namespace and to the uid inside: one uid per instance keeps each function's use apart from
  // every other function's and from root's. The range must own nothing on the host and
  // overlap no /etc/subuid or /etc/subgid entry (checked at start).
  uint32_t sandbox_id_base = kDefaultSandboxIdBase;
  uint32_t sandbox_id_count = kDefaultSandboxIdCount;
  // Every sandbox of this launcher runs as sandbox_id_base (then sandbox_id_count must be 1):
  // for jobs that must share what they write, like Go builds and their one cache. Such
  // sandboxes are created by root, so SpawnSpec::writable_binds may lie under directories only
  // root can reach; a launcher of per-instance ids opens them as the instance's id.
  bool one_id_for_all = false;
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
  // Where prewarmed instances' code directories are, "<this>/<instance id>": a directory on
  // the launcher's stage, reached through the launcher's /proc/<pid>/root (the stage exists only
  // in its mount namespace). The launcher makes and removes each; code written into one after
  // the spawn appears in that instance's /var/task. Files can only be copied there from the
  // host, not hard-linked (another filesystem).
  std::string prewarm_dir() const;

 private:
  Launcher(pid_t pid, UniqueFd control, std::string cgroups, std::string stage_dir)
      : pid_(pid),
        control_(std::move(control)),
        cgroups_(std::move(cgroups)),
        stage_dir_(std::move(stage_dir)) {}

  pid_t pid_ = -1;
  UniqueFd control_;
  std::string cgroups_;
  std::string stage_dir_;  // LauncherOptions::sandbox_root_dir
};

}  // namespace wisp::sandbox
