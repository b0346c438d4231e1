#include "wisp/scheduler/scheduler.h"

#include <algorithm>
#include <limits>

#include <malloc.h>

#include <spdlog/spdlog.h>

#include "wisp/common/error_document.h"
#include "wisp/common/ids.h"
#include "wisp/scheduler/instance.h"

namespace wisp::scheduler {
namespace {

// How many init timeouts a generic prewarmed instance may take to load (see WatchInitTimeout).
constexpr int kGenericInitTimeoutFactor = 6;

}  // namespace

std::string_view InvocationStatusName(InvocationStatus status) {
  switch (status) {
    case InvocationStatus::kSuccess:
      return "success";
    case InvocationStatus::kError:
      return "error";
    case InvocationStatus::kTimeout:
      return "timeout";
  }
  return "error";
}

// A call waiting for an instance of one version. Lives in the waiting coroutine's frame.
struct Scheduler::Waiter {
  Waiter(const asio::any_io_executor& executor, int version) : ready(executor), version(version) {}
  Event ready;
  int version;
  std::shared_ptr<Instance> instance;
  std::optional<StartFailure> failure;
  // A Warm() call waits for the instance it started, never for any idle one.
  bool exclusive = false;
  std::string only_instance_id;
  // Set while the waiter is in room_queue_: what to start once the node has room, and until
  // when it may wait for it.
  std::shared_ptr<const Deployment> needs_room;
  std::chrono::steady_clock::time_point room_deadline;
  bool room_timed_out = false;
};

Scheduler::Scheduler(asio::io_context& io, sandbox::Backend& backend, const Clock& clock,
                     SchedulerOptions options)
    : io_(io),
      backend_(backend),
      clock_(clock),
      options_(options),
      instance_settings_{options.init_timeout, options.max_response_bytes,
                         options.max_log_bytes_per_invocation},
      maintenance_(io),
      refill_(io) {
  backend_.SetExitCallback([this](const sandbox::ExitStatus& status) { OnBackendExit(status); });
  ScheduleMaintenance();
}

Scheduler::~Scheduler() {
  maintenance_.cancel();
  refill_.cancel();
}

asio::awaitable<tl::expected<void, StartFailure>> Scheduler::Warm(
    std::shared_ptr<const Deployment> deployment) {
  WISP_DCHECK_ON_THREAD(io_thread_);
  Acquired acquired = co_await Acquire(deployment, /*force_new=*/true);
  if (auto* failure = std::get_if<StartFailure>(&acquired)) {
    co_return tl::unexpected(std::move(*failure));
  }
  if (auto* error = std::get_if<Error>(&acquired)) {
    StartFailure failure;
    failure.error_type = "Wisp.Unavailable";
    failure.message = error->message;
    co_return tl::unexpected(std::move(failure));
  }
  // A deploy never waits for another version, so what is left is its own instance.
  const std::shared_ptr<Instance>& instance = std::get<Granted>(acquired).instance;
  instance->EndCall();
  OfferIdle(instance);
  co_return tl::expected<void, StartFailure>{};
}

asio::awaitable<Result<InvocationResult>> Scheduler::Invoke(
    std::shared_ptr<const Deployment> deployment, InvokeRequest request) {
  WISP_DCHECK_ON_THREAD(io_thread_);
  const auto started = clock_.Now();
  Acquired acquired = co_await Acquire(deployment, /*force_new=*/false);
  while (auto* superseded = std::get_if<Superseded>(&acquired)) {
    // The function moved to a newer version while this call waited: run that one.
    deployment = std::move(superseded->by);
    acquired = co_await Acquire(deployment, /*force_new=*/false);
  }
  const auto scheduled = clock_.Now();
  if (auto* error = std::get_if<Error>(&acquired)) co_return tl::unexpected(std::move(*error));
  if (auto* failure = std::get_if<StartFailure>(&acquired)) {
    // The function could not initialise: that is this call's outcome.
    InvocationResult result;
    result.status = InvocationStatus::kError;
    result.response_json = std::move(failure->document_json);
    result.logs = std::move(failure->logs);
    result.cold_start = true;
    result.version = deployment->version;
    co_return result;
  }
  Granted& granted = std::get<Granted>(acquired);
  std::shared_ptr<Instance> instance = std::move(granted.instance);
  InvocationResult result = co_await instance->Run(std::move(request));
  result.cold_start = granted.cold_start;
  if (granted.cold_start) result.init_time = instance->init_duration();
  result.version = instance->version();
  result.schedule_time = scheduled - started;
  result.runtime_time = clock_.Now() - scheduled;
  instance->EndCall();
  OfferIdle(instance);
  co_return result;
}

asio::awaitable<Scheduler::Acquired> Scheduler::Acquire(
    const std::shared_ptr<const Deployment>& deployment, bool force_new) {
  if (shut_down_) co_return Error{ErrorCode::kUnavailable, "wispd is shutting down"};
  if (deployment->lifetime && deployment->lifetime->deleted) {
    co_return Error{ErrorCode::kNotFound,
                    fmt::format("function {} was deleted", deployment->function_name)};
  }
  FunctionPool& pool = pools_[deployment->pool_key()];
  if (!force_new && pool.current && pool.current->version > deployment->version) {
    co_return Superseded{pool.current};
  }
  const uint32_t per_instance = std::max<uint32_t>(deployment->instance_concurrency, 1);
  if (!force_new && HasCallRoom(pool, *deployment)) {
    // The busiest instance with room: instances fill up before another takes calls, so the
    // others idle and are reaped. (With one call per instance: the first idle one.)
    Instance* fullest = nullptr;
    for (const auto& instance : pool.instances) {
      if (instance->version() != deployment->version || !instance->has_room()) continue;
      if (!fullest || instance->calls() > fullest->calls()) fullest = instance.get();
      if (per_instance == 1 || fullest->calls() + 1 == per_instance) break;
    }
    if (fullest) {
      fullest->MarkBusy();
      co_return Granted{fullest->shared_from_this(), /*cold_start=*/false};
    }
  }

  Waiter waiter(co_await asio::this_coro::executor, deployment->version);
  waiter.exclusive = force_new;
  if (!force_new && pool.waiters.size() >= options_.max_queued_calls_per_function) {
    co_return Error{ErrorCode::kResourceExhausted,
                    fmt::format("function {} has {} calls waiting already; retry later",
                                deployment->function_name, pool.waiters.size())};
  }
  // A generic instance a call of this pool claimed while it loads is in its runtime's pool until
  // it is ready, but it is this pool's next instance: it counts against the limit, and as one
  // loading for the calls waiting.
  size_t claimed = 0;
  size_t claimed_for_version = 0;
  for (const auto& [instance_id, claim] : claims_) {
    if (claim.deployment->pool_key() != deployment->pool_key()) continue;
    ++claimed;
    claimed_for_version += claim.deployment->version == deployment->version;
  }
  const size_t live =
      claimed + static_cast<size_t>(std::count_if(pool.instances.begin(), pool.instances.end(),
                                                  [](const auto& i) { return i->live(); }));
  // Start an instance only for calls that no instance already starting (or waiting for room
  // to start) will serve: a burst of N calls starts ceil(N / instance_concurrency) instances,
  // while calls that queue behind briefly busy instances do not each leave a new instance
  // behind. max_instances bounds the calls in flight; instances, that many calls' worth.
  const size_t loading =
      claimed_for_version + static_cast<size_t>(std::count_if(
                                pool.instances.begin(), pool.instances.end(), [&](const auto& i) {
                                  return i->version() == deployment->version && i->loading();
                                }));
  size_t waiting = 0;
  size_t waiting_for_room = 0;
  for (const Waiter* w : pool.waiters) {
    if (w->version != deployment->version || w->exclusive) continue;
    ++waiting;
    if (w->needs_room) ++waiting_for_room;
  }
  const size_t instance_cap = (deployment->max_instances + per_instance - 1) / per_instance;
  const bool start = force_new || (live + waiting_for_room < instance_cap &&
                                   (loading + waiting_for_room) * per_instance <= waiting &&
                                   HasCallRoom(pool, *deployment));
  bool started = false;
  if (start) {
    std::shared_ptr<Instance> instance = TakePrewarmed(deployment);
    // A generic instance still loading is further along than a sandbox started now.
    if (!instance) instance = ClaimLoadingPrewarmed(deployment, &waiter);
    if (!instance && MakeRoomFor(*deployment)) {
      StartInstance(deployment);
      instance = pools_[deployment->pool_key()].instances.back();
    }
    if (instance) {
      started = true;
      if (force_new) waiter.only_instance_id = instance->id();
    } else if (room_queue_.size() >= options_.max_queued_for_room) {
      co_return Error{ErrorCode::kResourceExhausted,
                      fmt::format("the node is at its capacity with {} calls and deploys "
                                  "waiting for room already; retry later",
                                  room_queue_.size())};
    } else {
      // The node is at its caps and nothing idle can be evicted: wait for room, in order.
      waiter.needs_room = deployment;
      waiter.room_deadline =
          clock_.Now() + (force_new ? options_.deploy_queue_wait : options_.queue_wait);
      room_queue_.push_back(&waiter);
    }
  }
  pools_[deployment->pool_key()].waiters.push_back(&waiter);
  // A cold start waits as long as initialisation may take; a call queued behind busy
  // instances waits the queue time; one waiting for room, its room deadline and then an init.
  // A start ends by itself (ready, init error, or the instance's init timeout, which counts
  // from the spawn); the margin only guards against a launcher that never answers.
  const auto init_wait = 2 * options_.init_timeout + std::chrono::seconds(30);
  const auto deadline = started             ? clock_.Now() + init_wait
                        : waiter.needs_room ? waiter.room_deadline + init_wait
                                            : clock_.Now() + options_.queue_wait;
  co_await waiter.ready.Wait(deadline);
  std::erase_if(claims_, [&](const auto& claim) { return claim.second.waiter == &waiter; });
  auto& waiters = pools_[deployment->pool_key()].waiters;
  waiters.erase(std::remove(waiters.begin(), waiters.end(), &waiter), waiters.end());
  room_queue_.erase(std::remove(room_queue_.begin(), room_queue_.end(), &waiter),
                    room_queue_.end());

  const FunctionPool& after = pools_[deployment->pool_key()];
  if (waiter.instance) co_return Granted{std::move(waiter.instance), /*cold_start=*/start};
  if (waiter.failure) co_return std::move(*waiter.failure);
  if (!force_new && after.current && after.current->version > deployment->version) {
    co_return Superseded{after.current};
  }
  if ((deployment->lifetime && deployment->lifetime->deleted) ||
      after.min_version == std::numeric_limits<int>::max()) {
    co_return Error{ErrorCode::kNotFound,
                    fmt::format("function {} was deleted", deployment->function_name)};
  }
  if (shut_down_) co_return Error{ErrorCode::kUnavailable, "wispd is shutting down"};
  if (waiter.room_timed_out) {
    co_return Error{
        ErrorCode::kResourceExhausted,
        fmt::format("the node is at its capacity ({}); retry later", DescribeCapacity())};
  }
  co_return Error{ErrorCode::kResourceExhausted,
                  fmt::format("function {} is at its concurrency limit ({} instances) or the "
                              "node at its capacity; retry later",
                              deployment->function_name, deployment->max_instances)};
}

void Scheduler::AdmitWaiting() {
  // Starting an instance can end another synchronously (eviction, a spawn that fails at
  // once), which calls back here: the outer call goes on with the queue.
  if (admitting_ || shut_down_) return;
  admitting_ = true;
  while (!room_queue_.empty()) {
    Waiter* waiter = room_queue_.front();
    const std::shared_ptr<const Deployment> deployment = waiter->needs_room;
    if (waiter->instance || waiter->failure || waiter->ready.is_set() ||
        (deployment->lifetime && deployment->lifetime->deleted)) {
      room_queue_.pop_front();  // served meanwhile, or nothing left to start for
      waiter->needs_room.reset();
      continue;
    }
    std::shared_ptr<Instance> instance = TakePrewarmed(deployment);
    if (!instance) {
      if (!MakeRoomFor(*deployment)) break;
      StartInstance(deployment);
      instance = pools_[deployment->pool_key()].instances.back();
    }
    room_queue_.pop_front();
    waiter->needs_room.reset();
    if (waiter->exclusive) waiter->only_instance_id = instance->id();
  }
  admitting_ = false;
}

void Scheduler::ExpireRoomWaits() {
  const auto now = clock_.Now();
  for (auto it = room_queue_.begin(); it != room_queue_.end();) {
    Waiter* waiter = *it;
    if (waiter->room_deadline > now) {
      ++it;
      continue;
    }
    it = room_queue_.erase(it);
    waiter->needs_room.reset();
    waiter->room_timed_out = true;
    waiter->ready.Set();
  }
}

Scheduler::Usage Scheduler::NodeUsage(bool count_retiring) const {
  Usage usage;
  for (const auto& [id, instance] : instances_) {
    if (!count_retiring && instance->state() == Instance::State::kRetiring) continue;
    ++usage.instances;
    usage.fd_slots += FdSlots(*instance->deployment());
    usage.memory_bytes += instance->deployment()->spawn.memory_limit_bytes;
  }
  return usage;
}

std::string Scheduler::DescribeCapacity() const {
  const Usage usage = NodeUsage(/*count_retiring=*/true);
  std::string text =
      fmt::format("{} of {} instances", usage.instances, options_.max_instances_total);
  if (options_.max_instances_by_fds > 0 &&
      options_.max_instances_by_fds < options_.max_instances_total) {
    text += fmt::format(
        ", the fds of {} of the {} instances that wispd's open-files limit (RLIMIT_NOFILE) leaves "
        "room for (one serving several calls at once counts as several)",
        usage.fd_slots, options_.max_instances_by_fds);
  }
  if (options_.memory_budget_bytes > 0) {
    text += fmt::format(", {} of {} MiB of memory limits", usage.memory_bytes >> 20,
                        options_.memory_budget_bytes >> 20);
  }
  return text;
}

void Scheduler::StartInstance(const std::shared_ptr<const Deployment>& deployment) {
  auto instance =
      std::make_shared<Instance>(io_, clock_, static_cast<InstanceHost&>(*this), instance_settings_,
                                 NewUuid(), deployment, ToEpochMillis(clock_.WallNow()));
  pools_[deployment->pool_key()].instances.push_back(instance);
  instances_[instance->id()] = instance;

  sandbox::SpawnSpec spec = deployment->spawn;
  spec.instance_id = instance->id();
  spec.env.push_back("AWS_LAMBDA_LOG_STREAM_NAME=" + instance->id());
  auto on_spawned = [this, instance](Result<sandbox::InstanceHandle> spawned) {
    if (instance->state() == Instance::State::kGone) return;
    if (!spawned) {
      // An instance retired while it started (its function was deleted) may find its code
      // gone: expected, not worth a warning.
      const auto level = instance->state() == Instance::State::kRetiring ? spdlog::level::debug
                                                                         : spdlog::level::warn;
      spdlog::log(level, "instance {} of {}: sandbox did not start: {}", instance->id(),
                  instance->deployment()->function_name, spawned.error().message);
      StartFailure failure;
      failure.error_type = "Wisp.SandboxError";
      failure.message = "the sandbox could not be started: " + spawned.error().message;
      failure.document_json = LambdaErrorDocument(failure.error_type, failure.message);
      instance->FailedToSpawn();
      OnInstanceFailedToStart(instance, std::move(failure));
      OnInstanceGone(instance);
      return;
    }
    instance->Attach(std::move(*spawned));
    WatchInitTimeout(instance);
  };
  // Every caller made room first (MakeRoomFor): the caps, the fd budget among them, hold.
  backend_.Spawn(spec, std::move(on_spawned));
  Announce("instance.started", *instance, "");
  AnnounceScale(deployment->function_id);
}

void Scheduler::WatchInitTimeout(const std::shared_ptr<Instance>& instance) {
  // Bounds the time to the runtime's first GET /next (or, after a specialisation, the next).
  // A generic instance loads at a low CPU weight, from what other instances leave idle: on a
  // busy node it may take a while without being stuck, and no call waits for it.
  const auto limit = instance->deployment()->prewarmed
                         ? kGenericInitTimeoutFactor * options_.init_timeout
                         : options_.init_timeout;
  auto timer = std::make_shared<asio::steady_timer>(io_, limit);
  // Weak: an instance that ended meanwhile must not live on (with its deployment and the code
  // tree that holds) until a generic instance's long deadline.
  timer->async_wait([weak = std::weak_ptr<Instance>(instance), timer,
                     start = instance->start_count()](boost::system::error_code ec) {
    auto instance = weak.lock();
    if (!ec && instance && instance->start_count() == start) instance->OnInitTimeout();
  });
}

namespace {

// Whether a generic instance spawned with `generic` can become an instance of `wanted`: only
// what was fixed at spawn must match; the environment and code come with the specialisation.
bool FitsPrewarmed(const sandbox::SpawnSpec& generic, const sandbox::SpawnSpec& wanted) {
  return generic.argv == wanted.argv && generic.runtime_dir == wanted.runtime_dir &&
         generic.memory_limit_bytes == wanted.memory_limit_bytes && generic.vcpu == wanted.vcpu &&
         generic.tmp_size_bytes == wanted.tmp_size_bytes &&
         generic.pids_limit == wanted.pids_limit &&
         generic.network_outbound == wanted.network_outbound &&
         generic.outbound_private_networks == wanted.outbound_private_networks;
}

}  // namespace

std::shared_ptr<Instance> Scheduler::TakePrewarmed(
    const std::shared_ptr<const Deployment>& deployment) {
  for (auto& prewarm : prewarm_) {
    const PrewarmPool& pool_spec = prewarm.pool;
    if (!FitsPrewarmed(pool_spec.generic->spawn, deployment->spawn)) continue;
    prewarm.demand.RecordColdStart(deployment->function_id, clock_.Now());
    // After this start has reached the backend: a cold start that found the pool empty must
    // not queue behind the pool's own starts.
    ScheduleRefill();
    auto pool_it = pools_.find(pool_spec.generic->pool_key());
    if (pool_it == pools_.end()) continue;
    auto& generic_instances = pool_it->second.instances;
    auto it = std::find_if(generic_instances.begin(), generic_instances.end(),
                           [](const auto& i) { return i->state() == Instance::State::kIdle; });
    if (it == generic_instances.end()) continue;
    std::shared_ptr<Instance> instance = *it;
    SpecializeGeneric(instance, deployment);
    return instance;
  }
  return nullptr;
}

void Scheduler::SpecializeGeneric(const std::shared_ptr<Instance>& instance,
                                  const std::shared_ptr<const Deployment>& deployment) {
  auto& generic_instances = pools_[instance->deployment()->pool_key()].instances;
  generic_instances.erase(std::remove(generic_instances.begin(), generic_instances.end(), instance),
                          generic_instances.end());
  pools_[deployment->pool_key()].instances.push_back(instance);
  instance->Specialize(deployment);
  WatchInitTimeout(instance);
  auto on_code_placed = [instance, function = deployment->function_name](Result<void> placed) {
    if (placed) return instance->CodePlaced();
    // Part of the code may be in its directory now: this instance may serve no one.
    spdlog::warn("prewarmed instance {}: cannot put the code of {} in place: {}", instance->id(),
                 function, placed.error().message);
    instance->CodeNotPlaced(placed.error().message);
  };
  backend_.Specialize(instance->id(), deployment->spawn.code_dir, std::move(on_code_placed));
  Announce("instance.started", *instance, "prewarmed");
  AnnounceScale(deployment->function_id);
}

std::shared_ptr<Instance> Scheduler::ClaimLoadingPrewarmed(
    const std::shared_ptr<const Deployment>& deployment, Waiter* waiter) {
  for (const auto& prewarm : prewarm_) {
    if (!FitsPrewarmed(prewarm.pool.generic->spawn, deployment->spawn)) continue;
    auto pool_it = pools_.find(prewarm.pool.generic->pool_key());
    if (pool_it == pools_.end()) continue;
    // The one that started first is the furthest along. Only a spawned one (initializing): a
    // sandbox still being created may wait behind others at the backend.
    for (const auto& instance : pool_it->second.instances) {
      if (instance->state() != Instance::State::kInitializing || claims_.count(instance->id())) {
        continue;
      }
      claims_[instance->id()] = Claim{deployment, waiter};
      // A call waits for it now: it loads at its full CPU weight from here on.
      backend_.Prioritize(instance->id());
      return instance;
    }
  }
  return nullptr;
}

void Scheduler::RestartClaim(const Claim& claim) {
  Waiter* waiter = claim.waiter;
  if (waiter->instance || waiter->failure || waiter->ready.is_set()) return;
  if (shut_down_) return waiter->ready.Set();
  const std::shared_ptr<const Deployment>& deployment = claim.deployment;
  if (!MakeRoomFor(*deployment)) {
    StartFailure failure;
    failure.error_type = "Wisp.Unavailable";
    failure.message = fmt::format(
        "the prewarmed instance taken for {} ended before it was ready, "
        "and the node has no room for another ({})",
        deployment->function_name, DescribeCapacity());
    failure.document_json = LambdaErrorDocument(failure.error_type, failure.message);
    waiter->failure = std::move(failure);
    return waiter->ready.Set();
  }
  StartInstance(deployment);
  if (waiter->exclusive)
    waiter->only_instance_id = pools_[deployment->pool_key()].instances.back()->id();
}

void Scheduler::ScheduleRefill() {
  if (refill_scheduled_ || shut_down_) return;
  refill_scheduled_ = true;
  refill_.expires_after(std::chrono::milliseconds(0));
  refill_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    refill_scheduled_ = false;
    if (shut_down_ || !room_queue_.empty()) return;  // calls waiting for room come first
    for (auto& prewarm : prewarm_) TopUpPrewarm(prewarm);
  });
}

