// SqliteStore's functions, published versions, aliases and the change log. Every write runs in
// one IMMEDIATE transaction (the write lock first: another process on the same file waits for
// it instead of failing an upgrade half way) that also appends its change to function_changes,
// whose AUTOINCREMENT key is the store-wide revision: compare-and-swap compares it, followers
// read the log from the last revision they saw.
#include <sqlite3.h>

#include <nlohmann/json.hpp>

#include "wisp/common/defer.h"
#include "wisp/common/ids.h"
#include "wisp/store/sqlite_statement.h"
#include "wisp/store/sqlite_store.h"

namespace wisp::store {
namespace {
using nlohmann::json;

constexpr const char* kFunctionColumns = R"sql(
  id, name, runtime, handler, code, timeout_seconds, memory_mb, vcpu, env_json, version,
  state, error, created_at_ms, updated_at_ms, last_invoked_at_ms, style, max_retries,
  retry_delay_seconds, max_event_age_seconds, max_concurrency, min_instances, metadata_json,
  version_label, network, code_format, code_sha256, code_size, code_tree, description,
  tags_json, revision, url_config_json, schedules_json, project, file_path, active,
  instance_concurrency)sql";

// The log keeps this many changes: a follower further behind reads every function again.
constexpr int64_t kChangesKept = 10000;

void BindFunction(Statement& stmt, const FunctionRecord& f, int64_t revision) {
  stmt.Bind(1, f.id);
  stmt.Bind(2, f.name);
  stmt.Bind(3, f.runtime);
  stmt.Bind(4, f.handler);
  stmt.Bind(5, f.code);
  stmt.Bind(6, int64_t{f.timeout_seconds});
  stmt.Bind(7, int64_t{f.memory_mb});
  stmt.Bind(8, f.vcpu);
  stmt.Bind(9, json(f.env).dump());
  stmt.Bind(10, int64_t{f.version});
  stmt.Bind(11, f.state);
  stmt.Bind(12, f.error);
  stmt.Bind(13, f.created_at_ms);
  stmt.Bind(14, f.updated_at_ms);
  stmt.Bind(15, f.last_invoked_at_ms);
  stmt.Bind(16, f.style);
  stmt.Bind(17, int64_t{f.max_retries});
  stmt.Bind(18, int64_t{f.retry_delay_seconds});
  stmt.Bind(19, int64_t{f.max_event_age_seconds});
  stmt.Bind(20, int64_t{f.max_concurrency});
  stmt.Bind(21, int64_t{f.min_instances});
  stmt.Bind(22, f.metadata_json);
  stmt.Bind(23, f.version_label);
  stmt.Bind(24, f.network);
  stmt.Bind(25, f.code_format);
  stmt.Bind(26, f.code_sha256);
  stmt.Bind(27, f.code_size);
  stmt.Bind(28, f.code_tree);
  stmt.Bind(29, f.description);
  stmt.Bind(30, json(f.tags).dump());
  stmt.Bind(31, revision);
  stmt.Bind(32, f.url_config_json);
  stmt.Bind(33, f.schedules_json);
  stmt.Bind(34, f.project);
  stmt.Bind(35, f.file_path);
  stmt.Bind(36, int64_t{f.active ? 1 : 0});
  stmt.Bind(37, int64_t{f.instance_concurrency});
}

std::map<std::string, std::string> StringMap(const std::string& text) {
  const auto parsed = json::parse(text, nullptr, false);
  std::map<std::string, std::string> out;
  if (!parsed.is_object()) return out;
  for (const auto& [key, value] : parsed.items()) {
    if (value.is_string()) out[key] = value.get<std::string>();
  }
  return out;
}

FunctionRecord ReadFunction(Statement& stmt) {
  FunctionRecord f;
  f.id = stmt.Text(0);
  f.name = stmt.Text(1);
  f.runtime = stmt.Text(2);
  f.handler = stmt.Text(3);
  f.code = stmt.Text(4);
  f.timeout_seconds = static_cast<int>(stmt.Int(5));
  f.memory_mb = static_cast<int>(stmt.Int(6));
  f.vcpu = sqlite3_column_double(stmt.get(), 7);
  f.env = StringMap(stmt.Text(8));
  f.version = static_cast<int>(stmt.Int(9));
  f.state = stmt.Text(10);
  f.error = stmt.Text(11);
  f.created_at_ms = stmt.Int(12);
  f.updated_at_ms = stmt.Int(13);
  f.last_invoked_at_ms = stmt.OptionalInt(14);
  f.style = stmt.Text(15);
  f.max_retries = static_cast<int>(stmt.Int(16));
  f.retry_delay_seconds = static_cast<int>(stmt.Int(17));
  f.max_event_age_seconds = static_cast<int>(stmt.Int(18));
  f.max_concurrency = static_cast<int>(stmt.Int(19));
  f.min_instances = static_cast<int>(stmt.Int(20));
  f.metadata_json = stmt.Text(21);
  f.version_label = stmt.Text(22);
  f.network = stmt.Text(23);
  f.code_format = stmt.Text(24);
  f.code_sha256 = stmt.Text(25);
  f.code_size = stmt.Int(26);
  f.code_tree = stmt.Text(27);
  f.description = stmt.Text(28);
  f.tags = StringMap(stmt.Text(29));
  f.revision = stmt.Int(30);
  f.url_config_json = stmt.Text(31);
  f.schedules_json = stmt.Text(32);
  f.project = stmt.Text(33);
  f.file_path = stmt.Text(34);
  f.active = stmt.Int(35) != 0;
  f.instance_concurrency = static_cast<int>(stmt.Int(36));
  return f;
}

// A version's frozen configuration, as one JSON document: a version is read whole and never
// queried by its fields.
json ConfigJson(const FunctionRecord& f) {
  return {{"name", f.name},
          {"runtime", f.runtime},
          {"style", f.style},
          {"handler", f.handler},
          {"code", f.code},
          {"timeout_seconds", f.timeout_seconds},
          {"memory_mb", f.memory_mb},
          {"vcpu", f.vcpu},
          {"env", f.env},
          {"max_concurrency", f.max_concurrency},
          {"min_instances", f.min_instances},
          {"instance_concurrency", f.instance_concurrency},
          {"max_retries", f.max_retries},
          {"retry_delay_seconds", f.retry_delay_seconds},
          {"max_event_age_seconds", f.max_event_age_seconds},
          {"metadata_json", f.metadata_json},
          {"version_label", f.version_label},
          {"network", f.network},
          {"code_format", f.code_format},
          {"code_sha256", f.code_sha256},
          {"code_size", f.code_size},
          {"code_tree", f.code_tree},
          {"description", f.description},
          {"updated_at_ms", f.updated_at_ms}};
}

FunctionRecord ConfigFromJson(const std::string& text, const std::string& function_id) {
  const json j = json::parse(text, nullptr, false);
  FunctionRecord f;
  f.id = function_id;
  if (!j.is_object()) return f;
  f.name = j.value("name", "");
  f.runtime = j.value("runtime", "");
  f.style = j.value("style", "handler");
  f.handler = j.value("handler", "");
  f.code = j.value("code", "");
  f.timeout_seconds = j.value("timeout_seconds", 30);
  f.memory_mb = j.value("memory_mb", 256);
  f.vcpu = j.value("vcpu", 1.0);
  if (j.contains("env")) f.env = StringMap(j["env"].dump());
  f.max_concurrency = j.value("max_concurrency", 100);
  f.min_instances = j.value("min_instances", 0);
  f.instance_concurrency = j.value("instance_concurrency", 1);
  f.max_retries = j.value("max_retries", 2);
  f.retry_delay_seconds = j.value("retry_delay_seconds", 60);
  f.max_event_age_seconds = j.value("max_event_age_seconds", 21600);
  f.metadata_json = j.value("metadata_json", "{}");
  f.version_label = j.value("version_label", "");
  f.network = j.value("network", "none");
  f.code_format = j.value("code_format", "file");
  f.code_sha256 = j.value("code_sha256", "");
  f.code_size = j.value("code_size", int64_t{0});
  f.code_tree = j.value("code_tree", "");
  f.description = j.value("description", "");
  f.updated_at_ms = j.value("updated_at_ms", int64_t{0});
  f.state = "ready";
  return f;
}

AliasRecord ReadAlias(Statement& stmt) {
  AliasRecord a;
  a.function_id = stmt.Text(0);
  a.name = stmt.Text(1);
  a.version = static_cast<int>(stmt.Int(2));
  if (auto extra = stmt.OptionalInt(3)) a.additional_version = static_cast<int>(*extra);
  a.additional_weight = sqlite3_column_double(stmt.get(), 4);
  a.description = stmt.Text(5);
  a.revision_id = stmt.Text(6);
  a.created_at_ms = stmt.Int(7);
  a.updated_at_ms = stmt.Int(8);
  return a;
}

// One write transaction: BEGIN IMMEDIATE now, ROLLBACK unless Commit() succeeded.
class WriteTransaction {
 public:
  explicit WriteTransaction(sqlite3* db) : db_(db) { begun_ = Exec(db_, "BEGIN IMMEDIATE"); }
  ~WriteTransaction() {
    if (begun_ && !committed_) Exec(db_, "ROLLBACK");
  }
  const Result<void>& begun() const { return begun_; }
  Result<void> Commit() {
    auto r = Exec(db_, "COMMIT");
    committed_ = r.has_value();
    return r;
  }

