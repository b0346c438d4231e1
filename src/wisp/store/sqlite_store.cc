#include "wisp/store/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "wisp/common/defer.h"
#include "wisp/common/json_text.h"
#include "wisp/store/sqlite_statement.h"

namespace wisp::store {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS functions (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  runtime TEXT NOT NULL,
  handler TEXT NOT NULL,
  code TEXT NOT NULL,
  timeout_seconds INTEGER NOT NULL,
  memory_mb INTEGER NOT NULL,
  vcpu REAL NOT NULL,
  env_json TEXT NOT NULL,
  version INTEGER NOT NULL,
  state TEXT NOT NULL,
  error TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  last_invoked_at_ms INTEGER
);
CREATE TABLE IF NOT EXISTS invocations (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  function_id TEXT NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
  request_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  status TEXT NOT NULL,
  duration_ms INTEGER NOT NULL,
  memory_used_mb INTEGER,
  event_json TEXT NOT NULL,
  response_json TEXT NOT NULL,
  logs_json TEXT NOT NULL,
  invoked_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS invocations_by_function ON invocations(function_id, seq);
)sql";

// An invocation record, after "INSERT OR IGNORE" (a new id) or "INSERT OR REPLACE" (a stored
// id: the retries of an asynchronous invocation share its id, and its record is the last
// attempt's). Trying IGNORE first tells new records from replaced ones, which keeps the counts
// of records per function exact. INSERT ... SELECT drops records whose function was deleted
// meanwhile instead of failing the whole batch on the foreign key.
constexpr const char* kInvocationInsertTail = R"sql(
  INTO invocations (id, function_id, request_id, version, status, duration_ms, memory_used_mb,
    event_json, response_json, logs_json, invoked_at_ms, queue_wait_ms, init_duration_ms)
  SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13
  WHERE EXISTS (SELECT 1 FROM functions WHERE id = ?2))sql";

// Both walk the (function_id, seq) index and read no more than ?2 rows of it.
constexpr const char* kCountInvocations = R"sql(
  SELECT count(*) FROM (SELECT 1 FROM invocations WHERE function_id = ?1 LIMIT ?2))sql";
constexpr const char* kDeleteOldestInvocations = R"sql(
  DELETE FROM invocations WHERE seq IN
    (SELECT seq FROM invocations WHERE function_id = ?1 ORDER BY seq LIMIT ?2))sql";

// Columns added after the first schema: databases created before them get them on open.
constexpr AddedColumn kAddedFunctionColumns[] = {
    {"style", "TEXT NOT NULL DEFAULT 'handler'"},
    {"max_retries", "INTEGER NOT NULL DEFAULT 2"},
    {"retry_delay_seconds", "INTEGER NOT NULL DEFAULT 60"},
    {"max_event_age_seconds", "INTEGER NOT NULL DEFAULT 21600"},
    {"max_concurrency", "INTEGER NOT NULL DEFAULT 100"},
    {"min_instances", "INTEGER NOT NULL DEFAULT 0"},
    {"metadata_json", "TEXT NOT NULL DEFAULT '{}'"},
    {"version_label", "TEXT NOT NULL DEFAULT ''"},
    {"network", "TEXT NOT NULL DEFAULT 'none'"},
};
constexpr AddedColumn kAddedInvocationColumns[] = {
    {"queue_wait_ms", "INTEGER NOT NULL DEFAULT 0"},
    {"init_duration_ms", "INTEGER"},
};

// Binds `r` to an invocation insert. The text is borrowed from `r` and `logs_json`.
void BindInvocation(Statement& insert, const InvocationRecord& r, const std::string& logs_json) {
  sqlite3_reset(insert.get());
  insert.BindBorrowed(1, r.id);
  insert.BindBorrowed(2, r.function_id);
  insert.BindBorrowed(3, r.request_id);
  insert.Bind(4, int64_t{r.version});
  insert.BindBorrowed(5, r.status);
  insert.Bind(6, r.duration_ms);
  insert.Bind(7, r.memory_used_mb);
  insert.BindBorrowed(8, r.event_json);
  insert.BindBorrowed(9, r.response_json);
  insert.BindBorrowed(10, logs_json);
  insert.Bind(11, r.invoked_at_ms);
  insert.Bind(12, r.queue_wait_ms);
  insert.Bind(13, r.init_duration_ms);
}

}  // namespace

