#include "wisp/runtime_api/endpoint.h"

#include <spdlog/spdlog.h>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "wisp/common/defer.h"
#include "wisp/common/error_document.h"
#include "wisp/common/http_read.h"
#include "wisp/common/json_text.h"

namespace wisp::runtime_api {
namespace beast = boost::beast;
namespace http = beast::http;
// The runtime reaches the endpoint over connections its transport accepted or had open from
// the start; all are served alike.
using StreamSocket = RuntimeConnection;

namespace {

constexpr std::string_view kApiVersionPrefix = "/2018-06-01";
constexpr std::string_view kInvocationPrefix = "/runtime/invocation/";
constexpr std::string_view kResponseModeHeader = "Lambda-Runtime-Function-Response-Mode";
// A streamed response may take as long as the longest invocation (the invocation's own timeout
// ends it sooner).
constexpr auto kMaxStreamTime = std::chrono::seconds(900);

// The Runtime API's ErrorResponse and the error of an invocation the runtime mishandled are
// both the one error document.
std::string ErrorBody(std::string_view type, std::string_view message) {
  return LambdaErrorDocument(type, message);
}

}  // namespace

class Endpoint::Connection : public std::enable_shared_from_this<Connection> {
  // One reply of a runtime serving several calls over this connection (see Next).
  struct Slot {
    std::string bytes;
    bool ready = false;
  };

