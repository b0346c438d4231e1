#include "wisp/sandbox/launcher.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "wisp/common/defer.h"
#include "wisp/sandbox/cgroup.h"
#include "wisp/sandbox/control_protocol.h"
#include "wisp/sandbox/sandbox_child.h"
#include "wisp/sandbox/seccomp_filter.h"

namespace wisp::sandbox {
namespace {

using nlohmann::json;

// Sandbox setup (mounts, exec) takes milliseconds; this only bounds a wedged child.
constexpr auto kSetupTimeout = std::chrono::seconds(10);
// Sandboxes are the host OOM killer's first choice, so a host-wide shortage never picks wispd.
constexpr int kSandboxOomScoreAdj = 1000;

// Writes a /proc file of another process (uid_map, oom_score_adj): one write() each, as the
// kernel requires for the id maps.
Result<void> WriteProcFile(pid_t pid, const char* name, const std::string& value) {
  std::string path = fmt::format("/proc/{}/{}", pid, name);
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return ErrnoError("open " + path);
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return ErrnoError(fmt::format("write '{}' to {}", value, path));
  }
  return {};
}

void Log(const std::string& msg) { std::fprintf(stderr, "wisp-launcher: %s\n", msg.c_str()); }

bool IsPidAlive(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

bool IsNumber(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// One running instance, as the launcher tracks it.
struct Instance {
  std::string id;
  pid_t pid = -1;      // the sandbox's init, as seen from the host
  UniqueFd sync;       // launcher end of the sync socket; carries the runtime's wait status
  std::string group;   // cgroup path, empty without cgroups
  UniqueFd oom_event;  // cgroup v1: readable after an OOM in the group (empty on v2)
  // The group hit its memory limit. Our kill may beat the kernel's OOM killer to it, so the
  // kernel's oom_kill counter alone would miss it.
  bool oom_seen = false;
};

// A sandbox that finished setup: what `spawned` hands to wispd.
struct Started {
  Instance instance;
  UniqueFd listener;
  UniqueFd output;
};

// The launcher's main loop and state. Lives only in the forked launcher process.
class LauncherProcess {
 public:
  LauncherProcess(const LauncherOptions& options, int control_fd)
      : options_(options), control_(control_fd) {}

  int Run() {
    if (auto ready = Start(); !ready) {
      Reply({{"type", "fatal"}, {"error", ready.error().message}});
      return 1;
    }
    std::vector<pollfd> fds;
    std::vector<std::string> oom_ids;  // instance of fds[2 + i]
    for (;;) {
      fds = {{control_.get(), POLLIN, 0}, {signal_fd_.get(), POLLIN, 0}};
      oom_ids.clear();
      for (const auto& [id, instance] : instances_) {
        if (!instance.oom_event) continue;
        fds.push_back({instance.oom_event.get(), POLLIN, 0});
        oom_ids.push_back(id);
      }
      if (::poll(fds.data(), fds.size(), -1) < 0) {
        if (errno == EINTR) continue;
        Log(fmt::format("poll: {}", std::strerror(errno)));
        break;
      }
      // An OOM in a group on cgroup v1 kills one process (maybe a child of the runtime); the
      // instance must end as a whole, as memory.oom.group does on v2.
      for (size_t i = 0; i < oom_ids.size(); ++i) {
        if (!(fds[2 + i].revents & POLLIN)) continue;
        auto it = instances_.find(oom_ids[i]);
        if (it == instances_.end()) continue;
        uint64_t count;
        (void)!::read(it->second.oom_event.get(), &count, sizeof count);
        it->second.oom_event.Reset();
        it->second.oom_seen = true;
        KillInstance(it->second);
      }
      if (fds[1].revents & POLLIN) {
        if (!HandleSignals()) break;
      }
      if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        if (!HandleControl()) break;
      }
    }
    ShutDown();
    return 0;
  }

 private:
  Result<void> Start() {
    // SIGCHLD (an instance ended) and SIGTERM/SIGINT (shut down) arrive through the poll loop.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    ::sigprocmask(SIG_BLOCK, &mask, nullptr);
    signal_fd_.Reset(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!signal_fd_) return ErrnoError("signalfd");

    // Sandboxes inherit our supplementary groups, and inside a user namespace with setgroups
    // denied they could never drop them: hold none (root needs none).
    if (::setgroups(0, nullptr) != 0) return ErrnoError("setgroups");

    const std::string& policy = options_.seccomp_policy;
    auto filter = SeccompFilter::Compile(policy.empty() ? DefaultSeccompPolicy() : policy);
    if (!filter) return tl::unexpected(filter.error());
    seccomp_.emplace(std::move(*filter));

    struct stat st;
    if (::stat(options_.sandbox_root_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return MakeError(
          ErrorCode::kFailedPrecondition,
          fmt::format("sandbox root dir {} is not a directory", options_.sandbox_root_dir));
    }

    auto fs = CgroupFs::Detect(options_.cgroup_mount);
    std::string why_not;
    if (!fs) {
      why_not = fs.error().message;
    } else if (!fs->CanEnforceLimits()) {
      why_not = fmt::format("cgroups {} lack the memory or pids controller", fs->Describe());
    } else if (auto created = PrepareGroups(*fs); !created) {
      why_not = created.error().message;
    } else {
      cgroups_ = std::move(*fs);
    }
    if (!cgroups_ && options_.enforce_limits) {
      return MakeError(ErrorCode::kFailedPrecondition, "cannot enforce sandbox limits: " + why_not);
    }
    if (!cgroups_) Log("running WITHOUT cgroup limits: " + why_not);
    Reply({{"type", "ready"}, {"cgroups", cgroups_ ? cgroups_->Describe() : "none"}});
    return {};
  }

  // Removes groups of launchers that died without cleaning up (named for a pid that is gone),
  // then creates our own group afresh.
  Result<void> PrepareGroups(const CgroupFs& fs) {
    const std::string& group = options_.cgroup_group;
    if (group.empty()) return MakeError(ErrorCode::kInvalidArgument, "cgroup_group is empty");
    std::string parent = group.substr(0, group.find_last_of('/') + 1);  // "wisp/"
    if (!parent.empty()) {
      for (const auto& name : fs.Children(parent)) {
        if (!IsNumber(name) || IsPidAlive(std::stoi(name))) continue;
        Log(fmt::format("removing stale cgroup {}{}", parent, name));
        if (auto r = fs.KillAndRemove(parent + name); !r) Log(r.error().message);
      }
    }
    // A group of our own name can only be left from an earlier launcher of this same wispd.
    if (auto r = fs.KillAndRemove(group); !r) return r;
    return fs.CreateGroup(group);
  }

  void Reply(const json& msg, std::span<const int> fds = {}) {
    // A failed reply means wispd is gone; the EOF on the control socket ends the loop.
    if (!control_open_) return;
    if (auto r = SendDatagram(control_.get(), msg.dump(), fds); !r) Log(r.error().message);
  }

  // Returns false when the launcher should shut down.
  bool HandleSignals() {
    signalfd_siginfo info;
    bool keep_running = true;
    while (::read(signal_fd_.get(), &info, sizeof info) == sizeof info) {
      if (info.ssi_signo == SIGCHLD) {
        ReapInstances();
      } else {
        keep_running = false;
      }
    }
    return keep_running;
  }

  // Returns false when the launcher should shut down.
  bool HandleControl() {
    auto received = ReceiveDatagram(control_.get(), /*nonblocking=*/true);
    if (!received) {
      if (received.error().code == ErrorCode::kUnavailable) return true;
      Log(received.error().message);
      return received.error().code == ErrorCode::kTooLarge;
    }
    if (!*received) {  // wispd closed the channel
      control_open_ = false;
      return false;
    }
    json msg = json::parse((*received)->data, nullptr, /*allow_exceptions=*/false);
    std::string type = msg.is_object() ? msg.value("type", "") : "";
    if (type == "spawn") {
      HandleSpawn(msg.value("spec", json::object()));
    } else if (type == "kill") {
      auto it = instances_.find(msg.value("instance_id", ""));
      if (it != instances_.end()) KillInstance(it->second);
    } else if (type == "kill_all") {
      for (auto& [id, instance] : instances_) KillInstance(instance);
    } else {
      Log("ignoring malformed control message");
    }
    return true;
  }

  void HandleSpawn(const json& j) {
    std::string id = j.is_object() ? j.value("instance_id", "") : "";
    auto fail = [&](const Error& e) {
      Reply({{"type", "spawn_failed"},
             {"instance_id", id},
             {"code", static_cast<int>(e.code)},
             {"error", e.message}});
    };
    auto spec = SpawnSpecFromJson(j);
    if (!spec) return fail(spec.error());
    if (instances_.count(id) != 0) {
      return fail(Error{ErrorCode::kAlreadyExists, "instance " + id + " already exists"});
    }
    auto started = StartInstance(*spec);
    if (!started) return fail(started.error());
    int fds[] = {started->listener.get(), started->output.get()};
    Reply({{"type", "spawned"}, {"instance_id", id}, {"pid", started->instance.pid}}, fds);
    instances_.emplace(id, std::move(started->instance));
  }

  Result<Started> StartInstance(const SpawnSpec& spec) {
    Started s;
    s.instance.id = spec.instance_id;

    // Cgroup first: if it cannot be made, nothing was started yet.
    if (cgroups_) {
      s.instance.group = options_.cgroup_group + "/" + spec.instance_id;
      CgroupLimits limits{spec.memory_limit_bytes, spec.pids_limit, spec.vcpu};
      auto created = cgroups_->CreateGroup(s.instance.group);
      if (created) created = cgroups_->SetLimits(s.instance.group, limits);
      if (!created) {
        (void)cgroups_->KillAndRemove(s.instance.group);
        return tl::unexpected(created.error());
      }
    }
    Defer remove_group([&] {
      if (!s.instance.group.empty()) (void)cgroups_->KillAndRemove(s.instance.group);
    });

    int sync[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sync) != 0) {
      return ErrnoError("socketpair");
    }
    s.instance.sync.Reset(sync[0]);
    UniqueFd child_sync(sync[1]);
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return ErrnoError("pipe");
    s.output.Reset(out[0]);
    UniqueFd child_output(out[1]);

    // Like fork(), but the child is pid 1 of new pid, mount, network, ipc and uts namespaces,
    // all owned by a new user namespace: whatever privilege the child has is privilege over
    // those namespaces only, never over the host. (The cgroup namespace comes later, from the
    // child, once it is in its cgroup.)
    long pid = ::syscall(SYS_clone,
                         CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC |
                             CLONE_NEWUTS | SIGCHLD,
                         nullptr, nullptr, nullptr, nullptr);
    if (pid < 0) return ErrnoError("clone");
    if (pid == 0) {
      RunSandboxChild(
          {&spec, options_.sandbox_root_dir, &*seccomp_, child_sync.get(), child_output.get()});
    }
    s.instance.pid = static_cast<pid_t>(pid);
    child_sync.Reset();
    child_output.Reset();
    Defer kill_child([&] {
      ::kill(s.instance.pid, SIGKILL);
      ::waitpid(s.instance.pid, nullptr, 0);
    });

    // Into the cgroup before it runs a single instruction of setup: everything it forks later
    // is then confined and accounted.
    if (cgroups_) {
      if (auto r = cgroups_->AddProcess(s.instance.group, s.instance.pid); !r) {
        return tl::unexpected(r.error());
      }
      auto oom_event = cgroups_->OomEventFd(s.instance.group);
      if (!oom_event) return tl::unexpected(oom_event.error());
      s.instance.oom_event = std::move(*oom_event);
    }
    if (auto r =
            WriteProcFile(s.instance.pid, "oom_score_adj", std::to_string(kSandboxOomScoreAdj));
        !r) {
      return tl::unexpected(r.error());
    }
    // Root inside the user namespace is the unprivileged sandbox uid/gid outside; nothing else
    // is mapped, so host files owned by anyone else show up as "nobody" and stay theirs.
    // setgroups is denied so the child can never drop groups to get around a file's
    // group-deny permissions.
    if (auto r =
            WriteProcFile(s.instance.pid, "uid_map", fmt::format("0 {} 1\n", options_.sandbox_uid));
        !r) {
      return tl::unexpected(r.error());
    }
    if (auto r = WriteProcFile(s.instance.pid, "setgroups", "deny"); !r) {
      return tl::unexpected(r.error());
    }
    if (auto r =
            WriteProcFile(s.instance.pid, "gid_map", fmt::format("0 {} 1\n", options_.sandbox_gid));
        !r) {
      return tl::unexpected(r.error());
    }
    if (auto r = SendDatagram(s.instance.sync.get(), "G"); !r) return tl::unexpected(r.error());

    auto deadline = std::chrono::steady_clock::now() + kSetupTimeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{s.instance.sync.get(), POLLIN, 0};
      int ready = ::poll(&p, 1, std::max<int>(0, static_cast<int>(left.count())));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return MakeError(ErrorCode::kTimeout, "sandbox setup timed out");
      auto msg = ReceiveDatagram(s.instance.sync.get());
      if (!msg) return tl::unexpected(msg.error());
      if (!*msg) return MakeError(ErrorCode::kInternal, "sandbox exited during setup");
      const std::string& data = (*msg)->data;
      if (data == "L" && (*msg)->fds.size() == 1) {
        s.listener = std::move((*msg)->fds[0]);
      } else if (!data.empty() && data[0] == 'E') {
        return MakeError(ErrorCode::kInternal, data.substr(1));
      } else if (data == "R" && s.listener) {
        break;
      } else {
        return MakeError(ErrorCode::kInternal, "unexpected message from sandbox: " + data);
      }
    }
    // wispd reads output from its event loop.
    ::fcntl(s.output.get(), F_SETFL, ::fcntl(s.output.get(), F_GETFL) | O_NONBLOCK);
    kill_child.Cancel();
    remove_group.Cancel();
    return s;
  }

  void KillInstance(const Instance& instance) {
    // Killing pid 1 of the namespace makes the kernel kill every process in it; the cgroup
    // sweep also catches anything that is mid-fork.
    ::kill(instance.pid, SIGKILL);
    if (cgroups_) {
      for (pid_t pid : cgroups_->Procs(instance.group)) ::kill(pid, SIGKILL);
    }
  }

  void ReapInstances() {
    int status;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      for (auto it = instances_.begin(); it != instances_.end(); ++it) {
        if (it->second.pid != pid) continue;
        Finish(it->second, status);
        instances_.erase(it);
        break;
      }
    }
  }

