#include "wisp/sandbox/process_jail.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <boost/asio/post.hpp>

#include "wisp/sandbox/cgroup.h"

namespace wisp::sandbox {

namespace asio = boost::asio;
using nlohmann::json;

namespace {

// The read end of the pipe that carries the runtime's stdout and stderr (non-blocking).
class PipeLogStream final : public LogStream {
 public:
  PipeLogStream(asio::io_context& io, UniqueFd pipe) : pipe_(io, pipe.Release()) {}

  asio::awaitable<size_t> Read(std::span<char> buffer, boost::system::error_code& ec) override {
    const size_t n = co_await pipe_.async_read_some(asio::buffer(buffer.data(), buffer.size()),
                                                    asio::redirect_error(asio::use_awaitable, ec));
    co_return ec ? 0 : n;
  }

  size_t ReadWritten(std::span<char> buffer) override {
    if (!pipe_.is_open()) return 0;
    const ssize_t n = ::read(pipe_.native_handle(), buffer.data(), buffer.size());
    return n > 0 ? static_cast<size_t>(n) : 0;  // EAGAIN: nothing yet; 0: every writer is gone
  }

  void Close() override {
    boost::system::error_code ec;
    pipe_.close(ec);
  }

 private:
  asio::posix::stream_descriptor pipe_;
};

// The instance cgroup's memory.max_usage_in_bytes (v1) or memory.peak (v2), opened by the
// launcher (CgroupFs::OpenMemoryPeak), read with ReadMemoryPeak: nullopt once it is removed.
class CgroupMemoryMeter final : public MemoryMeter {
 public:
  explicit CgroupMemoryMeter(UniqueFd file) : file_(std::move(file)) {}

  std::optional<uint64_t> Peak() override { return ReadMemoryPeak(file_.get()); }

 private:
  UniqueFd file_;
};

// A code tree at most this large is copied by wispd itself into a prewarmed instance's
// directory (tens of µs for a few files). The launcher handles one request at a time, so a
// specialisation sent there waits behind any spawn or reap it is busy with: 1-10 ms measured,
// which doubled the median Python cold start from the pool. Larger trees go to the launcher
// all the same, which copies each code directory onto its stage once and hard-links that
// copy into every instance that runs it: nothing per instance grows with the package, and no
// large copy runs on wispd's io thread.
constexpr uintmax_t kCopyHereMaxBytes = 1 << 20;
constexpr size_t kCopyHereMaxEntries = 64;

namespace fs = std::filesystem;

// True when the tree under `dir` is within both limits above. Follows no link.
bool SmallEnoughToCopyHere(const std::string& dir) {
  std::error_code ec;
  uintmax_t bytes = 0;
  size_t entries = 0;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (++entries > kCopyHereMaxEntries) return false;
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) bytes += it->file_size(ec);
    if (ec || bytes > kCopyHereMaxBytes) return false;
  }
  return !ec;
}

// Copies the tree under `source` into the empty directory `target`: directories, regular files
// and symbolic links (as links); anything else is left out, as the launcher's stage copy does.
Result<void> CopyTreeHere(const std::string& source, const std::string& target) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(source, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    // Lexically: fs::relative would resolve a symbolic link to its target's name.
    const fs::path to = fs::path(target) / it->path().lexically_relative(source);
    const fs::file_status status = it->symlink_status(ec);
    if (ec) break;
    if (fs::is_symlink(status)) {
      fs::copy_symlink(it->path(), to, ec);
    } else if (fs::is_directory(status)) {
      fs::create_directory(to, ec);
      fs::permissions(to,
                      fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                          fs::perms::others_read | fs::perms::others_exec,
                      ec);
    } else if (fs::is_regular_file(status)) {
      fs::copy_file(it->path(), to, ec);
    }
    if (ec) break;
  }
  if (ec) {
    return MakeError(ErrorCode::kInternal,
                     fmt::format("copy code into {}: {}", target, ec.message()));
  }
  return {};
}

}  // namespace

ProcessJail::ProcessJail(asio::io_context& io, Launcher launcher)
    : io_(io),
      launcher_(std::move(launcher)),
      prewarm_dir_(launcher_.prewarm_dir()),
      control_(io, launcher_.control_fd()) {
  // Reads and writes must never block the io thread (KillAll polls explicitly).
  int fd = launcher_.control_fd();
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  WaitReadable();
}

