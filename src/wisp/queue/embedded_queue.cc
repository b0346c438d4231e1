#include "wisp/queue/embedded_queue.h"

#include "wisp/store/database_files.h"
#include "wisp/store/sqlite_statement.h"

#include <sqlite3.h>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "wisp/common/defer.h"
#include "wisp/common/json_text.h"

namespace wisp::queue {
namespace {
using nlohmann::json;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS invocations (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  function_id TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  event_json TEXT NOT NULL,
  headers_json TEXT NOT NULL,
  timeout_ms INTEGER NOT NULL,
  response_json TEXT NOT NULL,
  logs_json TEXT NOT NULL,
  error TEXT NOT NULL,
  dead_letter_reason TEXT NOT NULL,
  history_json TEXT NOT NULL,
  version INTEGER NOT NULL,
  created_at_ms INTEGER NOT NULL,
  enqueued_at_ms INTEGER NOT NULL,
  next_attempt_at_ms INTEGER NOT NULL,
  started_at_ms INTEGER,
  finished_at_ms INTEGER,
  duration_ms INTEGER NOT NULL,
  trace_id TEXT NOT NULL DEFAULT '',
  qualifier TEXT NOT NULL DEFAULT ''
);
)sql";

// Lists page by creation time, filtered by status or function or neither (replacing indexes by
// seq that a file of an older wispd has).
constexpr const char* kIndexes = R"sql(
DROP INDEX IF EXISTS invocations_by_status;
DROP INDEX IF EXISTS invocations_by_function;
CREATE INDEX IF NOT EXISTS invocations_by_status_time ON invocations(status, created_at_ms);
CREATE INDEX IF NOT EXISTS invocations_by_function_time ON invocations(function_id, created_at_ms);
CREATE INDEX IF NOT EXISTS invocations_by_time ON invocations(created_at_ms);
)sql";

constexpr const char* kColumns =
    "id, function_id, status, attempts, event_json, headers_json, timeout_ms, response_json, "
    "logs_json, error, dead_letter_reason, history_json, version, created_at_ms, enqueued_at_ms, "
    "next_attempt_at_ms, started_at_ms, finished_at_ms, duration_ms, trace_id, qualifier";

// Columns added after the first release, with their declarations: a queue file written by an
// older wispd gets them on open.
constexpr store::AddedColumn kAddedColumns[] = {
    {"trace_id", "TEXT NOT NULL DEFAULT ''"},
    {"qualifier", "TEXT NOT NULL DEFAULT ''"},
};

using store::Exec;
using store::SqliteError;
using store::Statement;

std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string HistoryJson(const std::vector<Attempt>& history) {
  json out = json::array();
  for (const auto& a : history) {
    out.push_back({{"attempt", a.number},
                   {"status", a.status},
                   {"started_at_ms", a.started_at_ms},
                   {"finished_at_ms", a.finished_at_ms},
                   {"error", a.error}});
  }
  return Dump(out);
}

std::vector<Attempt> ParseHistory(const std::string& text) {
  std::vector<Attempt> out;
  const json value = json::parse(text, nullptr, false);
  if (!value.is_array()) return out;
  for (const auto& a : value) {
    if (!a.is_object()) continue;
    out.push_back(Attempt{a.value("attempt", 0), a.value("status", ""),
                          a.value("started_at_ms", int64_t{0}),
                          a.value("finished_at_ms", int64_t{0}), a.value("error", "")});
  }
  return out;
}

std::vector<std::string> ParseLogs(const std::string& text) {
  const json value = json::parse(text, nullptr, false);
  std::vector<std::string> out;
  if (!value.is_array()) return out;
  for (const auto& line : value) {
    if (line.is_string()) out.push_back(line.get<std::string>());
  }
  return out;
}