 private:
  sqlite3* db_;
  Result<void> begun_;
  bool committed_ = false;
};

// One row, one integer, or nullopt for no row.
Result<std::optional<int64_t>> QueryInt(sqlite3* db, const char* sql, const std::string& text1,
                                        std::optional<int64_t> int2 = std::nullopt) {
  Statement stmt(db, sql);
  if (!stmt.ok()) return SqliteError(db, "sqlite prepare");
  stmt.Bind(1, text1);
  if (int2) stmt.Bind(2, *int2);
  const int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_DONE) return std::optional<int64_t>();
  if (rc != SQLITE_ROW) return SqliteError(db, "sqlite query");
  return std::optional<int64_t>(stmt.Int(0));
}

tl::unexpected<Error> FunctionNotFound(const std::string& id) {
  return MakeError(ErrorCode::kNotFound, fmt::format("function {} not found", id));
}

}  // namespace

const char* const SqliteStore::kFunctionSchema = R"sql(
CREATE TABLE IF NOT EXISTS function_changes (
  revision INTEGER PRIMARY KEY AUTOINCREMENT,
  function_id TEXT NOT NULL,
  kind TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS function_versions (
  function_id TEXT NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
  number INTEGER NOT NULL,
  description TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  config_json TEXT NOT NULL,
  PRIMARY KEY (function_id, number)
);
CREATE TABLE IF NOT EXISTS function_aliases (
  function_id TEXT NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  additional_version INTEGER,
  additional_weight REAL NOT NULL DEFAULT 0,
  description TEXT NOT NULL,
  revision_id TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  PRIMARY KEY (function_id, name)
);
)sql";

