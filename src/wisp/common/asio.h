// The one way Wisp includes Asio: Boost 1.74's awaitable.hpp uses std::exchange without
// including <utility>, so it must come first.
#pragma once

#include <array>
#include <string_view>
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

// Writes `head` then `body` to a non-blocking stream socket: at once with one writev, and only
// if the socket buffer cannot take it all does the coroutine suspend for the rest. A reply
// almost always fits, so the common case costs one system call and no copy of the body.
template <typename Socket>
asio::awaitable<boost::system::error_code> WriteNow(Socket& socket, std::string_view head,
                                                    std::string_view body) {
  boost::system::error_code ec;
  size_t written = socket.write_some(
      std::array<asio::const_buffer, 2>{asio::buffer(head), asio::buffer(body)}, ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    written = 0;
    ec = {};
  }
  if (ec || written == head.size() + body.size()) co_return ec;
  const size_t head_left = written < head.size() ? head.size() - written : 0;
  const std::array<asio::const_buffer, 2> rest{
      asio::buffer(head.substr(head.size() - head_left)),
      asio::buffer(body.substr(written - (head.size() - head_left)))};
  co_await asio::async_write(socket, rest, asio::redirect_error(asio::use_awaitable, ec));
  co_return ec;
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
    if (first_waiter_) first_waiter_->cancel();
    for (asio::steady_timer* waiter : more_waiters_) waiter->cancel();
  }
  bool is_set() const { return set_; }

  // True if Set() happened; false if the deadline passed first.
  asio::awaitable<bool> Wait(asio::steady_timer::time_point deadline) {
    if (set_) co_return true;
    asio::steady_timer timer(executor_, deadline);
    if (!first_waiter_ && more_waiters_.empty()) {  // so that Set() wakes them in order
      first_waiter_ = &timer;
    } else {
      more_waiters_.push_back(&timer);
    }
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (first_waiter_ == &timer) {
      first_waiter_ = nullptr;
    } else {
      std::erase(more_waiters_, &timer);
    }
    co_return set_;
  }
  // Waits without a deadline. (An overload, not a default argument: see Offload.)
  asio::awaitable<bool> Wait() { return Wait(asio::steady_timer::time_point::max()); }

 private:
  asio::any_io_executor executor_;
  // Most events have one waiter at a time (a call's answer): it needs no allocation.
  asio::steady_timer* first_waiter_ = nullptr;
  std::vector<asio::steady_timer*> more_waiters_;
  bool set_ = false;
};

}  // namespace wisp