ProcessJail::~ProcessJail() {
  *alive_ = false;
  // The Launcher handle owns the fd: detach Asio from it (this cancels pending waits), then
  // the handle closes it and reaps the launcher.
  control_.release();
}

template <typename Callback>
void ProcessJail::PostFailure(Callback done, ErrorCode code, std::string message) {
  asio::post(io_, [done = std::move(done), code, message = std::move(message)] {
    done(MakeError(code, message));
  });
}

void ProcessJail::Spawn(const SpawnSpec& spec, SpawnCallback done) {
  // Callers expect `done` later, never from inside Spawn; errors are posted too.
  auto fail = [&](ErrorCode code, std::string message) {
    PostFailure(std::move(done), code, std::move(message));
  };
  if (launcher_gone_) return fail(ErrorCode::kUnavailable, "sandbox launcher is not running");
  if (auto valid = ValidateSpawnSpec(spec); !valid) {
    return fail(valid.error().code, valid.error().message);
  }
  if (pending_spawns_.count(spec.instance_id) != 0 || live_.count(spec.instance_id) != 0) {
    return fail(ErrorCode::kAlreadyExists, "instance " + spec.instance_id + " already exists");
  }
  pending_spawns_.emplace(spec.instance_id, std::move(done));
  json msg = {{"type", "spawn"}, {"spec", SpawnSpecToJson(spec)}};
  if (!spec.prewarmed) return Send(msg);
  prewarmed_waiting_.emplace_back(spec.instance_id, std::move(msg));
  SendNextPrewarmedSpawn();
}

void ProcessJail::SendNextPrewarmedSpawn() {
  if (!prewarmed_at_launcher_.empty() || prewarmed_waiting_.empty()) return;
  auto [id, msg] = std::move(prewarmed_waiting_.front());
  prewarmed_waiting_.pop_front();
  prewarmed_at_launcher_ = id;
  Send(msg);
}

void ProcessJail::Specialize(const std::string& instance_id, const std::string& code_dir,
                             SpecializeCallback done) {
  if (launcher_gone_) {
    return PostFailure(std::move(done), ErrorCode::kUnavailable, "sandbox launcher is not running");
  }
  if (live_.count(instance_id) == 0) {
    return PostFailure(std::move(done), ErrorCode::kNotFound, "no instance " + instance_id);
  }
  if (code_dir.empty() || code_dir[0] != '/') {
    return PostFailure(std::move(done), ErrorCode::kInvalidArgument,
                       "code directory must be absolute: " + code_dir);
  }
  if (!specialized_.insert(instance_id).second) {
    return PostFailure(std::move(done), ErrorCode::kFailedPrecondition,
                       "instance " + instance_id + " has its code already");
  }
  // From now on it runs a function: its full CPU weight, before its runtime loads the code.
  if (!RestoreCpuWeight(instance_id)) {
    const int err = errno;
    cpu_weights_.erase(instance_id);
    return PostFailure(
        std::move(done), ErrorCode::kInternal,
        fmt::format("cannot restore the CPU weight of {}: {}", instance_id, std::strerror(err)));
  }
  if (SmallEnoughToCopyHere(code_dir)) {
    const std::string target = prewarm_dir_ + "/" + instance_id;
    std::error_code ec;
    if (!fs::is_directory(target, ec)) {
      return PostFailure(std::move(done), ErrorCode::kFailedPrecondition,
                         "instance " + instance_id + " is not prewarmed");
    }
    asio::post(io_,
               [done = std::move(done), copied = CopyTreeHere(code_dir, target)] { done(copied); });
    return;
  }
  pending_specializations_.emplace(instance_id, std::move(done));
  Send({{"type", "specialize"}, {"instance_id", instance_id}, {"code_dir", code_dir}});
}

bool ProcessJail::RestoreCpuWeight(const std::string& instance_id) {
  auto it = cpu_weights_.find(instance_id);
  if (it == cpu_weights_.end()) return true;  // never lowered, or restored already
  const std::string& full = it->second.full;
  if (::write(it->second.fd.get(), full.data(), full.size()) != static_cast<ssize_t>(full.size())) {
    return false;
  }
  cpu_weights_.erase(it);
  return true;
}

void ProcessJail::Prioritize(const std::string& instance_id) {
  // A failure leaves the weight file for Specialize, which tries again and reports it.
  (void)RestoreCpuWeight(instance_id);
}

