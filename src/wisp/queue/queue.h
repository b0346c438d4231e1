// Queue: the durable queue of asynchronous invocations. An accepted invocation is on disk
// before its caller hears "queued"; it stays in the queue through retries until it succeeds
// or is dead-lettered, and survives a crash of wispd (at least once: an attempt interrupted by
// a crash runs again under the same id).
//
// Claims are leases, so that several nodes can share one queue (Redis, PostgreSQL) and none of
// them has to be up for another's work to finish:
// - Claim hands out due invocations, each running under a Lease: the claimer's name, a fencing
//   token no other claim of that invocation has, and an expiry.
// - The holder renews the lease (Renew) well before it expires for as long as the attempt runs,
//   then ends it with exactly one of Finish (the attempt's result), Release (not an attempt:
//   due again later) or DeadLetter (not an attempt: given up).
// - Once a lease has expired (its holder died, hung or lost the network), the queue may take
//   the invocation back at any moment, and a Claim by anyone does: the attempt counts as
//   "interrupted" (so a function that kills its worker cannot loop forever) and the invocation
//   runs again under the same id, at least once, under a new lease. Until the queue has taken
//   it back, the old holder's calls still succeed.
// - Renew, Finish, Release and DeadLetter are refused (kFailedPrecondition) unless the
//   invocation is still running under the caller's lease (same token): a worker that lost its
//   lease cannot overwrite the result of a newer attempt, nor extend or end it.
// Restarting a node is the same case: the leases its previous process held are dead, and the
// invocations they held become claimable again.
//
// EmbeddedQueue (embedded_queue.h) keeps it in a SQLite file of its own, for one node.
//
// Thread rules: every method may be called from any thread. The lease methods (Claim, Renew,
// Finish, Release, DeadLetter) are coroutines: a networked queue suspends them on its I/O and
// resumes them on the caller's executor; they never block the caller's thread. Enqueue
// completes through its callback. NextDue answers from memory. Get, List, Requeue and Flush
// block on disk, so io threads run them on the worker pool.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "wisp/common/asio.h"
#include "wisp/common/result.h"

namespace wisp::queue {

// Statuses, as the API shows them. Between attempts an invocation is queued again (with
// `error` saying why the last attempt failed and `next_attempt_at_ms` when the next starts).
inline constexpr const char* kQueued = "queued";
inline constexpr const char* kRunning = "running";
inline constexpr const char* kSuccess = "success";
inline constexpr const char* kError = "error";
inline constexpr const char* kTimeout = "timeout";
inline constexpr const char* kDeadLetter = "dead_letter";

// One attempt, as the record's history keeps it.
struct Attempt {
  int number = 0;
  std::string status;  // success | error | timeout | interrupted | throttled
  int64_t started_at_ms = 0;
  int64_t finished_at_ms = 0;
  std::string error;
};

// A claim's hold on one running invocation (see the contract above).
struct Lease {
  std::string invocation_id;
  std::string owner;   // who claimed it (a node's name): for logs and operators
  uint64_t token = 0;  // fencing token: differs between any two claims of the invocation; 0: none
  int64_t expires_at_ms = 0;  // renew or end the attempt before this
};

struct Invocation {
  std::string id;  // also the request id the function sees, on every attempt
  std::string function_id;
  std::string status = kQueued;
  int attempts = 0;  // attempts started
  std::string event_json = "{}";
  std::string headers_json = "{}";  // seed 002's per-call headers, kept for the record
  std::string trace_id;             // the caller's X-Amzn-Trace-Id, for every attempt; or empty
  std::string qualifier;            // the version or alias every attempt runs (empty: $LATEST)
  int64_t timeout_ms = 0;           // per-call timeout; 0: the function's own
  std::string response_json;        // the last attempt's result or error document
  std::vector<std::string> logs;    // the last attempt's log lines
  std::string error;                // why the last attempt failed; empty after a success
  std::string dead_letter_reason;
  std::vector<Attempt> history;
  int version = 0;  // the function version of the last attempt
  int64_t created_at_ms = 0;
  int64_t enqueued_at_ms = 0;  // the event's age counts from here (reset by a requeue)
  int64_t next_attempt_at_ms = 0;
  std::optional<int64_t> started_at_ms;   // of the last attempt
  std::optional<int64_t> finished_at_ms;  // of the last attempt
  int64_t duration_ms = 0;                // of the last attempt
  Lease lease;  // while running: the lease it runs under; empty otherwise (not kept on disk)

