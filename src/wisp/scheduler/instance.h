// Instance: one sandboxed runtime serving one function version, up to its deployment's
// instance_concurrency invocations at a time (one, Lambda's model, by default). It
// holds what the backend handed back for it (sandbox::InstanceHandle): serves the Runtime API
// over its transport, collects its log stream, reads its memory meter; turns what the runtime
// does into invocation results, and owns its lifecycle:
//
//   starting → initializing → idle ⇄ busy → retiring → gone
//
// starting: the backend is creating the sandbox; initializing: the runtime is loading the code
// (a prewarmed instance goes idle → initializing when it is specialised: the backend puts the
// code in place, then the runtime loads it); retiring: it is being
// killed; gone: its sandbox ended; busy: one call or more in flight. Every transition is checked
// (an illegal one is a bug and aborts). The scheduler hears of what happens through
// InstanceHost and moves the instance with the named operations below.
//
// Several calls at once: each has its own deadline, log lines (the shims tag each line with its
// request id when instance_concurrency > 1; see EmitLine for untagged ones) and result. A call
// that times out, or whose runtime can no longer answer it, is answered at once and the instance
// stops taking calls (draining); the others in flight run to their own answer or their own
// deadline, which bounds how long that takes; then the instance retires. An exit fails every call
// in flight on it, and only those.
//
// Thread rules: the scheduler's io thread only.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "wisp/common/asio.h"
#include "wisp/common/clock.h"
#include "wisp/common/thread_role.h"
#include "wisp/runtime_api/endpoint.h"
#include "wisp/sandbox/backend.h"
#include "wisp/scheduler/deployment.h"

