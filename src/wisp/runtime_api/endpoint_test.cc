#include "wisp/runtime_api/endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace wisp::runtime_api {
namespace {

// A listening socket on an ephemeral loopback port, standing in for the sandbox's listener.
UniqueFd Listen(uint16_t& port) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(listen(fd.get(), 16), 0);
  socklen_t len = sizeof addr;
  getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  port = ntohs(addr.sin_port);
  return fd;
}

// A blocking HTTP/1.1 client that speaks just enough to act as a runtime.
class RuntimeClient {
 public:
  explicit RuntimeClient(uint16_t port) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }
  // Over an already connected socket (the sandbox's Runtime API channel).
  explicit RuntimeClient(UniqueFd connected) : fd_(std::move(connected)) {}
  // Returns the whole response (head and body).
  std::string Request(const std::string& method, const std::string& path,
                      const std::string& body = "", const std::string& extra_headers = "") {
    std::string request = method + " " + path + " HTTP/1.1\r\nHost: x\r\n" + extra_headers +
                          "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    send(fd_.get(), request.data(), request.size(), MSG_NOSIGNAL);
    std::string response;
    char buf[65536];
    for (;;) {
      const auto head_end = response.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        const auto cl = response.find("Content-Length: ");
        const size_t length = cl == std::string::npos ? 0 : std::stoul(response.substr(cl + 16));
        if (response.size() >= head_end + 4 + length) return response;
      }
      const ssize_t n = recv(fd_.get(), buf, sizeof buf, 0);
      if (n <= 0) return response;
      response.append(buf, static_cast<size_t>(n));
    }
  }

  // True when the endpoint closed the connection (EOF or reset) within `wait`; what came
  // before the close is appended to `received`.
  bool ClosedWithin(std::chrono::milliseconds wait, std::string* received = nullptr) {
    timeval tv{};
    tv.tv_sec = wait.count() / 1000;
    tv.tv_usec = (wait.count() % 1000) * 1000;
    setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[65536];
    for (;;) {
      const ssize_t n = recv(fd_.get(), buf, sizeof buf, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
      if (received) received->append(buf, static_cast<size_t>(n));
    }
  }

  void SendRaw(const std::string& bytes) {
    send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
  }
  // What is there to read right now, without waiting.
  std::string ReceiveNow() {
    char buf[65536];
    const ssize_t n = recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }
  // What one recv returns: the bytes of one write of the endpoint, when they fit.
  std::string ReceiveOnce() {
    char buf[65536];
    const ssize_t n = recv(fd_.get(), buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }

 private:
  UniqueFd fd_;
};

class RecordingOwner : public EndpointListener {
 public:
  void OnRuntimeWaiting() override {
    ++waiting;
    if (!to_deliver.empty()) {
      NextEvent event = std::move(to_deliver.front());
      to_deliver.erase(to_deliver.begin());
      endpoint->Deliver(std::move(event));
    }
  }
  void OnInvocationResponse(std::string_view id, std::string body) override {
    answered_ids.emplace_back(id);
    responses.push_back(std::move(body));
  }
  void OnInvocationChunk(std::string_view id, std::string_view bytes) override {
    chunk_ids.emplace_back(id);
    chunks.emplace_back(bytes);
  }
  void OnInvocationError(std::string_view id, std::string type, std::string body) override {
    answered_ids.emplace_back(id);
    errors.push_back(type + "|" + body);
  }
  void OnInitError(std::string type, std::string body) override {
    init_errors.push_back(type + "|" + body);
  }

  Endpoint* endpoint = nullptr;
  std::vector<NextEvent> to_deliver;
  std::atomic<int> waiting = 0;  // read by the client thread
  std::vector<std::string> responses, errors, init_errors, answered_ids, chunks, chunk_ids;
};

NextEvent MakeEvent(std::string id, std::string body) {
  NextEvent event;
  event.request_id = std::move(id);
  event.body = std::make_shared<std::string>(std::move(body));
  event.deadline_ms = 1234;
  event.function_arn = "arn:wisp:function:f";
  event.trace_id = "Root=1-0-0";
  return event;
}

class EndpointTest : public testing::Test {
 protected:
  virtual EndpointLimits Limits() const { return EndpointLimits{.max_response_bytes = 1024}; }
  void SetUp() override {
    // What the process jail's transport is made of: a listener (loopback TCP here) and a
    // connected Unix stream socket, the channel.
    int pair[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    channel_ = UniqueFd(pair[1]);
    endpoint_ = std::make_shared<Endpoint>(
        io_, std::make_unique<SocketTransport>(io_, Listen(port_), UniqueFd(pair[0])), owner_,
        Limits());
    owner_.endpoint = endpoint_.get();
    endpoint_->Start();
  }
  // Runs `client` on a thread while the io_context serves, until the client is done.
  void RunClient(std::function<void()> client) {
    std::thread thread([&] {
      client();
      asio::post(io_, [this] { endpoint_->Close(); });
    });
    io_.run();
    thread.join();
  }

  asio::io_context io_;
  uint16_t port_ = 0;
  UniqueFd channel_;  // the runtime's end of the channel
  RecordingOwner owner_;
  std::shared_ptr<Endpoint> endpoint_;
};

TEST_F(EndpointTest, NextDeliversEventWithLambdaHeadersThenResponseIsAccepted) {
  owner_.to_deliver.push_back(MakeEvent("req-1", R"({"name":"World"})"));
  std::string next, posted, again;
  RunClient([&] {
    RuntimeClient runtime(port_);
    next = runtime.Request("GET", "/2018-06-01/runtime/invocation/next");
    posted =
        runtime.Request("POST", "/2018-06-01/runtime/invocation/req-1/response", R"({"ok":1})");
    again = runtime.Request("POST", "/runtime/invocation/req-1/response", R"({"ok":2})");
  });
  EXPECT_NE(next.find("HTTP/1.1 200"), std::string::npos);
  EXPECT_NE(next.find("Lambda-Runtime-Aws-Request-Id: req-1"), std::string::npos);
  EXPECT_NE(next.find("Lambda-Runtime-Deadline-Ms: 1234"), std::string::npos);
  EXPECT_NE(next.find("Lambda-Runtime-Invoked-Function-Arn: arn:wisp:function:f"),
            std::string::npos);
  EXPECT_NE(next.find("Lambda-Runtime-Trace-Id: Root=1-0-0"), std::string::npos);
  EXPECT_NE(next.find(R"({"name":"World"})"), std::string::npos);
  EXPECT_NE(posted.find("HTTP/1.1 202"), std::string::npos);
  EXPECT_NE(again.find("HTTP/1.1 400"), std::string::npos) << "an answered id is invalid";
  EXPECT_NE(again.find("InvalidRequestID"), std::string::npos);
  ASSERT_EQ(owner_.responses.size(), 1u);
  EXPECT_EQ(owner_.responses[0], R"({"ok":1})");
}

// A runtime that sends its result and the next GET together gets the 202 together with the
// next event: one write, one wake-up of the runtime per invocation. The next event comes only
// after the runtime has been parked a while, so a 202 written at once would arrive first, alone.
TEST_F(EndpointTest, PipelinedResultAndNextAreAnsweredInOneWrite) {
  owner_.to_deliver.push_back(MakeEvent("req-1", "{}"));
  std::string early, together;
  RunClient([&] {
    RuntimeClient runtime(port_);
    runtime.Request("GET", "/runtime/invocation/next");
    runtime.SendRaw(
        "POST /runtime/invocation/req-1/response HTTP/1.1\r\nHost: x\r\nContent-Length: "
        "8\r\n\r\n{\"ok\":1}GET /runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n");
    while (owner_.waiting < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    early = runtime.ReceiveNow();
    asio::post(io_, [this] { endpoint_->Deliver(MakeEvent("req-2", R"({"second":true})")); });
    together = runtime.ReceiveOnce();
  });
  EXPECT_EQ(early, "") << "the 202 waits for the next event";
  const auto accepted = together.find("HTTP/1.1 202");
  const auto next = together.find("HTTP/1.1 200");
  ASSERT_NE(accepted, std::string::npos) << together;
  ASSERT_NE(next, std::string::npos) << together;
  EXPECT_LT(accepted, next);
  EXPECT_NE(together.find("Lambda-Runtime-Aws-Request-Id: req-2"), std::string::npos);
  EXPECT_NE(together.find(R"({"second":true})"), std::string::npos);
  ASSERT_EQ(owner_.responses.size(), 1u);
  EXPECT_EQ(owner_.responses[0], R"({"ok":1})");
}

// A runtime serving several calls at once holds that many GET /next, over connections of its
// own, and answers in any order; each answer reaches the call it names.
TEST_F(EndpointTest, SeveralCallsAtOnceAreAnsweredInAnyOrder) {
  endpoint_->SetConcurrency(3);
  for (int i = 1; i <= 3; ++i) {
    owner_.to_deliver.push_back(MakeEvent("req-" + std::to_string(i), std::to_string(i)));
  }
  std::string fourth;
  std::vector<std::string> posted(3);
  RunClient([&] {
    std::vector<std::unique_ptr<RuntimeClient>> workers;
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i) {
      workers.push_back(std::make_unique<RuntimeClient>(port_));
      const std::string next = workers.back()->Request("GET", "/runtime/invocation/next");
      const auto at = next.find("Lambda-Runtime-Aws-Request-Id: ");
      ids.push_back(next.substr(at + 31, next.find("\r\n", at) - at - 31));
    }
    // All three are in flight: more GET /next than the runtime may hold are refused.
    RuntimeClient extra(port_);
    workers[0]->SendRaw("GET /runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n");
    workers[1]->SendRaw("GET /runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n");
    workers[2]->SendRaw("GET /runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n");
    while (owner_.waiting < 6) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    fourth = extra.Request("GET", "/runtime/invocation/next");
    for (int i = 2; i >= 0; --i) {
      RuntimeClient answer(port_);
      posted[i] = answer.Request("POST", "/runtime/invocation/" + ids[i] + "/response",
                                 "\"" + ids[i] + "\"");
    }
  });
  EXPECT_NE(fourth.find("HTTP/1.1 403"), std::string::npos) << fourth;
  for (const auto& reply : posted)
    EXPECT_NE(reply.find("HTTP/1.1 202"), std::string::npos) << reply;
  EXPECT_EQ(owner_.answered_ids, (std::vector<std::string>{"req-3", "req-2", "req-1"}));
  EXPECT_EQ(owner_.responses, (std::vector<std::string>{"\"req-3\"", "\"req-2\"", "\"req-1\""}));
}

size_t CountOf(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

// Over one connection, a runtime serving several calls holds several GET /next and sends its
// results while they wait; events delivered together go out in one write.
TEST_F(EndpointTest, SeveralCallsShareOneConnectionAndEventsGoOutTogether) {
  endpoint_->SetConcurrency(3);
  const std::string next = "GET /runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n";
  const auto post = [](const std::string& id) {
    return "POST /runtime/invocation/" + id +
           "/response HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
  };
  std::string events, answers;
  RunClient([&] {
    RuntimeClient runtime{std::move(channel_)};
    runtime.SendRaw(next + next + next);
    while (owner_.waiting < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    asio::post(io_, [this] {
      for (int i = 1; i <= 3; ++i) endpoint_->Deliver(MakeEvent("req-" + std::to_string(i), "{}"));
    });
    events = runtime.ReceiveOnce();
    // Results are handled at once, while a GET /next between them waits for an event; their
    // answers keep the order of the requests.
    runtime.SendRaw(post("req-2") + next + post("req-3") + post("req-1"));
    while (owner_.answered_ids.size() < 3) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    asio::post(io_, [this] { endpoint_->Deliver(MakeEvent("req-4", "{}")); });
    while (CountOf(answers, "HTTP/1.1 202") < 3) answers += runtime.ReceiveOnce();
  });
  EXPECT_EQ(CountOf(events, "HTTP/1.1 200"), 3u) << "one write: " << events;
  EXPECT_EQ(owner_.answered_ids, (std::vector<std::string>{"req-2", "req-3", "req-1"}));
  const auto first_accepted = answers.find("HTTP/1.1 202");
  const auto event = answers.find("Lambda-Runtime-Aws-Request-Id: req-4");
  const auto last_accepted = answers.rfind("HTTP/1.1 202");
  ASSERT_NE(event, std::string::npos) << answers;
  EXPECT_LT(first_accepted, event) << answers;
  EXPECT_LT(event, last_accepted) << answers;
}

TEST_F(EndpointTest, ServesTheRuntimeOverItsChannel) {
  owner_.to_deliver.push_back(MakeEvent("req-1", R"({"over":"channel"})"));
  std::string next, posted;
  RunClient([&] {
    RuntimeClient runtime{std::move(channel_)};
    next = runtime.Request("GET", "/2018-06-01/runtime/invocation/next");
    posted = runtime.Request("POST", "/2018-06-01/runtime/invocation/req-1/response", "[1]");
  });
  EXPECT_NE(next.find(R"({"over":"channel"})"), std::string::npos) << next;
  EXPECT_NE(posted.find("HTTP/1.1 202"), std::string::npos) << posted;
  ASSERT_EQ(owner_.responses.size(), 1u);
  EXPECT_EQ(owner_.responses[0], "[1]");
}

TEST_F(EndpointTest, NoTraceIdMeansNoTraceHeader) {
  NextEvent untraced = MakeEvent("req-1", "{}");
  untraced.trace_id.clear();
  owner_.to_deliver.push_back(std::move(untraced));
  std::string next;
  RunClient([&] { next = RuntimeClient(port_).Request("GET", "/runtime/invocation/next"); });
  EXPECT_NE(next.find("Lambda-Runtime-Aws-Request-Id: req-1"), std::string::npos) << next;
  EXPECT_EQ(next.find("Trace-Id"), std::string::npos) << next;
}

TEST_F(EndpointTest, ErrorCarriesTypeHeaderAndBody) {
  owner_.to_deliver.push_back(MakeEvent("req-2", "{}"));
  std::string posted;
  RunClient([&] {
    RuntimeClient runtime(port_);
    runtime.Request("GET", "/runtime/invocation/next");
    posted = runtime.Request("POST", "/runtime/invocation/req-2/error", R"({"errorMessage":"x"})",
                             "Lambda-Runtime-Function-Error-Type: Runtime.Boom\r\n");
  });
  EXPECT_NE(posted.find("HTTP/1.1 202"), std::string::npos);
  ASSERT_EQ(owner_.errors.size(), 1u);
  EXPECT_EQ(owner_.errors[0], R"(Runtime.Boom|{"errorMessage":"x"})");
}

TEST_F(EndpointTest, InitErrorIsReportedOnlyBeforeTheFirstNext) {
  std::string first;
  RunClient([&] {
    RuntimeClient runtime(port_);
    first = runtime.Request("POST", "/2018-06-01/runtime/init/error", R"({"errorMessage":"bad"})",
                            "Lambda-Runtime-Function-Error-Type: Runtime.ImportModuleError\r\n");
  });
  EXPECT_NE(first.find("HTTP/1.1 202"), std::string::npos);
  ASSERT_EQ(owner_.init_errors.size(), 1u);
  EXPECT_EQ(owner_.init_errors[0], R"(Runtime.ImportModuleError|{"errorMessage":"bad"})");
}

TEST_F(EndpointTest, OversizedResponseIs413AndFailsTheInvocation) {
  owner_.to_deliver.push_back(MakeEvent("req-3", "{}"));
  std::string posted;
  RunClient([&] {
    RuntimeClient runtime(port_);
    runtime.Request("GET", "/runtime/invocation/next");
    posted = runtime.Request("POST", "/runtime/invocation/req-3/response", std::string(4096, 'x'));
  });
  EXPECT_NE(posted.find("HTTP/1.1 413"), std::string::npos);
  ASSERT_EQ(owner_.errors.size(), 1u);
  EXPECT_NE(owner_.errors[0].find("Function.ResponseSizeTooLarge"), std::string::npos);
}

// Lambda's response streaming: each chunk goes to the owner as it comes, none is kept, and the
// whole may be larger than a result may be.
TEST_F(EndpointTest, AStreamedResponseIsReportedChunkByChunk) {
  owner_.to_deliver.push_back(MakeEvent("req-s", "{}"));
  std::string posted;
  size_t chunks_before_end = 0;
  RunClient([&] {
    RuntimeClient runtime(port_);
    runtime.Request("GET", "/runtime/invocation/next");
    runtime.SendRaw(
        "POST /runtime/invocation/req-s/response HTTP/1.1\r\nHost: x\r\n"
        "Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (char c : {'a', 'b', 'c', 'd'}) {
      runtime.SendRaw("400\r\n" + std::string(1024, c) + "\r\n");
    }
    // The chunks arrived before the body ended.
    for (int i = 0; i < 500 && chunks_before_end < 4; ++i) {
      std::promise<size_t> seen;
      asio::post(io_, [&] { seen.set_value(owner_.chunks.size()); });
      chunks_before_end = seen.get_future().get();
      if (chunks_before_end < 4) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    runtime.SendRaw("0\r\n\r\n");
    posted = runtime.ReceiveOnce();
  });
  EXPECT_EQ(chunks_before_end, 4u);
  EXPECT_NE(posted.find("HTTP/1.1 202"), std::string::npos) << posted;
  std::string streamed;
  for (const auto& chunk : owner_.chunks) streamed += chunk;
  EXPECT_EQ(streamed, std::string(1024, 'a') + std::string(1024, 'b') + std::string(1024, 'c') +
                          std::string(1024, 'd'));
  for (const auto& id : owner_.chunk_ids) EXPECT_EQ(id, "req-s");
  ASSERT_EQ(owner_.responses.size(), 1u);
  EXPECT_EQ(owner_.responses[0], "");
  EXPECT_EQ(owner_.answered_ids, std::vector<std::string>{"req-s"});
  EXPECT_TRUE(owner_.errors.empty());
}

TEST_F(EndpointTest, UnknownPathIs404) {
  std::string response;
  RunClient([&] {
    RuntimeClient runtime(port_);
    response = runtime.Request("GET", "/nope");
  });
  EXPECT_NE(response.find("HTTP/1.1 404"), std::string::npos);
}

// A hostile runtime's requests, with small limits so that the tests are quick.
class LimitedEndpointTest : public EndpointTest {
 protected:
  EndpointLimits Limits() const override {
    EndpointLimits limits;
    limits.max_response_bytes = 1000;
    limits.max_accepted_connections = 2;
    limits.header_timeout = std::chrono::milliseconds(300);
    limits.body_timeout = std::chrono::milliseconds(300);
    limits.body_budget_bytes = 1500;
    return limits;
  }
  // Posts the result header for `id` with `length` bytes of body announced.
  static std::string ResultHead(const std::string& id, size_t length) {
    return "POST /2018-06-01/runtime/invocation/" + id +
           "/response HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(length) +
           "\r\n\r\n";
  }
};

TEST_F(LimitedEndpointTest, BodyForAnUnknownIdIsRefusedBeforeItIsRead) {
  owner_.to_deliver.push_back(MakeEvent("req-1", "{}"));
  std::string unknown, answer;
  bool closed = false;
  RunClient([&] {
    RuntimeClient runtime(port_);
    runtime.Request("GET", "/runtime/invocation/next");
    // An id that is not in flight, and a body it could never be allowed to send.
    RuntimeClient flood(port_);
    flood.SendRaw(ResultHead("x", 6000000) + std::string(4096, 'y'));
    closed = flood.ClosedWithin(std::chrono::seconds(5), &unknown);
    answer = runtime.Request("POST", "/runtime/invocation/req-1/response", "[1]");
  });
  EXPECT_NE(unknown.find("HTTP/1.1 400"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("InvalidRequestID"), std::string::npos) << unknown;
  EXPECT_TRUE(closed) << "a refused body ends its connection";
  EXPECT_NE(answer.find("HTTP/1.1 202"), std::string::npos) << answer;
  ASSERT_EQ(owner_.responses.size(), 1u);
  EXPECT_EQ(owner_.responses[0], "[1]");
  EXPECT_TRUE(owner_.errors.empty()) << "another id's upload fails nothing";
}

TEST_F(LimitedEndpointTest, AnnouncedOversizedBodyIs413BeforeItIsRead) {
  owner_.to_deliver.push_back(MakeEvent("req-1", "{}"));
  std::string posted;
  bool closed = false;
  RunClient([&] {
    RuntimeClient runtime(port_);
    runtime.Request("GET", "/runtime/invocation/next");
    runtime.SendRaw(ResultHead("req-1", 6000000) + std::string(100, 'y'));
    closed = runtime.ClosedWithin(std::chrono::seconds(5), &posted);
  });
  EXPECT_NE(posted.find("HTTP/1.1 413"), std::string::npos) << posted;
  EXPECT_TRUE(closed);
  ASSERT_EQ(owner_.errors.size(), 1u);
  EXPECT_NE(owner_.errors[0].find("Function.ResponseSizeTooLarge"), std::string::npos);
}

TEST_F(LimitedEndpointTest, ConnectionsBeyondTheCapWaitUntilOneEnds) {
  std::string third_early, third_later;
  RunClient([&] {
    std::optional<RuntimeClient> first(std::in_place, port_);
    RuntimeClient second(port_);
    // Served: each answers at once.
    EXPECT_NE(first->Request("GET", "/nope").find("HTTP/1.1 404"), std::string::npos);
    EXPECT_NE(second.Request("GET", "/nope").find("HTTP/1.1 404"), std::string::npos);
    RuntimeClient third(port_);  // connects (the backlog), but is not served
    third.SendRaw("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    third_early = third.ReceiveNow();
    first.reset();  // a slot frees up: the third is accepted and served
    third_later = third.ReceiveOnce();
  });
  EXPECT_EQ(third_early, "") << "a third connection is not served while two are open";
  EXPECT_NE(third_later.find("HTTP/1.1 404"), std::string::npos) << third_later;
}

TEST_F(LimitedEndpointTest, ChannelIsServedWhateverTheTcpConnections) {
  owner_.to_deliver.push_back(MakeEvent("req-1", R"({"over":"channel"})"));
  std::string next;
  RunClient([&] {
    RuntimeClient first(port_), second(port_);
    first.Request("GET", "/nope");
    second.Request("GET", "/nope");
    next = RuntimeClient{std::move(channel_)}.Request("GET", "/runtime/invocation/next");
  });
  EXPECT_NE(next.find(R"({"over":"channel"})"), std::string::npos) << next;
}

TEST_F(LimitedEndpointTest, AStartedHeaderMustFinishInTime) {
  std::string answer;
  bool closed = false;
  const auto started = std::chrono::steady_clock::now();
  RunClient([&] {
    RuntimeClient runtime(port_);
    runtime.SendRaw("POST /2018-06-01/runtime/invo");  // and nothing more
    closed = runtime.ClosedWithin(std::chrono::seconds(5), &answer);
  });
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_TRUE(closed);
  EXPECT_NE(answer.find("HTTP/1.1 408"), std::string::npos) << answer;
  EXPECT_GE(took, std::chrono::milliseconds(300));
}

// The request line alone is parsed (and taken from the buffer) before the fields are there:
// the request has begun all the same, and its header's deadline runs.
TEST_F(LimitedEndpointTest, AHeaderStoppedAfterItsRequestLineMustFinishInTime) {
  std::string answer;
  bool closed = false;
  RunClient([&] {
    RuntimeClient runtime(port_);
    runtime.SendRaw("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n");  // no fields yet
    closed = runtime.ClosedWithin(std::chrono::seconds(5), &answer);
  });
  EXPECT_TRUE(closed);
  EXPECT_NE(answer.find("HTTP/1.1 408"), std::string::npos) << answer;
}

TEST_F(LimitedEndpointTest, AStartedBodyMustFinishInTime) {
  owner_.to_deliver.push_back(MakeEvent("req-1", "{}"));
  std::string answer;
  bool closed = false;
  RunClient([&] {
    RuntimeClient runtime(port_);
    runtime.Request("GET", "/runtime/invocation/next");
    runtime.SendRaw(ResultHead("req-1", 100) + "[1,");  // 3 of 100 bytes
    closed = runtime.ClosedWithin(std::chrono::seconds(5), &answer);
  });
  EXPECT_TRUE(closed);
  EXPECT_NE(answer.find("HTTP/1.1 408"), std::string::npos) << answer;
  EXPECT_TRUE(owner_.responses.empty());
}

// Between requests a connection may stay idle as long as it likes, and a GET /next waits for
// an event as long as it takes: neither is a request in progress.
TEST_F(LimitedEndpointTest, IdleConnectionsAndLongPollsHaveNoDeadline) {
  std::string later, next;
  RunClient([&] {
    RuntimeClient idle(port_);
    idle.Request("GET", "/nope");
    RuntimeClient poller(port_);
    poller.SendRaw("GET /runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(700));  // past both deadlines
    asio::post(io_, [this] { endpoint_->Deliver(MakeEvent("req-1", R"({"late":1})")); });
    next = poller.ReceiveOnce();
    later = idle.Request("GET", "/nope");
  });
  EXPECT_NE(next.find(R"({"late":1})"), std::string::npos) << next;
  EXPECT_NE(later.find("HTTP/1.1 404"), std::string::npos) << later;
}

TEST_F(LimitedEndpointTest, BodiesOfAllConnectionsShareOneBudget) {
  owner_.to_deliver.push_back(MakeEvent("req-1", "{}"));
  std::string second_answer, first_answer;
  bool second_closed = false;
  RunClient([&] {
    RuntimeClient runtime(port_);
    runtime.Request("GET", "/runtime/invocation/next");
    // 900 of the budget's 1500 bytes, held while the body comes in slowly.
    RuntimeClient& first = runtime;
    RuntimeClient second(port_);
    first.SendRaw(ResultHead("req-1", 900) + "[");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    second.SendRaw(ResultHead("req-1", 900) + std::string(900, ' '));
    second_closed = second.ClosedWithin(std::chrono::seconds(5), &second_answer);
    first.SendRaw(std::string(898, ' ') + "]");
    first_answer = first.ReceiveOnce();
  });
  EXPECT_NE(second_answer.find("HTTP/1.1 429"), std::string::npos) << second_answer;
  EXPECT_TRUE(second_closed);
  EXPECT_NE(first_answer.find("HTTP/1.1 202"), std::string::npos) << first_answer;
  ASSERT_EQ(owner_.responses.size(), 1u);
  EXPECT_EQ(owner_.responses[0].size(), 900u);
}

}  // namespace
}  // namespace wisp::runtime_api