void ProcessJail::Kill(const std::string& instance_id) {
  if (launcher_gone_) return;
  // Not at the launcher yet: it never starts.
  auto waiting = std::find_if(prewarmed_waiting_.begin(), prewarmed_waiting_.end(),
                              [&](const auto& entry) { return entry.first == instance_id; });
  if (waiting != prewarmed_waiting_.end()) {
    prewarmed_waiting_.erase(waiting);
    auto it = pending_spawns_.find(instance_id);
    if (it == pending_spawns_.end()) return;
    SpawnCallback done = std::move(it->second);
    pending_spawns_.erase(it);
    return PostFailure(std::move(done), ErrorCode::kUnavailable,
                       "instance " + instance_id + " was stopped before it started");
  }
  if (live_.count(instance_id) == 0 && pending_spawns_.count(instance_id) == 0) return;
  Send({{"type", "kill"}, {"instance_id", instance_id}});
}

void ProcessJail::SetExitCallback(ExitCallback on_exit) { on_exit_ = std::move(on_exit); }

void ProcessJail::KillAll() {
  if (launcher_gone_) return;
  // Prewarmed spawns not sent yet never start.
  while (!prewarmed_waiting_.empty()) Kill(prewarmed_waiting_.front().first);
  Send({{"type", "kill_all"}});
  // Shutdown only: wait right here, on this thread, for every instance to be reported gone.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  const int fd = launcher_.control_fd();
  while (!launcher_gone_ && (!live_.empty() || !pending_spawns_.empty() || !outbox_.empty())) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, static_cast<short>(POLLIN | (outbox_.empty() ? 0 : POLLOUT)), 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    if (p.revents & POLLOUT) Flush();
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) DrainMessages();
  }
}

std::string ProcessJail::ResourceLimits() const {
  const std::string& cgroups = launcher_.cgroups();
  return cgroups == "none" ? cgroups : "cgroups " + cgroups;
}

void ProcessJail::Send(const json& msg) {
  outbox_.push_back(msg.dump());
  if (!waiting_writable_) Flush();
}

void ProcessJail::Flush() {
  while (!outbox_.empty()) {
    auto sent = SendDatagram(launcher_.control_fd(), outbox_.front(), {}, /*nonblocking=*/true);
    if (!sent && sent.error().code == ErrorCode::kUnavailable) {
      if (waiting_writable_) return;
      waiting_writable_ = true;
      control_.async_wait(asio::posix::stream_descriptor::wait_write,
                          [this, alive = alive_](const boost::system::error_code& ec) {
                            if (ec || !*alive) return;
                            waiting_writable_ = false;
                            Flush();
                          });
      return;
    }
    if (!sent) {
      // A broken channel shows up as EOF on the read side too; that path reports it.
      outbox_.clear();
      return;
    }
    outbox_.pop_front();
  }
}

void ProcessJail::WaitReadable() {
  control_.async_wait(asio::posix::stream_descriptor::wait_read,
                      [this, alive = alive_](const boost::system::error_code& ec) {
                        if (ec || !*alive) return;
                        DrainMessages();
                        if (*alive && !launcher_gone_) WaitReadable();
                      });
}

void ProcessJail::DrainMessages() {
  auto alive = alive_;
  while (*alive && !launcher_gone_) {
    auto received = ReceiveDatagram(launcher_.control_fd(), /*nonblocking=*/true);
    if (!received) {
      if (received.error().code == ErrorCode::kUnavailable) return;  // drained
      if (received.error().code == ErrorCode::kTooLarge) continue;   // dropped; keep going
      OnLauncherGone();
      return;
    }
    if (!*received) {
      OnLauncherGone();
      return;
    }
    Handle(std::move(**received));
  }
}