void Scheduler::TopUpPrewarm(Prewarm& prewarm) {
  const std::shared_ptr<const Deployment>& generic = prewarm.pool.generic;
  size_t live = 0;
  size_t loading = 0;
  if (auto it = pools_.find(generic->pool_key()); it != pools_.end()) {
    for (const auto& instance : it->second.instances) {
      // One a call claimed is loading, but no longer the pool's.
      live += instance->live() && !claims_.count(instance->id());
      loading += instance->live() && instance->loading();
    }
  }
  const size_t target = prewarm.demand.Target(clock_.Now());
  for (; live < target && loading < options_.prewarm_starts_in_flight; ++live, ++loading) {
    // The configured size may evict idle instances, as min_instances does; what demand adds
    // takes only spare room.
    const bool room = live < prewarm.pool.size ? MakeRoomFor(*generic) : HasSpareRoomFor(*generic);
    if (!room) return;
    StartInstance(generic);
  }
}

void Scheduler::ShrinkPrewarm(Prewarm& prewarm) {
  auto it = pools_.find(prewarm.pool.generic->pool_key());
  if (it == pools_.end()) return;
  size_t live = 0;
  std::vector<std::shared_ptr<Instance>> idle;
  for (const auto& instance : it->second.instances) {
    live += instance->live();
    if (instance->state() == Instance::State::kIdle) idle.push_back(instance);
  }
  const size_t target = prewarm.demand.Target(clock_.Now());
  // Those that waited longest go first.
  std::sort(idle.begin(), idle.end(),
            [](const auto& a, const auto& b) { return a->idle_since() < b->idle_since(); });
  for (size_t i = 0; i < idle.size() && live > target; ++i, --live) RetireInstance(idle[i]);
}

