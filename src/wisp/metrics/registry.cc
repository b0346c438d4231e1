#include "wisp/metrics/registry.h"

#include <algorithm>

namespace wisp::metrics {
namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;

uint64_t Micros(std::chrono::nanoseconds value) {
  return value.count() <= 0 ? 0 : static_cast<uint64_t>(value.count()) / 1000;
}

}  // namespace

void Histogram::Record(std::chrono::nanoseconds value) {
  const uint64_t micros = Micros(value);
  const auto it = std::lower_bound(kBoundsMicros.begin(), kBoundsMicros.end(), micros);
  buckets_[static_cast<size_t>(it - kBoundsMicros.begin())].fetch_add(1, kRelaxed);
  count_.fetch_add(1, kRelaxed);
  sum_micros_.fetch_add(micros, kRelaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot snapshot;
  for (size_t i = 0; i < kBuckets; ++i) snapshot.buckets[i] = buckets_[i].load(kRelaxed);
  snapshot.count = count_.load(kRelaxed);
  snapshot.sum_micros = sum_micros_.load(kRelaxed);
  return snapshot;
}

uint64_t Histogram::Snapshot::QuantileMicros(double q) const {
  uint64_t total = 0;
  for (uint64_t n : buckets) total += n;
  if (total == 0) return 0;
  // The rank of the sample at quantile q, 1-based, rounded up: p99 of 100 samples is the 99th.
  const auto rank = static_cast<uint64_t>(std::max(1.0, q * static_cast<double>(total) + 0.999999));
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += buckets[i];
    if (seen >= rank) return kBoundsMicros[std::min(i, kBoundsMicros.size() - 1)];
  }
  return kBoundsMicros.back();
}

void Histogram::Snapshot::Add(const Snapshot& other) {
  for (size_t i = 0; i < kBuckets; ++i) buckets[i] += other.buckets[i];
  count += other.count;
  sum_micros += other.sum_micros;
}

void FunctionMetrics::RecordInvocation(Outcome outcome, std::chrono::nanoseconds duration,
                                       int64_t at_ms) {
  switch (outcome) {
    case Outcome::kSuccess:
      success_.fetch_add(1, kRelaxed);
      break;
    case Outcome::kError:
      error_.fetch_add(1, kRelaxed);
      break;
    case Outcome::kTimeout:
      timeout_.fetch_add(1, kRelaxed);
      break;
  }
  duration_.Record(duration);
  recent_.Record(at_ms, outcome, duration);
}

void FunctionMetrics::RecordThrottle(int64_t at_ms) {
  throttles_.fetch_add(1, kRelaxed);
  recent_.RecordThrottle(at_ms);
}

void FunctionMetrics::RecordColdStart(std::chrono::nanoseconds init_duration) {
  cold_starts_.fetch_add(1, kRelaxed);
  init_duration_.Record(init_duration);
}

FunctionMetrics::Snapshot FunctionMetrics::Read() const {
  Snapshot s;
  s.success = success_.load(kRelaxed);
  s.error = error_.load(kRelaxed);
  s.timeout = timeout_.load(kRelaxed);
  s.throttles = throttles_.load(kRelaxed);
  s.cold_starts = cold_starts_.load(kRelaxed);
  s.in_flight = in_flight_.load(kRelaxed);
  s.duration = duration_.Read();
  s.init_duration = init_duration_.Read();
  s.queue_wait = queue_wait_.Read();
  return s;
}

void FunctionMetrics::Snapshot::Add(const Snapshot& other) {
  success += other.success;
  error += other.error;
  timeout += other.timeout;
  throttles += other.throttles;
  cold_starts += other.cold_starts;
  in_flight += other.in_flight;
  duration.Add(other.duration);
  init_duration.Add(other.init_duration);
  queue_wait.Add(other.queue_wait);
}

std::shared_ptr<FunctionMetrics> Registry::ForFunction(const std::string& function_id,
                                                       std::string_view name) {
  std::lock_guard lock(mutex_);
  Entry& entry = functions_[function_id];
  entry.name = std::string(name);  // a rename shows under the new name
  if (!entry.metrics) entry.metrics = std::make_shared<FunctionMetrics>();
  return entry.metrics;
}

void Registry::RemoveFunction(const std::string& function_id) {
  std::lock_guard lock(mutex_);
  auto it = functions_.find(function_id);
  if (it == functions_.end()) return;
  FunctionMetrics::Snapshot last = it->second.metrics->Read();
  last.in_flight = 0;  // calls still running on it end uncounted in the node's gauge
  retired_.Add(last);
  functions_.erase(it);
}

Registry::Snapshot Registry::Read() const {
  Snapshot snapshot;
  std::lock_guard lock(mutex_);
  snapshot.node = retired_;
  snapshot.functions.reserve(functions_.size());
  for (const auto& [id, entry] : functions_) {
    FunctionSnapshot f{id, entry.name, entry.metrics->Read()};
    snapshot.node.Add(f.metrics);
    snapshot.functions.push_back(std::move(f));
  }
  snapshot.rejected_before_run = rejected_before_run_.load(kRelaxed);
  return snapshot;
}

}  // namespace wisp::metrics
