#include "wisp/scheduler/scheduler.h"

#include <algorithm>
#include <filesystem>
#include <limits>

#include <malloc.h>

#include <spdlog/spdlog.h>

#include "wisp/common/ids.h"
#include "wisp/common/json_text.h"
#include "wisp/scheduler/instance.h"

namespace wisp::scheduler {
namespace {

std::string_view StateName(Instance::State state) {
  switch (state) {
    case Instance::State::kStarting:
      return "starting";
    case Instance::State::kIdle:
      return "idle";
    case Instance::State::kBusy:
      return "busy";
    case Instance::State::kRetiring:
      return "retiring";
    case Instance::State::kGone:
      return "gone";
  }
  return "unknown";
}

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
  // A Warm() call waits for the instance it started, not for any idle one.
  std::string only_instance_id;
};

Scheduler::Scheduler(asio::io_context& io, sandbox::Backend& backend, const Clock& clock,
                     SchedulerOptions options)
    : io_(io), backend_(backend), clock_(clock), options_(options), maintenance_(io) {
  backend_.SetExitCallback([this](const sandbox::ExitStatus& status) { OnBackendExit(status); });
  ScheduleMaintenance();
}

Scheduler::~Scheduler() { maintenance_.cancel(); }

asio::awaitable<tl::expected<void, StartFailure>> Scheduler::Warm(
    std::shared_ptr<const Deployment> deployment) {
  Acquired acquired = co_await Acquire(deployment, /*force_new=*/true);
  if (acquired.failure) co_return tl::unexpected(std::move(*acquired.failure));
  if (acquired.error) {
    StartFailure failure;
    failure.error_type = "Wisp.Unavailable";
    failure.message = acquired.error->message;
    co_return tl::unexpected(std::move(failure));
  }
  OfferIdle(acquired.instance);
  co_return tl::expected<void, StartFailure>{};
}

asio::awaitable<Result<InvocationResult>> Scheduler::Invoke(
    std::shared_ptr<const Deployment> deployment, InvokeRequest request) {
  const auto started = clock_.Now();
  Acquired acquired;
  for (;;) {
    acquired = co_await Acquire(deployment, /*force_new=*/false);
    if (!acquired.superseded_by) break;
    // The function moved to a newer version while this call waited: run that one.
    deployment = std::move(acquired.superseded_by);
  }
  const auto scheduled = clock_.Now();
  if (acquired.error) co_return tl::unexpected(std::move(*acquired.error));
  if (acquired.failure) {
    // The function could not initialise: that is this call's outcome.
    InvocationResult result;
    result.status = InvocationStatus::kError;
    result.response_json = std::move(acquired.failure->document_json);
    result.logs = std::move(acquired.failure->logs);
    result.cold_start = true;
    result.version = deployment->version;
    co_return result;
  }
  std::shared_ptr<Instance> instance = std::move(acquired.instance);
  InvocationResult result = co_await instance->Run(std::move(request));
  result.cold_start = acquired.cold_start;
  result.version = instance->version();
  result.schedule_time = scheduled - started;
  result.runtime_time = clock_.Now() - scheduled;
  if (instance->state() == Instance::State::kBusy) OfferIdle(instance);
  co_return result;
}

asio::awaitable<Scheduler::Acquired> Scheduler::Acquire(
    const std::shared_ptr<const Deployment>& deployment, bool force_new) {
  Acquired acquired;
  if (shut_down_) {
    acquired.error = Error{ErrorCode::kUnavailable, "wispd is shutting down"};
    co_return acquired;
  }
  FunctionPool& pool = pools_[deployment->function_id];
  if (!force_new && pool.current && pool.current->version > deployment->version) {
    acquired.superseded_by = pool.current;
    co_return acquired;
  }
  if (!force_new) {
    for (const auto& instance : pool.instances) {
      if (instance->state() == Instance::State::kIdle &&
          instance->version() == deployment->version) {
        instance->set_state(Instance::State::kBusy);
        acquired.instance = instance;
        co_return acquired;
      }
    }
  }

  Waiter waiter(co_await asio::this_coro::executor, deployment->version);
  if (!force_new && pool.waiters.size() >= options_.max_queued_calls_per_function) {
    acquired.error = Error{ErrorCode::kResourceExhausted,
                           fmt::format("function {} has {} calls waiting already; retry later",
                                       deployment->function_name, pool.waiters.size())};
    co_return acquired;
  }
  const size_t live = static_cast<size_t>(
      std::count_if(pool.instances.begin(), pool.instances.end(),
                    [](const auto& i) { return i->state() != Instance::State::kRetiring; }));
  // Start an instance only for calls that no instance already starting will serve: a burst
  // of N calls starts N instances, while calls that queue behind briefly busy instances do not
  // each leave a new instance behind.
  const auto same_version = [&](const auto& i) { return i->version() == deployment->version; };
  const size_t starting = static_cast<size_t>(std::count_if(
      pool.instances.begin(), pool.instances.end(),
      [&](const auto& i) { return same_version(i) && i->state() == Instance::State::kStarting; }));
  const size_t waiting = static_cast<size_t>(
      std::count_if(pool.waiters.begin(), pool.waiters.end(), [&](const Waiter* w) {
        return w->version == deployment->version && w->only_instance_id.empty();
      }));
  const bool start = force_new || (live < deployment->max_instances && starting <= waiting);
  if (start) {
    acquired.cold_start = true;
    std::shared_ptr<Instance> started = TakePrewarmed(deployment);
    // A deploy (force_new) must load the code to know it works, so it may briefly go over
    // the node's caps when nothing idle can be evicted; its instance is idle, and evictable,
    // right after.
    if (!started && (MakeRoomFor(*deployment) || force_new)) {
      StartInstance(deployment);
      started = pools_[deployment->function_id].instances.back();
    }
    if (force_new) waiter.only_instance_id = started->id();
  }
  FunctionPool& waiting_pool = pools_[deployment->function_id];
  waiting_pool.waiters.push_back(&waiter);
  // A cold start waits as long as initialisation may take; a call queued behind busy
  // instances waits the queue time.
  // A start ends by itself (ready, init error, or the instance's init timeout, which counts
  // from the spawn); the margin only guards against a launcher that never answers.
  const auto wait =
      start ? 2 * options_.init_timeout + std::chrono::seconds(30) : options_.queue_wait;
  co_await waiter.ready.Wait(clock_.Now() + wait);
  auto& waiters = pools_[deployment->function_id].waiters;
  waiters.erase(std::remove(waiters.begin(), waiters.end(), &waiter), waiters.end());

  const FunctionPool& after = pools_[deployment->function_id];
  if (waiter.instance) {
    acquired.instance = std::move(waiter.instance);
  } else if (waiter.failure) {
    acquired.failure = std::move(waiter.failure);
  } else if (!force_new && after.current && after.current->version > deployment->version) {
    acquired.superseded_by = after.current;
  } else if (after.min_version == std::numeric_limits<int>::max()) {
    acquired.error = Error{ErrorCode::kNotFound,
                           fmt::format("function {} was deleted", deployment->function_name)};
  } else if (shut_down_) {
    acquired.error = Error{ErrorCode::kUnavailable, "wispd is shutting down"};
  } else {
    acquired.error =
        Error{ErrorCode::kResourceExhausted,
              fmt::format("function {} is at its concurrency limit ({} instances) or the node "
                          "at its capacity; retry later",
                          deployment->function_name, deployment->max_instances)};
  }
  co_return acquired;
}

void Scheduler::StartInstance(const std::shared_ptr<const Deployment>& deployment) {
  auto instance = std::make_shared<Instance>(*this, NewUuid(), deployment, clock_.Now(),
                                             ToEpochMillis(clock_.WallNow()));
  pools_[deployment->function_id].instances.push_back(instance);
  instances_[instance->id()] = instance;

  sandbox::SpawnSpec spec = deployment->spawn;
  spec.instance_id = instance->id();
  spec.env.push_back("AWS_LAMBDA_LOG_STREAM_NAME=" + instance->id());
  if (deployment->prewarmed) {
    // Each generic instance gets an empty code directory of its own, filled at specialisation.
    spec.code_dir += "/" + instance->id();
    std::error_code ec;
    std::filesystem::create_directories(spec.code_dir, ec);
    instance->set_own_code_dir(spec.code_dir);
  }
  auto on_spawned = [this, instance](Result<sandbox::SpawnedInstance> spawned) {
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
      failure.document_json = fmt::format(
          R"({{"errorType":"Wisp.SandboxError","errorMessage":{}}})", JsonString(failure.message));
      instance->set_state(Instance::State::kGone);
      OnInstanceFailedToStart(instance, std::move(failure));
      OnInstanceGone(instance);
      return;
    }
    instance->Attach(std::move(*spawned));
    WatchInitTimeout(instance);
  };
  // As MakeRoom counts: a retiring instance is being killed and gives its fds back within
  // moments (the fd reserve absorbs them meanwhile).
  const auto live = static_cast<size_t>(std::count_if(
      instances_.begin(), instances_.end(),
      [](const auto& entry) { return entry.second->state() != Instance::State::kRetiring; }));
  if (options_.max_instances_by_fds > 0 && live > options_.max_instances_by_fds) {
    Result<sandbox::SpawnedInstance> refused = MakeError(
        ErrorCode::kResourceExhausted,
        fmt::format("wispd has no file descriptors left for another sandbox ({} instances; "
                    "raise its open-files limit, RLIMIT_NOFILE)",
                    live - 1));
    // Later, as a spawn's answer would come: the caller's waiter is not registered yet.
    asio::post(io_, [on_spawned = std::move(on_spawned), refused = std::move(refused)]() mutable {
      on_spawned(std::move(refused));
    });
    return;
  }
  backend_.Spawn(spec, std::move(on_spawned));
}

