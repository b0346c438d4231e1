#include "wisp/scheduler/scheduler.h"
#include "wisp/scheduler/instance.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <algorithm>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>

namespace wisp::scheduler {
namespace {

// The runtime's output, in memory: the runtime's thread appends, the instance reads on the io
// thread. Appending is synchronous (the runtime writes its logs before it posts its result,
// as a real one does through a pipe); only the wake-up of a waiting Read is posted.
struct FakeOutput {
  std::mutex mutex;
  std::string bytes;
  bool ended = false;
};

class FakeLogStream final : public sandbox::LogStream {
 public:
  FakeLogStream(asio::io_context& io, std::shared_ptr<FakeOutput> output)
      : output_(std::move(output)), wake_(std::make_shared<asio::steady_timer>(io)) {}

  // For the runtime's thread: wakes a waiting Read.
  std::weak_ptr<asio::steady_timer> waker() const { return wake_; }

  asio::awaitable<size_t> Read(std::span<char> buffer, boost::system::error_code& ec) override {
    for (;;) {
      if (const size_t n = ReadWritten(buffer)) co_return n;
      if (closed_ || Ended()) {
        ec = asio::error::eof;
        co_return 0;
      }
      wake_->expires_at(asio::steady_timer::time_point::max());
      boost::system::error_code cancelled;
      co_await wake_->async_wait(asio::redirect_error(asio::use_awaitable, cancelled));
    }
  }

  size_t ReadWritten(std::span<char> buffer) override {
    if (closed_) return 0;
    std::lock_guard lock(output_->mutex);
    const size_t n = std::min(buffer.size(), output_->bytes.size());
    std::copy_n(output_->bytes.begin(), n, buffer.begin());
    output_->bytes.erase(0, n);
    return n;
  }

  void Close() override {
    closed_ = true;
    wake_->cancel();
  }

 private:
  bool Ended() {
    std::lock_guard lock(output_->mutex);
    return output_->ended;
  }

  std::shared_ptr<FakeOutput> output_;
  std::shared_ptr<asio::steady_timer> wake_;
  bool closed_ = false;
};

// The peak the runtime last reported; unknown once the sandbox is gone, like a removed cgroup.
struct FakeMemory {
  std::atomic<uint64_t> peak{0};
  std::atomic<bool> gone{false};
};

class FakeMemoryMeter final : public sandbox::MemoryMeter {
 public:
  explicit FakeMemoryMeter(std::shared_ptr<FakeMemory> memory) : memory_(std::move(memory)) {}
  std::optional<uint64_t> Peak() override {
    if (memory_->gone) return std::nullopt;
    return memory_->peak.load();
  }

 private:
  std::shared_ptr<FakeMemory> memory_;
};

// A backend whose "sandboxes" are threads speaking the Runtime API over a socket pair (the
// transport's channel), with output and memory peak in memory: the scheduler and its instances
// are tested without namespaces or root. The runtime's behaviour comes from the spawn spec's
// env (FAKE_MODE; FAKE_MEMORY_PEAK gives the instance a memory meter) and from each event
// ("peak_bytes" sets what the meter reads).
class FakeBackend final : public sandbox::Backend {
 public:
  explicit FakeBackend(asio::io_context& io) : io_(io) {}
  ~FakeBackend() override { KillAll(); }

