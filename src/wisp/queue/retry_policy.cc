// The retry state machine of Queue (queue.h): pure functions of the record, the attempt's
// result, the function's policy and the time, so tests drive it with numbers, not sleeps.
#include <algorithm>

#include <fmt/format.h>

#include "wisp/queue/queue.h"

namespace wisp::queue {
namespace {

// The delay doubles per retry; past 2^20 times the base it is longer than any event may live.
constexpr int kMaxDoublings = 20;

void ToDeadLetter(Invocation& invocation, std::string reason) {
  invocation.status = kDeadLetter;
  invocation.dead_letter_reason = std::move(reason);
  invocation.next_attempt_at_ms = 0;
}

}  // namespace

void ApplyAttempt(Invocation& invocation, const AttemptResult& result, const RetryPolicy& policy,
                  int64_t now_ms) {
  const int64_t started = invocation.started_at_ms.value_or(now_ms);
  invocation.history.push_back(
      Attempt{invocation.attempts, result.status, started, now_ms, result.error});
  invocation.response_json = result.response_json;
  invocation.logs = result.logs;
  invocation.version = result.version;
  invocation.duration_ms = result.duration_ms;
  invocation.finished_at_ms = now_ms;
  if (result.status == kSuccess) {
    invocation.status = kSuccess;
    invocation.error.clear();
    invocation.next_attempt_at_ms = 0;
    return;
  }
  invocation.error = result.error.empty() ? result.status : result.error;
  if (invocation.attempts > policy.max_retries) {
    ToDeadLetter(invocation,
                 fmt::format("{} attempts failed (max_retries {}); the last one: {}",
                             invocation.attempts, policy.max_retries, invocation.error));
    return;
  }
  const int doublings = std::clamp(invocation.attempts - 1, 0, kMaxDoublings);
  const int64_t next = now_ms + (policy.retry_delay_ms << doublings);
  if (next - invocation.enqueued_at_ms > policy.max_event_age_ms) {
    ToDeadLetter(
        invocation,
        fmt::format("the retry after attempt {} would start past the maximum event age "
                    "({} s); the last attempt: {}",
                    invocation.attempts, policy.max_event_age_ms / 1000, invocation.error));
    return;
  }
  invocation.status = kQueued;
  invocation.next_attempt_at_ms = next;
}

std::optional<std::string> ExpiredReason(const Invocation& invocation, const RetryPolicy& policy,
                                         int64_t now_ms) {
  if (now_ms - invocation.enqueued_at_ms <= policy.max_event_age_ms) return std::nullopt;
  return fmt::format(
      "the event passed its maximum age ({} s) before it could run ({} attempts started){}",
      policy.max_event_age_ms / 1000, invocation.attempts,
      invocation.error.empty() ? "" : "; the last attempt: " + invocation.error);
}

std::optional<std::string> ExhaustedReason(const Invocation& claimed, const RetryPolicy& policy) {
  if (claimed.attempts <= policy.max_retries + 1) return std::nullopt;
  const std::string last = claimed.history.empty() ? "" : claimed.history.back().error;
  return fmt::format("{} attempts were interrupted or failed (max_retries {}){}",
                     claimed.attempts - 1, policy.max_retries,
                     last.empty() ? "" : "; the last one: " + last);
}

}  // namespace wisp::queue
