// SqliteStore: the embedded store, one SQLite database in WAL mode.
//
// Thread rules: any thread; one connection serialised by a mutex (the store is off the hot
// path: invocation records arrive in batches from InvocationWriter).
//
// Space: the file is created owner-only (0600, also an older one's mode is tightened at open),
// in auto_vacuum=INCREMENTAL mode (an older file is converted by one VACUUM at open), so that
// ReclaimSpace can give deleted records' pages back to the file system.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "wisp/common/spare_time.h"
#include "wisp/store/api_key_store.h"
#include "wisp/store/schedule_store.h"
#include "wisp/store/store.h"

struct sqlite3;

namespace wisp::store {

class Statement;

class SqliteStore final : public Store, public ApiKeyStore, public ScheduleStore {
 public:
  // Opens (creating if needed) the database at `path` and brings its schema up to date.
  static Result<std::unique_ptr<SqliteStore>> Open(const std::string& path);
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // Functions, versions and aliases (sqlite_functions.cc).
  Result<int64_t> CreateFunction(const FunctionRecord& function) override;
  Result<int64_t> UpdateFunction(const FunctionRecord& function,
                                 int64_t expected_revision) override;
  Result<void> PutFunction(const FunctionRecord& function) override;
  Result<void> RecordActivity(const std::string& id, int64_t last_invoked_at_ms) override;
  Result<void> DeleteFunction(const std::string& id) override;
  Result<FunctionRecord> GetFunction(const std::string& id) override;
  Result<std::vector<FunctionRecord>> ListFunctions() override;
  Result<int64_t> LatestRevision() override;
  Result<std::vector<FunctionChange>> Changes(int64_t since_revision, int limit) override;
  Result<VersionRecord> PublishVersion(const VersionRecord& version) override;
  Result<std::vector<VersionRecord>> ListVersions(const std::string& function_id) override;
  Result<void> DeleteVersion(const std::string& function_id, int number) override;
  Result<void> PutAlias(const AliasRecord& alias, bool create,
                        const std::optional<std::string>& expected_revision_id) override;
  Result<std::vector<AliasRecord>> ListAliases(const std::string& function_id) override;
  Result<void> DeleteAlias(const std::string& function_id, const std::string& name) override;
  Result<void> PutInvocations(const std::vector<InvocationRecord>& records) override;
  Result<std::vector<InvocationRecord>> ListInvocations(const std::string& function_id, int limit,
                                                        int offset,
                                                        const std::string& status) override;
  Result<std::vector<InvocationRecord>> QueryInvocations(const InvocationQuery& query) override;
  Result<InvocationRecord> GetInvocation(const std::string& id) override;
  Result<PruneResult> PruneInvocations(const std::vector<std::string>& function_ids,
                                       const PruneOptions& options) override;
  Result<ReclaimResult> ReclaimSpace(uint64_t keep_free_bytes, uint64_t max_bytes) override;
  void RaiseOnLockWait(SpareTimePriority* writer) override { mutex_.RaiseOnWait(writer); }

  // ApiKeyStore (sqlite_api_keys.cc).
  Result<void> PutApiKey(const ApiKeyRecord& key) override;
  Result<std::vector<ApiKeyRecord>> ListApiKeys() override;
  Result<void> DeleteApiKey(const std::string& id) override;

  // ScheduleStore (sqlite_schedules.cc).
  Result<std::optional<int64_t>> LastFiring(const std::string& function_id,
                                            const std::string& schedule) override;
  Result<bool> ClaimFiring(const std::string& function_id, const std::string& schedule,
                           std::optional<int64_t> expected, int64_t slot_ms) override;
  Result<void> ForgetFiring(const std::string& function_id, const std::string& schedule) override;

 private:
  // The api_keys table (sqlite_api_keys.cc), created at Open.
  static const char* const kApiKeySchema;
  // The schedule_firings table (sqlite_schedules.cc), created at Open after the functions table.
  static const char* const kScheduleSchema;
  // The change log, versions and aliases (sqlite_functions.cc), created at Open after the
  // functions table has its added columns.
  static const char* const kFunctionSchema;
  explicit SqliteStore(sqlite3* db);
  Result<void> Exec(const char* sql);
  // These need mutex_ held.
  // The database's pages in use (of the open transaction, if any), in bytes.
  Result<uint64_t> BytesInUse();
  // Within PruneInvocations' transaction: deletes the oldest records of any function while the
  // byte budget calls for it.
  Result<void> EvictOverBudget(const PruneOptions& options, PruneResult& result);
  // Within a write transaction: logs a change of the function and returns its revision.
  Result<int64_t> LogChange(const std::string& function_id, const char* kind);
  // Writes the function's row (insert or replace) with `revision`.
  Result<void> WriteFunctionRow(const FunctionRecord& function, int64_t revision, bool insert);

  // Held by the record writer through its batches, in spare time: a waiter raises it.
  RaisingMutex mutex_;
  sqlite3* db_;
  // Prepared once: every batch of invocation records uses them, and parsing the SQL per batch
  // would cost more than binding a row.
  std::unique_ptr<Statement> insert_invocation_;
  std::unique_ptr<Statement> replace_invocation_;
  std::unique_ptr<Statement> function_exists_;
  std::unique_ptr<Statement> count_invocations_;
  std::unique_ptr<Statement> delete_oldest_invocations_;
  std::unique_ptr<Statement> evict_oldest_invocations_;
  std::unique_ptr<Statement> page_count_;
  std::unique_ptr<Statement> freelist_count_;
  uint64_t page_size_ = 4096;
  // Over the byte budget, and not yet down to its low-water mark.
  bool evicting_ = false;
  // Invocation records per function, for functions counted since Open (only this store writes
  // the table). Knowing the count, pruning deletes the oldest excess directly instead of walking
  // past the newest `keep` records of the index to find where the excess starts, on every batch.
  std::unordered_map<std::string, uint64_t> invocation_counts_;
};

}  // namespace wisp::store
