#include "wisp/sandbox/sandbox_child.h"

#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "wisp/sandbox/control_protocol.h"

namespace wisp::sandbox {
namespace {

// Fixed fd numbers, so that "close everything else" is a single close_range().
constexpr int kSyncFd = 3;
constexpr int kOutputFd = 4;
constexpr int kSetupFailedExit = 125;
constexpr int kExecFailedExit = 127;

// Reports the failed step to the launcher (which turns it into spawn_failed) and exits.
[[noreturn]] void Fail(std::string_view step, int err = errno) {
  std::string msg = fmt::format("E{}: {}", step, std::strerror(err));
  ::send(kSyncFd, msg.data(), msg.size(), MSG_NOSIGNAL);
  ::_exit(kSetupFailedExit);
}

void SendToLauncher(std::string_view msg) { ::send(kSyncFd, msg.data(), msg.size(), MSG_NOSIGNAL); }

// mkdir -p, for mount points inside the new root.
void MakeDirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      std::string prefix = path.substr(0, i);
      if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) Fail("mkdir " + prefix);
    }
  }
}

// A bind mount is created with the source's flags; only a second, remounting call can make it
// read-only (and nosuid/nodev, so nothing in it can gain privileges or reach devices).
void BindReadOnly(const std::string& source, const std::string& target, std::string_view label) {
  if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
    Fail(fmt::format("mount {}", label));
  }
  if (::mount(nullptr, target.c_str(), nullptr,
              MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) != 0) {
    Fail(fmt::format("remount {} read-only", label));
  }
}

// Bind-mounts a host file or directory at the same kind of mount point inside the root.
void BindPathReadOnly(const std::string& host_path, const std::string& target,
                      std::string_view label) {
  struct stat st;
  if (::stat(host_path.c_str(), &st) != 0) Fail(fmt::format("stat {}", host_path));
  if (S_ISDIR(st.st_mode)) {
    MakeDirs(target);
  } else {
    int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) Fail(fmt::format("create mount point {}", label));
    ::close(fd);
  }
  BindReadOnly(host_path, target, label);
}

bool HostPathExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// Ties this process's fate to the launcher's and trims its fds down to the two it needs.
void DetachFromLauncher(const SandboxChildArgs& a) {
  // The launcher blocks these for its signalfd; a blocked mask survives execve.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  // Move the two fds we keep to fixed numbers (via high numbers, so the dup2s cannot
  // clobber each other) and close everything else inherited from the launcher: the control
  // socket, other instances' pipes.
  int sync = ::fcntl(a.sync_fd, F_DUPFD, 10);
  int output = ::fcntl(a.output_fd, F_DUPFD, 10);
  if (sync < 0 || output < 0 || ::dup2(sync, kSyncFd) < 0 || ::dup2(output, kOutputFd) < 0) {
    ::_exit(kSetupFailedExit);  // cannot even report it
  }
  ::close_range(kOutputFd + 1, ~0U, 0);

  // If the launcher dies, nothing of the sandbox may survive it. Set before waiting for "G":
  // if the launcher died earlier, that read sees EOF instead.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) Fail("prctl PR_SET_PDEATHSIG");
  ::prctl(PR_SET_NAME, "wisp-init");  // how ps on the host names the sandbox's init
  char go;
  if (::read(kSyncFd, &go, 1) != 1) ::_exit(kSetupFailedExit);  // launcher gone
}

// A new network namespace has only `lo`, and it starts down.
void BringUpLoopback() {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) Fail("socket for lo");
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(s, SIOCGIFFLAGS, &ifr) != 0) Fail("get lo flags");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) Fail("bring lo up");
  ::close(s);
}

// The Runtime API endpoint: created here so that it lives in the sandbox's network namespace,
// handed to wispd, which accepts on it. Inside, 127.0.0.1:<port> reaches wispd and nothing else.
void SendRuntimeApiListener(uint16_t port) {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) Fail("socket for runtime api");
  int one = 1;
  ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    Fail(fmt::format("bind 127.0.0.1:{}", port));
  }
  if (::listen(s, 64) != 0) Fail("listen on runtime api socket");
  int fds[] = {s};
  if (!SendDatagram(kSyncFd, "L", fds)) Fail("send runtime api listener");
  ::close(s);  // wispd owns it now; the sandbox must not accept on it itself
}

