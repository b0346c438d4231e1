#include "wisp/store/invocation_writer.h"

#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "wisp/store/sqlite_store.h"

namespace wisp::store {
namespace {

constexpr uint32_t kKeep = 10000;

// A store that records batches in memory: the writer's batching is what is under test.
class RecordingStore final : public Store {
 public:
  struct Prune {
    std::vector<std::string> function_ids;
    PruneOptions options;
  };

  Result<int64_t> CreateFunction(const FunctionRecord&) override { return 1; }
  Result<int64_t> UpdateFunction(const FunctionRecord&, int64_t) override { return 1; }
  Result<void> PutFunction(const FunctionRecord&) override { return {}; }
  Result<void> RecordActivity(const std::string&, int64_t) override { return {}; }
  Result<void> DeleteFunction(const std::string&) override { return {}; }
  Result<FunctionRecord> GetFunction(const std::string& id) override {
    return MakeError(ErrorCode::kNotFound, id);
  }
  Result<std::vector<FunctionRecord>> ListFunctions() override { return {}; }
  Result<int64_t> LatestRevision() override { return 0; }
  Result<std::vector<FunctionChange>> Changes(int64_t, int) override { return {}; }
  Result<VersionRecord> PublishVersion(const VersionRecord& v) override { return v; }
  Result<std::vector<VersionRecord>> ListVersions(const std::string&) override { return {}; }
  Result<void> DeleteVersion(const std::string&, int) override { return {}; }
  Result<void> PutAlias(const AliasRecord&, bool, const std::optional<std::string>&) override {
    return {};
  }
  Result<std::vector<AliasRecord>> ListAliases(const std::string&) override { return {}; }
  Result<void> DeleteAlias(const std::string&, const std::string&) override { return {}; }
  Result<void> PutInvocations(const std::vector<InvocationRecord>& records) override {
    std::unique_lock lock(mutex);
    writer_tid = ::gettid();
    policies.push_back(::sched_getscheduler(0));  // the writer's, while it writes
    in_batch.notify_all();
    released.wait(lock, [this] { return !hold; });
    if (fail_next) {
      fail_next = false;
      return MakeError(ErrorCode::kInternal, "disk full");
    }
    batches.push_back(records.size());
    for (const auto& r : records) ids.push_back(r.id);
    return {};
  }
  Result<std::vector<InvocationRecord>> ListInvocations(const std::string&, int, int,
                                                        const std::string&) override {
    return {};
  }
  Result<std::vector<InvocationRecord>> QueryInvocations(const InvocationQuery&) override {
    return {};
  }
  Result<InvocationRecord> GetInvocation(const std::string& id) override {
    return MakeError(ErrorCode::kNotFound, id);
  }
  Result<ReclaimResult> ReclaimSpace(uint64_t, uint64_t) override { return ReclaimResult{}; }
  Result<PruneResult> PruneInvocations(const std::vector<std::string>& function_ids,
                                       const PruneOptions& options) override {
    std::lock_guard lock(mutex);
    prunes.push_back({function_ids, options});
    pruned.notify_all();
    PruneResult result;
    for (const auto& id : function_ids) {
      if (id == backlogged) result.unfinished.push_back(id);
    }
    return result;
  }

  void RaiseOnLockWait(SpareTimePriority* writer) override {
    std::lock_guard lock(mutex);
    raise_on_lock_wait = writer;
  }

