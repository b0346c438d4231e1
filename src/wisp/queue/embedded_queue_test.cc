#include "wisp/queue/embedded_queue.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "wisp/common/asio.h"
#include "wisp/common/clock.h"

namespace wisp::queue {
namespace {

class EmbeddedQueueTest : public testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::TempDir() + "/wisp_queue_test_" + std::to_string(getpid()) + ".db";
    Remove();
    Reopen();
  }
  void TearDown() override {
    queue_.reset();
    Remove();
  }
  void Remove() {
    for (const char* suffix : {"", "-wal", "-shm"}) unlink((path_ + suffix).c_str());
  }
  void Reopen() {
    queue_.reset();
    auto opened = EmbeddedQueue::Open(path_, Now());
    ASSERT_TRUE(opened) << opened.error().message;
    queue_ = std::move(*opened);
  }
  int64_t Now() const { return ToEpochMillis(clock_.WallNow()); }

  static Invocation New(std::string id, std::string function_id, int64_t now_ms) {
    Invocation i;
    i.id = std::move(id);
    i.function_id = std::move(function_id);
    i.event_json = R"({"n":1})";
    i.created_at_ms = now_ms;
    return i;
  }
  // Enqueues and waits until it is durable.
  Result<void> EnqueueSync(Invocation invocation) {
    std::promise<Result<void>> done;
    auto future = done.get_future();
    queue_->Enqueue(std::move(invocation), [&](Result<void> r) { done.set_value(std::move(r)); });
    return future.get();
  }
  static Queue::CapacityFn Unlimited() {
    return [](const std::string&) { return size_t{1000}; };
  }

  // Runs one of the queue's coroutines to its end on an io_context of its own.
  template <typename T>
  static T Await(asio::awaitable<T> work) {
    asio::io_context io;
    std::optional<T> out;
    asio::co_spawn(io, std::move(work), [&](std::exception_ptr error, T value) {
      if (error) std::rethrow_exception(error);
      out.emplace(std::move(value));
    });
    io.run();
    return std::move(*out);
  }
  // Claims as node `owner` with a lease of `lease_ms`; an empty result if the claim failed.
  std::vector<Invocation> Claim(int64_t now_ms, Queue::CapacityFn capacity,
                                const std::string& owner, int64_t lease_ms) {
    auto claimed = Await(queue_->Claim(ClaimRequest{owner, now_ms, lease_ms, std::move(capacity)}));
    EXPECT_TRUE(claimed) << claimed.error().message;
    return claimed ? std::move(*claimed) : std::vector<Invocation>{};
  }
  std::vector<Invocation> Claim(int64_t now_ms, Queue::CapacityFn capacity) {
    return Claim(now_ms, std::move(capacity), "test-node", kLeaseMs);
  }
  Result<Invocation> Finish(const Lease& lease, const AttemptResult& result,
                            const RetryPolicy& policy, int64_t now_ms) {
    return Await(queue_->Finish(lease, result, policy, now_ms));
  }
  Result<void> Release(const Lease& lease, int64_t due_ms) {
    return Await(queue_->Release(lease, due_ms));
  }
  Result<void> DeadLetter(const Lease& lease, std::string reason, int64_t now_ms) {
    return Await(queue_->DeadLetter(lease, std::move(reason), now_ms));
  }
  Result<Lease> Renew(const Lease& lease, int64_t now_ms, int64_t lease_ms) {
    return Await(queue_->Renew(lease, now_ms, lease_ms));
  }

  static constexpr int64_t kLeaseMs = 3'600'000;  // outlasts every test that does not expire it

  ManualClock clock_;
  std::string path_;
  std::unique_ptr<EmbeddedQueue> queue_;
};

TEST_F(EmbeddedQueueTest, AcceptedInvocationsSurviveReopen) {
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(EnqueueSync(New("id" + std::to_string(i), "f1", Now())));
  }
  // One of them was running when the process ended: it comes back queued, its attempt counted.
  auto claimed = Claim(Now(), [](const std::string&) { return size_t{1}; });
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].id, "id0");
  queue_->Flush();
  Reopen();
  EXPECT_EQ(queue_->stats().queued, 10u);
  auto again = Claim(Now(), Unlimited());
  ASSERT_EQ(again.size(), 10u);
  EXPECT_EQ(again[0].id, "id0");
  EXPECT_EQ(again[0].attempts, 2);
  ASSERT_FALSE(again[0].history.empty());
  EXPECT_EQ(again[0].history[0].status, "interrupted");
  EXPECT_EQ(again[1].attempts, 1);
  EXPECT_EQ(again[1].event_json, R"({"n":1})");
}

