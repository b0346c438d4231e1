// Small RAII helpers over SQLite's C API, shared by the store and the embedded queue.
//
// Thread rules: a Statement belongs to the connection it was prepared on and is used by the
// thread that holds that connection.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "wisp/common/result.h"

namespace wisp::store {

// A prepared statement, finalized on scope exit. Text is bound as a copy, so a temporary may be
// bound.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }
  void Bind(int i, const std::string& s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  // Binds text without copying it: `s` must stay alive and unchanged until it is bound again or
  // the bindings are cleared. For bulk inserts, where a copy per column and row would show.
  void BindBorrowed(int i, std::string_view s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_STATIC);
  }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void Bind(int i, double v) { sqlite3_bind_double(stmt_, i, v); }
  void Bind(int i, const std::optional<int64_t>& v) {
    if (v) {
      sqlite3_bind_int64(stmt_, i, *v);
    } else {
      sqlite3_bind_null(stmt_, i);
    }
  }
  void BindNull(int i) { sqlite3_bind_null(stmt_, i); }
  std::string Text(int col) {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(stmt_, col))
             : std::string();
  }
  int64_t Int(int col) { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::optional<int64_t> OptionalInt(int col) {
    if (IsNull(col)) return std::nullopt;
    return Int(col);
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

// kInternal with SQLite's own message: "<what>: <errmsg>".
inline tl::unexpected<Error> SqliteError(sqlite3* db, std::string_view what) {
  return MakeError(ErrorCode::kInternal, fmt::format("{}: {}", what, sqlite3_errmsg(db)));
}

// Runs SQL that returns no rows.
inline Result<void> Exec(sqlite3* db, const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message ? message : "unknown error";
    sqlite3_free(message);
    return MakeError(ErrorCode::kInternal, fmt::format("sqlite: {}", text));
  }
  return {};
}

// A column added to a table after the first release: its name and declaration.
using AddedColumn = std::pair<const char*, const char*>;

// Adds to `table` those of `columns` it lacks: a file written by an older wispd opens as if it
// had been created with today's schema.
inline Result<void> AddMissingColumns(sqlite3* db, std::string_view table,
                                      std::span<const AddedColumn> columns) {
  std::set<std::string, std::less<>> present;
  {
    const std::string sql = fmt::format("PRAGMA table_info({})", table);
    Statement stmt(db, sql.c_str());
    if (!stmt.ok()) return SqliteError(db, "sqlite prepare");
    while (sqlite3_step(stmt.get()) == SQLITE_ROW) present.insert(stmt.Text(1));
  }
  for (const auto& [name, declaration] : columns) {
    if (present.count(name)) continue;
    const std::string sql =
        fmt::format("ALTER TABLE {} ADD COLUMN {} {}", table, name, declaration);
    if (auto r = Exec(db, sql.c_str()); !r) return r;
  }
  return {};
}

}  // namespace wisp::store