// Reads a row selected with kColumns.
Invocation ReadRow(Statement& stmt) {
  Invocation r;
  r.id = stmt.Text(0);
  r.function_id = stmt.Text(1);
  r.status = stmt.Text(2);
  r.attempts = static_cast<int>(stmt.Int(3));
  r.event_json = stmt.Text(4);
  r.headers_json = stmt.Text(5);
  r.timeout_ms = stmt.Int(6);
  r.response_json = stmt.Text(7);
  r.logs = ParseLogs(stmt.Text(8));
  r.error = stmt.Text(9);
  r.dead_letter_reason = stmt.Text(10);
  r.history = ParseHistory(stmt.Text(11));
  r.version = static_cast<int>(stmt.Int(12));
  r.created_at_ms = stmt.Int(13);
  r.enqueued_at_ms = stmt.Int(14);
  r.next_attempt_at_ms = stmt.Int(15);
  r.started_at_ms = stmt.OptionalInt(16);
  r.finished_at_ms = stmt.OptionalInt(17);
  r.duration_ms = stmt.Int(18);
  r.trace_id = stmt.Text(19);
  r.qualifier = stmt.Text(20);
  return r;
}

Result<sqlite3*> OpenDb(const std::string& path, int flags) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return MakeError(ErrorCode::kInternal, fmt::format("open {}: {}", path, message));
  }
  return db;
}

tl::unexpected<Error> NotFound(const std::string& id) {
  return MakeError(ErrorCode::kNotFound, fmt::format("invocation {} not found", id));
}

}  // namespace

Result<std::unique_ptr<EmbeddedQueue>> EmbeddedQueue::Open(const std::string& path,
                                                           int64_t now_ms) {
  // Owner-only: the queue holds events and results.
  if (auto made = store::MakeDatabaseFilesPrivate(path); !made) return tl::unexpected(made.error());
  auto write_db = OpenDb(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (!write_db) return tl::unexpected(write_db.error());
  Defer close_write([&] { sqlite3_close(*write_db); });
  // FULL: a commit returns only after the WAL is fsync'd; that is what makes a 202 durable
  // against power loss, not just against a crash of wispd.
  for (const char* sql : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                          "PRAGMA busy_timeout=5000", kSchema}) {
    if (auto r = Exec(*write_db, sql); !r) return tl::unexpected(r.error());
  }
  if (auto r = store::AddMissingColumns(*write_db, "invocations", kAddedColumns); !r) {
    return tl::unexpected(r.error());
  }
  if (auto r = Exec(*write_db, kIndexes); !r) return tl::unexpected(r.error());
  auto read_db = OpenDb(path, SQLITE_OPEN_READONLY);
  if (!read_db) return tl::unexpected(read_db.error());
  sqlite3_busy_timeout(*read_db, 5000);
  close_write.Cancel();
  std::unique_ptr<EmbeddedQueue> queue(new EmbeddedQueue(*write_db, *read_db));
  if (auto loaded = queue->Load(now_ms); !loaded) return tl::unexpected(loaded.error());
  queue->writer_ = std::thread([q = queue.get()] { q->RunWriter(); });
  return queue;
}

EmbeddedQueue::EmbeddedQueue(sqlite3* write_db, sqlite3* read_db)
    : write_db_(write_db), read_db_(read_db) {}

EmbeddedQueue::~EmbeddedQueue() {
  if (writer_.joinable()) {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    writer_.join();
  }
  sqlite3_close(read_db_);
  sqlite3_close(write_db_);
}

Result<void> EmbeddedQueue::Load(int64_t now_ms) {
  const std::string sql = fmt::format(
      "SELECT {} FROM invocations WHERE status IN ('queued', 'running') ORDER BY seq", kColumns);
  Statement stmt(write_db_, sql.c_str());
  if (!stmt.ok()) return SqliteError(write_db_, "queue prepare");
  int rc;
  std::lock_guard lock(mutex_);
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    Invocation invocation = ReadRow(stmt);
    int64_t due = invocation.next_attempt_at_ms;
    if (invocation.status == kRunning) {
      // Its attempt was cut short by the end of the previous process: run it again now. The
      // attempt still counts, so a function that brings wispd down cannot loop forever.
      invocation.history.push_back(Attempt{invocation.attempts, "interrupted",
                                           invocation.started_at_ms.value_or(now_ms), now_ms,
                                           "wispd stopped during the attempt"});
      invocation.status = kQueued;
      due = now_ms;
    }
    const std::string id = invocation.id;
    Entry& entry = live_[id];
    entry.invocation = std::move(invocation);
    MakeDue(entry, due);
  }
  if (rc != SQLITE_DONE) return SqliteError(write_db_, "queue load");
  Statement count(write_db_, "SELECT COUNT(*) FROM invocations WHERE status = 'dead_letter'");
  if (!count.ok() || sqlite3_step(count.get()) != SQLITE_ROW) {
    return SqliteError(write_db_, "queue count dead letters");
  }
  dead_letters_ = static_cast<uint64_t>(count.Int(0));
  if (!live_.empty()) spdlog::info("queue: {} pending invocations loaded", live_.size());
  return {};
}

