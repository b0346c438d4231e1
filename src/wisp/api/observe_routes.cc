// What runs, seen from outside: /metrics for Prometheus, recent windows of one function as
// JSON, the instances, and the live streams (an instance's usage, state changes).
#include <deque>

#include <nlohmann/json.hpp>

#include "wisp/api/function_codec.h"
#include "wisp/api/json_views.h"
#include "wisp/api/routes.h"
#include "wisp/metrics/prometheus.h"
#include "wisp/sandbox/instance_usage.h"

namespace wisp::api {
namespace {
using nlohmann::json;

// A client that lets this many events pile up unsent is too slow to follow: it is dropped
// rather than let the queue grow without bound.
constexpr size_t kMaxPendingMessages = 1000;
constexpr auto kInstanceMetricsPeriod = std::chrono::seconds(1);
constexpr auto kIdlePing = std::chrono::seconds(30);

json OptionalJson(const auto& value) { return value ? json(*value) : json(nullptr); }

double Millis(uint64_t micros) { return static_cast<double>(micros) / 1000.0; }

json InstanceJson(const scheduler::InstanceInfo& i, const sandbox::InstanceUsage& usage) {
  // The peak is the larger of the meter's (read as calls end) and the cgroup's (read now).
  std::optional<uint64_t> peak = i.memory_peak_bytes;
  if (usage.memory_peak_bytes) peak = std::max(peak.value_or(0), *usage.memory_peak_bytes);
  return {{"id", i.id},
          {"function_id", i.prewarmed ? json(nullptr) : json(i.function_id)},
          {"function_name", i.prewarmed ? json(nullptr) : json(i.function_name)},
          {"prewarmed", i.prewarmed},
          {"version", i.prewarmed ? json(nullptr) : json(i.version)},
          {"state", i.state},
          {"pid", i.pid},
          {"started_at", TimestampJson(i.started_at_ms)},
          {"calls_served", i.invocations},
          {"last_call_at", TimestampJson(i.last_call_at_ms)},
          {"memory_limit_bytes", i.memory_limit_bytes},
          {"memory_bytes", OptionalJson(usage.memory_bytes)},
          {"memory_peak_bytes", OptionalJson(peak)},
          {"cpu_seconds", OptionalJson(usage.cpu_seconds)},
          {"cpu_source", usage.cpu_source.empty() ? json(nullptr) : json(usage.cpu_source)}};
}

// Reads every instance's usage on the worker pool (cgroup and /proc files block).
asio::awaitable<json> InstancesJson(std::vector<scheduler::InstanceInfo> instances,
                                    asio::thread_pool& workers) {
  std::vector<pid_t> pids;
  for (const auto& i : instances) pids.push_back(i.pid);
  auto read = [pids] {
    std::vector<sandbox::InstanceUsage> usage;
    for (pid_t pid : pids) usage.push_back(sandbox::ReadInstanceUsage(pid));
    return usage;
  };
  const auto usage = co_await Offload(workers, std::move(read));
  json items = json::array();
  for (size_t n = 0; n < instances.size(); ++n)
    items.push_back(InstanceJson(instances[n], usage[n]));
  co_return items;
}

// "15m" (1 to 60 minutes) or "6h" (1 to 24 hours); the minutes it spans.
Result<int> ParseWindow(const std::string& text) {
  int n = 0;
  char unit = 0;
  size_t used = 0;
  for (; used < text.size() && used < 3 && std::isdigit(static_cast<unsigned char>(text[used]));
       ++used) {
    n = n * 10 + (text[used] - '0');
  }
  if (used > 0 && used + 1 == text.size()) unit = text[used];
  if (unit == 'm' && n >= 1 && n <= metrics::RecentWindows::kMinuteSlots) return n;
  if (unit == 'h' && n >= 1 && n <= metrics::RecentWindows::kHourSlots) return n * 60;
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("window '{}' is not 1m to 60m or 1h to 24h", text));
}

json DurationJson(const metrics::Histogram::Snapshot& h) {
  // Quantiles are the upper bounds of the histogram buckets that hold them (never an
  // understatement); the average is exact.
  return {{"p50", Millis(h.QuantileMicros(0.50))},
          {"p95", Millis(h.QuantileMicros(0.95))},
          {"p99", Millis(h.QuantileMicros(0.99))},
          {"avg", h.count == 0 ? 0.0 : Millis(h.sum_micros) / static_cast<double>(h.count)}};
}

json SlotCounts(const metrics::RecentWindows::Slot& s) {
  const uint64_t failed = s.error + s.timeout;
  return {{"invocations", s.invocations()},
          {"success", s.success},
          {"error", s.error},
          {"timeout", s.timeout},
          {"throttled", s.throttled},
          {"error_rate", s.invocations() == 0
                             ? 0.0
                             : static_cast<double>(failed) / static_cast<double>(s.invocations())}};
}

json WindowJson(const metrics::FunctionMetrics& metrics, int64_t now_ms, int minutes,
                const std::string& window) {
  const bool by_minute = minutes <= metrics::RecentWindows::kMinuteSlots;
  const auto slots = by_minute ? metrics.recent().Minutes(now_ms, minutes)
                               : metrics.recent().Hours(now_ms, minutes / 60);
  metrics::RecentWindows::Slot total;
  json series = json::array();
  for (const auto& slot : slots) {
    total.Add(slot);
    json point = SlotCounts(slot);
    point["start"] = TimestampJson(slot.start_ms);
    point["duration_ms"] = DurationJson(slot.duration);
    series.push_back(std::move(point));
  }
  json body = SlotCounts(total);
  body["window"] = window;
  body["resolution"] = by_minute ? "1m" : "1h";
  body["from"] = TimestampJson(slots.front().start_ms);
  body["to"] = TimestampJson(now_ms);
  body["duration_ms"] = DurationJson(total.duration);
  body["series"] = std::move(series);
  return body;
}

// Queues what a subscriber hands over until the stream sends it; too much unsent marks the
// client too slow.
struct Outbox {
  std::deque<std::shared_ptr<const std::string>> pending;
  bool overflowed = false;
  void Push(std::shared_ptr<const std::string> text, Stream& stream) {
    if (pending.size() >= kMaxPendingMessages) {
      overflowed = true;
    } else {
      pending.push_back(std::move(text));
    }
    stream.Wake();
  }
  // Sends everything queued; false when the stream is done.
  asio::awaitable<bool> Flush(Stream& stream) {
    while (!pending.empty()) {
      const auto text = std::move(pending.front());
      pending.pop_front();
      if (!co_await stream.Send(*text)) co_return false;
    }
    co_return !overflowed;
  }
};

HttpResponse InstanceMetricsStream(const scheduler::Scheduler& scheduler,
                                   asio::thread_pool& workers, const Clock& clock,
                                   const std::string& instance_id) {
  if (!scheduler.FindInstance(instance_id)) return ErrorResponse(404, "instance not found");
  HttpResponse response;
  response.stream_kind = StreamKind::kWebSocket;
  response.stream = [&scheduler, &workers, &clock,
                     instance_id](Stream& stream) -> asio::awaitable<void> {
    std::optional<double> last_cpu;
    auto last_at = clock.Now();
    while (stream.open()) {
      const auto info = scheduler.FindInstance(instance_id);
      if (!info) {
        // (Built before the co_await: g++ 12 cannot put an initializer list inside one.)
        std::string gone = json{{"type", "gone"}, {"instance_id", instance_id}}.dump();
        co_await stream.Send(std::move(gone));
        co_return;
      }
      auto read = [pid = info->pid] { return sandbox::ReadInstanceUsage(pid); };
      const auto usage = co_await Offload(workers, std::move(read));
      const auto now = clock.Now();
      json message = InstanceJson(*info, usage);
      message["type"] = "metrics";
      message["instance_id"] = instance_id;
      message["vm_id"] = instance_id;  // the seed's name for the same thing
      message["timestamp"] = FormatIso8601(clock.WallNow());
      // CPU use over the last period, in percent of one CPU: the seed's "CPU usage".
      json cpu_percent = nullptr;
      if (usage.cpu_seconds && last_cpu) {
        const double elapsed = std::chrono::duration<double>(now - last_at).count();
        if (elapsed > 0) cpu_percent = 100.0 * (*usage.cpu_seconds - *last_cpu) / elapsed;
      }
      message["cpu_usage_percent"] = cpu_percent;
      message["memory_usage_percent"] =
          usage.memory_bytes && info->memory_limit_bytes > 0
              ? json(100.0 * static_cast<double>(*usage.memory_bytes) /
                     static_cast<double>(info->memory_limit_bytes))
              : json(nullptr);
      last_cpu = usage.cpu_seconds;
      last_at = now;
      if (!co_await stream.Send(message.dump())) co_return;
      co_await stream.WaitUntil(now + kInstanceMetricsPeriod);
    }
  };
  return response;
}

}  // namespace