  // The instance's init has exited (and been reaped, with `init_status`): report and clean up.
  void Finish(Instance& instance, int init_status) {
    int status = init_status;
    // Init sends the runtime's own status just before exiting; use it when it is there.
    for (;;) {
      auto msg = ReceiveDatagram(instance.sync.get(), /*nonblocking=*/true);
      if (!msg || !*msg) break;
      if ((*msg)->data.size() > 1 && (*msg)->data[0] == 'S') {
        status = std::atoi((*msg)->data.c_str() + 1);
      }
    }
    bool oom = instance.oom_seen;
    if (cgroups_) {
      oom = oom || cgroups_->OomKills(instance.group) > 0;
      if (auto r = cgroups_->KillAndRemove(instance.group); !r) Log(r.error().message);
    }
    Reply({{"type", "exited"},
           {"instance_id", instance.id},
           {"exit_code", WIFEXITED(status) ? WEXITSTATUS(status) : -1},
           {"signal", WIFSIGNALED(status) ? WTERMSIG(status) : 0},
           {"oom_killed", oom}});
  }

  void ShutDown() {
    for (auto& [id, instance] : instances_) KillInstance(instance);
    for (auto& [id, instance] : instances_) {
      int status = 0;
      ::waitpid(instance.pid, &status, 0);
      Finish(instance, status);
    }
    instances_.clear();
    if (cgroups_) {
      if (auto r = cgroups_->KillAndRemove(options_.cgroup_group); !r) Log(r.error().message);
    }
  }