TEST_F(EmbeddedQueueTest, TraceIdIsKeptForEveryAttempt) {
  Invocation traced = New("traced", "f1", Now());
  traced.trace_id = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1";
  ASSERT_TRUE(EnqueueSync(traced));
  ASSERT_TRUE(EnqueueSync(New("untraced", "f1", Now())));
  Reopen();
  auto claimed = Claim(Now(), Unlimited());
  ASSERT_EQ(claimed.size(), 2u);
  EXPECT_EQ(claimed[0].trace_id, traced.trace_id);
  EXPECT_EQ(claimed[1].trace_id, "");
}

TEST_F(EmbeddedQueueTest, TheQualifierIsKeptForEveryAttempt) {
  Invocation aliased = New("aliased", "f1", Now());
  aliased.qualifier = "live";
  ASSERT_TRUE(EnqueueSync(aliased));
  ASSERT_TRUE(EnqueueSync(New("latest", "f1", Now())));
  Reopen();
  auto claimed = Claim(Now(), Unlimited());
  ASSERT_EQ(claimed.size(), 2u);
  EXPECT_EQ(claimed[0].qualifier, "live");
  EXPECT_EQ(claimed[1].qualifier, "");
}

TEST_F(EmbeddedQueueTest, OpensAQueueWrittenBeforeTraceIds) {
  queue_.reset();
  Remove();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  // The table as the first release created it, with one invocation waiting.
  const char* old_queue = R"sql(
    CREATE TABLE invocations (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
      function_id TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
      event_json TEXT NOT NULL, headers_json TEXT NOT NULL, timeout_ms INTEGER NOT NULL,
      response_json TEXT NOT NULL, logs_json TEXT NOT NULL, error TEXT NOT NULL,
      dead_letter_reason TEXT NOT NULL, history_json TEXT NOT NULL, version INTEGER NOT NULL,
      created_at_ms INTEGER NOT NULL, enqueued_at_ms INTEGER NOT NULL,
      next_attempt_at_ms INTEGER NOT NULL, started_at_ms INTEGER, finished_at_ms INTEGER,
      duration_ms INTEGER NOT NULL);
    INSERT INTO invocations (id, function_id, status, attempts, event_json, headers_json,
      timeout_ms, response_json, logs_json, error, dead_letter_reason, history_json, version,
      created_at_ms, enqueued_at_ms, next_attempt_at_ms, duration_ms)
      VALUES ('old', 'f1', 'queued', 0, '{"n":7}', '{}', 0, '', '[]', '', '', '[]', 0, 1, 1, 1,
      0);)sql";
  char* error = nullptr;
  ASSERT_EQ(sqlite3_exec(db, old_queue, nullptr, nullptr, &error), SQLITE_OK) << error;
  sqlite3_close(db);

  Reopen();
  Invocation traced = New("new", "f1", Now());
  traced.trace_id = "Root=1-0-1";
  ASSERT_TRUE(EnqueueSync(traced));
  Reopen();
  auto claimed = Claim(Now(), Unlimited());
  ASSERT_EQ(claimed.size(), 2u);
  EXPECT_EQ(claimed[0].id, "old");
  EXPECT_EQ(claimed[0].event_json, R"({"n":7})");
  EXPECT_EQ(claimed[0].trace_id, "");
  EXPECT_EQ(claimed[1].trace_id, "Root=1-0-1");
}

TEST_F(EmbeddedQueueTest, DuplicateIdFailsAloneAndNothingRunsBeforeItIsDurable) {
  ASSERT_TRUE(EnqueueSync(New("a", "f1", Now())));
  auto again = EnqueueSync(New("a", "f1", Now()));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(queue_->stats().queued, 1u);
  EXPECT_EQ(queue_->stats().accepted, 1u);
}