  void Spawn(const sandbox::SpawnSpec& spec, SpawnCallback done) override {
    ++spawned;
    int pair[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair);
    std::string mode = "echo";
    bool memory_peak = false;
    int concurrency = 1;
    for (const auto& e : spec.env) {
      if (e.starts_with("FAKE_MODE=")) mode = e.substr(10);
      if (e == "FAKE_MEMORY_PEAK=1") memory_peak = true;
      if (e.starts_with("AWS_LAMBDA_MAX_CONCURRENCY=")) concurrency = std::stoi(e.substr(27));
    }
    auto runtime = std::make_shared<Runtime>();
    runtime->id = spec.instance_id;
    runtime->fd = pair[1];
    runtime->concurrency = concurrency;
    sandbox::InstanceHandle instance;
    instance.id = spec.instance_id;
    instance.pid = 1000 + spawned;
    // A runtime serving several calls at once connects once more per call it serves beside
    // the channel's, as the Python shim's processes do: over a loopback listener here.
    UniqueFd listener;
    if (concurrency > 1) {
      listener = UniqueFd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      socklen_t len = sizeof addr;
      bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), len);
      listen(listener.get(), 64);
      getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len);
      runtime->port = ntohs(addr.sin_port);
    }
    instance.runtime_api =
        std::make_unique<runtime_api::SocketTransport>(io_, std::move(listener), UniqueFd(pair[0]));
    auto logs = std::make_unique<FakeLogStream>(io_, runtime->output);
    runtime->wake_logs = logs->waker();
    instance.logs = std::move(logs);
    if (memory_peak) instance.memory = std::make_unique<FakeMemoryMeter>(runtime->memory);
    {
      std::lock_guard lock(mutex_);
      runtimes_[spec.instance_id] = runtime;
    }
    runtime->thread = std::thread([this, runtime, mode, memory_peak] {
      const int code = RunRuntime(*runtime, mode);
      Write(*runtime, "", /*end=*/true);
      sandbox::ExitStatus status;
      status.instance_id = runtime->id;
      status.exit_code = runtime->killed ? -1 : code;
      status.signal = runtime->killed ? 9 : 0;
      // As the launcher does: the peak as the sandbox ended, read just before the group goes,
      // after which the meter reads nothing.
      if (memory_peak) status.memory_peak_bytes = runtime->memory->peak.load();
      runtime->memory->gone = true;
      asio::post(io_, [this, status] {
        if (on_exit_) on_exit_(status);
      });
    });
    asio::post(io_, [done = std::move(done),
                     i = std::make_shared<sandbox::InstanceHandle>(std::move(instance))]() mutable {
      done(std::move(*i));
    });
  }

  void Specialize(const std::string& instance_id, const std::string& code_dir,
                  SpecializeCallback done) override {
    specialized.emplace_back(instance_id, code_dir);
    asio::post(io_, [done = std::move(done), fail = fail_specialize] {
      if (fail) return done(MakeError(ErrorCode::kInternal, "no room on the stage"));
      done({});
    });
  }

  void Prioritize(const std::string& instance_id) override { prioritized.push_back(instance_id); }

  void Kill(const std::string& id) override {
    std::lock_guard lock(mutex_);
    auto it = runtimes_.find(id);
    if (it == runtimes_.end()) return;
    it->second->killed = true;
    it->second->ShutdownAll();
  }

  void SetExitCallback(ExitCallback on_exit) override { on_exit_ = std::move(on_exit); }

  void KillAll() override {
    std::map<std::string, std::shared_ptr<Runtime>> all;
    {
      std::lock_guard lock(mutex_);
      all = runtimes_;
    }
    for (auto& [id, r] : all) Kill(id);
    for (auto& [id, r] : all) {
      if (r->thread.joinable()) r->thread.join();
    }
  }

  std::string ResourceLimits() const override { return "none"; }

  std::atomic<int> spawned{0};
  // Calls the runtimes are working on now, and the most at once so far.
  std::atomic<int> calls_running{0};
  std::atomic<int> max_calls_running{0};
  std::vector<std::pair<std::string, std::string>> specialized;  // instance id, code dir
  std::vector<std::string> prioritized;
  bool fail_specialize = false;

 private:
  struct Runtime {
    std::string id;
    std::atomic<int> fd{-1};  // the runtime's end of the channel; -1 once its thread closed it
    std::atomic<bool> killed{false};
    std::shared_ptr<FakeOutput> output = std::make_shared<FakeOutput>();
    std::weak_ptr<asio::steady_timer> wake_logs;
    std::shared_ptr<FakeMemory> memory = std::make_shared<FakeMemory>();
    std::thread thread;
    int concurrency = 1;
    uint16_t port = 0;  // the loopback listener's, with concurrency > 1
    std::mutex workers_mutex;
    std::vector<int> worker_fds;  // open connections of its workers
    // Ends every connection: the runtime's threads see their ends and return.
    void ShutdownAll() {
      if (fd >= 0) shutdown(fd, SHUT_RDWR);
      std::lock_guard lock(workers_mutex);
      for (int worker : worker_fds) shutdown(worker, SHUT_RDWR);
    }
  };

  // From the runtime's thread: output for the instance (`end`: there will be no more).
  void Write(Runtime& runtime, const std::string& bytes, bool end) {
    {
      std::lock_guard lock(runtime.output->mutex);
      runtime.output->bytes += bytes;
      runtime.output->ended = runtime.output->ended || end;
    }
    asio::post(io_, [wake = runtime.wake_logs] {
      if (auto timer = wake.lock()) timer->cancel();
    });
  }

  static bool SendAll(int fd, const std::string& s) {
    return send(fd, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
  }
  // Reads one HTTP response; returns false when the connection ended.
  static bool ReadResponse(int fd, std::string& buffer, std::string& head, std::string& body) {
    char chunk[4096];
    for (;;) {
      const auto end = buffer.find("\r\n\r\n");
      if (end != std::string::npos) {
        const auto cl = buffer.find("Content-Length: ");
        const size_t length =
            cl == std::string::npos || cl > end ? 0 : std::stoul(buffer.substr(cl + 16));
        if (buffer.size() >= end + 4 + length) {
          head = buffer.substr(0, end);
          body = buffer.substr(end + 4, length);
          buffer.erase(0, end + 4 + length);
          return true;
        }
      }
      const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) return false;
      buffer.append(chunk, static_cast<size_t>(n));
    }
  }
  static std::string Post(const std::string& path, const std::string& body) {
    return "POST " + path +
           " HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
           body;
  }

  // Returns the runtime's exit code.
  int RunRuntime(Runtime& runtime, const std::string& mode) {
    const int fd = runtime.fd;
    if (runtime.killed) {
      runtime.fd = -1;
      close(fd);
      return 1;
    }
    std::string buffer, head, body;
    int code = 0;
    // A runtime slow to load: its first GET /next comes late.
    if (mode == "slow_start") std::this_thread::sleep_for(std::chrono::milliseconds(300));
    if (mode == "init_error") {
      SendAll(fd, Post("/2018-06-01/runtime/init/error",
                       R"({"errorType":"Runtime.ImportModuleError","errorMessage":"no module"})"));
      ReadResponse(fd, buffer, head, body);
      code = 1;
    } else if (runtime.concurrency > 1) {
      // Workers, each serving one call at a time over a connection of its own (the first over
      // the channel); one that crashes takes the whole runtime down, as a process would.
      std::atomic<int> exit_code{0};
      std::vector<std::thread> workers;
      for (int w = 0; w < runtime.concurrency; ++w) {
        int worker_fd = fd;
        if (w > 0) {
          worker_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
          sockaddr_in addr{};
          addr.sin_family = AF_INET;
          addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
          addr.sin_port = htons(runtime.port);
          connect(worker_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
          std::lock_guard lock(runtime.workers_mutex);
          runtime.worker_fds.push_back(worker_fd);
        }
        workers.emplace_back([&, worker_fd] {
          if (ServeCalls(runtime, worker_fd, /*tag=*/true) != 0) {
            exit_code = 1;
            runtime.ShutdownAll();
          }
        });
      }
      for (auto& worker : workers) worker.join();
      std::lock_guard lock(runtime.workers_mutex);
      for (int worker : runtime.worker_fds) close(worker);
      runtime.worker_fds.clear();
      code = exit_code;
    } else {
      code = ServeCalls(runtime, fd, /*tag=*/false);
    }
    runtime.fd = -1;
    close(fd);
    return code;
  }

  // Serves calls one at a time over `fd` until it ends; returns 1 after a crash. `tag`: log
  // lines start with the request id, as the shims tag them when serving several at once.
  int ServeCalls(Runtime& runtime, int fd, bool tag) {
    std::string buffer, head, body;
    int code = 0;
    {
      while (SendAll(fd, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n") &&
             ReadResponse(fd, buffer, head, body)) {
        // A specialisation: the code is in place; ask for work as the new function.
        if (head.find("Lambda-Runtime-Wisp-Specialize: 1") != std::string::npos) continue;
        const auto id_at = head.find("Lambda-Runtime-Aws-Request-Id: ");
        const std::string id = head.substr(id_at + 31, head.find("\r\n", id_at) - id_at - 31);
        const auto peak_at = body.find("\"peak_bytes\":");
        if (peak_at != std::string::npos) {
          runtime.memory->peak = std::stoull(body.substr(peak_at + 13));
        }
        if (body.find("\"crash\"") != std::string::npos) {
          code = 1;
          break;
        }
        const int active = ++calls_running;
        for (int seen = max_calls_running; active > seen;) {
          if (max_calls_running.compare_exchange_weak(seen, active)) break;
        }
        const auto sleep_at = body.find("\"sleep_ms\":");
        if (sleep_at != std::string::npos) {
          std::this_thread::sleep_for(
              std::chrono::milliseconds(std::stoi(body.substr(sleep_at + 11))));
        }
        --calls_running;
        Write(runtime, (tag ? "\x1f" + id + "\x1f" : "") + "log for " + id + "\n",
              /*end=*/false);
        if (!SendAll(fd, Post("/2018-06-01/runtime/invocation/" + id + "/response", body)) ||
            !ReadResponse(fd, buffer, head, body)) {
          break;
        }
      }
    }
    return code;
  }

  asio::io_context& io_;
  ExitCallback on_exit_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Runtime>> runtimes_;
};

class SchedulerTest : public testing::Test {
 protected:
  SchedulerTest() : backend_(io_) {
    options_.init_timeout = std::chrono::seconds(5);
    options_.queue_wait = std::chrono::milliseconds(100);
  }

  std::shared_ptr<const Deployment> MakeDeployment(int version = 1, uint32_t max_instances = 10,
                                                   std::string mode = "echo",
                                                   std::string function_id = "f") {
    auto d = std::make_shared<Deployment>();
    d->function_id = function_id;
    d->function_name = function_id;
    d->version = version;
    d->max_instances = max_instances;
    d->spawn.env = {"FAKE_MODE=" + mode};
    return d;
  }

  // A deployment whose instances serve `per_instance` calls at once.
  std::shared_ptr<const Deployment> MakeConcurrentDeployment(uint32_t per_instance,
                                                             uint32_t max_instances = 10,
                                                             std::string function_id = "f") {
    auto d = std::make_shared<Deployment>(*MakeDeployment(1, max_instances, "echo", function_id));
    d->instance_concurrency = per_instance;
    d->spawn.env.push_back("AWS_LAMBDA_MAX_CONCURRENCY=" + std::to_string(per_instance));
    return d;
  }

  // Runs `events` as concurrent calls of `d`; the results in the order of `events`.
  asio::awaitable<std::vector<Result<InvocationResult>>> InvokeAll(
      Scheduler& s, std::shared_ptr<const Deployment> d, std::vector<InvokeRequest> requests) {
    std::vector<Result<InvocationResult>> results(
        requests.size(), tl::unexpected(Error{ErrorCode::kInternal, "not run"}));
    size_t done = 0;
    Event all_done(co_await asio::this_coro::executor);
    for (size_t i = 0; i < requests.size(); ++i) {
      auto call = [&, i]() -> asio::awaitable<void> {
        results[i] = co_await s.Invoke(d, std::move(requests[i]));
        if (++done == requests.size()) all_done.Set();
      };
      asio::co_spawn(co_await asio::this_coro::executor, std::move(call), asio::detached);
    }
    co_await all_done.Wait();
    co_return results;
  }

  InvokeRequest Request(std::string event, int timeout_ms = 2000) {
    InvokeRequest r;
    r.request_id = "req-" + std::to_string(++requests_);
    r.event_json = std::make_shared<std::string>(std::move(event));
    r.timeout = std::chrono::milliseconds(timeout_ms);
    return r;
  }

  // Runs `body` as a coroutine on the io_context until it finishes, then shuts down.
  void Run(std::function<asio::awaitable<void>(Scheduler&)> body) {
    Scheduler scheduler(io_, backend_, clock_, options_);
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          co_await body(scheduler);
          scheduler.Shutdown();
          io_.stop();
        },
        asio::detached);
    io_.run();
  }

  asio::io_context io_;
  FakeBackend backend_;
  SystemClock clock_;
  SchedulerOptions options_;
  int requests_ = 0;
};