  std::mutex mutex;
  std::condition_variable pruned;
  std::condition_variable in_batch;  // PutInvocations began
  std::condition_variable released;  // `hold` was cleared
  bool hold = false;                 // PutInvocations waits until it is cleared
  pid_t writer_tid = 0;
  std::vector<int> policies;  // the writer thread's scheduling policy in each PutInvocations
  SpareTimePriority* raise_on_lock_wait = nullptr;
  std::vector<size_t> batches;
  std::vector<std::string> ids;
  std::vector<Prune> prunes;
  bool fail_next = false;
  std::string backlogged;  // a function whose prune never finishes
};

InvocationRecord Record(std::string id, std::string function_id) {
  InvocationRecord r;
  r.id = std::move(id);
  r.function_id = std::move(function_id);
  r.status = "success";
  r.event_json = "{}";
  r.response_json = "{}";
  return r;
}

TEST(InvocationWriter, FlushWaitsForEveryRecordInOrder) {
  RecordingStore store;
  InvocationWriter writer(store, kKeep);
  for (int i = 0; i < 1000; ++i) {
    InvocationRecord r;
    r.id = std::to_string(i);
    writer.Add(std::move(r));
  }
  writer.Flush();
  std::lock_guard lock(store.mutex);
  ASSERT_EQ(store.ids.size(), 1000u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(store.ids[i], std::to_string(i));
  EXPECT_EQ(writer.written(), 1000u);
}

// Spare time (SpareTimePriority): batches nobody waits for are written at SCHED_IDLE, a flushed
// one at normal priority, and the writer goes back to spare time after it.
TEST(InvocationWriter, WritesInSpareTimeUnlessAFlushWaits) {
  if (::geteuid() != 0) GTEST_SKIP() << "leaving SCHED_IDLE needs root";
  RecordingStore store;
  store.hold = true;
  {
    InvocationWriter writer(store, kKeep);
    {
      std::lock_guard lock(store.mutex);
      EXPECT_NE(store.raise_on_lock_wait, nullptr);  // store lock waiters raise the writer
    }
    writer.Add(Record("timer", "f"));
    pid_t writer_tid;
    {
      // The batch interval's batch, which no one waits for: held in the store meanwhile, so
      // that "flushed" cannot join it or a later timer's batch.
      std::unique_lock lock(store.mutex);
      store.in_batch.wait(lock, [&] { return !store.policies.empty(); });
      writer_tid = store.writer_tid;
    }
    writer.Add(Record("flushed", "f"));
    std::thread flusher([&writer] { writer.Flush(); });
    // The flush raises the writer at once, in the middle of the batch it waits behind.
    while (::sched_getscheduler(writer_tid) != SCHED_OTHER) std::this_thread::yield();
    {
      std::lock_guard lock(store.mutex);
      store.hold = false;
    }
    store.released.notify_all();
    flusher.join();
    writer.Add(Record("timer again", "f"));
    std::unique_lock lock(store.mutex);
    store.in_batch.wait(lock, [&] { return store.policies.size() == 3; });
    EXPECT_EQ(store.policies, (std::vector<int>{SCHED_IDLE, SCHED_OTHER, SCHED_IDLE}));
  }
  EXPECT_EQ(store.raise_on_lock_wait, nullptr);
}

TEST(InvocationWriter, ABacklogBeyondItsBoundRaisesTheWriter) {
  if (::geteuid() != 0) GTEST_SKIP() << "leaving SCHED_IDLE needs root";
  RecordingStore store;
  store.hold = true;
  InvocationWriter writer(store, kKeep);
  writer.Add(Record("first", "f"));
  pid_t writer_tid;
  {
    std::unique_lock lock(store.mutex);
    store.in_batch.wait(lock, [&] { return !store.policies.empty(); });
    writer_tid = store.writer_tid;
  }
  // The writer is held in its first batch, in spare time, while the CPUs' "calls" add records.
  EXPECT_EQ(::sched_getscheduler(writer_tid), SCHED_IDLE);
  for (size_t i = 1; i < InvocationWriter::kSpareTimeMaxRecords; ++i) {
    writer.Add(Record(std::to_string(i), "f"));
  }
  EXPECT_EQ(::sched_getscheduler(writer_tid), SCHED_IDLE);  // one short of the bound
  writer.Add(Record("last", "f"));
  EXPECT_EQ(::sched_getscheduler(writer_tid), SCHED_OTHER);
  {
    std::lock_guard lock(store.mutex);
    store.hold = false;
  }
  store.released.notify_all();
  writer.Flush();
  EXPECT_EQ(writer.written(), InvocationWriter::kSpareTimeMaxRecords + 1);
}

TEST(InvocationWriter, AFailedBatchIsCountedAndDoesNotBlockFlush) {
  RecordingStore store;
  store.fail_next = true;
  InvocationWriter writer(store, kKeep);
  writer.Add(InvocationRecord{});
  writer.Flush();
  EXPECT_EQ(writer.failed_batches(), 1u);
  writer.Add(InvocationRecord{});
  writer.Flush();
  EXPECT_EQ(writer.written(), 1u);
}

TEST(InvocationWriter, DestructorWritesWhatIsQueued) {
  RecordingStore store;
  {
    InvocationWriter writer(store, kKeep);
    for (int i = 0; i < 10; ++i) writer.Add(InvocationRecord{});
  }
  EXPECT_EQ(store.ids.size(), 10u);
}

TEST(InvocationWriter, PrunesEachFunctionOfABatchOnceWithABoundedBudget) {
  RecordingStore store;
  InvocationWriter writer(store, 7);
  for (const char* function_id : {"f2", "f1", "f2", "f2"}) writer.Add(Record("i", function_id));
  writer.Flush();
  std::lock_guard lock(store.mutex);
  // Usually one batch; a wake-up between two Adds splits it, and each part is pruned.
  std::set<std::string> named;
  for (const auto& prune : store.prunes) {
    const std::set<std::string> once(prune.function_ids.begin(), prune.function_ids.end());
    EXPECT_EQ(once.size(), prune.function_ids.size());
    named.insert(once.begin(), once.end());
    EXPECT_EQ(prune.options.keep, 7u);
    EXPECT_EQ(prune.options.min_excess, 1u);  // small limits are kept exactly
    EXPECT_EQ(prune.options.max_deleted, InvocationWriter::kMaxPrunedPerBatch);
  }
  EXPECT_EQ(named, (std::set<std::string>{"f1", "f2"}));
}

TEST(InvocationWriter, LetsAPercentMoreAtMost64WaitForTheNextTrim) {
  for (const auto& [keep, min_excess] : {std::pair{10000u, 64u}, {1000u, 10u}, {199u, 1u}}) {
    RecordingStore store;
    InvocationWriter writer(store, keep);
    writer.Add(Record("i", "f1"));
    writer.Flush();
    std::lock_guard lock(store.mutex);
    ASSERT_FALSE(store.prunes.empty());
    EXPECT_EQ(store.prunes[0].options.min_excess, min_excess) << keep;
  }
}

TEST(InvocationWriter, KeepsTrimmingABacklogWithoutNewRecordsAndAfterOtherFunctions) {
  RecordingStore store;
  store.backlogged = "a-backlog";
  InvocationWriter writer(store, kKeep);
  writer.Add(Record("i1", "a-backlog"));
  writer.Flush();
  writer.Add(Record("i2", "b"));
  writer.Flush();
  std::unique_lock lock(store.mutex);
  // The batch with "b" was pruned before Flush returned: "b" first, the backlog after it.
  std::vector<std::string> with_b;
  for (const auto& prune : store.prunes) {
    if (prune.function_ids.front() == "b") with_b = prune.function_ids;
  }
  EXPECT_EQ(with_b, (std::vector<std::string>{"b", "a-backlog"}));
  // No more records: the backlog is still pruned on the writer's next wake-ups.
  const size_t seen = store.prunes.size();
  EXPECT_TRUE(store.pruned.wait_for(lock, std::chrono::seconds(30),
                                    [&] { return store.prunes.size() > seen; }));
  EXPECT_EQ(store.prunes.back().function_ids, (std::vector<std::string>{"a-backlog"}));
}

TEST(InvocationWriter, KeepingNoneWritesNothingAndStillPrunes) {
  RecordingStore store;
  InvocationWriter writer(store, 0);
  writer.Add(Record("i1", "f1"));
  writer.Flush();
  std::lock_guard lock(store.mutex);
  EXPECT_TRUE(store.ids.empty());
  EXPECT_EQ(writer.written(), 0u);
  ASSERT_EQ(store.prunes.size(), 1u);
  EXPECT_EQ(store.prunes[0].function_ids, (std::vector<std::string>{"f1"}));
  EXPECT_EQ(store.prunes[0].options.keep, 0u);
}

// The writer and the SQLite store together, as wispd runs them.
class InvocationWriterRetentionTest : public testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::TempDir() + "/wisp_writer_test_" + std::to_string(getpid()) + ".db";
    auto opened = SqliteStore::Open(path_);
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(*opened);
    for (const char* id : {"f1", "f2"}) {
      FunctionRecord f;
      f.id = id;
      f.name = id;
      f.runtime = "node";
      f.state = "ready";
      ASSERT_TRUE(store_->PutFunction(f));
    }
  }
  void TearDown() override {
    store_.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) unlink((path_ + suffix).c_str());
  }
  std::vector<std::string> StoredIds(const std::string& function_id) {
    auto listed = store_->ListInvocations(function_id, 1000, 0, "");
    EXPECT_TRUE(listed);
    std::vector<std::string> ids;
    for (const auto& r : *listed) ids.push_back(r.id);
    return ids;
  }

