// The one way Wisp includes Asio: Boost 1.74's awaitable.hpp uses std::exchange without
// including <utility>, so it must come first.
#pragma once

#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace wisp {
namespace asio = boost::asio;

// Runs `work` on `pool` and resumes the calling coroutine on its own executor with the result.
// For blocking calls (SQLite, file writes) made from an io thread.
//
// g++ 12 destroys a lambda written inside a co_await expression twice: name the lambda first,
// then `co_await Offload(pool, std::move(work))`. It does the same to a coroutine's default
// arguments of class type: use an overload instead.
template <typename Work>
auto Offload(asio::thread_pool& pool, Work work) -> asio::awaitable<decltype(work())> {
  using R = decltype(work());
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(R)>(
      [&pool](auto handler, Work work) {
        auto home = asio::get_associated_executor(handler);
        asio::post(pool, [handler = std::move(handler), work = std::move(work), home]() mutable {
          R result = work();
          asio::post(home, [handler = std::move(handler), result = std::move(result)]() mutable {
            std::move(handler)(std::move(result));
          });
        });
      },
      asio::use_awaitable, std::move(work));
}

// A one-shot event for coroutines on one io thread: Wait() suspends until Set() or the
// deadline. Built on a timer because Asio 1.74 has no channel.
class Event {
 public:
  explicit Event(const asio::any_io_executor& executor)
      : timer_(executor, asio::steady_timer::time_point::max()) {}

  void Set() {
    set_ = true;
    timer_.cancel();
  }
  bool is_set() const { return set_; }

  // True if Set() happened; false if the deadline passed first.
  asio::awaitable<bool> Wait(
      asio::steady_timer::time_point deadline = asio::steady_timer::time_point::max()) {
    if (set_) co_return true;
    timer_.expires_at(deadline);
    boost::system::error_code ec;
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    co_return set_;
  }

 private:
  asio::steady_timer timer_;
  bool set_ = false;
};

}  // namespace wisp
