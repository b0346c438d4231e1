// EmbeddedQueue: the Queue of a single node, in a SQLite file of its own (WAL,
// synchronous=FULL: every commit is fsync'd).
//
// Pending invocations (queued or running) live in memory too, indexed per function by due
// time, so the dispatcher never reads the disk. Every change goes to one writer thread, which
// commits everything that arrived while its previous commit was being fsync'd as one
// transaction (group commit): a burst of accepts shares one fsync.
//
// Leases live in memory only: one process uses the file, so when it ends every lease it held
// ends with it, and Open takes back whatever was running. The lease methods never suspend (no
// disk I/O: a claim's or result's write goes to the writer and is not awaited; a renewal
// writes nothing), so they complete on the caller's thread at once.
//
// Thread rules: as Queue. One mutex guards the memory state; it is never held across disk I/O.
// The writer thread owns the write connection; Get/List/Requeue use a read connection under
// a mutex of its own.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "wisp/queue/queue.h"

struct sqlite3;

namespace wisp::queue {

class EmbeddedQueue final : public Queue {
 public:
  // Opens (creating if needed) the queue at `path` and loads its pending invocations. Those that
  // were running when the previous process ended (their leases died with it) are queued
  // again, due at once (`now_ms`).
  static Result<std::unique_ptr<EmbeddedQueue>> Open(const std::string& path, int64_t now_ms);
  ~EmbeddedQueue() override;  // writes what is pending, then closes
  EmbeddedQueue(const EmbeddedQueue&) = delete;
  EmbeddedQueue& operator=(const EmbeddedQueue&) = delete;

  void Enqueue(Invocation invocation, DoneCallback done) override;
  asio::awaitable<Result<std::vector<Invocation>>> Claim(ClaimRequest request) override;
  std::optional<int64_t> NextDue(const CapacityFn& capacity) const override;
  asio::awaitable<Result<Lease>> Renew(Lease lease, int64_t now_ms, int64_t lease_ms) override;
  asio::awaitable<Result<Invocation>> Finish(Lease lease, AttemptResult result, RetryPolicy policy,
                                             int64_t now_ms) override;
  asio::awaitable<Result<void>> Release(Lease lease, int64_t due_ms) override;
  asio::awaitable<Result<void>> DeadLetter(Lease lease, std::string reason,
                                           int64_t now_ms) override;
  Result<Invocation> Requeue(const std::string& id, int64_t now_ms) override;
  Result<Invocation> Get(const std::string& id) override;
  Result<std::vector<Invocation>> List(const ListFilter& filter) override;
  void Flush() override;
  QueueStats stats() const override;

 private:
  using DueKey = std::pair<int64_t, uint64_t>;  // (due time, arrival order)
  struct Entry {
    Invocation invocation;
    uint64_t last_write = 0;  // sequence number of its newest write
    DueKey due_key{};         // valid while queued
    DueKey expiry_key{};      // valid while running: (lease expiry, order)
  };
  struct Write {
    uint64_t seq = 0;
    bool insert = false;    // a new invocation, with its event; else an update without it
    Invocation invocation;  // an update's copy has no event
    DoneCallback done;
  };

  EmbeddedQueue(sqlite3* write_db, sqlite3* read_db);
  Result<void> Load(int64_t now_ms);
  void RunWriter();
  // One transaction; `outcomes[i]` is the result of writes[i] (an insert of a taken id fails
  // alone; a failed commit fails them all).
  Result<void> WriteBatch(std::vector<Write>& writes, std::vector<Result<void>>& outcomes);
  Result<Invocation> ReadOne(const std::string& id);
  // The bodies of the lease methods: plain functions, so the coroutines only wrap them.
  Result<std::vector<Invocation>> ClaimNow(const ClaimRequest& request);
  Result<Lease> RenewNow(const Lease& lease, int64_t now_ms, int64_t lease_ms);
  Result<Invocation> FinishNow(const Lease& lease, const AttemptResult& result,
                               const RetryPolicy& policy, int64_t now_ms);
  Result<void> ReleaseNow(const Lease& lease, int64_t due_ms);
  Result<void> DeadLetterNow(const Lease& lease, std::string reason, int64_t now_ms);

  // These need mutex_ held.
  uint64_t QueueWrite(const Entry& entry, DoneCallback done = nullptr);
  void MakeDue(Entry& entry, int64_t due_ms);
  void RemoveDue(Entry& entry);
  // The entry running under `lease`, or why the lease is not held.
  Result<Entry*> Held(const Lease& lease);
  void EndLease(Entry& entry);
  // Queues again the invocations whose lease expired by `now_ms`.
  void TakeBackExpired(int64_t now_ms);

  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> live_;  // pending, and finished ones not yet written
  // Queued invocations per function, by due time.
  std::unordered_map<std::string, std::map<DueKey, std::string>> due_;
  // Running invocations, by lease expiry.
  std::map<DueKey, std::string> expiries_;
  uint64_t lease_tokens_ = 0;  // the last token handed out
  uint64_t order_ = 0;
  uint64_t queued_ = 0;
  uint64_t running_ = 0;
  uint64_t dead_letters_ = 0;
  uint64_t accepted_ = 0;
  uint64_t commits_ = 0;

  std::vector<Write> writes_;
  uint64_t last_seq_ = 0;              // the newest write handed to the writer
  uint64_t committed_seq_ = 0;         // every write up to this one is handled
  std::condition_variable wake_;       // the writer: writes arrived, or stop
  std::condition_variable committed_;  // Flush and Requeue: a batch is handled
  bool stopping_ = false;

  sqlite3* write_db_;
  std::mutex read_mutex_;
  sqlite3* read_db_;
  std::thread writer_;
};

}  // namespace wisp::queue
