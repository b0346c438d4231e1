#include "wisp/api/http_server.h"

#include <optional>
#include <set>

#include <spdlog/spdlog.h>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "wisp/common/defer.h"
#include "wisp/common/http_read.h"

namespace wisp::api {
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

// What both kinds of stream share: waiting and waking on the io thread, a reader that notices
// the client leaving, a deadline on every send, and Close() for the server's stop.
class StreamBase : public Stream {
 public:
  explicit StreamBase(tcp::socket& socket)
      : socket_(socket), wake_(socket.get_executor()), reader_done_(socket.get_executor()) {}

  asio::awaitable<bool> WaitUntil(std::chrono::steady_clock::time_point deadline) override {
    if (closed_) co_return false;
    if (woken_) {
      woken_ = false;
      co_return true;
    }
    wake_.expires_at(deadline);
    boost::system::error_code ec;
    co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    woken_ = false;
    co_return !closed_;
  }
  void Wake() override {
    woken_ = true;
    wake_.cancel();
  }
  bool open() const override { return !closed_; }

  // Ends the stream from outside (the server stops): pending sends and waits end.
  void Close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ec;
    socket_.cancel(ec);
    wake_.cancel();
  }

 protected:
  // The client is gone (its end closed, or a read or write failed).
  void Lost() {
    closed_ = true;
    wake_.cancel();
  }
  // Runs `write` with a deadline: a client that stops reading cannot hold a send (and the
  // memory queued behind it) forever. False if it failed or ran out of time.
  template <typename Write>
  asio::awaitable<bool> SendWithin(Write write) {
    if (closed_) co_return false;
    asio::steady_timer deadline(socket_.get_executor(), kSendTimeout);
    auto on_deadline = [this](boost::system::error_code ec) {
      if (ec) return;
      boost::system::error_code ignored;
      socket_.cancel(ignored);
    };
    deadline.async_wait(on_deadline);
    const boost::system::error_code ec = co_await write();
    deadline.cancel();
    if (ec) Lost();
    co_return !ec;
  }

  static constexpr auto kSendTimeout = std::chrono::seconds(10);
  tcp::socket& socket_;
  asio::steady_timer wake_;
  Event reader_done_;
  bool closed_ = false;
  bool woken_ = false;
};

class EventStream : public StreamBase {
 public:
  using StreamBase::StreamBase;

  asio::awaitable<bool> Send(std::string text) override {
    auto write = [this, &text]() -> asio::awaitable<boost::system::error_code> {
      boost::system::error_code ec;
      co_await asio::async_write(socket_, asio::buffer(text),
                                 asio::redirect_error(asio::use_awaitable, ec));
      co_return ec;
    };
    co_return co_await SendWithin(write);
  }

  // The client sends nothing on an event stream: a read ends only when it leaves.
  asio::awaitable<void> ReadUntilGone() {
    std::array<char, 512> scratch;
    for (;;) {
      boost::system::error_code ec;
      co_await socket_.async_read_some(asio::buffer(scratch),
                                       asio::redirect_error(asio::use_awaitable, ec));
      if (ec || closed_) break;
    }
    Lost();
    reader_done_.Set();
  }

  asio::awaitable<void> Finish() {
    boost::system::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.cancel(ec);
    co_await reader_done_.Wait();
  }
};

// A response body in chunked transfer: each Send is one chunk.
class ChunkedStream final : public EventStream {
 public:
  using EventStream::EventStream;

  asio::awaitable<bool> Send(std::string text) override {
    if (text.empty()) co_return !closed_;  // an empty chunk would end the body
    const std::string size = fmt::format("{:x}\r\n", text.size());
    auto write = [this, &size, &text]() -> asio::awaitable<boost::system::error_code> {
      boost::system::error_code ec;
      const std::array<asio::const_buffer, 3> frame{asio::buffer(size), asio::buffer(text),
                                                    asio::buffer("\r\n", 2)};
      co_await asio::async_write(socket_, frame, asio::redirect_error(asio::use_awaitable, ec));
      co_return ec;
    };
    co_return co_await SendWithin(write);
  }

