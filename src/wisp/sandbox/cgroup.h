// CgroupFs: the cgroup v1 or v2 file systems the launcher puts sandboxes into, and the few
// operations it needs on them (create a group, set limits, move a process in, count OOM kills,
// kill everything inside and remove the group).
//
// Groups are named by a path relative to the hierarchy root, e.g. "wisp/1234/<instance-id>".
// On v2 that is one directory; on v1 it is the same directory in each used hierarchy (memory,
// pids, cpu), so callers never care which version the host runs.
//
// Thread rules: none of its own; the launcher is single-threaded and is the only user.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "wisp/common/result.h"
#include "wisp/common/unique_fd.h"

namespace wisp::sandbox {

enum class CgroupVersion { kV1, kV2 };

struct CgroupLimits {
  uint64_t memory_bytes = 0;  // 0: no limit
  uint32_t pids = 0;          // 0: no limit
  double vcpu = 0;            // relative weight; 0: leave the default
};

class CgroupFs {
 public:
  // Finds the layout under `mount_point`: v2 when its root lists cgroup.controllers, else v1
  // with whichever of the memory, pids and cpu hierarchies are mounted there.
  static Result<CgroupFs> Detect(const std::string& mount_point = "/sys/fs/cgroup");

  CgroupVersion version() const { return version_; }
  // True when both memory and pids can be limited; the launcher refuses to run without them
  // when limits are enforced.
  bool CanEnforceLimits() const;
  // For logs and errors, e.g. "v1 (memory, pids, cpu)".
  std::string Describe() const;

  // mkdir -p in every hierarchy. On v2 also enables the memory, pids and cpu controllers in
  // the subtree_control of every ancestor, since v2 only offers a controller to a group whose
  // parent enabled it.
  Result<void> CreateGroup(const std::string& group) const;
  Result<void> SetLimits(const std::string& group, const CgroupLimits& limits) const;
  Result<void> AddProcess(const std::string& group, pid_t pid) const;

  // Every process in the group and its subgroups (union over hierarchies, no duplicates).
  std::vector<pid_t> Procs(const std::string& group) const;
  // cgroup v1: an eventfd that becomes readable when the group hits an OOM (registered through
  // cgroup.event_control), so the caller can end the whole instance; v1 kills only one
  // process. An empty fd on v2, where SetLimits() sets memory.oom.group and the kernel kills
  // the whole group itself, or when there is no memory controller.
  Result<UniqueFd> OomEventFd(const std::string& group) const;
  // How many times the kernel OOM-killed a process of this group (0 when unknown).
  uint64_t OomKills(const std::string& group) const;
  // The group's memory high-water mark file (v1 memory.max_usage_in_bytes, v2 memory.peak),
  // opened read-only for ReadMemoryPeak. An empty fd when there is no memory
  // controller or the kernel lacks the file (v2 before Linux 5.19).
  Result<UniqueFd> OpenMemoryPeak(const std::string& group) const;
  // The group's CPU weight file (v1 cpu.shares, v2 cpu.weight), opened for writing, so that
  // its owner can change the weight later (CpuWeightText) without the launcher; an empty fd
  // without a cpu controller.
  Result<UniqueFd> OpenCpuWeight(const std::string& group) const;
  // What SetLimits writes to that file for `vcpu`.
  std::string CpuWeightText(double vcpu) const;
  // The group's peak memory in bytes so far; nullopt when unknown.
  std::optional<uint64_t> MemoryPeak(const std::string& group) const;
  // Names of the direct subgroups (union over hierarchies).
  std::vector<std::string> Children(const std::string& group) const;
  bool Exists(const std::string& group) const;

  // SIGKILLs every process of the group and its subgroups, then removes them all. Retries
  // for up to ~2 s because rmdir fails with EBUSY while the kernel still tears processes down.
  // A group that does not exist is already removed.
  Result<void> KillAndRemove(const std::string& group) const;

 private:
  struct Hierarchy {
    std::string controller;  // "memory", "pids", "cpu"; empty on v2 (one unified tree)
    std::string root;        // where it is mounted
  };

  CgroupFs(CgroupVersion version, std::vector<Hierarchy> hierarchies)
      : version_(version), hierarchies_(std::move(hierarchies)) {}

  // The directory of `group` in the hierarchy that holds `controller`, or "" when none does.
  std::string DirFor(const std::string& controller, const std::string& group) const;
  bool HasController(const std::string& controller) const;

  CgroupVersion version_;
  std::vector<Hierarchy> hierarchies_;
  std::vector<std::string> v2_controllers_;  // on v2: which of ours the root offers
};

// The peak in bytes from a file OpenMemoryPeak opened: one pread at offset 0, where a cgroup
// file prints its current value afresh (no open per call, no allocation: it runs at the end of
// every invocation). nullopt when the read fails, e.g. once the cgroup is removed.
std::optional<uint64_t> ReadMemoryPeak(int fd);

}  // namespace wisp::sandbox
