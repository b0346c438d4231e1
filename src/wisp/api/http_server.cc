#include "wisp/api/http_server.h"

#include <spdlog/spdlog.h>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace wisp::api {
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

// Headers are small; a client that sends more is broken or hostile.
constexpr uint32_t kMaxHeaderBytes = 16 << 10;

HttpRequest ToHttpRequest(http::request<http::string_body>&& in) {
  HttpRequest request;
  request.method = std::string(in.method_string());
  std::string_view target(in.target().data(), in.target().size());
  const auto question = target.find('?');
  request.path = std::string(target.substr(0, question));
  if (question != std::string_view::npos) request.query = ParseQuery(target.substr(question + 1));
  for (const auto& field : in) {
    std::string name(field.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    request.headers[std::move(name)] = std::string(field.value());
  }
  request.body = std::move(in.body());
  return request;
}

// The head is written by hand and goes out with the body in one writev, tried at once: a reply
// almost always fits the socket buffer, so the coroutine does not suspend and the body is not
// copied. (Beast's serializer cost more than the rest of a warm invoke's handling in wispd.)
asio::awaitable<bool> Write(tcp::socket& socket, HttpResponse out, bool keep_alive) {
  const bool has_body = out.status >= 200 && out.status != 204 && out.status != 304;
  std::string head;
  head.reserve(256);
  fmt::format_to(std::back_inserter(head), "HTTP/1.1 {} {}\r\nServer: wisp\r\nContent-Type: {}\r\n",
                 out.status, http::obsolete_reason(static_cast<http::status>(out.status)),
                 out.content_type);
  for (const auto& [name, value] : out.headers) {
    fmt::format_to(std::back_inserter(head), "{}: {}\r\n", name, value);
  }
  if (!keep_alive) head += "Connection: close\r\n";
  if (has_body) fmt::format_to(std::back_inserter(head), "Content-Length: {}\r\n", out.body.size());
  head += "\r\n";
  if (!has_body) out.body.clear();

  co_return !co_await WriteNow(socket, head, out.body);
}

asio::awaitable<void> Serve(tcp::socket socket, const Router& router, uint64_t max_body_bytes,
                            std::shared_ptr<uint64_t> in_flight, const bool& stopping) {
  // For Write's write_some: a would-be block returns at once instead of waiting.
  boost::system::error_code nb_ec;
  socket.non_blocking(true, nb_ec);
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(max_body_bytes);
    parser.header_limit(kMaxHeaderBytes);
    boost::system::error_code ec;
    co_await http::async_read(socket, buffer, parser,
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec == http::error::body_limit) {
      co_await Write(socket,
                     ErrorResponse(413, fmt::format("request body is larger than the limit of "
                                                    "{} bytes",
                                                    max_body_bytes)),
                     false);
      co_return;
    }
    if (ec == http::error::header_limit) {
      co_await Write(socket, ErrorResponse(431, "request headers are too large"), false);
      co_return;
    }
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
      co_return;
    }
    if (ec) {
      co_await Write(socket, ErrorResponse(400, "malformed HTTP request: " + ec.message()), false);
      co_return;
    }
    auto raw = parser.release();
    const bool keep_alive = raw.keep_alive() && !stopping;
    HttpRequest request = ToHttpRequest(std::move(raw));
    ++*in_flight;
    HttpResponse response = co_await router.Dispatch(request);
    --*in_flight;
    if (!co_await Write(socket, std::move(response), keep_alive) || !keep_alive) co_return;
  }
}

}  // namespace

HttpServer::HttpServer(asio::io_context& io, const Router& router, uint64_t max_body_bytes)
    : io_(io), router_(router), max_body_bytes_(max_body_bytes), acceptor_(io) {}

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
    socket.set_option(tcp::no_delay(true), ec);
    asio::co_spawn(io_, Serve(std::move(socket), router_, max_body_bytes_, in_flight_, stopping_),
                   asio::detached);
  }
}

void HttpServer::Stop() {
  stopping_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
}

}  // namespace wisp::api
