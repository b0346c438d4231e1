// Reading an HTTP/1.1 request from a peer that may be hostile, in two phases with a deadline
// each: the header, then (once the caller has looked at the header and accepted it) the body.
//
// A request's clock starts at its first byte. A connection idle between requests (keep-alive)
// waits without a deadline: callers bound how many such connections there are instead. Bytes
// already buffered are parsed before any wait, so a request that arrives whole (the common case
// on a warm path) arms no timer and costs no allocation here.
//
// Thread rules: the socket's io thread only.
#pragma once

#include <chrono>
#include <memory>
#include <optional>

#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>

#include "wisp/common/asio.h"

namespace wisp::http_read {

using Clock = std::chrono::steady_clock;

// How much one read asks the socket for.
inline constexpr size_t kReadChunk = 64 << 10;

// Reads what the socket has into `buffer`. Without a deadline it waits as long as it takes;
// with one it gives up then with beast::error::timeout (and the socket stays usable for a
// reply). `timer` is the caller's, reused from one read to the next. A read that brings bytes
// adds one to `*reads` (null: not counted), so a caller can tell whether anything arrived since
// some moment.
template <typename Socket>
asio::awaitable<boost::system::error_code> ReadMore(Socket& socket,
                                                    boost::beast::flat_buffer& buffer,
                                                    asio::steady_timer& timer,
                                                    std::optional<Clock::time_point> deadline,
                                                    uint64_t* reads) {
  boost::system::error_code ec;
  const auto space = buffer.prepare(kReadChunk);
  if (!deadline) {
    const size_t n =
        co_await socket.async_read_some(space, asio::redirect_error(asio::use_awaitable, ec));
    buffer.commit(n);
    if (reads && n > 0) ++*reads;
    co_return ec;
  }
  if (Clock::now() >= *deadline) co_return boost::beast::error::timeout;
  // The timer cancels the read. Its handler may already be queued when the read completes, so
  // it reaches the socket only through `target`, which is gone by the time it could run.
  auto target = std::make_shared<Socket*>(&socket);
  auto cancel_read = [weak = std::weak_ptr<Socket*>(target)](boost::system::error_code timer_ec) {
    if (timer_ec) return;
    if (auto socket_ptr = weak.lock()) {
      boost::system::error_code ignored;
      (*socket_ptr)->cancel(ignored);
    }
  };
  timer.expires_at(*deadline);
  timer.async_wait(std::move(cancel_read));
  const size_t n =
      co_await socket.async_read_some(space, asio::redirect_error(asio::use_awaitable, ec));
  target.reset();
  timer.cancel();
  buffer.commit(n);
  if (reads && n > 0) ++*reads;
  if (ec == asio::error::operation_aborted && Clock::now() >= *deadline) {
    co_return boost::beast::error::timeout;
  }
  co_return ec;
}

// ReadHeader's work on the bytes `buffer` already holds, without reading or suspending: true
// when the header is complete (`ec` clear) or the bytes are no request (`ec` says why); false
// when more must be read: then ReadHeader goes on from where this stopped. A caller that tries
// this first spares a request that arrived whole the coroutine of ReadHeader.
template <typename Parser>
bool HeaderBuffered(boost::beast::flat_buffer& buffer, Parser& parser,
                    boost::system::error_code& ec) {
  parser.eager(false);  // stop after the header
  ec = {};
  if (buffer.size() == 0) return false;
  buffer.consume(parser.put(buffer.data(), ec));
  if (parser.is_header_done()) {
    ec = {};
    return true;
  }
  if (ec && ec != boost::beast::http::error::need_more) return true;
  ec = {};
  return false;
}

// Parses the header of the next request into `parser`, reading as needed: without a deadline
// until the request's first byte, then for at most `header_timeout`. Leaves any body bytes in
// `buffer`. Returns asio::error::eof when the peer closed the connection between requests.
// Call with a fresh parser (or one HeaderBuffered left) whose body_limit is the largest value
// (the caller checks Content-Length itself, once it knows what the request is for). `reads` as
// for ReadMore.
template <typename Socket, typename Parser>
asio::awaitable<boost::system::error_code> ReadHeader(Socket& socket,
                                                      boost::beast::flat_buffer& buffer,
                                                      Parser& parser, asio::steady_timer& timer,
                                                      Clock::duration header_timeout,
                                                      uint64_t* reads) {
  std::optional<Clock::time_point> deadline;
  for (;;) {
    boost::system::error_code ec;
    if (HeaderBuffered(buffer, parser, ec)) co_return ec;
    // A request has begun (here or in the caller's HeaderBuffered, just before) and its header
    // is not complete yet.
    if (!deadline && parser.got_some()) deadline = Clock::now() + header_timeout;
    ec = co_await ReadMore(socket, buffer, timer, deadline, reads);
    if (ec) co_return ec;
  }
}

// ReadBody's work on the bytes `buffer` already holds, without reading or suspending: true when
// the request is complete (`ec` clear) or malformed (`ec` says why); false when more must be
// read: then ReadBody goes on from where this stopped.
template <typename Parser>
bool BodyBuffered(boost::beast::flat_buffer& buffer, Parser& parser,
                  boost::system::error_code& ec) {
  parser.eager(true);
  ec = {};
  while (!parser.is_done() && buffer.size() > 0) {
    const size_t used = parser.put(buffer.data(), ec);
    buffer.consume(used);
    if (ec == boost::beast::http::error::need_more) {
      ec = {};
      break;
    }
    if (ec) return true;
    if (used == 0) break;
  }
  return parser.is_done();
}

// Parses the rest of the request whose header ReadHeader parsed, reading as needed for at most
// `body_timeout` from now. The parser's body_limit applies (chunked bodies). `reads` as for
// ReadMore.
template <typename Socket, typename Parser>
asio::awaitable<boost::system::error_code> ReadBody(Socket& socket,
                                                    boost::beast::flat_buffer& buffer,
                                                    Parser& parser, asio::steady_timer& timer,
                                                    Clock::duration body_timeout, uint64_t* reads) {
  std::optional<Clock::time_point> deadline;
  for (;;) {
    boost::system::error_code ec;
    if (BodyBuffered(buffer, parser, ec)) co_return ec;
    if (!deadline) deadline = Clock::now() + body_timeout;
    ec = co_await ReadMore(socket, buffer, timer, deadline, reads);
    if (ec == asio::error::eof) ec = boost::beast::http::error::partial_message;
    if (ec) co_return ec;
  }
}

// Reads and throws away up to `max_bytes` (or until the peer stops sending for `quiet`, or
// closes), for at most `timeout`: a server that refuses a request's body still lets a client
// that writes the whole body before it reads (Python's http.client, many others) finish
// writing, so that it reads the refusal instead of failing on a reset connection. Returns the
// bytes thrown away. `buffer`'s bytes count and are dropped first.
template <typename Socket>
asio::awaitable<uint64_t> Discard(Socket& socket, boost::beast::flat_buffer& buffer,
                                  asio::steady_timer& timer, uint64_t max_bytes,
                                  Clock::duration quiet, Clock::duration timeout) {
  uint64_t discarded = 0;
  const auto end = Clock::now() + timeout;
  for (;;) {
    const uint64_t take = std::min<uint64_t>(buffer.size(), max_bytes - discarded);
    buffer.consume(take);
    discarded += take;
    buffer.clear();
    if (discarded >= max_bytes) co_return discarded;
    const auto deadline = std::min(end, Clock::now() + quiet);
    const boost::system::error_code ec =
        co_await ReadMore(socket, buffer, timer, deadline, /*reads=*/nullptr);
    if (ec) {
      discarded += std::min<uint64_t>(buffer.size(), max_bytes - discarded);
      co_return discarded;
    }
  }
}

}  // namespace wisp::http_read