void AddObserveRoutes(Router& router, ObserveInfo info) {
  router.Add("GET", "/metrics", [info](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    if (auto known = CheckQueryParameters(request, {}); !known) {
      co_return ErrorResponse(known.error());
    }
    metrics::NodeGauges gauges;
    std::map<std::tuple<std::string, int, std::string>, uint64_t> counts;
    for (const auto& i : info.scheduler->AllInstances()) {
      if (!i.prewarmed) ++counts[{i.function_name, i.version, i.state}];
    }
    for (const auto& [key, n] : counts) {
      gauges.instances.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key), n});
    }
    for (const auto& [pool, n] : info.scheduler->PrewarmedIdle()) {
      gauges.prewarmed.emplace_back(pool, n);
    }
    gauges.max_instances = info.scheduler->max_instances();
    if (info.queue) {
      const auto q = info.queue->stats();
      gauges.async_queued = q.queued;
      gauges.async_running = q.running;
      gauges.dead_letters = q.dead_letters;
    }
    const auto snapshot = info.metrics->Read();
    auto read_process = [] { return metrics::ReadProcessStats(); };
    gauges.process = co_await Offload(*info.workers, std::move(read_process));
    HttpResponse response;
    response.content_type = std::string(metrics::kPrometheusContentType);
    response.body = metrics::RenderPrometheus(snapshot, gauges);
    co_return response;
  });

  router.Add(
      "GET", "/v1/functions/:id/metrics",
      [info](HttpRequest& request) -> asio::awaitable<HttpResponse> {
        if (auto known = CheckQueryParameters(request, {"window"}); !known) {
          co_return ErrorResponse(known.error());
        }
        const core::Function* f = info.functions->Find(request.params["id"]);
        if (!f) co_return ErrorResponse(404, "function not found");
        const auto window_it = request.query.find("window");
        const std::string window = window_it == request.query.end() ? "1h" : window_it->second;
        auto minutes = ParseWindow(window);
        if (!minutes) co_return ErrorResponse(minutes.error());
        json body = WindowJson(*f->metrics, ToEpochMillis(info.clock->WallNow()), *minutes, window);
        body["function_id"] = f->record.id;
        body["function_name"] = f->record.name;
        // Since wispd started, for comparison with /metrics.
        const auto all = f->metrics->Read();
        body["since_start"] = {{"invocations", all.invocations()},
                               {"success", all.success},
                               {"error", all.error},
                               {"timeout", all.timeout},
                               {"throttled", all.throttles},
                               {"cold_starts", all.cold_starts},
                               {"duration_ms", DurationJson(all.duration)}};
        co_return JsonBody(200, body);
      });

  router.Add("GET", "/v1/instances", [info](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    if (auto known = CheckQueryParameters(request, {}); !known) {
      co_return ErrorResponse(known.error());
    }
    json items = co_await InstancesJson(info.scheduler->AllInstances(), *info.workers);
    co_return JsonBody(200, json{{"items", std::move(items)}});
  });

  router.Add("GET", "/v1/functions/:id/instances",
             [info](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               if (auto known = CheckQueryParameters(request, {}); !known) {
                 co_return ErrorResponse(known.error());
               }
               const std::string id = request.params["id"];
               if (!info.functions->Find(id)) co_return ErrorResponse(404, "function not found");
               json items = co_await InstancesJson(info.scheduler->Instances(id), *info.workers);
               co_return JsonBody(200, json{{"items", std::move(items)}});
             });

  for (const char* path : {"/v1/instances/:id/metrics/ws", "/v1/vms/:id/metrics/ws"}) {
    router.Add("GET", path, [info](HttpRequest& request) -> asio::awaitable<HttpResponse> {
      co_return InstanceMetricsStream(*info.scheduler, *info.workers, *info.clock,
                                      request.params["id"]);
    });
  }

  // State changes of functions and instances; ?function=<id> narrows them to one function.
  router.Add("GET", "/v1/events/ws", [info](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    if (auto known = CheckQueryParameters(request, {"function"}); !known) {
      co_return ErrorResponse(known.error());
    }
    const std::string only = request.query.count("function") ? request.query["function"] : "";
    HttpResponse response;
    response.stream_kind = StreamKind::kWebSocket;
    response.stream = [events = info.events, only](Stream& stream) -> asio::awaitable<void> {
      Outbox outbox;
      auto on_event = [&outbox, &stream, &only](const metrics::StateEvent& event,
                                                const std::shared_ptr<const std::string>& text) {
        if (only.empty() || event.function_id == only) outbox.Push(text, stream);
      };
      const uint64_t token = events->Subscribe(on_event);
      // Tells the client it is subscribed: every change from here on reaches it.
      std::string subscribed = json{{"type", "subscribed"}}.dump();
      bool alive = co_await stream.Send(std::move(subscribed));
      while (alive && stream.open()) {
        if (!co_await outbox.Flush(stream)) break;
        alive = co_await stream.WaitUntil(std::chrono::steady_clock::now() + kIdlePing);
      }
      events->Unsubscribe(token);
    };
    co_return response;
  });
}

}  // namespace wisp::api
