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
};

enum class InvocationStatus { kSuccess, kError, kTimeout };
std::string_view InvocationStatusName(InvocationStatus status);

struct InvocationResult {
  InvocationStatus status = InvocationStatus::kError;
  std::string response_json;  // the result, or an error document {errorType, errorMessage, ...}
  std::vector<std::string> logs;
  std::string instance_id;
  bool cold_start = false;
};

struct InvokeRequest {
  std::string request_id;
  std::string event_json;
  std::chrono::milliseconds timeout{30000};
  std::string trace_id;
};

struct SchedulerOptions {
  std::chrono::milliseconds init_timeout{10000};
  std::chrono::milliseconds queue_wait{10000};
  std::chrono::milliseconds idle_keepalive{600000};
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

  // Retires the function's instances: all of them, or those of versions older than `keep`
  // (whose busy instances finish their invocation first).
  void Retire(const std::string& function_id, std::optional<int> keep_version = std::nullopt);

  std::vector<InstanceInfo> Instances(const std::string& function_id) const;
  size_t instance_count() const { return instances_.size(); }

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
  };
  struct Acquired {
    std::shared_ptr<Instance> instance;
    std::optional<StartFailure> failure;
    std::optional<Error> error;
    bool cold_start = false;
  };

  asio::awaitable<Acquired> Acquire(const std::shared_ptr<const Deployment>& deployment,
                                    bool force_new);
  void StartInstance(const std::shared_ptr<const Deployment>& deployment);
  // An instance is free: give it to the first waiter for its version, or park it idle.
  void OfferIdle(const std::shared_ptr<Instance>& instance);
  // Called by an instance that failed to start or that ended.
  void OnInstanceFailedToStart(const std::shared_ptr<Instance>& instance, StartFailure failure);
  void OnInstanceGone(const std::shared_ptr<Instance>& instance);
  void OnBackendExit(const sandbox::ExitStatus& status);
  void RetireInstance(const std::shared_ptr<Instance>& instance);
  void ScheduleReaper();

  asio::io_context& io_;
  sandbox::Backend& backend_;
  const Clock& clock_;
  const SchedulerOptions options_;
  std::map<std::string, FunctionPool> pools_;                   // by function id
  std::map<std::string, std::shared_ptr<Instance>> instances_;  // by instance id
  asio::steady_timer reaper_;
  bool shut_down_ = false;
};

}  // namespace wisp::scheduler