void EmbeddedQueue::MakeDue(Entry& entry, int64_t due_ms) {
  entry.invocation.status = kQueued;
  entry.invocation.next_attempt_at_ms = due_ms;
  entry.due_key = DueKey{due_ms, ++order_};
  due_[entry.invocation.function_id].emplace(entry.due_key, entry.invocation.id);
  ++queued_;
}

void EmbeddedQueue::RemoveDue(Entry& entry) {
  auto it = due_.find(entry.invocation.function_id);
  if (it == due_.end()) return;
  if (it->second.erase(entry.due_key) > 0) --queued_;
  if (it->second.empty()) due_.erase(it);
}

uint64_t EmbeddedQueue::QueueWrite(const Entry& entry, DoneCallback done) {
  Write write;
  write.seq = ++last_seq_;
  write.insert = false;
  // An update never rewrites the event: copy everything else.
  const Invocation& source = entry.invocation;
  Invocation& copy = write.invocation;
  copy.id = source.id;
  copy.status = source.status;
  copy.attempts = source.attempts;
  copy.response_json = source.response_json;
  copy.logs = source.logs;
  copy.error = source.error;
  copy.dead_letter_reason = source.dead_letter_reason;
  copy.history = source.history;
  copy.version = source.version;
  copy.enqueued_at_ms = source.enqueued_at_ms;
  copy.next_attempt_at_ms = source.next_attempt_at_ms;
  copy.started_at_ms = source.started_at_ms;
  copy.finished_at_ms = source.finished_at_ms;
  copy.duration_ms = source.duration_ms;
  write.done = std::move(done);
  const uint64_t seq = write.seq;
  writes_.push_back(std::move(write));
  wake_.notify_one();
  return seq;
}

void EmbeddedQueue::Enqueue(Invocation invocation, DoneCallback done) {
  invocation.status = kQueued;
  if (invocation.enqueued_at_ms == 0) invocation.enqueued_at_ms = invocation.created_at_ms;
  if (invocation.next_attempt_at_ms == 0) invocation.next_attempt_at_ms = invocation.created_at_ms;
  {
    std::lock_guard lock(mutex_);
    Write write;
    write.seq = ++last_seq_;
    write.insert = true;
    write.invocation = std::move(invocation);
    write.done = std::move(done);
    writes_.push_back(std::move(write));
  }
  wake_.notify_one();
}

asio::awaitable<Result<std::vector<Invocation>>> EmbeddedQueue::Claim(ClaimRequest request) {
  co_return ClaimNow(request);
}

asio::awaitable<Result<Lease>> EmbeddedQueue::Renew(Lease lease, int64_t now_ms, int64_t lease_ms) {
  co_return RenewNow(lease, now_ms, lease_ms);
}

asio::awaitable<Result<Invocation>> EmbeddedQueue::Finish(Lease lease, AttemptResult result,
                                                          RetryPolicy policy, int64_t now_ms) {
  co_return FinishNow(lease, result, policy, now_ms);
}

asio::awaitable<Result<void>> EmbeddedQueue::Release(Lease lease, int64_t due_ms) {
  co_return ReleaseNow(lease, due_ms);
}

asio::awaitable<Result<void>> EmbeddedQueue::DeadLetter(Lease lease, std::string reason,
                                                        int64_t now_ms) {
  // Copied, not moved, out of the coroutine's parameter: see NOTES.md on g++ 12.
  co_return DeadLetterNow(lease, reason, now_ms);
}