TEST_F(EmbeddedQueueTest, ConcurrentAcceptsShareCommits) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        if (EnqueueSync(New(fmt::format("t{}-{}", t, i), "f1", Now()))) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  const auto stats = queue_->stats();
  EXPECT_EQ(stats.accepted, uint64_t{kThreads * kPerThread});
  // Group commit: concurrent callers wait on a shared fsync, so far fewer commits than accepts.
  EXPECT_LT(stats.commits, stats.accepted);
  Reopen();
  EXPECT_EQ(queue_->stats().queued, uint64_t{kThreads * kPerThread});
}

TEST_F(EmbeddedQueueTest, ClaimsInDueOrderWithinCapacity) {
  const int64_t now = Now();
  auto late = New("late", "f1", now);
  late.next_attempt_at_ms = now + 5000;
  ASSERT_TRUE(EnqueueSync(late));
  ASSERT_TRUE(EnqueueSync(New("first", "f1", now)));
  ASSERT_TRUE(EnqueueSync(New("second", "f1", now)));
  ASSERT_TRUE(EnqueueSync(New("other", "f2", now)));

  auto claimed = Claim(now, [](const std::string& f) { return f == "f1" ? 1u : 0u; });
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].id, "first");
  EXPECT_EQ(claimed[0].status, kRunning);
  EXPECT_EQ(claimed[0].attempts, 1);
  // f2 has no capacity: its due work does not make the dispatcher wake.
  EXPECT_EQ(queue_->NextDue([](const std::string& f) { return f == "f1" ? 1u : 0u; }), now);
  EXPECT_EQ(queue_->NextDue([](const std::string& f) { return 0u; }), std::nullopt);

  claimed = Claim(now, Unlimited());
  ASSERT_EQ(claimed.size(), 2u);  // functions come in no particular order
  std::set<std::string> ids = {claimed[0].id, claimed[1].id};
  EXPECT_EQ(ids, (std::set<std::string>{"second", "other"}));
  EXPECT_EQ(queue_->NextDue(Unlimited()), now + 5000);
  EXPECT_TRUE(Claim(now + 4999, Unlimited()).empty());
  claimed = Claim(now + 5000, Unlimited());
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].id, "late");
}

TEST_F(EmbeddedQueueTest, RetriesThenDeadLettersThenRequeues) {
  const RetryPolicy policy{2, 1000, 3'600'000};
  ASSERT_TRUE(EnqueueSync(New("x", "f1", Now())));
  const AttemptResult failed{kError, R"({"errorMessage":"boom"})", {"a log"}, "boom", 1, 3};
  std::vector<int64_t> starts;
  for (int attempt = 1; attempt <= 3; ++attempt) {
    ASSERT_EQ(Claim(Now() - 1, Unlimited()).size(), 0u) << "not due before its delay";
    auto claimed = Claim(Now(), Unlimited());
    ASSERT_EQ(claimed.size(), 1u) << "attempt " << attempt;
    EXPECT_EQ(claimed[0].attempts, attempt);
    starts.push_back(Now());
    EXPECT_EQ(claimed[0].lease.owner, "test-node");
    EXPECT_EQ(claimed[0].lease.expires_at_ms, Now() + kLeaseMs);
    auto finished = Finish(claimed[0].lease, failed, policy, Now());
    ASSERT_TRUE(finished);
    if (attempt < 3) {
      EXPECT_EQ(finished->status, kQueued);
      EXPECT_EQ(finished->next_attempt_at_ms, Now() + (1000 << (attempt - 1)));
      clock_.Advance(std::chrono::milliseconds(1000 << (attempt - 1)));
    } else {
      EXPECT_EQ(finished->status, kDeadLetter);
    }
  }
  EXPECT_EQ(starts[1] - starts[0], 1000);
  EXPECT_EQ(starts[2] - starts[1], 2000);
  EXPECT_EQ(queue_->stats().queued, 0u);
  EXPECT_EQ(queue_->stats().dead_letters, 1u);

  auto listed = queue_->List(ListFilter{"", kDeadLetter, 10, 0});
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].attempts, 3);
  EXPECT_EQ((*listed)[0].history.size(), 3u);
  EXPECT_NE((*listed)[0].dead_letter_reason.find("boom"), std::string::npos);

  Reopen();  // a dead letter is not pending: it stays dead after a restart
  EXPECT_EQ(queue_->stats().queued, 0u);
  EXPECT_EQ(queue_->stats().dead_letters, 1u);  // counted from the table at start
  auto got = queue_->Get("x");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, kDeadLetter);
  EXPECT_EQ(got->logs, std::vector<std::string>{"a log"});

  auto requeued = queue_->Requeue("x", Now());
  ASSERT_TRUE(requeued) << requeued.error().message;
  EXPECT_EQ(requeued->status, kQueued);
  EXPECT_EQ(requeued->attempts, 0);
  EXPECT_EQ(queue_->stats().dead_letters, 0u);
  auto claimed = Claim(Now(), Unlimited());
  ASSERT_EQ(claimed.size(), 1u);
  auto done = Finish(claimed[0].lease, AttemptResult{kSuccess, "1", {}, "", 1, 1}, policy, Now());
  ASSERT_TRUE(done);
  EXPECT_EQ(done->status, kSuccess);
  auto not_dead = queue_->Requeue("x", Now());
  ASSERT_FALSE(not_dead);
  EXPECT_EQ(not_dead.error().code, ErrorCode::kFailedPrecondition);
  queue_->Flush();
  got = queue_->Get("x");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, kSuccess);
  EXPECT_FALSE(queue_->Get("nope"));
}