  // The last chunk: the body is complete.
  asio::awaitable<void> End() {
    auto write = [this]() -> asio::awaitable<boost::system::error_code> {
      boost::system::error_code ec;
      co_await asio::async_write(socket_, asio::buffer("0\r\n\r\n", 5),
                                 asio::redirect_error(asio::use_awaitable, ec));
      co_return ec;
    };
    co_await SendWithin(write);
  }
};

class WebSocketStream final : public StreamBase {
 public:
  WebSocketStream(tcp::socket& socket, websocket::stream<tcp::socket&>& ws)
      : StreamBase(socket), ws_(ws) {}

  asio::awaitable<bool> Send(std::string text) override {
    auto write = [this, &text]() -> asio::awaitable<boost::system::error_code> {
      boost::system::error_code ec;
      ws_.text(true);
      co_await ws_.async_write(asio::buffer(text), asio::redirect_error(asio::use_awaitable, ec));
      co_return ec;
    };
    co_return co_await SendWithin(write);
  }

  // Reads (and drops) what the client sends; Beast answers pings and a close frame meanwhile.
  asio::awaitable<void> ReadUntilGone() {
    beast::flat_buffer incoming;
    for (;;) {
      boost::system::error_code ec;
      co_await ws_.async_read(incoming, asio::redirect_error(asio::use_awaitable, ec));
      incoming.clear();
      if (ec || closed_) break;
    }
    Lost();
    reader_done_.Set();
  }

  asio::awaitable<void> Finish() {
    if (ws_.is_open() && !closed_) {
      auto close = [this]() -> asio::awaitable<boost::system::error_code> {
        boost::system::error_code ec;
        co_await ws_.async_close(websocket::close_code::normal,
                                 asio::redirect_error(asio::use_awaitable, ec));
        co_return ec;
      };
      co_await SendWithin(close);
    }
    boost::system::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.cancel(ec);
    co_await reader_done_.Wait();
  }

 private:
  websocket::stream<tcp::socket&>& ws_;
};

