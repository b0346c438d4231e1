// Clock: the time source, behind an interface so scheduler and reaper tests can move time by
// hand instead of sleeping.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace wisp {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time, for durations and deadlines.
  virtual std::chrono::steady_clock::time_point Now() const = 0;
  // Wall-clock time, for timestamps users read.
  virtual std::chrono::system_clock::time_point WallNow() const = 0;
};

class SystemClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point Now() const override {
    return std::chrono::steady_clock::now();
  }
  std::chrono::system_clock::time_point WallNow() const override {
    return std::chrono::system_clock::now();
  }
};

// A clock tests advance by hand. Any thread may read it; only the test thread advances it.
class ManualClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point Now() const override { return now_; }
  std::chrono::system_clock::time_point WallNow() const override { return wall_; }
  void Advance(std::chrono::nanoseconds d) {
    now_ += d;
    wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
  }

 private:
  std::chrono::steady_clock::time_point now_{};
  std::chrono::system_clock::time_point wall_{std::chrono::seconds(1'700'000'000)};
};

// "2025-10-22T08:25:59.898Z": the timestamp format of every API response.
std::string FormatIso8601(std::chrono::system_clock::time_point t);

int64_t ToEpochMillis(std::chrono::system_clock::time_point t);

}  // namespace wisp
