#include "wisp/common/asio.h"

#include <sys/socket.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace wisp {
namespace {

using StreamSocket = asio::generic::stream_protocol::socket;

// A connected pair of Unix stream sockets with the smallest send buffer the kernel allows, so
// that a large write cannot go out in one system call.
std::pair<StreamSocket, StreamSocket> SocketPair(asio::io_context& io) {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  int small = 4096;
  ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  StreamSocket writer(io), reader(io);
  writer.assign(asio::generic::stream_protocol(AF_UNIX, 0), fds[0]);
  reader.assign(asio::generic::stream_protocol(AF_UNIX, 0), fds[1]);
  writer.non_blocking(true);
  return {std::move(writer), std::move(reader)};
}

std::string Received(asio::io_context& io, StreamSocket& reader, size_t size) {
  std::string received(size, '\0');
  asio::async_read(reader, asio::buffer(received), [](boost::system::error_code, size_t) {});
  io.run();
  return received;
}

TEST(WriteNowTest, WritesHeadThenBodyWhenBothFitAtOnce) {
  asio::io_context io;
  auto [writer, reader] = SocketPair(io);
  boost::system::error_code result = asio::error::fault;
  auto write = [&]() -> asio::awaitable<void> {
    result = co_await WriteNow(writer, "head:", "body");
  };
  asio::co_spawn(io, write, asio::detached);
  EXPECT_EQ(Received(io, reader, 9), "head:body");
  EXPECT_FALSE(result);
}

// More than the socket buffer takes: the rest goes out as the reader drains it, in order, from
// wherever the first write stopped (inside the head or inside the body).
TEST(WriteNowTest, WritesTheRestWhenTheSocketBufferIsFull) {
  for (const size_t head_size : {size_t{10}, size_t{1} << 20}) {
    asio::io_context io;
    auto [writer, reader] = SocketPair(io);
    std::string head(head_size, 'h');
    std::string body(3 << 20, '\0');
    for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
    boost::system::error_code result = asio::error::fault;
    auto write = [&]() -> asio::awaitable<void> { result = co_await WriteNow(writer, head, body); };
    asio::co_spawn(io, write, asio::detached);
    EXPECT_TRUE(Received(io, reader, head.size() + body.size()) == head + body) << head_size;
    EXPECT_FALSE(result);
  }
}

// Waiters wake in the order they began to wait, also when one that left (its deadline) is
// followed by a new one; a wait after Set() ends at once, one whose deadline passes returns false.
TEST(EventTest, SetWakesEveryWaiterInOrderAndADeadlineEndsAWait) {
  asio::io_context io;
  Event event(io.get_executor());
  std::vector<std::string> woken;
  const auto far = std::chrono::steady_clock::now() + std::chrono::hours(1);
  auto wait = [&](std::string name) -> asio::awaitable<void> {
    const bool set = co_await event.Wait(far);
    woken.push_back(name + (set ? "" : " (deadline)"));
  };
  auto leaves = [&]() -> asio::awaitable<void> {
    const bool set = co_await event.Wait(std::chrono::steady_clock::now());
    woken.push_back(set ? "leaves (set)" : "leaves");
  };
  auto later = [&]() -> asio::awaitable<void> {
    co_await wait("c");
    // Set: a new wait ends at once.
    const bool set = co_await event.Wait(std::chrono::steady_clock::now());
    woken.push_back(set ? "after set" : "after set (deadline)");
  };
  asio::co_spawn(io, leaves(), asio::detached);
  asio::co_spawn(io, wait("a"), asio::detached);
  io.run_for(std::chrono::milliseconds(50));  // "leaves" gives up; "a" waits
  asio::co_spawn(io, wait("b"), asio::detached);
  asio::co_spawn(io, later(), asio::detached);
  io.poll();
  EXPECT_EQ(woken, (std::vector<std::string>{"leaves"}));
  event.Set();
  io.restart();
  io.run();
  EXPECT_EQ(woken, (std::vector<std::string>{"leaves", "a", "b", "c", "after set"}));
}

}  // namespace
}  // namespace wisp
