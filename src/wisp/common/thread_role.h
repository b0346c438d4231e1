// ThreadRole: says which thread may call an object, and checks it. An object whose header says
// "the io thread only" holds one and checks it at its entry points; the first check binds the
// role to the calling thread (objects are often built on one thread before the io thread
// runs them). The check costs an atomic load and a compare; WISP_DCHECK_ON_THREAD does it in
// debug builds only, as nightcore's DCHECK_IN_EVENT_LOOP_THREAD does.
//
// WISP_GUARDED_BY(mutex) marks a member that only code holding `mutex` may touch: clang's
// -Wthread-safety checks it; for g++ it is documentation.
#pragma once

#include <atomic>
#include <thread>

namespace wisp {

class ThreadRole {
 public:
  ThreadRole() = default;
  ThreadRole(const ThreadRole&) = delete;
  ThreadRole& operator=(const ThreadRole&) = delete;

  // True when called on the bound thread; the first call binds the role to its thread.
  bool IsCurrent() const;
  // Aborts with `file:line` and what was called when not on the bound thread.
  void Check(const char* file, int line) const;

 private:
  mutable std::atomic<std::thread::id> owner_{};
};

}  // namespace wisp

#ifdef NDEBUG
#define WISP_DCHECK_ON_THREAD(role) ((void)0)
#else
#define WISP_DCHECK_ON_THREAD(role) (role).Check(__FILE__, __LINE__)
#endif

#if defined(__clang__)
#define WISP_GUARDED_BY(x) __attribute__((guarded_by(x)))
#else
#define WISP_GUARDED_BY(x)
#endif
