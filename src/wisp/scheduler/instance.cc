#include "wisp/scheduler/instance.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include "wisp/common/check.h"
#include "wisp/common/error_document.h"
#include "wisp/common/json_text.h"

namespace wisp::scheduler {
namespace {

// Start-up output kept to explain a failed start (a syntax error's stack fits easily).
constexpr uint64_t kMaxInitLogBytes = 64 << 10;
// What starts and ends the request id a shim serving several calls puts before each line.
constexpr std::string_view kLogTag = "\x1f";

// MiB rounded up, as Lambda reports "Max Memory Used".
std::optional<int64_t> MiBRoundedUp(std::optional<uint64_t> bytes) {
  if (!bytes) return std::nullopt;
  return static_cast<int64_t>((*bytes + (1 << 20) - 1) >> 20);
}

simdjson::dom::parser& Parser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

bool IsValidJson(std::string_view text) {
  simdjson::dom::element element;
  return Parser().parse(text.data(), text.size()).get(element) == simdjson::SUCCESS;
}

// An error the runtime reported, as the one error document (common/error_document.h). A
// runtime's own document that already has that shape is kept as is (with any extra fields);
// otherwise it is rewritten, keeping the stack trace it had. Anything not JSON becomes the
// message. The type comes from the document, else from the Lambda-Runtime-Function-Error-Type
// header.
struct ErrorReport {
  std::string type;
  std::string message;
  std::string document;
};

ErrorReport NormaliseError(std::string_view header_type, std::string_view body) {
  ErrorReport report;
  report.type = header_type.empty() ? "Runtime.Unknown" : std::string(header_type);
  report.message = std::string(body);
  simdjson::dom::element element;
  if (Parser().parse(body.data(), body.size()).get(element) == simdjson::SUCCESS &&
      element.is_object()) {
    std::string_view message, type;
    simdjson::dom::array stack;
    const bool has_message = element["errorMessage"].get(message) == simdjson::SUCCESS;
    const bool has_type = element["errorType"].get(type) == simdjson::SUCCESS;
    const bool has_stack = element["stackTrace"].get(stack) == simdjson::SUCCESS;
    if (has_message) report.message = std::string(message);
    if (has_type) report.type = std::string(type);
    if (has_message && has_type && has_stack) {
      report.document = std::string(body);
      return report;
    }
    std::vector<std::string> lines;
    if (has_stack) {
      for (simdjson::dom::element line : stack) {
        std::string_view text;
        if (line.get(text) == simdjson::SUCCESS) lines.emplace_back(text);
      }
    }
    report.document = LambdaErrorDocument(report.type, report.message, lines);
    return report;
  }
  report.document = LambdaErrorDocument(report.type, report.message);
  return report;
}

}  // namespace

std::string_view Instance::StateName(State state) {
  switch (state) {
    case State::kStarting:
      return "starting";
    case State::kInitializing:
      return "initializing";
    case State::kIdle:
      return "idle";
    case State::kBusy:
      return "busy";
    case State::kRetiring:
      return "retiring";
    case State::kGone:
      return "gone";
  }
  return "unknown";
}

Instance::Instance(asio::io_context& io, const Clock& clock, InstanceHost& host,
                   const InstanceSettings& settings, std::string id,
                   std::shared_ptr<const Deployment> deployment, int64_t started_at_ms)
    : io_(io),
      clock_(clock),
      host_(host),
      settings_(settings),
      id_(std::move(id)),
      deployment_(std::move(deployment)),
      init_started_(clock.Now()),
      started_at_ms_(started_at_ms) {}

void Instance::TransitionTo(State next) {
  WISP_DCHECK_ON_THREAD(io_thread_);
  bool legal = false;
  switch (state_) {
    case State::kStarting:
      legal = next == State::kInitializing || next == State::kRetiring || next == State::kGone;
      break;
    case State::kInitializing:
      legal = next == State::kIdle || next == State::kBusy || next == State::kRetiring ||
              next == State::kGone;
      break;
    case State::kIdle:
      legal = next == State::kBusy || next == State::kInitializing || next == State::kRetiring ||
              next == State::kGone;
      break;
    case State::kBusy:
      legal = next == State::kIdle || next == State::kRetiring || next == State::kGone;
      break;
    case State::kRetiring:
      legal = next == State::kGone;
      break;
    case State::kGone:
      break;
  }
  if (!legal) {
    std::fputs(fmt::format("instance {}: illegal transition {} -> {}\n", id_, StateName(state_),
                           StateName(next))
                   .c_str(),
               stderr);
  }
  WISP_CHECK(legal);
  state_ = next;
}

void Instance::MarkBusy() {
  WISP_CHECK(calls_ < concurrency() && !draining_);
  // A busy instance with room (or whose call just ended) may take the next waiting call.
  if (state_ != State::kBusy) TransitionTo(State::kBusy);
  ++calls_;
}

void Instance::EndCall() {
  WISP_CHECK(calls_ > 0);
  --calls_;
}

void Instance::MarkIdle(std::chrono::steady_clock::time_point now) {
  WISP_CHECK(calls_ == 0);
  TransitionTo(State::kIdle);
  idle_since_ = now;
}

bool Instance::MarkRetiring() {
  if (!live()) return false;
  TransitionTo(State::kRetiring);
  return true;
}

void Instance::FailedToSpawn() { TransitionTo(State::kGone); }

Instance::~Instance() {
  if (endpoint_) endpoint_->Close();
}

void Instance::Attach(sandbox::InstanceHandle handle) {
  // An instance retired while its sandbox started stays retiring: the kill is on its way.
  if (state_ == State::kStarting) TransitionTo(State::kInitializing);
  pid_ = handle.pid;
  endpoint_ = std::make_shared<runtime_api::Endpoint>(io_, std::move(handle.runtime_api), *this,
                                                      settings_.max_response_bytes);
  endpoint_->SetConcurrency(concurrency());
  endpoint_->Start();
  memory_ = std::move(handle.memory);
  logs_ = std::move(handle.logs);
  asio::co_spawn(
      io_, [self = shared_from_this()] { return self->ReadOutput(); }, asio::detached);
}

asio::awaitable<InvocationResult> Instance::Run(InvokeRequest request) {
  WISP_DCHECK_ON_THREAD(io_thread_);
  auto self = shared_from_this();
  if (state_ == State::kGone) {
    // It ended between being handed out and this call starting on it.
    InvocationResult gone;
    gone.status = InvocationStatus::kError;
    gone.instance_id = id_;
    gone.response_json =
        LambdaErrorDocument("Runtime.ExitError", "the instance ended before the call started");
    co_return gone;
  }
  Current current(co_await asio::this_coro::executor);
  current.request_id = request.request_id;
  current.result.instance_id = id_;
  current.on_stream_chunk = std::move(request.on_stream_chunk);
  running_.push_back(&current);
  ++invocations_;
  last_call_at_ms_ = ToEpochMillis(clock_.WallNow());

  const auto timeout = request.timeout;
  runtime_api::NextEvent event;
  event.request_id = std::move(request.request_id);
  event.body = std::move(request.event_json);
  event.deadline_ms = ToEpochMillis(clock_.WallNow()) + timeout.count();
  event.function_arn = deployment_->function_arn;
  event.trace_id = std::move(request.trace_id);
  event.client_context = std::move(request.client_context);
  endpoint_->Deliver(std::move(event));

  const bool answered = co_await current.done.Wait(clock_.Now() + timeout);
  if (!answered) {
    DrainOutput();
    FlushPartialLine();
    std::erase(running_, &current);
    current.result.status = InvocationStatus::kTimeout;
    // Read while the instance is still there: the kill below removes its cgroup.
    current.result.memory_used_mb = MiBRoundedUp(MemoryPeak());
    current.result.response_json = LambdaErrorDocument(
        "Sandbox.Timedout",
        fmt::format("RequestId: {} Error: Task timed out after {:.2f} seconds", current.request_id,
                    std::chrono::duration<double>(timeout).count()));
    // A runtime past a deadline may be stuck anywhere: it and everything it started go, once
    // the other calls in flight on it have ended (each by its own deadline at the latest).
    if (endpoint_) endpoint_->EndInFlight(current.request_id);
    Drain();
    co_return std::move(current.result);
  }
  std::erase(running_, &current);
  co_return std::move(current.result);
}

void Instance::Specialize(std::shared_ptr<const Deployment> deployment) {
  // The runtime was started with the generic deployment's environment and has acted on it (the
  // shims take WISP_RUNTIME_API_FD out of theirs): only what the function adds or changes goes.
  const std::shared_ptr<const Deployment> generic = std::move(deployment_);
  const std::vector<std::string>& started_with = generic->spawn.env;
  deployment_ = std::move(deployment);
  TransitionTo(State::kInitializing);
  if (endpoint_) endpoint_->SetConcurrency(concurrency());
  init_started_ = clock_.Now();
  ++start_count_;
  init_logs_.clear();
  init_log_bytes_ = 0;
  std::string env = "{\"env\":{";
  bool first = true;
  for (const std::string& entry : deployment_->spawn.env) {
    const auto eq = entry.find('=');
    if (eq == std::string::npos) continue;
    if (std::find(started_with.begin(), started_with.end(), entry) != started_with.end()) continue;
    if (!first) env += ',';
    first = false;
    AppendJsonString(env, std::string_view(entry).substr(0, eq));
    env += ':';
    AppendJsonString(env, std::string_view(entry).substr(eq + 1));
  }
  env += "}}";
  runtime_api::NextEvent event;
  event.request_id = "specialize-" + id_;
  event.body = std::make_shared<std::string>(std::move(env));
  event.specialization = true;
  specialization_ = std::move(event);
}

void Instance::CodePlaced() {
  if (state_ != State::kInitializing || !specialization_) return;  // retired meanwhile
  endpoint_->Deliver(std::move(*specialization_));
  specialization_.reset();
}

void Instance::CodeNotPlaced(const std::string& why) {
  if (state_ != State::kInitializing || !specialization_) return;
  specialization_.reset();
  StartFailure failure;
  failure.error_type = "Wisp.SandboxError";
  failure.message = "the function's code could not be put into a prewarmed instance: " + why;
  failure.document_json = LambdaErrorDocument(failure.error_type, failure.message);
  init_failure_ = std::move(failure);
  host_.OnInstanceMustRetire(shared_from_this());
}

void Instance::Finish(Current* current, InvocationStatus status, std::string response_json,
                      std::optional<uint64_t> exit_memory_peak_bytes) {
  if (!current || current->done.is_set()) return;  // late or repeated: nothing read for it
  std::optional<uint64_t> memory_peak;
  if (state_ == State::kGone) {
    // The runtime has exited (OnExit): the launcher may have read the peak before it removed
    // the cgroup.
    DrainOutput();
    memory_peak = exit_memory_peak_bytes ? exit_memory_peak_bytes : MemoryPeak();
  } else {
    CatchUpWithRuntime();
    memory_peak = memory_peak_;
  }
  // A line cut short belongs to the one call there is; of several, to none in particular.
  if (running_.size() == 1) FlushPartialLine();
  current->result.status = status;
  current->result.response_json = std::move(response_json);
  current->result.memory_used_mb = MiBRoundedUp(memory_peak);
  current->done.Set();
}

void Instance::CatchUpWithRuntime() {
  const uint64_t reads = endpoint_ ? endpoint_->reads() : 0;
  if (caught_up_at_reads_ == reads) return;
  DrainOutput();
  memory_peak_ = MemoryPeak();
  caught_up_at_reads_ = reads;
}

Instance::Current* Instance::FindCall(std::string_view request_id) const {
  for (Current* current : running_) {
    if (current->request_id == request_id) return current;
  }
  return nullptr;
}

void Instance::Drain() {
  // The scheduler retires it when its last call ends (it may hand out no more meanwhile).
  draining_ = true;
}

std::optional<uint64_t> Instance::MemoryPeak() const {
  if (!memory_) return std::nullopt;
  return memory_->Peak();
}

void Instance::OnRuntimeWaiting() {
  if (state_ != State::kInitializing) return;  // a warm runtime coming back for more work
  init_duration_ = clock_.Now() - init_started_;
  host_.OnInstanceReady(shared_from_this());
}

void Instance::OnInvocationChunk(std::string_view request_id, std::string_view bytes) {
  Current* current = FindCall(request_id);
  if (!current) return;
  current->result.streamed = true;
  if (current->on_stream_chunk) {
    current->on_stream_chunk(bytes);
  } else {
    current->streamed_body.append(bytes);
  }
}

void Instance::OnInvocationResponse(std::string_view request_id, std::string body) {
  Current* current = FindCall(request_id);
  if (current && current->result.streamed) {
    // Streamed: the bytes went to the caller as they came, or are the result as a string.
    Finish(current, InvocationStatus::kSuccess,
           current->on_stream_chunk ? std::string("null") : JsonString(current->streamed_body));
    return;
  }
  if (IsValidJson(body)) {
    Finish(current, InvocationStatus::kSuccess, std::move(body));
  } else {
    // A custom runtime may answer with plain text: keep it, as a JSON string.
    Finish(current, InvocationStatus::kSuccess, JsonString(body));
  }
}

void Instance::OnInvocationError(std::string_view request_id, std::string error_type,
                                 std::string body) {
  Finish(FindCall(request_id), InvocationStatus::kError, NormaliseError(error_type, body).document);
  if (error_type == "Function.ResponseSizeTooLarge") {
    // The endpoint cut the runtime's upload short and closed its connection: the runtime is
    // in no state to serve another call: it retires once this one and any others have ended.
    Drain();
  }
}

void Instance::OnInitError(std::string error_type, std::string body) {
  ErrorReport report = NormaliseError(error_type, body);
  StartFailure failure;
  failure.error_type = std::move(report.type);
  failure.message = std::move(report.message);
  failure.document_json = std::move(report.document);
  init_failure_ = std::move(failure);
  host_.OnInstanceMustRetire(shared_from_this());
}

void Instance::OnInitTimeout() {
  if (!loading()) return;
  StartFailure failure;
  failure.error_type = "Runtime.InitTimeout";
  failure.message = fmt::format("the runtime did not become ready within {:.1f} seconds",
                                std::chrono::duration<double>(settings_.init_timeout).count());
  failure.document_json = LambdaErrorDocument(failure.error_type, failure.message);
  init_failure_ = std::move(failure);
  host_.OnInstanceMustRetire(shared_from_this());
}

std::string Instance::DescribeExit(const sandbox::ExitStatus& status,
                                   std::string* error_type) const {
  if (status.oom_killed) {
    *error_type = "Runtime.OutOfMemory";
    return fmt::format("out of memory (limit {} MB)", deployment_->memory_mb);
  }
  *error_type = "Runtime.ExitError";
  if (status.signal != 0) {
    const char* name = sigabbrev_np(status.signal);
    return fmt::format("runtime killed by signal {} (SIG{})", status.signal, name ? name : "?");
  }
  return fmt::format("runtime exited with code {}", status.exit_code);
}

void Instance::OnExit(const sandbox::ExitStatus& status) {
  if (state_ == State::kGone) return;
  DrainOutput();
  FlushPartialLine();
  const bool was_starting = loading();
  TransitionTo(State::kGone);
  auto self = shared_from_this();

  std::string error_type;
  std::string description = DescribeExit(status, &error_type);
  if (!running_.empty()) {
    if (running_.size() > 1) {
      description += fmt::format(" while {} calls were in flight on its instance", running_.size());
    }
    // The launcher removed the cgroup before it reported the exit: it read the peak for us.
    for (Current* current : std::vector<Current*>(running_)) {
      Finish(current, InvocationStatus::kError, LambdaErrorDocument(error_type, description),
             status.memory_peak_bytes);
    }
  } else if (was_starting || init_failure_) {
    StartFailure failure;
    if (init_failure_) {
      failure = std::move(*init_failure_);
    } else {
      failure.error_type = error_type;
      failure.message = fmt::format("{} during initialisation", description);
      failure.document_json = LambdaErrorDocument(error_type, failure.message);
    }
    failure.logs = init_logs_;
    host_.OnInstanceFailedToStart(self, std::move(failure));
  }
  if (endpoint_) endpoint_->Close();
  // Closed, not destroyed: ReadOutput may be waiting on it (and holds this instance).
  if (logs_) logs_->Close();
  memory_.reset();
  host_.OnInstanceGone(self);
}

asio::awaitable<void> Instance::ReadOutput() {
  auto self = shared_from_this();
  std::vector<char> buffer(64 << 10);
  for (;;) {
    boost::system::error_code ec;
    const size_t n = co_await logs_->Read(buffer, ec);
    if (ec || state_ == State::kGone) co_return;
    ConsumeOutput(std::string_view(buffer.data(), n));
  }
}

void Instance::DrainOutput() {
  if (!logs_) return;
  char buffer[64 << 10];
  for (;;) {
    const size_t n = logs_->ReadWritten(buffer);
    if (n == 0) return;
    ConsumeOutput(std::string_view(buffer, n));
    if (n < sizeof buffer) return;  // a short read has taken everything written so far
  }
}

void Instance::ConsumeOutput(std::string_view bytes) {
  const uint64_t cap = settings_.max_log_bytes_per_invocation;
  while (!bytes.empty()) {
    const auto newline = bytes.find('\n');
    if (newline == std::string_view::npos) {
      // A line without its newline yet; bounded so one endless line cannot grow without limit.
      const size_t room = partial_line_.size() < cap ? cap - partial_line_.size() : 0;
      partial_line_.append(bytes.substr(0, room));
      if (partial_line_.size() >= cap) FlushPartialLine();
      return;
    }
    if (partial_line_.empty()) {
      EmitLine(bytes.substr(0, newline));
    } else {
      partial_line_.append(bytes.substr(0, std::min<size_t>(newline, cap)));
      EmitLine(partial_line_);
      partial_line_.clear();
    }
    bytes.remove_prefix(newline + 1);
  }
}

void Instance::FlushPartialLine() {
  if (partial_line_.empty()) return;
  EmitLine(partial_line_);
  partial_line_.clear();
}

Instance::Current* Instance::CallOfLine(std::string_view& line) const {
  if (running_.empty()) return nullptr;
  if (concurrency() == 1) return running_.front();
  // A shim serving several calls at once starts each line with "\x1f<request id>\x1f".
  if (line.starts_with(kLogTag)) {
    const auto end = line.find(kLogTag, 1);
    if (end != std::string_view::npos) {
      Current* call = FindCall(line.substr(1, end - 1));
      line.remove_prefix(end + 1);
      return call;  // null for a call that has ended: the line goes to the instance's log
    }
  }
  // An untagged line (a custom runtime's, a library writing to fd 1 itself) is the call's when
  // only one is in flight; of several, it could be anyone's: it goes to the instance's log (the
  // debug log), not to a call's record.
  return running_.size() == 1 ? running_.front() : nullptr;
}

void Instance::EmitLine(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // A call answered but not yet resumed still takes its lines: the log pipe's read may have
  // completed just before the answer was handled, its bytes waiting in ReadOutput's buffer
  // (its completion runs before the call resumes).
  Current* current = CallOfLine(line);
  if (current) {
    if (current->logs_truncated) return;
    const uint64_t cap = settings_.max_log_bytes_per_invocation;
    if (current->log_bytes + line.size() > cap) {
      current->logs_truncated = true;
      current->result.logs.push_back(
          fmt::format("[wisp] log output truncated: more than {} bytes", cap));
      return;
    }
    current->log_bytes += line.size();
    current->result.logs.emplace_back(line);
    return;
  }
  spdlog::debug("instance {} ({}): {}", id_, deployment_->function_name, line);
  if (init_log_bytes_ + line.size() <= kMaxInitLogBytes) {
    init_log_bytes_ += line.size();
    init_logs_.emplace_back(line);
  }
}

}  // namespace wisp::scheduler