Result<std::vector<Invocation>> EmbeddedQueue::ClaimNow(const ClaimRequest& request) {
  if (request.owner.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "a claim needs the claimer's name (owner)");
  }
  if (request.lease_ms <= 0) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("a claim's lease must last more than 0 ms, not {} ms", request.lease_ms));
  }
  const int64_t now_ms = request.now_ms;
  std::vector<Invocation> claimed;
  std::lock_guard lock(mutex_);
  TakeBackExpired(now_ms);
  for (auto it = due_.begin(); it != due_.end();) {
    auto& by_due = it->second;
    size_t room = by_due.begin()->first.first <= now_ms ? request.capacity(it->first) : 0;
    while (room > 0 && !by_due.empty() && by_due.begin()->first.first <= now_ms) {
      const std::string id = by_due.begin()->second;
      by_due.erase(by_due.begin());
      --queued_;
      --room;
      Entry& entry = live_.at(id);
      Invocation& invocation = entry.invocation;
      invocation.status = kRunning;
      ++invocation.attempts;
      invocation.started_at_ms = now_ms;
      invocation.finished_at_ms.reset();
      invocation.duration_ms = 0;
      invocation.lease = Lease{id, request.owner, ++lease_tokens_, now_ms + request.lease_ms};
      entry.expiry_key = DueKey{invocation.lease.expires_at_ms, ++order_};
      expiries_.emplace(entry.expiry_key, id);
      ++running_;
      entry.last_write = QueueWrite(entry);
      claimed.push_back(invocation);
    }
    it = by_due.empty() ? due_.erase(it) : std::next(it);
  }
  return claimed;
}

void EmbeddedQueue::TakeBackExpired(int64_t now_ms) {
  while (!expiries_.empty() && expiries_.begin()->first.first <= now_ms) {
    const std::string id = expiries_.begin()->second;
    expiries_.erase(expiries_.begin());
    Entry& entry = live_.at(id);
    Invocation& invocation = entry.invocation;
    // As after a crash: the attempt counts, so a function that hangs or kills its worker
    // cannot run forever.
    invocation.history.push_back(Attempt{
        invocation.attempts, "interrupted", invocation.started_at_ms.value_or(now_ms), now_ms,
        fmt::format("the lease of {} expired during the attempt", invocation.lease.owner)});
    invocation.lease = Lease{};
    --running_;
    MakeDue(entry, now_ms);
    entry.last_write = QueueWrite(entry);
  }
}

std::optional<int64_t> EmbeddedQueue::NextDue(const CapacityFn& capacity) const {
  std::optional<int64_t> next;
  std::lock_guard lock(mutex_);
  for (const auto& [function_id, by_due] : due_) {
    const int64_t due = by_due.begin()->first.first;
    if ((!next || due < *next) && capacity(function_id) > 0) next = due;
  }
  // A lease that expires makes its invocation due again.
  for (const auto& [key, id] : expiries_) {
    if (next && key.first >= *next) break;
    if (capacity(live_.at(id).invocation.function_id) > 0) {
      next = key.first;
      break;
    }
  }
  return next;
}

Result<EmbeddedQueue::Entry*> EmbeddedQueue::Held(const Lease& lease) {
  auto it = live_.find(lease.invocation_id);
  if (it == live_.end()) return NotFound(lease.invocation_id);
  Entry& entry = it->second;
  const Invocation& invocation = entry.invocation;
  if (invocation.status != kRunning || invocation.lease.token != lease.token ||
      invocation.lease.owner != lease.owner) {
    return MakeError(
        ErrorCode::kFailedPrecondition,
        fmt::format("invocation {} is {}{}: lease {} of {} is no longer held (it expired and the "
                    "queue took the invocation back)",
                    lease.invocation_id, invocation.status,
                    invocation.status == kRunning ? " under a newer lease" : "", lease.token,
                    lease.owner.empty() ? "nobody" : lease.owner));
  }
  return &entry;
}

void EmbeddedQueue::EndLease(Entry& entry) {
  expiries_.erase(entry.expiry_key);
  entry.invocation.lease = Lease{};
  --running_;
}

Result<Lease> EmbeddedQueue::RenewNow(const Lease& lease, int64_t now_ms, int64_t lease_ms) {
  if (lease_ms <= 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("a lease must last more than 0 ms, not {} ms", lease_ms));
  }
  std::lock_guard lock(mutex_);
  auto held = Held(lease);
  if (!held) return tl::unexpected(held.error());
  Entry& entry = **held;
  // Nothing to write: leases are not kept on disk.
  expiries_.erase(entry.expiry_key);
  entry.invocation.lease.expires_at_ms = now_ms + lease_ms;
  entry.expiry_key = DueKey{entry.invocation.lease.expires_at_ms, ++order_};
  expiries_.emplace(entry.expiry_key, lease.invocation_id);
  return entry.invocation.lease;
}

