// Endpoint: the AWS Lambda Runtime API served to one sandbox, over the connections its
// Transport yields (transport.h). The runtime inside long-polls GET /runtime/invocation/next
// and posts each result to /response or /error.
//
// The runtime is untrusted and the endpoint lives in wispd, outside the sandbox's cgroup, so
// what a runtime can make wispd hold is bounded (EndpointLimits): a few accepted connections
// (more wait in the transport's backlog), a deadline for each request once it has begun, and one
// budget for the bodies of all its requests. A body is read only after its header shows that
// it is wanted (a result for the invocation in flight, an init error).
//
// Thread rules: created, used and destroyed on one io thread; the listener's callbacks run on
// it, synchronously from within Deliver() or from the endpoint's own coroutines.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wisp/common/asio.h"
#include "wisp/runtime_api/transport.h"

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
  // The runtime answered the invocation `request_id` (one in flight).
  virtual void OnInvocationResponse(std::string_view request_id, std::string body) = 0;
  // Bytes of the streamed answer to `request_id` (Lambda-Runtime-Function-Response-Mode:
  // streaming), as they arrive; OnInvocationResponse with an empty body ends it.
  virtual void OnInvocationChunk(std::string_view request_id, std::string_view bytes) {}
  // The runtime reported that the invocation `request_id` failed. `body` is the runtime's error
  // document ({errorMessage, errorType, stackTrace}); it may be empty or not JSON.
  virtual void OnInvocationError(std::string_view request_id, std::string error_type,
                                 std::string body) = 0;
  // The runtime failed to initialise (POST /runtime/init/error).
  virtual void OnInitError(std::string error_type, std::string body) = 0;
};

struct EndpointLimits {
  // The largest result or error document a runtime may post.
  uint64_t max_response_bytes = 6ull << 20;
  // The largest streamed response (Lambda's limit for response streaming); it is relayed as it
  // arrives, never held whole.
  uint64_t max_streamed_response_bytes = 20ull << 20;
  // Accepted connections (TCP, vsock) served at once (a runtime needs one or two); more wait in
  // the transport's backlog until one ends. Connections open from the start (the Unix channel)
  // do not count: they are always served.
  size_t max_accepted_connections = 4;
  // Once a request's first byte has arrived, its header must be complete within
  // header_timeout, and then its body within body_timeout. A connection idle between requests,
  // or parked in GET /next, has no deadline.
  std::chrono::steady_clock::duration header_timeout = std::chrono::seconds(10);
  std::chrono::steady_clock::duration body_timeout = std::chrono::seconds(30);
  // Request bodies held at once over all the runtime's connections; 0 means
  // max_response_bytes + kBodyBudgetSlack (one whole result and a small document beside it).
  uint64_t body_budget_bytes = 0;
  static constexpr uint64_t kBodyBudgetSlack = 64 << 10;
};

// File descriptors an instance's endpoint may hold in wispd at most with a SocketTransport: the
// listener, the channel and the accepted connections, of which it serves one per call it may
// have at once and two more (Endpoint::SetConcurrency).
constexpr size_t MaxEndpointFds(const EndpointLimits& limits, size_t concurrency = 1) {
  return 2 + std::max(limits.max_accepted_connections, concurrency + 2);
}

class Endpoint : public std::enable_shared_from_this<Endpoint> {
 public:
  Endpoint(asio::io_context& io, std::unique_ptr<Transport> transport, EndpointListener& owner,
           uint64_t max_response_bytes);
  Endpoint(asio::io_context& io, std::unique_ptr<Transport> transport, EndpointListener& owner,
           EndpointLimits limits);
  ~Endpoint();
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  // Serves the transport's open connections and starts accepting the runtime's new ones.
  void Start();
  // Hands an event to the runtime: answers a parked GET /next now, or the next one.
  void Deliver(NextEvent event);
  // How many invocations the runtime may hold at once (its AWS_LAMBDA_MAX_CONCURRENCY; 1 until
  // set). With 1, the runtime's GET /next while one is in flight fails that one, as Lambda's
  // does; with more, it may hold that many GET /next parked and answer in any order, over as
  // many connections (the cap on accepted connections grows to fit).
  void SetConcurrency(size_t concurrency);
  // Whether the runtime holds `request_id` (delivered, not answered yet).
  bool IsInFlight(std::string_view request_id) const;
  // Forgets `request_id` (a call that ended without the runtime's answer: a later one is
  // refused as unknown); false if it was not in flight.
  bool EndInFlight(std::string_view request_id);
  // Stops serving: closes the listener and every connection. No callback runs afterwards.
  void Close();
  // How many reads have brought bytes from the runtime so far, over all its connections. Every
  // request the listener hears of was read by one of them: a runtime's output written before a
  // request it sent is written before that read completed.
  uint64_t reads() const { return reads_; }

 private:
  class Connection;

  asio::awaitable<void> AcceptLoop();
  void Serve(RuntimeConnection connection, bool accepted);
  // The runtime posted a result for `request_id` over the size limit: that invocation fails.
  void ReportTooLarge(std::string_view request_id);
  void OnAcceptedConnectionEnded();

  asio::io_context& io_;
  const std::unique_ptr<Transport> transport_;
  EndpointListener& owner_;
  const EndpointLimits limits_;
  const uint64_t body_budget_;
  bool closed_ = false;
  // Accepted connections being served; at the cap, the accept loop waits on accept_slot_.
  size_t accepted_connections_ = 0;
  asio::steady_timer accept_slot_;
  // Bytes of request bodies reserved by connections reading one (see EndpointLimits).
  uint64_t body_bytes_ = 0;

  size_t concurrency_ = 1;
  size_t max_accepted_connections_;
  // Events waiting for a GET /next, and the parked GET /next waiting for an event, oldest first.
  std::deque<NextEvent> pending_;
  // A GET /next waiting for an event: a coroutine to wake, or (a runtime serving several calls
  // over one connection) a reply in line to fill, false if its connection has ended.
  struct Parked {
    Event* wakeup;
    std::function<bool()> fill;
  };
  std::deque<Parked> parked_;
  // The request ids the runtime is working on; /response and /error must name one. A few at
  // most (the function's instance concurrency): a vector searched in order.
  std::vector<std::string> in_flight_;
  uint64_t reads_ = 0;
  // Set by the first GET /next: init errors are no longer accepted after it.
  bool initialized_ = false;
  std::vector<std::weak_ptr<Connection>> connections_;
};

}  // namespace wisp::runtime_api
