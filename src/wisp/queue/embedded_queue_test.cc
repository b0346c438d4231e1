#include "wisp/queue/embedded_queue.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <sqlite3.h>

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

  ManualClock clock_;
  std::string path_;
  std::unique_ptr<EmbeddedQueue> queue_;
};

TEST_F(EmbeddedQueueTest, AcceptedInvocationsSurviveReopen) {
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(EnqueueSync(New("id" + std::to_string(i), "f1", Now())));
  }
  // One of them was running when the process ended: it comes back queued, its attempt counted.
  auto claimed = queue_->Claim(Now(), [](const std::string&) { return size_t{1}; });
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].id, "id0");
  queue_->Flush();
  Reopen();
  EXPECT_EQ(queue_->stats().queued, 10u);
  auto again = queue_->Claim(Now(), Unlimited());
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
  auto claimed = queue_->Claim(Now(), Unlimited());
  ASSERT_EQ(claimed.size(), 2u);
  EXPECT_EQ(claimed[0].trace_id, traced.trace_id);
  EXPECT_EQ(claimed[1].trace_id, "");
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
  auto claimed = queue_->Claim(Now(), Unlimited());
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

  auto claimed = queue_->Claim(now, [](const std::string& f) { return f == "f1" ? 1u : 0u; });
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].id, "first");
  EXPECT_EQ(claimed[0].status, kRunning);
  EXPECT_EQ(claimed[0].attempts, 1);
  // f2 has no capacity: its due work does not make the dispatcher wake.
  EXPECT_EQ(queue_->NextDue([](const std::string& f) { return f == "f1" ? 1u : 0u; }), now);
  EXPECT_EQ(queue_->NextDue([](const std::string& f) { return 0u; }), std::nullopt);

  claimed = queue_->Claim(now, Unlimited());
  ASSERT_EQ(claimed.size(), 2u);  // functions come in no particular order
  std::set<std::string> ids = {claimed[0].id, claimed[1].id};
  EXPECT_EQ(ids, (std::set<std::string>{"second", "other"}));
  EXPECT_EQ(queue_->NextDue(Unlimited()), now + 5000);
  EXPECT_TRUE(queue_->Claim(now + 4999, Unlimited()).empty());
  claimed = queue_->Claim(now + 5000, Unlimited());
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].id, "late");
}

TEST_F(EmbeddedQueueTest, RetriesThenDeadLettersThenRequeues) {
  const RetryPolicy policy{2, 1000, 3'600'000};
  ASSERT_TRUE(EnqueueSync(New("x", "f1", Now())));
  const AttemptResult failed{kError, R"({"errorMessage":"boom"})", {"a log"}, "boom", 1, 3};
  std::vector<int64_t> starts;
  for (int attempt = 1; attempt <= 3; ++attempt) {
    ASSERT_EQ(queue_->Claim(Now() - 1, Unlimited()).size(), 0u) << "not due before its delay";
    auto claimed = queue_->Claim(Now(), Unlimited());
    ASSERT_EQ(claimed.size(), 1u) << "attempt " << attempt;
    EXPECT_EQ(claimed[0].attempts, attempt);
    starts.push_back(Now());
    auto finished = queue_->Finish("x", failed, policy, Now());
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

  auto listed = queue_->List(ListFilter{"", kDeadLetter, 10, 0});
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].attempts, 3);
  EXPECT_EQ((*listed)[0].history.size(), 3u);
  EXPECT_NE((*listed)[0].dead_letter_reason.find("boom"), std::string::npos);

  Reopen();  // a dead letter is not pending: it stays dead after a restart
  EXPECT_EQ(queue_->stats().queued, 0u);
  auto got = queue_->Get("x");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, kDeadLetter);
  EXPECT_EQ(got->logs, std::vector<std::string>{"a log"});

  auto requeued = queue_->Requeue("x", Now());
  ASSERT_TRUE(requeued) << requeued.error().message;
  EXPECT_EQ(requeued->status, kQueued);
  EXPECT_EQ(requeued->attempts, 0);
  auto claimed = queue_->Claim(Now(), Unlimited());
  ASSERT_EQ(claimed.size(), 1u);
  auto done = queue_->Finish("x", AttemptResult{kSuccess, "1", {}, "", 1, 1}, policy, Now());
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
  ASSERT_EQ(queue_->Claim(Now(), Unlimited()).size(), 1u);
  ASSERT_TRUE(queue_->Release("t", Now() + 100));
  EXPECT_TRUE(queue_->Claim(Now(), Unlimited()).empty());
  auto claimed = queue_->Claim(Now() + 100, Unlimited());
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].attempts, 1);
  ASSERT_TRUE(queue_->DeadLetter("t", "function deleted", Now()));
  auto got = queue_->Get("t");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, kDeadLetter);
  EXPECT_EQ(got->dead_letter_reason, "function deleted");
  EXPECT_EQ(queue_->stats().running, 0u);
}

TEST_F(EmbeddedQueueTest, ListFiltersAndPages) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(EnqueueSync(New("a" + std::to_string(i), "fa", Now())));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(EnqueueSync(New("b" + std::to_string(i), "fb", Now())));
  ASSERT_EQ(queue_->Claim(Now(), [](const std::string& f) { return f == "fb" ? 1u : 0u; }).size(),
            1u);
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
