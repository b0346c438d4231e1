#include "wisp/runtime_api/endpoint.h"

#include <spdlog/spdlog.h>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "wisp/common/defer.h"
#include "wisp/common/error_document.h"

namespace wisp::runtime_api {
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
// The runtime reaches the endpoint over TCP (accepted from the listener) or over the Unix
// channel the sandbox was started with; both are served alike.
using StreamSocket = asio::generic::stream_protocol::socket;

namespace {

constexpr std::string_view kApiVersionPrefix = "/2018-06-01";
constexpr std::string_view kInvocationPrefix = "/runtime/invocation/";

// The Runtime API's ErrorResponse and the error of an invocation the runtime mishandled are
// both the one error document.
std::string ErrorBody(std::string_view type, std::string_view message) {
  return LambdaErrorDocument(type, message);
}

}  // namespace

class Endpoint::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<Endpoint> endpoint, StreamSocket socket)
      : endpoint_(std::move(endpoint)), socket_(std::move(socket)) {}

  void Close() {
    boost::system::error_code ec;
    socket_.close(ec);
  }

  asio::awaitable<void> Serve() {
    auto self = shared_from_this();
    // Replies go out through write_some first; only a full socket buffer makes us wait.
    boost::system::error_code ec;
    socket_.non_blocking(true, ec);
    // However the connection ends, replies held back for a next request that never came
    // (garbage after a POST, Connection: close, a closing endpoint) still go out, best effort.
    Defer send_held([this] {
      if (out_.empty()) return;
      boost::system::error_code ignored;
      socket_.write_some(asio::buffer(out_), ignored);
    });
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(endpoint_->max_response_bytes_ + 1);
      co_await http::async_read(socket_, buffer_, parser,
                                asio::redirect_error(asio::use_awaitable, ec));
      if (endpoint_->closed_) co_return;
      if (ec == http::error::body_limit) {
        endpoint_->ReportTooLarge();
        co_await Reply(
            http::status::payload_too_large,
            ErrorBody("RequestEntityTooLarge",
                      fmt::format("response exceeds {} bytes", endpoint_->max_response_bytes_)),
            /*keep_alive=*/false);
        co_return;
      }
      if (ec) co_return;  // the runtime closed the connection or sent garbage
      auto request = parser.release();
      const bool keep_alive = request.keep_alive();
      if (!co_await Handle(request)) co_return;
      if (!keep_alive || endpoint_->closed_) co_return;
    }
  }

 private:
  // Returns false when the connection should end.
  asio::awaitable<bool> Handle(http::request<http::string_body>& request) {
    std::string_view path(request.target().data(), request.target().size());
    if (path.starts_with(kApiVersionPrefix)) path.remove_prefix(kApiVersionPrefix.size());
    const auto method = request.method();

    if (path == "/runtime/invocation/next") {
      if (method != http::verb::get) co_return co_await MethodNotAllowed();
      co_return co_await Next();
    }
    if (path == "/runtime/init/error") {
      if (method != http::verb::post) co_return co_await MethodNotAllowed();
      if (!endpoint_->in_flight_request_id_.empty() || endpoint_->initialized_) {
        co_return co_await Reply(
            http::status::forbidden,
            ErrorBody("InvalidStateTransition", "init/error after initialisation finished"));
      }
      std::string type(request[kErrorTypeHeader]);
      endpoint_->owner_.OnInitError(std::move(type), std::move(request.body()));
      co_return co_await Accepted();
    }
    if (path.starts_with(kInvocationPrefix)) {
      std::string_view rest = path.substr(kInvocationPrefix.size());
      const auto slash = rest.find('/');
      if (slash != std::string_view::npos) {
        const std::string_view id = rest.substr(0, slash);
        const std::string_view action = rest.substr(slash + 1);
        if (action == "response" || action == "error") {
          if (method != http::verb::post) co_return co_await MethodNotAllowed();
          if (id.empty() || id != endpoint_->in_flight_request_id_) {
            co_return co_await Reply(
                http::status::bad_request,
                ErrorBody("InvalidRequestID",
                          fmt::format("request id {} is unknown or already answered", id)));
          }
          endpoint_->in_flight_request_id_.clear();
          if (action == "response") {
            endpoint_->owner_.OnInvocationResponse(std::move(request.body()));
          } else {
            std::string type(request[kErrorTypeHeader]);
            endpoint_->owner_.OnInvocationError(std::move(type), std::move(request.body()));
          }
          co_return co_await Accepted();
        }
      }
    }
    co_return co_await Reply(http::status::not_found,
                             ErrorBody("NotFound", fmt::format("no such path: {}", path)));
  }

  asio::awaitable<bool> Next() {
    Endpoint& e = *endpoint_;
    if (e.next_wakeup_) {
      co_return co_await Reply(
          http::status::forbidden,
          ErrorBody("InvalidStateTransition", "another GET /next is already waiting"));
    }
    if (!e.in_flight_request_id_.empty()) {
      // The runtime moved on without answering: that invocation failed.
      e.in_flight_request_id_.clear();
      e.owner_.OnInvocationError(
          "Runtime.InvalidStateTransition",
          ErrorBody("Runtime.InvalidStateTransition",
                    "the runtime asked for the next event without answering this one"));
      if (e.closed_) co_return false;
    }
    e.initialized_ = true;
    if (!e.pending_) {
      auto wakeup = std::make_unique<Event>(socket_.get_executor());
      Event& event = *wakeup;
      e.next_wakeup_ = std::move(wakeup);
      e.owner_.OnRuntimeWaiting();  // may Deliver() right away
      if (!e.closed_ && !e.pending_) co_await event.Wait();
      e.next_wakeup_.reset();
      if (e.closed_ || !e.pending_) co_return false;
    }
    NextEvent next = std::move(*e.pending_);
    e.pending_.reset();
    std::string extra_headers;
    if (!next.trace_id.empty()) {
      extra_headers = fmt::format("Lambda-Runtime-Trace-Id: {}\r\n", next.trace_id);
    }
    if (!next.client_context.empty()) {
      extra_headers += fmt::format("Lambda-Runtime-Client-Context: {}\r\n", next.client_context);
    }
    if (next.specialization) {
      extra_headers += "Lambda-Runtime-Wisp-Specialize: 1\r\n";
      e.initialized_ = false;  // the runtime loads its function now; it may fail to
    } else {
      e.in_flight_request_id_ = next.request_id;
    }
    out_ += fmt::format(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{}Lambda-Runtime-Aws-Request-Id: "
        "{}\r\nLambda-Runtime-Deadline-Ms: {}\r\nLambda-Runtime-Invoked-Function-Arn: "
        "{}\r\nContent-Length: {}\r\n\r\n",
        extra_headers, next.request_id, next.deadline_ms, next.function_arn, next.body->size());
    co_return co_await Send(/*keep_alive=*/true, *next.body);
  }

  asio::awaitable<bool> Accepted() {
    co_return co_await Reply(http::status::accepted, R"({"status":"OK"})");
  }

  asio::awaitable<bool> MethodNotAllowed() {
    co_return co_await Reply(http::status::method_not_allowed,
                             ErrorBody("MethodNotAllowed", "method not allowed"));
  }

  asio::awaitable<bool> Reply(http::status status, std::string_view body, bool keep_alive = true) {
    out_ += fmt::format(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\n{}Content-Length: {}\r\n\r\n",
        static_cast<unsigned>(status), http::obsolete_reason(status),
        keep_alive ? "" : "Connection: close\r\n", body.size());
    co_return co_await Send(keep_alive, body);
  }

  // Writes the replies gathered in out_, then `body` (the last reply's body, written from where
  // it is: an event is not copied). Unless the runtime has already sent its next request (a
  // runtime that pipelines POST /response with GET /next): then the replies wait to go out in
  // one write with the next one, which spares the runtime a wake-up and wispd a send per
  // invocation. The runtime sent that request without waiting for these replies, so holding
  // them back cannot stall it; and if the bytes turn out to be no request, Serve sends them as it
  // ends.
  asio::awaitable<bool> Send(bool keep_alive, std::string_view body) {
    if (keep_alive && buffer_.size() > 0) {
      out_ += body;
      co_return true;
    }
    const boost::system::error_code ec = co_await WriteNow(socket_, out_, body);
    out_.clear();
    co_return !ec && keep_alive;
  }

  static constexpr std::string_view kErrorTypeHeader = "Lambda-Runtime-Function-Error-Type";

  std::shared_ptr<Endpoint> endpoint_;
  StreamSocket socket_;
  beast::flat_buffer buffer_;  // bytes the runtime sent that are not parsed yet
  std::string out_;            // replies not written yet (see Send)
};

