#include "wisp/runtime_api/endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
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
  void OnInvocationResponse(std::string body) override { responses.push_back(std::move(body)); }
  void OnInvocationError(std::string type, std::string body) override {
    errors.push_back(type + "|" + body);
  }
  void OnInitError(std::string type, std::string body) override {
    init_errors.push_back(type + "|" + body);
  }

  Endpoint* endpoint = nullptr;
  std::vector<NextEvent> to_deliver;
  std::atomic<int> waiting = 0;  // read by the client thread
  std::vector<std::string> responses, errors, init_errors;
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
  void SetUp() override {
    endpoint_ = std::make_shared<Endpoint>(io_, Listen(port_), owner_, 1024);
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

TEST_F(EndpointTest, ServesTheRuntimeOverItsChannel) {
  owner_.to_deliver.push_back(MakeEvent("req-1", R"({"over":"channel"})"));
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  endpoint_->ServeChannel(UniqueFd(pair[0]));
  std::string next, posted;
  RunClient([&] {
    RuntimeClient runtime{UniqueFd(pair[1])};
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

TEST_F(EndpointTest, UnknownPathIs404) {
  std::string response;
  RunClient([&] {
    RuntimeClient runtime(port_);
    response = runtime.Request("GET", "/nope");
  });
  EXPECT_NE(response.find("HTTP/1.1 404"), std::string::npos);
}

}  // namespace
}  // namespace wisp::runtime_api