Result<int64_t> SqliteStore::LogChange(const std::string& function_id, const char* kind) {
  Statement stmt(db_, "INSERT INTO function_changes (function_id, kind) VALUES (?1, ?2)");
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  stmt.Bind(1, function_id);
  stmt.Bind(2, std::string(kind));
  if (sqlite3_step(stmt.get()) != SQLITE_DONE) return SqliteError(db_, "sqlite log change");
  const int64_t revision = sqlite3_last_insert_rowid(db_);
  if (revision % 256 == 0) {
    // Now and then, not on every write: the log's old entries go in one short delete.
    Statement prune(db_, "DELETE FROM function_changes WHERE revision <= ?1");
    if (!prune.ok()) return SqliteError(db_, "sqlite prepare");
    prune.Bind(1, revision - kChangesKept);
    if (sqlite3_step(prune.get()) != SQLITE_DONE) return SqliteError(db_, "sqlite prune changes");
  }
  return revision;
}

Result<void> SqliteStore::WriteFunctionRow(const FunctionRecord& f, int64_t revision, bool insert) {
  if (!insert) {
    // REPLACE would delete the row first, and the cascade with it every invocation record,
    // version and alias: update the columns in place instead.
    Statement stmt(db_, R"sql(
      UPDATE functions SET name=?2, runtime=?3, handler=?4, code=?5, timeout_seconds=?6,
        memory_mb=?7, vcpu=?8, env_json=?9, version=?10, state=?11, error=?12,
        updated_at_ms=?14, last_invoked_at_ms=?15, style=?16, max_retries=?17,
        retry_delay_seconds=?18, max_event_age_seconds=?19, max_concurrency=?20,
        min_instances=?21, metadata_json=?22, version_label=?23, network=?24, code_format=?25,
        code_sha256=?26, code_size=?27, code_tree=?28, description=?29, tags_json=?30,
        revision=?31, url_config_json=?32, schedules_json=?33, project=?34, file_path=?35,
        active=?36, instance_concurrency=?37
      WHERE id = ?1)sql");
    if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
    BindFunction(stmt, f, revision);
    const int rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_CONSTRAINT) {
      return MakeError(ErrorCode::kAlreadyExists,
                       fmt::format("a function named '{}' already exists", f.name));
    }
    if (rc != SQLITE_DONE) return SqliteError(db_, "sqlite update function");
    if (sqlite3_changes(db_) == 0) return FunctionNotFound(f.id);
    return {};
  }
  const std::string sql = fmt::format(
      "INSERT INTO functions ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
      "?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, "
      "?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36, ?37)",
      kFunctionColumns);
  Statement stmt(db_, sql.c_str());
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  BindFunction(stmt, f, revision);
  const int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_CONSTRAINT) {
    return MakeError(ErrorCode::kAlreadyExists,
                     fmt::format("a function named '{}' already exists", f.name));
  }
  if (rc != SQLITE_DONE) return SqliteError(db_, "sqlite insert function");
  return {};
}

