#include "wisp/store/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <optional>
#include <string_view>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "wisp/common/defer.h"
#include "wisp/common/json_text.h"
#include "wisp/store/database_files.h"
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
  invoked_at_ms INTEGER NOT NULL,
  async INTEGER NOT NULL DEFAULT 0,
  event_size INTEGER,
  response_size INTEGER,
  logs_size INTEGER,
  event_json TEXT NOT NULL,
  response_json TEXT NOT NULL,
  logs_json TEXT NOT NULL
);
)sql";

// After kSchema and the added columns. The small columns come before the payloads in a table
// created by this version, so reading them never walks a record's overflow pages. The index
// orders each function's records by invocation time: queries page by it, retention deletes the
// oldest first. No index orders every function's records: it cost each record a fourth B-tree
// (~2 µs of the writer's CPU, a fifth of the whole), for lists of every function, which merge
// each function's newest instead (QueryInvocations).
constexpr const char* kIndexes = R"sql(
DROP INDEX IF EXISTS invocations_by_function;
DROP INDEX IF EXISTS invocations_by_time;
CREATE INDEX IF NOT EXISTS invocations_by_function_time ON invocations(function_id, invoked_at_ms);
)sql";

constexpr const char* kInvocationColumns =
    "id, function_id, request_id, version, status, duration_ms, memory_used_mb, async, "
    "event_size, response_size, logs_size, invoked_at_ms, event_json, response_json, logs_json, "
    "queue_wait_ms, init_duration_ms, executed_version";
constexpr const char* kInvocationKeyColumns =
    "id, function_id, request_id, status, async, "
    "invoked_at_ms";

// An invocation record, after "INSERT OR IGNORE" (a new id) or "INSERT OR REPLACE" (a stored
// id: the retries of an asynchronous invocation share its id, and its record is the last
// attempt's). Trying IGNORE first tells new records from replaced ones, which keeps the counts
// of records per function exact.
constexpr const char* kInvocationInsertTail = R"sql(
  INTO invocations (id, function_id, request_id, version, status, duration_ms, memory_used_mb,
    async, event_size, response_size, logs_size, invoked_at_ms, event_json, response_json,
    logs_json, queue_wait_ms, init_duration_ms, executed_version)
  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18))sql";
// Asked once per function and batch: records of a function deleted meanwhile are dropped instead
// of failing the whole batch on the foreign key. (An INSERT ... SELECT ... WHERE EXISTS per row
// did the same at 2.5 µs of CPU a record, a quarter of what storing one costs.)
constexpr const char* kFunctionExists = "SELECT 1 FROM functions WHERE id = ?1";

// Both walk the (function_id, invoked_at_ms) index and read no more than ?2 rows of it.
constexpr const char* kCountInvocations = R"sql(
  SELECT count(*) FROM (SELECT 1 FROM invocations WHERE function_id = ?1 LIMIT ?2))sql";
constexpr const char* kDeleteOldestInvocations = R"sql(
  DELETE FROM invocations WHERE seq IN
    (SELECT seq FROM invocations WHERE function_id = ?1 ORDER BY invoked_at_ms, seq LIMIT ?2))sql";
// The byte budget's eviction: the oldest written records of any function, in table order (no
// index to walk). RETURNING keeps the per-function counts exact.
constexpr const char* kEvictOldestInvocations = R"sql(
  DELETE FROM invocations WHERE seq IN (SELECT seq FROM invocations ORDER BY seq LIMIT ?1)
  RETURNING function_id)sql";

