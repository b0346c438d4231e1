#include "wisp/store/invocation_writer.h"

#include <algorithm>
#include <iterator>
#include <optional>
#include <string_view>

#include <spdlog/spdlog.h>

namespace wisp::store {
namespace {

// Each function of `batch` once, then the `backlogged` ones: the pruning budget first trims the
// few records beyond the limit of every other function (a reader would see them until a backlog
// is gone), and what remains goes to the backlog.
std::vector<std::string> FunctionsToPrune(const std::vector<InvocationRecord>& batch,
                                          std::vector<std::string> backlogged) {
  std::vector<std::string_view> functions;
  functions.reserve(batch.size());
  for (const auto& record : batch) functions.emplace_back(record.function_id);
  std::sort(functions.begin(), functions.end());
  functions.erase(std::unique(functions.begin(), functions.end()), functions.end());
  std::sort(backlogged.begin(), backlogged.end());
  std::vector<std::string> out;
  out.reserve(functions.size() + backlogged.size());
  for (const auto function_id : functions) {
    if (!std::binary_search(backlogged.begin(), backlogged.end(), function_id)) {
      out.emplace_back(function_id);
    }
  }
  std::move(backlogged.begin(), backlogged.end(), std::back_inserter(out));
  return out;
}

// How many bytes of `text`, at most `max`, end on a UTF-8 character boundary (text that is not
// UTF-8 is cut at `max`, up to 3 bytes before).
size_t Utf8PrefixLength(std::string_view text, size_t max) {
  if (text.size() <= max) return text.size();
  size_t n = max;
  // Back up over continuation bytes (10xxxxxx) to the start of the character cut in two.
  for (int i = 0; i < 3 && n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80; ++i) {
    --n;
  }
  return n;
}

// The start of the last `max` bytes of `text` or later, on a character boundary.
size_t Utf8SuffixStart(std::string_view text, size_t max) {
  if (text.size() <= max) return 0;
  size_t n = text.size() - max;
  for (int i = 0; i < 3 && n < text.size() && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80;
       ++i) {
    ++n;
  }
  return n;
}

void CapText(std::string& text, std::optional<int64_t>& size, uint64_t max) {
  if (text.size() <= max) return;
  size = static_cast<int64_t>(text.size());
  // A copy of the prefix, not resize(): the record would otherwise keep the whole allocation
  // in the writer's queue until the batch is written.
  text = text.substr(0, Utf8PrefixLength(text, max));
}

// Keeps the last lines that fit: the end of a call's output says how it ended.
void CapLogs(std::vector<std::string>& logs, std::optional<int64_t>& size, uint64_t max) {
  uint64_t total = 0;
  for (const auto& line : logs) total += line.size();
  if (total <= max) return;
  size = static_cast<int64_t>(total);
  uint64_t kept = 0;
  size_t first = logs.size();
  while (first > 0 && kept + logs[first - 1].size() <= max) kept += logs[--first].size();
  if (first == logs.size()) {
    // The last line alone is over the cap: its end.
    std::string& last = logs.back();
    last = last.substr(Utf8SuffixStart(last, max));
    first = logs.size() - 1;
  }
  logs.erase(logs.begin(), logs.begin() + static_cast<std::ptrdiff_t>(first));
}

}  // namespace

void CapRecordFields(InvocationRecord& record, uint64_t max_field_bytes) {
  if (max_field_bytes == 0) return;
  CapText(record.event_json, record.event_size, max_field_bytes);
  CapText(record.response_json, record.response_size, max_field_bytes);
  CapLogs(record.logs, record.logs_size, max_field_bytes);
}

InvocationWriter::InvocationWriter(Store& store, const RecordLimits& limits)
    : store_(store),
      retention_{.keep = limits.records_per_function,
                 .min_excess = std::clamp(limits.records_per_function / 100, 1u, 64u),
                 .max_deleted = kMaxPrunedPerBatch,
                 .max_bytes = limits.max_total_bytes},
      max_field_bytes_(limits.max_field_bytes),
      // With a budget, the pages eviction frees below it are refilled by the next records.
      keep_free_bytes_(limits.max_total_bytes > 0 ? limits.max_total_bytes / 10 : kKeepFreeBytes),
      thread_([this] { Run(); }) {
  store_.RaiseOnLockWait(&priority_);
}

InvocationWriter::InvocationWriter(Store& store, uint32_t records_per_function)
    : InvocationWriter(store, RecordLimits{.records_per_function = records_per_function}) {}

InvocationWriter::~InvocationWriter() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  priority_.Raise();  // what is queued is written now, not in spare time
  wake_.notify_one();
  thread_.join();
  store_.RaiseOnLockWait(nullptr);
}

