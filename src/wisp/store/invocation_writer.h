// InvocationWriter: takes invocation records off the caller's path and writes them to the
// store in batches (one transaction per batch), on a thread of its own. The writer wakes every
// kBatchInterval or when a batch is full, not per record: a thread wake-up and a transaction per
// call would cost more than the call itself.
//
// Retention: after each batch it deletes, for every function in the batch, the records older
// than the function's newest `records_per_function`, so the store stays bounded however long
// wispd runs. Up to 1% more (at most 64) wait for the next trim: with hundreds of functions in a
// batch, deleting each one's single excess record every batch writes an index page per record
// (with 500 functions, 8 µs of CPU a record, a third of what writing it costs). A function with a
// backlog beyond what one batch may delete (a database from before retention, or a lowered
// setting) is trimmed over the following wake-ups, kMaxPrunedPerBatch records each.
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
  // Records deleted per wake-up at most, so pruning holds the store briefly. Twice a full batch:
  // a function that received a whole batch is trimmed at once, and a backlog still shrinks.
  static constexpr uint32_t kMaxPrunedPerBatch = 2 * kFullBatch;

  // Keeps the newest `records_per_function` records of each function; 0 keeps none (nothing is
  // written, and records already stored are deleted).
  InvocationWriter(Store& store, uint32_t records_per_function);
  ~InvocationWriter();  // writes what is queued, then stops
  InvocationWriter(const InvocationWriter&) = delete;
  InvocationWriter& operator=(const InvocationWriter&) = delete;

  void Add(InvocationRecord record);
  // Blocks until every record added before the call is in the store.
  void Flush();

  uint64_t written() const;
  uint64_t failed_batches() const;
  uint64_t pruned() const;  // records deleted by retention

 private:
  void Run();

  Store& store_;
  const PruneOptions retention_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;     // the writer: records arrived, or stop
  std::condition_variable written_;  // flushers: a batch is done
  std::vector<InvocationRecord> queue_;
  uint64_t added_ = 0;
  uint64_t done_ = 0;  // records handled (written or failed)
  uint64_t written_count_ = 0;
  uint64_t failed_batches_ = 0;
  uint64_t pruned_ = 0;
  uint64_t flush_requested_ = 0;  // Flush() wants everything up to this count written now
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace wisp::store