// Free pages a budget's eviction leaves for the next records to reuse: the band between the
// budget and the low-water mark eviction stops at.
constexpr uint64_t kEvictToPercent = 90;
// An eviction deletes this many records at first, then doubles the run while the database is
// still over its low-water mark: few checks of the page counts for large records, few
// statements for small ones.
constexpr int64_t kFirstEvictionRun = 16;

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
    {"code_format", "TEXT NOT NULL DEFAULT 'file'"},
    {"code_sha256", "TEXT NOT NULL DEFAULT ''"},
    {"code_size", "INTEGER NOT NULL DEFAULT 0"},
    {"code_tree", "TEXT NOT NULL DEFAULT ''"},
    {"description", "TEXT NOT NULL DEFAULT ''"},
    {"tags_json", "TEXT NOT NULL DEFAULT '{}'"},
    {"revision", "INTEGER NOT NULL DEFAULT 0"},
    {"last_version_number", "INTEGER NOT NULL DEFAULT 0"},
    {"url_config_json", "TEXT NOT NULL DEFAULT ''"},
    {"project", "TEXT NOT NULL DEFAULT ''"},
    {"file_path", "TEXT NOT NULL DEFAULT ''"},
    {"active", "INTEGER NOT NULL DEFAULT 1"},
    {"schedules_json", "TEXT NOT NULL DEFAULT ''"},
    {"instance_concurrency", "INTEGER NOT NULL DEFAULT 1"},
};
// Records written by an older wispd: a sync call's (the async attempts it stored show as sync),
// every field whole, no wait or init time known.
constexpr AddedColumn kAddedInvocationColumns[] = {
    {"async", "INTEGER NOT NULL DEFAULT 0"},
    {"event_size", "INTEGER"},
    {"response_size", "INTEGER"},
    {"logs_size", "INTEGER"},
    {"queue_wait_ms", "INTEGER NOT NULL DEFAULT 0"},
    {"init_duration_ms", "INTEGER"},
    {"executed_version", "TEXT NOT NULL DEFAULT ''"},
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
  insert.Bind(8, int64_t{r.async ? 1 : 0});
  insert.Bind(9, r.event_size);
  insert.Bind(10, r.response_size);
  insert.Bind(11, r.logs_size);
  insert.Bind(12, r.invoked_at_ms);
  insert.BindBorrowed(13, r.event_json);
  insert.BindBorrowed(14, r.response_json);
  insert.BindBorrowed(15, logs_json);
  insert.Bind(16, r.queue_wait_ms);
  insert.Bind(17, r.init_duration_ms);
  insert.BindBorrowed(18, r.executed_version);
}

// Reads a row selected with kInvocationColumns, or with kInvocationKeyColumns.
InvocationRecord ReadInvocation(Statement& stmt, bool keys_only) {
  InvocationRecord r;
  r.id = stmt.Text(0);
  r.function_id = stmt.Text(1);
  r.request_id = stmt.Text(2);
  if (keys_only) {
    r.status = stmt.Text(3);
    r.async = stmt.Int(4) != 0;
    r.invoked_at_ms = stmt.Int(5);
    return r;
  }
  r.version = static_cast<int>(stmt.Int(3));
  r.status = stmt.Text(4);
  r.duration_ms = stmt.Int(5);
  r.memory_used_mb = stmt.OptionalInt(6);
  r.async = stmt.Int(7) != 0;
  r.event_size = stmt.OptionalInt(8);
  r.response_size = stmt.OptionalInt(9);
  r.logs_size = stmt.OptionalInt(10);
  r.invoked_at_ms = stmt.Int(11);
  r.event_json = stmt.Text(12);
  r.response_json = stmt.Text(13);
  const auto logs = nlohmann::json::parse(stmt.Text(14), nullptr, false);
  if (logs.is_array()) {
    for (const auto& line : logs) {
      if (line.is_string()) r.logs.push_back(line.get<std::string>());
    }
  }
  r.queue_wait_ms = stmt.Int(15);
  r.init_duration_ms = stmt.OptionalInt(16);
  r.executed_version = stmt.Text(17);
  return r;
}

// One integer a PRAGMA answers (page_count, freelist_count, auto_vacuum, page_size).
Result<int64_t> PragmaInt(sqlite3* db, const char* sql) {
  Statement stmt(db, sql);
  if (!stmt.ok() || sqlite3_step(stmt.get()) != SQLITE_ROW) return SqliteError(db, sql);
  return stmt.Int(0);
}

}  // namespace

