#include "wisp/scheduler/scheduler.h"

#include <algorithm>
#include <limits>

#include <spdlog/spdlog.h>

#include "wisp/common/ids.h"
#include "wisp/common/json_text.h"
#include "wisp/scheduler/instance.h"

namespace wisp::scheduler {
namespace {

// How often idle instances are checked against their keep-alive.
constexpr auto kReaperPeriod = std::chrono::seconds(5);

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
    : io_(io), backend_(backend), clock_(clock), options_(options), reaper_(io) {
  backend_.SetExitCallback([this](const sandbox::ExitStatus& status) { OnBackendExit(status); });
  ScheduleReaper();
}

Scheduler::~Scheduler() { reaper_.cancel(); }

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
  Acquired acquired = co_await Acquire(deployment, /*force_new=*/false);
  if (acquired.error) co_return tl::unexpected(std::move(*acquired.error));
  if (acquired.failure) {
    // The function could not initialise: that is this call's outcome.
    InvocationResult result;
    result.status = InvocationStatus::kError;
    result.response_json = std::move(acquired.failure->document_json);
    result.logs = std::move(acquired.failure->logs);
    result.cold_start = true;
    co_return result;
  }
  std::shared_ptr<Instance> instance = std::move(acquired.instance);
  InvocationResult result = co_await instance->Run(std::move(request));
  result.cold_start = acquired.cold_start;
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
  const size_t live = static_cast<size_t>(
      std::count_if(pool.instances.begin(), pool.instances.end(),
                    [](const auto& i) { return i->state() != Instance::State::kRetiring; }));
  const bool start = force_new || live < deployment->max_instances;
  if (start) {
    StartInstance(deployment);
    acquired.cold_start = true;
    if (force_new) waiter.only_instance_id = pool.instances.back()->id();
  }
  pool.waiters.push_back(&waiter);
  // A cold start waits as long as initialisation may take; a call queued behind busy
  // instances waits the queue time.
  const auto wait = start ? options_.init_timeout + std::chrono::seconds(1) : options_.queue_wait;
  co_await waiter.ready.Wait(clock_.Now() + wait);
  auto& waiters = pools_[deployment->function_id].waiters;
  waiters.erase(std::remove(waiters.begin(), waiters.end(), &waiter), waiters.end());

  if (waiter.instance) {
    acquired.instance = std::move(waiter.instance);
  } else if (waiter.failure) {
    acquired.failure = std::move(waiter.failure);
  } else if (shut_down_) {
    acquired.error = Error{ErrorCode::kUnavailable, "wispd is shutting down"};
  } else {
    acquired.error =
        Error{ErrorCode::kResourceExhausted,
              fmt::format("function {} is at its concurrency limit ({} instances); retry later",
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
  backend_.Spawn(spec, [this, instance](Result<sandbox::SpawnedInstance> spawned) {
    if (instance->state() == Instance::State::kGone) return;
    if (!spawned) {
      spdlog::warn("instance {} of {}: sandbox did not start: {}", instance->id(),
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
    // Bound the time to the runtime's first GET /next.
    auto timer = std::make_shared<asio::steady_timer>(io_, options_.init_timeout);
    timer->async_wait([instance, timer](boost::system::error_code ec) {
      if (!ec) instance->OnInitTimeout();
    });
  });
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
  auto it = pools_.find(instance->deployment()->function_id);
  if (it == pools_.end()) return;
  auto& list = it->second.instances;
  list.erase(std::remove(list.begin(), list.end(), instance), list.end());
  if (list.empty() && it->second.waiters.empty()) pools_.erase(it);
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

void Scheduler::Retire(const std::string& function_id, std::optional<int> keep_version) {
  auto it = pools_.find(function_id);
  if (it == pools_.end()) return;
  it->second.min_version = keep_version ? *keep_version : std::numeric_limits<int>::max();
  const auto instances = it->second.instances;  // retiring may erase from the pool
  for (const auto& instance : instances) {
    if (keep_version && instance->version() >= *keep_version) continue;
    // A busy instance of an old version finishes its call first: OfferIdle() retires it then.
    // Deleting the function (no version to keep) ends its calls now.
    if (instance->state() == Instance::State::kBusy && keep_version) continue;
    RetireInstance(instance);
  }
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

void Scheduler::ScheduleReaper() {
  reaper_.expires_after(kReaperPeriod);
  reaper_.async_wait([this](boost::system::error_code ec) {
    if (ec || shut_down_) return;
    const auto now = clock_.Now();
    std::vector<std::shared_ptr<Instance>> expired;
    for (const auto& [id, instance] : instances_) {
      if (instance->state() == Instance::State::kIdle &&
          now - instance->idle_since() >= options_.idle_keepalive) {
        expired.push_back(instance);
      }
    }
    for (const auto& instance : expired) RetireInstance(instance);
    ScheduleReaper();
  });
}

void Scheduler::Shutdown() {
  shut_down_ = true;
  reaper_.cancel();
  for (auto& [function_id, pool] : pools_) {
    for (Waiter* waiter : pool.waiters) waiter->ready.Set();
  }
  backend_.KillAll();
}

}  // namespace wisp::scheduler
