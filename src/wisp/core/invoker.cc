#include "wisp/core/invoker.h"

#include "wisp/common/ids.h"
#include "wisp/core/alias_routing.h"

namespace wisp::core {

namespace {

metrics::Outcome OutcomeOf(scheduler::InvocationStatus status) {
  switch (status) {
    case scheduler::InvocationStatus::kSuccess:
      return metrics::Outcome::kSuccess;
    case scheduler::InvocationStatus::kError:
      return metrics::Outcome::kError;
    case scheduler::InvocationStatus::kTimeout:
      return metrics::Outcome::kTimeout;
  }
  return metrics::Outcome::kError;
}

}  // namespace

Invoker::Invoker(FunctionService& functions, scheduler::Scheduler& scheduler,
                 store::InvocationWriter& writer, metrics::Registry& metrics, const Clock& clock)
    : functions_(functions),
      scheduler_(scheduler),
      writer_(writer),
      metrics_(metrics),
      clock_(clock) {}

asio::awaitable<Result<InvokeOutcome>> Invoker::Invoke(std::string function_id,
                                                       std::string event_json,
                                                       InvokeOptions options) {
  WISP_DCHECK_ON_THREAD(io_thread_);
  Function* function = functions_.Find(function_id);
  if (!function) {
    metrics_.RecordRejectedBeforeRun();
    co_return MakeError(ErrorCode::kNotFound, fmt::format("function {} not found", function_id));
  }
  if (!function->record.active) {
    metrics_.RecordRejectedBeforeRun();
    co_return MakeError(ErrorCode::kFailedPrecondition,
                        fmt::format("function {} is disabled (is_active is false): it runs "
                                    "nothing until it is enabled again",
                                    function->record.name));
  }
  if (!function->deployment && function->first_deploy) {
    // The first version is still loading (milliseconds): wait for it rather than refuse.
    auto deployed = function->first_deploy;
    co_await deployed->Wait();
    function = functions_.Find(function_id);
    if (!function) {
      metrics_.RecordRejectedBeforeRun();
      co_return MakeError(ErrorCode::kNotFound, fmt::format("function {} not found", function_id));
    }
  }
  const bool latest = options.qualifier.empty() || options.qualifier == "$LATEST";
  if (!function->deployment && latest) {
    metrics_.RecordRejectedBeforeRun();
    co_return MakeError(
        ErrorCode::kFailedPrecondition,
        fmt::format("function {} is not ready (state {}): {}", function->record.name,
                    function->record.state, function->record.error));
  }
  if (options.version && latest && *options.version != function->deployment->version) {
    // Only the serving version has instances and a complete record; older versions are not
    // kept loadable (their code directory is, their configuration is not).
    const int serving = function->deployment->version;
    const int asked = *options.version;
    if (asked < 1 || asked > function->latest_version) {
      co_return MakeError(ErrorCode::kNotFound,
                          fmt::format("function {} has no version {} (its newest is {})",
                                      function->record.name, asked, function->latest_version));
    }
    co_return MakeError(
        ErrorCode::kFailedPrecondition,
        fmt::format("version {} of function {} does not serve calls: {}; version {} does", asked,
                    function->record.name,
                    asked < serving ? "a newer version replaced it"
                                    : "it is still deploying or failed to load",
                    serving));
  }

  // A draw only for an alias's weighted choice: $LATEST, the common case, needs none.
  auto target = functions_.Resolve(*function, options.qualifier, latest ? 0.0 : UniformRandom());
  if (!target) {
    metrics_.RecordRejectedBeforeRun();
    co_return tl::unexpected(target.error());
  }
  // Held for the whole call: a delete meanwhile drops the series from the registry, not from
  // under this call.
  const std::shared_ptr<metrics::FunctionMetrics> counted = function->metrics;
  counted->CallStarted();
  const int64_t invoked_at_ms = ToEpochMillis(clock_.WallNow());
  auto deployment = target->deployment;
  const int timeout_seconds = target->config->timeout_seconds;
  functions_.MarkInvoked(*function);

  scheduler::InvokeRequest request;
  request.request_id = options.request_id.empty() ? NewUuid() : std::move(options.request_id);
  request.timeout = options.timeout.value_or(std::chrono::seconds(timeout_seconds));
  request.trace_id = std::move(options.trace_id);
  request.client_context = std::move(options.client_context);
  request.on_stream_chunk = options.on_stream_chunk;  // copied: see NOTES (g++ 12, -O3)
  auto event = std::make_shared<std::string>(std::move(event_json));
  request.event_json = event;
  std::string request_id = request.request_id;

  auto result = co_await scheduler_.Invoke(deployment, std::move(request));
  counted->CallEnded();
  if (!result) {
    if (result.error().code == ErrorCode::kResourceExhausted) {
      counted->RecordThrottle(invoked_at_ms);
    } else {
      metrics_.RecordRejectedBeforeRun();
    }
    co_return tl::unexpected(result.error());
  }

  InvokeOutcome outcome;
  outcome.request_id = request_id;
  outcome.version = result->version;
  outcome.executed_version = deployment->executed_version;
  const auto millis = [](std::chrono::nanoseconds d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  };
  outcome.duration_ms = millis(result->runtime_time);
  outcome.queue_wait_ms = millis(result->schedule_time);
  if (result->init_time) outcome.init_duration_ms = millis(*result->init_time);
  outcome.result = std::move(*result);
  // Scheduling is the wait for an instance plus, on a cold start, that instance's own start
  // (Lambda's Init Duration).
  const auto init_time = outcome.result.init_time.value_or(std::chrono::nanoseconds(0));
  if (outcome.result.cold_start) counted->RecordColdStart(init_time);
  counted->RecordQueueWait(outcome.result.schedule_time - init_time);
  counted->RecordInvocation(OutcomeOf(outcome.result.status), outcome.result.runtime_time,
                            invoked_at_ms);

  store::InvocationRecord record;
  // The record takes the event back from the runtime's side once nothing there holds it (a
  // call that timed out may still be writing it to the runtime): a copy only then.
  record.event_json = event.use_count() == 1 ? std::move(*event) : *event;
  record.id = request_id;
  record.async = options.async;
  record.function_id = deployment->function_id;
  record.request_id = std::move(request_id);
  record.version = outcome.version;
  record.executed_version = outcome.executed_version;
  record.status = std::string(scheduler::InvocationStatusName(outcome.result.status));
  record.duration_ms = outcome.duration_ms;
  record.queue_wait_ms = outcome.queue_wait_ms;
  record.init_duration_ms = outcome.init_duration_ms;
  record.memory_used_mb = outcome.result.memory_used_mb;
  record.response_json = outcome.result.response_json;
  record.logs = outcome.result.logs;
  record.invoked_at_ms = invoked_at_ms;
  if (log_feed_ && log_feed_->Follows(record.function_id)) log_feed_->Publish(record);
  writer_.Add(std::move(record));
  co_return outcome;
}

}  // namespace wisp::core