Result<int64_t> SqliteStore::CreateFunction(const FunctionRecord& f) {
  std::lock_guard lock(mutex_);
  WriteTransaction transaction(db_);
  if (!transaction.begun()) return tl::unexpected(transaction.begun().error());
  auto revision = LogChange(f.id, "function");
  if (!revision) return revision;
  if (auto written = WriteFunctionRow(f, *revision, /*insert=*/true); !written) {
    return tl::unexpected(written.error());
  }
  if (auto r = transaction.Commit(); !r) return tl::unexpected(r.error());
  return *revision;
}

Result<int64_t> SqliteStore::UpdateFunction(const FunctionRecord& f, int64_t expected_revision) {
  std::lock_guard lock(mutex_);
  WriteTransaction transaction(db_);
  if (!transaction.begun()) return tl::unexpected(transaction.begun().error());
  auto stored = QueryInt(db_, "SELECT revision FROM functions WHERE id = ?1", f.id);
  if (!stored) return tl::unexpected(stored.error());
  if (!*stored) return FunctionNotFound(f.id);
  if (**stored != expected_revision) {
    return MakeError(ErrorCode::kConflict,
                     fmt::format("function {} was changed by someone else (revision {}, not {}): "
                                 "read it again and retry",
                                 f.name, **stored, expected_revision));
  }
  auto revision = LogChange(f.id, "function");
  if (!revision) return revision;
  if (auto written = WriteFunctionRow(f, *revision, /*insert=*/false); !written) {
    return tl::unexpected(written.error());
  }
  if (auto r = transaction.Commit(); !r) return tl::unexpected(r.error());
  return *revision;
}

Result<void> SqliteStore::PutFunction(const FunctionRecord& f) {
  std::lock_guard lock(mutex_);
  WriteTransaction transaction(db_);
  if (!transaction.begun()) return transaction.begun();
  auto exists = QueryInt(db_, "SELECT 1 FROM functions WHERE id = ?1", f.id);
  if (!exists) return tl::unexpected(exists.error());
  auto revision = LogChange(f.id, "function");
  if (!revision) return tl::unexpected(revision.error());
  if (auto written = WriteFunctionRow(f, *revision, !exists->has_value()); !written) {
    return written;
  }
  return transaction.Commit();
}

