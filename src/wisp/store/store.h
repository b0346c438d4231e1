// Store: where functions and invocation records last. SQLite now (SqliteStore); PostgreSQL for
// clusters later, behind the same interface.
//
// Thread rules: implementations are thread-safe; every method blocks on disk, so callers on an
// io thread must run them on the worker pool.
#pragma once

#include <string>
#include <vector>

#include "wisp/common/result.h"
#include "wisp/store/records.h"

namespace wisp::store {

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
  // Newest first.
  virtual Result<std::vector<InvocationRecord>> ListInvocations(const std::string& function_id,
                                                                int limit, int offset) = 0;
};

}  // namespace wisp::store
