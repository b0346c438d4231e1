#include "wisp/sandbox/launcher.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/securebits.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "wisp/common/defer.h"
#include "wisp/sandbox/cgroup.h"
#include "wisp/sandbox/control_protocol.h"
#include "wisp/sandbox/host_ids.h"
#include "wisp/sandbox/process_title.h"
#include "wisp/sandbox/sandbox_child.h"
#include "wisp/sandbox/seccomp_filter.h"

namespace wisp::sandbox {
namespace {

using nlohmann::json;

// Sandbox setup (mounts, exec) takes milliseconds; this only bounds a wedged child.
constexpr auto kSetupTimeout = std::chrono::seconds(10);
// Sandboxes are the host OOM killer's first choice, so a host-wide shortage never picks wispd.
constexpr int kSandboxOomScoreAdj = 1000;
// The fds slirp4netns gets for --ready-fd and --exit-fd.
constexpr int kHelperReadyFd = 3;
constexpr int kHelperExitFd = 4;
// A prewarmed instance's share of the CPU once its sandbox is set up and until it is
// specialised, relative to its own vcpu: its runtime loads in the background, and must not slow
// down the calls, cold starts and deploys of other instances meanwhile (on a busy node the pool
// fills from their idle time; a few loading at once weigh less than one function's instance).
// Its full weight comes back when it becomes a function's (Backend::Specialize). The setup
// itself runs at the full weight: the launcher waits for it, and so do the spawns behind it.
constexpr double kPrewarmedCpuFraction = 1.0 / 64;
// slirp4netns opens one host socket per connection of the sandbox, which has RLIMIT_NOFILE 1024
// itself; a little more than that for its own files.
constexpr rlim_t kHelperMaxOpenFiles = 1100;

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
  bool killed = false;  // we killed it: its helper ending too is expected
  // slirp4netns serving the instance's outbound network; -1 without one, or once reaped.
  pid_t net_helper = -1;
  // Write end of the helper's --exit-fd pipe: closing it, or the launcher dying, stops it.
  UniqueFd net_helper_exit;
  // The host uid and gid the instance was created by (see LauncherOptions::sandbox_id_base);
  // back to the pool once its init is reaped, when no process of it is left.
  std::optional<uint32_t> host_id;
  std::vector<std::string> staged;  // Stage trees it binds, released when it ends
  // A prewarmed instance's code directory on the stage ("prewarm/<id>"); empty for others.
  std::string prewarm_dir;
  bool specialized = false;  // its prewarm_dir has (or may have part of) a function's code
};

// A network helper that was started and has not yet said it is ready.
struct StartingHelper {
  pid_t pid = -1;
  UniqueFd ready;  // read end of its --ready-fd pipe: "1" once tap0 is configured
  UniqueFd exit;   // write end of its --exit-fd pipe
};

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return fmt::format("exit code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("signal {}", WTERMSIG(status));
  return fmt::format("status {}", status);
}

// Copies the tree under `source` (a directory fd) into `target` (an empty directory fd): regular
// files, directories and symbolic links (as links, never followed), each with its permission
// bits less setuid/setgid/sticky and the group's and others' write bits. Anything else (devices,
// fifos, sockets) is left out. The launcher runs this as root on trees wispd wrote, and never
// follows a link while reading them.
Result<void> CopyTree(int source, int target) {
  int listing = ::dup(source);
  if (listing < 0) return ErrnoError("dup");
  DIR* dir = ::fdopendir(listing);
  if (dir == nullptr) {
    ::close(listing);
    return ErrnoError("fdopendir");
  }
  Defer close_dir([&] { ::closedir(dir); });
  while (dirent* entry = ::readdir(dir)) {
    const char* name = entry->d_name;
    if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
    struct stat st;
    if (::fstatat(source, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return ErrnoError(fmt::format("stat {}", name));
    }
    const mode_t mode = st.st_mode & 0755;
    if (S_ISDIR(st.st_mode)) {
      if (::mkdirat(target, name, mode | S_IRWXU) != 0)
        return ErrnoError("mkdir " + std::string(name));
      UniqueFd from(::openat(source, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      UniqueFd to(::openat(target, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!from || !to) return ErrnoError(fmt::format("open directory {}", name));
      if (auto r = CopyTree(from.get(), to.get()); !r) return r;
    } else if (S_ISREG(st.st_mode)) {
      UniqueFd from(::openat(source, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      if (!from) return ErrnoError(fmt::format("open {}", name));
      UniqueFd to(
          ::openat(target, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
      if (!to) return ErrnoError(fmt::format("create {}", name));
      for (off_t left = st.st_size; left > 0;) {
        ssize_t n = ::sendfile(to.get(), from.get(), nullptr, static_cast<size_t>(left));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ErrnoError(fmt::format("copy {}", name));
        if (n == 0) break;  // the file shrank meanwhile
        left -= n;
      }
    } else if (S_ISLNK(st.st_mode)) {
      char link[4096];
      ssize_t n = ::readlinkat(source, name, link, sizeof link - 1);
      if (n < 0) return ErrnoError(fmt::format("readlink {}", name));
      link[n] = '\0';
      if (::symlinkat(link, target, name) != 0) return ErrnoError(fmt::format("symlink {}", name));
    }
  }
  return {};
}

// Removes `name` under `parent` and everything below it, following no link.
void RemoveTree(int parent, const char* name) {
  UniqueFd dir_fd(::openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (dir_fd) {
    int listing = ::dup(dir_fd.get());
    if (DIR* dir = listing >= 0 ? ::fdopendir(listing) : nullptr) {
      std::vector<std::string> names;
      while (dirent* entry = ::readdir(dir)) {
        if (std::strcmp(entry->d_name, ".") != 0 && std::strcmp(entry->d_name, "..") != 0) {
          names.emplace_back(entry->d_name);
        }
      }
      ::closedir(dir);
      for (const auto& child : names) {
        if (::unlinkat(dir_fd.get(), child.c_str(), 0) != 0 && errno == EISDIR) {
          RemoveTree(dir_fd.get(), child.c_str());
        }
      }
    } else if (listing >= 0) {
      ::close(listing);
    }
  }
  ::unlinkat(parent, name, AT_REMOVEDIR);
}

// Fills `target` (an empty directory) with hard links to the files and symbolic links under
// `source`, on the same filesystem, making its directories anew with the same mode: one
// system call per entry, whatever the files' sizes. Follows no link.
Result<void> LinkTree(int source, int target) {
  int listing = ::dup(source);
  if (listing < 0) return ErrnoError("dup");
  DIR* dir = ::fdopendir(listing);
  if (dir == nullptr) {
    ::close(listing);
    return ErrnoError("fdopendir");
  }
  Defer close_dir([&] { ::closedir(dir); });
  while (dirent* entry = ::readdir(dir)) {
    const char* name = entry->d_name;
    if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
    struct stat st;
    if (::fstatat(source, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return ErrnoError(fmt::format("stat {}", name));
    }
    if (S_ISDIR(st.st_mode)) {
      if (::mkdirat(target, name, st.st_mode & 07777) != 0) {
        return ErrnoError("mkdir " + std::string(name));
      }
      UniqueFd from(::openat(source, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      UniqueFd to(::openat(target, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!from || !to) return ErrnoError(fmt::format("open directory {}", name));
      if (auto r = LinkTree(from.get(), to.get()); !r) return r;
    } else if (::linkat(source, name, target, name, 0) != 0) {
      return ErrnoError(fmt::format("link {}", name));
    }
  }
  return {};
}

// The launcher's private tmpfs (LauncherOptions::sandbox_root_dir): where sandboxes mount
// their roots, and what they bind their code and shims from. A bind mount shows its source's
// path from the root of the source's filesystem in /proc/self/mountinfo; binding from here,
// that path is "/trees/<n>" or "/prewarm/<instance>" instead of the host's layout. The stage is
// the launcher's working directory, so a child finds it by relative paths in its own copy of
// the launcher's mount namespace, without walking the host's directories.
//   root/            the mount point of each sandbox's root tmpfs (in the sandbox's namespace)
//   trees/<n>/       a copy of a code or shim directory, shared by the instances that use it,
//                    removed when the last of them ends
//   prewarm/<id>/    a prewarmed instance's /var/task, empty at spawn; bound as it is, live, so
//                    that the code put there at specialisation appears in it (wispd's copy
//                    of a small tree, through Launcher::prewarm_dir(); LinkCode's hard links)
class Stage {
 public:
  // Mounts the stage on `dir` (the launcher is in its own mount namespace by then) and makes it
  // the working directory.
  static Result<Stage> Mount(const std::string& dir) {
    // Traversable by the sandboxes' uids (which own nothing here), listable by root only.
    if (::mount("wisp-stage", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0711") != 0) {
      return ErrnoError("mount the launcher's stage on " + dir);
    }
    if (::chdir(dir.c_str()) != 0) return ErrnoError("chdir " + dir);
    for (const char* sub : {"root", "trees", "prewarm"}) {
      if (::mkdir(sub, 0711) != 0) return ErrnoError(fmt::format("mkdir {}/{}", dir, sub));
    }
    UniqueFd trees(::open("trees", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!trees) return ErrnoError("open the stage's trees");
    UniqueFd prewarm(::open("prewarm", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!prewarm) return ErrnoError("open the stage's prewarm");
    return Stage(dir, std::move(trees), std::move(prewarm));
  }

  // An empty code directory for the prewarmed instance `id` (a valid SpawnSpec::instance_id),
  // as a stage path: "prewarm/<id>". Hold it until Release(), which removes it.
  Result<std::string> MakePrewarmDir(const std::string& id) {
    if (::mkdirat(prewarm_fd_.get(), id.c_str(), 0755) != 0) {
      return ErrnoError("mkdir prewarm/" + id);
    }
    return "prewarm/" + id;
  }

  // Hard-links the staged tree `tree` (from Acquire) into the prewarmed directory `prewarm`
  // (from MakePrewarmDir): the same tmpfs, so no file's bytes are copied.
  Result<void> LinkCode(const std::string& tree, const std::string& prewarm) {
    UniqueFd source(::openat(trees_fd_.get(), tree.substr(6).c_str(),
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    UniqueFd target(::openat(prewarm_fd_.get(), prewarm.substr(8).c_str(),
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!source || !target) return ErrnoError("open " + (source ? prewarm : tree));
    return LinkTree(source.get(), target.get());
  }

  // The stage path (relative to the stage) a sandbox binds for the host directory `dir`; hold
  // it until Release(). It is copied once and shared while instances use it.
  Result<std::string> Acquire(const std::string& dir) {
    UniqueFd source(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!source) return ErrnoError("open " + dir);
    struct stat st;
    if (::fstat(source.get(), &st) != 0) return ErrnoError("stat " + dir);
    // The same path with another inode or mtime is another tree (a directory made anew).
    if (auto it = current_.find(dir); it != current_.end()) {
      Tree& tree = trees_.at(it->second);
      if (tree.ino == st.st_ino && tree.dev == st.st_dev && tree.mtime_ns == MtimeNs(st)) {
        ++tree.refs;
        return "trees/" + it->second;
      }
      current_.erase(it);
    }
    const std::string name = std::to_string(next_tree_++);
    if (::mkdirat(trees_fd_.get(), name.c_str(), 0755) != 0) {
      return ErrnoError("mkdir stage tree for " + dir);
    }
    UniqueFd target(::openat(trees_fd_.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    Result<void> copied = target ? CopyTree(source.get(), target.get()) : ErrnoError("open");
    if (!copied) {
      RemoveTree(trees_fd_.get(), name.c_str());
      return MakeError(copied.error().code,
                       fmt::format("stage a copy of {}: {}", dir, copied.error().message));
    }
    trees_.emplace(name, Tree{dir, 1, st.st_dev, st.st_ino, MtimeNs(st)});
    current_[dir] = name;
    return "trees/" + name;
  }

  // Gives back a path from Acquire() or MakePrewarmDir(); a copy no instance holds any more,
  // and a prewarmed directory, are removed.
  void Release(const std::string& staged) {
    if (staged.starts_with("prewarm/")) {
      RemoveTree(prewarm_fd_.get(), staged.substr(8).c_str());
      return;
    }
    if (!staged.starts_with("trees/")) return;
    auto it = trees_.find(staged.substr(6));
    if (it == trees_.end() || --it->second.refs > 0) return;
    if (auto cur = current_.find(it->second.source);
        cur != current_.end() && cur->second == it->first) {
      current_.erase(cur);
    }
    RemoveTree(trees_fd_.get(), it->first.c_str());
    trees_.erase(it);
  }

 private:
  struct Tree {
    std::string source;
    int refs = 0;
    dev_t dev = 0;
    ino_t ino = 0;
    int64_t mtime_ns = 0;
  };

  Stage(std::string dir, UniqueFd trees, UniqueFd prewarm)
      : dir_(std::move(dir)), trees_fd_(std::move(trees)), prewarm_fd_(std::move(prewarm)) {}

  static int64_t MtimeNs(const struct stat& st) {
    return int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
  }

  std::string dir_;
  UniqueFd trees_fd_;
  UniqueFd prewarm_fd_;
  uint64_t next_tree_ = 0;
  std::map<std::string, Tree> trees_;           // by name under trees/
  std::map<std::string, std::string> current_;  // host directory -> its newest copy's name
};

// A sandbox that finished setup: what `spawned` hands to wispd.
struct Started {
  Instance instance;
  UniqueFd listener;
  UniqueFd output;
  UniqueFd channel;      // wispd's end of the Runtime API channel
  UniqueFd memory_peak;  // the group's peak memory file; empty when unknown
  // A prewarmed instance's CPU weight file, and what to write there at its specialisation;
  // empty for other instances, or without a cpu controller.
  UniqueFd cpu_weight;
  std::string full_cpu_weight;
};

// The launcher's main loop and state. Lives only in the forked launcher process.
class LauncherProcess {
 public:
  LauncherProcess(const LauncherOptions& options, int control_fd, pid_t wispd)
      : options_(options), control_(control_fd), wispd_(wispd) {}

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

    if (auto ids = PrepareHostIds(); !ids) return ids;
    // Sandboxes are cloned while this process's effective uid is the instance's (see
    // CloneAs): keep the capabilities through those switches, so that a kernel which allows
    // only privileged callers to create user namespaces still lets us.
    if (::prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP) != 0) {
      return ErrnoError("prctl PR_SET_SECUREBITS");
    }
    // A mount namespace of our own, a slave of the host's: the host's later mounts still reach
    // us (and the sandboxes we clone), nothing we mount reaches the host.
    if (::unshare(CLONE_NEWNS) != 0) return ErrnoError("unshare mount namespace");
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) {
      return ErrnoError("make the launcher's mounts slaves of the host's");
    }

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
    auto stage = Stage::Mount(options_.sandbox_root_dir);
    if (!stage) return tl::unexpected(stage.error());
    stage_.emplace(std::move(*stage));

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

  // Checks the configured range of sandbox ids against the host's accounts and subordinate id
  // ranges, and makes the pool.
  Result<void> PrepareHostIds() {
    const uint32_t base = options_.sandbox_id_base;
    const uint32_t count = options_.sandbox_id_count;
    if (auto valid = ValidateHostIdRange(base, count); !valid) return valid;
    struct IdFile {
      const char* path;
      bool subordinate;
    };
    for (const IdFile& file : {IdFile{"/etc/subuid", true}, IdFile{"/etc/subgid", true},
                               IdFile{"/etc/passwd", false}, IdFile{"/etc/group", false}}) {
      std::ifstream in(file.path);
      if (!in) continue;  // no such file: nothing to overlap
      std::stringstream text;
      text << in.rdbuf();
      auto checked = file.subordinate ? CheckSubordinateIds(file.path, text.str(), base, count)
                                      : CheckAccountIds(file.path, text.str(), base, count);
      if (!checked) return checked;
    }
    ids_.emplace(base, count);
    return {};
  }

  // clone() with `flags`, made while this process's effective uid and gid are `id`: the kernel
  // records the effective uid of a user namespace's creator as its owner, and charges per-user
  // counts (inotify instances, queued signals, user namespaces) of everything inside to the
  // owner as well, in the host's namespace. Back to root right after; changing the effective
  // uid cleared the parent-death signal and the dumpable flag, so both are set again.
  Result<pid_t> CloneAs(uint32_t id, unsigned long flags) {
    if (::setresgid(static_cast<gid_t>(-1), id, static_cast<gid_t>(-1)) != 0) {
      return ErrnoError("setresgid to the instance's gid");
    }
    if (::setresuid(static_cast<uid_t>(-1), id, static_cast<uid_t>(-1)) != 0) {
      int err = errno;
      (void)!::setresgid(static_cast<gid_t>(-1), 0, static_cast<gid_t>(-1));
      return ErrnoError("setresuid to the instance's uid", err);
    }
    long pid = ::syscall(SYS_clone, flags, nullptr, nullptr, nullptr, nullptr);
    if (pid == 0) return 0;
    const int err = errno;
    // Only an effective uid changed, real and saved stay 0: going back needs nothing.
    if (::setresuid(static_cast<uid_t>(-1), 0, static_cast<uid_t>(-1)) != 0 ||
        ::setresgid(static_cast<gid_t>(-1), 0, static_cast<gid_t>(-1)) != 0) {
      Log(fmt::format("cannot return to root: {}", std::strerror(errno)));
      ::_exit(1);  // wispd sees the launcher gone; nothing more would work anyway
    }
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != wispd_) ::raise(SIGTERM);  // wispd died meanwhile: the orderly path
    // The switch also made us non-dumpable, which would keep wispd (root, but maybe without
    // CAP_SYS_PTRACE) out of /proc/<launcher>/root, its way to the stage. The child keeps the
    // non-dumpable state it was cloned with.
    ::prctl(PR_SET_DUMPABLE, 1);
    if (pid < 0) return ErrnoError("clone", err);
    return static_cast<pid_t>(pid);
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
    } else if (type == "specialize") {
      HandleSpecialize(msg.value("instance_id", ""), msg.value("code_dir", ""));
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
    // listener, output, channel, then the optional ones the reply names.
    std::vector<int> fds = {started->listener.get(), started->output.get(), started->channel.get()};
    json reply = {{"type", "spawned"}, {"instance_id", id}, {"pid", started->instance.pid}};
    if (started->memory_peak) fds.push_back(started->memory_peak.get());
    reply["memory_peak"] = static_cast<bool>(started->memory_peak);
    if (started->cpu_weight) {
      fds.push_back(started->cpu_weight.get());
      reply["full_cpu_weight"] = started->full_cpu_weight;
    }
    Reply(reply, fds);
    instances_.emplace(id, std::move(started->instance));
  }

  // Puts the code of `code_dir` into a prewarmed instance's empty /var/task: a staged copy of
  // it (shared with every instance that runs it), hard-linked into the instance's directory.
  // The copy is made once per code directory, at the first instance that needs it, as a
  // spawn's is; the links cost a system call per file.
  void HandleSpecialize(const std::string& id, const std::string& code_dir) {
    auto fail = [&](const Error& e) {
      Reply({{"type", "specialize_failed"},
             {"instance_id", id},
             {"code", static_cast<int>(e.code)},
             {"error", e.message}});
    };
    auto it = instances_.find(id);
    if (it == instances_.end()) return fail(Error{ErrorCode::kNotFound, "no instance " + id});
    Instance& instance = it->second;
    if (instance.prewarm_dir.empty()) {
      return fail(Error{ErrorCode::kFailedPrecondition, "instance " + id + " is not prewarmed"});
    }
    if (instance.specialized) {
      return fail(Error{ErrorCode::kFailedPrecondition, "instance " + id + " has its code"});
    }
    if (code_dir.empty() || code_dir[0] != '/') {
      return fail(Error{ErrorCode::kInvalidArgument, "code_dir must be absolute"});
    }
    // From here on the directory may hold part of a function's code: never another's.
    instance.specialized = true;
    auto tree = stage_->Acquire(code_dir);
    if (!tree) return fail(tree.error());
    instance.staged.push_back(*tree);
    if (auto linked = stage_->LinkCode(*tree, instance.prewarm_dir); !linked) {
      return fail(linked.error());
    }
    Reply({{"type", "specialized"}, {"instance_id", id}});
  }

  // Starts slirp4netns for the sandbox whose init is `instance.pid`: a user-mode TCP/IP stack
  // on the host side, connected to a tap0 it creates and configures inside the sandbox's
  // network namespace (10.0.2.100/24, default route via 10.0.2.2, DNS at 10.0.2.3). Options:
  //   --disable-host-loopback  10.0.2.2 does not lead to the host's 127.0.0.1, so the sandbox
  //                            never reaches wispd's API or other sandboxes' endpoints
  //   --enable-sandbox         after setup, its own mount namespace with an empty root and
  //                            every capability dropped (but CAP_NET_BIND_SERVICE)
  //   --enable-seccomp         a syscall filter: it parses untrusted packets on the host
  //   --exit-fd                it exits when the launcher closes the pipe or dies
  //   --mtu=65520              the largest tap allows: fewer, larger packets through slirp
  // It stays in the launcher's cgroup, not the instance's: the instance's group is removed as
  // soon as the instance ends, while the helper's exit is slow (see StopNetworkHelper). Its
  // file limit bounds the host sockets a function can make it open.
  Result<StartingHelper> StartNetworkHelper(const Instance& instance) {
    const std::string& path = options_.slirp4netns_path;
    if (::access(path.c_str(), X_OK) != 0) {
      return ErrnoError(
          fmt::format("outbound network needs {} (Debian package slirp4netns)", path));
    }
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) return ErrnoError("pipe for network helper");
    UniqueFd ready_read(ready[0]);
    UniqueFd ready_write(ready[1]);
    int exit_pipe[2];
    if (::pipe2(exit_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe for network helper");
    UniqueFd exit_read(exit_pipe[0]);
    UniqueFd exit_write(exit_pipe[1]);
    // Everything the child needs is built before fork().
    const std::vector<std::string> args = {path,
                                           "--configure",
                                           "--mtu=65520",
                                           "--disable-host-loopback",
                                           "--enable-sandbox",
                                           "--enable-seccomp",
                                           fmt::format("--ready-fd={}", kHelperReadyFd),
                                           fmt::format("--exit-fd={}", kHelperExitFd),
                                           std::to_string(instance.pid),
                                           "tap0"};
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    char* envp[] = {nullptr};
    const pid_t launcher = ::getpid();

    const pid_t pid = ::fork();
    if (pid < 0) return ErrnoError("fork network helper");
    if (pid == 0) {
      // The launcher blocks these for its signalfd; a blocked mask would survive execve.
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != launcher) ::_exit(126);
      rlimit nofile{kHelperMaxOpenFiles, kHelperMaxOpenFiles};
      if (::setrlimit(RLIMIT_NOFILE, &nofile) != 0) ::_exit(126);
      // --enable-sandbox unshares a mount namespace, makes only "/" private (not its
      // submounts) and detaches the old root after pivot_root. Run as root in the host's mount
      // namespace, that unmount propagates through shared mounts back to the host (seen here:
      // every `ip netns` mount under /run/netns vanished; on systemd hosts everything is
      // shared). A private mount namespace of its own first keeps the host's table intact.
      if (::unshare(CLONE_NEWNS) != 0 ||
          ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        ::_exit(126);
      }
      // Via high numbers, so that the dup2s cannot clobber each other.
      int r = ::fcntl(ready_write.get(), F_DUPFD, 10);
      int e = ::fcntl(exit_read.get(), F_DUPFD, 10);
      if (r < 0 || e < 0 || ::dup2(r, kHelperReadyFd) < 0 || ::dup2(e, kHelperExitFd) < 0) {
        ::_exit(126);
      }
      // It logs every start (and a warning about its seccomp support) to stdout and stderr;
      // wispd's log is no place for that. A failure shows as an exit status instead.
      int null_fd = ::open("/dev/null", O_RDWR);
      if (null_fd < 0) ::_exit(126);
      ::dup2(null_fd, 0);
      ::dup2(null_fd, 1);
      ::dup2(null_fd, 2);
      ::close_range(kHelperExitFd + 1, ~0U, 0);
      ::execve(argv[0], argv.data(), envp);
      ::_exit(127);
    }
    return StartingHelper{pid, std::move(ready_read), std::move(exit_write)};
  }

  Result<Started> StartInstance(const SpawnSpec& spec) {
    Started s;
    s.instance.id = spec.instance_id;
    // Runs last on failure: after the child is killed and reaped (kill_child below), when
    // nothing of it uses the id or the trees any more.
    Defer release_resources([&] { ReleaseResources(s.instance); });
    s.instance.host_id = options_.one_id_for_all ? std::optional<uint32_t>(options_.sandbox_id_base)
                                                 : ids_->Acquire();
    if (!s.instance.host_id) {
      return MakeError(ErrorCode::kResourceExhausted,
                       fmt::format("all {} sandbox ids are in use (sandbox_id_count)",
                                   options_.sandbox_id_count));
    }
    const uint32_t host_id = *s.instance.host_id;
    SandboxChildArgs child_args;
    child_args.spec = &spec;
    child_args.root_dir = "root";
    child_args.seccomp = &*seccomp_;
    if (spec.prewarmed) {
      auto made = stage_->MakePrewarmDir(spec.instance_id);
      if (!made) return tl::unexpected(made.error());
      s.instance.staged.push_back(*made);
      s.instance.prewarm_dir = *made;
      child_args.code_dir = *made;
    }
    for (const auto& [dir, staged] : {std::pair{&spec.code_dir, &child_args.code_dir},
                                      std::pair{&spec.runtime_dir, &child_args.runtime_dir}}) {
      if (dir->empty()) continue;
      auto acquired = stage_->Acquire(*dir);
      if (!acquired) {
        const char* mount = dir == &spec.code_dir ? "/var/task" : "/opt/wisp/runtime";
        return MakeError(acquired.error().code,
                         fmt::format("mount {}: {}", mount, acquired.error().message));
      }
      s.instance.staged.push_back(*acquired);
      *staged = *acquired;
    }

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
    int channel[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel) != 0) {
      return ErrnoError("socketpair for the Runtime API");
    }
    s.channel.Reset(channel[0]);
    UniqueFd child_channel(channel[1]);

    child_args.sync_fd = child_sync.get();
    child_args.output_fd = child_output.get();
    child_args.channel_fd = child_channel.get();

    // Like fork(), but the child is pid 1 of new pid, mount, network, ipc and uts namespaces,
    // all owned by a new user namespace that the instance's own host uid owns: whatever
    // privilege the child has is privilege over those namespaces only, never over the host.
    // (The cgroup namespace comes later, from the child, once it is in its cgroup.)
    // A launcher whose sandboxes all share one id (Go builds) creates them as root instead:
    // their child opens its writable binds (under root's private build directory) before it
    // takes that id, and one shared id has no per-user counts to keep apart.
    const uint32_t creator = options_.one_id_for_all ? 0 : host_id;
    auto pid = CloneAs(creator, CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET |
                                    CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD);
    if (!pid) return tl::unexpected(pid.error());
    if (*pid == 0) RunSandboxChild(child_args);
    s.instance.pid = *pid;
    child_sync.Reset();
    child_output.Reset();
    child_channel.Reset();
    Defer kill_child([&] {
      ::kill(s.instance.pid, SIGKILL);
      ::waitpid(s.instance.pid, nullptr, 0);
      StopNetworkHelper(s.instance);
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
      // Opened only now that the child is cloned, so that it never holds the fd.
      auto memory_peak = cgroups_->OpenMemoryPeak(s.instance.group);
      if (!memory_peak) return tl::unexpected(memory_peak.error());
      s.memory_peak = std::move(*memory_peak);
      if (spec.prewarmed) {
        auto weight = cgroups_->OpenCpuWeight(s.instance.group);
        if (!weight) return tl::unexpected(weight.error());
        s.cpu_weight = std::move(*weight);
        s.full_cpu_weight = cgroups_->CpuWeightText(spec.vcpu);
      }
    }
    if (auto r =
            WriteProcFile(s.instance.pid, "oom_score_adj", std::to_string(kSandboxOomScoreAdj));
        !r) {
      return tl::unexpected(r.error());
    }
    // Root inside the user namespace is the instance's own unprivileged uid/gid outside;
    // nothing else is mapped, so host files owned by anyone else show up as "nobody" and stay
    // theirs. setgroups is denied so the child can never drop groups to get around a file's
    // group-deny permissions.
    const std::string id_map = fmt::format("0 {} 1\n", host_id);
    if (auto r = WriteProcFile(s.instance.pid, "uid_map", id_map); !r) {
      return tl::unexpected(r.error());
    }
    if (auto r = WriteProcFile(s.instance.pid, "setgroups", "deny"); !r) {
      return tl::unexpected(r.error());
    }
    if (auto r = WriteProcFile(s.instance.pid, "gid_map", id_map); !r) {
      return tl::unexpected(r.error());
    }
    // The network helper configures tap0 while the child builds its root; the child waits for
    // "N" (network ready) only just before it starts the runtime.
    UniqueFd net_ready;
    if (spec.network_outbound) {
      auto helper = StartNetworkHelper(s.instance);
      if (!helper) return tl::unexpected(helper.error());
      s.instance.net_helper = helper->pid;
      s.instance.net_helper_exit = std::move(helper->exit);
      net_ready = std::move(helper->ready);
    }
    if (auto r = SendDatagram(s.instance.sync.get(), "G"); !r) return tl::unexpected(r.error());

    auto deadline = std::chrono::steady_clock::now() + kSetupTimeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      // A negative fd is ignored by poll(): no helper, or it is ready already.
      pollfd p[2] = {{s.instance.sync.get(), POLLIN, 0},
                     {net_ready ? net_ready.get() : -1, POLLIN, 0}};
      int ready = ::poll(p, 2, std::max<int>(0, static_cast<int>(left.count())));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return MakeError(ErrorCode::kTimeout, "sandbox setup timed out");
      if (p[1].revents != 0) {
        char c = 0;
        ssize_t n = ::read(net_ready.get(), &c, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n != 1 || c != '1') {
          int status = 0;
          ::kill(s.instance.net_helper, SIGKILL);
          ::waitpid(s.instance.net_helper, &status, 0);
          s.instance.net_helper = -1;
          return MakeError(ErrorCode::kInternal,
                           fmt::format("{} exited before the network was up ({})",
                                       options_.slirp4netns_path, DescribeWaitStatus(status)));
        }
        net_ready.Reset();
        if (auto r = SendDatagram(s.instance.sync.get(), "N"); !r) {
          return tl::unexpected(r.error());
        }
      }
      if (p[0].revents == 0) continue;
      auto msg = ReceiveDatagram(s.instance.sync.get());
      if (!msg) return tl::unexpected(msg.error());
      if (!*msg) return MakeError(ErrorCode::kInternal, "sandbox exited during setup");
      const std::string& data = (*msg)->data;
      if (data == "L" && (*msg)->fds.size() == 1) {
        s.listener = std::move((*msg)->fds[0]);
      } else if (!data.empty() && data[0] == 'E') {
        return MakeError(ErrorCode::kInternal, data.substr(1));
      } else if (data == "R" && s.listener && !net_ready) {
        break;
      } else {
        return MakeError(ErrorCode::kInternal, "unexpected message from sandbox: " + data);
      }
    }
    if (s.cpu_weight) {
      const std::string low = cgroups_->CpuWeightText(spec.vcpu * kPrewarmedCpuFraction);
      if (::write(s.cpu_weight.get(), low.data(), low.size()) != static_cast<ssize_t>(low.size())) {
        return ErrnoError("lower the CPU weight of a prewarmed instance");
      }
    }
    // wispd reads output from its event loop.
    ::fcntl(s.output.get(), F_SETFL, ::fcntl(s.output.get(), F_GETFL) | O_NONBLOCK);
    kill_child.Cancel();
    remove_group.Cancel();
    release_resources.Cancel();
    return s;
  }

  // Gives back the instance's host id and stage trees: only once its init is reaped (or it
  // never started), when no process of it can hold them.
  void ReleaseResources(Instance& instance) {
    if (instance.host_id && !options_.one_id_for_all) ids_->Release(*instance.host_id);
    instance.host_id.reset();
    for (const auto& staged : instance.staged) stage_->Release(staged);
    instance.staged.clear();
  }

  // Kills an instance's network helper, if it still has one. It is reaped later, from the
  // SIGCHLD loop: its exit closes tap0, and unregistering a network device waits for RCU grace
  // periods (10-45 ms measured here), time the launcher must not spend blocked.
  void StopNetworkHelper(Instance& instance) {
    if (instance.net_helper <= 0) return;
    ::kill(instance.net_helper, SIGKILL);
    exiting_helpers_.insert(instance.net_helper);
    instance.net_helper = -1;
    instance.net_helper_exit.Reset();
  }

  void KillInstance(Instance& instance) {
    instance.killed = true;
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
      if (exiting_helpers_.erase(pid) != 0) continue;
      for (auto it = instances_.begin(); it != instances_.end(); ++it) {
        if (it->second.net_helper == pid) {
          it->second.net_helper = -1;
          it->second.net_helper_exit.Reset();
          if (it->second.killed) break;
          // The instance lost its network: end it rather than leave it running without.
          Log(fmt::format("network helper of {} ended ({}); killing the instance", it->first,
                          DescribeWaitStatus(status)));
          KillInstance(it->second);
          break;
        }
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
    // Its helper holds tap0, and with it the network namespace.
    StopNetworkHelper(instance);
    bool oom = instance.oom_seen;
    std::optional<uint64_t> memory_peak;
    if (cgroups_) {
      oom = oom || cgroups_->OomKills(instance.group) > 0;
      memory_peak = cgroups_->MemoryPeak(instance.group);
      if (auto r = cgroups_->KillAndRemove(instance.group); !r) Log(r.error().message);
    }
    ReleaseResources(instance);
    Reply({{"type", "exited"},
           {"instance_id", instance.id},
           {"exit_code", WIFEXITED(status) ? WEXITSTATUS(status) : -1},
           {"signal", WIFSIGNALED(status) ? WTERMSIG(status) : 0},
           {"oom_killed", oom},
           {"memory_peak_bytes", memory_peak ? json(*memory_peak) : json(nullptr)}});
  }

  void ShutDown() {
    for (auto& [id, instance] : instances_) KillInstance(instance);
    for (auto& [id, instance] : instances_) {
      int status = 0;
      ::waitpid(instance.pid, &status, 0);
      Finish(instance, status);
    }
    instances_.clear();
    // Nothing of an instance outlives the launcher: not even an exiting helper.
    for (pid_t helper : exiting_helpers_) {
      while (::waitpid(helper, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
    exiting_helpers_.clear();
    if (cgroups_) {
      if (auto r = cgroups_->KillAndRemove(options_.cgroup_group); !r) Log(r.error().message);
    }
  }

  const LauncherOptions options_;
  UniqueFd control_;
  const pid_t wispd_;              // our parent
  std::optional<HostIdPool> ids_;  // made at Start()
  std::optional<Stage> stage_;     // mounted at Start()
  bool control_open_ = true;
  UniqueFd signal_fd_;
  std::optional<CgroupFs> cgroups_;            // empty: running without limits
  std::optional<SeccompFilter> seccomp_;       // compiled at Start()
  std::map<std::string, Instance> instances_;  // by instance id
  std::set<pid_t> exiting_helpers_;            // network helpers killed, not yet reaped
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
    // wispd's argv and environment (listen address, data directory, settings) are no
    // business of the launcher's children: every sandbox's init is a fork of this process.
    SetProcessTitle("wisp-launcher");
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
    int code = LauncherProcess(options, 3, parent).Run();
    ::_exit(code);
  }
  theirs.Reset();

  Launcher launcher(pid, std::move(ours), "", options.sandbox_root_dir);
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
      cgroups_(std::move(other.cgroups_)),
      stage_dir_(std::move(other.stage_dir_)) {}

Launcher& Launcher::operator=(Launcher&& other) noexcept {
  if (this != &other) {
    Shutdown();
    pid_ = std::exchange(other.pid_, -1);
    control_ = std::move(other.control_);
    cgroups_ = std::move(other.cgroups_);
    stage_dir_ = std::move(other.stage_dir_);
  }
  return *this;
}

Launcher::~Launcher() { Shutdown(); }

std::string Launcher::prewarm_dir() const {
  return fmt::format("/proc/{}/root{}/prewarm", pid_, stage_dir_);
}

void Launcher::Shutdown() {
  control_.Reset();
  if (pid_ > 0) {
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
}

}  // namespace wisp::sandbox