// Builds the sandbox's whole file system on a fresh tmpfs at `root`. Only what is listed here
// is visible inside; everything from the host is read-only.
void BuildRoot(const SandboxChildArgs& a) {
  const SpawnSpec& spec = *a.spec;
  const std::string& root = a.root_dir;

  // Our mounts must not propagate back to the host's mount namespace (and vice versa).
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) Fail("make / private");
  // A fresh tmpfs per sandbox: nothing from an earlier instance can be left on it.
  if (::mount("tmpfs", root.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755") != 0) {
    Fail("mount root tmpfs on " + root);
  }

  // Programs and libraries. Debian 12 is merged-/usr: /bin, /lib... are symlinks into usr/,
  // so copy the symlinks; bind the directory when the host has a real one.
  MakeDirs(root + "/usr");
  BindReadOnly("/usr", root + "/usr", "/usr");
  for (const char* name : {"bin", "sbin", "lib", "lib32", "lib64", "libx32"}) {
    std::string host = std::string("/") + name;
    struct stat st;
    if (::lstat(host.c_str(), &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = ::readlink(host.c_str(), target, sizeof target - 1);
      if (n < 0) Fail("readlink " + host);
      target[n] = '\0';
      if (::symlink(target, (root + host).c_str()) != 0) Fail("symlink " + host);
    } else if (S_ISDIR(st.st_mode)) {
      MakeDirs(root + host);
      BindReadOnly(host, root + host, host);
    }
  }

  // A minimal /etc: what the dynamic loader, name resolution and TLS need. Never shadow,
  // sudoers, ssh keys or anything else of the host.
  MakeDirs(root + "/etc");
  for (const char* name : {"ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "hosts",
                           "nsswitch.conf", "localtime", "resolv.conf", "ssl", "alternatives"}) {
    std::string host = std::string("/etc/") + name;
    if (HostPathExists(host)) BindPathReadOnly(host, root + host, host);
  }

  // The function's code and the platform's shims, read-only so a function cannot change itself
  // for the next invocation.
  MakeDirs(root + "/var/task");
  BindReadOnly(spec.code_dir, root + "/var/task", "/var/task");
  if (!spec.runtime_dir.empty()) {
    MakeDirs(root + "/opt/wisp/runtime");
    BindReadOnly(spec.runtime_dir, root + "/opt/wisp/runtime", "/opt/wisp/runtime");
  }

  // The one writable place, capped so a function cannot fill the host's memory.
  MakeDirs(root + "/tmp");
  std::string tmp_opts = fmt::format("size={},mode=1777", spec.tmp_size_bytes);
  if (::mount("tmpfs", (root + "/tmp").c_str(), "tmpfs", MS_NOSUID | MS_NODEV, tmp_opts.c_str()) !=
      0) {
    Fail("mount /tmp");
  }

  // We are pid 1 of a new pid namespace, so a fresh proc shows only the sandbox's processes.
  MakeDirs(root + "/proc");
  if (::mount("proc", (root + "/proc").c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              nullptr) != 0) {
    Fail("mount /proc");
  }

  // /dev: only the harmless character devices, bound from the host.
  MakeDirs(root + "/dev");
  if (::mount("tmpfs", (root + "/dev").c_str(), "tmpfs", MS_NOSUID | MS_NOEXEC,
              "size=64k,mode=0755") != 0) {
    Fail("mount /dev");
  }
  for (const char* name : {"null", "zero", "full", "random", "urandom", "tty"}) {
    std::string host = std::string("/dev/") + name;
    std::string target = root + host;
    int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) Fail("create mount point " + host);
    ::close(fd);
    if (::mount(host.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      Fail("mount " + host);
    }
  }
  const std::pair<const char*, const char*> dev_links[] = {{"/proc/self/fd", "/dev/fd"},
                                                           {"/proc/self/fd/0", "/dev/stdin"},
                                                           {"/proc/self/fd/1", "/dev/stdout"},
                                                           {"/proc/self/fd/2", "/dev/stderr"}};
  for (const auto& [target, link] : dev_links) {
    if (::symlink(target, (root + link).c_str()) != 0) Fail(fmt::format("symlink {}", link));
  }
}

// Makes `root` the root of this mount namespace and drops the host's tree entirely.
void EnterRoot(const std::string& root) {
  if (::chdir(root.c_str()) != 0) Fail("chdir " + root);
  // pivot_root(".", ".") stacks the old root on top of the new one; unmounting "." then
  // detaches the old root without needing a directory to park it in.
  if (::syscall(SYS_pivot_root, ".", ".") != 0) Fail("pivot_root");
  if (::umount2(".", MNT_DETACH) != 0) Fail("detach old root");
  if (::chdir("/") != 0) Fail("chdir /");
  // The root tmpfs holds only mount points and symlinks; nothing may change it from now on.
  if (::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
              nullptr) != 0) {
    Fail("remount / read-only");
  }
  if (::chdir("/var/task") != 0) Fail("chdir /var/task");
}