  const LauncherOptions options_;
  UniqueFd control_;
  bool control_open_ = true;
  UniqueFd signal_fd_;
  std::optional<CgroupFs> cgroups_;            // empty: running without limits
  std::optional<SeccompFilter> seccomp_;       // compiled at Start()
  std::map<std::string, Instance> instances_;  // by instance id
};

}  // namespace

Result<Launcher> Launcher::Fork(const LauncherOptions& options) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return ErrnoError("socketpair for launcher");
  }
  UniqueFd ours(sv[0]);
  UniqueFd theirs(sv[1]);
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return ErrnoError("fork launcher");
  if (pid == 0) {
    // The launcher must not outlive wispd; SIGTERM takes the orderly path (kill, clean up).
    // If wispd died before prctl took effect, getppid() already shows another parent.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(0);
    ::prctl(PR_SET_NAME, "wisp-launcher");
    // Keep only stdio (for logs) and the control socket; wispd's other fds are not ours.
    int control = theirs.Release();
    if (control != 3) {
      if (::dup2(control, 3) < 0) ::_exit(1);
      ::close(control);
    }
    ::close_range(4, ~0U, 0);
    ::fcntl(3, F_SETFD, FD_CLOEXEC);
    int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) {
      ::dup2(null_fd, 0);
      if (null_fd != 0) ::close(null_fd);
    }
    int code = LauncherProcess(options, 3).Run();
    ::_exit(code);
  }
  theirs.Reset();

  Launcher launcher(pid, std::move(ours), "");
  auto hello = ReceiveDatagram(launcher.control_fd());
  if (!hello) return tl::unexpected(hello.error());
  if (!*hello) return MakeError(ErrorCode::kInternal, "launcher exited during start");
  json msg = json::parse((*hello)->data, nullptr, false);
  if (!msg.is_object() || msg.value("type", "") != "ready") {
    std::string why = msg.is_object() ? msg.value("error", "unknown") : "bad message";
    return MakeError(ErrorCode::kFailedPrecondition, "sandbox launcher failed to start: " + why);
  }
  launcher.cgroups_ = msg.value("cgroups", "none");
  return launcher;
}

Launcher::Launcher(Launcher&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      control_(std::move(other.control_)),
      cgroups_(std::move(other.cgroups_)) {}

Launcher& Launcher::operator=(Launcher&& other) noexcept {
  if (this != &other) {
    Shutdown();
    pid_ = std::exchange(other.pid_, -1);
    control_ = std::move(other.control_);
    cgroups_ = std::move(other.cgroups_);
  }
  return *this;
}

Launcher::~Launcher() { Shutdown(); }

void Launcher::Shutdown() {
  control_.Reset();
  if (pid_ > 0) {
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
}

}  // namespace wisp::sandbox
