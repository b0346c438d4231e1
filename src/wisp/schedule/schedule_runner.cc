#include "wisp/schedule/schedule_runner.h"

#include <set>

#include <spdlog/spdlog.h>

#include "wisp/common/ids.h"

namespace wisp::schedule {
namespace {

int64_t Millis(TimePoint t) { return t.time_since_epoch().count(); }
TimePoint FromMillis(int64_t ms) { return TimePoint(std::chrono::milliseconds(ms)); }

struct Scheduled {
  std::string id;
  std::string name;
  std::vector<Schedule> schedules;
};

}  // namespace

ScheduleRunner::ScheduleRunner(asio::io_context& io, asio::thread_pool& workers,
                               store::ScheduleStore& store, core::FunctionService& functions,
                               core::AsyncDispatcher& dispatcher, const Clock& clock,
                               RunnerOptions options)
    : io_(io),
      workers_(workers),
      store_(store),
      functions_(functions),
      dispatcher_(dispatcher),
      clock_(clock),
      options_(std::move(options)),
      wake_(io) {}

void ScheduleRunner::Start() { asio::co_spawn(io_, Loop(), asio::detached); }

void ScheduleRunner::Stop() {
  stopping_ = true;
  wake_.cancel();
}

TimePoint ScheduleRunner::now() const {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(clock_.WallNow());
}

std::optional<TimePoint> ScheduleRunner::NextFiring(const Schedule& schedule) const {
  if (!schedule.enabled) return std::nullopt;
  auto expression = ScheduleExpression::Parse(schedule.expression, schedule.timezone);
  if (!expression) return std::nullopt;
  return expression->Next(now());
}

asio::awaitable<void> ScheduleRunner::Loop() {
  while (!stopping_) {
    (void)co_await RunOnce();
    wake_.expires_after(options_.period);
    boost::system::error_code ec;
    co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<PassReport> ScheduleRunner::RunOnce() {
  while (running_) {
    const auto busy = running_;
    co_await busy->Wait();
  }
  const auto mine = std::make_shared<Event>(io_.get_executor());
  running_ = mine;
  PassReport report = co_await Pass();
  running_.reset();
  mine->Set();
  co_return report;
}

asio::awaitable<PassReport> ScheduleRunner::Pass() {
  PassReport report;
  // Copied first: the functions' map may change while a store call is out.
  std::vector<Scheduled> scheduled;
  std::map<std::string, ParsedSchedules> parsed;
  for (const core::Function* f : functions_.List()) {
    if (f->record.schedules_json.empty()) continue;
    // Parsed again only when they changed: a pass runs every second.
    auto it = parsed_.find(f->record.id);
    if (it == parsed_.end() || it->second.json != f->record.schedules_json) {
      it = parsed_
               .insert_or_assign(f->record.id,
                                 ParsedSchedules{f->record.schedules_json,
                                                 ParseStoredSchedules(f->record.schedules_json)})
               .first;
    }
    scheduled.push_back({f->record.id, f->record.name, it->second.schedules});
    parsed.insert(parsed_.extract(it));
  }
  parsed_ = std::move(parsed);  // deleted functions' and removed schedules' go
  const int64_t now_ms = Millis(now());
  std::set<SlotKey> present;
  for (const Scheduled& s : scheduled) {
    for (const Schedule& schedule : s.schedules) {
      present.insert({s.id, schedule.name});
      co_await Visit(s.id, s.name, schedule, now_ms, report);
    }
  }
  // Schedules removed (or their function deleted): a schedule of that name added later starts
  // afresh instead of catching up from this one's last slot.
  std::vector<SlotKey> gone;
  for (const auto& [key, slot] : slots_) {
    if (!present.contains(key)) gone.push_back(key);
  }
  for (const SlotKey& key : gone) co_await Forget(key);
  co_return report;
}

asio::awaitable<void> ScheduleRunner::Forget(SlotKey key) {
  slots_.erase(key);
  auto forget = [this, key] { return store_.ForgetFiring(key.first, key.second); };
  if (auto forgotten = co_await Offload(workers_, std::move(forget)); !forgotten) {
    spdlog::warn("schedule {} of function {}: {}", key.second, key.first,
                 forgotten.error().message);
  }
}

asio::awaitable<void> ScheduleRunner::Visit(const std::string& function_id,
                                            const std::string& function_name,
                                            const Schedule& schedule, int64_t now_ms,
                                            PassReport& report) {
  const SlotKey key{function_id, schedule.name};
  Slot& slot = slots_[key];
  if (!schedule.enabled) {
    // Forgotten once, so that enabling it again starts from then instead of catching up.
    if (!slot.disabled) {
      co_await Forget(key);
      slots_[key].disabled = true;
    }
    co_return;
  }
  const std::string signature = schedule.expression + "\n" + schedule.timezone;
  if (slot.disabled || slot.signature != signature) {
    slot = Slot{};
    slot.signature = signature;
  }
  if (now_ms < slot.next_check_ms) co_return;
  auto expression = ScheduleExpression::Parse(schedule.expression, schedule.timezone);
  if (!expression) co_return;  // the record was checked when stored; a tz the system dropped

  if (!slots_[key].loaded) {
    // Armed at now if the store has no slot yet: a new schedule fires from its next slot.
    auto read = [this, key, now_ms]() -> Result<std::optional<int64_t>> {
      auto last = store_.LastFiring(key.first, key.second);
      if (!last || *last) return last;
      auto armed = store_.ClaimFiring(key.first, key.second, std::nullopt, now_ms);
      if (!armed) return tl::unexpected(armed.error());
      return store_.LastFiring(key.first, key.second);
    };
    auto last = co_await Offload(workers_, std::move(read));
    if (!last || !*last) {
      if (!last && last.error().code != ErrorCode::kNotFound) {
        spdlog::warn("schedule {} of function {}: {}", key.second, function_name,
                     last.error().message);
      }
      co_return;
    }
    auto it = slots_.find(key);
    if (it == slots_.end()) co_return;
    it->second.last = *last;
    it->second.loaded = true;
  }
  const int64_t last_ms = *slots_[key].last;

  const auto first = expression->Next(FromMillis(last_ms));
  if (!first || Millis(*first) > now_ms) {
    slots_[key].next_check_ms = first ? Millis(*first) : INT64_MAX;
    co_return;
  }
  // Due. The newest slot within the catch-up window fires; with none there, the missed slots
  // are skipped and the last slot moves to now.
  const int64_t window_start = now_ms - options_.catch_up_window.count();
  std::optional<TimePoint> due = expression->Next(FromMillis(std::max(last_ms, window_start - 1)));
  const bool fire = due && Millis(*due) <= now_ms;
  if (fire) {
    while (true) {
      const auto later = expression->Next(*due);
      if (!later || Millis(*later) > now_ms) break;
      due = later;
    }
  }
  const int64_t new_last = fire ? Millis(*due) : now_ms;
  auto claim = [this, key, last_ms, new_last] {
    return store_.ClaimFiring(key.first, key.second, last_ms, new_last);
  };
  auto claimed = co_await Offload(workers_, std::move(claim));
  auto it = slots_.find(key);
  if (it == slots_.end()) co_return;
  Slot& current = it->second;
  if (!claimed || !*claimed) {
    if (!claimed) {
      spdlog::warn("schedule {} of function {}: {}", key.second, function_name,
                   claimed.error().message);
    } else {
      ++report.lost;  // another node moved it first: it fired (or skipped) this slot
    }
    current.loaded = false;
    co_return;
  }
  current.last = new_last;
  const auto next = expression->Next(FromMillis(new_last));
  current.next_check_ms = next ? Millis(*next) : INT64_MAX;
  if (!fire) {
    ++report.skipped;
    spdlog::warn(
        "schedule {} of function {}: missed slots older than the catch-up window ({} s) skipped",
        key.second, function_name, options_.catch_up_window.count() / 1000);
    co_return;
  }
  core::SubmitRequest request;
  request.function_id = function_id;
  request.event_json = schedule.payload_json
                           ? *schedule.payload_json
                           : ScheduledEvent(function_name, schedule, *due, options_.region,
                                            options_.account_id, NewUuid());
  auto submitted = co_await dispatcher_.Submit(std::move(request));
  if (!submitted) {
    spdlog::warn("schedule {} of function {}: the firing at {} was not queued: {}", key.second,
                 function_name, FormatIso8601(std::chrono::system_clock::time_point(*due)),
                 submitted.error().message);
    co_return;
  }
  ++report.fired;
  report.invocation_ids.push_back(submitted->id);
}

}  // namespace wisp::schedule