Result<Invocation> EmbeddedQueue::FinishNow(const Lease& lease, const AttemptResult& result,
                                            const RetryPolicy& policy, int64_t now_ms) {
  std::lock_guard lock(mutex_);
  auto held = Held(lease);
  if (!held) return tl::unexpected(held.error());
  Entry& entry = **held;
  EndLease(entry);
  ApplyAttempt(entry.invocation, result, policy, now_ms);
  if (entry.invocation.status == kDeadLetter) ++dead_letters_;
  if (entry.invocation.status == kQueued) MakeDue(entry, entry.invocation.next_attempt_at_ms);
  entry.last_write = QueueWrite(entry);
  Invocation out = entry.invocation;
  return out;
}

Result<void> EmbeddedQueue::ReleaseNow(const Lease& lease, int64_t due_ms) {
  std::lock_guard lock(mutex_);
  auto held = Held(lease);
  if (!held) return tl::unexpected(held.error());
  Entry& entry = **held;
  EndLease(entry);
  --entry.invocation.attempts;
  MakeDue(entry, due_ms);
  entry.last_write = QueueWrite(entry);
  return {};
}

Result<void> EmbeddedQueue::DeadLetterNow(const Lease& lease, std::string reason, int64_t now_ms) {
  std::lock_guard lock(mutex_);
  auto held = Held(lease);
  if (!held) return tl::unexpected(held.error());
  Entry& entry = **held;
  EndLease(entry);
  Invocation& invocation = entry.invocation;
  --invocation.attempts;  // it never ran
  invocation.status = kDeadLetter;
  ++dead_letters_;
  invocation.dead_letter_reason = std::move(reason);
  invocation.next_attempt_at_ms = 0;
  invocation.finished_at_ms = now_ms;
  entry.last_write = QueueWrite(entry);
  return {};
}

Result<Invocation> EmbeddedQueue::Requeue(const std::string& id, int64_t now_ms) {
  std::optional<Invocation> stored;
  {
    std::lock_guard lock(mutex_);
    if (!live_.count(id)) stored.emplace();
  }
  if (stored) {
    auto read = ReadOne(id);
    if (!read) return tl::unexpected(read.error());
    *stored = std::move(*read);
  }
  Result<void> outcome;
  bool done = false;
  uint64_t seq = 0;
  Invocation out;
  std::unique_lock lock(mutex_);
  auto it = live_.find(id);
  if (it == live_.end()) {
    if (!stored) return NotFound(id);
    it = live_.emplace(id, Entry{std::move(*stored), 0, {}}).first;
  }
  Entry& entry = it->second;
  if (entry.invocation.status != kDeadLetter) {
    // A record read from disk while it was not live must not stay live.
    const std::string status = entry.invocation.status;
    if (!entry.invocation.pending() && entry.last_write <= committed_seq_) live_.erase(it);
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("invocation {} is {}: only dead-lettered invocations can be "
                                 "requeued",
                                 id, status));
  }
  Invocation& invocation = entry.invocation;
  --dead_letters_;
  invocation.attempts = 0;
  invocation.enqueued_at_ms = now_ms;
  invocation.dead_letter_reason.clear();
  invocation.history.push_back(Attempt{0, "requeued", now_ms, now_ms, ""});
  MakeDue(entry, now_ms);
  seq = QueueWrite(entry, [&](Result<void> r) {
    std::lock_guard inner(mutex_);
    outcome = std::move(r);
    done = true;
  });
  entry.last_write = seq;
  out = invocation;
  committed_.wait(lock, [&] { return done; });
  if (!outcome) return tl::unexpected(outcome.error());
  return out;
}

Result<Invocation> EmbeddedQueue::Get(const std::string& id) {
  {
    std::lock_guard lock(mutex_);
    auto it = live_.find(id);
    if (it != live_.end()) return it->second.invocation;
  }
  // Not live: finished and written (a record leaves memory only once it is on disk).
  return ReadOne(id);
}

