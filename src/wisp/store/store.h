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

  // Inserts or replaces the function with this id. A name taken by another id is
  // kAlreadyExists.
  virtual Result<void> PutFunction(const FunctionRecord& function) = 0;
  // Deletes the function and every invocation record of it. Unknown ids are kNotFound.
  virtual Result<void> DeleteFunction(const std::string& id) = 0;
  virtual Result<std::vector<FunctionRecord>> ListFunctions() = 0;

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
};

}  // namespace wisp::store
