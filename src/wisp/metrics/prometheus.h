// The Prometheus text exposition format (version 0.0.4) of the node's metrics: the registry's
// per-function series, the gauges only the scheduler and the queue know, and wispd's own
// process figures. Every name starts with `wisp_`; labels are function names, versions,
// outcomes and states only, so the number of series is bounded by the functions deployed
// (no request or instance ids).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wisp/metrics/registry.h"

namespace wisp::metrics {

// wispd's own process, from /proc/self; a field it could not read is left out.
struct ProcessStats {
  std::optional<uint64_t> resident_bytes;
  std::optional<uint64_t> virtual_bytes;
  std::optional<uint64_t> open_fds;
  std::optional<uint64_t> max_fds;
  std::optional<double> cpu_seconds;         // user + system
  std::optional<double> start_time_seconds;  // since the epoch
};
// Reads /proc/self (blocking file reads: call it off the io thread).
ProcessStats ReadProcessStats();

// Instances of one function version in one state.
struct InstanceCount {
  std::string function;  // the function's name
  int version = 0;
  std::string state;
  uint64_t count = 0;
};

struct NodeGauges {
  std::vector<InstanceCount> instances;  // function instances (prewarmed ones apart)
  std::vector<std::pair<std::string, uint64_t>> prewarmed;  // idle, by pool
  uint64_t max_instances = 0;
  // The async queue, when there is one.
  std::optional<uint64_t> async_queued;
  std::optional<uint64_t> async_running;
  std::optional<uint64_t> dead_letters;
  ProcessStats process;
};

inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

std::string RenderPrometheus(const Registry::Snapshot& snapshot, const NodeGauges& gauges);

// A label value as the text format escapes it: backslash, double quote and newline.
std::string EscapeLabelValue(std::string_view value);

}  // namespace wisp::metrics