TEST_F(SchedulerTest, WarmInstanceIsReusedAndLogsAreCollected) {
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    auto d = MakeDeployment();
    auto warmed = co_await s.Warm(d);
    EXPECT_TRUE(warmed);
    auto first = co_await s.Invoke(d, Request(R"({"n":1})"));
    auto second = co_await s.Invoke(d, Request(R"({"n":2})"));
    EXPECT_TRUE(first && second);
    if (!first || !second) co_return;
    EXPECT_EQ(first->status, InvocationStatus::kSuccess);
    EXPECT_EQ(first->response_json, R"({"n":1})");
    EXPECT_EQ(second->response_json, R"({"n":2})");
    EXPECT_EQ(first->instance_id, second->instance_id);
    EXPECT_FALSE(first->cold_start);
    EXPECT_EQ(second->logs, std::vector<std::string>{"log for req-2"});
  });
  EXPECT_EQ(backend_.spawned, 1);
}

TEST_F(SchedulerTest, InstancesAreDescribedAndTheirChangesPublished) {
  metrics::EventBus bus(clock_);
  std::vector<std::string> seen;  // "type instances" of this function's events
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    s.SetEventBus(&bus);
    auto record = [&seen](const metrics::StateEvent& e, const auto&) {
      seen.push_back(e.type + (e.instances ? " " + std::to_string(*e.instances) : ""));
    };
    bus.Subscribe(record);
    auto d = MakeDeployment();
    auto warmed = co_await s.Warm(d);
    EXPECT_TRUE(warmed);
    const auto before = s.Instances("f");
    EXPECT_EQ(before.size(), 1u);
    if (before.size() != 1) co_return;
    EXPECT_FALSE(before[0].last_call_at_ms.has_value());
    auto called = co_await s.Invoke(d, Request("{}"));
    EXPECT_TRUE(called);
    const auto info = s.FindInstance(before[0].id);
    EXPECT_TRUE(info.has_value());
    if (!info) co_return;
    EXPECT_EQ(info->function_id, "f");
    EXPECT_EQ(info->state, "idle");
    EXPECT_EQ(info->invocations, 1u);
    EXPECT_TRUE(info->last_call_at_ms.has_value());
    EXPECT_EQ(s.AllInstances().size(), 1u);
    s.RetireFunction("f");
    asio::steady_timer pause(io_);
    for (int i = 0; i < 500 && s.instance_count() > 0; ++i) {
      pause.expires_after(std::chrono::milliseconds(10));
      co_await pause.async_wait(asio::use_awaitable);
    }
    EXPECT_FALSE(s.FindInstance(before[0].id).has_value());
  });
  EXPECT_EQ(seen,
            (std::vector<std::string>{"instance.started", "function.scaled 1", "instance.ready",
                                      "instance.stopped", "function.scaled 0"}));
}

TEST_F(SchedulerTest, ConcurrentCallsGetTheirOwnInstances) {
  std::set<std::string> instances;
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    auto d = MakeDeployment();
    int done = 0;
    Event all_done(co_await asio::this_coro::executor);
    for (int i = 0; i < 3; ++i) {
      asio::co_spawn(
          co_await asio::this_coro::executor,
          [&, i]() -> asio::awaitable<void> {
            auto r = co_await s.Invoke(d, Request(R"({"sleep_ms":200})"));
            EXPECT_TRUE(r && r->status == InvocationStatus::kSuccess) << i;
            if (r) instances.insert(r->instance_id);
            if (++done == 3) all_done.Set();
          },
          asio::detached);
    }
    co_await all_done.Wait();
  });
  EXPECT_EQ(instances.size(), 3u);
}

TEST_F(SchedulerTest, AnInstanceFillsUpToItsConcurrencyBeforeAnotherStarts) {
  std::map<std::string, int> calls_per_instance;
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    auto d = MakeConcurrentDeployment(4);
    std::vector<InvokeRequest> requests;
    for (int i = 0; i < 8; ++i) requests.push_back(Request(R"({"sleep_ms":200})"));
    const auto results = co_await InvokeAll(s, d, std::move(requests));
    for (size_t i = 0; i < results.size(); ++i) {
      EXPECT_TRUE(results[i] && results[i]->status == InvocationStatus::kSuccess) << i;
      if (!results[i]) continue;
      ++calls_per_instance[results[i]->instance_id];
      // Each call's own log line, and no other's: the runtime tags its lines.
      EXPECT_EQ(results[i]->logs, std::vector<std::string>{"log for req-" + std::to_string(i + 1)});
    }
  });
  EXPECT_EQ(backend_.spawned, 2);
  EXPECT_EQ(calls_per_instance.size(), 2u);
  for (const auto& [instance, calls] : calls_per_instance) EXPECT_EQ(calls, 4) << instance;
  EXPECT_EQ(backend_.max_calls_running, 8);
}

TEST_F(SchedulerTest, MaxConcurrencyBoundsTheCallsInFlightNotTheInstances) {
  options_.queue_wait = std::chrono::seconds(5);
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    auto d = MakeConcurrentDeployment(4, /*max_instances=*/6);
    std::vector<InvokeRequest> requests;
    for (int i = 0; i < 10; ++i) requests.push_back(Request(R"({"sleep_ms":150})"));
    const auto results = co_await InvokeAll(s, d, std::move(requests));
    for (size_t i = 0; i < results.size(); ++i) {
      EXPECT_TRUE(results[i] && results[i]->status == InvocationStatus::kSuccess) << i;
    }
  });
  EXPECT_EQ(backend_.spawned, 2);
  EXPECT_EQ(backend_.max_calls_running, 6);
}