  std::string path_;
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(InvocationWriterRetentionTest, KeepsTheNewestRecordsOfEachFunction) {
  InvocationWriter writer(*store_, 3);
  for (int i = 0; i < 10; ++i) writer.Add(Record(fmt::format("a{}", i), "f1"));
  writer.Add(Record("b0", "f2"));
  writer.Add(Record("b1", "f2"));
  writer.Flush();
  EXPECT_EQ(StoredIds("f1"), (std::vector<std::string>{"a9", "a8", "a7"}));
  EXPECT_EQ(StoredIds("f2"), (std::vector<std::string>{"b1", "b0"}));
  EXPECT_EQ(writer.written(), 12u);
  EXPECT_EQ(writer.pruned(), 7u);

  // Later batches keep trimming to the newest three.
  for (int i = 10; i < 15; ++i) writer.Add(Record(fmt::format("a{}", i), "f1"));
  writer.Flush();
  EXPECT_EQ(StoredIds("f1"), (std::vector<std::string>{"a14", "a13", "a12"}));
  EXPECT_EQ(writer.pruned(), 12u);
}

TEST_F(InvocationWriterRetentionTest, KeepingNoneDeletesWhatWasStored) {
  ASSERT_TRUE(store_->PutInvocations({Record("old0", "f1"), Record("old1", "f1")}));
  InvocationWriter writer(*store_, 0);
  writer.Add(Record("new", "f1"));
  writer.Flush();
  EXPECT_TRUE(StoredIds("f1").empty());
  EXPECT_EQ(writer.written(), 0u);
  EXPECT_EQ(writer.pruned(), 2u);
}

TEST(CapRecordFields, CutsLargePayloadsAndNotesTheirSize) {
  InvocationRecord r = Record("i", "f");
  r.event_json = '"' + std::string(100, 'e') + '"';
  r.response_json = R"({"ok":1})";
  r.logs = {"aaaa", "bbbb", "cccc"};
  CapRecordFields(r, 10);
  EXPECT_EQ(r.event_json, '"' + std::string(9, 'e'));
  EXPECT_EQ(r.event_size, 102);
  // Small enough: whole, no size.
  EXPECT_EQ(r.response_json, R"({"ok":1})");
  EXPECT_EQ(r.response_size, std::nullopt);
  // Logs keep their last lines that fit.
  EXPECT_EQ(r.logs, (std::vector<std::string>{"bbbb", "cccc"}));
  EXPECT_EQ(r.logs_size, 12);
}

TEST(CapRecordFields, CutsAtCharacterBoundariesAndKeepsTheEndOfAnOverlongLastLine) {
  InvocationRecord r = Record("i", "f");
  r.event_json = "\"\xc3\xa9\xc3\xa9\xc3\xa9\"";  // "ééé": 8 bytes
  r.logs = {"first", "0123456789\xe2\x9c\x93"};   // a line of 13 bytes ending in ✓
  CapRecordFields(r, 4);
  EXPECT_EQ(r.event_json, "\"\xc3\xa9");  // not half an é
  EXPECT_EQ(r.event_size, 8);
  EXPECT_EQ(r.logs, (std::vector<std::string>{"9\xe2\x9c\x93"}));
  EXPECT_EQ(r.logs_size, 18);
  InvocationRecord uncapped = Record("i", "f");
  uncapped.event_json = std::string(1000, '1');
  CapRecordFields(uncapped, 0);  // 0: no cap
  EXPECT_EQ(uncapped.event_json.size(), 1000u);
  EXPECT_EQ(uncapped.event_size, std::nullopt);
}

TEST_F(InvocationWriterRetentionTest, StoresLargePayloadsCutWithTheirSize) {
  InvocationWriter writer(*store_, RecordLimits{.max_field_bytes = 1024});
  InvocationRecord r = Record("big", "f1");
  r.event_json = '"' + std::string(3 << 20, 'x') + '"';
  r.response_json = r.event_json;
  writer.Add(std::move(r));
  writer.Flush();
  auto stored = store_->GetInvocation("big");
  ASSERT_TRUE(stored) << stored.error().message;
  EXPECT_EQ(stored->event_json.size(), 1024u);
  EXPECT_EQ(stored->event_size, (3 << 20) + 2);
  EXPECT_EQ(stored->response_json.size(), 1024u);
  EXPECT_EQ(stored->response_size, (3 << 20) + 2);
}

// 300 records of 48 KiB (14 MB) through a 2 MiB budget: the database's pages in use stay under it,
// the newest records are kept, and the writer counts what it evicted.
TEST_F(InvocationWriterRetentionTest, KeepsTheDatabaseWithinItsByteBudget) {
  constexpr uint64_t kBudget = 2 << 20;
  InvocationWriter writer(*store_, RecordLimits{.max_total_bytes = kBudget});
  for (int i = 0; i < 300; ++i) {
    InvocationRecord r = Record(fmt::format("r{:03}", i), i % 2 ? "f1" : "f2");
    r.event_json = '"' + std::string(48 << 10, 'x') + '"';
    r.invoked_at_ms = i;
    writer.Add(std::move(r));
    if (i % 20 == 19) writer.Flush();
  }
  writer.Flush();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  auto pragma = [db](const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
    int64_t value = -1;
    if (sqlite3_step(stmt) == SQLITE_ROW) value = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return value;
  };
  const int64_t in_use =
      (pragma("PRAGMA page_count") - pragma("PRAGMA freelist_count")) * pragma("PRAGMA page_size");
  sqlite3_close(db);
  EXPECT_LE(static_cast<uint64_t>(in_use), kBudget);
  EXPECT_GT(writer.evicted(), 200u);
  EXPECT_EQ(writer.pruned(), writer.evicted());
  EXPECT_TRUE(store_->GetInvocation("r299"));
  EXPECT_FALSE(store_->GetInvocation("r000"));
}

}  // namespace
}  // namespace wisp::store