 public:
  Connection(std::shared_ptr<Endpoint> endpoint, StreamSocket socket, bool accepted)
      : endpoint_(std::move(endpoint)),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        accepted_(accepted) {}
  ~Connection() {
    if (accepted_) endpoint_->OnAcceptedConnectionEnded();
  }

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
      if (out_.empty() || !slots_.empty() || writing_) return;
      boost::system::error_code ignored;
      socket_.write_some(asio::buffer(out_), ignored);
    });
    for (;;) {
      Parser parser;
      // No limit while the header is read: Handle checks the size once it knows what the body
      // is for, before any of it is read. (Not boost::none: Beast 1.74 compares a length with
      // it as "greater", so every request would be over the limit.)
      parser.body_limit(std::numeric_limits<uint64_t>::max());
      if (!http_read::HeaderBuffered(buffer_, parser, ec)) {
        ec = co_await http_read::ReadHeader(socket_, buffer_, parser, timer_,
                                            endpoint_->limits_.header_timeout, &endpoint_->reads_);
      }
      if (endpoint_->closed_) co_return;
      if (ec == beast::error::timeout) {
        co_await TimedOut("header");
        co_return;
      }
      if (ec == http::error::header_limit) {
        co_await Refuse(http::status::request_header_fields_too_large,
                        ErrorBody("RequestHeaderFieldsTooLarge", "request header too large"), 0);
        co_return;
      }
      if (ec) co_return;  // the runtime closed the connection or sent garbage
      const bool keep_alive = parser.get().keep_alive();
      if (!co_await Handle(parser)) co_return;
      if (!keep_alive || endpoint_->closed_) co_return;
    }
  }

 private:
  using Parser = http::request_parser<http::string_body>;
  enum class Post { kInitError, kResponse, kError };

  // Holds `bytes` of the endpoint's body budget while a body is read and handled.
  class BodyReservation {
   public:
    BodyReservation(Endpoint& endpoint, uint64_t bytes) : endpoint_(endpoint), bytes_(bytes) {
      endpoint_.body_bytes_ += bytes_;
    }
    ~BodyReservation() { endpoint_.body_bytes_ -= bytes_; }
    BodyReservation(const BodyReservation&) = delete;
    BodyReservation& operator=(const BodyReservation&) = delete;

   private:
    Endpoint& endpoint_;
    const uint64_t bytes_;
  };

  // Handles one request whose header is parsed; reads its body only if it is wanted. Returns
  // false when the connection should end.
  asio::awaitable<bool> Handle(Parser& parser) {
    Endpoint& e = *endpoint_;
    const auto& header = parser.get();
    std::string_view path(header.target().data(), header.target().size());
    if (path.starts_with(kApiVersionPrefix)) path.remove_prefix(kApiVersionPrefix.size());
    const auto method = header.method();
    const boost::optional<uint64_t> content_length = parser.content_length();
    // Chunked: the size is not known up front; count it as the largest that is accepted.
    const uint64_t body_bytes =
        parser.chunked() ? e.limits_.max_response_bytes : content_length.value_or(0);

    if (path == "/runtime/invocation/next") {
      if (method != http::verb::get) co_return co_await MethodNotAllowed(body_bytes);
      if (body_bytes > 0) {
        co_return co_await Refuse(http::status::bad_request,
                                  ErrorBody("InvalidRequest", "GET /next takes no body"),
                                  body_bytes);
      }
      co_return co_await Next();
    }

    Post kind;
    std::string_view id;  // into the header, which stays in the parser
    if (path == "/runtime/init/error") {
      if (method != http::verb::post) co_return co_await MethodNotAllowed(body_bytes);
      if (!InitErrorAllowed()) co_return co_await InitErrorTooLate(body_bytes);
      kind = Post::kInitError;
    } else if (auto parsed = ParseInvocationPath(path)) {
      if (method != http::verb::post) co_return co_await MethodNotAllowed(body_bytes);
      id = parsed->first;
      kind = parsed->second == "response" ? Post::kResponse : Post::kError;
      // Checked before any of the body is read: a body for no invocation is never buffered.
      if (!e.IsInFlight(id)) co_return co_await InvalidRequestId(id, body_bytes);
    } else {
      co_return co_await Refuse(http::status::not_found,
                                ErrorBody("NotFound", fmt::format("no such path: {}", path)),
                                body_bytes);
    }

    if (kind == Post::kResponse && parser.chunked() &&
        beast::iequals(header[kResponseModeHeader], "streaming")) {
      co_return co_await Streamed(parser, std::string(id));
    }
    if (content_length && *content_length > e.limits_.max_response_bytes) {
      e.ReportTooLarge(id);
      co_return co_await TooLarge(body_bytes);
    }
    if (e.body_bytes_ + body_bytes > e.body_budget_) {
      co_return co_await Refuse(
          http::status::too_many_requests,
          ErrorBody("TooManyRequests",
                    fmt::format("other requests of this runtime hold {} bytes of body; the "
                                "limit is {} at once",
                                e.body_bytes_, e.body_budget_)),
          body_bytes);
    }
    BodyReservation reservation(e, body_bytes);
    parser.body_limit(e.limits_.max_response_bytes);
    boost::system::error_code ec;
    if (!http_read::BodyBuffered(buffer_, parser, ec)) {
      ec = co_await http_read::ReadBody(socket_, buffer_, parser, timer_, e.limits_.body_timeout,
                                        &e.reads_);
    }
    if (e.closed_) co_return false;
    if (ec == http::error::body_limit) {
      e.ReportTooLarge(id);
      co_return co_await TooLarge(e.limits_.max_response_bytes);
    }
    if (ec == beast::error::timeout) co_return co_await TimedOut("body");
    if (ec) co_return false;

    // While the body came in, another connection may have answered the same invocation.
    std::string body = std::move(parser.get().body());
    switch (kind) {
      case Post::kInitError:
        if (!InitErrorAllowed()) co_return co_await InitErrorTooLate(0);
        e.owner_.OnInitError(std::string(header[kErrorTypeHeader]), std::move(body));
        break;
      case Post::kResponse:
      case Post::kError:
        if (!e.EndInFlight(id)) co_return co_await InvalidRequestId(id, 0);
        if (kind == Post::kResponse) {
          e.owner_.OnInvocationResponse(id, std::move(body));
        } else {
          e.owner_.OnInvocationError(id, std::string(header[kErrorTypeHeader]), std::move(body));
        }
        break;
    }
    co_return co_await Accepted();
  }

  // A streamed response (Lambda's response streaming: chunked, with the response-mode header):
  // each chunk goes to the owner as it arrives and is not kept. Its length is bounded by
  // max_streamed_response_bytes and its time by the invocation's timeout, which ends the
  // runtime (and this connection) when it runs out.
  asio::awaitable<bool> Streamed(Parser& parser, std::string id) {
    Endpoint& e = *endpoint_;
    uint64_t streamed = 0;
    bool over = false;
    auto on_chunk = [&e, &streamed, &over, &id, this](uint64_t, std::string_view bytes,
                                                      boost::system::error_code& ec) -> size_t {
      streamed += bytes.size();
      if (streamed > e.limits_.max_streamed_response_bytes) {
        over = true;
        ec = http::error::body_limit;
        return 0;
      }
      if (!e.closed_ && e.IsInFlight(id)) e.owner_.OnInvocationChunk(id, bytes);
      return bytes.size();
    };
    parser.on_chunk_body(on_chunk);
    const boost::system::error_code ec =
        co_await http_read::ReadBody(socket_, buffer_, parser, timer_, kMaxStreamTime, &e.reads_);
    if (e.closed_) co_return false;
    if (over) {
      e.ReportTooLarge(id);
      co_await Reply(
          http::status::payload_too_large,
          ErrorBody("RequestEntityTooLarge", fmt::format("streamed response exceeds {} bytes",
                                                         e.limits_.max_streamed_response_bytes)),
          /*keep_alive=*/false);
      co_return false;
    }
    if (ec == beast::error::timeout) co_return co_await TimedOut("body");
    if (ec) co_return false;
    if (!e.EndInFlight(id)) co_return co_await InvalidRequestId(id, 0);
    e.owner_.OnInvocationResponse(id, std::string());
    co_return co_await Accepted();
  }

  // {request id, "response" or "error"} of /runtime/invocation/<id>/<action>.
  static std::optional<std::pair<std::string_view, std::string_view>> ParseInvocationPath(
      std::string_view path) {
    if (!path.starts_with(kInvocationPrefix)) return std::nullopt;
    const std::string_view rest = path.substr(kInvocationPrefix.size());
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    const std::string_view action = rest.substr(slash + 1);
    if (action != "response" && action != "error") return std::nullopt;
    return std::make_pair(rest.substr(0, slash), action);
  }

  bool InitErrorAllowed() const {
    return endpoint_->in_flight_.empty() && !endpoint_->initialized_;
  }

  asio::awaitable<bool> InvalidRequestId(std::string_view id, uint64_t unread_body_bytes) {
    co_return co_await Refuse(
        http::status::bad_request,
        ErrorBody("InvalidRequestID",
                  fmt::format("request id {} is unknown or already answered", id)),
        unread_body_bytes);
  }

  asio::awaitable<bool> InitErrorTooLate(uint64_t unread_body_bytes) {
    co_return co_await Refuse(
        http::status::forbidden,
        ErrorBody("InvalidStateTransition", "init/error after initialisation finished"),
        unread_body_bytes);
  }

  asio::awaitable<bool> TooLarge(uint64_t unread_body_bytes) {
    co_return co_await Refuse(
        http::status::payload_too_large,
        ErrorBody("RequestEntityTooLarge",
                  fmt::format("response exceeds {} bytes", endpoint_->limits_.max_response_bytes)),
        unread_body_bytes);
  }

  // A request that took too long ends its connection: what is left of it is not read.
  asio::awaitable<bool> TimedOut(std::string_view part) {
    co_await Reply(http::status::request_timeout,
                   ErrorBody("RequestTimeout", fmt::format("the request's {} took too long", part)),
                   /*keep_alive=*/false);
    co_return false;
  }

  asio::awaitable<bool> MethodNotAllowed(uint64_t unread_body_bytes) {
    co_return co_await Refuse(http::status::method_not_allowed,
                              ErrorBody("MethodNotAllowed", "method not allowed"),
                              unread_body_bytes);
  }

  // Answers a request that is refused. A request without a body leaves the connection usable.
  // One with a body ends it, unread: its bytes are thrown away (a little of them, briefly) only
  // so that a runtime that writes its whole request before reading still sees the answer.
  asio::awaitable<bool> Refuse(http::status status, std::string_view body,
                               uint64_t unread_body_bytes) {
    if (unread_body_bytes == 0) co_return co_await Reply(status, body);
    co_await Reply(status, body, /*keep_alive=*/false);
    co_await http_read::Discard(socket_, buffer_, timer_,
                                std::min(unread_body_bytes, kMaxDiscardBytes), kDiscardQuiet,
                                kDiscardTimeout);
    co_return false;
  }

  asio::awaitable<bool> Next() {
    Endpoint& e = *endpoint_;
    if (e.parked_.size() >= e.concurrency_) {
      // Built before the co_await: g++ 12 mishandles temporaries of class type inside one.
      const std::string refusal = ErrorBody(
          "InvalidStateTransition",
          e.concurrency_ == 1 ? std::string("another GET /next is already waiting")
                              : fmt::format("{} GET /next are already waiting, as many as "
                                            "AWS_LAMBDA_MAX_CONCURRENCY",
                                            e.parked_.size()));
      co_return co_await Reply(http::status::forbidden, refusal);
    }
    if (e.concurrency_ == 1 && !e.in_flight_.empty()) {
      // The runtime moved on without answering: that invocation failed. (A runtime that serves
      // several at once asks for more while others run.)
      const std::string id = std::move(e.in_flight_.front());
      e.in_flight_.clear();
      e.owner_.OnInvocationError(
          id, "Runtime.InvalidStateTransition",
          ErrorBody("Runtime.InvalidStateTransition",
                    "the runtime asked for the next event without answering this one"));
      if (e.closed_) co_return false;
    }
    e.initialized_ = true;
    if (e.pending_.empty()) e.owner_.OnRuntimeWaiting();  // may Deliver() right away
    if (e.concurrency_ > 1 && e.pending_.empty() && !e.closed_) {
      // A runtime serving several calls may send its next requests (results, more GET /next)
      // on this connection before this one is answered: its reply holds its place in line
      // while they are read and handled. Replies held back for it (see Send) go before it, and
      // out with it.
      if (!out_.empty()) {
        Slot& held = slots_.emplace_back();
        held.bytes = std::move(out_);
        held.ready = true;
        out_.clear();
      }
      Slot& slot = slots_.emplace_back();
      e.parked_.push_back({nullptr, [weak = weak_from_this(), &slot] {
                             auto self = weak.lock();
                             if (!self) return false;
                             self->FillSlot(slot);
                             return true;
                           }});
      co_return true;
    }
    // Deliver wakes the oldest parked request per event; one that arrived meanwhile and found
    // the event pending may have taken it: then this one parks again.
    while (!e.closed_ && e.pending_.empty()) co_await Park();
    if (e.closed_) co_return false;
    NextEvent next = std::move(e.pending_.front());
    e.pending_.pop_front();
    AppendNextHead(next, out_);
    co_return co_await Send(/*keep_alive=*/true, *next.body);
  }

  // Appends the head of GET /next's reply for `next` to `out`; marks it in flight.
  void AppendNextHead(const NextEvent& next, std::string& out) {
    Endpoint& e = *endpoint_;
    out += "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n";
    if (!next.trace_id.empty()) {
      out += "Lambda-Runtime-Trace-Id: ";
      out += next.trace_id;
      out += "\r\n";
    }
    if (!next.client_context.empty()) {
      out += "Lambda-Runtime-Client-Context: ";
      out += next.client_context;
      out += "\r\n";
    }
    if (next.specialization) {
      out += "Lambda-Runtime-Wisp-Specialize: 1\r\n";
      e.initialized_ = false;  // the runtime loads its function now; it may fail to
    } else {
      e.in_flight_.push_back(next.request_id);
    }
    out += "Lambda-Runtime-Aws-Request-Id: ";
    out += next.request_id;
    out += "\r\nLambda-Runtime-Deadline-Ms: ";
    out += fmt::format_int(next.deadline_ms).c_str();
    out += "\r\nLambda-Runtime-Invoked-Function-Arn: ";
    out += next.function_arn;
    out += "\r\nContent-Length: ";
    out += fmt::format_int(next.body->size()).c_str();
    out += "\r\n\r\n";
  }

  // Gives a GET /next waiting in line (see Next) the oldest pending event.
  void FillSlot(Slot& slot) {
    Endpoint& e = *endpoint_;
    NextEvent next = std::move(e.pending_.front());
    e.pending_.pop_front();
    // The head's fixed part, its values and the event: one allocation.
    slot.bytes.reserve(kNextHeadBytes + next.request_id.size() + next.trace_id.size() +
                       next.client_context.size() + next.function_arn.size() + next.body->size());
    AppendNextHead(next, slot.bytes);
    slot.bytes += *next.body;
    slot.ready = true;
    ScheduleFlush();
  }

  // Writes the replies ready at the head of the line soon: events delivered in the same turn of
  // the io loop go out in one write.
  void ScheduleFlush() {
    if (flush_scheduled_ || writing_) return;
    flush_scheduled_ = true;
    asio::co_spawn(
        socket_.get_executor(), [self = shared_from_this()] { return self->Flush(); },
        asio::detached);
  }

  asio::awaitable<void> Flush() {
    flush_scheduled_ = false;
    writing_ = true;
    std::string batch;
    while (!slots_.empty() && slots_.front().ready && !endpoint_->closed_) {
      batch.clear();
      while (!slots_.empty() && slots_.front().ready) {
        batch += slots_.front().bytes;
        slots_.pop_front();
      }
      boost::system::error_code ec;
      co_await asio::async_write(socket_, asio::buffer(batch),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
    }
    writing_ = false;
  }

  asio::awaitable<void> Park() {
    Endpoint& e = *endpoint_;
    Event wakeup(socket_.get_executor());
    e.parked_.push_back({&wakeup, nullptr});
    // Also when the frame is destroyed unresumed (the io_context shutting down): Close() must
    // not find it.
    const auto unpark = [&] {
      std::erase_if(e.parked_, [&](const Parked& parked) { return parked.wakeup == &wakeup; });
    };
    Defer unparked(unpark);
    co_await wakeup.Wait();
  }

  // Accepted and Reply are plain functions handing back Send's coroutine: a frame fewer each
  // per reply. `body` must outlive the co_await of the result.
  asio::awaitable<bool> Accepted() { return Reply(http::status::accepted, R"({"status":"OK"})"); }

  asio::awaitable<bool> Reply(http::status status, std::string_view body, bool keep_alive = true) {
    out_ += "HTTP/1.1 ";
    out_ += fmt::format_int(static_cast<unsigned>(status)).c_str();
    out_ += ' ';
    const auto reason = http::obsolete_reason(status);
    out_.append(reason.data(), reason.size());
    out_ += "\r\nContent-Type: application/json\r\n";
    if (!keep_alive) out_ += "Connection: close\r\n";
    out_ += "Content-Length: ";
    out_ += fmt::format_int(body.size()).c_str();
    out_ += "\r\n\r\n";
    return Send(keep_alive, body);
  }

  // Writes the replies gathered in out_, then `body` (the last reply's body, written from where
  // it is: an event is not copied). Unless the runtime has already sent its next request (a
  // runtime that pipelines POST /response with GET /next): then the replies wait to go out in
  // one write with the next one, which spares the runtime a wake-up and wispd a send per
  // invocation. The runtime sent that request without waiting for these replies, so holding
  // them back cannot stall it; and if the bytes turn out to be no request, Serve sends them as it
  // ends.
  asio::awaitable<bool> Send(bool keep_alive, std::string_view body) {
    if (!slots_.empty() || writing_) {
      // Behind a GET /next waiting in line, or while its line is being written.
      Slot& slot = slots_.emplace_back();
      slot.bytes = std::move(out_);
      slot.bytes += body;
      slot.ready = true;
      out_.clear();
      ScheduleFlush();
      co_return keep_alive;
    }
    if (keep_alive && buffer_.size() > 0) {
      out_ += body;
      co_return true;
    }
    const boost::system::error_code ec = co_await WriteNow(socket_, out_, body);
    out_.clear();
    co_return !ec && keep_alive;
  }

  static constexpr std::string_view kErrorTypeHeader = "Lambda-Runtime-Function-Error-Type";
  // GET /next's reply head without its values (AppendNextHead), with room for its numbers.
  static constexpr size_t kNextHeadBytes = 320;
  // What Refuse reads and throws away at most, and how long it waits for it.
  static constexpr uint64_t kMaxDiscardBytes = 1 << 20;
  static constexpr auto kDiscardQuiet = std::chrono::milliseconds(200);
  static constexpr auto kDiscardTimeout = std::chrono::seconds(1);

  std::shared_ptr<Endpoint> endpoint_;
  StreamSocket socket_;
  asio::steady_timer timer_;   // the deadline of a read in progress (http_read)
  const bool accepted_;        // accepted by the transport: counts against the cap
  beast::flat_buffer buffer_;  // bytes the runtime sent that are not parsed yet
  std::string out_;            // replies not written yet (see Send)
  // Replies in request order, once a GET /next waits in line (see Next); deque: a slot stays
  // where it is while others are added and taken.
  std::deque<Slot> slots_;
  bool flush_scheduled_ = false;
  bool writing_ = false;
};

