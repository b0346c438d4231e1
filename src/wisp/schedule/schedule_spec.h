// A function's schedules as the API takes them and the store keeps them (the function record's
// `schedules_json`, a JSON array):
//   [{"name": "nightly", "expression": "cron(0 3 * * ? *)", "timezone": "Europe/Berlin",
//     "payload": {...}, "enabled": true}, ...]
// `name` defaults to "schedule-<n>" (its position from 1), `timezone` to "UTC", `enabled` to
// true; without `payload` each firing sends EventBridge's "Scheduled Event".
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "wisp/common/result.h"
#include "wisp/schedule/schedule_expression.h"

namespace wisp::schedule {

constexpr size_t kMaxSchedulesPerFunction = 20;
constexpr size_t kMaxScheduleNameLength = 64;
constexpr size_t kMaxPayloadBytes = 256 << 10;  // EventBridge's limit for an event

struct Schedule {
  std::string name;
  std::string expression;
  std::string timezone = "UTC";
  std::optional<std::string> payload_json;  // minified JSON; nullopt: the Scheduled Event
  bool enabled = true;
};

// Reads and checks a `schedules` array: kInvalidArgument naming the schedule and what is wrong
// with it (an expression that does not parse, or that never fires after `now`).
Result<std::vector<Schedule>> DecodeSchedules(const nlohmann::json& value, TimePoint now);
nlohmann::json EncodeSchedules(const std::vector<Schedule>& schedules);

// The stored form (what DecodeSchedules accepted, as EncodeSchedules writes it). A record
// whose schedules no longer parse (a time zone the system dropped) yields the ones that do.
std::vector<Schedule> ParseStoredSchedules(const std::string& schedules_json);
std::string StoreSchedules(const std::vector<Schedule>& schedules);

// EventBridge's "Scheduled Event" for a firing at `slot` of `schedule`, the event a function
// gets when the schedule has no payload of its own.
std::string ScheduledEvent(const std::string& function_name, const Schedule& schedule,
                           TimePoint slot, const std::string& region, const std::string& account_id,
                           const std::string& event_id);

}  // namespace wisp::schedule
