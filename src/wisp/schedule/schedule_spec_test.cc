#include "wisp/schedule/schedule_spec.h"

#include <gtest/gtest.h>

namespace wisp::schedule {
namespace {

using nlohmann::json;

const TimePoint kNow{std::chrono::milliseconds(1'893'456'000'000)};  // 2030-01-01T00:00:00Z

std::string ErrorOf(const json& value) {
  auto decoded = DecodeSchedules(value, kNow);
  return decoded ? "" : decoded.error().message;
}

TEST(ScheduleSpecTest, DefaultsAndRoundTrip) {
  auto decoded = DecodeSchedules(json::parse(R"j([{"expression": "rate(5 minutes)"},
                      {"name": "nightly", "expression": "cron(0 3 * * ? *)",
                       "timezone": "Europe/Berlin", "payload": {"job": "report"},
                       "enabled": false}])j"),
                                 kNow);
  ASSERT_TRUE(decoded) << decoded.error().message;
  ASSERT_EQ(decoded->size(), 2u);
  EXPECT_EQ((*decoded)[0].name, "schedule-1");
  EXPECT_EQ((*decoded)[0].timezone, "UTC");
  EXPECT_TRUE((*decoded)[0].enabled);
  EXPECT_FALSE((*decoded)[0].payload_json);
  EXPECT_EQ((*decoded)[1].payload_json, R"j({"job":"report"})j");
  const auto stored = ParseStoredSchedules(StoreSchedules(*decoded));
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[1].name, "nightly");
  EXPECT_EQ(stored[1].timezone, "Europe/Berlin");
  EXPECT_FALSE(stored[1].enabled);
  EXPECT_EQ(StoreSchedules({}), "");
}

TEST(ScheduleSpecTest, ErrorsNameTheSchedule) {
  EXPECT_EQ(ErrorOf(json::parse(R"j([{"expression": "rate(5 fortnights)"}])j")),
            "schedules[0] (schedule-1): schedule expression \"rate(5 fortnights)\": the rate's "
            "unit must be minute(s), hour(s) or day(s)");
  EXPECT_NE(ErrorOf(json::parse(R"j([{"name": "a", "expression": "rate(1 hour)"},
                                    {"name": "a", "expression": "rate(2 hours)"}])j"))
                .find("the name \"a\" is used twice"),
            std::string::npos);
  EXPECT_NE(ErrorOf(json::parse(R"j([{"expression": "cron(0 0 1 1 ? 2020)"}])j"))
                .find("never fires again"),
            std::string::npos);
  EXPECT_NE(ErrorOf(json::parse(R"j([{"expresion": "rate(1 hour)"}])j"))
                .find("unknown field \"expresion\""),
            std::string::npos);
  EXPECT_NE(ErrorOf(json::parse(R"j({"expression": "rate(1 hour)"})j")).find("must be an array"),
            std::string::npos);
  EXPECT_NE(ErrorOf(json::parse(R"j([{"name": "x"}])j")).find("needs an expression"),
            std::string::npos);
}

TEST(ScheduleSpecTest, ScheduledEventIsEventBridgeShaped) {
  Schedule s;
  s.name = "nightly";
  const json event =
      json::parse(ScheduledEvent("report", s, kNow, "eu-west-1", "123456789012", "e-1"));
  EXPECT_EQ(event["detail-type"], "Scheduled Event");
  EXPECT_EQ(event["source"], "aws.events");
  EXPECT_EQ(event["time"], "2030-01-01T00:00:00Z");
  EXPECT_EQ(event["resources"][0], "arn:aws:events:eu-west-1:123456789012:rule/report-nightly");
  EXPECT_EQ(event["detail"], json::object());
}

}  // namespace
}  // namespace wisp::schedule