SqliteStore::SqliteStore(sqlite3* db) : db_(db) {}

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path) {
  // Owner-only before SQLite opens it: the file holds every function's environment and every
  // call's payloads. SQLite gives the -wal and -shm files the database file's mode.
  if (auto made = MakeDatabaseFilesPrivate(path); !made) return tl::unexpected(made.error());
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
  // auto_vacuum=INCREMENTAL first: it takes effect on a new database when the first table is
  // created; an older file is converted below. journal_size_limit: the WAL file is cut back to
  // this after a checkpoint, instead of keeping the size of the largest batch it ever held.
  for (const char* pragma : {"PRAGMA auto_vacuum=INCREMENTAL", "PRAGMA journal_mode=WAL",
                             "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON",
                             "PRAGMA busy_timeout=5000", "PRAGMA journal_size_limit=16777216"}) {
    if (auto r = store->Exec(pragma); !r) return tl::unexpected(r.error());
  }
  if (auto r = store->Exec(kSchema); !r) return tl::unexpected(r.error());
  if (auto r = store->Exec(kApiKeySchema); !r) return tl::unexpected(r.error());
  if (auto r = AddMissingColumns(store->db_, "functions", kAddedFunctionColumns); !r) {
    return tl::unexpected(r.error());
  }
  if (auto r = store->Exec(kFunctionSchema); !r) return tl::unexpected(r.error());
  if (auto r = store->Exec(kScheduleSchema); !r) return tl::unexpected(r.error());
  if (auto r = AddMissingColumns(store->db_, "invocations", kAddedInvocationColumns); !r) {
    return tl::unexpected(r.error());
  }
  if (auto r = store->Exec(kIndexes); !r) return tl::unexpected(r.error());
  // A database written by a wispd without incremental vacuum: only a VACUUM (a copy of the whole
  // file, once) turns it on; without it deleted records' pages never leave the file.
  auto auto_vacuum = PragmaInt(db, "PRAGMA auto_vacuum");
  if (!auto_vacuum) return tl::unexpected(auto_vacuum.error());
  if (*auto_vacuum != 2) {
    spdlog::info("{}: converting to incremental vacuum (once; a copy of the file)", path);
    // The copy needs as much free space again: on a full disk wispd must still start (the byte
    // budget still bounds the records; only the file does not shrink until a later start).
    if (auto r = store->Exec("VACUUM"); !r) {
      spdlog::warn("{}: not converted, freed pages stay in the file: {}", path, r.error().message);
    } else if (auto c = store->Exec("PRAGMA wal_checkpoint(TRUNCATE)"); !c) {
      spdlog::warn("{}: checkpoint after the conversion: {}", path, c.error().message);
    }
  }
  auto page_size = PragmaInt(db, "PRAGMA page_size");
  if (!page_size) return tl::unexpected(page_size.error());
  store->page_size_ = static_cast<uint64_t>(*page_size);
  const std::string insert = std::string("INSERT OR IGNORE") + kInvocationInsertTail;
  const std::string replace = std::string("INSERT OR REPLACE") + kInvocationInsertTail;
  store->insert_invocation_ = std::make_unique<Statement>(db, insert.c_str());
  store->replace_invocation_ = std::make_unique<Statement>(db, replace.c_str());
  store->function_exists_ = std::make_unique<Statement>(db, kFunctionExists);
  store->count_invocations_ = std::make_unique<Statement>(db, kCountInvocations);
  store->delete_oldest_invocations_ = std::make_unique<Statement>(db, kDeleteOldestInvocations);
  store->evict_oldest_invocations_ = std::make_unique<Statement>(db, kEvictOldestInvocations);
  store->page_count_ = std::make_unique<Statement>(db, "PRAGMA page_count");
  store->freelist_count_ = std::make_unique<Statement>(db, "PRAGMA freelist_count");
  for (const auto* statement :
       {&store->insert_invocation_, &store->replace_invocation_, &store->function_exists_,
        &store->count_invocations_, &store->delete_oldest_invocations_,
        &store->evict_oldest_invocations_, &store->page_count_, &store->freelist_count_}) {
    if (!(*statement)->ok()) return SqliteError(db, "sqlite prepare");
  }
  return store;
}

