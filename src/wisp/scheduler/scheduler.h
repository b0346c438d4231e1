// Scheduler: the instances of every function. It hands each invocation an idle warm instance of
// the function's current version (or one serving fewer calls than its instance_concurrency), or
// starts one, or makes the call wait while the function is at its limit; it retires instances
// that time out, crash, are outdated or idle too long. One invocation at a time per instance
// unless the function's instance_concurrency allows more; its max_concurrency bounds its calls
// in flight either way.
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
#include <variant>
#include <vector>

#include "wisp/common/asio.h"
#include "wisp/common/clock.h"
#include "wisp/common/result.h"
#include "wisp/common/thread_role.h"
#include "wisp/metrics/event_bus.h"
#include "wisp/sandbox/backend.h"
#include "wisp/scheduler/deployment.h"
#include "wisp/scheduler/instance.h"
#include "wisp/scheduler/prewarm_demand.h"

namespace wisp::scheduler {

class Instance;

struct SchedulerOptions {
  std::chrono::milliseconds init_timeout{10000};
  std::chrono::milliseconds queue_wait{10000};
  // How long a deploy may wait for room on the node (its instance must load to prove the code
  // works, and it never goes over the caps below).
  std::chrono::milliseconds deploy_queue_wait{60000};
  std::chrono::milliseconds idle_keepalive{600000};
  // How often idle instances are reaped and pools topped up.
  std::chrono::milliseconds maintenance_period{1000};
  // Node-wide caps: instances alive at once, and the memory their limits add up to (0: no cap).
  // Idle instances are evicted, least recently used first, before a call is refused.
  size_t max_instances_total = 2000;
  uint64_t memory_budget_bytes = 0;
  // Instances wispd has file descriptors for (InstanceFdCost(1) each; an instance that serves
  // several calls at once counts as FdSlots of them): also a cap on max_instances_total, and a
  // hard one, deploys included, so that a node short of fds refuses new sandboxes instead of
  // failing the public API's accept (0: no cap).
  size_t max_instances_by_fds = 0;
  // How long a cold start counts towards the size of its runtime's prewarm pool
  // (PrewarmDemand), and how many generic instances a pool starts at once when it refills:
  // more than one, so a pool emptied by a burst fills again in parallel; few, so that a call's
  // own full start does not queue behind a long line of them at the launcher.
  std::chrono::milliseconds prewarm_demand_window{60000};
  size_t prewarm_starts_in_flight = 4;
  // The longest WarmedUp() waits for the pools after ConfigurePrewarm.
  std::chrono::milliseconds warm_up_timeout{10000};
  // Calls that may wait for a busy function; more are refused at once.
  size_t max_queued_calls_per_function = 1000;
  // Calls and deploys that may wait for room on the node at once; more are refused at once.
  size_t max_queued_for_room = 1000;
  uint64_t max_response_bytes = 6ull << 20;
  uint64_t max_log_bytes_per_invocation = 256ull << 10;
};

// A snapshot of one instance, for the API.
struct InstanceInfo {
  std::string id;
  std::string function_id;  // a prewarm pool's key ("prewarm/node") for a generic instance
  std::string function_name;
  bool prewarmed = false;  // a generic instance, no function's code yet
  int version = 0;
  pid_t pid = -1;
  std::string state;
  int64_t started_at_ms = 0;
  uint64_t invocations = 0;
  std::optional<int64_t> last_call_at_ms;
  uint64_t memory_limit_bytes = 0;
  std::optional<uint64_t> memory_peak_bytes;  // the instance's high-water mark, when known
};

// Generic instances of one runtime, started without any function's code and kept ready. A cold
// start of a function whose sandbox settings match takes one and specialises it — the backend
// puts the code into its (empty, read-only) /var/task, then its runtime is told which function
// it is — instead of spawning a process. The pool holds `size` instances at least; recent cold
// starts that fit it raise it up to `max_size` (PrewarmDemand), within the room the node's caps
// leave: above `size`, it only takes room that is free without evicting anything, and leaves a
// quarter of the node's instance and memory caps to functions.
struct PrewarmPool {
  // What the generic instances run: spawn.prewarmed, no code_dir.
  std::shared_ptr<const Deployment> generic;
  size_t size = 1;
  size_t max_size = 1;  // below `size`: `size`
};

class Scheduler final : private InstanceHost {
 public:
  Scheduler(asio::io_context& io, sandbox::Backend& backend, const Clock& clock,
            SchedulerOptions options);
  ~Scheduler() override;
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
  // The function is gone: all its instances retire now, its published versions' included.
  void RetireFunction(const std::string& function_id);
  // One pool is gone (a deleted published version): its instances retire now.
  void RetirePool(const std::string& pool_key);

