#include "wisp/common/task_tracker.h"

#include <optional>

#include <gtest/gtest.h>

namespace wisp {
namespace {

// Runs `body` on a fresh io_context until it finishes.
void RunOnIo(std::function<asio::awaitable<void>(asio::io_context&)> body) {
  asio::io_context io;
  asio::co_spawn(io, body(io), asio::detached);
  io.run();
}

TEST(TaskTrackerTest, DrainsWhenTheLastTaskEnds) {
  RunOnIo([](asio::io_context& io) -> asio::awaitable<void> {
    TaskTracker tracker;
    EXPECT_TRUE(co_await tracker.Drained(std::chrono::steady_clock::now()));  // nothing running
    auto first = std::make_shared<std::optional<TaskTracker::Task>>(tracker.Start());
    auto second = std::make_shared<std::optional<TaskTracker::Task>>(tracker.Start());
    EXPECT_EQ(tracker.active(), 2u);
    // The tasks end 20 and 40 ms from now; the wait wakes at the second, not by polling.
    auto end_later = [&io](std::shared_ptr<std::optional<TaskTracker::Task>> task, int ms) {
      auto timer = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(ms));
      timer->async_wait([task, timer](boost::system::error_code) { task->reset(); });
    };
    end_later(first, 20);
    end_later(second, 40);
    const auto started = std::chrono::steady_clock::now();
    const bool drained = co_await tracker.Drained(started + std::chrono::seconds(10));
    EXPECT_TRUE(drained);
    EXPECT_EQ(tracker.active(), 0u);
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
  });
}

TEST(TaskTrackerTest, GivesUpAtTheDeadlineAndATaskMayOutliveTheTracker) {
  std::optional<TaskTracker::Task> survivor;
  RunOnIo([&survivor](asio::io_context&) -> asio::awaitable<void> {
    TaskTracker tracker;
    survivor = tracker.Start();
    TaskTracker::Task moved = tracker.Start();
    TaskTracker::Task target = std::move(moved);  // a moved-from task ends nothing
    EXPECT_EQ(tracker.active(), 2u);
    const bool drained =
        co_await tracker.Drained(std::chrono::steady_clock::now() + std::chrono::milliseconds(30));
    EXPECT_FALSE(drained);
  });
  survivor.reset();  // its tracker is gone: ending it must be harmless
}

}  // namespace
}  // namespace wisp
