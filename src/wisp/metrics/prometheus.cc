#include "wisp/metrics/prometheus.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <sstream>

#include <fmt/format.h>

#include "wisp/common/read_file.h"

namespace wisp::metrics {
namespace {

using Out = std::back_insert_iterator<std::string>;

void Header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(Out(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// Seconds from microseconds, exactly as the histogram's bounds are written.
std::string Seconds(uint64_t micros) {
  return fmt::format("{}", static_cast<double>(micros) / 1e6);
}

// The bounds as `le` label values, formatted once: a scrape writes them for every series.
const std::array<std::string, Histogram::kBoundsMicros.size()>& BoundLabels() {
  static const auto labels = [] {
    std::array<std::string, Histogram::kBoundsMicros.size()> out;
    for (size_t i = 0; i < out.size(); ++i) out[i] = Seconds(Histogram::kBoundsMicros[i]);
    return out;
  }();
  return labels;
}

void HistogramSeries(std::string& out, std::string_view name, const std::string& labels,
                     const Histogram::Snapshot& h) {
  // Cumulative buckets; _count is the +Inf bucket, so the two always agree even when the
  // snapshot was read while calls were being recorded.
  uint64_t cumulative = 0;
  const std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i < Histogram::kBoundsMicros.size(); ++i) {
    cumulative += h.buckets[i];
    fmt::format_to(Out(out), "{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, BoundLabels()[i],
                   cumulative);
  }
  cumulative += h.buckets[Histogram::kBuckets - 1];
  fmt::format_to(Out(out), "{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name, labels, sep, cumulative);
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  fmt::format_to(Out(out), "{}_sum{} {}\n{}_count{} {}\n", name, braces, Seconds(h.sum_micros),
                 name, braces, cumulative);
}

std::string FunctionLabel(const std::string& name) {
  return fmt::format("function=\"{}\"", EscapeLabelValue(name));
}

std::optional<std::string> ReadSmallFile(const char* path) {
  auto text = ReadWholeFile(path);
  if (!text) return std::nullopt;
  return std::move(*text);
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

ProcessStats ReadProcessStats() {
  ProcessStats stats;
  const long page = sysconf(_SC_PAGESIZE);
  if (auto statm = ReadSmallFile("/proc/self/statm")) {
    std::istringstream in(*statm);
    uint64_t size = 0, resident = 0;
    if (in >> size >> resident) {
      stats.virtual_bytes = size * static_cast<uint64_t>(page);
      stats.resident_bytes = resident * static_cast<uint64_t>(page);
    }
  }
  if (DIR* dir = opendir("/proc/self/fd")) {
    uint64_t n = 0;
    while (const dirent* entry = readdir(dir)) n += entry->d_name[0] != '.';
    closedir(dir);
    stats.open_fds = n - 1;  // not the directory's own fd
  }
  if (rlimit limit{}; getrlimit(RLIMIT_NOFILE, &limit) == 0) stats.max_fds = limit.rlim_cur;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  auto stat = ReadSmallFile("/proc/self/stat");
  auto boot = ReadSmallFile("/proc/stat");
  if (stat) {
    // Fields after the command (which may hold spaces and parentheses) start at state, field 3.
    const auto close = stat->rfind(')');
    if (close != std::string::npos) {
      std::istringstream in(stat->substr(close + 2));
      std::vector<std::string> fields{std::istream_iterator<std::string>(in), {}};
      // utime 14, stime 15, starttime 22 (1-based, as proc(5) numbers them).
      if (fields.size() >= 20) {
        stats.cpu_seconds = (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
        if (boot) {
          const auto at = boot->find("\nbtime ");
          if (at != std::string::npos) {
            const double btime = std::stod(boot->substr(at + 7));
            stats.start_time_seconds = btime + std::stod(fields[19]) / ticks;
          }
        }
      }
    }
  }
  return stats;
}

std::string RenderPrometheus(const Registry::Snapshot& snapshot, const NodeGauges& gauges) {
  std::string out;
  out.reserve(4096 + snapshot.functions.size() * 9000);

  Header(out, "wisp_function_invocations_total", "counter",
         "Calls of the function by outcome: success, error, timeout (ran), throttled (refused "
         "at its concurrency limit or the node's capacity).");
  for (const auto& f : snapshot.functions) {
    const std::string label = FunctionLabel(f.name);
    const auto& m = f.metrics;
    for (const auto& [outcome, n] : {std::pair<const char*, uint64_t>{"success", m.success},
                                     {"error", m.error},
                                     {"timeout", m.timeout},
                                     {"throttled", m.throttles}}) {
      fmt::format_to(Out(out), "wisp_function_invocations_total{{{},outcome=\"{}\"}} {}\n", label,
                     outcome, n);
    }
  }
  Header(out, "wisp_function_cold_starts_total", "counter",
         "Calls that waited for a new instance to start (or a prewarmed one to load the code).");
  for (const auto& f : snapshot.functions) {
    fmt::format_to(Out(out), "wisp_function_cold_starts_total{{{}}} {}\n", FunctionLabel(f.name),
                   f.metrics.cold_starts);
  }
  Header(out, "wisp_function_concurrent_executions", "gauge", "Calls of the function running now.");
  for (const auto& f : snapshot.functions) {
    fmt::format_to(Out(out), "wisp_function_concurrent_executions{{{}}} {}\n",
                   FunctionLabel(f.name), f.metrics.in_flight);
  }
  const struct {
    const char* name;
    const char* help;
    Histogram::Snapshot FunctionMetrics::Snapshot::*member;
  } histograms[] = {
      {"wisp_function_duration_seconds",
       "The function's own run: from the event handed to the runtime until its answer.",
       &FunctionMetrics::Snapshot::duration},
      {"wisp_function_init_duration_seconds",
       "Cold starts: from starting (or specialising) the instance until its runtime asked for "
       "work.",
       &FunctionMetrics::Snapshot::init_duration},
      {"wisp_function_queue_wait_seconds",
       "Time a call waited for an instance, a cold start's initialisation excluded.",
       &FunctionMetrics::Snapshot::queue_wait},
  };
  for (const auto& h : histograms) {
    Header(out, h.name, "histogram", h.help);
    for (const auto& f : snapshot.functions) {
      HistogramSeries(out, h.name, FunctionLabel(f.name), f.metrics.*(h.member));
    }
  }

  Header(out, "wisp_function_instances", "gauge",
         "Instances of the function by version and state (starting, initializing, idle, busy, "
         "retiring).");
  for (const auto& i : gauges.instances) {
    fmt::format_to(Out(out), "wisp_function_instances{{{},version=\"{}\",state=\"{}\"}} {}\n",
                   FunctionLabel(i.function), i.version, EscapeLabelValue(i.state), i.count);
  }
  Header(out, "wisp_prewarmed_instances", "gauge",
         "Idle generic instances ready for a cold start, by prewarm pool.");
  for (const auto& [pool, n] : gauges.prewarmed) {
    fmt::format_to(Out(out), "wisp_prewarmed_instances{{pool=\"{}\"}} {}\n", EscapeLabelValue(pool),
                   n);
  }
  Header(out, "wisp_instances_max", "gauge", "Instances the node may run at once.");
  fmt::format_to(Out(out), "wisp_instances_max {}\n", gauges.max_instances);

  const auto& node = snapshot.node;
  Header(out, "wisp_invocations_total", "counter",
         "Calls on the node by outcome, deleted functions' included; rejected: refused before a "
         "function could run it (not found, not ready, no sandbox).");
  for (const auto& [outcome, n] : {std::pair<const char*, uint64_t>{"success", node.success},
                                   {"error", node.error},
                                   {"timeout", node.timeout},
                                   {"throttled", node.throttles},
                                   {"rejected", snapshot.rejected_before_run}}) {
    fmt::format_to(Out(out), "wisp_invocations_total{{outcome=\"{}\"}} {}\n", outcome, n);
  }
  Header(out, "wisp_cold_starts_total", "counter", "Cold starts on the node.");
  fmt::format_to(Out(out), "wisp_cold_starts_total {}\n", node.cold_starts);
  Header(out, "wisp_concurrent_executions", "gauge", "Calls running on the node now.");
  fmt::format_to(Out(out), "wisp_concurrent_executions {}\n", node.in_flight);

  if (gauges.async_queued) {
    Header(out, "wisp_async_queue_depth", "gauge",
           "Asynchronous invocations waiting (queued) or being attempted (running).");
    fmt::format_to(Out(out), "wisp_async_queue_depth{{state=\"queued\"}} {}\n",
                   *gauges.async_queued);
    fmt::format_to(Out(out), "wisp_async_queue_depth{{state=\"running\"}} {}\n",
                   gauges.async_running.value_or(0));
  }
  if (gauges.dead_letters) {
    Header(out, "wisp_async_dead_letters", "gauge",
           "Asynchronous invocations in the dead-letter queue.");
    fmt::format_to(Out(out), "wisp_async_dead_letters {}\n", *gauges.dead_letters);
  }

  const auto& p = gauges.process;
  const auto gauge = [&out](const char* name, const char* type, const char* help, auto value) {
    if (!value) return;
    Header(out, name, type, help);
    fmt::format_to(Out(out), "{} {}\n", name, *value);
  };
  gauge("wisp_process_resident_memory_bytes", "gauge", "wispd's resident memory.",
        p.resident_bytes);
  gauge("wisp_process_virtual_memory_bytes", "gauge", "wispd's virtual memory.", p.virtual_bytes);
  gauge("wisp_process_open_fds", "gauge", "File descriptors wispd has open.", p.open_fds);
  gauge("wisp_process_max_fds", "gauge", "wispd's open-files limit.", p.max_fds);
  gauge("wisp_process_cpu_seconds_total", "counter", "CPU time wispd used, user and system.",
        p.cpu_seconds);
  gauge("wisp_process_start_time_seconds", "gauge", "When wispd started, seconds since the epoch.",
        p.start_time_seconds);
  return out;
}

}  // namespace wisp::metrics
