// wisp_load_client: a closed-loop HTTP/1.1 load generator for bench/run.
//
// Each of --connections keep-alive connections sends one POST, waits for the whole response,
// and sends the next at once. Everything runs on one thread over epoll with prebuilt request
// bytes, so the client costs a few microseconds of CPU per call and does not become the
// bottleneck on a 2-core machine (Beast or an Asio coroutine per connection would add
// allocations and indirection we do not need for a fixed request).
//
// Phases: warm-up (at least --warmup-requests calls and --warmup-seconds), then a measured
// phase of --requests calls or --duration seconds. Only calls that *start* in the measured
// phase count; throughput is those calls over the time from the phase start to the last one's
// completion. Results go to stdout as one JSON object.
//
// With --server-timing it also reads each measured call's `Server-Timing` header (wispd's
// parse/schedule/runtime/total in ms) and reports percentiles of every step beside the client's
// own latency and their per-call difference (reply write, transport and client read).
//
// Handles only what the servers under test send: Content-Length bodies (no chunked encoding).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// A call that has not answered in this long is counted as an error and its connection
// replaced: longer than wispd's queue wait (10 s) so that its own 429/503 answers arrive first.
constexpr auto kRequestTimeout = std::chrono::seconds(15);
// Errors kept verbatim in the output; the rest are only counted.
constexpr size_t kMaxErrorSamples = 10;

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string path = "/";
  std::string body = "{}";
  std::string expect;  // a substring every 200 body must contain; empty: no check
  int connections = 1;
  int64_t warmup_requests = 0;
  double warmup_seconds = 0;
  int64_t requests = 0;  // measured calls; 0: run for --duration
  double duration = 0;
  bool server_timing = false;  // record the Server-Timing header of each measured call
  std::string headers;         // extra "Name: value\r\n" lines (--header), e.g. an API key
};

// The steps of wispd's Server-Timing header, in the order they are reported.
constexpr const char* kTimingSteps[] = {"parse", "schedule", "runtime", "total"};
constexpr size_t kTimingStepCount = 4;

// One measured call's Server-Timing durations (us; negative: absent) and its client latency.
struct CallTiming {
  float step_us[kTimingStepCount];
  float client_us;
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "wisp_load_client: %s\n", message.c_str());
  std::exit(2);
}

Options ParseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Die(std::string(arg) + " needs a value");
      return argv[++i];
    };
    if (arg == "--host")
      o.host = value();
    else if (arg == "--port")
      o.port = std::atoi(value().c_str());
    else if (arg == "--path")
      o.path = value();
    else if (arg == "--body")
      o.body = value();
    else if (arg == "--expect")
      o.expect = value();
    else if (arg == "--connections")
      o.connections = std::atoi(value().c_str());
    else if (arg == "--warmup-requests")
      o.warmup_requests = std::atoll(value().c_str());
    else if (arg == "--warmup-seconds")
      o.warmup_seconds = std::atof(value().c_str());
    else if (arg == "--requests")
      o.requests = std::atoll(value().c_str());
    else if (arg == "--duration")
      o.duration = std::atof(value().c_str());
    else if (arg == "--server-timing")
      o.server_timing = true;
    else if (arg == "--header")
      o.headers += value() + "\r\n";
    else
      Die("unknown option " + std::string(arg));
  }
  if (o.port <= 0 || o.port > 65535) Die("--port is required");
  if (o.connections < 1) Die("--connections must be at least 1");
  if (o.requests <= 0 && o.duration <= 0) Die("give --requests or --duration");
  return o;
}

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