SqliteStore::~SqliteStore() {
  // A connection with a statement left open does not close.
  insert_invocation_.reset();
  replace_invocation_.reset();
  function_exists_.reset();
  count_invocations_.reset();
  delete_oldest_invocations_.reset();
  evict_oldest_invocations_.reset();
  page_count_.reset();
  freelist_count_.reset();
  sqlite3_close(db_);
}

Result<void> SqliteStore::Exec(const char* sql) { return store::Exec(db_, sql); }

Result<void> SqliteStore::PutInvocations(const std::vector<InvocationRecord>& records) {
  std::lock_guard lock(mutex_);
  if (auto r = Exec("BEGIN"); !r) return r;
  Defer rollback([this] { Exec("ROLLBACK"); });
  Statement& insert = *insert_invocation_;
  Statement& replace = *replace_invocation_;
  Statement& exists = *function_exists_;
  std::string logs_json;
  // The bindings borrow the records' text, which the caller owns: none may outlive this call.
  Defer unbind([&insert, &replace, &exists] {
    for (Statement* statement : {&insert, &replace, &exists}) {
      sqlite3_reset(statement->get());
      sqlite3_clear_bindings(statement->get());
    }
  });
  // Whether each function of the batch exists, asked once (a batch is mostly one function's).
  std::unordered_map<std::string_view, bool> function_exists;
  // New records per function, added to the counts once they are committed.
  std::unordered_map<std::string_view, uint64_t> added;
  for (const auto& r : records) {
    auto [known, inserted] = function_exists.try_emplace(r.function_id, false);
    if (inserted) {
      sqlite3_reset(exists.get());
      exists.BindBorrowed(1, r.function_id);
      const int rc = sqlite3_step(exists.get());
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) return SqliteError(db_, "sqlite put invocation");
      known->second = rc == SQLITE_ROW;
      sqlite3_reset(exists.get());
    }
    if (!known->second) continue;  // a deleted function's record: dropped
    logs_json.clear();             // a buffer reused across rows
    AppendJsonStringArray(logs_json, r.logs);
    BindInvocation(insert, r, logs_json);
    if (sqlite3_step(insert.get()) != SQLITE_DONE) return SqliteError(db_, "sqlite put invocation");
    if (sqlite3_changes(db_) == 1) {
      ++added[r.function_id];
      continue;
    }
    // A stored id: replaced, the count stays.
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
  InvocationQuery query;
  query.function_id = function_id;
  query.status = status;
  query.limit = limit;
  query.offset = offset;
  return QueryInvocations(query);
}

