#include "wisp/schedule/schedule_expression.h"

#include <date/date.h>
#include <date/tz.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <exception>
#include <vector>

#include <fmt/format.h>

namespace wisp::schedule {
namespace {

using std::chrono::minutes;

tl::unexpected<Error> Invalid(std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message));
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> Split(std::string_view s, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t at = s.find(separator, start);
    parts.push_back(s.substr(start, at == std::string_view::npos ? s.npos : at - start));
    if (at == std::string_view::npos) return parts;
    start = at + 1;
  }
}

std::vector<std::string_view> Words(std::string_view s) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    const size_t start = i;
    while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    if (i > start) words.push_back(s.substr(start, i - start));
  }
  return words;
}

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::optional<int> Number(std::string_view s) {
  int value = 0;
  if (s.empty() || s.size() > 9) return std::nullopt;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}

// One cron field's range and spelling.
struct FieldKind {
  const char* name;
  int min;
  int max;
  // Names for the values from `min` on (JAN.., SUN..), or null.
  const std::vector<std::string_view>* names = nullptr;
  int first_named = 0;  // the value the first name stands for
};

const std::vector<std::string_view> kMonthNames = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                   "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
const std::vector<std::string_view> kDayNames = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

Result<int> Value(const FieldKind& kind, std::string_view text) {
  if (kind.names) {
    const std::string upper = Upper(text);
    for (size_t i = 0; i < kind.names->size(); ++i) {
      if ((*kind.names)[i] == upper) return kind.first_named + static_cast<int>(i);
    }
  }
  auto number = Number(text);
  if (!number || *number < kind.min || *number > kind.max) {
    return Invalid(fmt::format("{} \"{}\" is not a value from {} to {}{}", kind.name, text,
                               kind.min, kind.max, kind.names ? " or a name" : ""));
  }
  return *number;
}

// Sets the bits of one list item (`*`, `a`, `a-b`, with an optional `/step`) in `bits`, indexed
// by value.
Result<void> ParseRange(const FieldKind& kind, std::string_view item, std::vector<bool>& bits) {
  int step = 1;
  if (const size_t slash = item.find('/'); slash != std::string_view::npos) {
    auto parsed = Number(item.substr(slash + 1));
    if (!parsed || *parsed < 1 || *parsed > kind.max) {
      return Invalid(fmt::format("{} \"{}\": the step after / must be a number from 1 to {}",
                                 kind.name, item, kind.max));
    }
    step = *parsed;
    item = item.substr(0, slash);
  }
  int low = kind.min;
  int high = kind.max;
  if (item != "*") {
    const size_t dash = item.find('-');
    auto first = Value(kind, item.substr(0, dash));
    if (!first) return tl::unexpected(first.error());
    low = *first;
    if (dash != std::string_view::npos) {
      auto last = Value(kind, item.substr(dash + 1));
      if (!last) return tl::unexpected(last.error());
      high = *last;
      if (high < low) {
        return Invalid(fmt::format("{} \"{}\": the range runs backwards", kind.name, item));
      }
    } else if (step == 1) {
      high = low;  // a single value; `a/step` runs from a to the end
    }
  }
  for (int v = low; v <= high; v += step) bits[static_cast<size_t>(v)] = true;
  return {};
}

// A plain field: a comma-separated list of ranges.
Result<std::vector<bool>> ParseField(const FieldKind& kind, std::string_view text) {
  std::vector<bool> bits(static_cast<size_t>(kind.max) + 1, false);
  for (std::string_view item : Split(text, ',')) {
    if (item.empty()) return Invalid(fmt::format("{} \"{}\" has an empty item", kind.name, text));
    if (auto parsed = ParseRange(kind, item, bits); !parsed) return tl::unexpected(parsed.error());
  }
  return bits;
}

template <size_t N>
std::bitset<N> ToBits(const std::vector<bool>& bits, int offset = 0) {
  std::bitset<N> out;
  for (size_t i = 0; i < bits.size(); ++i) {
    if (bits[i] && i >= static_cast<size_t>(offset)) out.set(i - static_cast<size_t>(offset));
  }
  return out;
}