size_t Scheduler::FdSlots(const Deployment& deployment) {
  const size_t unit = InstanceFdCost(1);
  return (InstanceFdCost(deployment.instance_concurrency) + unit - 1) / unit;
}

bool Scheduler::HasSpareRoomFor(const Deployment& deployment) const {
  const Usage usage = NodeUsage(/*count_retiring=*/true);
  if ((usage.instances + 1) * 4 > options_.max_instances_total * 3) return false;
  if (options_.max_instances_by_fds > 0 &&
      (usage.fd_slots + FdSlots(deployment)) * 4 > options_.max_instances_by_fds * 3) {
    return false;
  }
  return options_.memory_budget_bytes == 0 ||
         (usage.memory_bytes + deployment.spawn.memory_limit_bytes) * 4 <=
             options_.memory_budget_bytes * 3;
}

bool Scheduler::MakeRoomFor(const Deployment& deployment) {
  // Retiring instances are being killed and still hold their memory: they count until gone,
  // so the node never holds more sandboxes than its caps, not even for the moment a kill
  // takes. Evictions stop once what is not retiring fits; the caller then waits for the
  // exits (OnInstanceGone admits the calls waiting for room).
  const auto fits = [&](bool count_retiring) {
    const Usage usage = NodeUsage(count_retiring);
    return usage.instances + 1 <= options_.max_instances_total &&
           (options_.max_instances_by_fds == 0 ||
            usage.fd_slots + FdSlots(deployment) <= options_.max_instances_by_fds) &&
           (options_.memory_budget_bytes == 0 ||
            usage.memory_bytes + deployment.spawn.memory_limit_bytes <=
                options_.memory_budget_bytes);
  };
  while (!fits(/*count_retiring=*/false)) {
    // Evict the least recently used idle instance, prewarmed ones first: they serve no one yet.
    std::shared_ptr<Instance> victim;
    for (const auto& [id, instance] : instances_) {
      if (instance->state() != Instance::State::kIdle) continue;
      const bool generic = instance->deployment()->prewarmed;
      const bool victim_generic = victim && victim->deployment()->prewarmed;
      if (!victim || (generic && !victim_generic) ||
          (generic == victim_generic && instance->idle_since() < victim->idle_since())) {
        victim = instance;
      }
    }
    if (!victim) return false;
    spdlog::debug("evicting idle instance {} of {} to make room", victim->id(),
                  victim->deployment()->function_name);
    RetireInstance(victim);
  }
  return fits(/*count_retiring=*/true);
}

