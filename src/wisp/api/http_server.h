// HttpServer: the public HTTP/1.1 listener (Boost.Beast). Reads each request with a size cap and
// deadlines, hands it to the Router, writes the answer; keep-alive connections, a bounded number
// per client address.
//
// Thread rules: runs on one io_context; Stop() must be called on its thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "wisp/api/http.h"
#include "wisp/common/asio.h"

namespace wisp::api {

struct HttpServerLimits {
  uint64_t max_body_bytes = 6ull << 20;
  // Once a request's first byte has arrived, its header must be complete within
  // header_timeout, then its body within body_timeout (slowloris). A keep-alive connection
  // idle between requests has no deadline: the per-client cap bounds how many there are.
  std::chrono::steady_clock::duration header_timeout = std::chrono::seconds(20);
  std::chrono::steady_clock::duration body_timeout = std::chrono::seconds(60);
  // Connections open at once from one source address; more are answered 503 and closed
  // (0: no cap).
  uint32_t max_connections_per_client = 1024;
};

class HttpServer {
 public:
  HttpServer(asio::io_context& io, const Router& router, HttpServerLimits limits);
  ~HttpServer();

  Result<void> Listen(const std::string& host, uint16_t port);
  uint16_t port() const;
  void Start();
  // Stops accepting; requests already being handled finish.
  void Stop();
  // Requests being handled right now.
  uint64_t in_flight() const { return *in_flight_; }

 private:
  asio::awaitable<void> AcceptLoop();

  asio::io_context& io_;
  const Router& router_;
  const HttpServerLimits limits_;
  asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<uint64_t> in_flight_ = std::make_shared<uint64_t>(0);
  // Open connections by client address. Shared with the connections' coroutines, which may
  // end after this object (when the io_context is destroyed).
  std::shared_ptr<std::map<asio::ip::address, uint32_t>> connections_per_client_ =
      std::make_shared<std::map<asio::ip::address, uint32_t>>();
  bool stopping_ = false;
};

}  // namespace wisp::api
