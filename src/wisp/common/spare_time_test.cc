#include "wisp/common/spare_time.h"

#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

namespace wisp {
namespace {

// A thread that enters spare time and waits until destroyed; the test reads its tid.
class SpareTimeThread {
 public:
  explicit SpareTimeThread(SpareTimePriority& priority) : priority_(priority) {
    thread_ = std::thread([this] {
      entered_ = priority_.Enter();
      {
        std::lock_guard lock(mutex_);
        tid_ = ::gettid();
      }
      ready_.notify_all();
      std::unique_lock lock(mutex_);
      stop_.wait(lock, [this] { return stopping_; });
    });
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [this] { return tid_ != 0; });
  }
  ~SpareTimeThread() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    stop_.notify_all();
    thread_.join();
  }
  pid_t tid() const { return tid_; }
  bool entered() const { return entered_; }

 private:
  SpareTimePriority& priority_;
  std::mutex mutex_;
  std::condition_variable ready_, stop_;
  pid_t tid_ = 0;
  bool entered_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

TEST(SpareTimePriority, EnterLowersTheThreadRaiseAndLowerSwitchIt) {
  if (::geteuid() != 0) GTEST_SKIP() << "leaving SCHED_IDLE needs root";
  SpareTimePriority priority;
  SpareTimeThread thread(priority);
  ASSERT_TRUE(thread.entered());
  EXPECT_EQ(::sched_getscheduler(thread.tid()), SCHED_IDLE);
  EXPECT_TRUE(priority.lowered());
  // Only the bound thread changes, not the caller.
  EXPECT_EQ(::sched_getscheduler(0), SCHED_OTHER);

  priority.Raise();
  EXPECT_EQ(::sched_getscheduler(thread.tid()), SCHED_OTHER);
  EXPECT_FALSE(priority.lowered());
  priority.Raise();  // already raised: nothing changes
  EXPECT_EQ(::sched_getscheduler(thread.tid()), SCHED_OTHER);

  priority.Lower();
  EXPECT_EQ(::sched_getscheduler(thread.tid()), SCHED_IDLE);
  EXPECT_TRUE(priority.lowered());
}

TEST(SpareTimePriority, RaiseAndLowerBeforeEnterDoNothing) {
  SpareTimePriority priority;
  priority.Raise();
  priority.Lower();
  EXPECT_FALSE(priority.lowered());
  EXPECT_EQ(::sched_getscheduler(0), SCHED_OTHER);
}

TEST(RaisingMutex, AWaiterRaisesTheRegisteredThreadAndAFreeMutexDoesNot) {
  if (::geteuid() != 0) GTEST_SKIP() << "leaving SCHED_IDLE needs root";
  SpareTimePriority priority;
  SpareTimeThread background(priority);
  ASSERT_TRUE(background.entered());
  RaisingMutex mutex;
  mutex.RaiseOnWait(&priority);

  { std::lock_guard lock(mutex); }  // free: no one waits
  EXPECT_EQ(::sched_getscheduler(background.tid()), SCHED_IDLE);

  std::atomic<bool> waiter_locked{false};
  mutex.lock();  // held, as the background thread would hold a store's lock
  std::thread waiter([&] {
    std::lock_guard lock(mutex);
    waiter_locked = true;
  });
  // The waiter raises before it blocks; nothing else raises the thread.
  while (priority.lowered()) std::this_thread::yield();
  EXPECT_EQ(::sched_getscheduler(background.tid()), SCHED_OTHER);
  EXPECT_FALSE(waiter_locked);
  mutex.unlock();
  waiter.join();
  EXPECT_TRUE(waiter_locked);
}

}  // namespace
}  // namespace wisp