TEST_F(EmbeddedQueueTest, ReleaseDoesNotCountTheAttempt) {
  ASSERT_TRUE(EnqueueSync(New("t", "f1", Now())));
  auto first = Claim(Now(), Unlimited());
  ASSERT_EQ(first.size(), 1u);
  ASSERT_TRUE(Release(first[0].lease, Now() + 100));
  EXPECT_TRUE(Claim(Now(), Unlimited()).empty());
  auto claimed = Claim(Now() + 100, Unlimited());
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].attempts, 1);
  // A dead letter without running it does not count the attempt either.
  ASSERT_TRUE(DeadLetter(claimed[0].lease, "function deleted", Now()));
  auto got = queue_->Get("t");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, kDeadLetter);
  EXPECT_EQ(got->dead_letter_reason, "function deleted");
  EXPECT_EQ(got->attempts, 0);
  EXPECT_EQ(queue_->stats().running, 0u);
  EXPECT_EQ(queue_->stats().dead_letters, 1u);
}

// Another node (or this one before a hang) claimed the invocation and stopped renewing: once
// its lease has expired, anyone's claim takes it back and runs it again under the same id.
TEST_F(EmbeddedQueueTest, ALeaseThatExpiresMakesTheInvocationClaimableAgain) {
  const int64_t start = Now();
  ASSERT_TRUE(EnqueueSync(New("e", "f1", start)));
  auto first = Claim(start, Unlimited(), "node-a", 1000);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].lease.invocation_id, "e");
  EXPECT_EQ(first[0].lease.owner, "node-a");
  EXPECT_EQ(first[0].lease.expires_at_ms, start + 1000);
  EXPECT_EQ(queue_->NextDue(Unlimited()), start + 1000) << "the dispatcher wakes for the expiry";
  EXPECT_EQ(queue_->NextDue([](const std::string&) { return 0u; }), std::nullopt);

  EXPECT_TRUE(Claim(start + 999, Unlimited(), "node-b", 1000).empty()) << "still held";
  EXPECT_EQ(queue_->stats().running, 1u);
  auto second = Claim(start + 1000, Unlimited(), "node-b", 1000);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].id, "e");
  EXPECT_EQ(second[0].event_json, R"({"n":1})");
  EXPECT_EQ(second[0].lease.owner, "node-b");
  EXPECT_NE(second[0].lease.token, first[0].lease.token);
  EXPECT_EQ(second[0].attempts, 2) << "the lapsed attempt counts, as after a crash";
  ASSERT_EQ(second[0].history.size(), 1u);
  EXPECT_EQ(second[0].history[0].status, "interrupted");
  EXPECT_NE(second[0].history[0].error.find("node-a"), std::string::npos);
  EXPECT_EQ(queue_->stats().running, 1u);
  EXPECT_EQ(queue_->stats().queued, 0u);

  // Even with no capacity to claim it, an expired lease is taken back: it waits queued.
  auto third = Claim(
      start + 2000, [](const std::string&) { return 0u; }, "node-c", 1000);
  EXPECT_TRUE(third.empty());
  EXPECT_EQ(queue_->stats().running, 0u);
  EXPECT_EQ(queue_->stats().queued, 1u);
  queue_->Flush();
  Reopen();
  auto reopened = Claim(start + 2000, Unlimited());
  ASSERT_EQ(reopened.size(), 1u);
  EXPECT_EQ(reopened[0].attempts, 3);
}

