// Instance: one sandboxed runtime process tree serving one function version, one invocation at
// a time. It owns the sandbox's Runtime API endpoint and the pipe that carries the runtime's
// stdout and stderr, and turns what the runtime does into invocation results.
//
// Lifecycle: starting → idle ⇄ busy → retiring → gone.
//
// Thread rules: the scheduler's io thread only.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "wisp/common/asio.h"
#include "wisp/common/unique_fd.h"
#include "wisp/runtime_api/endpoint.h"
#include "wisp/scheduler/scheduler.h"

namespace wisp::scheduler {

class Instance final : public runtime_api::EndpointListener,
                       public std::enable_shared_from_this<Instance> {
 public:
  enum class State { kStarting, kIdle, kBusy, kRetiring, kGone };

  Instance(Scheduler& scheduler, std::string id, std::shared_ptr<const Deployment> deployment,
           std::chrono::steady_clock::time_point now, int64_t started_at_ms);
  ~Instance() override;

  // The backend started the sandbox: serve its Runtime API and collect its output.
  void Attach(sandbox::SpawnedInstance spawned);

  // Runs one invocation (the instance must be busy) and waits for its outcome or deadline.
  asio::awaitable<InvocationResult> Run(InvokeRequest request);

  // Turns an idle prewarmed instance into an instance of `deployment`, whose code is already
  // linked into its code directory: the runtime loads it and asks for work (or reports an init
  // error) as a freshly started one would.
  void Specialize(std::shared_ptr<const Deployment> deployment);

  // The sandbox ended (crash, OOM, kill): fail whatever was in flight; close everything.
  void OnExit(const sandbox::ExitStatus& status);
  // The runtime did not reach its first GET /next in time.
  void OnInitTimeout();

  const std::string& id() const { return id_; }
  const std::shared_ptr<const Deployment>& deployment() const { return deployment_; }
  int version() const { return deployment_->version; }
  State state() const { return state_; }
  void set_state(State state) { state_ = state; }
  pid_t pid() const { return pid_; }
  std::chrono::steady_clock::time_point idle_since() const { return idle_since_; }
  void set_idle_since(std::chrono::steady_clock::time_point t) { idle_since_ = t; }
  int64_t started_at_ms() const { return started_at_ms_; }
  uint64_t invocations() const { return invocations_; }
  // How long its last start (spawn or specialisation) took until the runtime asked for work.
  std::chrono::nanoseconds init_duration() const { return init_duration_; }
  // How many times this instance started initialising (spawn, specialisation): an init
  // deadline belongs to one of them.
  int start_count() const { return start_count_; }
  // A code directory this instance owns (prewarmed instances); removed when it is gone.
  const std::string& own_code_dir() const { return own_code_dir_; }
  void set_own_code_dir(std::string dir) { own_code_dir_ = std::move(dir); }

  // EndpointListener:
  void OnRuntimeWaiting() override;
  void OnInvocationResponse(std::string body) override;
  void OnInvocationError(std::string error_type, std::string body) override;
  void OnInitError(std::string error_type, std::string body) override;

 private:
  struct Current {
    explicit Current(const asio::any_io_executor& executor) : done(executor) {}
    Event done;
    InvocationResult result;
    uint64_t log_bytes = 0;
    bool logs_truncated = false;
  };

  asio::awaitable<void> ReadOutput();
  // Reads whatever the runtime has written so far without waiting: the runtime writes its
  // output before it posts a result, so this makes logs complete before the result is used.
  void DrainOutput();
  void ConsumeOutput(std::string_view bytes);
  void EmitLine(std::string_view line);
  void FlushPartialLine();
  // Ends the call in flight, if any, with the instance's peak memory: read now, or the one the
  // launcher read before it removed the cgroup of an instance that exited.
  void Finish(InvocationStatus status, std::string response_json,
              std::optional<uint64_t> exit_memory_peak_bytes = std::nullopt);
  // The instance's peak memory now; nullopt when unknown. Read on the io thread, unlike other
  // cgroup files (DESIGN.md sends those to the worker pool): one pread of a counter the kernel
  // prints from memory, ~0.6 µs, where a hand-off to a worker would cost tens of µs per call.
  std::optional<uint64_t> MemoryPeak() const;
  std::string DescribeExit(const sandbox::ExitStatus& status, std::string* error_type) const;

  Scheduler& scheduler_;
  const std::string id_;
  std::shared_ptr<const Deployment> deployment_;  // changes once, if a prewarmed one specialises
  std::string own_code_dir_;
  int start_count_ = 1;
  State state_ = State::kStarting;
  pid_t pid_ = -1;
  std::shared_ptr<runtime_api::Endpoint> endpoint_;
  std::unique_ptr<asio::posix::stream_descriptor> output_;
  UniqueFd memory_peak_;  // see SpawnedInstance::memory_peak
  std::string partial_line_;
  std::chrono::steady_clock::time_point idle_since_;
  std::chrono::steady_clock::time_point init_started_;
  std::chrono::nanoseconds init_duration_{0};
  const int64_t started_at_ms_;
  uint64_t invocations_ = 0;

  Current* current_ = nullptr;
  // Output written while no invocation runs (start-up), kept to explain a failed start.
  std::vector<std::string> init_logs_;
  uint64_t init_log_bytes_ = 0;
  std::optional<StartFailure> init_failure_;
};

}  // namespace wisp::scheduler