Result<void> SqliteStore::RecordActivity(const std::string& id, int64_t last_invoked_at_ms) {
  std::lock_guard lock(mutex_);
  Statement stmt(db_, "UPDATE functions SET last_invoked_at_ms = ?2 WHERE id = ?1");
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  stmt.Bind(1, id);
  stmt.Bind(2, last_invoked_at_ms);
  if (sqlite3_step(stmt.get()) != SQLITE_DONE) return SqliteError(db_, "sqlite record activity");
  return {};
}

Result<void> SqliteStore::DeleteFunction(const std::string& id) {
  std::lock_guard lock(mutex_);
  WriteTransaction transaction(db_);
  if (!transaction.begun()) return transaction.begun();
  // The cascade deletes the function's versions, aliases and invocation records in this one
  // statement, under the lock: quick while they are few, and the invocation writer's retention
  // keeps them to its records_per_function (10000 unless configured).
  Statement stmt(db_, "DELETE FROM functions WHERE id = ?1");
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  stmt.Bind(1, id);
  if (sqlite3_step(stmt.get()) != SQLITE_DONE) return SqliteError(db_, "sqlite delete function");
  if (sqlite3_changes(db_) == 0) return FunctionNotFound(id);
  if (auto logged = LogChange(id, "deleted"); !logged) return tl::unexpected(logged.error());
  if (auto r = transaction.Commit(); !r) return r;
  invocation_counts_.erase(id);
  return {};
}

Result<FunctionRecord> SqliteStore::GetFunction(const std::string& id) {
  std::lock_guard lock(mutex_);
  const std::string sql = fmt::format("SELECT {} FROM functions WHERE id = ?1", kFunctionColumns);
  Statement stmt(db_, sql.c_str());
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  stmt.Bind(1, id);
  const int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_DONE) return FunctionNotFound(id);
  if (rc != SQLITE_ROW) return SqliteError(db_, "sqlite get function");
  return ReadFunction(stmt);
}

Result<std::vector<FunctionRecord>> SqliteStore::ListFunctions() {
  std::lock_guard lock(mutex_);
  const std::string sql =
      fmt::format("SELECT {} FROM functions ORDER BY created_at_ms, id", kFunctionColumns);
  Statement stmt(db_, sql.c_str());
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  std::vector<FunctionRecord> out;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) out.push_back(ReadFunction(stmt));
  if (rc != SQLITE_DONE) return SqliteError(db_, "sqlite list functions");
  return out;
}

Result<int64_t> SqliteStore::LatestRevision() {
  std::lock_guard lock(mutex_);
  // sqlite_sequence keeps the highest key AUTOINCREMENT handed out, also after the log was
  // pruned; it has no row before the first change.
  Statement stmt(db_, "SELECT seq FROM sqlite_sequence WHERE name = 'function_changes'");
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  const int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_DONE) return int64_t{0};
  if (rc != SQLITE_ROW) return SqliteError(db_, "sqlite latest revision");
  return stmt.Int(0);
}

Result<std::vector<FunctionChange>> SqliteStore::Changes(int64_t since_revision, int limit) {
  std::lock_guard lock(mutex_);
  Statement stmt(db_,
                 "SELECT revision, function_id, kind FROM function_changes WHERE revision > ?1 "
                 "ORDER BY revision LIMIT ?2");
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  stmt.Bind(1, since_revision);
  stmt.Bind(2, int64_t{limit});
  std::vector<FunctionChange> out;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    out.push_back(FunctionChange{stmt.Int(0), stmt.Text(1), stmt.Text(2)});
  }
  if (rc != SQLITE_DONE) return SqliteError(db_, "sqlite changes");
  return out;
}

