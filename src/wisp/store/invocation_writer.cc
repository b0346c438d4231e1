#include "wisp/store/invocation_writer.h"

#include <algorithm>
#include <iterator>
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

}  // namespace

InvocationWriter::InvocationWriter(Store& store, uint32_t records_per_function)
    : store_(store),
      retention_{.keep = records_per_function,
                 .min_excess = std::clamp(records_per_function / 100, 1u, 64u),
                 .max_deleted = kMaxPrunedPerBatch},
      thread_([this] { Run(); }) {}

InvocationWriter::~InvocationWriter() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void InvocationWriter::Add(InvocationRecord record) {
  bool full;
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(record));
    ++added_;
    full = queue_.size() == kFullBatch;
  }
  if (full) wake_.notify_one();
}

void InvocationWriter::Flush() {
  std::unique_lock lock(mutex_);
  const uint64_t target = added_;
  if (done_ >= target) return;
  flush_requested_ = target;
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

void InvocationWriter::Run() {
  std::vector<InvocationRecord> batch;
  std::vector<std::string> backlogged;  // functions with more records than retention has trimmed
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, kBatchInterval, [&] {
        return stopping_ || queue_.size() >= kFullBatch || flush_requested_ > done_;
      });
      if (queue_.empty()) {
        if (stopping_) return;
        if (backlogged.empty()) continue;
      }
      batch.swap(queue_);
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
    if (result) {
      auto prune =
          store_.PruneInvocations(FunctionsToPrune(batch, std::move(backlogged)), retention_);
      if (prune) {
        pruned = prune->deleted;
        backlogged = std::move(prune->unfinished);
      } else {
        // The next batch of these functions tries again.
        spdlog::error("invocation writer: records not pruned: {}", prune.error().message);
        backlogged.clear();
      }
    }
    {
      std::lock_guard lock(mutex_);
      done_ += batch.size();
      if (!result) ++failed_batches_;
      if (result && write) written_count_ += batch.size();
      pruned_ += pruned;
    }
    written_.notify_all();
    batch.clear();
  }
}

}  // namespace wisp::store