namespace {

// Headers are small; a client that sends more is broken or hostile.
constexpr uint32_t kMaxHeaderBytes = 16 << 10;
// A body over the limit is read and thrown away up to this much, so that a client that writes
// its whole request before it reads (Python's http.client, many others) gets its 413 instead of
// a reset connection; a larger one is cut off. A client that stops sending for kDiscardQuiet is
// done.
constexpr uint64_t kMaxDiscardBytes = 64ull << 20;
constexpr auto kDiscardQuiet = std::chrono::seconds(2);
// A route with a larger limit (a deployment package's) discards a little more than its limit:
// the request just over it is the one its client most needs to see answered.
uint64_t DiscardCap(uint64_t max_body) { return std::max(kMaxDiscardBytes, max_body + (16 << 20)); }

using ClientCounts = std::map<asio::ip::address, uint32_t>;

HttpRequest ToHttpRequest(http::request<http::string_body>&& in) {
  HttpRequest request;
  request.method = std::string(in.method_string());
  std::string_view target(in.target().data(), in.target().size());
  const auto question = target.find('?');
  request.path = std::string(target.substr(0, question));
  if (question != std::string_view::npos) {
    request.raw_query = std::string(target.substr(question + 1));
    request.query = ParseQuery(request.raw_query);
  }
  for (const auto& field : in) {
    std::string name(field.name_string());
    // ASCII, as field names are (RFC 9110 §5.1): what std::tolower does in wispd's C locale,
    // without a library call per character.
    for (auto& c : name) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    // A field sent twice is one value, comma-joined (RFC 9110 §5.3).
    auto [it, added] = request.headers.try_emplace(std::move(name), field.value());
    if (!added) {
      it->second += ", ";
      it->second += field.value();
    }
  }
  request.body = std::move(in.body());
  return request;
}

// The head is written by hand and goes out with the body in one writev, tried at once: a reply
// almost always fits the socket buffer, so the coroutine does not suspend and the body is not
// copied. (Beast's serializer cost more than the rest of a warm invoke's handling in wispd.)
asio::awaitable<bool> Write(tcp::socket& socket, HttpResponse out, bool keep_alive) {
  const bool has_body = out.status >= 200 && out.status != 204 && out.status != 304;
  // Appended piece by piece: fmt's parsing of format strings was a visible part of a warm call.
  std::string head;
  head.reserve(256);
  head += "HTTP/1.1 ";
  head += fmt::format_int(out.status).c_str();
  head += ' ';
  const auto reason = http::obsolete_reason(static_cast<http::status>(out.status));
  head.append(reason.data(), reason.size());
  head += "\r\nServer: wisp\r\nContent-Type: ";
  head += out.content_type;
  head += "\r\n";
  for (const auto& [name, value] : out.headers) {
    head += name;
    head += ": ";
    head += value;
    head += "\r\n";
  }
  if (!keep_alive) head += "Connection: close\r\n";
  if (has_body) {
    head += "Content-Length: ";
    head += fmt::format_int(out.body.size()).c_str();
    head += "\r\n";
  }
  head += "\r\n";
  if (!has_body) out.body.clear();

  co_return !co_await WriteNow(socket, head, out.body);
}

// Answers a connection over the per-client cap with a 503 and closes it: one non-blocking write
// on a fresh socket, whose buffer is empty, so the accept loop does not wait.
void RefuseConnection(tcp::socket& socket, uint32_t cap) {
  const HttpResponse refusal = ErrorResponse(
      503, fmt::format("too many connections from this address (at most {} at once)", cap));
  const std::string text = fmt::format(
      "HTTP/1.1 503 Service Unavailable\r\nServer: wisp\r\nContent-Type: {}\r\nConnection: "
      "close\r\nContent-Length: {}\r\n\r\n{}",
      refusal.content_type, refusal.body.size(), refusal.body);
  boost::system::error_code ec;
  socket.non_blocking(true, ec);
  socket.write_some(asio::buffer(text), ec);
  socket.shutdown(tcp::socket::shutdown_send, ec);
  socket.close(ec);
}

using OpenStreams = std::set<StreamBase*>;

// True when the comma-separated offers include "wisp".
bool OffersSubprotocol(beast::string_view offers) {
  std::string_view rest(offers.data(), offers.size());
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string_view offer = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    while (!offer.empty() && offer.front() == ' ') offer.remove_prefix(1);
    while (!offer.empty() && offer.back() == ' ') offer.remove_suffix(1);
    if (offer == "wisp") return true;
  }
  return false;
}