Result<std::vector<InvocationRecord>> SqliteStore::QueryInvocations(const InvocationQuery& query) {
  std::lock_guard lock(mutex_);
  // One statement for every filter: an empty or NULL parameter matches everything. It walks one
  // function's (function_id, invoked_at_ms) index, newest first; seq, last, breaks ties.
  const std::string sql = fmt::format(
      "SELECT {}, seq FROM invocations WHERE function_id = ?1 AND (?2 = '' OR status = ?2) AND "
      "(?3 IS NULL OR async = ?3) AND invoked_at_ms >= ?4 AND invoked_at_ms < ?5 "
      "ORDER BY invoked_at_ms DESC, seq DESC LIMIT ?6 OFFSET ?7",
      query.keys_only ? kInvocationKeyColumns : kInvocationColumns);
  Statement stmt(db_, sql.c_str());
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  const int seq_column = sqlite3_column_count(stmt.get()) - 1;
  stmt.Bind(2, query.status);
  if (query.async) {
    stmt.Bind(3, int64_t{*query.async ? 1 : 0});
  } else {
    stmt.BindNull(3);
  }
  stmt.Bind(4, query.since_ms.value_or(INT64_MIN));
  stmt.Bind(5, query.until_ms.value_or(INT64_MAX));
  struct Found {
    int64_t seq;
    InvocationRecord record;
  };
  std::vector<Found> found;
  // Appends `function_id`'s records of the page that starts `offset` records in, `limit` long.
  auto read = [&](const std::string& function_id, int64_t limit, int64_t offset) -> Result<void> {
    sqlite3_reset(stmt.get());
    stmt.Bind(1, function_id);
    stmt.Bind(6, limit);
    stmt.Bind(7, offset);
    int rc;
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      found.push_back({stmt.Int(seq_column), ReadInvocation(stmt, query.keys_only)});
    }
    if (rc != SQLITE_DONE) return SqliteError(db_, "sqlite list invocations");
    return {};
  };
  std::vector<InvocationRecord> out;
  if (!query.function_id.empty()) {
    if (auto r = read(query.function_id, query.limit, query.offset); !r) {
      return tl::unexpected(r.error());
    }
    for (auto& f : found) out.push_back(std::move(f.record));
    return out;
  }
  // Every function's: each one's first offset + limit, merged. Every record's function is in
  // the functions table (the foreign key deletes a function's records with it). At most about
  // three times offset + limit records are held: the newest of those read so far.
  const auto newer = [](const Found& a, const Found& b) {
    if (a.record.invoked_at_ms != b.record.invoked_at_ms) {
      return a.record.invoked_at_ms > b.record.invoked_at_ms;
    }
    return a.seq > b.seq;
  };
  Statement functions(db_, "SELECT id FROM functions");
  if (!functions.ok()) return SqliteError(db_, "sqlite prepare");
  const int64_t wanted = int64_t{query.offset} + query.limit;
  int rc;
  while ((rc = sqlite3_step(functions.get())) == SQLITE_ROW) {
    if (auto r = read(functions.Text(0), wanted, 0); !r) return tl::unexpected(r.error());
    if (int64_t(found.size()) >= 2 * wanted) {
      std::nth_element(found.begin(), found.begin() + wanted, found.end(), newer);
      found.resize(static_cast<size_t>(wanted));
    }
  }
  if (rc != SQLITE_DONE) return SqliteError(db_, "sqlite list functions");
  std::sort(found.begin(), found.end(), newer);
  for (size_t i = static_cast<size_t>(query.offset); i < found.size() && int64_t(i) < wanted; ++i) {
    out.push_back(std::move(found[i].record));
  }
  return out;
}

Result<InvocationRecord> SqliteStore::GetInvocation(const std::string& id) {
  std::lock_guard lock(mutex_);
  const std::string sql =
      fmt::format("SELECT {} FROM invocations WHERE id = ?1", kInvocationColumns);
  Statement stmt(db_, sql.c_str());
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  stmt.Bind(1, id);
  const int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_DONE) {
    return MakeError(ErrorCode::kNotFound, fmt::format("invocation {} not found", id));
  }
  if (rc != SQLITE_ROW) return SqliteError(db_, "sqlite get invocation");
  return ReadInvocation(stmt, false);
}

