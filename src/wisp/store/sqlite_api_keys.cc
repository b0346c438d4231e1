// SqliteStore's ApiKeyStore half: the api_keys table, kept apart from the functions and
// invocations code.
#include <sqlite3.h>

#include "wisp/store/sqlite_statement.h"
#include "wisp/store/sqlite_store.h"

namespace wisp::store {

const char* const SqliteStore::kApiKeySchema = R"sql(
CREATE TABLE IF NOT EXISTS api_keys (
  id TEXT PRIMARY KEY,
  secret TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  created_at_ms INTEGER NOT NULL
);
)sql";

Result<void> SqliteStore::PutApiKey(const ApiKeyRecord& key) {
  std::lock_guard lock(mutex_);
  Statement stmt(db_,
                 "INSERT INTO api_keys (id, secret, description, created_at_ms) "
                 "VALUES (?1, ?2, ?3, ?4)");
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  stmt.Bind(1, key.id);
  stmt.Bind(2, key.secret);
  stmt.Bind(3, key.description);
  stmt.Bind(4, key.created_at_ms);
  const int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_CONSTRAINT) {
    return MakeError(ErrorCode::kAlreadyExists, fmt::format("key {} already exists", key.id));
  }
  if (rc != SQLITE_DONE) return SqliteError(db_, "sqlite put api key");
  return {};
}

Result<std::vector<ApiKeyRecord>> SqliteStore::ListApiKeys() {
  std::lock_guard lock(mutex_);
  Statement stmt(
      db_,
      "SELECT id, secret, description, created_at_ms FROM api_keys ORDER BY created_at_ms, id");
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  std::vector<ApiKeyRecord> out;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    out.push_back(ApiKeyRecord{stmt.Text(0), stmt.Text(1), stmt.Text(2), stmt.Int(3)});
  }
  if (rc != SQLITE_DONE) return SqliteError(db_, "sqlite list api keys");
  return out;
}

Result<void> SqliteStore::DeleteApiKey(const std::string& id) {
  std::lock_guard lock(mutex_);
  Statement stmt(db_, "DELETE FROM api_keys WHERE id = ?1");
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  stmt.Bind(1, id);
  if (sqlite3_step(stmt.get()) != SQLITE_DONE) return SqliteError(db_, "sqlite delete api key");
  if (sqlite3_changes(db_) == 0) {
    return MakeError(ErrorCode::kNotFound, fmt::format("key {} not found", id));
  }
  return {};
}

}  // namespace wisp::store