Result<Invocation> EmbeddedQueue::ReadOne(const std::string& id) {
  std::lock_guard lock(read_mutex_);
  const std::string sql = fmt::format("SELECT {} FROM invocations WHERE id = ?1", kColumns);
  Statement stmt(read_db_, sql.c_str());
  if (!stmt.ok()) return SqliteError(read_db_, "queue prepare");
  stmt.Bind(1, id);
  const int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_DONE) return NotFound(id);
  if (rc != SQLITE_ROW) return SqliteError(read_db_, "queue get invocation");
  return ReadRow(stmt);
}

Result<std::vector<Invocation>> EmbeddedQueue::List(const ListFilter& filter) {
  Flush();
  std::lock_guard lock(read_mutex_);
  // `function_id = ?1` only when a function is named: the planner can use an index for that
  // term, not for `(?1 = '' OR function_id = ?1)`.
  const std::string sql = fmt::format(
      "SELECT {} FROM invocations WHERE {} AND (?2 = '' OR status = ?2) AND created_at_ms >= ?5 "
      "AND created_at_ms < ?6 ORDER BY created_at_ms DESC, seq DESC LIMIT ?3 OFFSET ?4",
      filter.keys_only ? "id, function_id, status, created_at_ms" : kColumns,
      filter.function_id.empty() ? "?1 = ''" : "function_id = ?1");
  Statement stmt(read_db_, sql.c_str());
  if (!stmt.ok()) return SqliteError(read_db_, "queue prepare");
  stmt.Bind(1, filter.function_id);
  stmt.Bind(2, filter.status);
  stmt.Bind(3, int64_t{filter.limit});
  stmt.Bind(4, int64_t{filter.offset});
  stmt.Bind(5, filter.since_ms.value_or(INT64_MIN));
  stmt.Bind(6, filter.until_ms.value_or(INT64_MAX));
  std::vector<Invocation> out;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    if (filter.keys_only) {
      Invocation key;
      key.id = stmt.Text(0);
      key.function_id = stmt.Text(1);
      key.status = stmt.Text(2);
      key.created_at_ms = stmt.Int(3);
      out.push_back(std::move(key));
    } else {
      out.push_back(ReadRow(stmt));
    }
  }
  if (rc != SQLITE_DONE) return SqliteError(read_db_, "queue list invocations");
  if (filter.keys_only) return out;
  // A record in memory may be newer than its row (a claim written after the Flush above).
  std::lock_guard live_lock(mutex_);
  for (auto& invocation : out) {
    auto it = live_.find(invocation.id);
    if (it != live_.end()) invocation = it->second.invocation;
  }
  return out;
}

void EmbeddedQueue::Flush() {
  std::unique_lock lock(mutex_);
  const uint64_t target = last_seq_;
  committed_.wait(lock, [&] { return committed_seq_ >= target; });
}

QueueStats EmbeddedQueue::stats() const {
  std::lock_guard lock(mutex_);
  return QueueStats{queued_, running_, accepted_, commits_, dead_letters_};
}

void EmbeddedQueue::RunWriter() {
  std::vector<Write> batch;
  std::vector<Result<void>> outcomes;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !writes_.empty(); });
      if (writes_.empty() && stopping_) return;
      batch.swap(writes_);
    }
    outcomes.assign(batch.size(), Result<void>{});
    auto committed = WriteBatch(batch, outcomes);
    if (!committed) {
      spdlog::error("queue: {} writes failed: {}", batch.size(), committed.error().message);
      for (auto& outcome : outcomes) outcome = tl::unexpected(committed.error());
    }
    std::vector<std::pair<DoneCallback, Result<void>>> callbacks;
    {
      std::lock_guard lock(mutex_);
      ++commits_;
      for (size_t i = 0; i < batch.size(); ++i) {
        Write& write = batch[i];
        const std::string& id = write.invocation.id;
        if (write.insert) {
          if (!outcomes[i]) continue;
          // On disk: from now on the dispatcher may run it.
          ++accepted_;
          Entry& entry = live_[id];
          entry.invocation = std::move(write.invocation);
          entry.last_write = write.seq;
          MakeDue(entry, entry.invocation.next_attempt_at_ms);
        } else {
          // A finished record leaves memory once its last change is on disk.
          auto it = live_.find(id);
          if (it != live_.end() && !it->second.invocation.pending() &&
              it->second.last_write <= write.seq) {
            live_.erase(it);
          }
        }
      }
      committed_seq_ = batch.back().seq;
      for (size_t i = 0; i < batch.size(); ++i) {
        if (batch[i].done) callbacks.emplace_back(std::move(batch[i].done), outcomes[i]);
      }
    }
    for (auto& [done, outcome] : callbacks) done(std::move(outcome));
    committed_.notify_all();
    batch.clear();
  }
}

