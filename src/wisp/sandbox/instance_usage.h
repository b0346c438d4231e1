// InstanceUsage: what an instance uses right now, memory and CPU time, read from its cgroup
// where the host has one and from /proc otherwise, for the instances API and the per-instance
// metrics WebSocket. It reads the groups the kernel reports for the instance's init
// (/proc/<pid>/cgroup), so it works on cgroup v1 (memory, cpuacct hierarchies mounted apart or
// together), v2 and hybrid hosts alike, and degrades field by field: what it cannot read is
// nullopt, never an error.
//
// Thread rules: blocking file reads; call it on the worker pool, never on the io thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace wisp::sandbox {

struct InstanceUsage {
  std::optional<uint64_t> memory_bytes;       // in use now (the memory cgroup's usage)
  std::optional<uint64_t> memory_peak_bytes;  // high-water mark
  std::optional<double> cpu_seconds;          // user + system, every process of the instance
  // Where cpu_seconds came from: "cgroup" (cpuacct.usage, cpu.stat) or "proc" (the sum over
  // the instance's processes of their own and their reaped children's times); empty: unknown.
  std::string cpu_source;
};

// `pid`: the host pid of the instance's init (InstanceHandle::pid).
InstanceUsage ReadInstanceUsage(pid_t pid);

}  // namespace wisp::sandbox
