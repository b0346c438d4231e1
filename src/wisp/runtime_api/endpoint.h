// Endpoint: the AWS Lambda Runtime API served to one sandbox, on the listening socket that
// lives in that sandbox's network namespace. The runtime inside long-polls
// GET /runtime/invocation/next and posts each result to /response or /error.
//
// Thread rules: created, used and destroyed on one io thread; the listener's callbacks run on
// it, synchronously from within Deliver() or from the endpoint's own coroutines.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "wisp/common/asio.h"
#include "wisp/common/unique_fd.h"

namespace wisp::runtime_api {

// One event for the runtime, as GET /next returns it.
struct NextEvent {
  std::string request_id;
  std::shared_ptr<std::string> body;  // the event, JSON; never null
  int64_t deadline_ms = 0;            // epoch milliseconds
  std::string function_arn;
  std::string trace_id;
  // Lambda-Runtime-Client-Context: the caller's client context, JSON on one line; empty: none.
  std::string client_context;
  // Not an invocation: tells a prewarmed runtime which function it now is (body: {"env":
  // {...}}). Sent with the Lambda-Runtime-Wisp-Specialize header; no answer is expected, and
  // the runtime may report /init/error afterwards.
  bool specialization = false;
};

// What the endpoint reports to the instance that owns it.
class EndpointListener {
 public:
  virtual ~EndpointListener() = default;
  // The runtime asked for work (GET /next) and none is pending.
  virtual void OnRuntimeWaiting() = 0;
  // The runtime answered the invocation in flight.
  virtual void OnInvocationResponse(std::string body) = 0;
  // The runtime reported that the invocation in flight failed. `body` is the runtime's error
  // document ({errorMessage, errorType, stackTrace}); it may be empty or not JSON.
  virtual void OnInvocationError(std::string error_type, std::string body) = 0;
  // The runtime failed to initialise (POST /runtime/init/error).
  virtual void OnInitError(std::string error_type, std::string body) = 0;
};

class Endpoint : public std::enable_shared_from_this<Endpoint> {
 public:
  Endpoint(asio::io_context& io, UniqueFd listener, EndpointListener& owner,
           uint64_t max_response_bytes);
  ~Endpoint();
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  // Starts accepting the runtime's connections.
  void Start();
  // Also serves the runtime over `channel`, a stream socket already connected to it.
  void ServeChannel(UniqueFd channel);
  // Hands an event to the runtime: answers the parked GET /next now, or the next one.
  void Deliver(NextEvent event);
  // Stops serving: closes the listener and every connection. No callback runs afterwards.
  void Close();

 private:
  class Connection;

  asio::awaitable<void> AcceptLoop();
  void Serve(asio::generic::stream_protocol::socket socket);
  // The runtime posted a result over the size limit: the invocation in flight fails.
  void ReportTooLarge();

  asio::io_context& io_;
  asio::ip::tcp::acceptor acceptor_;
  EndpointListener& owner_;
  const uint64_t max_response_bytes_;
  bool closed_ = false;

  // The one event waiting for a GET /next, and the parked /next waiting for an event.
  std::optional<NextEvent> pending_;
  std::unique_ptr<Event> next_wakeup_;
  // The request id the runtime is working on; /response and /error must name it.
  std::string in_flight_request_id_;
  // Set by the first GET /next: init errors are no longer accepted after it.
  bool initialized_ = false;
  std::vector<std::weak_ptr<Connection>> connections_;
};

}  // namespace wisp::runtime_api