unsigned LastDay(int year, unsigned month) {
  return static_cast<unsigned>((date::year(year) / date::month(month) / date::last).day());
}

unsigned WeekDay(int year, unsigned month, unsigned day) {
  return date::weekday(date::sys_days(date::year(year) / date::month(month) / date::day(day)))
      .c_encoding();
}

// The weekday nearest to day `n` of the month without leaving the month (Quartz's `nW`);
// 0 when the month has no day n.
unsigned NearestWeekday(int year, unsigned month, unsigned n) {
  const unsigned last = LastDay(year, month);
  if (n > last) return 0;
  const unsigned wd = WeekDay(year, month, n);
  if (wd == 6) return n == 1 ? 3 : n - 1;         // Saturday: Friday, or Monday the 3rd
  if (wd == 0) return n == last ? n - 2 : n + 1;  // Sunday: Monday, or Friday before the end
  return n;
}

}  // namespace

Result<const date::time_zone*> FindTimeZone(std::string_view name) {
  if (name.empty())
    return Invalid("the time zone is empty (use e.g. \"UTC\" or \"Europe/Berlin\")");
  try {
    return date::locate_zone(name);
  } catch (const std::exception&) {
    return Invalid(fmt::format(
        "unknown time zone \"{}\" (a name of the tz database, e.g. \"UTC\", \"America/New_York\")",
        name));
  }
}

