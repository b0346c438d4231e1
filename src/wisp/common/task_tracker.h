// TaskTracker: the one place that knows what work is in flight that a graceful stop must let
// finish: requests the public API is handling, async attempts running. Shutdown waits for it
// to drain (or for its deadline) instead of polling counters.
//
// Thread rules: one io thread. A Task may be destroyed after the tracker (a coroutine frame
// torn down with its io_context): tasks share the count with it, not a reference to it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <vector>

#include "wisp/common/asio.h"
#include "wisp/common/defer.h"

namespace wisp {

class TaskTracker {
  struct State {
    size_t active = 0;
    std::vector<Event*> drain_waiters;
  };

 public:
  // One unit of work; it ends when destroyed. Move-only.
  class Task {
   public:
    Task() = default;
    Task(Task&& other) noexcept = default;
    Task& operator=(Task&& other) noexcept {
      End();
      state_ = std::move(other.state_);
      return *this;
    }
    Task(const Task&) = delete;
    Task& operator=(const Task&) = delete;
    ~Task() { End(); }

   private:
    friend class TaskTracker;
    explicit Task(std::shared_ptr<State> state) : state_(std::move(state)) { ++state_->active; }
    void End() {
      if (!state_) return;
      if (--state_->active == 0) {
        for (Event* waiter : state_->drain_waiters) waiter->Set();
      }
      state_.reset();
    }
    std::shared_ptr<State> state_;
  };

  Task Start() { return Task(state_); }
  size_t active() const { return state_->active; }

  // Waits until no task is active or `deadline` passes; true when drained.
  asio::awaitable<bool> Drained(asio::steady_timer::time_point deadline) {
    if (state_->active == 0) co_return true;
    Event drained(co_await asio::this_coro::executor);
    state_->drain_waiters.push_back(&drained);
    // Also when this frame is destroyed while it waits: no task may wake a freed Event.
    const auto forget = [state = state_, waiter = &drained] {
      auto& waiters = state->drain_waiters;
      waiters.erase(std::remove(waiters.begin(), waiters.end(), waiter), waiters.end());
    };
    Defer unregister(forget);
    co_await drained.Wait(deadline);
    co_return state_->active == 0;
  }

 private:
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace wisp