void Scheduler::OnInstanceReady(const std::shared_ptr<Instance>& instance) {
  if (instance->loading()) Announce("instance.ready", *instance, "");
  if (instance->deployment()->prewarmed) {
    // The pool may start the next one it still lacks.
    ScheduleRefill();
    // A call claimed it while it loaded: it becomes that call's function's now.
    if (auto claim = claims_.extract(instance->id())) {
      instance->MarkIdle(clock_.Now());
      return SpecializeGeneric(instance, claim.mapped().deployment);
    }
  }
  OfferIdle(instance);
}

void Scheduler::OnInstanceMustRetire(const std::shared_ptr<Instance>& instance) {
  RetireInstance(instance);
}

bool Scheduler::HasCallRoom(const FunctionPool& pool, const Deployment& deployment) const {
  // One call per instance: the instance count, checked where instances start, bounds them.
  if (deployment.instance_concurrency <= 1) return true;
  size_t calls = 0;
  for (const auto& instance : pool.instances) calls += instance->calls();
  return calls < deployment.max_instances;
}

Scheduler::Waiter* Scheduler::MatchWaiter(FunctionPool& pool, const Instance& instance) const {
  Waiter* chosen = nullptr;
  for (Waiter* waiter : pool.waiters) {
    if (waiter->instance || waiter->failure || waiter->version != instance.version()) continue;
    if (waiter->exclusive) {
      if (waiter->only_instance_id == instance.id()) return waiter;
      continue;
    }
    if (!chosen) chosen = waiter;
  }
  return chosen;
}

