// Store: where functions and invocation records last. SQLite now (SqliteStore); PostgreSQL for
// clusters later, behind the same interface.
//
// Thread rules: implementations are thread-safe; every method blocks on disk, so callers on an
// io thread must run them on the worker pool.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "wisp/common/result.h"
#include "wisp/common/spare_time.h"
#include "wisp/store/records.h"

namespace wisp::store {

struct PruneOptions {
  uint32_t keep = 0;  // the newest records of each function
  // Records beyond `keep` stay until there are this many: deleted in a run, they cost one write
  // of the index page that holds them instead of one write per record.
  uint32_t min_excess = 1;
  uint32_t max_deleted = 0;  // in all, per call
  // The node-wide byte budget: once the database's pages in use exceed it, the oldest records of
  // every function are deleted until the pages in use are at most 90% of it (deleting in runs,
  // as min_excess). Function definitions count toward it but are never deleted. 0: no budget.
  uint64_t max_bytes = 0;
};

struct PruneResult {
  uint64_t deleted = 0;  // in all, including `evicted`
  uint64_t evicted = 0;  // by the byte budget
  // Functions that may still hold more records than they keep: the budget ran out first.
  std::vector<std::string> unfinished;
  // The database is still over its byte budget: max_deleted ran out first.
  bool over_budget = false;
};

struct ReclaimResult {
  uint64_t freed_bytes = 0;  // returned to the file system by this call
  bool unfinished = false;   // more than the kept free space is still free
};

// Which invocation records to read. Newest invoked first (ties: the later written first).
struct InvocationQuery {
  std::string function_id{};          // empty: every function
  std::string status{};               // empty: every status
  std::optional<bool> async{};        // only records of async (true) or sync (false) calls
  std::optional<int64_t> since_ms{};  // invoked at or after
  std::optional<int64_t> until_ms{};  // invoked before
  int limit = 100;
  int offset = 0;
  // Fill only id, function_id, request_id, status, async and invoked_at_ms: for merging pages
  // of several sources before reading the few records a page shows.
  bool keys_only = false;
};

class Store {
 public:
  virtual ~Store() = default;

  // Functions: the store decides names, versions and the order of updates, so that several
  // wispd processes (a cluster, one day) can share it. Every write of a function, its versions
  // or its aliases takes the next store-wide revision and is logged (Changes).

  // Stores a new function; returns its revision. A name or id already taken is kAlreadyExists.
  virtual Result<int64_t> CreateFunction(const FunctionRecord& function) = 0;
  // Replaces the function if its stored revision is still `expected_revision` (compare and
  // swap); returns the new revision. Someone else's write in between is kConflict; an unknown
  // id kNotFound; a name taken by another function kAlreadyExists.
  virtual Result<int64_t> UpdateFunction(const FunctionRecord& function,
                                         int64_t expected_revision) = 0;
  // Inserts or replaces without comparing: imports and tools (bench) only.
  virtual Result<void> PutFunction(const FunctionRecord& function) = 0;
  // Records when the function was last invoked: activity, not a change (no revision).
  virtual Result<void> RecordActivity(const std::string& id, int64_t last_invoked_at_ms) = 0;
  // Deletes the function with its versions, aliases and invocation records. Unknown ids are
  // kNotFound.
  virtual Result<void> DeleteFunction(const std::string& id) = 0;
  virtual Result<FunctionRecord> GetFunction(const std::string& id) = 0;
  virtual Result<std::vector<FunctionRecord>> ListFunctions() = 0;
  // The newest revision written (0 for an empty store).
  virtual Result<int64_t> LatestRevision() = 0;
  // What changed after `since_revision`, oldest first, at most `limit` entries.
  virtual Result<std::vector<FunctionChange>> Changes(int64_t since_revision, int limit) = 0;

  // Publishes `version.config` as the function's next version number (never reused, also after
  // a delete) and returns the stored version. kNotFound if the function is gone.
  virtual Result<VersionRecord> PublishVersion(const VersionRecord& version) = 0;
  // Oldest first.
  virtual Result<std::vector<VersionRecord>> ListVersions(const std::string& function_id) = 0;
  // kConflict while an alias points at it; kNotFound if there is no such version.
  virtual Result<void> DeleteVersion(const std::string& function_id, int number) = 0;
  // Creates (`create`) or replaces an alias. Its versions must exist (kNotFound); a create of
  // a taken name is kAlreadyExists, a replace of an unknown one kNotFound. With
  // `expected_revision_id` set, a replace whose stored revision id differs is kConflict.
  virtual Result<void> PutAlias(const AliasRecord& alias, bool create,
                                const std::optional<std::string>& expected_revision_id) = 0;
  virtual Result<std::vector<AliasRecord>> ListAliases(const std::string& function_id) = 0;
  virtual Result<void> DeleteAlias(const std::string& function_id, const std::string& name) = 0;

  // Writes a batch of invocation records in one transaction. Records of functions that no
  // longer exist are dropped.
  virtual Result<void> PutInvocations(const std::vector<InvocationRecord>& records) = 0;
  // Newest first; only those with `status` (success, error, timeout) unless it is empty.
  virtual Result<std::vector<InvocationRecord>> ListInvocations(const std::string& function_id,
                                                                int limit, int offset,
                                                                const std::string& status) = 0;
  virtual Result<std::vector<InvocationRecord>> QueryInvocations(const InvocationQuery& query) = 0;
  // The record with this id (a sync call's id is its request id). kNotFound if there is none.
  virtual Result<InvocationRecord> GetInvocation(const std::string& id) = 0;
  // Deletes the oldest invocation records of each function in `function_ids` beyond its newest
  // `options.keep`, in one transaction of at most `options.max_deleted` deletions: a long
  // backlog is trimmed over several calls instead of holding the store through one long delete.
  virtual Result<PruneResult> PruneInvocations(const std::vector<std::string>& function_ids,
                                               const PruneOptions& options) = 0;
  // Returns free pages beyond `keep_free_bytes` (which later records reuse) to the file system,
  // at most `max_bytes` of them per call: the file shrinks after deletes without one long stop.
  virtual Result<ReclaimResult> ReclaimSpace(uint64_t keep_free_bytes, uint64_t max_bytes) = 0;

  // The writer of invocation records works in spare time and may hold the store's lock meanwhile:
  // a thread that would wait for the lock raises `writer` first (nullptr: none). `writer` must
  // outlive its registration. A store without a lock of its own ignores it.
  virtual void RaiseOnLockWait(SpareTimePriority* writer) { (void)writer; }
};

}  // namespace wisp::store
