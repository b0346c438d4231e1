// InvocationWriter: takes invocation records off the caller's path and writes them to the
// store in batches (one transaction per batch), on a thread of its own. The writer wakes every
// kBatchInterval or when a batch is full, not per record: a thread wake-up and a transaction per
// call would cost more than the call itself.
//
// Thread rules: Add and Flush may be called from any thread. Add never blocks on disk: it
// takes a mutex for a vector push. The store is only touched by the writer thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "wisp/store/store.h"

namespace wisp::store {

class InvocationWriter {
 public:
  // A transaction has a fixed cost (~0.3 ms of CPU: the WAL frames of the pages every commit
  // touches, file locks, the wake-up) that 100 ms shares among the hundreds of records a node
  // serves in that time. Nobody waits for it: readers of records call Flush first.
  static constexpr std::chrono::milliseconds kBatchInterval{100};
  static constexpr size_t kFullBatch = 512;

  explicit InvocationWriter(Store& store);
  ~InvocationWriter();  // writes what is queued, then stops
  InvocationWriter(const InvocationWriter&) = delete;
  InvocationWriter& operator=(const InvocationWriter&) = delete;

  void Add(InvocationRecord record);
  // Blocks until every record added before the call is in the store.
  void Flush();

  uint64_t written() const;
  uint64_t failed_batches() const;

 private:
  void Run();

  Store& store_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;     // the writer: records arrived, or stop
  std::condition_variable written_;  // flushers: a batch is done
  std::vector<InvocationRecord> queue_;
  uint64_t added_ = 0;
  uint64_t done_ = 0;  // records handled (written or failed)
  uint64_t written_count_ = 0;
  uint64_t failed_batches_ = 0;
  uint64_t flush_requested_ = 0;  // Flush() wants everything up to this count written now
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace wisp::store
