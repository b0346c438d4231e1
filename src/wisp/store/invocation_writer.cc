#include "wisp/store/invocation_writer.h"

#include <spdlog/spdlog.h>

namespace wisp::store {

InvocationWriter::InvocationWriter(Store& store) : store_(store), thread_([this] { Run(); }) {}

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

void InvocationWriter::Run() {
  std::vector<InvocationRecord> batch;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, kBatchInterval, [&] {
        return stopping_ || queue_.size() >= kFullBatch || flush_requested_ > done_;
      });
      if (queue_.empty()) {
        if (stopping_) return;
        continue;
      }
      batch.swap(queue_);
    }
    auto result = store_.PutInvocations(batch);
    if (!result) {
      // Losing a record costs a log line, not the caller's answer: the invocation already
      // completed. Keep going with the next batch.
      spdlog::error("invocation writer: {} records not stored: {}", batch.size(),
                    result.error().message);
    }
    {
      std::lock_guard lock(mutex_);
      done_ += batch.size();
      if (result) {
        written_count_ += batch.size();
      } else {
        ++failed_batches_;
      }
    }
    written_.notify_all();
    batch.clear();
  }
}

}  // namespace wisp::store