// Parses `name;dur=1.234, name2;dur=...` (the value after "Server-Timing:") into `out` (ms to
// us); steps not present stay negative. The header is followed by CRLF in the buffer, so strtod
// stops there at the latest.
void ParseServerTiming(std::string_view value, float (&out)[kTimingStepCount]) {
  size_t pos = 0;
  while (pos < value.size()) {
    size_t end = value.find(',', pos);
    if (end == std::string_view::npos) end = value.size();
    std::string_view entry = value.substr(pos, end - pos);
    while (!entry.empty() && entry.front() == ' ') entry.remove_prefix(1);
    const size_t semi = entry.find(';');
    const size_t dur = entry.find("dur=");
    if (semi != std::string_view::npos && dur != std::string_view::npos) {
      const std::string_view name = entry.substr(0, semi);
      for (size_t k = 0; k < kTimingStepCount; ++k) {
        if (name == kTimingSteps[k]) {
          out[k] = static_cast<float>(std::strtod(entry.data() + dur + 4, nullptr) * 1000.0);
          break;
        }
      }
    }
    pos = end + 1;
  }
}

std::string JsonEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

struct Connection {
  int fd = -1;
  size_t sent = 0;  // bytes of the request written so far
  std::string in;
  Clock::time_point started;
  bool busy = false;
};

