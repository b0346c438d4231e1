#include "wisp/sandbox/process_jail.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>

#include <chrono>

#include <fmt/format.h>
#include <boost/asio/post.hpp>

namespace wisp::sandbox {

namespace asio = boost::asio;
using nlohmann::json;

ProcessJail::ProcessJail(asio::io_context& io, Launcher launcher)
    : io_(io), launcher_(std::move(launcher)), control_(io, launcher_.control_fd()) {
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

void ProcessJail::Spawn(const SpawnSpec& spec, SpawnCallback done) {
  // Callers expect `done` later, never from inside Spawn; errors are posted too.
  auto fail = [&](ErrorCode code, std::string message) {
    asio::post(io_, [done = std::move(done), code, message = std::move(message)] {
      done(MakeError(code, message));
    });
  };
  if (launcher_gone_) return fail(ErrorCode::kUnavailable, "sandbox launcher is not running");
  if (auto valid = ValidateSpawnSpec(spec); !valid) {
    return fail(valid.error().code, valid.error().message);
  }
  if (pending_spawns_.count(spec.instance_id) != 0 || live_.count(spec.instance_id) != 0) {
    return fail(ErrorCode::kAlreadyExists, "instance " + spec.instance_id + " already exists");
  }
  pending_spawns_.emplace(spec.instance_id, std::move(done));
  Send({{"type", "spawn"}, {"spec", SpawnSpecToJson(spec)}});
}

void ProcessJail::Kill(const std::string& instance_id) {
  if (launcher_gone_) return;
  if (live_.count(instance_id) == 0 && pending_spawns_.count(instance_id) == 0) return;
  Send({{"type", "kill"}, {"instance_id", instance_id}});
}

void ProcessJail::SetExitCallback(ExitCallback on_exit) { on_exit_ = std::move(on_exit); }

void ProcessJail::KillAll() {
  if (launcher_gone_) return;
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
    // A fourth fd, the cgroup's peak memory file, comes when the launcher has one.
    if (datagram.fds.size() != 3 && datagram.fds.size() != 4) {
      done(MakeError(ErrorCode::kInternal, "launcher sent a spawn reply without its fds"));
      return;
    }
    live_.insert(id);
    SpawnedInstance instance;
    instance.pid = msg.value("pid", -1);
    instance.runtime_api_listener = std::move(datagram.fds[0]);
    instance.output = std::move(datagram.fds[1]);
    instance.runtime_api_channel = std::move(datagram.fds[2]);
    if (datagram.fds.size() == 4) instance.memory_peak = std::move(datagram.fds[3]);
    done(std::move(instance));
  } else if (type == "exited") {
    live_.erase(id);
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
  auto alive = alive_;
  auto pending = std::move(pending_spawns_);
  pending_spawns_.clear();
  for (auto& [id, done] : pending) {
    done(MakeError(ErrorCode::kUnavailable, "sandbox launcher exited"));
    if (!*alive) return;
  }
  auto live = std::move(live_);
  live_.clear();
  for (const auto& id : live) {
    ExitStatus killed;
    killed.instance_id = id;
    killed.signal = SIGKILL;
    if (on_exit_) on_exit_(killed);
    if (!*alive) return;
  }
}

}  // namespace wisp::sandbox
