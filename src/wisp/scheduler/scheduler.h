// Scheduler: the instances of every function. It hands each invocation an idle warm instance of
// the function's current version, or starts one, or makes the call wait while the function is
// at its instance limit; it retires instances that time out, crash, are outdated or idle too
// long. One invocation at a time per instance.
//
// Thread rules: everything runs on the one io thread that owns the scheduler, including the
// backend's and the endpoints' callbacks.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "wisp/common/asio.h"
#include "wisp/common/clock.h"
#include "wisp/common/result.h"
#include "wisp/sandbox/backend.h"

namespace wisp::scheduler {

class Instance;

// What the instances of one version of one function run. Immutable once published.
struct Deployment {
  std::string function_id;
  std::string function_name;
  int version = 0;
  sandbox::SpawnSpec spawn;  // instance_id is filled in per instance
  std::string function_arn;
  uint32_t max_instances = 100;  // the function's concurrency limit
  uint32_t min_instances = 0;    // kept warm even without traffic (provisioned concurrency)
  int memory_mb = 256;
  // A prewarm pool's generic deployment: no function's code yet (see PrewarmPool).
  bool prewarmed = false;
};

enum class InvocationStatus { kSuccess, kError, kTimeout };
std::string_view InvocationStatusName(InvocationStatus status);

struct InvocationResult {
  InvocationStatus status = InvocationStatus::kError;
  std::string response_json;  // the result, or an error document {errorType, errorMessage, ...}
  std::vector<std::string> logs;
  std::string instance_id;
  int version = 0;  // of the instance that ran the call
  bool cold_start = false;
  // Peak memory of the instance so far, at the end of the call, in MiB rounded up: Lambda's
  // "Max Memory Used" (it never decreases over one instance's calls). nullopt: unknown.
  std::optional<int64_t> memory_used_mb;
  // Where the time went, for the Server-Timing header: finding or starting an instance, and
  // from handing the event to the runtime until its answer.
  std::chrono::nanoseconds schedule_time{0};
  std::chrono::nanoseconds runtime_time{0};
};

// Shared, not copied: the event goes to the runtime, and the invocation record takes it back
// afterwards (see Invoker::Invoke).
using SharedEvent = std::shared_ptr<std::string>;

struct InvokeRequest {
  std::string request_id;
  SharedEvent event_json;
  std::chrono::milliseconds timeout{30000};
  std::string trace_id;
};

struct SchedulerOptions {
  std::chrono::milliseconds init_timeout{10000};
  std::chrono::milliseconds queue_wait{10000};
  std::chrono::milliseconds idle_keepalive{600000};
  // How often idle instances are reaped and pools topped up.
  std::chrono::milliseconds maintenance_period{1000};
  // Node-wide caps: instances alive at once, and the memory their limits add up to (0: no cap).
  // Idle instances are evicted, least recently used first, before a call is refused.
  size_t max_instances_total = 2000;
  uint64_t memory_budget_bytes = 0;
  // Instances wispd has file descriptors for (see InstanceFdCost in wispd): also a cap on
  // max_instances_total, and a hard one, deploys included, so that a node short of fds
  // refuses new sandboxes instead of failing the public API's accept (0: no cap).
  size_t max_instances_by_fds = 0;
  // Calls that may wait for a busy function; more are refused at once.
  size_t max_queued_calls_per_function = 1000;
  uint64_t max_response_bytes = 6ull << 20;
  uint64_t max_log_bytes_per_invocation = 256ull << 10;
};

// A snapshot of one instance, for the API.
struct InstanceInfo {
  std::string id;
  int version = 0;
  pid_t pid = -1;
  std::string state;
  int64_t started_at_ms = 0;
  uint64_t invocations = 0;
};

// Why an instance failed to become ready, in the terms a caller sees.
struct StartFailure {
  std::string error_type;     // e.g. Runtime.ImportModuleError, Runtime.ExitError
  std::string document_json;  // {errorType, errorMessage, stackTrace}
  std::string message;        // errorMessage, for the function's `error` field
  std::vector<std::string> logs;
};

// Generic instances of one runtime, started without any function's code and kept ready. A cold
// start of a function whose sandbox settings match takes one and specialises it — links the
// code into its (empty, read-only) /var/task and tells its runtime which function it is —
// instead of spawning a process.
struct PrewarmPool {
  // What the generic instances run. Its spawn.code_dir is a host directory under which each
  // instance gets an empty code directory of its own.
  std::shared_ptr<const Deployment> generic;
  size_t size = 1;
};

// Makes `deployment`'s code visible in `code_dir`, an empty directory that a prewarmed instance
// has mounted at /var/task. Runs on the io thread: it must be quick (hard links, not copies).
using CodeLinker =
    std::function<Result<void>(const Deployment& deployment, const std::string& code_dir)>;

class Scheduler {
 public:
  Scheduler(asio::io_context& io, sandbox::Backend& backend, const Clock& clock,
            SchedulerOptions options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Starts a fresh instance of `deployment` and waits until its runtime has loaded the code and
  // asked for work. The instance then stays warm for the first call.
  asio::awaitable<tl::expected<void, StartFailure>> Warm(
      std::shared_ptr<const Deployment> deployment);

  // Runs one invocation. An error Result means no instance could take the call
  // (kResourceExhausted: the function is at its limit for longer than the queue wait;
  // kUnavailable: the sandbox could not be started). Everything the function did — including
  // failing to initialise, crashing, timing out — is an InvocationResult.
  asio::awaitable<Result<InvocationResult>> Invoke(std::shared_ptr<const Deployment> deployment,
                                                   InvokeRequest request);

  // `deployment` is now its function's serving version: instances of older versions retire
  // (busy ones after their call), and min_instances of it are kept warm.
  void Publish(std::shared_ptr<const Deployment> deployment);
  // The function is gone: all its instances retire now.
  void RetireFunction(const std::string& function_id);

  // Starts keeping the pools filled.
  void ConfigurePrewarm(std::vector<PrewarmPool> pools, CodeLinker linker);

  std::vector<InstanceInfo> Instances(const std::string& function_id) const;
  size_t instance_count() const { return instances_.size(); }
  // Idle prewarmed instances ready for a cold start, by pool ("prewarm/node", ...).
  std::map<std::string, size_t> PrewarmedIdle() const;

  // Kills every instance; no call is accepted afterwards.
  void Shutdown();

 private:
  friend class Instance;
  struct Waiter;
  struct FunctionPool {
    std::vector<std::shared_ptr<Instance>> instances;
    std::deque<Waiter*> waiters;
    // Instances of older versions are retired as soon as they are free.
    int min_version = 0;
    // The serving version, once published: its min_instances are kept warm.
    std::shared_ptr<const Deployment> current;
  };
  struct Acquired {
    std::shared_ptr<Instance> instance;
    std::optional<StartFailure> failure;
    std::optional<Error> error;
    // The function published a newer version while the call waited: retry with it.
    std::shared_ptr<const Deployment> superseded_by;
    bool cold_start = false;
  };

  asio::awaitable<Acquired> Acquire(const std::shared_ptr<const Deployment>& deployment,
                                    bool force_new);
  void StartInstance(const std::shared_ptr<const Deployment>& deployment);
  // Takes an idle prewarmed instance that fits `deployment` and specialises it; null if none.
  std::shared_ptr<Instance> TakePrewarmed(const std::shared_ptr<const Deployment>& deployment);
  // True when the node can afford another instance of `deployment`, after evicting idle
  // instances if that is what it takes.
  bool MakeRoomFor(const Deployment& deployment);
  // Evicts idle instances until `instances` more instances with `memory_bytes` of limits fit.
  bool MakeRoom(size_t instances, uint64_t memory_bytes);
  void WatchInitTimeout(const std::shared_ptr<Instance>& instance);
  void Maintain();
  // An instance is free: give it to the first waiter for its version, or park it idle.
  void OfferIdle(const std::shared_ptr<Instance>& instance);
  // Called by an instance that failed to start or that ended.
  void OnInstanceFailedToStart(const std::shared_ptr<Instance>& instance, StartFailure failure);
  void OnInstanceGone(const std::shared_ptr<Instance>& instance);
  void OnBackendExit(const sandbox::ExitStatus& status);
  void RetireInstance(const std::shared_ptr<Instance>& instance);
  void ScheduleMaintenance();
  void Retire(const std::string& function_id, int min_version);

  asio::io_context& io_;
  sandbox::Backend& backend_;
  const Clock& clock_;
  const SchedulerOptions options_;
  std::map<std::string, FunctionPool> pools_;                   // by function id
  std::map<std::string, std::shared_ptr<Instance>> instances_;  // by instance id
  std::vector<PrewarmPool> prewarm_;
  CodeLinker link_code_;
  asio::steady_timer maintenance_;
  // Instances ended since maintenance last handed freed memory back to the system.
  bool instances_ended_ = false;
  bool shut_down_ = false;
};

}  // namespace wisp::scheduler