// A call that times out is answered at once; its neighbours run to their own end; the instance
// takes no new call meanwhile and retires after them.
TEST_F(SchedulerTest, ATimeoutDrainsTheInstanceWithoutFailingItsNeighbours) {
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    auto d = MakeConcurrentDeployment(4);
    EXPECT_TRUE(co_await s.Warm(d));
    std::vector<InvokeRequest> requests;
    requests.push_back(Request(R"({"sleep_ms":1500})", /*timeout_ms=*/100));
    requests.push_back(Request(R"({"sleep_ms":400})"));
    std::vector<Result<InvocationResult>> first;
    Event first_done(co_await asio::this_coro::executor);
    auto run_first = [&]() -> asio::awaitable<void> {
      first = co_await InvokeAll(s, d, std::move(requests));
      first_done.Set();
    };
    asio::co_spawn(co_await asio::this_coro::executor, std::move(run_first), asio::detached);
    asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(200));
    co_await pause.async_wait(asio::use_awaitable);
    // The slow call has timed out by now: this one goes elsewhere.
    auto during = co_await s.Invoke(d, Request("{}"));
    co_await first_done.Wait();
    EXPECT_TRUE(first.size() == 2 && first[0] && first[1] && during);
    if (first.size() != 2 || !first[0] || !first[1] || !during) co_return;
    EXPECT_EQ(first[0]->status, InvocationStatus::kTimeout);
    EXPECT_EQ(first[1]->status, InvocationStatus::kSuccess);
    EXPECT_EQ(first[0]->instance_id, first[1]->instance_id);
    EXPECT_EQ(during->status, InvocationStatus::kSuccess);
    EXPECT_NE(during->instance_id, first[0]->instance_id);
    for (int i = 0; i < 200 && s.FindInstance(first[0]->instance_id); ++i) {
      pause.expires_after(std::chrono::milliseconds(10));
      co_await pause.async_wait(asio::use_awaitable);
    }
    EXPECT_FALSE(s.FindInstance(first[0]->instance_id)) << "retired after its last call";
  });
}

TEST_F(SchedulerTest, ACrashFailsEveryCallOnItsInstanceAndOnlyThose) {
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    auto d = MakeConcurrentDeployment(2);
    auto other = MakeConcurrentDeployment(2, 10, "g");
    EXPECT_TRUE(co_await s.Warm(d));
    EXPECT_TRUE(co_await s.Warm(other));
    std::optional<Result<InvocationResult>> neighbour;
    auto run_neighbour = [&]() -> asio::awaitable<void> {
      neighbour = co_await s.Invoke(other, Request(R"({"sleep_ms":400})"));
    };
    asio::co_spawn(co_await asio::this_coro::executor, std::move(run_neighbour), asio::detached);
    std::vector<InvokeRequest> requests;
    requests.push_back(Request(R"({"sleep_ms":300})"));
    requests.push_back(Request(R"({"crash":true,"sleep_ms":100})"));
    const auto results = co_await InvokeAll(s, d, std::move(requests));
    asio::steady_timer pause(co_await asio::this_coro::executor);
    for (int i = 0; i < 200 && !neighbour; ++i) {
      pause.expires_after(std::chrono::milliseconds(10));
      co_await pause.async_wait(asio::use_awaitable);
    }
    for (const auto& result : results) {
      EXPECT_TRUE(result && result->status == InvocationStatus::kError);
      if (result) {
        EXPECT_NE(result->response_json.find("runtime exited with code 1 while 2 calls were in "
                                             "flight on its instance"),
                  std::string::npos)
            << result->response_json;
      }
    }
    EXPECT_TRUE(neighbour && *neighbour && (*neighbour)->status == InvocationStatus::kSuccess);
  });
}

TEST_F(SchedulerTest, BeyondTheLimitCallsWaitThenAreRefused) {
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    auto d = MakeDeployment(1, /*max_instances=*/1);
    EXPECT_TRUE(co_await s.Warm(d));
    Event first_done(co_await asio::this_coro::executor);
    asio::co_spawn(
        co_await asio::this_coro::executor,
        [&]() -> asio::awaitable<void> {
          auto r = co_await s.Invoke(d, Request(R"({"sleep_ms":400})"));
          EXPECT_TRUE(r && r->status == InvocationStatus::kSuccess);
          first_done.Set();
        },
        asio::detached);
    // Let the first call take the only instance.
    asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(50));
    co_await pause.async_wait(asio::use_awaitable);
    auto refused = co_await s.Invoke(d, Request("{}"));
    EXPECT_FALSE(refused);
    if (!refused) {
      EXPECT_EQ(refused.error().code, ErrorCode::kResourceExhausted);
    }
    co_await first_done.Wait();
  });
}

TEST_F(SchedulerTest, TimeoutKillsTheInstanceAndTheNextCallGetsAFreshOne) {
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    auto d = MakeDeployment();
    auto slow = co_await s.Invoke(d, Request(R"({"sleep_ms":1000})", /*timeout_ms=*/100));
    EXPECT_TRUE(slow);
    if (!slow) co_return;
    EXPECT_EQ(slow->status, InvocationStatus::kTimeout);
    EXPECT_NE(slow->response_json.find("Task timed out after 0.10 seconds"), std::string::npos);
    auto next = co_await s.Invoke(d, Request(R"({"ok":1})"));
    EXPECT_TRUE(next && next->status == InvocationStatus::kSuccess);
    if (next) {
      EXPECT_NE(next->instance_id, slow->instance_id);
    }
  });
}

TEST_F(SchedulerTest, CrashFailsTheCallWithTheExitCode) {
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    auto d = MakeDeployment();
    auto crashed = co_await s.Invoke(d, Request(R"({"crash":true})"));
    EXPECT_TRUE(crashed);
    if (!crashed) co_return;
    EXPECT_EQ(crashed->status, InvocationStatus::kError);
    EXPECT_NE(crashed->response_json.find("runtime exited with code 1"), std::string::npos);
    auto next = co_await s.Invoke(d, Request(R"({"ok":1})"));
    EXPECT_TRUE(next && next->status == InvocationStatus::kSuccess);
  });
}

// The fd budget is a cap like the others: a deploy waits for room under it, and is refused
// with an error that says why when none comes in time; it never spawns past it.
TEST_F(SchedulerTest, NoInstanceBeyondTheFdBudgetEvenForADeploy) {
  options_.max_instances_by_fds = 1;
  options_.deploy_queue_wait = std::chrono::milliseconds(100);
  options_.maintenance_period = std::chrono::milliseconds(20);
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    auto d = MakeDeployment();
    EXPECT_TRUE(co_await s.Warm(d));
    // The one instance is busy, so none can be evicted to make room.
    Event call_done(co_await asio::this_coro::executor);
    asio::co_spawn(
        co_await asio::this_coro::executor,
        [&]() -> asio::awaitable<void> {
          auto r = co_await s.Invoke(d, Request(R"({"sleep_ms":600})"));
          EXPECT_TRUE(r && r->status == InvocationStatus::kSuccess);
          call_done.Set();
        },
        asio::detached);
    asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(50));
    co_await pause.async_wait(asio::use_awaitable);
    auto refused = co_await s.Warm(MakeDeployment(2));
    EXPECT_FALSE(refused);
    if (!refused) {
      EXPECT_NE(refused.error().message.find("open-files limit"), std::string::npos)
          << refused.error().message;
    }
    EXPECT_EQ(s.instance_count(), 1u);
    co_await call_done.Wait();
  });
  EXPECT_EQ(backend_.spawned, 1);
}