  bool pending() const { return status == kQueued || status == kRunning; }
};

// How a function's failed attempts are retried (per function; defaults as AWS Lambda's).
struct RetryPolicy {
  int max_retries = 2;
  int64_t retry_delay_ms = 60'000;  // before the first retry; doubles for each later one
  int64_t max_event_age_ms = 21'600'000;
};

// What one attempt came to.
struct AttemptResult {
  std::string status;  // success | error | timeout
  std::string response_json;
  std::vector<std::string> logs;
  std::string error;  // a one-line summary for failures
  int version = 0;
  int64_t duration_ms = 0;
};

// The retry state machine, for a running invocation whose attempt ended at `now_ms`: success
// ends it; a failure queues it for a retry after retry_delay * 2^(attempts-1), or dead-letters
// it when the retries are used up or the retry would start past the maximum event age.
void ApplyAttempt(Invocation& invocation, const AttemptResult& result, const RetryPolicy& policy,
                  int64_t now_ms);

// Why a queued invocation may not start at `now_ms` (it is older than the maximum event age),
// or nullopt when it may.
std::optional<std::string> ExpiredReason(const Invocation& invocation, const RetryPolicy& policy,
                                         int64_t now_ms);
// Why a claimed invocation may not run: its attempts, this one included, are more than the
// policy allows (1 + max_retries), which happens only when earlier attempts were interrupted
// (a crash, a lapsed lease) instead of failing; or nullopt when it may. Without this, a
// function that kills or hangs its worker would run again until its maximum age.
std::optional<std::string> ExhaustedReason(const Invocation& claimed, const RetryPolicy& policy);

// Newest created first (ties: the later accepted first).
struct ListFilter {
  std::string function_id{};  // empty: every function
  std::string status{};       // empty: every status
  int limit = 100;
  int offset = 0;
  std::optional<int64_t> since_ms{};  // created at or after
  std::optional<int64_t> until_ms{};  // created before
  // Fill only id, function_id, status (as on disk) and created_at_ms: for merging pages of
  // several sources before reading the few invocations a page shows.
  bool keys_only = false;
};

struct QueueStats {
  uint64_t queued = 0;
  uint64_t running = 0;
  uint64_t accepted = 0;      // durable accepts since start
  uint64_t commits = 0;       // fsync'd batches since start
  uint64_t dead_letters = 0;  // in the dead-letter queue now
};

// How many more invocations of this function may start now.
using CapacityFn = std::function<size_t(const std::string& function_id)>;

struct ClaimRequest {
  std::string owner;  // the claimer's name, unique among the nodes sharing the queue
  int64_t now_ms = 0;
  int64_t lease_ms = 0;  // how long each lease lasts unless renewed; > 0
  // Asked at most once per function with due work, on the caller's executor, only until
  // Claim completes.
  CapacityFn capacity;
};

class Queue {
 public:
  using DoneCallback = std::function<void(Result<void>)>;
  using CapacityFn = queue::CapacityFn;

  virtual ~Queue() = default;

  // Accepts a new invocation (status queued). `done` runs on a queue thread once it is on disk
  // (fsync'd), or with the error that kept it off; only then may the caller say "accepted".
  // kAlreadyExists if the id is taken.
  virtual void Enqueue(Invocation invocation, DoneCallback done) = 0;

  // Claims due invocations, in order of due time within each function and at most
  // capacity(function_id) per function: each becomes running under a new lease (returned in
  // its `lease`), its attempts one higher. Invocations whose lease expired by `now_ms` are
  // taken back first (see above), so they are among those claimable. kInvalidArgument for an
  // empty owner or a lease_ms that is not positive.
  virtual asio::awaitable<Result<std::vector<Invocation>>> Claim(ClaimRequest request) = 0;
  // When to claim next: the earliest due time, or lease expiry, among invocations of functions
  // with capacity; nullopt when nothing will be due without a new Enqueue or Requeue. A
  // networked queue, which cannot see other nodes' enqueues, answers at most its poll interval.
  virtual std::optional<int64_t> NextDue(const CapacityFn& capacity) const = 0;

  // Extends `lease` to now_ms + lease_ms; returns it with its new expiry (same token).
  virtual asio::awaitable<Result<Lease>> Renew(Lease lease, int64_t now_ms, int64_t lease_ms) = 0;
  // Records the end of the attempt run under `lease` and applies the retry policy; returns
  // the invocation as it now is.
  virtual asio::awaitable<Result<Invocation>> Finish(Lease lease, AttemptResult result,
                                                     RetryPolicy policy, int64_t now_ms) = 0;
  // Puts the invocation back without counting its attempt (the function was at its
  // concurrency limit, or wispd is stopping); it becomes due at `due_ms`.
  virtual asio::awaitable<Result<void>> Release(Lease lease, int64_t due_ms) = 0;
  // Moves the invocation to the dead-letter queue without running it (the function was
  // deleted, or the event is too old): the claim's attempt does not count.
  virtual asio::awaitable<Result<void>> DeadLetter(Lease lease, std::string reason,
                                                   int64_t now_ms) = 0;

  // Blocking. Queues a dead-lettered invocation again (attempts from zero, age from now);
  // returns once that is on disk. kFailedPrecondition unless it is dead-lettered.
  virtual Result<Invocation> Requeue(const std::string& id, int64_t now_ms) = 0;
  // Blocking. kNotFound for an unknown id.
  virtual Result<Invocation> Get(const std::string& id) = 0;
  // Blocking. Newest first; sees every change made before the call.
  virtual Result<std::vector<Invocation>> List(const ListFilter& filter) = 0;
  // Blocking: returns once every change made before the call is on disk.
  virtual void Flush() = 0;

  virtual QueueStats stats() const = 0;
};

}  // namespace wisp::queue