void ProcessJail::Handle(Datagram datagram) {
  json msg = json::parse(datagram.data, nullptr, /*allow_exceptions=*/false);
  if (!msg.is_object()) return;
  const std::string type = msg.value("type", "");
  const std::string id = msg.value("instance_id", "");

  if (type == "spawned" || type == "spawn_failed") {
    if (id == prewarmed_at_launcher_) {
      prewarmed_at_launcher_.clear();
      SendNextPrewarmedSpawn();
    }
    auto it = pending_spawns_.find(id);
    if (it == pending_spawns_.end()) return;
    SpawnCallback done = std::move(it->second);
    pending_spawns_.erase(it);
    if (type == "spawn_failed") {
      auto code = static_cast<ErrorCode>(msg.value("code", static_cast<int>(ErrorCode::kInternal)));
      done(MakeError(code, fmt::format("cannot start sandbox {}: {}", id,
                                       msg.value("error", "unknown error"))));
      return;
    }
    // After listener, output and channel: the cgroup's peak memory file when the launcher
    // has one, then a prewarmed instance's CPU weight file.
    const bool memory_peak = msg.value("memory_peak", false);
    const auto full_cpu_weight = msg.find("full_cpu_weight");
    const bool cpu_weight = full_cpu_weight != msg.end() && full_cpu_weight->is_string();
    if (datagram.fds.size() != 3 + memory_peak + cpu_weight) {
      done(MakeError(ErrorCode::kInternal, "launcher sent a spawn reply without its fds"));
      return;
    }
    if (cpu_weight) {
      cpu_weights_[id] =
          CpuWeight{std::move(datagram.fds.back()), full_cpu_weight->get<std::string>()};
    }
    live_.insert(id);
    InstanceHandle instance;
    instance.id = id;
    instance.pid = msg.value("pid", -1);
    // The listener lives in the sandbox's own network namespace: accepting on it is how wispd
    // serves that sandbox, and only that sandbox, the Runtime API; the channel is a Unix
    // socket pair whose other end is the runtime's kRuntimeApiChannelFd.
    instance.runtime_api = std::make_unique<runtime_api::SocketTransport>(
        io_, std::move(datagram.fds[0]), std::move(datagram.fds[2]));
    instance.logs = std::make_unique<PipeLogStream>(io_, std::move(datagram.fds[1]));
    if (memory_peak) {
      instance.memory = std::make_unique<CgroupMemoryMeter>(std::move(datagram.fds[3]));
    }
    done(std::move(instance));
  } else if (type == "specialized" || type == "specialize_failed") {
    auto it = pending_specializations_.find(id);
    if (it == pending_specializations_.end()) return;
    SpecializeCallback done = std::move(it->second);
    pending_specializations_.erase(it);
    if (type == "specialize_failed") {
      auto code = static_cast<ErrorCode>(msg.value("code", static_cast<int>(ErrorCode::kInternal)));
      done(MakeError(code, fmt::format("cannot put code into sandbox {}: {}", id,
                                       msg.value("error", "unknown error"))));
      return;
    }
    done({});
  } else if (type == "exited") {
    live_.erase(id);
    specialized_.erase(id);
    cpu_weights_.erase(id);
    // The launcher answers a specialisation before it reports the instance's end; this is
    // for one it could not answer.
    if (auto it = pending_specializations_.find(id); it != pending_specializations_.end()) {
      SpecializeCallback done = std::move(it->second);
      pending_specializations_.erase(it);
      done(MakeError(ErrorCode::kUnavailable, "instance " + id + " ended"));
    }
    ExitStatus status;
    status.instance_id = id;
    status.exit_code = msg.value("exit_code", -1);
    status.signal = msg.value("signal", 0);
    status.oom_killed = msg.value("oom_killed", false);
    if (auto peak = msg.find("memory_peak_bytes");
        peak != msg.end() && peak->is_number_unsigned()) {
      status.memory_peak_bytes = peak->get<uint64_t>();
    }
    if (on_exit_) on_exit_(status);
  }
}

void ProcessJail::OnLauncherGone() {
  launcher_gone_ = true;
  outbox_.clear();
  prewarmed_waiting_.clear();
  prewarmed_at_launcher_.clear();
  cpu_weights_.clear();
  auto alive = alive_;
  auto pending = std::move(pending_spawns_);
  pending_spawns_.clear();
  for (auto& [id, done] : pending) {
    done(MakeError(ErrorCode::kUnavailable, "sandbox launcher exited"));
    if (!*alive) return;
  }
  auto specializing = std::move(pending_specializations_);
  pending_specializations_.clear();
  for (auto& [id, done] : specializing) {
    done(MakeError(ErrorCode::kUnavailable, "sandbox launcher exited"));
    if (!*alive) return;
  }
  auto live = std::move(live_);
  live_.clear();
  specialized_.clear();
  for (const auto& id : live) {
    ExitStatus killed;
    killed.instance_id = id;
    killed.signal = SIGKILL;
    if (on_exit_) on_exit_(killed);
    if (!*alive) return;
  }
}

}  // namespace wisp::sandbox