void Scheduler::OfferIdle(const std::shared_ptr<Instance>& instance) {
  if (!instance->live()) return;
  const auto& lifetime = instance->deployment()->lifetime;
  auto& pool = pools_[instance->deployment()->pool_key()];
  if (instance->version() < pool.min_version || (lifetime && lifetime->deleted) ||
      !instance->accepting()) {
    // The function moved on to a newer version meanwhile, or is gone; or the instance drains
    // after a timeout. It retires once its last call has ended.
    if (instance->calls() > 0) return;
    RetireInstance(instance);
    AdmitWaiting();
    return;
  }
  // Ready now (initializing), or a call ended: it takes as many waiting calls as it has room
  // for, within the function's limit on calls in flight.
  if (instance->loading()) {
    if (Waiter* chosen = MatchWaiter(pool, *instance)) {
      instance->MarkBusy();
      chosen->instance = instance;
      chosen->ready.Set();
    }
  }
  while (instance->has_room() && HasCallRoom(pool, *instance->deployment())) {
    Waiter* chosen = MatchWaiter(pool, *instance);
    if (!chosen) break;
    instance->MarkBusy();
    chosen->instance = instance;
    chosen->ready.Set();
  }
  if (instance->calls() > 0) return;
  instance->MarkIdle(clock_.Now());
  // An idle instance can be evicted: a call or deploy waiting for room may start now.
  if (!room_queue_.empty()) AdmitWaiting();
}

