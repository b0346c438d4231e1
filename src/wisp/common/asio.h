// The one way Wisp includes Asio: Boost 1.74's awaitable.hpp uses std::exchange without
// including <utility>, so it must come first.
#pragma once

#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace wisp {
namespace asio = boost::asio;

// Runs `work` on `executor` (a worker pool, or a strand of one when writes must keep their
// order) and resumes the calling coroutine on its own executor with the result. For blocking
// calls (SQLite, file writes) made from an io thread.
//
// g++ 12 destroys a lambda written inside a co_await expression twice: name the lambda first,
// then `co_await Offload(pool, std::move(work))`. It does the same to a coroutine's default
// arguments of class type: use an overload instead.
template <typename Executor, typename Work>
auto Offload(Executor executor, Work work) -> asio::awaitable<decltype(work())> {
  using R = decltype(work());
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(R)>(
      [executor](auto handler, Work work) {
        auto home = asio::get_associated_executor(handler);
        asio::post(executor, [handler = std::move(handler), work = std::move(work),
                              home]() mutable {
          R result = work();
          asio::post(home, [handler = std::move(handler), result = std::move(result)]() mutable {
            std::move(handler)(std::move(result));
          });
        });
      },
      asio::use_awaitable, std::move(work));
}

template <typename Work>
auto Offload(asio::thread_pool& pool, Work work) -> asio::awaitable<decltype(work())> {
  return Offload(pool.get_executor(), std::move(work));
}

// A one-shot event for coroutines on one io thread: Wait() suspends until Set() or the
// deadline. Any number of coroutines may wait; each waits on a timer of its own (Asio 1.74 has
// no channel), which Set() cancels.
class Event {
 public:
  explicit Event(const asio::any_io_executor& executor) : executor_(executor) {}
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  void Set() {
    set_ = true;
    for (asio::steady_timer* waiter : waiters_) waiter->cancel();
  }
  bool is_set() const { return set_; }

  // True if Set() happened; false if the deadline passed first.
  asio::awaitable<bool> Wait(asio::steady_timer::time_point deadline) {
    if (set_) co_return true;
    asio::steady_timer timer(executor_, deadline);
    waiters_.push_back(&timer);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    std::erase(waiters_, &timer);
    co_return set_;
  }
  // Waits without a deadline. (An overload, not a default argument: see Offload.)
  asio::awaitable<bool> Wait() { return Wait(asio::steady_timer::time_point::max()); }

 private:
  asio::any_io_executor executor_;
  std::vector<asio::steady_timer*> waiters_;
  bool set_ = false;
};

}  // namespace wisp