  // Starts keeping the pools filled.
  void ConfigurePrewarm(std::vector<PrewarmPool> pools);

  std::vector<InstanceInfo> Instances(const std::string& function_id) const;
  // Every instance on the node, prewarmed ones included.
  std::vector<InstanceInfo> AllInstances() const;
  std::optional<InstanceInfo> FindInstance(const std::string& instance_id) const;

  // Instances starting, becoming ready, being reaped and ending, and the function's count of
  // live instances after each change, go to `events` (null: nowhere).
  void SetEventBus(metrics::EventBus* events) { events_ = events; }
  size_t instance_count() const { return instances_.size(); }
  // How many instances the node may run at once: its cap, or fewer when its open-files limit
  // leaves room for fewer.
  size_t max_instances() const {
    return options_.max_instances_by_fds > 0
               ? std::min(options_.max_instances_total, options_.max_instances_by_fds)
               : options_.max_instances_total;
  }
  // How many instances of instance_concurrency 1 an instance of `deployment` counts as against
  // max_instances_by_fds: its fds (a connection per call at once) over theirs.
  static size_t FdSlots(const Deployment& deployment);
  // Idle prewarmed instances ready for a cold start, by pool ("prewarm/node", ...).
  std::map<std::string, size_t> PrewarmedIdle() const;
  // How many generic instances each pool wants now (its size raised by recent demand).
  std::map<std::string, size_t> PrewarmTargets() const;
  // Whether the node has warmed up since its pools were configured (at start): every pool holds
  // idle the generic instances it is filling to, or cannot hold more, or warm_up_timeout has
  // passed. A restarted node serves calls at once, but a burst of first calls before this pays
  // full starts; a load balancer that sends traffic only once GET /health/ready says so sends
  // none of them. Once true it stays true: readiness, not a measure of the pools.
  bool WarmedUp() const;

  // Kills every instance; no call is accepted afterwards.
  void Shutdown();

 private:
  struct Waiter;
  struct FunctionPool {
    std::vector<std::shared_ptr<Instance>> instances;
    std::deque<Waiter*> waiters;
    // Instances of older versions are retired as soon as they are free.
    int min_version = 0;
    // The serving version, once published: its min_instances are kept warm.
    std::shared_ptr<const Deployment> current;
  };
  // How Acquire ends: an instance for the call (now busy); the start failure that is the
  // call's outcome; an error (no instance could take it); or a newer version to retry with.
  struct Granted {
    std::shared_ptr<Instance> instance;
    bool cold_start = false;
  };
  struct Superseded {
    std::shared_ptr<const Deployment> by;
  };
  using Acquired = std::variant<Granted, StartFailure, Error, Superseded>;

