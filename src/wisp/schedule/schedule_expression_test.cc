#include "wisp/schedule/schedule_expression.h"

#include <date/date.h>

#include <gtest/gtest.h>

namespace wisp::schedule {
namespace {

// "2030-03-10T07:00:00Z" as a TimePoint.
TimePoint At(const std::string& text) {
  std::istringstream in(text);
  date::sys_time<std::chrono::milliseconds> t;
  in >> date::parse("%FT%TZ", t);
  EXPECT_FALSE(in.fail()) << text;
  return t;
}

std::string Show(std::optional<TimePoint> t) {
  if (!t) return "never";
  return date::format("%FT%TZ", std::chrono::floor<std::chrono::seconds>(*t));
}

ScheduleExpression Parse(const std::string& text, const std::string& zone = "UTC") {
  auto parsed = ScheduleExpression::Parse(text, zone);
  EXPECT_TRUE(parsed) << text << ": " << (parsed ? "" : parsed.error().message);
  return parsed ? *parsed : *ScheduleExpression::Parse("rate(1 minute)", "UTC");
}

std::string Next(const std::string& text, const std::string& after,
                 const std::string& zone = "UTC") {
  return Show(Parse(text, zone).Next(At(after)));
}

std::string ErrorOf(const std::string& text, const std::string& zone = "UTC") {
  auto parsed = ScheduleExpression::Parse(text, zone);
  return parsed ? "" : parsed.error().message;
}

TEST(ScheduleExpressionTest, RatesAreMultiplesOfThePeriodSinceTheEpoch) {
  EXPECT_EQ(Next("rate(5 minutes)", "2030-01-01T00:03:10Z"), "2030-01-01T00:05:00Z");
  EXPECT_EQ(Next("rate(5 minutes)", "2030-01-01T00:05:00Z"), "2030-01-01T00:10:00Z");
  EXPECT_EQ(Next("rate(1 minute)", "2030-01-01T00:00:59Z"), "2030-01-01T00:01:00Z");
  EXPECT_EQ(Next("rate(2 hours)", "2030-01-01T01:00:00Z"), "2030-01-01T02:00:00Z");
  EXPECT_EQ(Next("rate(1 day)", "2030-01-01T12:00:00Z"), "2030-01-02T00:00:00Z");
  // A rate ignores the time zone: its slots are the same instants everywhere.
  EXPECT_EQ(Next("rate(1 hour)", "2030-03-10T06:30:00Z", "America/New_York"),
            "2030-03-10T07:00:00Z");
}

TEST(ScheduleExpressionTest, EventBridgeCron) {
  EXPECT_EQ(Next("cron(0 12 * * ? *)", "2030-01-01T12:00:00Z"), "2030-01-02T12:00:00Z");
  EXPECT_EQ(Next("cron(15 10 ? * MON-FRI *)", "2030-01-04T11:00:00Z"),  // a Friday
            "2030-01-07T10:15:00Z");
  EXPECT_EQ(Next("cron(0/15 * * * ? *)", "2030-01-01T00:16:00Z"), "2030-01-01T00:30:00Z");
  EXPECT_EQ(Next("cron(0 8 1 JAN,JUL ? *)", "2030-01-02T00:00:00Z"), "2030-07-01T08:00:00Z");
  // Day-of-week counts from SUN = 1.
  EXPECT_EQ(Next("cron(0 0 ? * 1 *)", "2030-01-01T00:00:00Z"), "2030-01-06T00:00:00Z");
  // L: the month's last day; 6L: its last Friday; 2#1: its first Monday; 15W and LW.
  EXPECT_EQ(Next("cron(0 0 L * ? *)", "2030-02-01T00:00:00Z"), "2030-02-28T00:00:00Z");
  EXPECT_EQ(Next("cron(0 0 ? * 6L *)", "2030-01-01T00:00:00Z"), "2030-01-25T00:00:00Z");
  EXPECT_EQ(Next("cron(0 0 ? * 2#1 *)", "2030-01-08T00:00:00Z"), "2030-02-04T00:00:00Z");
  EXPECT_EQ(Next("cron(0 0 15W * ? *)", "2030-06-01T00:00:00Z"),  // 15 June 2030 is a Saturday
            "2030-06-14T00:00:00Z");
  EXPECT_EQ(Next("cron(0 0 LW * ? *)", "2030-08-01T00:00:00Z"),  // 31 August 2030 is a Saturday
            "2030-08-30T00:00:00Z");
  // The year field.
  EXPECT_EQ(Next("cron(0 0 1 1 ? 2032-2033)", "2030-01-01T00:00:00Z"), "2032-01-01T00:00:00Z");
  EXPECT_EQ(Next("cron(0 0 1 1 ? 2032)", "2032-01-01T00:00:00Z"), "never");
}

TEST(ScheduleExpressionTest, ClassicFiveFields) {
  EXPECT_EQ(Next("*/5 * * * *", "2030-01-01T00:03:00Z"), "2030-01-01T00:05:00Z");
  EXPECT_EQ(Next("0 9 * * 1-5", "2030-01-05T00:00:00Z"), "2030-01-07T09:00:00Z");  // Sat → Mon
  EXPECT_EQ(Next("0 0 * * 7", "2030-01-01T00:00:00Z"), "2030-01-06T00:00:00Z");    // 7: Sunday
  EXPECT_EQ(Next("0 0 * * sun", "2030-01-01T00:00:00Z"), "2030-01-06T00:00:00Z");
  // Both day fields restricted: either matches (the 13th, or a Friday).
  EXPECT_EQ(Next("0 0 13 * 5", "2030-01-01T00:00:00Z"), "2030-01-04T00:00:00Z");
  EXPECT_EQ(Next("0 0 13 * 5", "2030-01-12T00:00:00Z"), "2030-01-13T00:00:00Z");
  EXPECT_EQ(Next("@hourly", "2030-01-01T00:00:00Z"), "2030-01-01T01:00:00Z");
  EXPECT_EQ(Next("@monthly", "2030-01-15T00:00:00Z"), "2030-02-01T00:00:00Z");
}

TEST(ScheduleExpressionTest, MonthEndsAndLeapYears) {
  // The 31st skips the months that have none.
  EXPECT_EQ(Next("0 0 31 * *", "2030-01-31T00:00:00Z"), "2030-03-31T00:00:00Z");
  EXPECT_EQ(Next("0 0 31 * *", "2030-04-01T00:00:00Z"), "2030-05-31T00:00:00Z");
  // 29 February only in leap years (2032; 2100 is not one).
  EXPECT_EQ(Next("0 0 29 2 *", "2030-01-01T00:00:00Z"), "2032-02-29T00:00:00Z");
  EXPECT_EQ(Next("cron(0 0 29 2 ? 2097-2104)", "2097-01-01T00:00:00Z"), "2104-02-29T00:00:00Z");
  EXPECT_EQ(Next("cron(0 0 L 2 ? *)", "2031-03-01T00:00:00Z"), "2032-02-29T00:00:00Z");
  // New year.
  EXPECT_EQ(Next("0 0 1 1 *", "2030-12-31T23:59:00Z"), "2031-01-01T00:00:00Z");
}

TEST(ScheduleExpressionTest, TimeZonesAndDaylightSavingTime) {
  // 09:00 in New York: 14:00Z in winter, 13:00Z in summer.
  EXPECT_EQ(Next("cron(0 9 * * ? *)", "2030-01-01T00:00:00Z", "America/New_York"),
            "2030-01-01T14:00:00Z");
  EXPECT_EQ(Next("cron(0 9 * * ? *)", "2030-07-01T00:00:00Z", "America/New_York"),
            "2030-07-01T13:00:00Z");
  // Spring forward (10 March 2030, 02:00 → 03:00): 02:30 does not exist that day and fires at
  // the end of the gap, 03:00 EDT (07:00Z); the day after at 02:30 EDT.
  EXPECT_EQ(Next("30 2 * * *", "2030-03-10T00:00:00Z", "America/New_York"), "2030-03-10T07:00:00Z");
  EXPECT_EQ(Next("30 2 * * *", "2030-03-10T07:00:00Z", "America/New_York"), "2030-03-11T06:30:00Z");
  // Fall back (3 November 2030, 02:00 EDT → 01:00 EST): 01:30 happens twice and fires once, at
  // the first (05:30Z); the next is a day later.
  EXPECT_EQ(Next("30 1 * * *", "2030-11-03T00:00:00Z", "America/New_York"), "2030-11-03T05:30:00Z");
  EXPECT_EQ(Next("30 1 * * *", "2030-11-03T05:30:00Z", "America/New_York"), "2030-11-04T06:30:00Z");
  // Hourly across the fall back: the repeated 01:00 hour fires once.
  EXPECT_EQ(Next("0 * * * *", "2030-11-03T05:00:00Z", "America/New_York"), "2030-11-03T07:00:00Z");
  // Europe/Berlin springs forward on 31 March 2030 at 02:00 CET.
  EXPECT_EQ(Next("cron(30 2 * * ? *)", "2030-03-30T12:00:00Z", "Europe/Berlin"),
            "2030-03-31T01:00:00Z");
  // A zone with a half-hour offset.
  EXPECT_EQ(Next("cron(0 0 * * ? *)", "2030-01-01T00:00:00Z", "Asia/Kolkata"),
            "2030-01-01T18:30:00Z");
}

TEST(ScheduleExpressionTest, ErrorsNameTheExpressionAndThePart) {
  EXPECT_EQ(ErrorOf("rate(0 minutes)"),
            "schedule expression \"rate(0 minutes)\": the rate's value must be a whole number "
            "above 0");
  EXPECT_NE(ErrorOf("rate(5 weeks)").find("minute(s), hour(s) or day(s)"), std::string::npos);
  EXPECT_NE(ErrorOf("cron(0 12 * * *)").find("6 fields"), std::string::npos);
  EXPECT_NE(ErrorOf("cron(0 12 * * MON *)").find("exactly one of day-of-month"), std::string::npos);
  EXPECT_NE(ErrorOf("cron(61 12 * * ? *)").find("minutes \"61\" is not a value from 0 to 59"),
            std::string::npos);
  EXPECT_NE(ErrorOf("0 25 * * *").find("hours \"25\""), std::string::npos);
  EXPECT_NE(ErrorOf("0 0 31 2 *").find("never fires"), std::string::npos);
  EXPECT_NE(ErrorOf("every day").find("\"every day\""), std::string::npos);
  EXPECT_NE(ErrorOf("0 0 * * ?").find("cron(...) expressions only"), std::string::npos);
  EXPECT_NE(ErrorOf("cron(0 0 ? * 2#6 *)").find("1 to 5"), std::string::npos);
  EXPECT_NE(ErrorOf("0 0 * * *", "Mars/Olympus").find("unknown time zone \"Mars/Olympus\""),
            std::string::npos);
}

}  // namespace
}  // namespace wisp::schedule
