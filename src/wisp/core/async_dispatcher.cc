#include "wisp/core/async_dispatcher.h"

#include <unistd.h>

#include <algorithm>
#include <memory>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "wisp/common/error_document.h"
#include "wisp/common/ids.h"

namespace wisp::core {
namespace {

// Enqueues and resumes the caller on its own executor once the queue says the invocation is
// on disk (the queue calls back on its writer thread).
asio::awaitable<Result<void>> EnqueueDurably(queue::Queue& queue, queue::Invocation invocation) {
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(Result<void>)>(
      [&queue](auto handler, queue::Invocation invocation) {
        auto home = asio::get_associated_executor(handler);
        // The queue's callback is a std::function, which must be copyable; the handler is not.
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        queue.Enqueue(std::move(invocation), [shared, home](Result<void> result) {
          asio::post(home, [shared, result = std::move(result)]() mutable {
            std::move (*shared)(std::move(result));
          });
        });
      },
      asio::use_awaitable, std::move(invocation));
}

// "errorType: errorMessage" from a Runtime API error document, for the record's `error`.
std::string ErrorSummary(const scheduler::InvocationResult& result) {
  const auto doc = nlohmann::json::parse(result.response_json, nullptr, false);
  std::string type, message;
  if (doc.is_object()) {
    if (doc.contains("errorType") && doc["errorType"].is_string())
      type = doc["errorType"].get<std::string>();
    if (doc.contains("errorMessage") && doc["errorMessage"].is_string()) {
      message = doc["errorMessage"].get<std::string>();
    }
  }
  if (type.empty() && message.empty()) {
    return result.status == scheduler::InvocationStatus::kTimeout ? "the attempt timed out"
                                                                  : "the function failed";
  }
  if (type.empty()) return message;
  if (message.empty()) return type;
  return type + ": " + message;
}

// The call's headers (the program API's `headers`) as the Lambda client context the function
// sees: {"custom": headers}, as AWS puts an app's own keys under "custom". Empty without any.
// Re-encoded as ASCII JSON: it travels in one header line of the Runtime API.
std::string ClientContext(const std::string& headers_json) {
  const auto headers = nlohmann::json::parse(headers_json, nullptr, false);
  if (!headers.is_object() || headers.empty()) return {};
  return nlohmann::json{{"custom", headers}}.dump(-1, ' ', /*ensure_ascii=*/true);
}

// Why a claimed invocation must not run: too old, or its attempts used up by interruptions.
std::optional<std::string> RefusedReason(const queue::Invocation& claimed,
                                         const queue::RetryPolicy& policy, int64_t now_ms) {
  if (auto expired = queue::ExpiredReason(claimed, policy, now_ms)) return expired;
  return queue::ExhaustedReason(claimed, policy);
}

std::string DefaultLeaseOwner() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return fmt::format("wispd {}@{}", getpid(), host);
}

// Logs a lease call the queue refused: the attempt's outcome is lost only for this worker (the
// queue took the invocation back and runs it again).
template <typename T>
void LogRefused(const Result<T>& result, const char* what, const std::string& id) {
  if (!result) spdlog::warn("invocation {}: {} refused: {}", id, what, result.error().message);
}

}  // namespace

queue::RetryPolicy RetryPolicyOf(const store::FunctionRecord& record) {
  return queue::RetryPolicy{record.max_retries, int64_t{record.retry_delay_seconds} * 1000,
                            int64_t{record.max_event_age_seconds} * 1000};
}

AsyncDispatcher::AsyncDispatcher(asio::io_context& io, asio::thread_pool& workers,
                                 queue::Queue& queue, FunctionService& functions, Invoker& invoker,
                                 const Clock& clock, TaskTracker& tasks, AsyncOptions options)
    : io_(io),
      workers_(workers),
      queue_(queue),
      functions_(functions),
      invoker_(invoker),
      clock_(clock),
      tasks_(tasks),
      options_(options),
      owner_(options_.lease_owner.empty() ? DefaultLeaseOwner() : options_.lease_owner),
      wake_(io),
      renew_wake_(io) {}

void AsyncDispatcher::Start() {
  if (started_) return;
  started_ = true;
  asio::co_spawn(io_, Loop(), asio::detached);
  asio::co_spawn(io_, RenewLeases(), asio::detached);
}

void AsyncDispatcher::Stop() {
  stopping_ = true;
  Kick();
}

void AsyncDispatcher::Kick() {
  kicked_ = true;
  wake_.cancel();
}