TEST_F(EmbeddedQueueTest, ARenewedLeaseDoesNotExpire) {
  const int64_t start = Now();
  ASSERT_TRUE(EnqueueSync(New("r", "f1", start)));
  auto claimed = Claim(start, Unlimited(), "node-a", 1000);
  ASSERT_EQ(claimed.size(), 1u);
  auto renewed = Renew(claimed[0].lease, start + 600, 1000);
  ASSERT_TRUE(renewed) << renewed.error().message;
  EXPECT_EQ(renewed->token, claimed[0].lease.token);
  EXPECT_EQ(renewed->expires_at_ms, start + 1600);
  EXPECT_EQ(queue_->NextDue(Unlimited()), start + 1600);

  EXPECT_TRUE(Claim(start + 1000, Unlimited(), "node-b", 1000).empty())
      << "the first expiry has passed, but the lease was renewed";
  EXPECT_TRUE(Claim(start + 1599, Unlimited(), "node-b", 1000).empty());
  const RetryPolicy policy;
  auto finished =
      Finish(*renewed, AttemptResult{kSuccess, R"("done")", {}, "", 1, 5}, policy, start + 1500);
  ASSERT_TRUE(finished) << finished.error().message;
  EXPECT_EQ(finished->status, kSuccess);
  EXPECT_EQ(finished->attempts, 1);
  EXPECT_TRUE(Claim(start + 5000, Unlimited(), "node-b", 1000).empty()) << "finished for good";
  EXPECT_EQ(queue_->stats().running, 0u);
}

// A worker that lost its lease (it hung past the expiry, and another claim took the
// invocation) cannot record its result over the newer attempt's, nor extend or end it.
TEST_F(EmbeddedQueueTest, ALeaseThatWasTakenBackIsRefused) {
  const int64_t start = Now();
  ASSERT_TRUE(EnqueueSync(New("s", "f1", start)));
  auto stale = Claim(start, Unlimited(), "node-a", 1000);
  ASSERT_EQ(stale.size(), 1u);
  auto fresh = Claim(start + 1000, Unlimited(), "node-b", 1000);
  ASSERT_EQ(fresh.size(), 1u);

  const RetryPolicy policy;
  auto late = Finish(stale[0].lease, AttemptResult{kSuccess, R"("stale")", {}, "", 1, 1}, policy,
                     start + 1100);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(late.error().message.find("newer lease"), std::string::npos) << late.error().message;
  auto renew = Renew(stale[0].lease, start + 1100, 1000);
  ASSERT_FALSE(renew);
  EXPECT_EQ(renew.error().code, ErrorCode::kFailedPrecondition);
  auto release = Release(stale[0].lease, start + 1100);
  ASSERT_FALSE(release);
  EXPECT_EQ(release.error().code, ErrorCode::kFailedPrecondition);
  auto dead = DeadLetter(stale[0].lease, "stale", start + 1100);
  ASSERT_FALSE(dead);
  EXPECT_EQ(dead.error().code, ErrorCode::kFailedPrecondition);
  // A forged lease with the right token but another owner is refused too.
  Lease forged = fresh[0].lease;
  forged.owner = "node-a";
  EXPECT_FALSE(Finish(forged, AttemptResult{kSuccess, R"("x")", {}, "", 1, 1}, policy, start));

  auto finished = Finish(fresh[0].lease, AttemptResult{kSuccess, R"("fresh")", {}, "", 1, 1},
                         policy, start + 1200);
  ASSERT_TRUE(finished) << finished.error().message;
  // And once the invocation is finished, the stale lease stays refused.
  late =
      Finish(stale[0].lease, AttemptResult{kError, "{}", {}, "late", 1, 1}, policy, start + 1300);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, ErrorCode::kFailedPrecondition);
  queue_->Flush();
  Reopen();
  auto got = queue_->Get("s");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, kSuccess);
  EXPECT_EQ(got->response_json, R"("fresh")");
  EXPECT_EQ(got->attempts, 2);
}