// Answers `response`, a stream: the head or the WebSocket handshake, then the route's stream
// until it returns or the client goes.
asio::awaitable<void> ServeStream(tcp::socket& socket, HttpResponse response,
                                  std::optional<http::request<http::empty_body>> upgrade,
                                  std::shared_ptr<OpenStreams> open_streams) {
  if (response.stream_kind == StreamKind::kWebSocket) {
    if (!upgrade) {
      HttpResponse refusal = ErrorResponse(426, "this resource is a WebSocket: send an upgrade");
      refusal.headers.emplace_back("Upgrade", "websocket");
      co_await Write(socket, std::move(refusal), false);
      co_return;
    }
    websocket::stream<tcp::socket&> ws(socket);
    ws.read_message_max(64 << 10);
    // A browser that offered "wisp" (with its key as "wisp.bearer.<secret>", see AuthGate)
    // fails the handshake unless the server picks one of its offers.
    const bool offered_wisp = OffersSubprotocol((*upgrade)[http::field::sec_websocket_protocol]);
    auto decorate = [offered_wisp](websocket::response_type& out) {
      out.set(http::field::server, "wisp");
      if (offered_wisp) out.set(http::field::sec_websocket_protocol, "wisp");
    };
    ws.set_option(websocket::stream_base::decorator(decorate));
    boost::system::error_code ec;
    co_await ws.async_accept(*upgrade, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    WebSocketStream stream(socket, ws);
    open_streams->insert(&stream);
    asio::co_spawn(socket.get_executor(), stream.ReadUntilGone(), asio::detached);
    co_await response.stream(stream);
    co_await stream.Finish();
    open_streams->erase(&stream);
    co_return;
  }
  if (response.stream_kind == StreamKind::kChunked) {
    std::string head = fmt::format(
        "HTTP/1.1 {} {}\r\nServer: wisp\r\nContent-Type: {}\r\nTransfer-Encoding: "
        "chunked\r\nConnection: close\r\n",
        response.status,
        std::string_view(
            http::obsolete_reason(http::int_to_status(static_cast<unsigned>(response.status)))),
        response.content_type);
    for (const auto& [name, value] : response.headers) {
      fmt::format_to(std::back_inserter(head), "{}: {}\r\n", name, value);
    }
    head += "\r\n";
    if (co_await WriteNow(socket, head, {})) co_return;
    ChunkedStream stream(socket);
    open_streams->insert(&stream);
    asio::co_spawn(socket.get_executor(), stream.ReadUntilGone(), asio::detached);
    co_await response.stream(stream);
    co_await stream.End();
    co_await stream.Finish();
    open_streams->erase(&stream);
    co_return;
  }
  std::string head =
      "HTTP/1.1 200 OK\r\nServer: wisp\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
      "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n";
  for (const auto& [name, value] : response.headers) {
    fmt::format_to(std::back_inserter(head), "{}: {}\r\n", name, value);
  }
  head += "\r\n";
  if (co_await WriteNow(socket, head, {})) co_return;
  EventStream stream(socket);
  open_streams->insert(&stream);
  asio::co_spawn(socket.get_executor(), stream.ReadUntilGone(), asio::detached);
  co_await response.stream(stream);
  co_await stream.Finish();
  open_streams->erase(&stream);
}

asio::awaitable<void> Serve(tcp::socket socket, const Router& router,
                            const HttpServerLimits& limits, TaskTracker& tasks,
                            std::shared_ptr<ClientCounts> per_client, asio::ip::address client,
                            const bool& stopping, std::shared_ptr<OpenStreams> open_streams) {
  // The client's place under its cap, given back however the connection ends.
  Defer leave([&per_client, &client] {
    auto it = per_client->find(client);
    if (it != per_client->end() && --it->second == 0) per_client->erase(it);
  });
  // For Write's write_some: a would-be block returns at once instead of waiting.
  boost::system::error_code nb_ec;
  socket.non_blocking(true, nb_ec);
  beast::flat_buffer buffer;
  asio::steady_timer timer(socket.get_executor());
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kMaxHeaderBytes);
    // Checked below once the header is in (Beast 1.74 treats boost::none as "over the limit").
    parser.body_limit(std::numeric_limits<uint64_t>::max());
    boost::system::error_code ec;
    if (!http_read::HeaderBuffered(buffer, parser, ec)) {
      ec = co_await http_read::ReadHeader(socket, buffer, parser, timer, limits.header_timeout,
                                          /*reads=*/nullptr);
    }
    uint64_t max_body = limits.max_body_bytes;
    const Router::BodyPolicy* policy = nullptr;
    const auto too_large = [&policy, &max_body] {
      if (policy && policy->too_large) return policy->too_large(max_body);
      return ErrorResponse(
          413, fmt::format("request body is larger than the limit of {} bytes", max_body));
    };
    if (!ec) {
      const auto length = parser.content_length();
      if (length ? *length > max_body : parser.chunked()) {
        // Only requests that may be over the limit look for their route's own (a request with
        // neither a length nor chunks has no body).
        const auto& head = parser.get();
        const std::string_view target(head.target().data(), head.target().size());
        policy = router.BodyPolicyFor(
            std::string_view(head.method_string().data(), head.method_string().size()),
            target.substr(0, target.find('?')));
        if (policy && policy->max_bytes) max_body = *policy->max_bytes;
      }
      if (length && *length > max_body) {
        co_await Write(socket, too_large(), false);
        co_await http_read::Discard(socket, buffer, timer, std::min(*length, DiscardCap(max_body)),
                                    kDiscardQuiet, limits.body_timeout);
        co_return;
      }
      parser.body_limit(max_body);  // a chunked body's
      if (!http_read::BodyBuffered(buffer, parser, ec)) {
        ec = co_await http_read::ReadBody(socket, buffer, parser, timer, limits.body_timeout,
                                          /*reads=*/nullptr);
      }
    }
    if (ec == http::error::body_limit) {
      co_await Write(socket, too_large(), false);
      co_await http_read::Discard(socket, buffer, timer, DiscardCap(max_body), kDiscardQuiet,
                                  limits.body_timeout);
      co_return;
    }
    if (ec == beast::error::timeout) {
      co_await Write(socket, ErrorResponse(408, "request not received in time"), false);
      co_return;
    }
    if (ec == http::error::header_limit) {
      co_await Write(socket, ErrorResponse(431, "request headers are too large"), false);
      co_return;
    }
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == http::error::partial_message || ec == asio::error::connection_reset ||
        ec == asio::error::operation_aborted) {
      co_return;
    }
    if (ec) {
      co_await Write(socket, ErrorResponse(400, "malformed HTTP request: " + ec.message()), false);
      co_return;
    }
    auto raw = parser.release();
    const bool keep_alive = raw.keep_alive() && !stopping;
    // A WebSocket handshake needs the request's head; the route decides whether to take it.
    std::optional<http::request<http::empty_body>> upgrade;
    if (websocket::is_upgrade(raw)) {
      upgrade.emplace();
      upgrade->base() = raw.base();
    }
    HttpRequest request = ToHttpRequest(std::move(raw));
    request.client = client;
    std::optional<TaskTracker::Task> handling(tasks.Start());
    HttpResponse response = co_await router.Dispatch(request);
    handling.reset();
    if (response.stream) {
      // A stream is no task of the graceful stop: it lasts as long as its client wants.
      co_await ServeStream(socket, std::move(response), std::move(upgrade), open_streams);
      co_return;
    }
    if (!co_await Write(socket, std::move(response), keep_alive) || !keep_alive) co_return;
  }
}

}  // namespace

