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
// Byte budget: with `max_total_bytes` set, each batch's prune also deletes the oldest records of
// every function while the database is over that budget (Store::PruneInvocations), and freed
// pages beyond a small reserve go back to the file system in bounded steps (ReclaimSpace), in
// the writer's wake-ups after the batch, also while no call arrives.
//
// Payload caps: Add cuts an event or response longer than `max_field_bytes` to its first bytes
// and logs to their last lines within it, noting the original size in the record (event_size,
// response_size, logs_size). Only the record is cut: the caller already has the whole result.
//
// Spare time: the writer's thread runs at SCHED_IDLE (SpareTimePriority says why), and at normal
// priority while anyone waits for it: a Flush, a thread waiting for the store's lock, or a queue
// beyond kSpareTimeMaxRecords or kSpareTimeMaxBytes (records kept in memory while the CPUs are
// busy with calls). It lowers itself again after a batch that left none of these.
//
// Thread rules: Add and Flush may be called from any thread. Add never blocks on disk: it
// takes a mutex for a vector push (and cuts an oversized payload first). The store is only
// touched by the writer thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "wisp/common/spare_time.h"
#include "wisp/store/store.h"

namespace wisp::store {

struct RecordLimits {
  // The newest records kept of each function; 0 keeps none (nothing is written, and records
  // already stored are deleted).
  uint32_t records_per_function = 10000;
  // Node-wide bytes of the store's database (PruneOptions::max_bytes); 0: no budget.
  uint64_t max_total_bytes = 0;
  // Bytes of an event, a response or a call's logs kept in a record; 0: no cap.
  uint64_t max_field_bytes = 64 << 10;
};

// Cuts `record`'s payloads to `max_field_bytes` each (see RecordLimits), at UTF-8 character
// boundaries, setting the sizes of the fields it cut.
void CapRecordFields(InvocationRecord& record, uint64_t max_field_bytes);

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

  // Free pages kept for the next records when there is no byte budget (with one: the band
  // between the budget and eviction's low-water mark, which the next records fill anyway).
  static constexpr uint64_t kKeepFreeBytes = 8 << 20;
  // Pages given back to the file system per wake-up at most: moving pages holds the store.
  static constexpr uint64_t kReclaimStepBytes = 8 << 20;
  // While no records arrive, how often the writer looks for space to give back (a deleted
  // function frees its records' pages outside the writer).
  static constexpr int kIdleWakeupsPerReclaimCheck = 10;
  // The queue the writer may leave to spare time: a few seconds of calls at this machine's
  // rates, and far less memory than records capped at 64 KiB a field could take.
  static constexpr size_t kSpareTimeMaxRecords = 65536;
  static constexpr uint64_t kSpareTimeMaxBytes = 64 << 20;

  InvocationWriter(Store& store, const RecordLimits& limits);
  // Keeps the newest `records_per_function` records of each function, with no byte budget.
  InvocationWriter(Store& store, uint32_t records_per_function);
  ~InvocationWriter();  // writes what is queued, then stops
  InvocationWriter(const InvocationWriter&) = delete;
  InvocationWriter& operator=(const InvocationWriter&) = delete;

  void Add(InvocationRecord record);
  // Blocks until every record added before the call is in the store.
  void Flush();

  uint64_t written() const;
  uint64_t failed_batches() const;
  uint64_t pruned() const;           // records deleted by retention, including `evicted`
  uint64_t evicted() const;          // records deleted by the byte budget
  uint64_t reclaimed_bytes() const;  // given back to the file system

 private:
  void Run();
  // Needs mutex_ held.
  bool Backlogged() const {
    return queue_.size() >= kSpareTimeMaxRecords || queued_bytes_ >= kSpareTimeMaxBytes;
  }

  Store& store_;
  const PruneOptions retention_;
  const uint64_t max_field_bytes_;
  const uint64_t keep_free_bytes_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;     // the writer: records arrived, or stop
  std::condition_variable written_;  // flushers: a batch is done
  std::vector<InvocationRecord> queue_;
  uint64_t queued_bytes_ = 0;  // queue_'s records, payloads included
  uint64_t added_ = 0;
  uint64_t done_ = 0;  // records handled (written or failed)
  uint64_t written_count_ = 0;
  uint64_t failed_batches_ = 0;
  uint64_t pruned_ = 0;
  uint64_t evicted_ = 0;
  uint64_t reclaimed_bytes_ = 0;
  uint64_t flush_requested_ = 0;  // Flush() wants everything up to this count written now
  bool stopping_ = false;
  SpareTimePriority priority_;  // the writer thread's
  std::thread thread_;
};

}  // namespace wisp::store
