#include "wisp/store/invocation_writer.h"

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>

#include <fmt/format.h>
#include <gtest/gtest.h>

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

  Result<void> PutFunction(const FunctionRecord&) override { return {}; }
  Result<void> DeleteFunction(const std::string&) override { return {}; }
  Result<std::vector<FunctionRecord>> ListFunctions() override { return {}; }
  Result<void> PutInvocations(const std::vector<InvocationRecord>& records) override {
    std::lock_guard lock(mutex);
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

  std::mutex mutex;
  std::condition_variable pruned;
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

}  // namespace
}  // namespace wisp::store