void InvocationWriter::Add(InvocationRecord record) {
  CapRecordFields(record, max_field_bytes_);
  uint64_t bytes = sizeof(record) + record.event_json.size() + record.response_json.size();
  for (const auto& line : record.logs) bytes += line.size();
  bool full;
  bool backlogged;
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(record));
    queued_bytes_ += bytes;
    ++added_;
    full = queue_.size() == kFullBatch;
    backlogged = Backlogged();
  }
  if (full) wake_.notify_one();
  if (backlogged) priority_.Raise();
}

void InvocationWriter::Flush() {
  std::unique_lock lock(mutex_);
  const uint64_t target = added_;
  if (done_ >= target) return;
  flush_requested_ = target;
  priority_.Raise();  // under mutex_: the writer lowers itself under it too, seeing the request
  wake_.notify_one();
  written_.wait(lock, [&] { return done_ >= target; });
}

uint64_t InvocationWriter::written() const {
  std::lock_guard lock(mutex_);
  return written_count_;
}

uint64_t InvocationWriter::failed_batches() const {
  std::lock_guard lock(mutex_);
  return failed_batches_;
}

uint64_t InvocationWriter::pruned() const {
  std::lock_guard lock(mutex_);
  return pruned_;
}

uint64_t InvocationWriter::evicted() const {
  std::lock_guard lock(mutex_);
  return evicted_;
}

uint64_t InvocationWriter::reclaimed_bytes() const {
  std::lock_guard lock(mutex_);
  return reclaimed_bytes_;
}

void InvocationWriter::Run() {
  priority_.Enter();
  std::vector<InvocationRecord> batch;
  std::vector<std::string> backlogged;  // functions with more records than retention has trimmed
  bool over_budget = false;             // the byte budget's eviction is not done
  bool reclaim_pending = false;         // free pages beyond the reserve are left
  int idle_wakeups = 0;
  for (;;) {
    bool reclaim = false;
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, kBatchInterval, [&] {
        return stopping_ || queue_.size() >= kFullBatch || flush_requested_ > done_;
      });
      if (queue_.empty()) {
        if (stopping_) return;
        if (backlogged.empty() && !over_budget && !reclaim_pending) {
          if (++idle_wakeups < kIdleWakeupsPerReclaimCheck) continue;
          idle_wakeups = 0;
          reclaim = true;
        }
      }
      batch.swap(queue_);
      queued_bytes_ = 0;
    }
    // With nothing to keep, nothing is written: records already stored are only deleted.
    const bool write = retention_.keep > 0 && !batch.empty();
    Result<void> result = write ? store_.PutInvocations(batch) : Result<void>{};
    if (!result) {
      // Losing a record costs a log line, not the caller's answer: the invocation already
      // completed. Keep going with the next batch.
      spdlog::error("invocation writer: {} records not stored: {}", batch.size(),
                    result.error().message);
    }
    // Before Flush returns, so that a reader sees no more than retention keeps (give or take the
    // small excess PruneInvocations leaves for a later batch).
    uint64_t pruned = 0;
    uint64_t evicted = 0;
    if (result) {
      auto prune =
          store_.PruneInvocations(FunctionsToPrune(batch, std::move(backlogged)), retention_);
      if (prune) {
        pruned = prune->deleted;
        evicted = prune->evicted;
        backlogged = std::move(prune->unfinished);
        over_budget = prune->over_budget;
      } else {
        // The next batch of these functions tries again.
        spdlog::error("invocation writer: records not pruned: {}", prune.error().message);
        backlogged.clear();
        over_budget = false;
      }
    }
    {
      std::lock_guard lock(mutex_);
      done_ += batch.size();
      if (!result) ++failed_batches_;
      if (result && write) written_count_ += batch.size();
      pruned_ += pruned;
      evicted_ += evicted;
      // Raised for a flush, a backlog or a lock waiter: back to spare time once none is left (a
      // lock waiter got the lock when this batch let it go).
      if (!stopping_ && flush_requested_ <= done_ && !Backlogged()) priority_.Lower();
    }
    written_.notify_all();
    batch.clear();
    // After the flushers are woken: giving pages back is no reader's business.
    if (pruned > 0 || reclaim_pending || reclaim) {
      auto reclaimed = store_.ReclaimSpace(keep_free_bytes_, kReclaimStepBytes);
      if (reclaimed) {
        reclaim_pending = reclaimed->unfinished;
        std::lock_guard lock(mutex_);
        reclaimed_bytes_ += reclaimed->freed_bytes;
      } else {
        spdlog::error("invocation writer: space not reclaimed: {}", reclaimed.error().message);
        reclaim_pending = false;
      }
    }
  }
}

}  // namespace wisp::store
