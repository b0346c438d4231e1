#include "wisp/common/spare_time.h"

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace wisp {
namespace {

bool SetPolicy(pid_t tid, int policy) {
  const sched_param param{.sched_priority = 0};
  return ::sched_setscheduler(tid, policy, &param) == 0;
}

// Whether a thread of this process may go back from SCHED_IDLE to SCHED_OTHER at nice 0: root,
// or a soft RLIMIT_NICE of at least 20 (the kernel's 20 - nice). CAP_SYS_NICE without root is
// not looked for: wispd runs as root.
bool MayLeaveIdle() {
  if (::geteuid() == 0) return true;
  rlimit limit{};
  return ::getrlimit(RLIMIT_NICE, &limit) == 0 && limit.rlim_cur >= 20;
}

}  // namespace

bool SpareTimePriority::Enter() {
  std::lock_guard lock(mutex_);
  if (!MayLeaveIdle()) {
    spdlog::warn("a background thread keeps normal priority: leaving SCHED_IDLE needs root");
    return false;
  }
  const pid_t tid = ::gettid();
  if (!SetPolicy(tid, SCHED_IDLE)) {
    spdlog::warn("a background thread keeps normal priority: SCHED_IDLE: {}", std::strerror(errno));
    return false;
  }
  tid_ = tid;
  lowered_.store(true, std::memory_order_release);
  return true;
}

void SpareTimePriority::Lower() {
  std::lock_guard lock(mutex_);
  if (tid_ == 0 || lowered_.load(std::memory_order_relaxed)) return;
  if (SetPolicy(tid_, SCHED_IDLE)) lowered_.store(true, std::memory_order_release);
}

void SpareTimePriority::Raise() {
  if (!lowered_.load(std::memory_order_acquire)) return;
  std::lock_guard lock(mutex_);
  if (!lowered_.load(std::memory_order_relaxed)) return;
  if (SetPolicy(tid_, SCHED_OTHER)) {
    lowered_.store(false, std::memory_order_release);
  } else {
    // MayLeaveIdle said it could: only a vanished thread fails here.
    spdlog::error("a background thread could not be raised from SCHED_IDLE: {}",
                  std::strerror(errno));
  }
}

}  // namespace wisp
