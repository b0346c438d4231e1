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
#include <set>
#include <string>

#include "wisp/api/http.h"
#include "wisp/common/asio.h"
#include "wisp/common/task_tracker.h"

namespace wisp::api {

class StreamBase;

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
  // Each request being handled is a task of `tasks`, which a graceful stop waits for.
  HttpServer(asio::io_context& io, const Router& router, HttpServerLimits limits,
             TaskTracker& tasks);
  ~HttpServer();

  Result<void> Listen(const std::string& host, uint16_t port);
  uint16_t port() const;
  void Start();
  // Stops accepting; requests already being handled finish.
  void Stop();

 private:
  asio::awaitable<void> AcceptLoop();

  asio::io_context& io_;
  const Router& router_;
  const HttpServerLimits limits_;
  asio::ip::tcp::acceptor acceptor_;
  TaskTracker& tasks_;
  // Open connections by client address. Shared with the connections' coroutines, which may
  // end after this object (when the io_context is destroyed).
  std::shared_ptr<std::map<asio::ip::address, uint32_t>> connections_per_client_ =
      std::make_shared<std::map<asio::ip::address, uint32_t>>();
  // Event streams and WebSockets open now, so that Stop() can end them.
  std::shared_ptr<std::set<StreamBase*>> open_streams_ = std::make_shared<std::set<StreamBase*>>();
  bool stopping_ = false;
};

}  // namespace wisp::api