Result<VersionRecord> SqliteStore::PublishVersion(const VersionRecord& version) {
  std::lock_guard lock(mutex_);
  WriteTransaction transaction(db_);
  if (!transaction.begun()) return tl::unexpected(transaction.begun().error());
  auto last =
      QueryInt(db_, "SELECT last_version_number FROM functions WHERE id = ?1", version.function_id);
  if (!last) return tl::unexpected(last.error());
  if (!*last) return FunctionNotFound(version.function_id);
  VersionRecord stored = version;
  stored.number = static_cast<int>(**last + 1);
  {
    Statement bump(db_, "UPDATE functions SET last_version_number = ?2 WHERE id = ?1");
    if (!bump.ok()) return SqliteError(db_, "sqlite prepare");
    bump.Bind(1, version.function_id);
    bump.Bind(2, int64_t{stored.number});
    if (sqlite3_step(bump.get()) != SQLITE_DONE) return SqliteError(db_, "sqlite publish");
  }
  Statement insert(db_, R"sql(
    INSERT INTO function_versions (function_id, number, description, created_at_ms, config_json)
    VALUES (?1, ?2, ?3, ?4, ?5))sql");
  if (!insert.ok()) return SqliteError(db_, "sqlite prepare");
  insert.Bind(1, version.function_id);
  insert.Bind(2, int64_t{stored.number});
  insert.Bind(3, version.description);
  insert.Bind(4, version.created_at_ms);
  insert.Bind(5, ConfigJson(version.config).dump());
  if (sqlite3_step(insert.get()) != SQLITE_DONE) return SqliteError(db_, "sqlite publish");
  if (auto logged = LogChange(version.function_id, "versions"); !logged) {
    return tl::unexpected(logged.error());
  }
  if (auto r = transaction.Commit(); !r) return tl::unexpected(r.error());
  stored.config.id = version.function_id;
  return stored;
}

Result<std::vector<VersionRecord>> SqliteStore::ListVersions(const std::string& function_id) {
  std::lock_guard lock(mutex_);
  Statement stmt(db_, R"sql(
    SELECT number, description, created_at_ms, config_json FROM function_versions
    WHERE function_id = ?1 ORDER BY number)sql");
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  stmt.Bind(1, function_id);
  std::vector<VersionRecord> out;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    VersionRecord v;
    v.function_id = function_id;
    v.number = static_cast<int>(stmt.Int(0));
    v.description = stmt.Text(1);
    v.created_at_ms = stmt.Int(2);
    v.config = ConfigFromJson(stmt.Text(3), function_id);
    v.config.version = v.number;
    out.push_back(std::move(v));
  }
  if (rc != SQLITE_DONE) return SqliteError(db_, "sqlite list versions");
  return out;
}

Result<void> SqliteStore::DeleteVersion(const std::string& function_id, int number) {
  std::lock_guard lock(mutex_);
  WriteTransaction transaction(db_);
  if (!transaction.begun()) return transaction.begun();
  auto aliased = QueryInt(db_,
                          "SELECT 1 FROM function_aliases WHERE function_id = ?1 AND "
                          "(version = ?2 OR additional_version = ?2)",
                          function_id, int64_t{number});
  if (!aliased) return tl::unexpected(aliased.error());
  if (*aliased) {
    return MakeError(
        ErrorCode::kConflict,
        fmt::format("version {} is used by an alias: move or delete the alias first", number));
  }
  Statement stmt(db_, "DELETE FROM function_versions WHERE function_id = ?1 AND number = ?2");
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  stmt.Bind(1, function_id);
  stmt.Bind(2, int64_t{number});
  if (sqlite3_step(stmt.get()) != SQLITE_DONE) return SqliteError(db_, "sqlite delete version");
  if (sqlite3_changes(db_) == 0) {
    return MakeError(ErrorCode::kNotFound, fmt::format("version {} not found", number));
  }
  if (auto logged = LogChange(function_id, "versions"); !logged) {
    return tl::unexpected(logged.error());
  }
  return transaction.Commit();
}

