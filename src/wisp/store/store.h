// Store: where functions and invocation records last. SQLite now (SqliteStore); PostgreSQL for
// clusters later, behind the same interface.
//
// Thread rules: implementations are thread-safe; every method blocks on disk, so callers on an
// io thread must run them on the worker pool.
#pragma once

#include <cstdint>
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
};

struct PruneResult {
  uint64_t deleted = 0;
  // Functions that may still hold more records than they keep: the budget ran out first.
  std::vector<std::string> unfinished;
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
  // Deletes the oldest invocation records of each function in `function_ids` beyond its newest
  // `options.keep`, in one transaction of at most `options.max_deleted` deletions: a long
  // backlog is trimmed over several calls instead of holding the store through one long delete.
  virtual Result<PruneResult> PruneInvocations(const std::vector<std::string>& function_ids,
                                               const PruneOptions& options) = 0;
};

}  // namespace wisp::store