SqliteStore::SqliteStore(sqlite3* db) : db_(db) {}

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return MakeError(ErrorCode::kInternal, fmt::format("open {}: {}", path, message));
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(db));
  // WAL + NORMAL: a commit is durable against a crash of wispd and costs no fsync on the
  // control plane; invocation records are batched anyway.
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL",
                             "PRAGMA foreign_keys=ON", "PRAGMA busy_timeout=5000"}) {
    if (auto r = store->Exec(pragma); !r) return tl::unexpected(r.error());
  }
  if (auto r = store->Exec(kSchema); !r) return tl::unexpected(r.error());
  if (auto r = AddMissingColumns(store->db_, "functions", kAddedFunctionColumns); !r) {
    return tl::unexpected(r.error());
  }
  if (auto r = AddMissingColumns(store->db_, "invocations", kAddedInvocationColumns); !r) {
    return tl::unexpected(r.error());
  }
  const std::string insert = std::string("INSERT OR IGNORE") + kInvocationInsertTail;
  const std::string replace = std::string("INSERT OR REPLACE") + kInvocationInsertTail;
  store->insert_invocation_ = std::make_unique<Statement>(db, insert.c_str());
  store->replace_invocation_ = std::make_unique<Statement>(db, replace.c_str());
  store->count_invocations_ = std::make_unique<Statement>(db, kCountInvocations);
  store->delete_oldest_invocations_ = std::make_unique<Statement>(db, kDeleteOldestInvocations);
  for (const auto* statement : {&store->insert_invocation_, &store->replace_invocation_,
                                &store->count_invocations_, &store->delete_oldest_invocations_}) {
    if (!(*statement)->ok()) return SqliteError(db, "sqlite prepare");
  }
  return store;
}

SqliteStore::~SqliteStore() {
  // A connection with a statement left open does not close.
  insert_invocation_.reset();
  replace_invocation_.reset();
  count_invocations_.reset();
  delete_oldest_invocations_.reset();
  sqlite3_close(db_);
}

Result<void> SqliteStore::Exec(const char* sql) { return store::Exec(db_, sql); }

Result<void> SqliteStore::PutFunction(const FunctionRecord& f) {
  std::lock_guard lock(mutex_);
  Statement stmt(db_, R"sql(
    INSERT INTO functions (id, name, runtime, handler, code, timeout_seconds, memory_mb, vcpu,
      env_json, version, state, error, created_at_ms, updated_at_ms, last_invoked_at_ms, style,
      max_retries, retry_delay_seconds, max_event_age_seconds, max_concurrency, min_instances,
      metadata_json, version_label, network)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
      ?20, ?21, ?22, ?23, ?24)
    ON CONFLICT(id) DO UPDATE SET name=?2, runtime=?3, handler=?4, code=?5, timeout_seconds=?6,
      memory_mb=?7, vcpu=?8, env_json=?9, version=?10, state=?11, error=?12,
      updated_at_ms=?14, last_invoked_at_ms=?15, style=?16, max_retries=?17,
      retry_delay_seconds=?18, max_event_age_seconds=?19, max_concurrency=?20, min_instances=?21,
      metadata_json=?22, version_label=?23, network=?24)sql");
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  stmt.Bind(1, f.id);
  stmt.Bind(2, f.name);
  stmt.Bind(3, f.runtime);
  stmt.Bind(4, f.handler);
  stmt.Bind(5, f.code);
  stmt.Bind(6, int64_t{f.timeout_seconds});
  stmt.Bind(7, int64_t{f.memory_mb});
  stmt.Bind(8, f.vcpu);
  stmt.Bind(9, nlohmann::json(f.env).dump());
  stmt.Bind(10, int64_t{f.version});
  stmt.Bind(11, f.state);
  stmt.Bind(12, f.error);
  stmt.Bind(13, f.created_at_ms);
  stmt.Bind(14, f.updated_at_ms);
  if (f.last_invoked_at_ms) {
    stmt.Bind(15, *f.last_invoked_at_ms);
  } else {
    stmt.BindNull(15);
  }
  stmt.Bind(16, f.style);
  stmt.Bind(17, int64_t{f.max_retries});
  stmt.Bind(18, int64_t{f.retry_delay_seconds});
  stmt.Bind(19, int64_t{f.max_event_age_seconds});
  stmt.Bind(20, int64_t{f.max_concurrency});
  stmt.Bind(21, int64_t{f.min_instances});
  stmt.Bind(22, f.metadata_json);
  stmt.Bind(23, f.version_label);
  stmt.Bind(24, f.network);
  const int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_CONSTRAINT) {
    return MakeError(ErrorCode::kAlreadyExists,
                     fmt::format("a function named '{}' already exists", f.name));
  }
  if (rc != SQLITE_DONE) return SqliteError(db_, "sqlite put function");
  return {};
}