asio::awaitable<Result<queue::Invocation>> AsyncDispatcher::Submit(SubmitRequest request) {
  Function* function = functions_.Find(request.function_id);
  if (!function) {
    co_return MakeError(ErrorCode::kNotFound,
                        fmt::format("function {} not found", request.function_id));
  }
  if (!function->record.active) {
    // Refused now rather than queued: a disabled function runs nothing, and the caller learns
    // it while it can still act on it. (An invocation queued before the disable fails its
    // attempts the same way, in Invoker.)
    co_return MakeError(ErrorCode::kFailedPrecondition,
                        fmt::format("function {} is disabled (is_active is false): it runs "
                                    "nothing until it is enabled again",
                                    function->record.name));
  }
  if (!request.qualifier.empty()) {
    // Checked now, as Lambda does: an unknown version or alias is the caller's error, not a
    // dead letter later. (Each attempt resolves it again: an alias may move meanwhile.)
    if (auto target = functions_.Resolve(*function, request.qualifier, 0); !target) {
      co_return tl::unexpected(target.error());
    }
  }
  if (queue_.stats().queued >= options_.max_queued) {
    co_return MakeError(
        ErrorCode::kResourceExhausted,
        fmt::format("the async queue is full ({} invocations); retry later", options_.max_queued));
  }
  queue::Invocation invocation;
  invocation.id = NewUuid();
  invocation.function_id = std::move(request.function_id);
  invocation.event_json = std::move(request.event_json);
  invocation.headers_json = std::move(request.headers_json);
  invocation.trace_id = std::move(request.trace_id);
  invocation.qualifier = std::move(request.qualifier);
  invocation.timeout_ms = request.timeout_ms;
  invocation.created_at_ms = invocation.enqueued_at_ms = invocation.next_attempt_at_ms = NowMs();
  queue::Invocation accepted = invocation;
  accepted.event_json.clear();  // the caller has the event; no second copy of a large one
  auto stored = co_await EnqueueDurably(queue_, std::move(invocation));
  if (!stored) co_return tl::unexpected(stored.error());
  Kick();
  co_return accepted;
}

asio::awaitable<Result<queue::Invocation>> AsyncDispatcher::Requeue(std::string id) {
  auto requeue = [this, id, now = NowMs()] { return queue_.Requeue(id, now); };
  auto requeued = co_await Offload(workers_, std::move(requeue));
  if (requeued) Kick();
  co_return requeued;
}