void Scheduler::OnInstanceFailedToStart(const std::shared_ptr<Instance>& instance,
                                        StartFailure failure) {
  // The failure is the outcome of the call that started this instance: the oldest waiter of
  // its version (or the Warm() call that waits for exactly it).
  Waiter* chosen = MatchWaiter(pools_[instance->deployment()->pool_key()], *instance);
  if (!chosen) return;
  chosen->failure = std::move(failure);
  chosen->ready.Set();
}

void Scheduler::OnInstanceGone(const std::shared_ptr<Instance>& instance) {
  // A claimed generic instance that ended before it was ready: its call starts another.
  if (auto claim = claims_.extract(instance->id())) RestartClaim(claim.mapped());
  Announce("instance.stopped", *instance, "");
  instances_.erase(instance->id());
  instances_ended_ = true;
  auto it = pools_.find(instance->deployment()->pool_key());
  if (it != pools_.end()) {
    auto& list = it->second.instances;
    list.erase(std::remove(list.begin(), list.end(), instance), list.end());
    if (list.empty() && it->second.waiters.empty() && !it->second.current) pools_.erase(it);
  }
  AnnounceScale(instance->deployment()->function_id);
  AdmitWaiting();
}

void Scheduler::OnBackendExit(const sandbox::ExitStatus& status) {
  WISP_DCHECK_ON_THREAD(io_thread_);
  auto it = instances_.find(status.instance_id);
  if (it == instances_.end()) return;
  std::shared_ptr<Instance> instance = it->second;
  spdlog::debug("instance {} of {} ended: code {} signal {} oom {}", instance->id(),
                instance->deployment()->function_name, status.exit_code, status.signal,
                status.oom_killed);
  instance->OnExit(status);
}

void Scheduler::RetireInstance(const std::shared_ptr<Instance>& instance) {
  if (instance->MarkRetiring()) backend_.Kill(instance->id());
}

void Scheduler::Publish(std::shared_ptr<const Deployment> deployment) {
  WISP_DCHECK_ON_THREAD(io_thread_);
  const std::string key = deployment->pool_key();
  const int version = deployment->version;
  pools_[key].current = std::move(deployment);
  Retire(key, version);
  Maintain();
}

void Scheduler::RetireFunction(const std::string& function_id) {
  WISP_DCHECK_ON_THREAD(io_thread_);
  // Its $LATEST pool and the pools of its published versions ("<id>#<n>").
  std::vector<std::string> keys;
  for (auto it = pools_.lower_bound(function_id);
       it != pools_.end() && it->first.starts_with(function_id); ++it) {
    if (it->first.size() == function_id.size() || it->first[function_id.size()] == '#') {
      keys.push_back(it->first);
    }
  }
  for (const auto& key : keys) RetirePool(key);
}