class LoadClient {
 public:
  explicit LoadClient(Options options) : o_(std::move(options)) {
    request_ = "POST " + o_.path + " HTTP/1.1\r\nHost: " + o_.host + ":" + std::to_string(o_.port) +
               "\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n" + o_.headers +
               "Content-Length: " + std::to_string(o_.body.size()) + "\r\n\r\n" + o_.body;
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) Die(std::string("epoll_create1: ") + std::strerror(errno));
    std::memset(&addr_, 0, sizeof addr_);
    addr_.sin_family = AF_INET;
    addr_.sin_port = htons(static_cast<uint16_t>(o_.port));
    if (inet_pton(AF_INET, o_.host.c_str(), &addr_.sin_addr) != 1) Die("bad --host " + o_.host);
    conns_.resize(o_.connections);
    for (int i = 0; i < o_.connections; ++i) Open(i);
  }

  int Run() {
    const auto begin = Clock::now();
    const auto warm_until = begin + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(o_.warmup_seconds));
    warming_ = o_.warmup_requests > 0 || o_.warmup_seconds > 0;
    if (!warming_) StartMeasuring(begin);
    for (size_t i = 0; i < conns_.size(); ++i) Send(i);

    std::vector<epoll_event> events(conns_.size());
    while (true) {
      const auto now = Clock::now();
      if (warming_ && completed_warmup_ >= o_.warmup_requests && now >= warm_until) {
        StartMeasuring(now);
      }
      if (!warming_ && measure_end_ != Clock::time_point{} && now >= measure_end_) {
        stop_issuing_ = true;
      }
      if (!warming_ && o_.requests > 0 && issued_ >= o_.requests) stop_issuing_ = true;
      size_t busy = 0;
      for (auto& c : conns_) busy += c.busy;
      if (stop_issuing_ && busy == 0) break;
      // Idle connections (after a phase change) get their next call here.
      if (!stop_issuing_) {
        for (size_t i = 0; i < conns_.size(); ++i) {
          if (!conns_[i].busy) Send(i);
        }
      }
      CheckTimeouts(now);
      const int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 100);
      if (n < 0) {
        if (errno == EINTR) continue;
        Die(std::string("epoll_wait: ") + std::strerror(errno));
      }
      for (int k = 0; k < n; ++k) {
        const size_t i = events[k].data.u64;
        if (events[k].events & EPOLLOUT) ContinueWrite(i);
        if (events[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) Read(i);
      }
    }
    Report();
    return 0;
  }

 private:
  void StartMeasuring(Clock::time_point now) {
    warming_ = false;
    measure_start_ = now;
    if (o_.requests <= 0) {
      measure_end_ = now + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(o_.duration));
    }
    latencies_ns_.reserve(o_.requests > 0 ? o_.requests : 1 << 16);
    if (o_.server_timing) timings_.reserve(o_.requests > 0 ? o_.requests : 1 << 16);
  }

  void Open(size_t i) {
    Connection& c = conns_[i];
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c.fd < 0) Die(std::string("socket: ") + std::strerror(errno));
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Blocking connect (loopback: immediate), then non-blocking I/O.
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&addr_), sizeof addr_) != 0) {
      Die(std::string("connect: ") + std::strerror(errno));
    }
    const int flags = fcntl(c.fd, F_GETFL);
    fcntl(c.fd, F_SETFL, flags | O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev) != 0) Die("epoll_ctl add");
    c.in.clear();
    c.sent = 0;
    c.busy = false;
  }

  void Reopen(size_t i) {
    epoll_ctl(epoll_, EPOLL_CTL_DEL, conns_[i].fd, nullptr);
    close(conns_[i].fd);
    ++reconnects_;
    Open(i);
  }

  bool Counting(const Connection& c) const { return !warming_ && c.started >= measure_start_; }

  void Send(size_t i) {
    if (stop_issuing_) return;
    if (!warming_ && o_.requests > 0 && issued_ >= o_.requests) return;
    Connection& c = conns_[i];
    c.busy = true;
    c.sent = 0;
    c.started = Clock::now();
    if (!warming_ && c.started >= measure_start_) ++issued_;
    ContinueWrite(i);
  }

  void ContinueWrite(size_t i) {
    Connection& c = conns_[i];
    while (c.sent < request_.size()) {
      const ssize_t w =
          send(c.fd, request_.data() + c.sent, request_.size() - c.sent, MSG_NOSIGNAL);
      if (w > 0) {
        c.sent += static_cast<size_t>(w);
        continue;
      }
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT;
        ev.data.u64 = i;
        epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
        return;
      }
      Fail(i, std::string("send: ") + std::strerror(errno));
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void Read(size_t i) {
    Connection& c = conns_[i];
    char buf[65536];
    while (true) {
      const ssize_t r = recv(c.fd, buf, sizeof buf, 0);
      if (r > 0) {
        c.in.append(buf, static_cast<size_t>(r));
        if (static_cast<size_t>(r) < sizeof buf) break;
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      Fail(i, r == 0 ? std::string("connection closed by server")
                     : std::string("recv: ") + std::strerror(errno));
      return;
    }
    TryComplete(i);
  }

  void TryComplete(size_t i) {
    Connection& c = conns_[i];
    const size_t head_end = c.in.find("\r\n\r\n");
    if (head_end == std::string::npos) return;
    const std::string_view head(c.in.data(), head_end);
    if (head.size() < 12 || head.substr(0, 5) != "HTTP/") {
      Fail(i, "malformed status line: " + std::string(head.substr(0, 80)));
      return;
    }
    const int status = std::atoi(std::string(head.substr(9, 3)).c_str());
    size_t content_length = 0;
    bool have_length = false, close_after = false, function_error = false;
    std::string_view server_timing;
    size_t pos = head.find("\r\n");
    while (pos != std::string_view::npos && pos < head.size()) {
      const size_t next = head.find("\r\n", pos + 2);
      const std::string_view line =
          head.substr(pos + 2, (next == std::string_view::npos ? head.size() : next) - pos - 2);
      if (StartsWithNoCase(line, "content-length:")) {
        content_length = std::strtoull(std::string(line.substr(15)).c_str(), nullptr, 10);
        have_length = true;
      } else if (StartsWithNoCase(line, "connection:") &&
                 line.find("close") != std::string_view::npos) {
        close_after = true;
      } else if (StartsWithNoCase(line, "x-wisp-function-error:")) {
        function_error = true;
      } else if (o_.server_timing && StartsWithNoCase(line, "server-timing:")) {
        server_timing = line.substr(14);
      } else if (StartsWithNoCase(line, "transfer-encoding:")) {
        Fail(i, "chunked responses are not supported by this client");
        return;
      }
      pos = next;
    }
    if (!have_length) {
      Fail(i, "response without Content-Length");
      return;
    }
    const size_t total = head_end + 4 + content_length;
    if (c.in.size() < total) return;
    const auto done = Clock::now();
    const std::string_view body(c.in.data() + head_end + 4, content_length);

    if (Counting(c)) {
      ++status_counts_[status];
      if (status == 200) {
        const int64_t latency_ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(done - c.started).count();
        latencies_ns_.push_back(latency_ns);
        if (o_.server_timing) {
          CallTiming t;
          for (float& x : t.step_us) x = -1;
          ParseServerTiming(server_timing, t.step_us);
          t.client_us = static_cast<float>(latency_ns / 1000.0);
          timings_.push_back(t);
        }
        last_done_ = std::max(last_done_, done);
        if (function_error) ++function_errors_;
        if (!o_.expect.empty() && body.find(o_.expect) == std::string_view::npos) {
          ++bad_bodies_;
          NoteError("unexpected body: " + std::string(body.substr(0, 200)));
        }
      } else {
        last_done_ = std::max(last_done_, done);
        NoteError("HTTP " + std::to_string(status) + ": " + std::string(body.substr(0, 200)));
      }
    } else {
      ++completed_warmup_;
      if (status != 200 || function_error) {
        ++warmup_failures_;
        NoteError("warm-up HTTP " + std::to_string(status) +
                  (function_error ? " (function error)" : "") + ": " +
                  std::string(body.substr(0, 200)));
      }
    }
    c.in.erase(0, total);
    c.busy = false;
    if (!c.in.empty()) {
      Fail(i, "unexpected bytes after a response");
      return;
    }
    if (close_after) Reopen(i);
    Send(i);
  }

  void Fail(size_t i, const std::string& what) {
    Connection& c = conns_[i];
    if (c.busy && Counting(c)) {
      ++transport_errors_;
    } else if (c.busy) {
      ++completed_warmup_;
      ++warmup_failures_;
    }
    NoteError(what);
    Reopen(i);
    Send(i);
  }

  void CheckTimeouts(Clock::time_point now) {
    for (size_t i = 0; i < conns_.size(); ++i) {
      if (conns_[i].busy && now - conns_[i].started > kRequestTimeout) {
        Fail(i, "no response within " + std::to_string(kRequestTimeout.count()) + " s");
      }
    }
  }

  void NoteError(std::string what) {
    ++error_events_;
    if (error_samples_.size() < kMaxErrorSamples) error_samples_.push_back(std::move(what));
  }

  void Report() {
    std::vector<int64_t>& v = latencies_ns_;
    std::sort(v.begin(), v.end());
    auto pct = [&](double p) -> double {
      if (v.empty()) return 0;
      const size_t idx = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * v.size()));
      return v[idx] / 1000.0;
    };
    double sum = 0;
    for (int64_t x : v) sum += static_cast<double>(x);
    const double mean = v.empty() ? 0 : sum / v.size() / 1000.0;
    int64_t answered = 0;
    for (const auto& [status, n] : status_counts_) answered += n;
    const double seconds = last_done_ > measure_start_
                               ? std::chrono::duration<double>(last_done_ - measure_start_).count()
                               : 0;
    std::string out = "{";
    out += "\"connections\":" + std::to_string(o_.connections);
    out += ",\"requests\":" + std::to_string(answered + transport_errors_);
    out += ",\"ok\":" + std::to_string(v.size());
    out += ",\"seconds\":" + std::to_string(seconds);
    out += ",\"throughput_rps\":" + std::to_string(seconds > 0 ? v.size() / seconds : 0);
    char lat[256];
    std::snprintf(lat, sizeof lat,
                  ",\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
                  "\"mean\":%.1f,\"min\":%.1f,\"max\":%.1f}",
                  pct(50), pct(90), pct(99), pct(99.9), mean, v.empty() ? 0 : v.front() / 1000.0,
                  v.empty() ? 0 : v.back() / 1000.0);
    out += lat;
    out += ",\"status\":{";
    bool first = true;
    for (const auto& [status, n] : status_counts_) {
      if (!first) out += ",";
      first = false;
      out += '"';
      out += std::to_string(status);
      out += "\":";
      out += std::to_string(n);
    }
    out += "}";
    out += ",\"function_errors\":" + std::to_string(function_errors_);
    out += ",\"bad_bodies\":" + std::to_string(bad_bodies_);
    out += ",\"transport_errors\":" + std::to_string(transport_errors_);
    out += ",\"warmup_requests\":" + std::to_string(completed_warmup_);
    out += ",\"warmup_failures\":" + std::to_string(warmup_failures_);
    out += ",\"reconnects\":" + std::to_string(reconnects_);
    out += ",\"error_events\":" + std::to_string(error_events_);
    if (o_.server_timing) out += ",\"server_timing_us\":" + ServerTimingJson();
    out += ",\"error_samples\":[";
    for (size_t k = 0; k < error_samples_.size(); ++k) {
      if (k) out += ",";
      out += '"';
      out += JsonEscape(error_samples_[k]);
      out += '"';
    }
    out += "]}";
    std::printf("%s\n", out.c_str());
  }

  // Percentiles of each Server-Timing step over the measured calls that carried all of them,
  // plus "other" (total minus the named steps: routing, the reply's serialisation) and
  // "outside" (client latency minus total: the reply's write, transport, the client's read).
  std::string ServerTimingJson() const {
    std::vector<std::vector<float>> series(kTimingStepCount + 3);
    int64_t missing = 0;
    for (const CallTiming& t : timings_) {
      bool complete = true;
      for (float x : t.step_us) complete = complete && x >= 0;
      if (!complete) {
        ++missing;
        continue;
      }
      for (size_t k = 0; k < kTimingStepCount; ++k) series[k].push_back(t.step_us[k]);
      const float total = t.step_us[3];
      series[kTimingStepCount].push_back(total - t.step_us[0] - t.step_us[1] - t.step_us[2]);
      series[kTimingStepCount + 1].push_back(t.client_us - total);
      series[kTimingStepCount + 2].push_back(t.client_us);
    }
    const char* names[] = {"parse", "schedule", "runtime", "total", "other", "outside", "client"};
    std::string out = "{\"calls\":" + std::to_string(timings_.size() - missing) +
                      ",\"missing\":" + std::to_string(missing);
    for (size_t k = 0; k < series.size(); ++k) {
      std::vector<float>& v = series[k];
      std::sort(v.begin(), v.end());
      auto pct = [&](double p) -> double {
        if (v.empty()) return 0;
        return v[std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * v.size()))];
      };
      double sum = 0;
      for (float x : v) sum += x;
      char buf[200];
      std::snprintf(buf, sizeof buf,
                    ",\"%s\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"mean\":%.1f}", names[k],
                    pct(50), pct(90), pct(99), v.empty() ? 0 : sum / v.size());
      out += buf;
    }
    out += "}";
    return out;
  }

  Options o_;
  std::string request_;
  int epoll_ = -1;
  sockaddr_in addr_{};
  std::vector<Connection> conns_;

  bool warming_ = true;
  bool stop_issuing_ = false;
  Clock::time_point measure_start_{};
  Clock::time_point measure_end_{};
  Clock::time_point last_done_{};
  int64_t issued_ = 0;
  int64_t completed_warmup_ = 0;
  int64_t warmup_failures_ = 0;

  std::vector<int64_t> latencies_ns_;
  std::vector<CallTiming> timings_;  // with --server-timing: one per measured 200 answer
  std::map<int, int64_t> status_counts_;
  int64_t function_errors_ = 0;
  int64_t bad_bodies_ = 0;
  int64_t transport_errors_ = 0;
  int64_t reconnects_ = 0;
  int64_t error_events_ = 0;
  std::vector<std::string> error_samples_;
};

}  // namespace

int main(int argc, char** argv) {
  LoadClient client(ParseOptions(argc, argv));
  return client.Run();
}
