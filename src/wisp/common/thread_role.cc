#include "wisp/common/thread_role.h"

#include <cstdio>
#include <cstdlib>

namespace wisp {

bool ThreadRole::IsCurrent() const {
  const std::thread::id self = std::this_thread::get_id();
  std::thread::id owner = owner_.load(std::memory_order_acquire);
  if (owner == std::thread::id()) {
    // Unbound: this thread takes the role, unless another thread took it first.
    if (owner_.compare_exchange_strong(owner, self, std::memory_order_acq_rel)) return true;
  }
  return owner == self;
}

void ThreadRole::Check(const char* file, int line) const {
  if (IsCurrent()) return;
  std::fprintf(stderr, "%s:%d: called on the wrong thread (this object belongs to another)\n", file,
               line);
  std::abort();
}

}  // namespace wisp