TEST_F(SchedulerTest, InitErrorFailsWarmWithTheRuntimesMessage) {
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    auto warmed = co_await s.Warm(MakeDeployment(1, 10, "init_error"));
    EXPECT_FALSE(warmed);
    if (!warmed) {
      EXPECT_EQ(warmed.error().error_type, "Runtime.ImportModuleError");
      EXPECT_EQ(warmed.error().message, "no module");
    }
    EXPECT_EQ(s.instance_count(), 0u);
  });
}

TEST_F(SchedulerTest, MemoryUsedIsTheInstancesPeakInMiBRoundedUp) {
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    auto d = std::make_shared<Deployment>(*MakeDeployment());
    d->spawn.env.push_back("FAKE_MEMORY_PEAK=1");
    auto first = co_await s.Invoke(d, Request(R"({"peak_bytes":12345678})"));
    // Read afresh at the end of every call, not once per instance.
    auto second = co_await s.Invoke(d, Request(R"({"peak_bytes":33554432})"));
    EXPECT_TRUE(first && second);
    if (!first || !second) co_return;
    EXPECT_EQ(first->instance_id, second->instance_id);
    EXPECT_EQ(first->memory_used_mb, 12);
    EXPECT_EQ(second->memory_used_mb, 32);
  });
}

TEST_F(SchedulerTest, MemoryUsedIsKnownForCallsThatEndTheInstance) {
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    auto d = std::make_shared<Deployment>(*MakeDeployment());
    d->spawn.env.push_back("FAKE_MEMORY_PEAK=1");
    // Read before the kill.
    auto slow = co_await s.Invoke(
        d, Request(R"({"peak_bytes":5242880,"sleep_ms":1000})", /*timeout_ms=*/100));
    // Reported with the exit, since the sandbox is gone by then.
    auto crashed = co_await s.Invoke(d, Request(R"({"peak_bytes":7340033,"crash":true})"));
    EXPECT_TRUE(slow && crashed);
    if (!slow || !crashed) co_return;
    EXPECT_EQ(slow->status, InvocationStatus::kTimeout);
    EXPECT_EQ(slow->memory_used_mb, 5);
    EXPECT_EQ(crashed->status, InvocationStatus::kError);
    EXPECT_EQ(crashed->memory_used_mb, 8);
  });
}

TEST_F(SchedulerTest, MemoryUsedIsUnknownWithoutAPeakFile) {
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    auto d = MakeDeployment();
    auto result = co_await s.Invoke(d, Request(R"({"peak_bytes":12345678})"));
    EXPECT_TRUE(result && result->status == InvocationStatus::kSuccess);
    if (result) {
      EXPECT_EQ(result->memory_used_mb, std::nullopt);
    }
  });
}

TEST_F(SchedulerTest, RetireDropsOlderVersionsOnly) {
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    EXPECT_TRUE(co_await s.Warm(MakeDeployment(1)));
    EXPECT_TRUE(co_await s.Warm(MakeDeployment(2)));
    s.Publish(MakeDeployment(2));
    // Give the fake runtime of version 1 time to end and report it.
    asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(100));
    co_await pause.async_wait(asio::use_awaitable);
    auto left = s.Instances("f");
    EXPECT_EQ(left.size(), 1u);
    if (!left.empty()) {
      EXPECT_EQ(left[0].version, 2);
    }
  });
}

TEST_F(SchedulerTest, PublishedVersionsRunInPoolsOfTheirOwn) {
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    const auto version_of = [this](int number) {
      auto d = std::make_shared<Deployment>(*MakeDeployment(number));
      d->pool = "f#" + std::to_string(number);
      d->executed_version = std::to_string(number);
      return std::shared_ptr<const Deployment>(std::move(d));
    };
    const auto executor = co_await asio::this_coro::executor;
    auto latest = MakeDeployment(5);
    auto one = version_of(1);
    auto two = version_of(2);
    for (const auto& d : {latest, one, two}) {
      EXPECT_TRUE(co_await s.Warm(d));
      s.Publish(d);
    }
    const auto settle = [](asio::any_io_executor executor) -> asio::awaitable<void> {
      asio::steady_timer pause(executor, std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::use_awaitable);
    };
    // $LATEST at version 5 retires nothing of versions 1 and 2: they are pools of their own.
    co_await settle(executor);
    EXPECT_EQ(s.Instances("f").size(), 1u);
    EXPECT_EQ(s.Instances("f#1").size(), 1u);
    auto ran = co_await s.Invoke(one, Request("{}"));
    EXPECT_TRUE(ran);
    if (ran) {
      EXPECT_EQ(ran->version, 1);
    }
    // A deleted version ends its pool only; a deleted function ends them all.
    s.RetirePool("f#1");
    co_await settle(executor);
    EXPECT_EQ(s.Instances("f#1").size(), 0u);
    EXPECT_EQ(s.Instances("f#2").size(), 1u);
    EXPECT_EQ(s.Instances("f").size(), 1u);
    s.RetireFunction("f");
    co_await settle(executor);
    EXPECT_EQ(s.Instances("f").size() + s.Instances("f#2").size(), 0u);
  });
}

// Instances the scheduler counts against the node's caps (retiring ones are being killed).
size_t LiveInstances(const Scheduler& s, const std::vector<std::string>& function_ids) {
  size_t live = 0;
  for (const auto& id : function_ids) {
    for (const auto& info : s.Instances(id)) live += info.state != "retiring";
  }
  return live;
}

TEST_F(SchedulerTest, DeploysBeyondTheNodesCapWaitForRoomAndNeverExceedIt) {
  options_.max_instances_total = 2;
  size_t most_live = 0;
  int warmed = 0;
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    auto executor = co_await asio::this_coro::executor;
    std::vector<std::string> ids;
    for (int i = 0; i < 6; ++i) ids.push_back("f" + std::to_string(i));
    Event all_done(executor);
    int done = 0;
    for (const auto& id : ids) {
      asio::co_spawn(
          executor,
          [&, id]() -> asio::awaitable<void> {
            auto result = co_await s.Warm(MakeDeployment(1, 10, "echo", id));
            EXPECT_TRUE(result) << id << ": " << (result ? "" : result.error().message);
            if (result) ++warmed;
            if (++done == 6) all_done.Set();
          },
          asio::detached);
    }
    // Sample the scheduler's view while the deploys run: every spawn is admitted on the io
    // thread, so a sample between any two steps sees the cap held.
    while (!all_done.is_set()) {
      most_live = std::max(most_live, LiveInstances(s, ids));
      asio::steady_timer tick(executor, std::chrono::milliseconds(1));
      co_await tick.async_wait(asio::use_awaitable);
    }
  });
  EXPECT_EQ(warmed, 6);
  EXPECT_LE(most_live, 2u);
  EXPECT_GE(backend_.spawned, 6);
}

