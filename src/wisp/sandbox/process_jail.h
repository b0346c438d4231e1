// ProcessJail: the Backend that runs each instance as a process tree in its own namespaces and
// cgroup, created by the privileged Launcher. This class is wispd's side of the control
// channel: it sends requests, and matches the launcher's replies and exit events to callers.
//
// Thread rules: construct, call and destroy on the thread that runs `io`; every callback runs
// there too. KillAll() blocks that thread (up to ~5 s); it is meant for shutdown.
#pragma once

#include <utility>  // before Asio: Boost 1.74 misses it

#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <nlohmann/json.hpp>

#include "wisp/sandbox/backend.h"
#include "wisp/sandbox/control_protocol.h"
#include "wisp/sandbox/launcher.h"

namespace wisp::sandbox {

class ProcessJail final : public Backend {
 public:
  ProcessJail(boost::asio::io_context& io, Launcher launcher);
  // Closes the channel; the launcher then kills whatever is still running, and is reaped.
  ~ProcessJail() override;
  ProcessJail(const ProcessJail&) = delete;
  ProcessJail& operator=(const ProcessJail&) = delete;

  void Spawn(const SpawnSpec& spec, SpawnCallback done) override;
  // A small tree is copied into the instance's directory on the launcher's stage right here;
  // a larger one the launcher hard-links there from its staged copy of `code_dir` (one per code
  // directory, shared by every instance that runs it).
  void Specialize(const std::string& instance_id, const std::string& code_dir,
                  SpecializeCallback done) override;
  // Writes its full CPU weight back now (Specialize would).
  void Prioritize(const std::string& instance_id) override;
  void Kill(const std::string& instance_id) override;
  void SetExitCallback(ExitCallback on_exit) override;
  void KillAll() override;
  std::string ResourceLimits() const override;

  const Launcher& launcher() const { return launcher_; }

 private:
  void Send(const nlohmann::json& msg);
  // Writes queued messages until the socket is full; then waits for it to drain.
  void Flush();
  void WaitReadable();
  // Handles every message already queued on the socket.
  void DrainMessages();
  void Handle(Datagram datagram);
  // Runs `done` later with an error, never from inside the caller.
  template <typename Callback>
  void PostFailure(Callback done, ErrorCode code, std::string message);
  // The launcher is gone: every pending spawn fails, every live instance is reported ended
  // (the kernel killed them with it, through PR_SET_PDEATHSIG).
  void OnLauncherGone();

  boost::asio::io_context& io_;
  Launcher launcher_;
  const std::string prewarm_dir_;  // Launcher::prewarm_dir()
  boost::asio::posix::stream_descriptor control_;
  std::deque<std::string> outbox_;  // messages the socket had no room for yet
  bool waiting_writable_ = false;
  bool launcher_gone_ = false;
  std::unordered_map<std::string, SpawnCallback> pending_spawns_;  // by instance id
  std::unordered_map<std::string, SpecializeCallback> pending_specializations_;
  std::unordered_set<std::string> live_;         // spawned, not yet exited
  std::unordered_set<std::string> specialized_;  // live ones given their code (or asked to be)
  // The launcher creates one sandbox at a time, in the order asked. Prewarmed instances are
  // started in the background, so at most one of them is at the launcher at once: a function's
  // own start waits behind that one at most, never behind a pool's refill. The others wait
  // here, oldest first (their spawn messages); their callbacks are in pending_spawns_.
  std::string prewarmed_at_launcher_;  // instance id; empty when none
  std::deque<std::pair<std::string, nlohmann::json>> prewarmed_waiting_;
  // Prewarmed instances' CPU weight files (opened by the launcher, which gave them a low weight
  // until they serve a function) and the weight to write at specialisation.
  struct CpuWeight {
    UniqueFd fd;
    std::string full;
  };
  std::unordered_map<std::string, CpuWeight> cpu_weights_;  // by instance id
  // Writes a prewarmed instance's full CPU weight back (once; then forgets the file); false
  // with errno on failure.
  bool RestoreCpuWeight(const std::string& instance_id);
  // Sends the next waiting prewarmed spawn if none is at the launcher.
  void SendNextPrewarmedSpawn();
  ExitCallback on_exit_;
  // Lets async handlers that outlive this object see that it is gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace wisp::sandbox
