// SqliteStore's ScheduleStore half: the schedule_firings table. A function's schedules
// themselves are part of its record (functions.schedules_json).
#include <sqlite3.h>

#include "wisp/store/sqlite_statement.h"
#include "wisp/store/sqlite_store.h"

namespace wisp::store {

const char* const SqliteStore::kScheduleSchema = R"sql(
CREATE TABLE IF NOT EXISTS schedule_firings (
  function_id TEXT NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
  schedule TEXT NOT NULL,
  last_slot_ms INTEGER NOT NULL,
  PRIMARY KEY (function_id, schedule)
);
)sql";

Result<std::optional<int64_t>> SqliteStore::LastFiring(const std::string& function_id,
                                                       const std::string& schedule) {
  std::lock_guard lock(mutex_);
  Statement stmt(db_,
                 "SELECT last_slot_ms FROM schedule_firings WHERE function_id = ?1 AND "
                 "schedule = ?2");
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  stmt.Bind(1, function_id);
  stmt.Bind(2, schedule);
  const int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_ROW) return std::optional<int64_t>(stmt.Int(0));
  if (rc != SQLITE_DONE) return SqliteError(db_, "sqlite read schedule firing");
  return std::optional<int64_t>();
}

Result<bool> SqliteStore::ClaimFiring(const std::string& function_id, const std::string& schedule,
                                      std::optional<int64_t> expected, int64_t slot_ms) {
  std::lock_guard lock(mutex_);
  // One statement each: SQLite runs it under the write lock, so two processes on the file
  // cannot both see `expected` and both move it.
  Statement stmt(db_, expected ? "UPDATE schedule_firings SET last_slot_ms = ?3 WHERE "
                                 "function_id = ?1 AND schedule = ?2 AND last_slot_ms = ?4"
                               : "INSERT OR IGNORE INTO schedule_firings (function_id, schedule, "
                                 "last_slot_ms) VALUES (?1, ?2, ?3)");
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  stmt.Bind(1, function_id);
  stmt.Bind(2, schedule);
  stmt.Bind(3, slot_ms);
  if (expected) stmt.Bind(4, *expected);
  const int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_CONSTRAINT) {
    // OR IGNORE does not cover the foreign key: the function is gone.
    return MakeError(ErrorCode::kNotFound, fmt::format("function {} not found", function_id));
  }
  if (rc != SQLITE_DONE) return SqliteError(db_, "sqlite claim schedule firing");
  return sqlite3_changes(db_) == 1;
}

Result<void> SqliteStore::ForgetFiring(const std::string& function_id,
                                       const std::string& schedule) {
  std::lock_guard lock(mutex_);
  Statement stmt(db_, "DELETE FROM schedule_firings WHERE function_id = ?1 AND schedule = ?2");
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  stmt.Bind(1, function_id);
  stmt.Bind(2, schedule);
  if (sqlite3_step(stmt.get()) != SQLITE_DONE) {
    return SqliteError(db_, "sqlite forget schedule firing");
  }
  return {};
}

}  // namespace wisp::store
