// ScheduleExpression: when a schedule fires. Three forms are accepted:
// - EventBridge's `rate(N minute[s]|hour[s]|day[s])`. Its slots are the multiples of the period
//   since the Unix epoch (UTC), so that every node computes the same slots without knowing when
//   the schedule was made; `rate(5 minutes)` fires at :00, :05, ... The time zone is ignored.
// - EventBridge's `cron(minutes hours day-of-month month day-of-week year)`: six fields, one of
//   day-of-month and day-of-week must be `?`; `*`, `,`, `-`, `/`, names (JAN, MON), `L` (last
//   day of the month; `5L` in day-of-week: the month's last Thursday), `W` (`15W`, `LW`: the
//   nearest weekday) and `#` (`2#1`: the first Monday). Day-of-week counts 1 = SUN .. 7 = SAT.
// - The classic five-field form `minute hour day-of-month month day-of-week` (Vixie cron: day
//   of week 0-7, 0 and 7 are Sunday; when both day fields are restricted either may match), and
//   `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
// Cron times are wall-clock times in the schedule's time zone (the system's tz database). A
// wall time that a DST change skips fires at the end of the gap; one that happens twice fires
// once, at its first occurrence. Times have minute granularity.
//
// Thread rules: immutable after Parse; any thread.
#pragma once

#include <array>
#include <bitset>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "wisp/common/result.h"

namespace date {
class time_zone;
}

namespace wisp::schedule {

using TimePoint = std::chrono::sys_time<std::chrono::milliseconds>;

// A time zone of the system's database ("UTC", "Europe/Berlin"); kInvalidArgument naming it
// when unknown.
Result<const date::time_zone*> FindTimeZone(std::string_view name);

class ScheduleExpression {
 public:
  // kInvalidArgument saying which part of `text` is wrong. `time_zone` must be known.
  static Result<ScheduleExpression> Parse(std::string_view text, std::string_view time_zone);

  // The first firing strictly after `after`; nullopt when there is none (before year 2200).
  std::optional<TimePoint> Next(TimePoint after) const;

  bool is_rate() const { return period_.count() > 0; }

 private:
  struct DayRule {                          // day-of-month and day-of-week, as parsed
    std::bitset<32> month_days;             // 1..31
    bool last_day = false;                  // L
    bool last_weekday = false;              // LW
    std::bitset<32> nearest_weekday;        // nW
    std::bitset<8> week_days;               // 0 = Sunday .. 6
    std::array<uint8_t, 7> nth_week_day{};  // x#n: bit n-1 set for weekday x
    std::bitset<8> last_week_day;           // xL
    bool month_day_any = true;              // `*` or `?`
    bool week_day_any = true;
    bool either = false;  // classic cron: either restricted field may match
  };
  bool DayMatches(int year, unsigned month, unsigned day) const;

  std::chrono::milliseconds period_{0};  // a rate's; 0 for cron
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<13> months_;  // 1..12
  DayRule days_;
  int min_year_ = 1970;
  int max_year_ = 2199;
  std::bitset<230> years_;  // year - 1970
  const date::time_zone* zone_ = nullptr;
};

}  // namespace wisp::schedule