TEST_F(SchedulerTest, ACallWaitingForRoomIsRefusedAfterTheQueueWait) {
  options_.max_instances_total = 1;
  options_.maintenance_period = std::chrono::milliseconds(20);
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    auto executor = co_await asio::this_coro::executor;
    auto busy = MakeDeployment(1, 10, "echo", "busy");
    Event busy_done(executor);
    asio::co_spawn(
        executor,
        [&]() -> asio::awaitable<void> {
          auto r = co_await s.Invoke(busy, Request(R"({"sleep_ms":600})"));
          EXPECT_TRUE(r && r->status == InvocationStatus::kSuccess);
          busy_done.Set();
        },
        asio::detached);
    asio::steady_timer pause(executor, std::chrono::milliseconds(100));
    co_await pause.async_wait(asio::use_awaitable);
    // The only instance the node allows is busy: nothing can be evicted for this call.
    auto refused = co_await s.Invoke(MakeDeployment(1, 10, "echo", "other"), Request("{}"));
    EXPECT_FALSE(refused);
    if (!refused) {
      EXPECT_EQ(refused.error().code, ErrorCode::kResourceExhausted);
      EXPECT_NE(refused.error().message.find("capacity (1 of 1 instances"), std::string::npos)
          << refused.error().message;
    }
    co_await busy_done.Wait();
    // Room again: the next call gets an instance.
    auto served = co_await s.Invoke(MakeDeployment(1, 10, "echo", "other"), Request("{}"));
    EXPECT_TRUE(served && served->status == InvocationStatus::kSuccess);
  });
}

TEST_F(SchedulerTest, ADeletedFunctionStartsNothing) {
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    auto d = std::make_shared<Deployment>(*MakeDeployment());
    d->lifetime = std::make_shared<FunctionLifetime>();
    EXPECT_TRUE(co_await s.Warm(d));
    // A call still holding the deployment after the delete, as one in flight would.
    d->lifetime->deleted = true;
    s.RetireFunction(d->function_id);
    auto refused = co_await s.Invoke(d, Request("{}"));
    EXPECT_FALSE(refused);
    if (!refused) {
      EXPECT_EQ(refused.error().code, ErrorCode::kNotFound);
    }
    auto warm_refused = co_await s.Warm(d);
    EXPECT_FALSE(warm_refused);
    asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(100));
    co_await pause.async_wait(asio::use_awaitable);
    EXPECT_EQ(s.Instances(d->function_id).size(), 0u);
  });
  EXPECT_EQ(backend_.spawned, 1);
}

std::shared_ptr<const Deployment> GenericDeployment() {
  auto generic = std::make_shared<Deployment>();
  generic->function_id = "prewarm/fake";
  generic->function_name = "prewarmed fake";
  generic->prewarmed = true;
  generic->max_instances = 1;
  generic->spawn.env = {"FAKE_MODE=echo"};
  generic->spawn.prewarmed = true;
  return generic;
}

// A cold start takes the prewarmed instance: the backend puts the function's code in place,
// then the runtime is told which function it is, and serves the call.
TEST_F(SchedulerTest, AColdStartSpecialisesAPrewarmedInstance) {
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    s.ConfigurePrewarm({PrewarmPool{GenericDeployment(), 1}});
    while (s.PrewarmedIdle()["prewarm/fake"] < 1) {
      asio::steady_timer tick(co_await asio::this_coro::executor, std::chrono::milliseconds(5));
      co_await tick.async_wait(asio::use_awaitable);
    }
    auto d = std::make_shared<Deployment>(*MakeDeployment());
    d->spawn.code_dir = "/code/of/f/v1";
    auto result = co_await s.Invoke(d, Request(R"({"n":1})"));
    EXPECT_TRUE(result && result->status == InvocationStatus::kSuccess);
    if (!result) co_return;
    EXPECT_TRUE(result->cold_start);
    EXPECT_EQ(result->response_json, R"({"n":1})");
    EXPECT_EQ(backend_.specialized.size(), 1u);
    if (!backend_.specialized.empty()) {
      EXPECT_EQ(backend_.specialized[0].first, result->instance_id);
      EXPECT_EQ(backend_.specialized[0].second, "/code/of/f/v1");
    }
  });
}

// Code that cannot be put in place is the call's start failure; the instance serves no one.
TEST_F(SchedulerTest, CodeThatCannotBePlacedFailsTheColdStart) {
  backend_.fail_specialize = true;
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    s.ConfigurePrewarm({PrewarmPool{GenericDeployment(), 1}});
    while (s.PrewarmedIdle()["prewarm/fake"] < 1) {
      asio::steady_timer tick(co_await asio::this_coro::executor, std::chrono::milliseconds(5));
      co_await tick.async_wait(asio::use_awaitable);
    }
    auto d = MakeDeployment();
    auto result = co_await s.Invoke(d, Request("{}"));
    EXPECT_TRUE(result);
    if (!result) co_return;
    EXPECT_EQ(result->status, InvocationStatus::kError);
    EXPECT_NE(result->response_json.find("Wisp.SandboxError"), std::string::npos)
        << result->response_json;
    EXPECT_NE(result->response_json.find("no room on the stage"), std::string::npos);
    asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(100));
    co_await pause.async_wait(asio::use_awaitable);
    for (const auto& info : s.Instances("f")) EXPECT_NE(info.state, "idle");
  });
  EXPECT_EQ(backend_.specialized.size(), 1u);
}

// Polls `done` every 5 ms for up to `limit`; whether it came true.
asio::awaitable<bool> WaitUntil(std::function<bool()> done, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) co_return false;
    asio::steady_timer tick(co_await asio::this_coro::executor, std::chrono::milliseconds(5));
    co_await tick.async_wait(asio::use_awaitable);
  }
  co_return true;
}

// An instance that serves K calls at once may hold a connection per call in wispd: against the
// fd budget it counts as the instances of one call each whose fds it may hold.
TEST_F(SchedulerTest, AnInstanceServingManyCallsAtOnceCountsAsSeveralAgainstTheFdBudget) {
  const size_t slots = Scheduler::FdSlots(*MakeConcurrentDeployment(16));
  EXPECT_EQ(slots, (InstanceFdCost(16) + InstanceFdCost(1) - 1) / InstanceFdCost(1));
  EXPECT_GT(slots, 1u);
  EXPECT_EQ(Scheduler::FdSlots(*MakeDeployment()), 1u);
  options_.max_instances_by_fds = 2 * slots + 1;  // room for two of them, not three
  options_.deploy_queue_wait = std::chrono::milliseconds(100);
  options_.maintenance_period = std::chrono::milliseconds(20);  // ends the wait for room
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    // Two functions' instances, each busy with a call: neither can be evicted to make room.
    size_t calls_done = 0;
    Event both_done(co_await asio::this_coro::executor);
    for (const char* function : {"a", "b"}) {
      auto busy = MakeConcurrentDeployment(16, 10, function);
      auto call = [&, busy]() -> asio::awaitable<void> {
        auto r = co_await s.Invoke(busy, Request(R"({"sleep_ms":600})"));
        EXPECT_TRUE(r && r->status == InvocationStatus::kSuccess);
        if (++calls_done == 2) both_done.Set();
      };
      asio::co_spawn(co_await asio::this_coro::executor, std::move(call), asio::detached);
    }
    std::function<bool()> both_busy = [&] { return s.instance_count() == 2; };
    EXPECT_TRUE(co_await WaitUntil(both_busy, std::chrono::seconds(5)));
    auto refused = co_await s.Warm(MakeConcurrentDeployment(16, 10, "c"));
    EXPECT_FALSE(refused);
    if (!refused) {
      EXPECT_NE(refused.error().message.find("open-files limit"), std::string::npos)
          << refused.error().message;
    }
    EXPECT_EQ(s.instance_count(), 2u);
    // An instance of one call at a time fits in what is left.
    EXPECT_TRUE(co_await s.Warm(MakeDeployment(1, 10, "echo", "single")));
    co_await both_done.Wait();
  });
}

