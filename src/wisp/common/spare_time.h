// SpareTimePriority: runs a background thread in the CPUs' spare time (SCHED_IDLE), and at
// normal priority while someone waits for its work. RaisingMutex: a mutex whose waiters raise
// such a thread, which may be the holder.
//
// Why: work that no caller waits for should not take CPU from the calls. wispd's invocation
// record writer costs 7-10 µs of CPU per call (SQLite); at normal priority it took that from the
// calls it records. Measured at instance_concurrency 8 and 8 clients on 2 cores, the writer
// switched between the two policies in alternating rounds of one wispd: a Node function served
// 23.3k against 28.5k calls/s (normal, SCHED_IDLE) in one run, 22.5k against 24.2k in another.
//
// Why raising: a SCHED_IDLE thread beside busy normal threads gets a fraction of a percent of a
// CPU. Whoever comes to wait for it raises it: a reader that flushes the records, a thread that
// finds the store's lock taken (the writer may hold it), a backlog that outgrows its memory
// bound. This is priority inheritance by hand: PTHREAD_PRIO_INHERIT covers real-time priorities
// only.
//
// Leaving SCHED_IDLE needs root or an RLIMIT_NICE that allows nice 0; without either the thread
// never enters it (a thread that could not be raised would stall its waiters).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <mutex>

namespace wisp {

class SpareTimePriority {
 public:
  SpareTimePriority() = default;
  SpareTimePriority(const SpareTimePriority&) = delete;
  SpareTimePriority& operator=(const SpareTimePriority&) = delete;

  // On the thread to run in spare time: binds to it and lowers it. False when it may not (see
  // above) or the kernel refused; the thread then keeps its priority and Raise does nothing.
  bool Enter();
  // The bound thread, once no one waits for it: back to spare time. Nothing before Enter.
  void Lower();
  // Any thread: the bound thread runs at normal priority until it calls Lower. Cheap when it
  // already does: an atomic load.
  void Raise();
  // Whether the bound thread is in spare time now.
  bool lowered() const { return lowered_.load(std::memory_order_acquire); }

 private:
  std::mutex mutex_;  // orders the system calls of Lower and Raise
  pid_t tid_ = 0;     // set by Enter, under mutex_
  std::atomic<bool> lowered_{false};
};

// A mutex (Lockable, for std::lock_guard) that raises `RaiseOnWait`'s thread when a locker
// would wait: uncontended, it costs what std::mutex costs.
class RaisingMutex {
 public:
  void lock() {
    if (mutex_.try_lock()) return;
    if (SpareTimePriority* priority = raise_.load(std::memory_order_acquire)) priority->Raise();
    mutex_.lock();
  }
  bool try_lock() { return mutex_.try_lock(); }
  void unlock() { mutex_.unlock(); }
  // `priority` (nullptr: none) is raised by every locker that finds the mutex taken; it must
  // outlive its registration.
  void RaiseOnWait(SpareTimePriority* priority) {
    raise_.store(priority, std::memory_order_release);
  }

 private:
  std::mutex mutex_;
  std::atomic<SpareTimePriority*> raise_{nullptr};
};

}  // namespace wisp