Result<PruneResult> SqliteStore::PruneInvocations(const std::vector<std::string>& function_ids,
                                                  const PruneOptions& options) {
  std::lock_guard lock(mutex_);
  if (auto r = Exec("BEGIN"); !r) return tl::unexpected(r.error());
  // The counts below change as rows are deleted (the budget's eviction may delete any
  // function's); rolled back, they are counted again.
  Defer rollback([this] {
    Exec("ROLLBACK");
    invocation_counts_.clear();
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
  if (options.max_bytes > 0) {
    if (auto evicted = EvictOverBudget(options, result); !evicted) {
      return tl::unexpected(evicted.error());
    }
  }
  if (auto r = Exec("COMMIT"); !r) return tl::unexpected(r.error());
  rollback.Cancel();
  return result;
}

Result<uint64_t> SqliteStore::BytesInUse() {
  uint64_t pages[2];
  Statement* statements[2] = {page_count_.get(), freelist_count_.get()};
  for (int i = 0; i < 2; ++i) {
    sqlite3_reset(statements[i]->get());
    if (sqlite3_step(statements[i]->get()) != SQLITE_ROW) {
      return SqliteError(db_, "sqlite page counts");
    }
    pages[i] = static_cast<uint64_t>(statements[i]->Int(0));
    sqlite3_reset(statements[i]->get());
  }
  return (pages[0] - std::min(pages[0], pages[1])) * page_size_;
}

Result<void> SqliteStore::EvictOverBudget(const PruneOptions& options, PruneResult& result) {
  // The page counts of the transaction in progress: what the prune above freed is free already.
  auto used = BytesInUse();
  if (!used) return tl::unexpected(used.error());
  if (*used > options.max_bytes) evicting_ = true;
  if (!evicting_) return {};
  const uint64_t low_water = options.max_bytes / 100 * kEvictToPercent;
  Statement& evict = *evict_oldest_invocations_;
  Defer reset([&evict] { sqlite3_reset(evict.get()); });
  int64_t run = kFirstEvictionRun;
  uint64_t evicted = 0;
  while (*used > low_water && evicted < options.max_deleted) {
    sqlite3_reset(evict.get());
    evict.Bind(1, std::min<int64_t>(run, options.max_deleted - evicted));
    uint64_t deleted = 0;
    int rc;
    while ((rc = sqlite3_step(evict.get())) == SQLITE_ROW) {
      ++deleted;
      auto counted = invocation_counts_.find(evict.Text(0));
      if (counted == invocation_counts_.end()) continue;
      if (--counted->second == 0) invocation_counts_.erase(counted);
    }
    if (rc != SQLITE_DONE) return SqliteError(db_, "sqlite evict invocations");
    if (deleted == 0) {
      // No record is left: function definitions alone fill the budget. Nothing to evict.
      evicting_ = false;
      break;
    }
    evicted += deleted;
    run *= 2;
    used = BytesInUse();
    if (!used) return tl::unexpected(used.error());
  }
  if (*used <= low_water) evicting_ = false;
  result.evicted += evicted;
  result.deleted += evicted;
  result.over_budget = evicting_;
  return {};
}

Result<ReclaimResult> SqliteStore::ReclaimSpace(uint64_t keep_free_bytes, uint64_t max_bytes) {
  std::lock_guard lock(mutex_);
  auto free_pages = PragmaInt(db_, "PRAGMA freelist_count");
  if (!free_pages) return tl::unexpected(free_pages.error());
  const uint64_t keep = keep_free_bytes / page_size_;
  const auto free = static_cast<uint64_t>(*free_pages);
  ReclaimResult result;
  if (free <= keep) return result;
  const uint64_t pages = std::min(free - keep, std::max<uint64_t>(max_bytes / page_size_, 1));
  // Each step of the statement frees one page (sqlite3_exec steps it to the end). It moves
  // the pages in use at the end of the file into free ones, then shortens the file.
  const std::string sql = fmt::format("PRAGMA incremental_vacuum({})", pages);
  if (auto r = Exec(sql.c_str()); !r) return tl::unexpected(r.error());
  // In WAL mode the file itself is cut at a checkpoint; a passive one waits for no reader.
  if (auto r = Exec("PRAGMA wal_checkpoint(PASSIVE)"); !r) return tl::unexpected(r.error());
  auto left = PragmaInt(db_, "PRAGMA freelist_count");
  if (!left) return tl::unexpected(left.error());
  const auto left_pages = static_cast<uint64_t>(*left);
  result.freed_bytes = (free - std::min(free, left_pages)) * page_size_;
  result.unfinished = left_pages > keep;
  return result;
}

}  // namespace wisp::store