void Scheduler::RetirePool(const std::string& pool_key) {
  WISP_DCHECK_ON_THREAD(io_thread_);
  Retire(pool_key, std::numeric_limits<int>::max());
  auto it = pools_.find(pool_key);
  if (it != pools_.end()) it->second.current.reset();
}

void Scheduler::Retire(const std::string& pool_key, int min_version) {
  auto it = pools_.find(pool_key);
  if (it == pools_.end()) return;
  it->second.min_version = min_version;
  // Calls waiting for an instance of an older version would wait in vain: wake them to take
  // the new one.
  for (Waiter* waiter : it->second.waiters) {
    if (waiter->version < min_version && !waiter->instance && !waiter->failure) {
      waiter->ready.Set();
    }
  }
  const bool function_deleted = min_version == std::numeric_limits<int>::max();
  const auto instances = it->second.instances;  // retiring may erase from the pool
  for (const auto& instance : instances) {
    if (instance->version() >= min_version) continue;
    // A busy instance of an old version finishes its call first: OfferIdle() retires it then.
    // Deleting the function ends its calls now.
    if (instance->state() == Instance::State::kBusy && !function_deleted) continue;
    RetireInstance(instance);
  }
}

void Scheduler::ConfigurePrewarm(std::vector<PrewarmPool> pools) {
  WISP_DCHECK_ON_THREAD(io_thread_);
  prewarm_.clear();
  const auto now = clock_.Now();
  prewarm_configured_at_ = now;
  for (auto& pool : pools) {
    PrewarmDemand demand(pool.size, pool.max_size, options_.prewarm_demand_window);
    // Every serving version without an instance (all of them, right after a restart) starts
    // cold at its next call: count those starts as demand already, so that a burst of first
    // calls finds the pool grown.
    std::vector<std::string> expected;
    for (const auto& [key, function_pool] : pools_) {
      const bool has_instance =
          std::any_of(function_pool.instances.begin(), function_pool.instances.end(),
                      [](const auto& i) { return i->live(); });
      if (function_pool.current && !has_instance &&
          FitsPrewarmed(pool.generic->spawn, function_pool.current->spawn)) {
        expected.push_back(function_pool.current->function_id);
      }
    }
    demand.RecordColdStarts(expected, now);
    prewarm_.push_back(Prewarm{std::move(pool), std::move(demand)});
  }
  Maintain();
}

namespace {

InstanceInfo Describe(const Instance& instance) {
  InstanceInfo info;
  const Deployment& deployment = *instance.deployment();
  info.id = instance.id();
  info.function_id = deployment.function_id;
  info.function_name = deployment.function_name;
  info.prewarmed = deployment.prewarmed;
  info.version = instance.version();
  info.pid = instance.pid();
  info.state = std::string(Instance::StateName(instance.state()));
  info.started_at_ms = instance.started_at_ms();
  info.invocations = instance.invocations();
  info.last_call_at_ms = instance.last_call_at_ms();
  info.memory_limit_bytes = deployment.spawn.memory_limit_bytes;
  info.memory_peak_bytes = instance.MemoryPeak();
  return info;
}

}  // namespace

std::vector<InstanceInfo> Scheduler::Instances(const std::string& function_id) const {
  WISP_DCHECK_ON_THREAD(io_thread_);
  std::vector<InstanceInfo> out;
  auto it = pools_.find(function_id);
  if (it == pools_.end()) return out;
  for (const auto& instance : it->second.instances) out.push_back(Describe(*instance));
  return out;
}

std::vector<InstanceInfo> Scheduler::AllInstances() const {
  WISP_DCHECK_ON_THREAD(io_thread_);
  std::vector<InstanceInfo> out;
  out.reserve(instances_.size());
  for (const auto& [id, instance] : instances_) out.push_back(Describe(*instance));
  return out;
}

std::optional<InstanceInfo> Scheduler::FindInstance(const std::string& instance_id) const {
  WISP_DCHECK_ON_THREAD(io_thread_);
  auto it = instances_.find(instance_id);
  if (it == instances_.end()) return std::nullopt;
  return Describe(*it->second);
}

void Scheduler::Announce(const char* type, const Instance& instance, std::string detail) {
  if (!events_ || !events_->has_subscribers() || instance.deployment()->prewarmed) return;
  metrics::StateEvent event;
  event.type = type;
  event.function_id = instance.deployment()->function_id;
  event.function_name = instance.deployment()->function_name;
  event.version = instance.version();
  event.instance_id = instance.id();
  event.state = std::string(Instance::StateName(instance.state()));
  event.detail = std::move(detail);
  events_->Publish(event);
}

void Scheduler::AnnounceScale(const std::string& function_id) {
  if (!events_ || !events_->has_subscribers()) return;
  auto it = pools_.find(function_id);
  uint64_t live = 0;
  std::string name;
  if (it != pools_.end()) {
    for (const auto& instance : it->second.instances) {
      if (instance->deployment()->prewarmed) return;  // a prewarm pool's, not a function's
      live += instance->live();
      name = instance->deployment()->function_name;
    }
  }
  metrics::StateEvent event;
  event.type = "function.scaled";
  event.function_id = function_id;
  event.function_name = name;
  event.instances = live;
  events_->Publish(event);
}

