#include "wisp/store/invocation_writer.h"

#include <mutex>

#include <gtest/gtest.h>

namespace wisp::store {
namespace {

// A store that records batches in memory: the writer's batching is what is under test.
class RecordingStore final : public Store {
 public:
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
  Result<std::vector<InvocationRecord>> ListInvocations(const std::string&, int, int) override {
    return {};
  }

  std::mutex mutex;
  std::vector<size_t> batches;
  std::vector<std::string> ids;
  bool fail_next = false;
};

TEST(InvocationWriter, FlushWaitsForEveryRecordInOrder) {
  RecordingStore store;
  InvocationWriter writer(store);
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
  InvocationWriter writer(store);
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
    InvocationWriter writer(store);
    for (int i = 0; i < 10; ++i) writer.Add(InvocationRecord{});
  }
  EXPECT_EQ(store.ids.size(), 10u);
}

}  // namespace
}  // namespace wisp::store