Result<void> EmbeddedQueue::WriteBatch(std::vector<Write>& writes,
                                       std::vector<Result<void>>& outcomes) {
  if (auto r = Exec(write_db_, "BEGIN"); !r) return r;
  Defer rollback([this] { Exec(write_db_, "ROLLBACK"); });
  const std::string insert_sql = fmt::format(
      "INSERT INTO invocations ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
      "?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21) ON CONFLICT(id) DO NOTHING",
      kColumns);
  Statement insert(write_db_, insert_sql.c_str());
  Statement update(write_db_, R"sql(
    UPDATE invocations SET status = ?2, attempts = ?3, response_json = ?4, logs_json = ?5,
      error = ?6, dead_letter_reason = ?7, history_json = ?8, version = ?9, enqueued_at_ms = ?10,
      next_attempt_at_ms = ?11, started_at_ms = ?12, finished_at_ms = ?13, duration_ms = ?14
    WHERE id = ?1)sql");
  if (!insert.ok() || !update.ok()) return SqliteError(write_db_, "queue prepare");
  // An update superseded by a later one of the same invocation in this batch need not be
  // written (a claim and its result often share a batch): updates carry the whole state.
  std::unordered_map<std::string_view, size_t> last_update;
  for (size_t i = 0; i < writes.size(); ++i) {
    if (!writes[i].insert) last_update[writes[i].invocation.id] = i;
  }
  for (size_t i = 0; i < writes.size(); ++i) {
    const Invocation& r = writes[i].invocation;
    if (!writes[i].insert && last_update[r.id] != i) continue;
    std::string logs;
    AppendJsonStringArray(logs, r.logs);
    const std::string history = HistoryJson(r.history);
    if (writes[i].insert) {
      Statement& s = insert;
      sqlite3_reset(s.get());
      s.Bind(1, r.id);
      s.Bind(2, r.function_id);
      s.Bind(3, r.status);
      s.Bind(4, int64_t{r.attempts});
      s.Bind(5, r.event_json);
      s.Bind(6, r.headers_json);
      s.Bind(7, r.timeout_ms);
      s.Bind(8, r.response_json);
      s.Bind(9, logs);
      s.Bind(10, r.error);
      s.Bind(11, r.dead_letter_reason);
      s.Bind(12, history);
      s.Bind(13, int64_t{r.version});
      s.Bind(14, r.created_at_ms);
      s.Bind(15, r.enqueued_at_ms);
      s.Bind(16, r.next_attempt_at_ms);
      s.Bind(17, r.started_at_ms);
      s.Bind(18, r.finished_at_ms);
      s.Bind(19, r.duration_ms);
      s.Bind(20, r.trace_id);
      s.Bind(21, r.qualifier);
      if (sqlite3_step(s.get()) != SQLITE_DONE) return SqliteError(write_db_, "queue insert");
      if (sqlite3_changes(write_db_) == 0) {
        outcomes[i] =
            MakeError(ErrorCode::kAlreadyExists, fmt::format("invocation {} already exists", r.id));
      }
    } else {
      Statement& s = update;
      sqlite3_reset(s.get());
      s.Bind(1, r.id);
      s.Bind(2, r.status);
      s.Bind(3, int64_t{r.attempts});
      s.Bind(4, r.response_json);
      s.Bind(5, logs);
      s.Bind(6, r.error);
      s.Bind(7, r.dead_letter_reason);
      s.Bind(8, history);
      s.Bind(9, int64_t{r.version});
      s.Bind(10, r.enqueued_at_ms);
      s.Bind(11, r.next_attempt_at_ms);
      s.Bind(12, r.started_at_ms);
      s.Bind(13, r.finished_at_ms);
      s.Bind(14, r.duration_ms);
      if (sqlite3_step(s.get()) != SQLITE_DONE) return SqliteError(write_db_, "queue update");
    }
  }
  if (auto r = Exec(write_db_, "COMMIT"); !r) return r;
  rollback.Cancel();
  return {};
}

}  // namespace wisp::queue
