// Backend: how the scheduler starts and stops sandboxed instances. The process jail
// (ProcessJail, a forked privileged launcher) is the first backend; a microVM backend comes
// later behind the same interface.
//
// Thread rules: every method is called on the io thread that owns the backend, and every
// callback runs on that thread.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <charconv>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "wisp/common/result.h"
#include "wisp/common/unique_fd.h"

namespace wisp::sandbox {

// A host directory mounted read-write inside a sandbox, for jobs that must leave files behind (a
// Go build's output and its cache); functions get none. Mounted nosuid, nodev and noexec.
struct WritableBind {
  std::string host_path;     // absolute; opened by the launcher as the host's root
  std::string sandbox_path;  // absolute, clear of every mount point the sandbox makes itself
};

// Everything needed to start one instance. Paths are host paths unless said otherwise.
struct SpawnSpec {
  std::string instance_id;        // unique among live instances; [A-Za-z0-9_-], at most 64 chars
  std::vector<std::string> argv;  // argv[0]: absolute path as seen inside the sandbox
  std::vector<std::string> env;   // "KEY=VALUE"; the sandbox sees exactly these
  std::string code_dir;           // mounted read-only at /var/task (the working directory)
  std::string runtime_dir;        // mounted read-only at /opt/wisp/runtime (the shims)
  uint64_t memory_limit_bytes = 256ull << 20;
  uint64_t tmp_size_bytes = 512ull << 20;  // size cap of the private tmpfs at /tmp
  uint32_t pids_limit = 1024;
  double vcpu = 1.0;                 // relative CPU weight
  uint16_t runtime_api_port = 9001;  // the endpoint listens on 127.0.0.1:<port> inside
  // Outbound network access through a user-mode network stack (slirp4netns) attached to the
  // sandbox's network namespace; never to the host's loopback. Without it the sandbox has
  // only its loopback and the Runtime API endpoint.
  bool network_outbound = false;
  // With network_outbound: the sandbox may also reach private, shared, link-local (cloud
  // metadata), multicast and reserved IPv4 addresses. Without it, connecting or sending there
  // fails at once with EACCES, so a function reaches public addresses only. The operator's
  // node-wide choice (Config::outbound_private_networks), never a function's.
  bool outbound_private_networks = false;
  std::vector<WritableBind> writable_binds;
};

// The runtime finds its end of SpawnedInstance::runtime_api_channel at this fd.
inline constexpr int kRuntimeApiChannelFd = 3;

// A started instance. The listener lives in the sandbox's own network namespace: accepting on
// it is how wispd serves that sandbox, and only that sandbox, the Runtime API.
struct SpawnedInstance {
  pid_t pid = -1;                 // host pid of the instance's init process
  UniqueFd runtime_api_listener;  // listening TCP socket, 127.0.0.1:<port> inside the sandbox
  // A Unix stream socket already connected to the runtime (its end is kRuntimeApiChannelFd):
  // the Runtime API without loopback TCP, for runtimes that know to use it (Wisp's shims).
  // Cheaper per message than TCP; custom runtimes keep using AWS_LAMBDA_RUNTIME_API.
  UniqueFd runtime_api_channel;
  UniqueFd output;  // read end of the pipe that carries stdout+stderr, non-blocking
  // Read-only: the peak memory of the instance's cgroup so far, for ReadMemoryPeak. Empty when
  // it cannot be known (no memory cgroup; a cgroup v2 kernel without memory.peak).
  UniqueFd memory_peak;
};

// The peak in bytes from SpawnedInstance::memory_peak: one pread at offset 0, where a cgroup
// file prints its current value afresh (no open per call, no allocation: it runs at the end of
// every invocation). nullopt when the read fails, e.g. once the cgroup is removed.
inline std::optional<uint64_t> ReadMemoryPeak(int fd) {
  char text[32];
  const ssize_t n = ::pread(fd, text, sizeof text, 0);
  if (n <= 0) return std::nullopt;
  uint64_t bytes = 0;
  if (std::from_chars(text, text + n, bytes).ec != std::errc()) return std::nullopt;
  return bytes;
}

struct ExitStatus {
  std::string instance_id;
  int exit_code = -1;       // the runtime's exit code, or -1 when it was killed by a signal
  int signal = 0;           // the signal that killed the runtime, 0 if it exited
  bool oom_killed = false;  // the memory cgroup recorded an OOM kill
  // The cgroup's peak memory, read just before it was removed: what a call that crashed the
  // instance used, which SpawnedInstance::memory_peak can no longer tell. nullopt: unknown.
  std::optional<uint64_t> memory_peak_bytes;
};

class Backend {
 public:
  using SpawnCallback = std::function<void(Result<SpawnedInstance>)>;
  using ExitCallback = std::function<void(const ExitStatus&)>;

  virtual ~Backend() = default;

  // Starts an instance; `done` runs once, with the instance or with why it could not start.
  virtual void Spawn(const SpawnSpec& spec, SpawnCallback done) = 0;

  // Kills the instance and every process it started (its whole cgroup). The exit callback
  // then reports it. Unknown ids are ignored.
  virtual void Kill(const std::string& instance_id) = 0;

  // Called once for every instance that ends, however it ends.
  virtual void SetExitCallback(ExitCallback on_exit) = 0;

  // Kills every instance and waits until none is left. Used at shutdown.
  virtual void KillAll() = 0;
};

}  // namespace wisp::sandbox
