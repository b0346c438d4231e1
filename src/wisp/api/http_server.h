// HttpServer: the public HTTP/1.1 listener (Boost.Beast). Reads each request with a size cap,
// hands it to the Router, writes the answer; keep-alive connections.
//
// Thread rules: runs on one io_context; Stop() must be called on its thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "wisp/api/http.h"
#include "wisp/common/asio.h"

namespace wisp::api {

class HttpServer {
 public:
  HttpServer(asio::io_context& io, const Router& router, uint64_t max_body_bytes);
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
  const uint64_t max_body_bytes_;
  asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<uint64_t> in_flight_ = std::make_shared<uint64_t>(0);
  bool stopping_ = false;
};

}  // namespace wisp::api