namespace wisp::scheduler {

class Instance;

// What an instance reports to whoever schedules it: the one interface between the two.
class InstanceHost {
 public:
  virtual ~InstanceHost() = default;
  // The runtime has loaded its code and asks for work: hand the instance a call or park it.
  virtual void OnInstanceReady(const std::shared_ptr<Instance>& instance) = 0;
  // The instance can serve no more calls (an init error or timeout, code that could not be
  // placed): it must be killed. (One that drains after a call's timeout is retired by the
  // scheduler when its last call ends.)
  virtual void OnInstanceMustRetire(const std::shared_ptr<Instance>& instance) = 0;
  // The instance will never become ready; `failure` is the outcome of the call that started it.
  virtual void OnInstanceFailedToStart(const std::shared_ptr<Instance>& instance,
                                       StartFailure failure) = 0;
  // The instance's sandbox has ended; nothing of it is left.
  virtual void OnInstanceGone(const std::shared_ptr<Instance>& instance) = 0;
};

// File descriptors wispd holds per instance at most, for an instance that may serve
// `concurrency` calls at once: the Runtime API endpoint's (listener, Unix channel, the TCP
// connections it serves) and the output pipe and memory-peak file. A generic prewarmed instance
// also holds its CPU weight file until it takes a function's code; it runs no function's code
// before, so none of the TCP connections a function could make.
constexpr size_t InstanceFdCost(size_t concurrency) {
  return runtime_api::MaxEndpointFds(runtime_api::EndpointLimits{}, concurrency) + 2;
}

// What every instance of a scheduler shares.
struct InstanceSettings {
  std::chrono::milliseconds init_timeout{10000};
  uint64_t max_response_bytes = 6ull << 20;
  uint64_t max_log_bytes_per_invocation = 256ull << 10;
};

class Instance final : public runtime_api::EndpointListener,
                       public std::enable_shared_from_this<Instance> {
 public:
  enum class State { kStarting, kInitializing, kIdle, kBusy, kRetiring, kGone };
  static std::string_view StateName(State state);

  Instance(asio::io_context& io, const Clock& clock, InstanceHost& host,
           const InstanceSettings& settings, std::string id,
           std::shared_ptr<const Deployment> deployment, int64_t started_at_ms);
  ~Instance() override;

  // The backend started the sandbox: serve its Runtime API and collect its output
  // (starting → initializing).
  void Attach(sandbox::InstanceHandle handle);
  // The backend could not start the sandbox (starting → gone).
  void FailedToSpawn();

  // Runs one invocation (the scheduler gave it one of the instance's calls: MarkBusy) and waits
  // for its outcome or deadline.
  asio::awaitable<InvocationResult> Run(InvokeRequest request);

  // Turns an idle prewarmed instance into an instance of `deployment` (idle → initializing)
  // while the backend puts its code in place (sandbox::Backend::Specialize). Then CodePlaced()
  // lets the runtime load it and ask for work (or report an init error) as a freshly started
  // one would, or CodeNotPlaced() fails the start.
  void Specialize(std::shared_ptr<const Deployment> deployment);
  void CodePlaced();
  void CodeNotPlaced(const std::string& why);

  // The scheduler's moves. Hands the instance a call (initializing | idle | busy → busy); it
  // must have room for one.
  void MarkBusy();
  // A call the scheduler handed it has ended (its Run returned, or it never ran).
  void EndCall();
  // Parks a ready instance with no call to serve (initializing | busy → idle).
  void MarkIdle(std::chrono::steady_clock::time_point now);
  // Starts killing it (any state before retiring → retiring). False if already on its way out.
  bool MarkRetiring();

  // Live: counts against the caps and may still serve (neither retiring nor gone).
  bool live() const { return state_ != State::kRetiring && state_ != State::kGone; }
  // Not yet ready: its runtime has not asked for work since it (re)started.
  bool loading() const { return state_ == State::kStarting || state_ == State::kInitializing; }
  // Calls handed to it that have not ended, and how many it may have at once.
  uint32_t calls() const { return calls_; }
  uint32_t concurrency() const { return deployment_->instance_concurrency; }
  // Takes new calls: live and not draining after a timeout.
  bool accepting() const { return live() && !draining_; }
  // Ready (idle or busy), taking calls, and serving fewer than it may.
  bool has_room() const {
    return (state_ == State::kIdle || state_ == State::kBusy) && !draining_ &&
           calls_ < concurrency();
  }

  // The sandbox ended (crash, OOM, kill): fail whatever was in flight; close everything.
  void OnExit(const sandbox::ExitStatus& status);
  // The runtime did not reach its first GET /next in time.
  void OnInitTimeout();

  const std::string& id() const { return id_; }
  const std::shared_ptr<const Deployment>& deployment() const { return deployment_; }
  int version() const { return deployment_->version; }
  State state() const { return state_; }
  pid_t pid() const { return pid_; }
  std::chrono::steady_clock::time_point idle_since() const { return idle_since_; }
  int64_t started_at_ms() const { return started_at_ms_; }
  uint64_t invocations() const { return invocations_; }
  // When its last call started (wall clock, epoch ms); nullopt before its first.
  std::optional<int64_t> last_call_at_ms() const { return last_call_at_ms_; }
  // The instance's peak memory now; nullopt when unknown. Read on the io thread, unlike other
  // cgroup files (DESIGN.md sends those to the worker pool): the process jail's meter is one
  // pread of a counter the kernel prints from memory, ~0.6 µs, where a hand-off to a worker
  // would cost tens of µs per call.
  std::optional<uint64_t> MemoryPeak() const;
  // How long its last start (spawn or specialisation) took until the runtime asked for work.
  std::chrono::nanoseconds init_duration() const { return init_duration_; }
  // How many times this instance started initialising (spawn, specialisation): an init
  // deadline belongs to one of them.
  int start_count() const { return start_count_; }

  // EndpointListener:
  void OnRuntimeWaiting() override;
  void OnInvocationResponse(std::string_view request_id, std::string body) override;
  void OnInvocationChunk(std::string_view request_id, std::string_view bytes) override;
  void OnInvocationError(std::string_view request_id, std::string error_type,
                         std::string body) override;
  void OnInitError(std::string error_type, std::string body) override;

 private:
  struct Current {
    explicit Current(const asio::any_io_executor& executor) : done(executor) {}
    std::string request_id;
    Event done;
    InvocationResult result;
    std::function<void(std::string_view)> on_stream_chunk;  // InvokeRequest's
    std::string streamed_body;  // a streamed response without on_stream_chunk, kept whole
    uint64_t log_bytes = 0;
    bool logs_truncated = false;
  };

  // Every state change goes through here and is checked against the lifecycle above.
  void TransitionTo(State next);
  asio::awaitable<void> ReadOutput();
  // Reads whatever the runtime has written so far without waiting: the runtime writes its
  // output before it posts a result, so this makes logs complete before the result is used.
  void DrainOutput();
  void ConsumeOutput(std::string_view bytes);
  void EmitLine(std::string_view line);
  void FlushPartialLine();
  // Ends `current` with the instance's peak memory: read now (see CatchUpWithRuntime), or the
  // one the launcher read before it removed the cgroup of an instance that exited.
  void Finish(Current* current, InvocationStatus status, std::string response_json,
              std::optional<uint64_t> exit_memory_peak_bytes = std::nullopt);
  // Reads the runtime's output and peak memory, unless nothing has been read from its Runtime
  // API since they were last read: a call ends on a request the endpoint read, and the runtime
  // wrote the call's output (and used its memory) before it sent that request, so output read
  // and a peak taken after that read cover the call. Several calls answered in one read of the
  // channel then cost one drain and one peak read, not one each. (The peak only grows.)
  void CatchUpWithRuntime();
  // The call in flight `request_id` names; null if none (late, or answered already).
  Current* FindCall(std::string_view request_id) const;
  // The instance takes no more calls; it retires once none is left in flight.
  void Drain();
  // The call whose line this is, with the line's tag (see EmitLine) taken off; null: none.
  Current* CallOfLine(std::string_view& line) const;
  std::string DescribeExit(const sandbox::ExitStatus& status, std::string* error_type) const;

  asio::io_context& io_;
  const Clock& clock_;
  InstanceHost& host_;
  const InstanceSettings& settings_;
  const std::string id_;
  ThreadRole io_thread_;
  std::shared_ptr<const Deployment> deployment_;  // changes once, if a prewarmed one specialises
  int start_count_ = 1;
  State state_ = State::kStarting;
  pid_t pid_ = -1;
  std::shared_ptr<runtime_api::Endpoint> endpoint_;
  std::unique_ptr<sandbox::LogStream> logs_;
  std::unique_ptr<sandbox::MemoryMeter> memory_;  // null: the backend cannot tell
  // The specialisation event, held until the backend has put the code in place.
  std::optional<runtime_api::NextEvent> specialization_;
  std::string partial_line_;
  // What CatchUpWithRuntime read last, and the endpoint's read count then.
  std::optional<uint64_t> memory_peak_;
  std::optional<uint64_t> caught_up_at_reads_;
  std::chrono::steady_clock::time_point idle_since_;
  std::chrono::steady_clock::time_point init_started_;
  std::chrono::nanoseconds init_duration_{0};
  const int64_t started_at_ms_;
  uint64_t invocations_ = 0;
  std::optional<int64_t> last_call_at_ms_;

  // Calls running on the runtime, oldest first (at most instance_concurrency).
  std::vector<Current*> running_;
  uint32_t calls_ = 0;
  bool draining_ = false;
  // Output written while no invocation runs (start-up), kept to explain a failed start.
  std::vector<std::string> init_logs_;
  uint64_t init_log_bytes_ = 0;
  std::optional<StartFailure> init_failure_;
};

}  // namespace wisp::scheduler