HttpServer::HttpServer(asio::io_context& io, const Router& router, HttpServerLimits limits,
                       TaskTracker& tasks)
    : io_(io), router_(router), limits_(limits), acceptor_(io), tasks_(tasks) {}

HttpServer::~HttpServer() = default;

Result<void> HttpServer::Listen(const std::string& host, uint16_t port) {
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("listen address '{}' is not an IP address", host));
  }
  const tcp::endpoint endpoint(address, port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("cannot listen on {}:{}: {}", host, port, ec.message()));
  }
  return {};
}

uint16_t HttpServer::port() const {
  boost::system::error_code ec;
  return acceptor_.local_endpoint(ec).port();
}

void HttpServer::Start() { asio::co_spawn(io_, AcceptLoop(), asio::detached); }

asio::awaitable<void> HttpServer::AcceptLoop() {
  while (!stopping_) {
    boost::system::error_code ec;
    tcp::socket socket =
        co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (stopping_ || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // Out of fds and the like: back off a little instead of spinning.
      spdlog::warn("accept failed: {}", ec.message());
      asio::steady_timer pause(io_, std::chrono::milliseconds(50));
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    const asio::ip::address client = socket.remote_endpoint(ec).address();
    if (ec) continue;  // already gone
    uint32_t& open = (*connections_per_client_)[client];
    if (limits_.max_connections_per_client > 0 && open >= limits_.max_connections_per_client) {
      if (open == 0) connections_per_client_->erase(client);
      RefuseConnection(socket, limits_.max_connections_per_client);
      continue;
    }
    ++open;
    socket.set_option(tcp::no_delay(true), ec);
    asio::co_spawn(io_,
                   Serve(std::move(socket), router_, limits_, tasks_, connections_per_client_,
                         client, stopping_, open_streams_),
                   asio::detached);
  }
}

void HttpServer::Stop() {
  stopping_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
  // Streams would outlast any grace period: end them now.
  for (StreamBase* stream : *open_streams_) stream->Close();
}

}  // namespace wisp::api