// An instance that has ended lets its deployment go at once, and with it the code tree the
// deployment holds; also one that began as a generic instance, whose load deadline is long.
TEST_F(SchedulerTest, AnEndedSpecialisedInstanceLetsItsDeploymentGo) {
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    s.ConfigurePrewarm({PrewarmPool{GenericDeployment(), 1}});
    EXPECT_TRUE(co_await WaitUntil([&] { return s.PrewarmedIdle()["prewarm/fake"] >= 1; },
                                   std::chrono::seconds(5)));
    auto d = std::make_shared<Deployment>(*MakeDeployment());
    std::weak_ptr<const Deployment> held = d;
    auto result = co_await s.Invoke(d, Request("{}"));
    EXPECT_TRUE(result && result->cold_start);
    d.reset();
    s.RetireFunction("f");
    // Well within the init timeout (5 s here), which a deadline's timer must not outlive.
    EXPECT_TRUE(co_await WaitUntil([&] { return held.expired(); }, std::chrono::seconds(3)));
  });
}

// Cold starts of distinct functions raise the pool's target by one each: it refills to that
// many generic instances, then falls back to its configured size once they age out of the
// demand window.
TEST_F(SchedulerTest, APrewarmPoolGrowsWithColdStartsAndShrinksBack) {
  options_.prewarm_demand_window = std::chrono::milliseconds(400);
  options_.maintenance_period = std::chrono::milliseconds(20);
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    s.ConfigurePrewarm({PrewarmPool{GenericDeployment(), 1, 5}});
    // Lambdas are named before they are awaited (g++ 12, see NOTES.md).
    auto idle = [&] { return s.PrewarmedIdle()["prewarm/fake"]; };
    std::function<bool()> one_idle = [&] { return idle() == 1; };
    std::function<bool()> four_idle = [&] { return idle() == 4; };
    EXPECT_TRUE(co_await WaitUntil(one_idle, std::chrono::seconds(5)));
    for (int i = 0; i < 4; ++i) {
      auto d = MakeDeployment(1, 10, "echo", "f" + std::to_string(i));
      auto result = co_await s.Invoke(d, Request("{}"));
      EXPECT_TRUE(result && result->cold_start);
    }
    EXPECT_EQ(s.PrewarmTargets()["prewarm/fake"], 4u);
    EXPECT_TRUE(co_await WaitUntil(four_idle, std::chrono::seconds(5))) << idle();
    EXPECT_TRUE(co_await WaitUntil(one_idle, std::chrono::seconds(5))) << idle();
    EXPECT_EQ(s.PrewarmTargets()["prewarm/fake"], 1u);
  });
}

// One function scaling out asks for one generic instance however many instances it starts: a
// pool grown for its scale-out would load in the background beside its warm calls.
TEST_F(SchedulerTest, AFunctionScalingOutRaisesThePoolTargetOnce) {
  options_.maintenance_period = std::chrono::milliseconds(20);
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    s.ConfigurePrewarm({PrewarmPool{GenericDeployment(), 1, 10}});
    auto d = MakeDeployment(1, 10, "echo", "busy");
    std::vector<InvokeRequest> requests;
    for (int i = 0; i < 4; ++i) requests.push_back(Request(R"({"sleep_ms":300})"));
    auto results = co_await InvokeAll(s, d, std::move(requests));
    // Each call started an instance, but for one that may have waited for a free one.
    size_t cold = 0;
    for (const auto& result : results) cold += result && result->cold_start;
    EXPECT_GE(cold, 3u);
    EXPECT_EQ(s.PrewarmTargets()["prewarm/fake"], 1u);
    auto other = co_await s.Invoke(MakeDeployment(1, 10, "echo", "other"), Request("{}"));
    EXPECT_TRUE(other && other->cold_start);
    EXPECT_EQ(s.PrewarmTargets()["prewarm/fake"], 2u);
  });
}

// Above its configured size a pool takes only spare room: a quarter of the node's caps stays
// for functions, and no idle instance is evicted for it.
TEST_F(SchedulerTest, APrewarmPoolGrowsOnlyIntoSpareRoom) {
  options_.max_instances_total = 8;  // spare room: 6 instances in all
  options_.maintenance_period = std::chrono::milliseconds(20);
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    s.ConfigurePrewarm({PrewarmPool{GenericDeployment(), 1, 10}});
    auto idle = [&] { return s.PrewarmedIdle()["prewarm/fake"]; };
    std::function<bool()> one_idle = [&] { return idle() == 1; };
    std::function<bool()> two_idle = [&] { return idle() == 2; };
    EXPECT_TRUE(co_await WaitUntil(one_idle, std::chrono::seconds(5)));
    for (int i = 0; i < 4; ++i) {
      auto d = MakeDeployment(1, 10, "echo", "f" + std::to_string(i));
      auto result = co_await s.Invoke(d, Request("{}"));
      EXPECT_TRUE(result);
    }
    EXPECT_EQ(s.PrewarmTargets()["prewarm/fake"], 4u);
    EXPECT_TRUE(co_await WaitUntil(two_idle, std::chrono::seconds(5))) << idle();
    asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(200));
    co_await pause.async_wait(asio::use_awaitable);
    EXPECT_EQ(idle(), 2u);
    EXPECT_EQ(s.instance_count(), 6u);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(s.Instances("f" + std::to_string(i)).size(), 1u);
  });
}

// After a restart every published function without an instance will start cold at its next
// call: the pool counts them as demand from the start.
TEST_F(SchedulerTest, PublishedFunctionsWithoutInstancesSizeThePoolAtStart) {
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    for (int i = 0; i < 3; ++i) {
      s.Publish(MakeDeployment(1, 10, "echo", "f" + std::to_string(i)));
    }
    auto other = MakeDeployment(1, 10, "echo", "other");
    std::const_pointer_cast<Deployment>(other)->spawn.memory_limit_bytes = 1 << 30;  // no fit
    s.Publish(other);
    s.ConfigurePrewarm({PrewarmPool{GenericDeployment(), 1, 10}});
    EXPECT_EQ(s.PrewarmTargets()["prewarm/fake"], 3u);
    std::function<bool()> three_idle = [&] { return s.PrewarmedIdle()["prewarm/fake"] == 3; };
    EXPECT_TRUE(co_await WaitUntil(three_idle, std::chrono::seconds(5)));
  });
}

// A restarted node is ready (GET /health/ready) once its pools hold what they fill to for the
// functions it serves; and stays ready while calls take generic instances from them.
TEST_F(SchedulerTest, TheNodeIsWarmedUpOnceItsPoolsHoldTheirStartTargets) {
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    for (int i = 0; i < 3; ++i) s.Publish(MakeDeployment(1, 10, "echo", "f" + std::to_string(i)));
    s.ConfigurePrewarm({PrewarmPool{GenericDeployment(), 1, 10}});
    EXPECT_FALSE(s.WarmedUp());
    std::function<bool()> warmed_up = [&] { return s.WarmedUp(); };
    EXPECT_TRUE(co_await WaitUntil(warmed_up, std::chrono::seconds(5)));
    EXPECT_EQ(s.PrewarmedIdle()["prewarm/fake"], 3u);
    auto result = co_await s.Invoke(MakeDeployment(1, 10, "echo", "f0"), Request("{}"));
    EXPECT_TRUE(result && result->cold_start);
    EXPECT_TRUE(s.WarmedUp());
  });
}