  asio::awaitable<Acquired> Acquire(const std::shared_ptr<const Deployment>& deployment,
                                    bool force_new);
  void StartInstance(const std::shared_ptr<const Deployment>& deployment);
  struct Prewarm {
    PrewarmPool pool;
    PrewarmDemand demand;
  };
  // Takes an idle prewarmed instance that fits `deployment` and specialises it; null if none.
  // Either way a fitting pool counts the cold start and refills.
  std::shared_ptr<Instance> TakePrewarmed(const std::shared_ptr<const Deployment>& deployment);
  // Moves a generic instance (idle) into `deployment`'s pool and gives it the code.
  void SpecializeGeneric(const std::shared_ptr<Instance>& instance,
                         const std::shared_ptr<const Deployment>& deployment);
  // A cold start that found no idle prewarmed instance takes one still loading, if a fitting
  // pool has one no other call claimed: it is specialised for `waiter`'s call once ready.
  // Null if none.
  struct Claim {
    std::shared_ptr<const Deployment> deployment;
    Waiter* waiter;  // erased from claims_ when the waiter stops waiting
  };
  std::shared_ptr<Instance> ClaimLoadingPrewarmed(
      const std::shared_ptr<const Deployment>& deployment, Waiter* waiter);
  // The claimed instance ended before it was ready: start another for the call, or fail it.
  void RestartClaim(const Claim& claim);
  // Starts generic instances until the pool holds its target (loading ones included), at most
  // options_.prewarm_starts_in_flight loading at once; above its floor only into spare room.
  void TopUpPrewarm(Prewarm& prewarm);
  // Retires idle generic instances beyond the pool's target.
  void ShrinkPrewarm(Prewarm& prewarm);
  // True when another instance of `deployment` fits in three quarters of the node's caps
  // without evicting anything: the room a pool may grow into above its floor.
  bool HasSpareRoomFor(const Deployment& deployment) const;
  // True when the node can afford another instance of `deployment`, after evicting idle
  // instances if that is what it takes.
  bool MakeRoomFor(const Deployment& deployment);
  // Starts instances for the calls and deploys waiting for room, oldest first, while the node
  // has room; called whenever room may have appeared (an instance ended or became evictable).
  void AdmitWaiting();
  // Ends the waits for room that outlasted their deadline.
  void ExpireRoomWaits();
  // "N of M instances, X of Y MiB of memory limits": why the node has no room.
  std::string DescribeCapacity() const;
  // What the node's instances take of its caps; retiring ones (still being killed, holding
  // their memory) when `count_retiring`.
  struct Usage {
    size_t instances = 0;
    size_t fd_slots = 0;
    uint64_t memory_bytes = 0;
  };
  Usage NodeUsage(bool count_retiring) const;
  void WatchInitTimeout(const std::shared_ptr<Instance>& instance);
  void Maintain();
  // An instance is ready or one of its calls ended: give it to the first waiters for its
  // version while it has room, or park it idle; retire it if it may serve no more.
  void OfferIdle(const std::shared_ptr<Instance>& instance);
  // The function may have another call in flight (max_instances bounds them).
  bool HasCallRoom(const FunctionPool& pool, const Deployment& deployment) const;
  // The waiter an instance of `pool` serves next: the Warm() call that started exactly it, or
  // else the oldest call for its version. Null if none.
  Waiter* MatchWaiter(FunctionPool& pool, const Instance& instance) const;
  // InstanceHost:
  void OnInstanceReady(const std::shared_ptr<Instance>& instance) override;
  void OnInstanceMustRetire(const std::shared_ptr<Instance>& instance) override;
  void OnInstanceFailedToStart(const std::shared_ptr<Instance>& instance,
                               StartFailure failure) override;
  void OnInstanceGone(const std::shared_ptr<Instance>& instance) override;
  void OnBackendExit(const sandbox::ExitStatus& status);
  void RetireInstance(const std::shared_ptr<Instance>& instance);
  void ScheduleMaintenance();
  // Tops up the prewarm pools soon, once what runs now (a cold start's own spawn) is done.
  void ScheduleRefill();
  void Retire(const std::string& pool_key, int min_version);
  // Events (no-ops without a bus or a subscriber); generic prewarmed instances are not told.
  void Announce(const char* type, const Instance& instance, std::string detail);
  void AnnounceScale(const std::string& function_id);

  asio::io_context& io_;
  sandbox::Backend& backend_;
  const Clock& clock_;
  const SchedulerOptions options_;
  const InstanceSettings instance_settings_;
  std::map<std::string, FunctionPool> pools_;                   // by Deployment::pool_key()
  std::map<std::string, std::shared_ptr<Instance>> instances_;  // by instance id
  // Calls and deploys that need a new instance while the node is at its caps, oldest first.
  // Each is also in its function's waiters: an instance of its version may serve it first.
  std::deque<Waiter*> room_queue_;
  bool admitting_ = false;
  ThreadRole io_thread_;
  std::vector<Prewarm> prewarm_;
  std::chrono::steady_clock::time_point prewarm_configured_at_{};
  mutable bool warmed_up_ = false;       // latched by WarmedUp()
  std::map<std::string, Claim> claims_;  // by generic instance id
  asio::steady_timer maintenance_;
  asio::steady_timer refill_;
  bool refill_scheduled_ = false;
  // Instances ended since maintenance last handed freed memory back to the system.
  bool instances_ended_ = false;
  bool shut_down_ = false;
  metrics::EventBus* events_ = nullptr;
};

}  // namespace wisp::scheduler