std::map<std::string, size_t> Scheduler::PrewarmedIdle() const {
  WISP_DCHECK_ON_THREAD(io_thread_);
  std::map<std::string, size_t> out;
  for (const auto& prewarm : prewarm_) {
    const std::string& key = prewarm.pool.generic->pool_key();
    size_t& idle = out[key];
    auto it = pools_.find(key);
    if (it == pools_.end()) continue;
    for (const auto& instance : it->second.instances) {
      if (instance->state() == Instance::State::kIdle) ++idle;
    }
  }
  return out;
}

bool Scheduler::WarmedUp() const {
  WISP_DCHECK_ON_THREAD(io_thread_);
  if (warmed_up_) return true;
  const auto now = clock_.Now();
  if (now - prewarm_configured_at_ >= options_.warm_up_timeout) return warmed_up_ = true;
  const std::map<std::string, size_t> idle = PrewarmedIdle();
  for (const auto& prewarm : prewarm_) {
    const std::string& key = prewarm.pool.generic->pool_key();
    if (idle.at(key) >= prewarm.demand.Target(now)) continue;
    if (HasSpareRoomFor(*prewarm.pool.generic)) return false;
    // The node has no spare room for more: the pool is full once what it started has loaded.
    auto it = pools_.find(key);
    if (it != pools_.end() &&
        std::any_of(it->second.instances.begin(), it->second.instances.end(),
                    [](const auto& instance) { return instance->loading(); })) {
      return false;
    }
  }
  return warmed_up_ = true;
}

std::map<std::string, size_t> Scheduler::PrewarmTargets() const {
  WISP_DCHECK_ON_THREAD(io_thread_);
  std::map<std::string, size_t> out;
  const auto now = clock_.Now();
  for (const auto& prewarm : prewarm_) {
    out[prewarm.pool.generic->pool_key()] = prewarm.demand.Target(now);
  }
  return out;
}

void Scheduler::ScheduleMaintenance() {
  maintenance_.expires_after(options_.maintenance_period);
  maintenance_.async_wait([this](boost::system::error_code ec) {
    if (ec || shut_down_) return;
    Maintain();
    ScheduleMaintenance();
  });
}

void Scheduler::Maintain() {
  WISP_DCHECK_ON_THREAD(io_thread_);
  if (shut_down_) return;
  const auto now = clock_.Now();
  // Reap what idled past its keep-alive, except what min_instances or a prewarm pool keeps.
  std::vector<std::shared_ptr<Instance>> expired;
  for (const auto& [function_id, pool] : pools_) {
    const uint32_t keep = pool.current ? pool.current->min_instances : 0;
    uint32_t kept = 0;
    for (const auto& instance : pool.instances) {
      if (instance->state() != Instance::State::kIdle || instance->deployment()->prewarmed) {
        continue;
      }
      if (instance->version() == (pool.current ? pool.current->version : -1) && kept < keep) {
        ++kept;
        continue;
      }
      if (now - instance->idle_since() >= options_.idle_keepalive) expired.push_back(instance);
    }
  }
  for (const auto& instance : expired) {
    Announce("instance.reaped", *instance, "idle longer than the keep-alive");
    RetireInstance(instance);
  }
  ExpireRoomWaits();
  AdmitWaiting();
  // Scaling down frees each instance's buffers, but glibc keeps freed heap for reuse: wispd
  // stayed at its peak (48 MiB after 500 instances, 8 MiB fresh) while scaled to zero.
  // malloc_trim hands the free pages back (to 14 MiB). It holds up the io thread for 2 ms, or
  // 28 ms after 500 instances ended, so it waits until no call is running.
  if (instances_ended_ && std::none_of(instances_.begin(), instances_.end(), [](const auto& entry) {
        return entry.second->state() == Instance::State::kBusy;
      })) {
    instances_ended_ = false;
    malloc_trim(0);
  }

  // Generic instances that demand no longer asks for go (before anything is started below).
  for (auto& prewarm : prewarm_) ShrinkPrewarm(prewarm);

  // Top up min_instances of every serving version and every prewarm pool. A runtime that dies
  // at start is retried at this pace, not in a hot loop. Calls and deploys waiting for room
  // come first: nothing is kept warm at their expense.
  if (!room_queue_.empty()) return;
  const auto live_of = [this](const std::string& function_id, int version) {
    auto it = pools_.find(function_id);
    if (it == pools_.end()) return size_t{0};
    return static_cast<size_t>(
        std::count_if(it->second.instances.begin(), it->second.instances.end(),
                      [&](const auto& i) { return i->version() == version && i->live(); }));
  };
  std::vector<std::pair<std::shared_ptr<const Deployment>, size_t>> wanted;
  for (const auto& [function_id, pool] : pools_) {
    if (pool.current && pool.current->min_instances > 0) {
      wanted.emplace_back(pool.current, pool.current->min_instances);
    }
  }
  for (const auto& [deployment, size] : wanted) {
    for (size_t live = live_of(deployment->pool_key(), deployment->version); live < size; ++live) {
      if (!MakeRoomFor(*deployment)) return;
      StartInstance(deployment);
    }
  }
  for (auto& prewarm : prewarm_) TopUpPrewarm(prewarm);
}

void Scheduler::Shutdown() {
  WISP_DCHECK_ON_THREAD(io_thread_);
  shut_down_ = true;
  maintenance_.cancel();
  refill_.cancel();
  for (auto& [function_id, pool] : pools_) {
    for (Waiter* waiter : pool.waiters) waiter->ready.Set();
  }
  backend_.KillAll();
}

}  // namespace wisp::scheduler