// Pools that cannot fill (no room on the node, or runtimes that never load) do not keep the
// node unready: it is ready once the pool holds what fits, or after warm_up_timeout.
TEST_F(SchedulerTest, TheNodeIsWarmedUpOnceItsPoolsHoldWhatFits) {
  options_.max_instances_total = 4;  // spare room: 3 instances
  options_.maintenance_period = std::chrono::milliseconds(20);
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    for (int i = 0; i < 6; ++i) s.Publish(MakeDeployment(1, 10, "echo", "f" + std::to_string(i)));
    s.ConfigurePrewarm({PrewarmPool{GenericDeployment(), 1, 10}});
    std::function<bool()> warmed_up = [&] { return s.WarmedUp(); };
    EXPECT_TRUE(co_await WaitUntil(warmed_up, std::chrono::seconds(5)));
    EXPECT_EQ(s.PrewarmedIdle()["prewarm/fake"], 3u);
  });
}

TEST_F(SchedulerTest, TheNodeIsWarmedUpAfterTheTimeoutWhenItsPoolsDoNotFill) {
  options_.warm_up_timeout = std::chrono::milliseconds(200);
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    auto generic = std::make_shared<Deployment>(*GenericDeployment());
    generic->spawn.env = {"FAKE_MODE=slow_start"};  // 300 ms to load
    s.ConfigurePrewarm({PrewarmPool{generic, 1, 1}});
    EXPECT_FALSE(s.WarmedUp());
    asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(220));
    co_await pause.async_wait(asio::use_awaitable);
    EXPECT_EQ(s.PrewarmedIdle()["prewarm/fake"], 0u);
    EXPECT_TRUE(s.WarmedUp());
  });
}

// Gives `s` a pool of `count` generic instances slow to load and waits until all are loading;
// them, or none if they did not get there.
asio::awaitable<std::vector<InstanceInfo>> LoadingGenerics(Scheduler& s, size_t count) {
  auto generic = std::make_shared<Deployment>(*GenericDeployment());
  generic->spawn.env = {"FAKE_MODE=slow_start"};
  s.ConfigurePrewarm({PrewarmPool{generic, count, count}});
  std::vector<InstanceInfo> all;
  std::function<bool()> loading = [&] {
    all = s.AllInstances();
    return all.size() == count && std::all_of(all.begin(), all.end(), [](const auto& i) {
             return i.state == "initializing";
           });
  };
  const bool reached = co_await WaitUntil(loading, std::chrono::seconds(5));
  EXPECT_TRUE(reached);
  if (!reached) all.clear();
  co_return all;
}

// A cold start that finds the pool's generic instance still loading takes that one, at full
// CPU weight, rather than starting a sandbox of its own; it serves the call once ready.
TEST_F(SchedulerTest, AColdStartClaimsAPrewarmedInstanceThatIsStillLoading) {
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    auto all = co_await LoadingGenerics(s, 1);
    if (all.size() != 1) co_return;
    auto d = std::make_shared<Deployment>(*MakeDeployment());
    d->spawn.code_dir = "/code/of/f/v1";
    auto result = co_await s.Invoke(d, Request(R"({"n":2})"));
    EXPECT_TRUE(result && result->status == InvocationStatus::kSuccess);
    if (!result) co_return;
    EXPECT_TRUE(result->cold_start);
    EXPECT_EQ(result->instance_id, all[0].id);
    EXPECT_EQ(backend_.prioritized, std::vector<std::string>{all[0].id});
    EXPECT_EQ(backend_.specialized.size(), 1u);
  });
  // The generic instance, and the pool's refill after it was taken; no sandbox for the call.
  EXPECT_EQ(backend_.spawned, 2);
}

// The instance a call claimed while it loads counts against its function's limit: a second call
// of a function limited to one instance waits for it (here longer than the queue wait allows)
// instead of claiming the pool's other loading instance.
TEST_F(SchedulerTest, AClaimedInstanceCountsAgainstTheFunctionsLimit) {
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    auto loading = co_await LoadingGenerics(s, 2);
    if (loading.size() != 2) co_return;
    auto d = std::make_shared<Deployment>(*MakeDeployment(1, /*max_instances=*/1));
    d->spawn.code_dir = "/code/of/f/v1";
    std::vector<InvokeRequest> requests;  // not a braced list in the co_await (g++ 12)
    requests.push_back(Request(R"({"sleep_ms":1000})"));
    requests.push_back(Request(R"({"sleep_ms":1000})"));
    auto results = co_await InvokeAll(s, d, std::move(requests));
    EXPECT_EQ(s.Instances("f").size(), 1u);
    for (const auto& result : results) {
      if (result) {
        EXPECT_EQ(result->status, InvocationStatus::kSuccess);
      } else {
        EXPECT_EQ(result.error().code, ErrorCode::kResourceExhausted) << result.error().message;
      }
    }
  });
}

// A claimed instance that ends before it is ready does not strand its call: another starts.
TEST_F(SchedulerTest, AClaimedInstanceThatDiesWhileLoadingIsReplaced) {
  Run([&](Scheduler& s) -> asio::awaitable<void> {
    auto all = co_await LoadingGenerics(s, 1);
    if (all.size() != 1) co_return;
    auto d = MakeDeployment();
    // The generic instance dies while the call waits for it.
    auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor,
                                                      std::chrono::milliseconds(50));
    auto kill = [this, timer, id = all[0].id](boost::system::error_code) { backend_.Kill(id); };
    timer->async_wait(kill);
    auto result = co_await s.Invoke(d, Request(R"({"n":3})"));
    EXPECT_TRUE(result && result->status == InvocationStatus::kSuccess);
    if (!result) co_return;
    EXPECT_NE(result->instance_id, all[0].id);
    EXPECT_EQ(result->response_json, R"({"n":3})");
  });
}

class NullHost final : public InstanceHost {
 public:
  void OnInstanceReady(const std::shared_ptr<Instance>&) override {}
  void OnInstanceMustRetire(const std::shared_ptr<Instance>&) override {}
  void OnInstanceFailedToStart(const std::shared_ptr<Instance>&, StartFailure) override {}
  void OnInstanceGone(const std::shared_ptr<Instance>&) override {}
};

TEST(InstanceLifecycleTest, LegalMovesWorkAndIllegalOnesAbort) {
  asio::io_context io;
  SystemClock clock;
  NullHost host;
  InstanceSettings settings;
  auto make = [&] {
    return std::make_shared<Instance>(io, clock, host, settings, "i",
                                      std::make_shared<Deployment>(), 0);
  };
  auto instance = make();
  EXPECT_EQ(instance->state(), Instance::State::kStarting);
  EXPECT_TRUE(instance->loading());
  EXPECT_TRUE(instance->MarkRetiring());
  EXPECT_FALSE(instance->MarkRetiring());  // already on its way out: nothing to do
  EXPECT_FALSE(instance->live());
  // A sandbox still being created has not loaded any code: it cannot serve or idle.
  EXPECT_DEATH(make()->MarkIdle(clock.Now()), "illegal transition starting -> idle");
  EXPECT_DEATH(make()->MarkBusy(), "illegal transition starting -> busy");
  EXPECT_DEATH(
      {
        auto gone = make();
        gone->FailedToSpawn();
        gone->MarkBusy();
      },
      "illegal transition gone -> busy");
}

}  // namespace
}  // namespace wisp::scheduler