Endpoint::Endpoint(asio::io_context& io, std::unique_ptr<Transport> transport,
                   EndpointListener& owner, uint64_t max_response_bytes)
    : Endpoint(io, std::move(transport), owner,
               EndpointLimits{.max_response_bytes = max_response_bytes}) {}

Endpoint::Endpoint(asio::io_context& io, std::unique_ptr<Transport> transport,
                   EndpointListener& owner, EndpointLimits limits)
    : io_(io),
      transport_(std::move(transport)),
      owner_(owner),
      limits_(limits),
      body_budget_(limits.body_budget_bytes > 0
                       ? limits.body_budget_bytes
                       : limits.max_response_bytes + EndpointLimits::kBodyBudgetSlack),
      accept_slot_(io),
      max_accepted_connections_(limits.max_accepted_connections) {}

Endpoint::~Endpoint() { Close(); }

void Endpoint::Start() {
  if (closed_) return;
  for (RuntimeConnection& open : transport_->TakeOpenConnections()) {
    Serve(std::move(open), /*accepted=*/false);
  }
  asio::co_spawn(
      io_, [self = shared_from_this()] { return self->AcceptLoop(); }, asio::detached);
}

asio::awaitable<void> Endpoint::AcceptLoop() {
  auto self = shared_from_this();
  while (!closed_) {
    boost::system::error_code ec;
    if (accepted_connections_ >= max_accepted_connections_) {
      // More connections wait in the transport's backlog, costing wispd nothing, until one of
      // these ends (OnAcceptedConnectionEnded cancels the wait).
      spdlog::debug("runtime endpoint: {} accepted connections open, the most served at once",
                    accepted_connections_);
      accept_slot_.expires_at(asio::steady_timer::time_point::max());
      co_await accept_slot_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    StreamSocket socket(io_);
    ec = co_await transport_->Accept(socket);
    if (closed_ || ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor ||
        ec == asio::error::operation_not_supported) {
      co_return;
    }
    if (ec) continue;  // e.g. the runtime reset the connection before we accepted it
    Serve(std::move(socket), /*accepted=*/true);
  }
}

void Endpoint::Serve(StreamSocket socket, bool accepted) {
  if (accepted) ++accepted_connections_;
  auto connection = std::make_shared<Connection>(shared_from_this(), std::move(socket), accepted);
  connections_.push_back(connection);
  std::erase_if(connections_, [](const auto& weak) { return weak.expired(); });
  asio::co_spawn(
      io_, [connection] { return connection->Serve(); }, asio::detached);
}

void Endpoint::Deliver(NextEvent event) {
  pending_.push_back(std::move(event));
  while (!parked_.empty()) {
    Parked oldest = std::move(parked_.front());
    parked_.pop_front();
    if (oldest.wakeup) {
      oldest.wakeup->Set();
      return;
    }
    if (oldest.fill()) return;  // else its connection has ended: the next one
  }
}

void Endpoint::SetConcurrency(size_t concurrency) {
  concurrency_ = std::max<size_t>(concurrency, 1);
  // One connection per invocation (a thread or process of the runtime each), and the usual
  // spare ones beside them.
  max_accepted_connections_ = std::max(limits_.max_accepted_connections, concurrency_ + 2);
  accept_slot_.cancel();
}

bool Endpoint::IsInFlight(std::string_view request_id) const {
  return !request_id.empty() &&
         std::find(in_flight_.begin(), in_flight_.end(), request_id) != in_flight_.end();
}

bool Endpoint::EndInFlight(std::string_view request_id) {
  if (request_id.empty()) return false;
  auto it = std::find(in_flight_.begin(), in_flight_.end(), request_id);
  if (it == in_flight_.end()) return false;
  in_flight_.erase(it);
  return true;
}

void Endpoint::ReportTooLarge(std::string_view request_id) {
  if (!EndInFlight(request_id)) return;
  owner_.OnInvocationError(
      request_id, "Function.ResponseSizeTooLarge",
      ErrorBody("Function.ResponseSizeTooLarge",
                fmt::format("response too large: it exceeds the limit of {} bytes",
                            limits_.max_response_bytes)));
}

void Endpoint::OnAcceptedConnectionEnded() {
  --accepted_connections_;
  accept_slot_.cancel();
}

void Endpoint::Close() {
  if (closed_) return;
  closed_ = true;
  transport_->Close();
  accept_slot_.cancel();
  for (auto& weak : connections_) {
    if (auto connection = weak.lock()) connection->Close();
  }
  connections_.clear();
  for (Parked& parked : parked_) {
    if (parked.wakeup) parked.wakeup->Set();
  }
  parked_.clear();
}

}  // namespace wisp::runtime_api
