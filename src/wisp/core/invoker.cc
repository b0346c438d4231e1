#include "wisp/core/invoker.h"

#include "wisp/common/ids.h"

namespace wisp::core {

Invoker::Invoker(FunctionService& functions, scheduler::Scheduler& scheduler,
                 store::InvocationWriter& writer, const Clock& clock)
    : functions_(functions), scheduler_(scheduler), writer_(writer), clock_(clock) {}

asio::awaitable<Result<InvokeOutcome>> Invoker::Invoke(std::string function_id,
                                                       std::string event_json,
                                                       InvokeOptions options) {
  Function* function = functions_.Find(function_id);
  if (!function) {
    co_return MakeError(ErrorCode::kNotFound, fmt::format("function {} not found", function_id));
  }
  if (!function->deployment && function->first_deploy) {
    // The first version is still loading (milliseconds): wait for it rather than refuse.
    auto deployed = function->first_deploy;
    co_await deployed->Wait();
    function = functions_.Find(function_id);
    if (!function) {
      co_return MakeError(ErrorCode::kNotFound, fmt::format("function {} not found", function_id));
    }
  }
  if (!function->deployment) {
    ++counters_.rejected;
    co_return MakeError(
        ErrorCode::kFailedPrecondition,
        fmt::format("function {} is not ready (state {}): {}", function->record.name,
                    function->record.state, function->record.error));
  }

  ++counters_.in_flight;
  const auto started = clock_.Now();
  const int64_t invoked_at_ms = ToEpochMillis(clock_.WallNow());
  auto deployment = function->deployment;
  functions_.MarkInvoked(*function);

  scheduler::InvokeRequest request;
  request.request_id = options.request_id.empty() ? NewUuid() : std::move(options.request_id);
  request.timeout =
      options.timeout.value_or(std::chrono::seconds(function->record.timeout_seconds));
  request.trace_id = std::move(options.trace_id);
  auto event = std::make_shared<std::string>(std::move(event_json));
  request.event_json = event;
  const std::string request_id = request.request_id;

  auto result = co_await scheduler_.Invoke(deployment, std::move(request));
  --counters_.in_flight;
  if (!result) {
    ++counters_.rejected;
    co_return tl::unexpected(result.error());
  }

  InvokeOutcome outcome;
  outcome.request_id = request_id;
  outcome.version = result->version;
  outcome.duration_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_.Now() - started).count();
  outcome.result = std::move(*result);
  ++counters_.total;
  switch (outcome.result.status) {
    case scheduler::InvocationStatus::kSuccess:
      ++counters_.success;
      break;
    case scheduler::InvocationStatus::kError:
      ++counters_.error;
      break;
    case scheduler::InvocationStatus::kTimeout:
      ++counters_.timeout;
      break;
  }

  store::InvocationRecord record;
  // The record takes the event back from the runtime's side once nothing there holds it (a
  // call that timed out may still be writing it to the runtime): a copy only then.
  record.event_json = event.use_count() == 1 ? std::move(*event) : *event;
  record.id = request_id;
  record.async = options.async;
  record.function_id = deployment->function_id;
  record.request_id = request_id;
  record.version = outcome.version;
  record.status = std::string(scheduler::InvocationStatusName(outcome.result.status));
  record.duration_ms = outcome.duration_ms;
  record.memory_used_mb = outcome.result.memory_used_mb;
  record.response_json = outcome.result.response_json;
  record.logs = outcome.result.logs;
  record.invoked_at_ms = invoked_at_ms;
  writer_.Add(std::move(record));
  co_return outcome;
}

}  // namespace wisp::core
