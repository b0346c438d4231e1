#include "wisp/schedule/schedule_spec.h"

#include <set>

#include <date/date.h>

#include <fmt/format.h>

namespace wisp::schedule {
namespace {

using nlohmann::json;

tl::unexpected<Error> Invalid(std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message));
}

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > kMaxScheduleNameLength) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

// "2030-01-01T00:01:00Z": EventBridge's `time`, to the second.
std::string FormatSecond(TimePoint t) {
  return date::format("%FT%TZ", std::chrono::floor<std::chrono::seconds>(t));
}

}  // namespace

Result<std::vector<Schedule>> DecodeSchedules(const json& value, TimePoint now) {
  if (!value.is_array()) {
    return Invalid(
        "schedules must be an array of {\"expression\", \"timezone\", \"payload\", \"enabled\", "
        "\"name\"} objects");
  }
  if (value.size() > kMaxSchedulesPerFunction) {
    return Invalid(fmt::format("schedules: at most {} per function", kMaxSchedulesPerFunction));
  }
  std::vector<Schedule> schedules;
  std::set<std::string> names;
  for (size_t i = 0; i < value.size(); ++i) {
    const json& item = value[i];
    const std::string where = fmt::format("schedules[{}]", i);
    if (!item.is_object()) return Invalid(where + " must be an object");
    Schedule s;
    s.name = fmt::format("schedule-{}", i + 1);
    for (const auto& [key, field] : item.items()) {
      if (key == "name") {
        if (!field.is_string() || !ValidName(field.get<std::string>())) {
          return Invalid(fmt::format("{}.name must be 1 to {} letters, digits, '-', '_' or '.'",
                                     where, kMaxScheduleNameLength));
        }
        s.name = field.get<std::string>();
      } else if (key == "expression") {
        if (!field.is_string()) {
          return Invalid(where + ".expression must be a string such as \"rate(5 minutes)\"");
        }
        s.expression = field.get<std::string>();
      } else if (key == "timezone") {
        if (!field.is_string()) return Invalid(where + ".timezone must be a string");
        s.timezone = field.get<std::string>();
      } else if (key == "payload") {
        std::string text = field.dump();
        if (text.size() > kMaxPayloadBytes) {
          return Invalid(fmt::format("{}.payload is over {} bytes", where, kMaxPayloadBytes));
        }
        s.payload_json = std::move(text);
      } else if (key == "enabled") {
        if (!field.is_boolean()) return Invalid(where + ".enabled must be true or false");
        s.enabled = field.get<bool>();
      } else {
        return Invalid(fmt::format(
            "{}: unknown field \"{}\" (fields: name, expression, timezone, payload, enabled)",
            where, key));
      }
    }
    if (s.expression.empty()) {
      return Invalid(where +
                     " needs an expression, e.g. \"rate(5 minutes)\" or \"cron(0 12 * * ? *)\"");
    }
    auto parsed = ScheduleExpression::Parse(s.expression, s.timezone);
    if (!parsed) return Invalid(fmt::format("{} ({}): {}", where, s.name, parsed.error().message));
    if (!parsed->Next(now)) {
      return Invalid(fmt::format("{} ({}): schedule expression \"{}\" never fires again", where,
                                 s.name, s.expression));
    }
    if (!names.insert(s.name).second) {
      return Invalid(fmt::format("{}: the name \"{}\" is used twice", where, s.name));
    }
    schedules.push_back(std::move(s));
  }
  return schedules;
}

json EncodeSchedules(const std::vector<Schedule>& schedules) {
  json out = json::array();
  for (const Schedule& s : schedules) {
    json item = {{"name", s.name},
                 {"expression", s.expression},
                 {"timezone", s.timezone},
                 {"enabled", s.enabled}};
    if (s.payload_json) item["payload"] = json::parse(*s.payload_json, nullptr, false);
    out.push_back(std::move(item));
  }
  return out;
}

std::vector<Schedule> ParseStoredSchedules(const std::string& schedules_json) {
  std::vector<Schedule> schedules;
  if (schedules_json.empty()) return schedules;
  const json stored = json::parse(schedules_json, nullptr, false);
  if (!stored.is_array()) return schedules;
  for (const json& item : stored) {
    // One at a time: a schedule that no longer parses must not take the others with it.
    auto one = DecodeSchedules(json::array({item}), TimePoint{});
    if (one && one->size() == 1) schedules.push_back(std::move(one->front()));
  }
  return schedules;
}

std::string StoreSchedules(const std::vector<Schedule>& schedules) {
  return schedules.empty() ? "" : EncodeSchedules(schedules).dump();
}

std::string ScheduledEvent(const std::string& function_name, const Schedule& schedule,
                           TimePoint slot, const std::string& region, const std::string& account_id,
                           const std::string& event_id) {
  const json event = {
      {"version", "0"},
      {"id", event_id},
      {"detail-type", "Scheduled Event"},
      {"source", "aws.events"},
      {"account", account_id},
      {"time", FormatSecond(slot)},
      {"region", region},
      {"resources", json::array({fmt::format("arn:aws:events:{}:{}:rule/{}-{}", region, account_id,
                                             function_name, schedule.name)})},
      {"detail", json::object()},
  };
  return event.dump();
}

}  // namespace wisp::schedule
