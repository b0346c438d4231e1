// Backend: how the scheduler starts, specialises and stops sandboxed instances. The process
// jail (ProcessJail, a forked privileged launcher) is the first backend; a microVM backend
// comes later behind the same interface: what the scheduler gets of an instance is an
// InstanceHandle of interfaces. Which backend runs is configuration (backend_factory.h).
//
// Thread rules: every method is called on the io thread that owns the backend, and every
// callback runs on that thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "wisp/common/asio.h"
#include "wisp/common/result.h"
#include "wisp/runtime_api/transport.h"

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
  // A prewarmed instance: it starts with an empty /var/task of its own, which
  // Backend::Specialize fills once with a function's code; code_dir must be empty.
  bool prewarmed = false;
  std::string runtime_dir;  // mounted read-only at /opt/wisp/runtime (the shims)
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

// In the process jail, the runtime finds its end of the Runtime API channel (the transport's
// connection open from the start) at this fd.
inline constexpr int kRuntimeApiChannelFd = 3;

// The runtime's stdout and stderr, as one stream of bytes, however the backend carries them (a
// pipe from the jail, a microVM's virtio console).
class LogStream {
 public:
  virtual ~LogStream() = default;
  // Waits until output is there and reads some of it into `buffer`: how many bytes. 0 with `ec`
  // set once the output has ended (every writer gone) or the stream was closed.
  virtual asio::awaitable<size_t> Read(std::span<char> buffer, boost::system::error_code& ec) = 0;
  // Reads what has been written so far, without waiting: 0 when nothing is there. The runtime
  // writes its output before it posts a result, so this makes a call's logs complete. Fewer
  // bytes than `buffer` holds: everything written so far has been read.
  virtual size_t ReadWritten(std::span<char> buffer) = 0;
  // Stops reading: a pending Read ends.
  virtual void Close() = 0;
};

// The instance's memory high-water mark, read as each call ends.
class MemoryMeter {
 public:
  virtual ~MemoryMeter() = default;
  // Bytes; nullopt when it cannot be read (e.g. the instance is gone). Quick: no allocation,
  // at most one system call, since it runs on the io thread after every invocation.
  virtual std::optional<uint64_t> Peak() = 0;
};

// What wispd holds of a started instance: its identity, the transport to its Runtime API, its
// output and its memory meter. The scheduler uses these through their interfaces only, so a
// backend's kinds of file descriptor (or none) never reach it.
struct InstanceHandle {
  std::string id;  // SpawnSpec::instance_id
  pid_t pid = -1;  // for display: the host pid of the instance's init (or of its VMM)
  std::unique_ptr<runtime_api::Transport> runtime_api;  // never null
  std::unique_ptr<LogStream> logs;                      // never null
  std::unique_ptr<MemoryMeter> memory;  // null when the backend cannot tell (no memory cgroup)
};

struct ExitStatus {
  std::string instance_id;
  int exit_code = -1;       // the runtime's exit code, or -1 when it was killed by a signal
  int signal = 0;           // the signal that killed the runtime, 0 if it exited
  bool oom_killed = false;  // the memory cgroup recorded an OOM kill
  // The cgroup's peak memory, read just before it was removed: what a call that crashed the
  // instance used, which InstanceHandle::memory can no longer tell. nullopt: unknown.
  std::optional<uint64_t> memory_peak_bytes;
};

class Backend {
 public:
  using SpawnCallback = std::function<void(Result<InstanceHandle>)>;
  using SpecializeCallback = std::function<void(Result<void>)>;
  using ExitCallback = std::function<void(const ExitStatus&)>;

  virtual ~Backend() = default;

  // Starts an instance; `done` runs once, later, with the instance or with why it could not
  // start.
  virtual void Spawn(const SpawnSpec& spec, SpawnCallback done) = 0;

  // Puts the code of `code_dir` (a host directory, as SpawnSpec::code_dir) at /var/task of
  // `instance_id`, an instance spawned with SpawnSpec::prewarmed that no code was put in yet.
  // `done` runs once, later: once it succeeds the runtime may load the code. After a failure
  // the instance may hold part of the code: it must serve no one.
  virtual void Specialize(const std::string& instance_id, const std::string& code_dir,
                          SpecializeCallback done) = 0;

  // A prewarmed instance that a call now waits for while it still loads (before Specialize):
  // it should get its full share of the CPU. Optional; unknown ids are ignored.
  virtual void Prioritize(const std::string& instance_id) { (void)instance_id; }

  // Kills the instance and every process it started (its whole cgroup). The exit callback
  // then reports it. Unknown ids are ignored.
  virtual void Kill(const std::string& instance_id) = 0;

  // Called once for every instance that ends, however it ends.
  virtual void SetExitCallback(ExitCallback on_exit) = 0;

  // Kills every instance and waits until none is left. Used at shutdown.
  virtual void KillAll() = 0;

  // What enforces the instances' resource limits, for the log: e.g. "cgroups v1 (memory, pids,
  // cpu)"; "none" when nothing does (development only: Config::enforce_limits off).
  virtual std::string ResourceLimits() const = 0;
};

}  // namespace wisp::sandbox