asio::awaitable<void> AsyncDispatcher::Loop() {
  while (!stopping_) {
    kicked_ = false;
    // The node-wide budget is shared out as functions are asked, so one round cannot start
    // more than max_in_flight attempts in all.
    uint32_t budget = options_.max_in_flight > in_flight_ ? options_.max_in_flight - in_flight_ : 0;
    auto capacity = [this, &budget](const std::string& function_id) -> size_t {
      if (stopping_ || budget == 0) return 0;
      const Function* function = functions_.Find(function_id);
      // A deleted function's invocations are claimed to be dead-lettered.
      uint32_t room = budget;
      if (function) {
        const uint32_t limit = functions_.ConcurrencyLimit(*function);
        auto it = in_flight_by_function_.find(function_id);
        const uint32_t used = it == in_flight_by_function_.end() ? 0 : it->second;
        room = std::min(budget, limit > used ? limit - used : 0);
      }
      budget -= room;
      return room;
    };
    queue::ClaimRequest request;
    request.owner = owner_;
    request.now_ms = NowMs();
    request.lease_ms = options_.lease.count();
    request.capacity = capacity;
    auto claimed = co_await queue_.Claim(std::move(request));
    std::optional<int64_t> next;
    if (claimed) {
      for (auto& invocation : *claimed) {
        ++in_flight_;
        ++in_flight_by_function_[invocation.function_id];
        const auto key = std::make_pair(invocation.id, invocation.lease.token);
        leases_.emplace(key, invocation.lease);
        attempts_.emplace(key, tasks_.Start());
        asio::co_spawn(io_, Execute(std::move(invocation)), asio::detached);
      }
      if (kicked_ || stopping_) continue;
      budget = options_.max_in_flight > in_flight_ ? options_.max_in_flight - in_flight_ : 0;
      next = queue_.NextDue(capacity);
    } else {
      // A networked queue out of reach: try again later; what it holds waits there.
      spdlog::warn("async queue: claim failed: {}", claimed.error().message);
      next = NowMs() + options_.throttle_retry.count();
    }
    if (next) {
      wake_.expires_after(std::chrono::milliseconds(std::max<int64_t>(*next - NowMs(), 0)));
    } else {
      wake_.expires_after(std::chrono::hours(1));  // until kicked
    }
    boost::system::error_code ec;
    co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<void> AsyncDispatcher::RenewLeases() {
  const auto every = std::max(options_.lease / 3, std::chrono::milliseconds(1));
  while (!stopping_ || !leases_.empty()) {
    renew_wake_.expires_after(every);
    boost::system::error_code ec;
    co_await renew_wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    // A copy: attempts end, and leases are added, while a renewal is awaited.
    std::vector<queue::Lease> held;
    held.reserve(leases_.size());
    for (const auto& entry : leases_) held.push_back(entry.second);
    for (const queue::Lease& lease : held) {
      const auto key = std::make_pair(lease.invocation_id, lease.token);
      if (!leases_.count(key)) continue;  // its attempt ended meanwhile
      auto renewed = co_await queue_.Renew(lease, NowMs(), options_.lease.count());
      // A refusal after the attempt ended (while the renewal was awaited) says nothing.
      if (renewed || !leases_.count(key)) continue;
      const ErrorCode code = renewed.error().code;
      if (code == ErrorCode::kFailedPrecondition || code == ErrorCode::kNotFound) {
        // Lost for good: the attempt runs on, but its result will be refused.
        leases_.erase(key);
      }
      LogRefused(renewed, "lease renewal", lease.invocation_id);
    }
  }
}

asio::awaitable<void> AsyncDispatcher::Execute(queue::Invocation invocation) {
  const std::string id = invocation.id;
  const std::string function_id = invocation.function_id;
  const queue::Lease lease = invocation.lease;  // a copy: see the trace id below
  const Function* function = functions_.Find(function_id);
  const int64_t claimed_at = NowMs();
  if (!function) {
    // The reason is named first: g++ 12 mishandles temporaries made inside co_await (NOTES.md).
    std::string reason = "the function was deleted";
    auto done = co_await queue_.DeadLetter(lease, std::move(reason), claimed_at);
    LogRefused(done, "dead letter", id);
  } else if (auto refused =
                 RefusedReason(invocation, RetryPolicyOf(function->record), claimed_at)) {
    // Not an attempt: the dead letter does not count it.
    auto done = co_await queue_.DeadLetter(lease, std::move(*refused), claimed_at);
    LogRefused(done, "dead letter", id);
  } else {
    const queue::RetryPolicy policy = RetryPolicyOf(function->record);
    InvokeOptions options;
    options.request_id = id;
    options.async = true;
    // A copy: moving it out of the coroutine's parameter crashed wispd when built with -O3
    // by g++ 12 (not at -O0), one more of its coroutine bugs (see NOTES.md).
    options.trace_id = invocation.trace_id;
    options.qualifier = invocation.qualifier;
    options.client_context = ClientContext(invocation.headers_json);
    if (invocation.timeout_ms > 0)
      options.timeout = std::chrono::milliseconds(invocation.timeout_ms);
    auto outcome =
        co_await invoker_.Invoke(function_id, std::move(invocation.event_json), std::move(options));
    const int64_t now = NowMs();
    if (outcome) {
      const auto& result = outcome->result;
      queue::AttemptResult attempt;
      attempt.status = std::string(scheduler::InvocationStatusName(result.status));
      attempt.response_json = result.response_json;
      attempt.logs = result.logs;
      attempt.version = outcome->version;
      attempt.duration_ms = outcome->duration_ms;
      if (result.status != scheduler::InvocationStatus::kSuccess) {
        attempt.error = ErrorSummary(result);
      }
      auto finished = co_await queue_.Finish(lease, std::move(attempt), policy, now);
      LogRefused(finished, "the attempt's result", id);
      if (finished && finished->status == queue::kDeadLetter) {
        spdlog::info("invocation {} of {} dead-lettered: {}", id, function_id,
                     finished->dead_letter_reason);
      }
    } else {
      const Error& error = outcome.error();
      switch (error.code) {
        case ErrorCode::kNotFound: {
          std::string reason = "the function was deleted";
          auto done = co_await queue_.DeadLetter(lease, std::move(reason), now);
          LogRefused(done, "dead letter", id);
          break;
        }
        case ErrorCode::kResourceExhausted:
        case ErrorCode::kUnavailable: {
          // No instance took it (the function is busy with sync calls, or wispd is stopping):
          // not an attempt. It waits in the queue, up to its maximum age.
          const int64_t due = stopping_ ? now : now + options_.throttle_retry.count();
          auto done = co_await queue_.Release(lease, due);
          LogRefused(done, "release", id);
          break;
        }
        default: {
          // The function cannot run (it failed to deploy): a failed attempt, retried as any.
          queue::AttemptResult attempt;
          attempt.status = queue::kError;
          attempt.error = error.message;
          attempt.response_json = LambdaErrorDocument("Wisp.FunctionNotReady", error.message);
          auto finished = co_await queue_.Finish(lease, std::move(attempt), policy, now);
          LogRefused(finished, "the attempt's result", id);
        }
      }
    }
  }
  leases_.erase(std::make_pair(id, lease.token));
  attempts_.erase(std::make_pair(id, lease.token));
  --in_flight_;
  if (--in_flight_by_function_[function_id] == 0) in_flight_by_function_.erase(function_id);
  Kick();
}

}  // namespace wisp::core