void Scheduler::WatchInitTimeout(const std::shared_ptr<Instance>& instance) {
  // Bounds the time to the runtime's first GET /next (or, after a specialisation, the next).
  auto timer = std::make_shared<asio::steady_timer>(io_, options_.init_timeout);
  timer->async_wait(
      [instance, timer, start = instance->start_count()](boost::system::error_code ec) {
        if (!ec && instance->start_count() == start) instance->OnInitTimeout();
      });
}

std::shared_ptr<Instance> Scheduler::TakePrewarmed(
    const std::shared_ptr<const Deployment>& deployment) {
  if (!link_code_) return nullptr;
  for (const auto& pool_spec : prewarm_) {
    const sandbox::SpawnSpec& generic = pool_spec.generic->spawn;
    const sandbox::SpawnSpec& wanted = deployment->spawn;
    // Only what was fixed at spawn must match; the environment and code come with the
    // specialisation.
    if (generic.argv != wanted.argv || generic.runtime_dir != wanted.runtime_dir ||
        generic.memory_limit_bytes != wanted.memory_limit_bytes || generic.vcpu != wanted.vcpu ||
        generic.tmp_size_bytes != wanted.tmp_size_bytes ||
        generic.pids_limit != wanted.pids_limit ||
        generic.network_outbound != wanted.network_outbound ||
        generic.outbound_private_networks != wanted.outbound_private_networks) {
      continue;
    }
    auto pool_it = pools_.find(pool_spec.generic->function_id);
    if (pool_it == pools_.end()) continue;
    auto& generic_instances = pool_it->second.instances;
    auto it = std::find_if(generic_instances.begin(), generic_instances.end(),
                           [](const auto& i) { return i->state() == Instance::State::kIdle; });
    if (it == generic_instances.end()) continue;
    std::shared_ptr<Instance> instance = *it;
    if (auto linked = link_code_(*deployment, instance->own_code_dir()); !linked) {
      // Part of the code may be in its directory now: this instance may serve no one.
      spdlog::warn("prewarmed instance {}: cannot link code of {}: {}", instance->id(),
                   deployment->function_name, linked.error().message);
      RetireInstance(instance);
      continue;
    }
    generic_instances.erase(it);
    pools_[deployment->function_id].instances.push_back(instance);
    instance->Specialize(deployment);
    WatchInitTimeout(instance);
    StartInstance(pool_spec.generic);  // refill in the background
    return instance;
  }
  return nullptr;
}