Result<void> SqliteStore::DeleteFunction(const std::string& id) {
  std::lock_guard lock(mutex_);
  // The cascade deletes the function's invocation records in this one statement, under the
  // lock: quick while they are few, and the invocation writer's retention keeps them to its
  // records_per_function (10000 unless configured; more only while an older backlog is trimmed).
  Statement stmt(db_, "DELETE FROM functions WHERE id = ?1");
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  stmt.Bind(1, id);
  if (sqlite3_step(stmt.get()) != SQLITE_DONE) return SqliteError(db_, "sqlite delete function");
  if (sqlite3_changes(db_) == 0) {
    return MakeError(ErrorCode::kNotFound, fmt::format("function {} not found", id));
  }
  invocation_counts_.erase(id);
  return {};
}

Result<std::vector<FunctionRecord>> SqliteStore::ListFunctions() {
  std::lock_guard lock(mutex_);
  Statement stmt(db_, R"sql(
    SELECT id, name, runtime, handler, code, timeout_seconds, memory_mb, vcpu, env_json, version,
      state, error, created_at_ms, updated_at_ms, last_invoked_at_ms, style, max_retries,
      retry_delay_seconds, max_event_age_seconds, max_concurrency, min_instances, metadata_json,
      version_label, network
    FROM functions ORDER BY created_at_ms, id)sql");
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  std::vector<FunctionRecord> out;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    FunctionRecord f;
    f.id = stmt.Text(0);
    f.name = stmt.Text(1);
    f.runtime = stmt.Text(2);
    f.handler = stmt.Text(3);
    f.code = stmt.Text(4);
    f.timeout_seconds = static_cast<int>(stmt.Int(5));
    f.memory_mb = static_cast<int>(stmt.Int(6));
    f.vcpu = sqlite3_column_double(stmt.get(), 7);
    f.env = nlohmann::json::parse(stmt.Text(8), nullptr, false)
                .get<std::map<std::string, std::string>>();
    f.version = static_cast<int>(stmt.Int(9));
    f.state = stmt.Text(10);
    f.error = stmt.Text(11);
    f.created_at_ms = stmt.Int(12);
    f.updated_at_ms = stmt.Int(13);
    if (!stmt.IsNull(14)) f.last_invoked_at_ms = stmt.Int(14);
    f.style = stmt.Text(15);
    f.max_retries = static_cast<int>(stmt.Int(16));
    f.retry_delay_seconds = static_cast<int>(stmt.Int(17));
    f.max_event_age_seconds = static_cast<int>(stmt.Int(18));
    f.max_concurrency = static_cast<int>(stmt.Int(19));
    f.min_instances = static_cast<int>(stmt.Int(20));
    f.metadata_json = stmt.Text(21);
    f.version_label = stmt.Text(22);
    f.network = stmt.Text(23);
    out.push_back(std::move(f));
  }
  if (rc != SQLITE_DONE) return SqliteError(db_, "sqlite list functions");
  return out;
}

Result<void> SqliteStore::PutInvocations(const std::vector<InvocationRecord>& records) {
  std::lock_guard lock(mutex_);
  if (auto r = Exec("BEGIN"); !r) return r;
  Defer rollback([this] { Exec("ROLLBACK"); });
  Statement& insert = *insert_invocation_;
  Statement& replace = *replace_invocation_;
  std::string logs_json;
  // The bindings borrow the records' text, which the caller owns: none may outlive this call.
  Defer unbind([&insert, &replace] {
    for (Statement* statement : {&insert, &replace}) {
      sqlite3_reset(statement->get());
      sqlite3_clear_bindings(statement->get());
    }
  });
  // New records per function, added to the counts once they are committed.
  std::unordered_map<std::string_view, uint64_t> added;
  for (const auto& r : records) {
    logs_json.clear();  // a buffer reused across rows
    AppendJsonStringArray(logs_json, r.logs);
    BindInvocation(insert, r, logs_json);
    if (sqlite3_step(insert.get()) != SQLITE_DONE) return SqliteError(db_, "sqlite put invocation");
    if (sqlite3_changes(db_) == 1) {
      ++added[r.function_id];
      continue;
    }
    // A stored id, replaced (the count stays), or a deleted function's record (dropped).
    BindInvocation(replace, r, logs_json);
    if (sqlite3_step(replace.get()) != SQLITE_DONE) {
      return SqliteError(db_, "sqlite put invocation");
    }
  }
  if (auto r = Exec("COMMIT"); !r) return r;
  rollback.Cancel();
  for (const auto& [function_id, count] : added) {
    auto counted = invocation_counts_.find(std::string(function_id));
    if (counted != invocation_counts_.end()) counted->second += count;
  }
  return {};
}