void DropPrivileges(uid_t uid, gid_t gid) {
  // Core dumps could fill the disk and leak memory contents; 1024 fds matches Lambda.
  rlimit core{0, 0};
  if (::setrlimit(RLIMIT_CORE, &core) != 0) Fail("setrlimit RLIMIT_CORE");
  rlimit nofile{1024, 1024};
  if (::setrlimit(RLIMIT_NOFILE, &nofile) != 0) Fail("setrlimit RLIMIT_NOFILE");
  // Order matters: supplementary groups and gid while we still may, uid last. Changing uid
  // from 0 clears every capability.
  if (::setgroups(0, nullptr) != 0) Fail("setgroups");
  if (::setresgid(gid, gid, gid) != 0) Fail("setgid");
  if (::setresuid(uid, uid, uid) != 0) Fail("setuid");
  // setuid binaries inside (they are visible under /usr) must not gain anything.
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) Fail("prctl PR_SET_NO_NEW_PRIVS");
  // Changing credentials cleared the parent-death signal: set it again. If the launcher died
  // in between, its end of the sync socket is closed (getppid() says 0 across a pid namespace).
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) Fail("prctl PR_SET_PDEATHSIG");
  pollfd p{kSyncFd, 0, 0};
  if (::poll(&p, 1, 0) != 0 && (p.revents & POLLHUP)) ::_exit(kSetupFailedExit);
}

std::vector<char*> CStrings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// Starts the runtime as pid 2 and becomes its init: reaps every orphan and, when the runtime
// ends, reports how and exits, which makes the kernel kill whatever is left in the namespace.
[[noreturn]] void ExecRuntimeUnderInit(const SpawnSpec& spec) {
  int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) Fail("open /dev/null");
  // Tells init whether execve worked: closed on success (O_CLOEXEC), an errno on failure.
  int exec_pipe[2];
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) Fail("pipe");

  pid_t runtime = ::fork();
  if (runtime < 0) Fail("fork runtime");
  if (runtime == 0) {
    ::dup2(null_fd, 0);
    ::dup2(kOutputFd, 1);
    ::dup2(kOutputFd, 2);
    // Everything else, including the sync socket, closes at exec; the exec pipe stays open
    // until then so a failure can still be reported.
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    std::vector<char*> argv = CStrings(spec.argv);
    std::vector<char*> envp = CStrings(spec.env);
    ::execve(argv[0], argv.data(), envp.data());
    int err = errno;
    ::write(exec_pipe[1], &err, sizeof err);
    ::_exit(kExecFailedExit);
  }

  // Init keeps nothing of the runtime's: if it held the output pipe, wispd would never see EOF
  // while stray processes live.
  ::close(exec_pipe[1]);
  ::close(kOutputFd);
  ::dup2(null_fd, 0);
  ::dup2(null_fd, 1);
  ::dup2(null_fd, 2);
  ::close(null_fd);

  int err = 0;
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], &err, sizeof err);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    ::waitpid(runtime, nullptr, 0);
    Fail(fmt::format("execve {}", spec.argv[0]), err);
  }
  ::close(exec_pipe[0]);
  SendToLauncher("R");

  for (;;) {
    int status;
    pid_t pid = ::wait(&status);
    if (pid < 0) {
      if (errno == EINTR) continue;
      ::_exit(kSetupFailedExit);  // no children at all: cannot happen while runtime lives
    }
    if (pid != runtime) continue;  // an orphan adopted by init: reaped, nothing more
    // Init of a pid namespace cannot kill itself with a signal, so the runtime's exact status
    // goes to the launcher first; the exit code is only a fallback.
    SendToLauncher(fmt::format("S{}", status));
    ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  }
}

}  // namespace

void RunSandboxChild(const SandboxChildArgs& args) {
  DetachFromLauncher(args);
  BringUpLoopback();
  SendRuntimeApiListener(args.spec->runtime_api_port);
  BuildRoot(args);
  EnterRoot(args.root_dir);
  ::sethostname("wisp", 4);  // the host's name is none of the function's business
  DropPrivileges(args.uid, args.gid);
  ExecRuntimeUnderInit(*args.spec);
}

}  // namespace wisp::sandbox