bool Scheduler::MakeRoomFor(const Deployment& deployment) {
  return MakeRoom(1, deployment.spawn.memory_limit_bytes);
}

bool Scheduler::MakeRoom(size_t instances, uint64_t memory_bytes) {
  const auto fits = [&] {
    size_t live = 0;
    uint64_t memory = 0;
    for (const auto& [id, instance] : instances_) {
      if (instance->state() == Instance::State::kRetiring) continue;
      ++live;
      memory += instance->deployment()->spawn.memory_limit_bytes;
    }
    const size_t cap = options_.max_instances_by_fds > 0
                           ? std::min(options_.max_instances_total, options_.max_instances_by_fds)
                           : options_.max_instances_total;
    return live + instances <= cap && (options_.memory_budget_bytes == 0 ||
                                       memory + memory_bytes <= options_.memory_budget_bytes);
  };
  while (!fits()) {
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
  return true;
}

void Scheduler::OfferIdle(const std::shared_ptr<Instance>& instance) {
  if (instance->state() == Instance::State::kGone ||
      instance->state() == Instance::State::kRetiring) {
    return;
  }
  auto& pool = pools_[instance->deployment()->function_id];
  if (instance->version() < pool.min_version) {
    RetireInstance(instance);  // the function moved on to a newer version meanwhile
    return;
  }
  // A Warm() call waits for exactly the instance it started; any other call takes the first
  // free instance of its version.
  Waiter* chosen = nullptr;
  for (Waiter* waiter : pool.waiters) {
    if (waiter->instance || waiter->failure || waiter->version != instance->version()) continue;
    if (waiter->only_instance_id == instance->id()) {
      chosen = waiter;
      break;
    }
    if (!chosen && waiter->only_instance_id.empty()) chosen = waiter;
  }
  if (chosen) {
    instance->set_state(Instance::State::kBusy);
    chosen->instance = instance;
    chosen->ready.Set();
    return;
  }
  instance->set_state(Instance::State::kIdle);
  instance->set_idle_since(clock_.Now());
}

void Scheduler::OnInstanceFailedToStart(const std::shared_ptr<Instance>& instance,
                                        StartFailure failure) {
  // The failure is the outcome of the call that started this instance: the oldest waiter of
  // its version (or the Warm() call that waits for exactly it).
  auto& pool = pools_[instance->deployment()->function_id];
  Waiter* chosen = nullptr;
  for (Waiter* waiter : pool.waiters) {
    if (waiter->instance || waiter->failure || waiter->version != instance->version()) continue;
    if (!waiter->only_instance_id.empty()) {
      if (waiter->only_instance_id == instance->id()) {
        chosen = waiter;
        break;
      }
      continue;
    }
    if (!chosen) chosen = waiter;
  }
  if (!chosen) return;
  chosen->failure = std::move(failure);
  chosen->ready.Set();
}

void Scheduler::OnInstanceGone(const std::shared_ptr<Instance>& instance) {
  instances_.erase(instance->id());
  instances_ended_ = true;
  if (!instance->own_code_dir().empty()) {
    std::error_code ec;
    std::filesystem::remove_all(instance->own_code_dir(), ec);
  }
  auto it = pools_.find(instance->deployment()->function_id);
  if (it == pools_.end()) return;
  auto& list = it->second.instances;
  list.erase(std::remove(list.begin(), list.end(), instance), list.end());
  if (list.empty() && it->second.waiters.empty() && !it->second.current) pools_.erase(it);
}

void Scheduler::OnBackendExit(const sandbox::ExitStatus& status) {
  auto it = instances_.find(status.instance_id);
  if (it == instances_.end()) return;
  std::shared_ptr<Instance> instance = it->second;
  spdlog::debug("instance {} of {} ended: code {} signal {} oom {}", instance->id(),
                instance->deployment()->function_name, status.exit_code, status.signal,
                status.oom_killed);
  instance->OnExit(status);
}

void Scheduler::RetireInstance(const std::shared_ptr<Instance>& instance) {
  if (instance->state() == Instance::State::kGone ||
      instance->state() == Instance::State::kRetiring) {
    return;
  }
  instance->set_state(Instance::State::kRetiring);
  backend_.Kill(instance->id());
}

void Scheduler::Publish(std::shared_ptr<const Deployment> deployment) {
  const std::string function_id = deployment->function_id;
  const int version = deployment->version;
  pools_[function_id].current = std::move(deployment);
  Retire(function_id, version);
  Maintain();
}

void Scheduler::RetireFunction(const std::string& function_id) {
  Retire(function_id, std::numeric_limits<int>::max());
  auto it = pools_.find(function_id);
  if (it != pools_.end()) it->second.current.reset();
}

void Scheduler::Retire(const std::string& function_id, int min_version) {
  auto it = pools_.find(function_id);
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

void Scheduler::ConfigurePrewarm(std::vector<PrewarmPool> pools, CodeLinker linker) {
  prewarm_ = std::move(pools);
  link_code_ = std::move(linker);
  Maintain();
}

std::vector<InstanceInfo> Scheduler::Instances(const std::string& function_id) const {
  std::vector<InstanceInfo> out;
  auto it = pools_.find(function_id);
  if (it == pools_.end()) return out;
  for (const auto& instance : it->second.instances) {
    InstanceInfo info;
    info.id = instance->id();
    info.version = instance->version();
    info.pid = instance->pid();
    info.state = std::string(StateName(instance->state()));
    info.started_at_ms = instance->started_at_ms();
    info.invocations = instance->invocations();
    out.push_back(std::move(info));
  }
  return out;
}

std::map<std::string, size_t> Scheduler::PrewarmedIdle() const {
  std::map<std::string, size_t> out;
  for (const auto& pool : prewarm_) {
    const std::string& key = pool.generic->function_id;
    size_t& idle = out[key];
    auto it = pools_.find(key);
    if (it == pools_.end()) continue;
    for (const auto& instance : it->second.instances) {
      if (instance->state() == Instance::State::kIdle) ++idle;
    }
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
  for (const auto& instance : expired) RetireInstance(instance);
  // Deploys may go over the node's caps for a moment; come back under them.
  MakeRoom(0, 0);
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

  // Top up min_instances of every serving version and every prewarm pool. A runtime that dies
  // at start is retried at this pace, not in a hot loop.
  const auto live_of = [this](const std::string& function_id, int version) {
    auto it = pools_.find(function_id);
    if (it == pools_.end()) return size_t{0};
    return static_cast<size_t>(
        std::count_if(it->second.instances.begin(), it->second.instances.end(), [&](const auto& i) {
          return i->version() == version && i->state() != Instance::State::kRetiring &&
                 i->state() != Instance::State::kGone;
        }));
  };
  std::vector<std::pair<std::shared_ptr<const Deployment>, size_t>> wanted;
  for (const auto& [function_id, pool] : pools_) {
    if (pool.current && pool.current->min_instances > 0) {
      wanted.emplace_back(pool.current, pool.current->min_instances);
    }
  }
  for (const auto& pool : prewarm_) wanted.emplace_back(pool.generic, pool.size);
  for (const auto& [deployment, size] : wanted) {
    for (size_t live = live_of(deployment->function_id, deployment->version); live < size; ++live) {
      if (!MakeRoomFor(*deployment)) return;
      StartInstance(deployment);
    }
  }
}

void Scheduler::Shutdown() {
  shut_down_ = true;
  maintenance_.cancel();
  for (auto& [function_id, pool] : pools_) {
    for (Waiter* waiter : pool.waiters) waiter->ready.Set();
  }
  backend_.KillAll();
}

}  // namespace wisp::scheduler
