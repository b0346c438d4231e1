#include "wisp/metrics/prometheus.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace wisp::metrics {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;

bool Contains(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(PrometheusTest, RendersCountersAndCumulativeHistogramsPerFunction) {
  Registry registry;
  auto f = registry.ForFunction("id-1", "hello");
  f->RecordInvocation(Outcome::kSuccess, milliseconds(3), 0);
  f->RecordInvocation(Outcome::kSuccess, milliseconds(30), 0);
  f->RecordInvocation(Outcome::kError, milliseconds(30), 0);
  f->RecordThrottle(0);
  f->RecordColdStart(milliseconds(80));
  NodeGauges gauges;
  gauges.instances.push_back({"hello", 2, "idle", 1});
  gauges.async_queued = 4;
  gauges.async_running = 1;
  gauges.dead_letters = 2;
  const std::string text = RenderPrometheus(registry.Read(), gauges);

  EXPECT_TRUE(Contains(text, "# TYPE wisp_function_invocations_total counter"));
  EXPECT_TRUE(
      Contains(text, R"(wisp_function_invocations_total{function="hello",outcome="success"} 2)"));
  EXPECT_TRUE(
      Contains(text, R"(wisp_function_invocations_total{function="hello",outcome="error"} 1)"));
  EXPECT_TRUE(
      Contains(text, R"(wisp_function_invocations_total{function="hello",outcome="throttled"} 1)"));
  EXPECT_TRUE(Contains(text, R"(wisp_function_cold_starts_total{function="hello"} 1)"));
  EXPECT_TRUE(Contains(text, "# TYPE wisp_function_duration_seconds histogram"));
  // Cumulative: 3 ms is at most 5 ms; the two 30 ms calls join at 50 ms and stay.
  EXPECT_TRUE(
      Contains(text, R"(wisp_function_duration_seconds_bucket{function="hello",le="0.0025"} 0)"));
  EXPECT_TRUE(
      Contains(text, R"(wisp_function_duration_seconds_bucket{function="hello",le="0.005"} 1)"));
  EXPECT_TRUE(
      Contains(text, R"(wisp_function_duration_seconds_bucket{function="hello",le="0.025"} 1)"));
  EXPECT_TRUE(
      Contains(text, R"(wisp_function_duration_seconds_bucket{function="hello",le="0.05"} 3)"));
  EXPECT_TRUE(
      Contains(text, R"(wisp_function_duration_seconds_bucket{function="hello",le="900"} 3)"));
  EXPECT_TRUE(
      Contains(text, R"(wisp_function_duration_seconds_bucket{function="hello",le="+Inf"} 3)"));
  EXPECT_TRUE(Contains(text, R"(wisp_function_duration_seconds_sum{function="hello"} 0.063)"));
  EXPECT_TRUE(Contains(text, R"(wisp_function_duration_seconds_count{function="hello"} 3)"));
  EXPECT_TRUE(Contains(text, R"(wisp_function_init_duration_seconds_count{function="hello"} 1)"));
  EXPECT_TRUE(
      Contains(text, R"(wisp_function_instances{function="hello",version="2",state="idle"} 1)"));
  EXPECT_TRUE(Contains(text, R"(wisp_async_queue_depth{state="queued"} 4)"));
  EXPECT_TRUE(Contains(text, "wisp_async_dead_letters 2"));
  EXPECT_TRUE(Contains(text, R"(wisp_invocations_total{outcome="success"} 2)"));
}

TEST(PrometheusTest, EveryMetricHasHelpAndTypeOnceAndTheWispPrefix) {
  Registry registry;
  registry.ForFunction("a", "a");
  registry.ForFunction("b", "b");
  NodeGauges gauges;
  gauges.process = ReadProcessStats();
  const std::string text = RenderPrometheus(registry.Read(), gauges);
  std::map<std::string, int> types;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t end = text.find('\n', pos);
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.rfind("# TYPE ", 0) == 0) ++types[line.substr(7, line.find(' ', 7) - 7)];
    if (line.empty() || line[0] == '#') continue;
    EXPECT_EQ(line.rfind("wisp_", 0), 0u) << line;
  }
  for (const auto& [name, n] : types) EXPECT_EQ(n, 1) << name;
  EXPECT_THAT(text, HasSubstr("# HELP wisp_process_resident_memory_bytes "));
  EXPECT_THAT(text, HasSubstr("# TYPE wisp_process_cpu_seconds_total counter"));
  EXPECT_THAT(text, HasSubstr("wisp_process_open_fds "));
  EXPECT_THAT(text, HasSubstr("wisp_process_start_time_seconds "));
  // Without a queue, no queue series.
  EXPECT_EQ(text.find("wisp_async_queue_depth"), std::string::npos);
}

TEST(PrometheusTest, EscapesLabelValues) {
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  Registry registry;
  registry.ForFunction("x", "we\"ird");
  EXPECT_THAT(RenderPrometheus(registry.Read(), {}),
              HasSubstr(R"(wisp_function_cold_starts_total{function="we\"ird"} 0)"));
}

TEST(PrometheusTest, ProcessStatsAreReadFromProc) {
  const auto p = ReadProcessStats();
  ASSERT_TRUE(p.resident_bytes.has_value());
  EXPECT_GT(*p.resident_bytes, 0u);
  ASSERT_TRUE(p.open_fds.has_value());
  EXPECT_GE(*p.open_fds, 3u);  // at least stdin, stdout, stderr
  ASSERT_TRUE(p.start_time_seconds.has_value());
  EXPECT_GT(*p.start_time_seconds, 1.5e9);
  ASSERT_TRUE(p.cpu_seconds.has_value());
}

}  // namespace
}  // namespace wisp::metrics