Result<ScheduleExpression> ScheduleExpression::Parse(std::string_view text,
                                                     std::string_view time_zone) {
  const std::string_view trimmed = Trim(text);
  auto zone = FindTimeZone(time_zone);
  if (!zone) return tl::unexpected(zone.error());
  ScheduleExpression e;
  e.zone_ = *zone;
  auto fail = [&text](const std::string& why) {
    return Invalid(fmt::format("schedule expression \"{}\": {}", text, why));
  };
  auto inner = [&trimmed](std::string_view prefix) -> std::optional<std::string_view> {
    if (trimmed.size() > prefix.size() && trimmed.substr(0, prefix.size()) == prefix &&
        trimmed.back() == ')') {
      return trimmed.substr(prefix.size(), trimmed.size() - prefix.size() - 1);
    }
    return std::nullopt;
  };

  if (auto rate = inner("rate(")) {
    const auto words = Words(*rate);
    if (words.size() != 2) return fail("write rate(VALUE UNIT), e.g. rate(5 minutes)");
    const auto value = Number(words[0]);
    if (!value || *value < 1) return fail("the rate's value must be a whole number above 0");
    const std::string unit(words[1]);
    int64_t unit_minutes = 0;
    if (unit == "minute" || unit == "minutes") unit_minutes = 1;
    if (unit == "hour" || unit == "hours") unit_minutes = 60;
    if (unit == "day" || unit == "days") unit_minutes = 1440;
    if (unit_minutes == 0) return fail("the rate's unit must be minute(s), hour(s) or day(s)");
    if (*value * unit_minutes > 3660LL * 1440) return fail("the rate is longer than ten years");
    e.period_ = minutes(*value * unit_minutes);
    return e;
  }

  std::vector<std::string_view> fields;
  bool aws = false;
  if (auto cron = inner("cron(")) {
    fields = Words(*cron);
    aws = true;
    if (fields.size() != 6) {
      return fail(fmt::format(
          "cron() takes 6 fields (minutes hours day-of-month month day-of-week year), not {}",
          fields.size()));
    }
  } else if (!trimmed.empty() && trimmed.front() == '@') {
    static const std::pair<std::string_view, std::string_view> kMacros[] = {
        {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
        {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
        {"@hourly", "0 * * * *"}};
    for (const auto& [name, expansion] : kMacros) {
      if (trimmed == name) fields = Words(expansion);
    }
    if (fields.empty()) return fail("unknown macro (@hourly, @daily, @weekly, @monthly, @yearly)");
  } else {
    fields = Words(trimmed);
    if (fields.size() != 5) {
      return fail(
          "expected rate(VALUE UNIT), cron(minutes hours day-of-month month day-of-week year) or "
          "the five fields minute hour day-of-month month day-of-week");
    }
  }

  auto wrap = [&fail](const Error& error) { return fail(error.message); };
  const FieldKind minute_kind{"minutes", 0, 59};
  const FieldKind hour_kind{"hours", 0, 23};
  const FieldKind month_kind{"month", 1, 12, &kMonthNames, 1};
  const FieldKind dom_kind{"day-of-month", 1, 31};
  // EventBridge counts SUN as 1, classic cron as 0 (and 7).
  const FieldKind dow_kind = aws ? FieldKind{"day-of-week", 1, 7, &kDayNames, 1}
                                 : FieldKind{"day-of-week", 0, 7, &kDayNames, 0};
  auto minute_bits = ParseField(minute_kind, fields[0]);
  if (!minute_bits) return wrap(minute_bits.error());
  e.minutes_ = ToBits<60>(*minute_bits);
  auto hour_bits = ParseField(hour_kind, fields[1]);
  if (!hour_bits) return wrap(hour_bits.error());
  e.hours_ = ToBits<24>(*hour_bits);
  auto month_bits = ParseField(month_kind, fields[3]);
  if (!month_bits) return wrap(month_bits.error());
  e.months_ = ToBits<13>(*month_bits);

  // Day of month: plain values, or L, LW, nW; `?` stands for "any" in EventBridge's form.
  DayRule& days = e.days_;
  const std::string_view dom = fields[2];
  const std::string_view dow = fields[4];
  if (aws && (dom == "?") == (dow == "?")) {
    return fail("exactly one of day-of-month and day-of-week must be ? (e.g. cron(0 12 * * ? *))");
  }
  if (!aws && (dom == "?" || dow == "?")) return fail("? is for cron(...) expressions only");
  days.month_day_any = dom == "*" || dom == "?";
  if (!days.month_day_any) {
    std::vector<bool> plain(32, false);
    for (std::string_view item : Split(dom, ',')) {
      if (aws && item == "L") {
        days.last_day = true;
      } else if (aws && item == "LW") {
        days.last_weekday = true;
      } else if (aws && item.size() > 1 && item.back() == 'W') {
        auto day = Value(dom_kind, item.substr(0, item.size() - 1));
        if (!day) return wrap(day.error());
        days.nearest_weekday.set(static_cast<size_t>(*day));
      } else if (auto parsed = ParseRange(dom_kind, item, plain); !parsed) {
        return wrap(parsed.error());
      }
    }
    days.month_days = ToBits<32>(plain);
  }
  days.week_day_any = dow == "*" || dow == "?";
  if (!days.week_day_any) {
    std::vector<bool> plain(8, false);
    auto weekday = [&](std::string_view text) -> Result<unsigned> {
      auto value = Value(dow_kind, text);
      if (!value) return tl::unexpected(value.error());
      return static_cast<unsigned>(aws ? *value - 1 : *value % 7);
    };
    for (std::string_view item : Split(dow, ',')) {
      if (const size_t hash = item.find('#'); aws && hash != std::string_view::npos) {
        auto wd = weekday(item.substr(0, hash));
        if (!wd) return wrap(wd.error());
        auto nth = Number(item.substr(hash + 1));
        if (!nth || *nth < 1 || *nth > 5) {
          return fail(fmt::format("day-of-week \"{}\": the number after # must be 1 to 5", item));
        }
        days.nth_week_day[*wd] |= static_cast<uint8_t>(1u << (*nth - 1));
      } else if (aws && item.size() > 1 && item.back() == 'L') {
        auto wd = weekday(item.substr(0, item.size() - 1));
        if (!wd) return wrap(wd.error());
        days.last_week_day.set(*wd);
      } else if (auto parsed = ParseRange(dow_kind, item, plain); !parsed) {
        return wrap(parsed.error());
      }
    }
    for (size_t v = 0; v < plain.size(); ++v) {
      if (plain[v]) days.week_days.set(aws ? v - 1 : v % 7);
    }
  }
  days.either = !aws && !days.month_day_any && !days.week_day_any;

  if (aws) {
    auto year_bits = ParseField(FieldKind{"year", 1970, 2199}, fields[5]);
    if (!year_bits) return wrap(year_bits.error());
    e.years_ = ToBits<230>(*year_bits, 1970);
  } else {
    e.years_.set();
  }
  // An expression that can never fire (31 FEB, a year gone by) is the caller's mistake.
  if (!e.Next(TimePoint(std::chrono::milliseconds(0)))) return fail("it never fires");
  return e;
}

bool ScheduleExpression::DayMatches(int year, unsigned month, unsigned day) const {
  const DayRule& d = days_;
  bool month_day = d.month_day_any;
  if (!month_day) {
    const unsigned last = LastDay(year, month);
    month_day = d.month_days.test(day) || (d.last_day && day == last);
    if (!month_day && d.last_weekday) {
      month_day = day == NearestWeekday(year, month, last);
    }
    for (unsigned n = 1; !month_day && n <= 31; ++n) {
      if (d.nearest_weekday.test(n)) month_day = day == NearestWeekday(year, month, n);
    }
  }
  bool week_day = d.week_day_any;
  if (!week_day) {
    const unsigned wd = WeekDay(year, month, day);
    const unsigned nth = (day - 1) / 7;  // 0: the first such weekday of the month
    week_day = d.week_days.test(wd) || (d.nth_week_day[wd] & (1u << nth)) != 0 ||
               (d.last_week_day.test(wd) && day + 7 > LastDay(year, month));
  }
  return d.either ? month_day || week_day : month_day && week_day;
}

std::optional<TimePoint> ScheduleExpression::Next(TimePoint after) const {
  using std::chrono::milliseconds;
  if (is_rate()) {
    const int64_t p = period_.count();
    const int64_t t = after.time_since_epoch().count();
    const int64_t floor = (t >= 0 ? t / p : (t - p + 1) / p) * p;
    return TimePoint(milliseconds(floor + p));
  }
  // Walk the local calendar from the minute after `after`'s local time; the first candidate
  // whose instant is after `after` wins (local times map to instants in order, so the walk
  // skips only candidates that are not).
  const auto local = zone_->to_local(std::chrono::floor<std::chrono::seconds>(after));
  const auto start = std::chrono::floor<minutes>(local) + minutes(1);
  auto day = std::chrono::floor<date::days>(start);
  int first_hour = static_cast<int>(std::chrono::floor<std::chrono::hours>(start - day).count());
  int first_minute = static_cast<int>(
      std::chrono::floor<minutes>(start - day - std::chrono::hours(first_hour)).count());
  while (true) {
    const date::year_month_day ymd(day);
    const int year = static_cast<int>(ymd.year());
    const unsigned month = static_cast<unsigned>(ymd.month());
    if (year > 2199) return std::nullopt;
    if (year < 1970 || !years_.test(static_cast<size_t>(year - 1970))) {
      day = date::local_days(date::year(year + 1) / 1 / 1);
      first_hour = first_minute = 0;
      continue;
    }
    if (!months_.test(month)) {
      day = date::local_days(ymd.year() / ymd.month() / 1) +
            date::days(LastDay(year, month));  // the first of the next month
      first_hour = first_minute = 0;
      continue;
    }
    if (DayMatches(year, month, static_cast<unsigned>(ymd.day()))) {
      for (int h = first_hour; h < 24; ++h) {
        if (!hours_.test(static_cast<size_t>(h))) continue;
        for (int m = h == first_hour ? first_minute : 0; m < 60; ++m) {
          if (!minutes_.test(static_cast<size_t>(m))) continue;
          const auto wall = date::local_seconds(day) + std::chrono::hours(h) + minutes(m);
          const date::local_info info = zone_->get_info(wall);
          // Skipped by a change to summer time: at the end of the gap. Twice: the first time.
          const auto instant = info.result == date::local_info::nonexistent
                                   ? info.first.end
                                   : date::sys_seconds(wall.time_since_epoch()) - info.first.offset;
          const TimePoint when = std::chrono::time_point_cast<milliseconds>(instant);
          if (when > after) return when;
        }
      }
    }
    day += date::days(1);
    first_hour = first_minute = 0;
  }
}

}  // namespace wisp::schedule