TEST_F(EmbeddedQueueTest, ABadClaimOrRenewalIsRefused) {
  ASSERT_TRUE(EnqueueSync(New("b", "f1", Now())));
  for (const auto& [owner, lease_ms] :
       std::vector<std::pair<std::string, int64_t>>{{"", 1000}, {"node", 0}, {"node", -5}}) {
    auto claimed = Await(queue_->Claim(ClaimRequest{owner, Now(), lease_ms, Unlimited()}));
    ASSERT_FALSE(claimed) << "owner '" << owner << "', lease " << lease_ms;
    EXPECT_EQ(claimed.error().code, ErrorCode::kInvalidArgument);
  }
  EXPECT_EQ(queue_->stats().queued, 1u) << "a refused claim takes nothing";
  auto claimed = Claim(Now(), Unlimited());
  ASSERT_EQ(claimed.size(), 1u);
  auto renewed = Renew(claimed[0].lease, Now(), 0);
  ASSERT_FALSE(renewed);
  EXPECT_EQ(renewed.error().code, ErrorCode::kInvalidArgument);
  Lease unknown = claimed[0].lease;
  unknown.invocation_id = "nope";
  auto missing = Renew(unknown, Now(), 1000);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

TEST_F(EmbeddedQueueTest, ListFiltersAndPages) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(EnqueueSync(New("a" + std::to_string(i), "fa", Now())));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(EnqueueSync(New("b" + std::to_string(i), "fb", Now())));
  ASSERT_EQ(Claim(Now(), [](const std::string& f) { return f == "fb" ? 1u : 0u; }).size(), 1u);
  auto fa = queue_->List(ListFilter{"fa", "", 2, 1});
  ASSERT_TRUE(fa);
  ASSERT_EQ(fa->size(), 2u);
  EXPECT_EQ((*fa)[0].id, "a3");  // newest first
  EXPECT_EQ((*fa)[1].id, "a2");
  auto running = queue_->List(ListFilter{"", kRunning, 10, 0});
  ASSERT_TRUE(running);
  ASSERT_EQ(running->size(), 1u);
  EXPECT_EQ((*running)[0].id, "b0");
}

TEST_F(EmbeddedQueueTest, ListFiltersByCreationTimeAndReadsKeysOnly) {
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(EnqueueSync(New("t" + std::to_string(i), i % 2 ? "fa" : "fb", 1000 + i * 10)));
  }
  auto window = queue_->List(ListFilter{.since_ms = 1010, .until_ms = 1040});
  ASSERT_TRUE(window);
  std::vector<std::string> ids;
  for (const auto& i : *window) ids.push_back(i.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"t3", "t2", "t1"}));
  auto keys = queue_->List(ListFilter{.function_id = "fa", .limit = 1, .keys_only = true});
  ASSERT_TRUE(keys);
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].id, "t5");
  EXPECT_EQ((*keys)[0].created_at_ms, 1050);
  EXPECT_EQ((*keys)[0].status, kQueued);
}

TEST_F(EmbeddedQueueTest, QueueFilesAreOwnerOnlyAlsoWhenAnOlderWispdLeftThem) {
  auto mode = [](const std::string& path) -> mode_t {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
  };
  ASSERT_TRUE(EnqueueSync(New("p1", "fa", Now())));
  EXPECT_EQ(mode(path_), 0600u);
  EXPECT_EQ(mode(path_ + "-wal"), 0600u);
  queue_.reset();
  for (const char* suffix : {"", "-wal", "-shm"}) {
    if (mode(path_ + suffix) != 0) {
      ASSERT_EQ(::chmod((path_ + suffix).c_str(), 0644), 0);
    }
  }
  Reopen();
  for (const char* suffix : {"", "-wal", "-shm"}) {
    if (mode(path_ + suffix) != 0) {
      EXPECT_EQ(mode(path_ + suffix), 0600u) << suffix;
    }
  }
}

}  // namespace
}  // namespace wisp::queue