Result<std::vector<InvocationRecord>> SqliteStore::ListInvocations(const std::string& function_id,
                                                                   int limit, int offset,
                                                                   const std::string& status) {
  std::lock_guard lock(mutex_);
  Statement stmt(db_, R"sql(
    SELECT id, function_id, request_id, version, status, duration_ms, memory_used_mb, event_json,
      response_json, logs_json, invoked_at_ms, queue_wait_ms, init_duration_ms
    FROM invocations WHERE function_id = ?1 AND (?4 = '' OR status = ?4)
    ORDER BY seq DESC LIMIT ?2 OFFSET ?3)sql");
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  stmt.Bind(1, function_id);
  stmt.Bind(2, int64_t{limit});
  stmt.Bind(3, int64_t{offset});
  stmt.Bind(4, status);
  std::vector<InvocationRecord> out;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    InvocationRecord r;
    r.id = stmt.Text(0);
    r.function_id = stmt.Text(1);
    r.request_id = stmt.Text(2);
    r.version = static_cast<int>(stmt.Int(3));
    r.status = stmt.Text(4);
    r.duration_ms = stmt.Int(5);
    if (!stmt.IsNull(6)) r.memory_used_mb = stmt.Int(6);
    r.event_json = stmt.Text(7);
    r.response_json = stmt.Text(8);
    r.logs = nlohmann::json::parse(stmt.Text(9), nullptr, false).get<std::vector<std::string>>();
    r.invoked_at_ms = stmt.Int(10);
    r.queue_wait_ms = stmt.Int(11);
    if (!stmt.IsNull(12)) r.init_duration_ms = stmt.Int(12);
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return SqliteError(db_, "sqlite list invocations");
  return out;
}

Result<PruneResult> SqliteStore::PruneInvocations(const std::vector<std::string>& function_ids,
                                                  const PruneOptions& options) {
  std::lock_guard lock(mutex_);
  if (auto r = Exec("BEGIN"); !r) return tl::unexpected(r.error());
  // The counts below change as rows are deleted; rolled back, they are counted again.
  Defer rollback([this, &function_ids] {
    Exec("ROLLBACK");
    for (const auto& function_id : function_ids) invocation_counts_.erase(function_id);
  });
  Statement& count_stmt = *count_invocations_;
  Statement& delete_stmt = *delete_oldest_invocations_;
  // The bindings borrow the caller's ids.
  Defer unbind([&count_stmt, &delete_stmt] {
    for (Statement* statement : {&count_stmt, &delete_stmt}) {
      sqlite3_reset(statement->get());
      sqlite3_clear_bindings(statement->get());
    }
  });
  const uint64_t min_excess = std::max<uint64_t>(options.min_excess, 1);
  PruneResult result;
  for (const auto& function_id : function_ids) {
    const uint64_t budget = options.max_deleted - result.deleted;
    std::optional<uint64_t> count;  // none: more than keep + budget, or the budget is spent
    if (auto counted = invocation_counts_.find(function_id); counted != invocation_counts_.end()) {
      count = counted->second;
    } else if (budget > 0) {
      // A backlog of millions is counted no further than this call can trim it.
      const uint64_t limit = uint64_t{options.keep} + budget + 1;
      sqlite3_reset(count_stmt.get());
      count_stmt.BindBorrowed(1, function_id);
      count_stmt.Bind(2, static_cast<int64_t>(limit));
      if (sqlite3_step(count_stmt.get()) != SQLITE_ROW) {
        return SqliteError(db_, "sqlite count invocations");
      }
      const auto found = static_cast<uint64_t>(count_stmt.Int(0));
      sqlite3_reset(count_stmt.get());  // not left active through the COMMIT
      if (found < limit) count = found;
    }
    uint64_t excess = budget + 1;  // uncounted: more than this call may delete
    if (count) excess = *count > options.keep ? *count - options.keep : 0;
    const uint64_t to_delete = excess >= min_excess ? std::min(excess, budget) : 0;
    uint64_t deleted = 0;
    if (to_delete > 0) {
      sqlite3_reset(delete_stmt.get());
      delete_stmt.BindBorrowed(1, function_id);
      delete_stmt.Bind(2, static_cast<int64_t>(to_delete));
      if (sqlite3_step(delete_stmt.get()) != SQLITE_DONE) {
        return SqliteError(db_, "sqlite prune invocations");
      }
      deleted = static_cast<uint64_t>(sqlite3_changes(db_));
      result.deleted += deleted;
    }
    if (!count || excess - to_delete >= min_excess) {
      result.unfinished.push_back(function_id);
    }
    // No entry for a function without records: it may be a deleted one whose last records were
    // dropped, and nothing would ever erase its entry.
    if (count && *count > deleted) {
      invocation_counts_[function_id] = *count - deleted;
    } else {
      invocation_counts_.erase(function_id);
    }
  }
  if (auto r = Exec("COMMIT"); !r) return tl::unexpected(r.error());
  rollback.Cancel();
  return result;
}

}  // namespace wisp::store
