#include <gtest/gtest.h>

#include "wisp/queue/queue.h"

namespace wisp::queue {
namespace {

constexpr int64_t kStart = 1'000'000;

Invocation Running(int attempts, int64_t now_ms) {
  Invocation i;
  i.id = "i1";
  i.function_id = "f1";
  i.status = kRunning;
  i.attempts = attempts;
  i.created_at_ms = i.enqueued_at_ms = kStart;
  i.started_at_ms = now_ms;
  return i;
}

AttemptResult Failed(std::string status = kError) {
  return AttemptResult{status, R"({"errorType":"Error"})", {"log"}, "Error: boom", 3, 12};
}

TEST(RetryPolicy, SuccessEndsTheInvocation) {
  Invocation i = Running(1, kStart);
  ApplyAttempt(i, AttemptResult{kSuccess, "42", {}, "", 1, 5}, RetryPolicy{}, kStart + 5);
  EXPECT_EQ(i.status, kSuccess);
  EXPECT_EQ(i.response_json, "42");
  EXPECT_EQ(i.finished_at_ms, kStart + 5);
  ASSERT_EQ(i.history.size(), 1u);
  EXPECT_EQ(i.history[0].status, kSuccess);
}

TEST(RetryPolicy, FailuresRetryWithDoublingDelaysThenDeadLetter) {
  const RetryPolicy policy{2, 1000, 3'600'000};
  Invocation i = Running(1, kStart);
  int64_t now = kStart + 10;
  ApplyAttempt(i, Failed(), policy, now);
  EXPECT_EQ(i.status, kQueued);
  EXPECT_EQ(i.next_attempt_at_ms, now + 1000);
  EXPECT_EQ(i.error, "Error: boom");

  i.status = kRunning;
  i.attempts = 2;
  now = i.next_attempt_at_ms + 10;
  ApplyAttempt(i, Failed(kTimeout), policy, now);
  EXPECT_EQ(i.status, kQueued);
  EXPECT_EQ(i.next_attempt_at_ms, now + 2000);

  i.status = kRunning;
  i.attempts = 3;
  ApplyAttempt(i, Failed(), policy, i.next_attempt_at_ms + 10);
  EXPECT_EQ(i.status, kDeadLetter);
  EXPECT_NE(i.dead_letter_reason.find("3 attempts failed"), std::string::npos)
      << i.dead_letter_reason;
  EXPECT_EQ(i.history.size(), 3u);
  EXPECT_EQ(i.history[1].status, kTimeout);
}

TEST(RetryPolicy, ZeroRetriesDeadLettersAtOnce) {
  Invocation i = Running(1, kStart);
  ApplyAttempt(i, Failed(), RetryPolicy{0, 1000, 3'600'000}, kStart + 1);
  EXPECT_EQ(i.status, kDeadLetter);
}

TEST(RetryPolicy, RetryPastTheMaximumAgeDeadLetters) {
  Invocation i = Running(1, kStart);
  ApplyAttempt(i, Failed(), RetryPolicy{5, 60'000, 30'000}, kStart + 1);
  EXPECT_EQ(i.status, kDeadLetter);
  EXPECT_NE(i.dead_letter_reason.find("maximum event age"), std::string::npos);
}

TEST(RetryPolicy, ExpiredReasonCountsFromTheEnqueueTime) {
  Invocation i = Running(0, kStart);
  i.status = kQueued;
  const RetryPolicy policy{2, 1000, 60'000};
  EXPECT_FALSE(ExpiredReason(i, policy, kStart + 60'000));
  EXPECT_TRUE(ExpiredReason(i, policy, kStart + 60'001));
  i.enqueued_at_ms = kStart + 30'000;  // requeued later
  EXPECT_FALSE(ExpiredReason(i, policy, kStart + 60'001));
}

TEST(RetryPolicy, InterruptedAttemptsUseUpTheRetries) {
  const RetryPolicy policy{2, 1000, 60'000};
  Invocation i = Running(3, kStart);  // the last attempt the policy allows
  EXPECT_FALSE(ExhaustedReason(i, policy));
  i.history.push_back(Attempt{3, "interrupted", kStart, kStart + 5, "the lease of n1 expired"});
  i.attempts = 4;  // claimed again after three interrupted attempts
  auto reason = ExhaustedReason(i, policy);
  ASSERT_TRUE(reason);
  EXPECT_NE(reason->find("3 attempts were interrupted or failed"), std::string::npos) << *reason;
  EXPECT_NE(reason->find("the lease of n1 expired"), std::string::npos) << *reason;
}

}  // namespace
}  // namespace wisp::queue