Result<void> SqliteStore::PutAlias(const AliasRecord& alias, bool create,
                                   const std::optional<std::string>& expected_revision_id) {
  std::lock_guard lock(mutex_);
  WriteTransaction transaction(db_);
  if (!transaction.begun()) return transaction.begun();
  auto function = QueryInt(db_, "SELECT 1 FROM functions WHERE id = ?1", alias.function_id);
  if (!function) return tl::unexpected(function.error());
  if (!*function) return FunctionNotFound(alias.function_id);
  for (std::optional<int> number : {std::optional<int>(alias.version), alias.additional_version}) {
    if (!number) continue;
    auto exists =
        QueryInt(db_, "SELECT 1 FROM function_versions WHERE function_id = ?1 AND number = ?2",
                 alias.function_id, int64_t{*number});
    if (!exists) return tl::unexpected(exists.error());
    if (!*exists) {
      return MakeError(ErrorCode::kNotFound, fmt::format("version {} not found", *number));
    }
  }
  Statement existing(db_,
                     "SELECT revision_id, created_at_ms FROM function_aliases WHERE "
                     "function_id = ?1 AND name = ?2");
  if (!existing.ok()) return SqliteError(db_, "sqlite prepare");
  existing.Bind(1, alias.function_id);
  existing.Bind(2, alias.name);
  const int found = sqlite3_step(existing.get());
  if (found != SQLITE_ROW && found != SQLITE_DONE) return SqliteError(db_, "sqlite get alias");
  int64_t created_at_ms = alias.created_at_ms;
  if (create && found == SQLITE_ROW) {
    return MakeError(ErrorCode::kAlreadyExists, fmt::format("alias {} already exists", alias.name));
  }
  if (!create) {
    if (found != SQLITE_ROW) {
      return MakeError(ErrorCode::kNotFound, fmt::format("alias {} not found", alias.name));
    }
    if (expected_revision_id && existing.Text(0) != *expected_revision_id) {
      return MakeError(
          ErrorCode::kConflict,
          fmt::format("alias {} was changed by someone else: read it again", alias.name));
    }
    created_at_ms = existing.Int(1);
  }
  sqlite3_reset(existing.get());
  Statement stmt(db_, R"sql(
    INSERT OR REPLACE INTO function_aliases (function_id, name, version, additional_version,
      additional_weight, description, revision_id, created_at_ms, updated_at_ms)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9))sql");
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  stmt.Bind(1, alias.function_id);
  stmt.Bind(2, alias.name);
  stmt.Bind(3, int64_t{alias.version});
  stmt.Bind(4, alias.additional_version ? std::optional<int64_t>(*alias.additional_version)
                                        : std::nullopt);
  stmt.Bind(5, alias.additional_weight);
  stmt.Bind(6, alias.description);
  stmt.Bind(7, alias.revision_id);
  stmt.Bind(8, created_at_ms);
  stmt.Bind(9, alias.updated_at_ms);
  if (sqlite3_step(stmt.get()) != SQLITE_DONE) return SqliteError(db_, "sqlite put alias");
  if (auto logged = LogChange(alias.function_id, "aliases"); !logged) {
    return tl::unexpected(logged.error());
  }
  return transaction.Commit();
}

Result<std::vector<AliasRecord>> SqliteStore::ListAliases(const std::string& function_id) {
  std::lock_guard lock(mutex_);
  Statement stmt(db_, R"sql(
    SELECT function_id, name, version, additional_version, additional_weight, description,
      revision_id, created_at_ms, updated_at_ms
    FROM function_aliases WHERE function_id = ?1 ORDER BY name)sql");
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  stmt.Bind(1, function_id);
  std::vector<AliasRecord> out;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) out.push_back(ReadAlias(stmt));
  if (rc != SQLITE_DONE) return SqliteError(db_, "sqlite list aliases");
  return out;
}

Result<void> SqliteStore::DeleteAlias(const std::string& function_id, const std::string& name) {
  std::lock_guard lock(mutex_);
  WriteTransaction transaction(db_);
  if (!transaction.begun()) return transaction.begun();
  Statement stmt(db_, "DELETE FROM function_aliases WHERE function_id = ?1 AND name = ?2");
  if (!stmt.ok()) return SqliteError(db_, "sqlite prepare");
  stmt.Bind(1, function_id);
  stmt.Bind(2, name);
  if (sqlite3_step(stmt.get()) != SQLITE_DONE) return SqliteError(db_, "sqlite delete alias");
  if (sqlite3_changes(db_) == 0) {
    return MakeError(ErrorCode::kNotFound, fmt::format("alias {} not found", name));
  }
  if (auto logged = LogChange(function_id, "aliases"); !logged) {
    return tl::unexpected(logged.error());
  }
  return transaction.Commit();
}

}  // namespace wisp::store