Endpoint::Endpoint(asio::io_context& io, UniqueFd listener, EndpointListener& owner,
                   uint64_t max_response_bytes)
    : io_(io), acceptor_(io), owner_(owner), max_response_bytes_(max_response_bytes) {
  boost::system::error_code ec;
  acceptor_.assign(tcp::v4(), listener.Release(), ec);
  if (ec) spdlog::error("runtime endpoint: cannot use the sandbox's listener: {}", ec.message());
}

Endpoint::~Endpoint() { Close(); }

void Endpoint::Start() {
  asio::co_spawn(
      io_, [self = shared_from_this()] { return self->AcceptLoop(); }, asio::detached);
}

asio::awaitable<void> Endpoint::AcceptLoop() {
  auto self = shared_from_this();
  while (!closed_) {
    boost::system::error_code ec;
    StreamSocket socket(io_);
    co_await acceptor_.async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
    if (closed_ || ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) {
      co_return;
    }
    if (ec) continue;  // e.g. the runtime reset the connection before we accepted it
    socket.set_option(tcp::no_delay(true), ec);
    Serve(std::move(socket));
  }
}

void Endpoint::ServeChannel(UniqueFd channel) {
  if (closed_ || !channel) return;
  boost::system::error_code ec;
  StreamSocket stream(io_);
  stream.assign(asio::generic::stream_protocol(AF_UNIX, 0), channel.get(), ec);
  if (ec) {
    spdlog::error("runtime endpoint: cannot use the sandbox's channel: {}", ec.message());
    return;
  }
  channel.Release();  // the socket owns it now
  Serve(std::move(stream));
}

void Endpoint::Serve(StreamSocket socket) {
  auto connection = std::make_shared<Connection>(shared_from_this(), std::move(socket));
  connections_.push_back(connection);
  std::erase_if(connections_, [](const auto& weak) { return weak.expired(); });
  asio::co_spawn(
      io_, [connection] { return connection->Serve(); }, asio::detached);
}

void Endpoint::Deliver(NextEvent event) {
  pending_ = std::move(event);
  if (next_wakeup_) next_wakeup_->Set();
}

void Endpoint::ReportTooLarge() {
  if (in_flight_request_id_.empty()) return;
  in_flight_request_id_.clear();
  owner_.OnInvocationError(
      "Function.ResponseSizeTooLarge",
      ErrorBody("Function.ResponseSizeTooLarge",
                fmt::format("response too large: it exceeds the limit of {} bytes",
                            max_response_bytes_)));
}

void Endpoint::Close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
  for (auto& weak : connections_) {
    if (auto connection = weak.lock()) connection->Close();
  }
  connections_.clear();
  if (next_wakeup_) next_wakeup_->Set();
}

}  // namespace wisp::runtime_api
