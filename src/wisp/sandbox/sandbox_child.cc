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
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/securebits.h>
#include <sys/capability.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "wisp/sandbox/control_protocol.h"
#include "wisp/sandbox/process_title.h"

namespace wisp::sandbox {
namespace {

// Fixed fd numbers, so that "close everything else" is a single close_range().
constexpr int kSyncFd = 3;
constexpr int kOutputFd = 4;
constexpr int kChannelFd = 5;  // moved to kRuntimeApiChannelFd in the runtime
constexpr int kSetupFailedExit = 125;
constexpr int kExecFailedExit = 127;
// RLIMIT_NOFILE inside, as Lambda's.
constexpr rlim_t kMaxOpenFiles = 1024;
// slirp4netns's DNS forwarder, as seen from inside the sandbox.
constexpr const char* kSlirpDns = "10.0.2.3";

constexpr uint32_t Ipv4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return uint32_t{a} << 24 | uint32_t{b} << 16 | uint32_t{c} << 8 | d;
}

// What an outbound sandbox may not reach unless the operator allows private networks: every
// IPv4 range IANA's special-purpose registry marks as not globally reachable, where a host's LAN,
// its cloud's metadata service and other internal services live. slirp4netns connects from the
// host, so without these routes a function reaches whatever the host can. Not listed:
// 127.0.0.0/8 is the sandbox's own loopback (the local routing table, consulted first, wins), and
// 198.18.0.0/15 (benchmarking) stays reachable: test suites use it as the outside world.
// slirp's own 10.0.2.0/24 (gateway, DNS forwarder) stays reachable through its connected route,
// which is more specific than 10.0.0.0/8.
struct BlockedRange {
  uint32_t address;  // host byte order
  uint8_t prefix_length;
};
constexpr BlockedRange kBlockedRanges[] = {
    {Ipv4(0, 0, 0, 0), 8},        // "this network"
    {Ipv4(10, 0, 0, 0), 8},       // private
    {Ipv4(100, 64, 0, 0), 10},    // shared (carrier-grade NAT; Alibaba's metadata service)
    {Ipv4(169, 254, 0, 0), 16},   // link-local: cloud metadata at 169.254.169.254
    {Ipv4(172, 16, 0, 0), 12},    // private
    {Ipv4(192, 0, 0, 0), 24},     // IETF protocol assignments
    {Ipv4(192, 0, 2, 0), 24},     // documentation (TEST-NET-1)
    {Ipv4(192, 168, 0, 0), 16},   // private
    {Ipv4(198, 51, 100, 0), 24},  // documentation (TEST-NET-2)
    {Ipv4(203, 0, 113, 0), 24},   // documentation (TEST-NET-3)
    {Ipv4(224, 0, 0, 0), 4},      // multicast
    {Ipv4(240, 0, 0, 0), 4},      // reserved, and the limited broadcast address
};

// Reports the failed step to the launcher (which turns it into spawn_failed) and exits.
[[noreturn]] void Fail(std::string_view step, int err = errno, std::string_view hint = {}) {
  std::string msg = fmt::format("E{}: {}{}", step, std::strerror(err), hint);
  ::send(kSyncFd, msg.data(), msg.size(), MSG_NOSIGNAL);
  ::_exit(kSetupFailedExit);
}

void SendToLauncher(std::string_view msg) { ::send(kSyncFd, msg.data(), msg.size(), MSG_NOSIGNAL); }

// mkdir -p, for mount points inside the new root. Paths are relative to the new root, which is
// the working directory while the root is being built.
void MakeDirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      std::string prefix = path.substr(0, i);
      if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) Fail("mkdir " + prefix);
    }
  }
}

// An empty regular file to bind a file onto.
void MakeFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) Fail("create mount point " + path);
  ::close(fd);
}

// Makes the mount at `target` read-only, nosuid and nodev. A bind mount is created with the
// source's flags; only a second, remounting call can change them. Inside a user namespace the
// kernel refuses to clear flags the host mount had (they are locked), so those are kept.
// `extra_flags`: more to set, e.g. MS_NOEXEC, or MS_RDONLY cleared for a writable bind.
void Remount(const std::string& target, std::string_view label,
             unsigned long flags = MS_RDONLY | MS_NOSUID | MS_NODEV) {
  struct statvfs sv;
  if (::statvfs(target.c_str(), &sv) != 0) Fail(fmt::format("statvfs {}", label));
  flags |= MS_REMOUNT | MS_BIND;
  if (sv.f_flag & ST_RDONLY) flags |= MS_RDONLY;
  if (sv.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  if (::mount(nullptr, target.c_str(), nullptr, flags, nullptr) != 0) {
    Fail(fmt::format("remount {} {}", label, (flags & MS_RDONLY) ? "read-only" : "nosuid"));
  }
}

void RemountReadOnly(const std::string& target, std::string_view label) { Remount(target, label); }

void BindReadOnly(const std::string& source, const std::string& target, std::string_view label) {
  if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
    Fail(fmt::format("mount {}", label));
  }
  RemountReadOnly(target, label);
}

// A job's writable directory: nothing on it can be executed, be setuid or be a device.
void BindWritable(const std::string& source, const std::string& target, std::string_view label) {
  if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
    Fail(fmt::format("mount {}", label));
  }
  Remount(target, label, MS_NOSUID | MS_NODEV | MS_NOEXEC);
}

// Bind-mounts a host file or directory at the same kind of mount point inside the root.
void BindPathReadOnly(const std::string& host_path, const std::string& target,
                      std::string_view label) {
  struct stat st;
  if (::stat(host_path.c_str(), &st) != 0) Fail(fmt::format("stat {}", host_path));
  if (S_ISDIR(st.st_mode)) {
    MakeDirs(target);
  } else {
    MakeFile(target);
  }
  BindReadOnly(host_path, target, label);
}

// A small file on the root tmpfs (which becomes read-only with the rest of the root).
void WriteFile(const std::string& path, std::string_view content) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Fail("create " + path);
  if (::write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size())) {
    Fail("write " + path);
  }
  ::close(fd);
}

// One inode per 8 KiB of tmpfs, at least 1024: plenty for real use (Lambda's /tmp holds a few
// thousand files at most), small enough that empty files cannot pin much kernel memory.
uint64_t InodeCap(uint64_t size_bytes) { return std::max<uint64_t>(1024, size_bytes / 8192); }

bool PathExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// Ties this process's fate to the launcher's and trims its fds down to the three it needs.
void DetachFromLauncher(const SandboxChildArgs& a) {
  // The launcher blocks these for its signalfd; a blocked mask survives execve.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  // Move the fds we keep to fixed numbers (via high numbers, so the dup2s cannot clobber each
  // other) and close everything else inherited from the launcher: the control socket, other
  // instances' pipes.
  int sync = ::fcntl(a.sync_fd, F_DUPFD, 10);
  int output = ::fcntl(a.output_fd, F_DUPFD, 10);
  int channel = ::fcntl(a.channel_fd, F_DUPFD, 10);
  if (sync < 0 || output < 0 || channel < 0 || ::dup2(sync, kSyncFd) < 0 ||
      ::dup2(output, kOutputFd) < 0 || ::dup2(channel, kChannelFd) < 0) {
    ::_exit(kSetupFailedExit);  // cannot even report it
  }
  ::close_range(kChannelFd + 1, ~0U, 0);

  // If the launcher dies, nothing of the sandbox may survive it. Set before waiting for "G":
  // if the launcher died earlier, that read sees EOF instead.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) Fail("prctl PR_SET_PDEATHSIG");
  ::prctl(PR_SET_NAME, "wisp-init");  // how ps on the host names the sandbox's init
  SetProcessTitle("wisp-init");       // what the function reads in /proc/1/cmdline
  char go;
  if (::read(kSyncFd, &go, 1) != 1) ::_exit(kSetupFailedExit);  // launcher gone
}

// The stage directories the sandbox mounts (see Stage in launcher.cc), opened by paths relative
// to the working directory, which is the launcher's stage in our copy of its mount namespace:
// we are the instance's unprivileged host uid, and could not walk wispd's private directories
// down to it. The root tmpfs is mounted here too.
struct HostPaths {
  int root = -1;              // the fresh root tmpfs (already mounted on the stage's root/)
  int code = -1;              // SandboxChildArgs::code_dir
  int runtime = -1;           // SandboxChildArgs::runtime_dir, or -1
  std::vector<int> writable;  // SpawnSpec::writable_binds, in order
};

std::string FdPath(int fd) { return fmt::format("/proc/self/fd/{}", fd); }

HostPaths OpenHostPaths(const SandboxChildArgs& a) {
  // Our mounts must not propagate back to the launcher's mount namespace (and vice versa).
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) Fail("make / private");
  // A fresh tmpfs per sandbox: nothing from an earlier instance can be left on it. Owned by
  // root inside (uid=0 is read in our user namespace), so we can create mount points on it.
  if (::mount("tmpfs", a.root_dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
              "size=1m,mode=0755,uid=0,gid=0") != 0) {
    Fail("mount root tmpfs");
  }
  HostPaths p;
  p.root = ::open(a.root_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (p.root < 0) Fail("open the new root");
  p.code = ::open(a.code_dir.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (p.code < 0) Fail("mount /var/task");
  if (!a.runtime_dir.empty()) {
    p.runtime = ::open(a.runtime_dir.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (p.runtime < 0) Fail("mount /opt/wisp/runtime");
  }
  // O_NOFOLLOW: wispd made these directories; a symlink in their place is not theirs.
  for (const WritableBind& bind : a.spec->writable_binds) {
    const int fd = ::open(bind.host_path.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) Fail("mount " + bind.sandbox_path);
    p.writable.push_back(fd);
  }
  return p;
}

// The launcher mapped uid/gid 0 inside to the instance's unprivileged host ids, which cloned us
// as our effective ids; real and saved ids are still the launcher's (root, unmapped here).
// Switching all three to 0 inside keeps every capability *inside* the user namespace (needed
// for the mounts below) while the host sees an ordinary unprivileged process that owns
// nothing; from here on files we create belong to it, and so do the per-user counts.
void BecomeRootInside() {
  if (::setresgid(0, 0, 0) != 0) Fail("setresgid to root inside");
  if (::setresuid(0, 0, 0) != 0) Fail("setresuid to root inside");
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

// Adds a "prohibit" route for each of kBlockedRanges to the sandbox's main routing table:
// connect() and sendto() there fail at once with EACCES, which says "not allowed" (a timeout or
// EHOSTUNREACH would read as a network fault worth retrying). Routes in the sandbox's own
// namespace, because this process still holds CAP_NET_ADMIN there and the runtime never will, so
// it cannot remove them; and the host needs no firewall rule. One request carries every route;
// only the last asks for an acknowledgement: the kernel handles them in order and reports any
// failure anyway, so that acknowledgement means all of them were added. Each route replaces
// whatever route the table may already hold for its range (NLM_F_REPLACE): a few spawns in some
// hundreds under heavy load saw EEXIST for 10.0.0.0/8 in a namespace just created, and what
// matters is that the prohibit route is the one in place, not that it is new.
void BlockPrivateNetworks() {
  struct Request {
    nlmsghdr header;
    rtmsg route;
    rtattr destination_attribute;
    uint32_t destination;  // network byte order
  };
  static_assert(sizeof(Request) == NLMSG_SPACE(sizeof(rtmsg)) + RTA_SPACE(sizeof(uint32_t)),
                "the kernel reads the array as back-to-back messages");
  constexpr size_t kCount = std::size(kBlockedRanges);
  Request requests[kCount] = {};
  for (size_t i = 0; i < kCount; ++i) {
    Request& r = requests[i];
    r.header.nlmsg_len = sizeof r;
    r.header.nlmsg_type = RTM_NEWROUTE;
    r.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE;
    if (i + 1 == kCount) r.header.nlmsg_flags |= NLM_F_ACK;
    r.header.nlmsg_seq = static_cast<uint32_t>(i);
    r.route.rtm_family = AF_INET;
    r.route.rtm_dst_len = kBlockedRanges[i].prefix_length;
    r.route.rtm_table = RT_TABLE_MAIN;
    r.route.rtm_protocol = RTPROT_STATIC;
    r.route.rtm_scope = RT_SCOPE_UNIVERSE;
    r.route.rtm_type = RTN_PROHIBIT;
    r.destination_attribute.rta_len = RTA_LENGTH(sizeof r.destination);
    r.destination_attribute.rta_type = RTA_DST;
    r.destination = htonl(kBlockedRanges[i].address);
  }
  int s = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (s < 0) Fail("netlink socket for routes");
  if (::send(s, requests, sizeof requests, 0) != static_cast<ssize_t>(sizeof requests)) {
    Fail("send routes");
  }
  for (;;) {
    alignas(nlmsghdr) char reply[1024];
    ssize_t n = ::recv(s, reply, sizeof reply, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      Fail("receive route acknowledgement");
    }
    for (auto* h = reinterpret_cast<nlmsghdr*>(reply); NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type != NLMSG_ERROR) continue;
      const auto* result = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
      if (result->error != 0) {
        const BlockedRange& range = kBlockedRanges[std::min<size_t>(h->nlmsg_seq, kCount - 1)];
        Fail(fmt::format("add route prohibit {}.{}.{}.{}/{}", range.address >> 24,
                         range.address >> 16 & 0xff, range.address >> 8 & 0xff,
                         range.address & 0xff, range.prefix_length),
             -result->error);
      }
      if (h->nlmsg_seq + 1 == kCount) {
        ::close(s);
        return;
      }
    }
  }
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

// /proc for our pid namespace, with the files that describe or control the host masked the way
// runc and bubblewrap do it: kernel memory, keyrings, timers, the sysrq trigger.
void MountProc() {
  MakeDirs("proc");
  if (::mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    Fail("mount /proc");
  }
  // Files: /dev/null on top reads empty and swallows writes.
  // cmdline: the host kernel's command line (boot device, root filesystem, options).
  for (const char* name :
       {"kcore", "keys", "timer_list", "timer_stats", "sched_debug", "latency_stats",
        "sysrq-trigger", "kallsyms", "kmsg", "config.gz", "cmdline"}) {
    std::string path = std::string("proc/") + name;
    if (!PathExists(path)) continue;
    if (::mount("/dev/null", path.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      Fail(fmt::format("mask /proc/{}", name));
    }
  }
  // Directories: an empty read-only tmpfs on top.
  for (const char* name : {"acpi", "scsi", "asound", "driver"}) {
    std::string path = std::string("proc/") + name;
    if (!PathExists(path)) continue;
    if (::mount("tmpfs", path.c_str(), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                "size=0,mode=0555") != 0) {
      Fail(fmt::format("mask /proc/{}", name));
    }
  }
  // Kernel tunables and hardware: readable (runtimes read a few sysctls), never writable.
  for (const char* name : {"sys", "irq", "bus", "fs"}) {
    std::string path = std::string("proc/") + name;
    if (!PathExists(path)) continue;
    if (::mount(path.c_str(), path.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      Fail(fmt::format("bind /proc/{}", name));
    }
    RemountReadOnly(path, std::string("/proc/") + name);
  }
}

// /dev: only the harmless character devices, bound from the host, and a small /dev/shm for
// POSIX shared memory and semaphores (Python's multiprocessing needs it).
void MountDev(uint64_t tmp_size_bytes) {
  MakeDirs("dev");
  if (::mount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755,uid=0,gid=0") !=
      0) {
    Fail("mount /dev");
  }
  for (const char* name : {"null", "zero", "full", "random", "urandom", "tty"}) {
    std::string host = std::string("/dev/") + name;
    std::string target = std::string("dev/") + name;
    MakeFile(target);
    if (::mount(host.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      Fail("mount " + host);
    }
  }
  const std::pair<const char*, const char*> dev_links[] = {{"/proc/self/fd", "dev/fd"},
                                                           {"/proc/self/fd/0", "dev/stdin"},
                                                           {"/proc/self/fd/1", "dev/stdout"},
                                                           {"/proc/self/fd/2", "dev/stderr"}};
  for (const auto& [target, link] : dev_links) {
    if (::symlink(target, link) != 0) Fail(fmt::format("symlink /{}", link));
  }
  // Counted against the memory cgroup like /tmp; capped separately so shared memory cannot
  // take all of it.
  MakeDirs("dev/shm");
  const uint64_t shm_size = std::min<uint64_t>(tmp_size_bytes, 64 << 20);
  std::string shm_opts =
      fmt::format("size={},nr_inodes={},mode=1777,uid=0,gid=0", shm_size, InodeCap(shm_size));
  if (::mount("tmpfs", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, shm_opts.c_str()) !=
      0) {
    Fail("mount /dev/shm");
  }
  // The root tmpfs and /dev are mounted by a user namespace: the kernel ignores device nodes on
  // them (SB_I_NODEV) whatever the flags; the bound host nodes above are the only devices.
}

// Builds the sandbox's whole file system on the root tmpfs, which is the working directory.
// Only what is listed here is visible inside; everything from the host is read-only.
void BuildRoot(const SandboxChildArgs& a, const HostPaths& host) {
  const SpawnSpec& spec = *a.spec;
  if (::fchdir(host.root) != 0) Fail("chdir to new root");

  // Programs and libraries. Debian 12 is merged-/usr: /bin, /lib... are symlinks into usr/,
  // so copy the symlinks; bind the directory when the host has a real one.
  MakeDirs("usr");
  BindReadOnly("/usr", "usr", "/usr");
  for (const char* name : {"bin", "sbin", "lib", "lib32", "lib64", "libx32"}) {
    std::string host_path = std::string("/") + name;
    struct stat st;
    if (::lstat(host_path.c_str(), &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = ::readlink(host_path.c_str(), target, sizeof target - 1);
      if (n < 0) Fail("readlink " + host_path);
      target[n] = '\0';
      if (::symlink(target, name) != 0) Fail("symlink " + host_path);
    } else if (S_ISDIR(st.st_mode)) {
      MakeDirs(name);
      BindReadOnly(host_path, name, host_path);
    }
  }

  // A minimal /etc: what the dynamic loader, name resolution and TLS need. Never shadow,
  // sudoers, ssh keys or anything else of the host.
  MakeDirs("etc");
  for (const char* name : {"ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "hosts",
                           "nsswitch.conf", "localtime", "resolv.conf", "ssl", "alternatives"}) {
    std::string host_path = std::string("/etc/") + name;
    if (spec.network_outbound && std::string_view(name) == "resolv.conf") continue;
    if (PathExists(host_path)) BindPathReadOnly(host_path, std::string("etc/") + name, host_path);
  }
  if (spec.network_outbound) {
    // The host's resolver may sit on its loopback or a network the sandbox cannot route to;
    // slirp4netns forwards DNS on 10.0.2.3 to it. Read-only with the rest of the root.
    WriteFile("etc/resolv.conf", fmt::format("nameserver {}\n", kSlirpDns));
  }

  // The function's code and the platform's shims, read-only so a function cannot change itself
  // for the next invocation. Bound through the fds opened while we could still reach them.
  MakeDirs("var/task");
  BindReadOnly(FdPath(host.code), "var/task", "/var/task");
  if (host.runtime >= 0) {
    MakeDirs("opt/wisp/runtime");
    BindReadOnly(FdPath(host.runtime), "opt/wisp/runtime", "/opt/wisp/runtime");
  }
  // What a job leaves behind (ValidateSpawnSpec keeps these clear of every other mount point).
  for (size_t i = 0; i < spec.writable_binds.size(); ++i) {
    const std::string& path = spec.writable_binds[i].sandbox_path;
    MakeDirs(path.substr(1));
    BindWritable(FdPath(host.writable[i]), path.substr(1), path);
  }

  // The one writable place, capped so a function cannot fill the host's memory. tmpfs pages are
  // charged to the memory cgroup of the process that writes them, so /tmp counts against the
  // function's memory limit too.
  // The inode cap makes a million empty files end in ENOSPC too, instead of growing kernel
  // memory until the cgroup's OOM killer steps in.
  MakeDirs("tmp");
  std::string tmp_opts = fmt::format("size={},nr_inodes={},mode=1777,uid=0,gid=0",
                                     spec.tmp_size_bytes, InodeCap(spec.tmp_size_bytes));
  if (::mount("tmpfs", "tmp", "tmpfs", MS_NOSUID | MS_NODEV, tmp_opts.c_str()) != 0) {
    Fail("mount /tmp");
  }

  MountProc();
  MountDev(spec.tmp_size_bytes);
  // No /sys at all: nothing in it is the function's business.
}

// Makes the working directory the root of this mount namespace and drops the host's tree.
void EnterRoot() {
  // pivot_root(".", ".") stacks the old root on top of the new one; unmounting "." then
  // detaches the old root (and every host mount under it) without needing a directory to park
  // it in.
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

void DropPrivileges(const SpawnSpec& spec) {
  // Core dumps could leak memory contents; 1024 fds matches Lambda; no file may outgrow /tmp
  // (a bit of slack so a full /tmp reports ENOSPC, not EFBIG).
  rlimit core{0, 0};
  if (::setrlimit(RLIMIT_CORE, &core) != 0) Fail("setrlimit RLIMIT_CORE");
  rlimit nofile{kMaxOpenFiles, kMaxOpenFiles};
  if (::setrlimit(RLIMIT_NOFILE, &nofile) != 0) Fail("setrlimit RLIMIT_NOFILE");
  rlimit fsize{spec.tmp_size_bytes + (1 << 20), spec.tmp_size_bytes + (1 << 20)};
  if (::setrlimit(RLIMIT_FSIZE, &fsize) != 0) Fail("setrlimit RLIMIT_FSIZE");

  // uid 0 inside must never regain capabilities: not through execve of any binary (NOROOT), not
  // through setuid transitions (NO_SETUID_FIXUP), not through ambient capabilities; and the
  // bits themselves are locked.
  if (::prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                                     SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                                     SECBIT_NO_CAP_AMBIENT_RAISE |
                                     SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED) != 0) {
    Fail("prctl PR_SET_SECUREBITS");
  }
  // The bounding set caps what any future execve could grant; empty it (needs CAP_SETPCAP, so
  // before the effective set goes). EINVAL marks the first capability this kernel lacks.
  for (int cap = 0; cap < 64; ++cap) {
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      if (errno == EINVAL) break;
      Fail(fmt::format("drop capability {} from the bounding set", cap));
    }
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) {
    Fail("clear ambient capabilities");
  }
  cap_t none = cap_init();  // every set empty
  if (none == nullptr) Fail("cap_init");
  if (cap_set_proc(none) != 0) Fail("clear capabilities");
  cap_free(none);

  // setuid binaries inside (they are visible under /usr) must not gain anything; seccomp also
  // requires it from a process without CAP_SYS_ADMIN.
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) Fail("prctl PR_SET_NO_NEW_PRIVS");
  // Changing credentials cleared the parent-death signal: set it again. If the launcher died
  // in between, its end of the sync socket is closed (getppid() says 0 across a pid namespace).
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) Fail("prctl PR_SET_PDEATHSIG");
  pollfd p{kSyncFd, 0, 0};
  if (::poll(&p, 1, 0) != 0 && (p.revents & POLLHUP)) ::_exit(kSetupFailedExit);
}

// Waits for the launcher's "N": the network helper has configured tap0 and the default route.
void WaitForNetwork() {
  char msg[8];
  ssize_t n;
  do {
    n = ::recv(kSyncFd, msg, sizeof msg, 0);
  } while (n < 0 && errno == EINTR);
  if (n != 1 || msg[0] != 'N') ::_exit(kSetupFailedExit);  // launcher gone, or gave up on us
}

std::vector<char*> CStrings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// What the errno of a failed execve means for the file a function's author wrote (a custom
// runtime's bootstrap above all): the kernel's words alone mislead, e.g. "No such file or
// directory" for a script whose #! interpreter is missing.
std::string_view ExecFailureHint(int err, bool file_exists) {
  if (err == ENOEXEC) return " (neither a program for this machine nor a script with a #! line)";
  if (err == ENOENT && file_exists) {
    return " (the interpreter on its #! line, or the loader it is linked for, is not in the "
           "sandbox)";
  }
  if (err == EACCES) return " (not executable)";
  return "";
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
    // The channel takes the sync socket's number (the runtime has no use for that socket), and
    // dup2 clears close-on-exec: the channel is the one fd the runtime inherits. Everything
    // else closes at exec; the exec pipe stays open until then so a failure can still be
    // reported.
    static_assert(kRuntimeApiChannelFd == kSyncFd, "the channel must not overwrite the output");
    ::dup2(kChannelFd, kRuntimeApiChannelFd);
    ::close_range(kRuntimeApiChannelFd + 1, ~0U, CLOSE_RANGE_CLOEXEC);
    std::vector<char*> argv = CStrings(spec.argv);
    std::vector<char*> envp = CStrings(spec.env);
    ::execve(argv[0], argv.data(), envp.data());
    // The errno, and whether the file itself is there: ENOENT for a file that exists means
    // that what it needs to run (its #! interpreter, its ELF loader) is missing.
    const int failure[2] = {errno, ::access(argv[0], F_OK) == 0};
    ::write(exec_pipe[1], failure, sizeof failure);
    ::_exit(kExecFailedExit);
  }

  // Init keeps nothing of the runtime's: if it held the output pipe, wispd would never see EOF
  // while stray processes live.
  ::close(exec_pipe[1]);
  ::close(kOutputFd);
  ::close(kChannelFd);
  ::dup2(null_fd, 0);
  ::dup2(null_fd, 1);
  ::dup2(null_fd, 2);
  ::close(null_fd);

  int failure[2] = {0, 0};
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    ::waitpid(runtime, nullptr, 0);
    Fail(fmt::format("execve {}", spec.argv[0]), failure[0],
         ExecFailureHint(failure[0], failure[1] != 0));
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
  // Joined our cgroup before "G"; a cgroup namespace now makes that group the sandbox's root,
  // so /proc/self/cgroup reveals nothing of the host's layout.
  if (::unshare(CLONE_NEWCGROUP) != 0) Fail("unshare cgroup namespace");
  HostPaths host = OpenHostPaths(args);
  BecomeRootInside();
  BringUpLoopback();
  if (args.spec->network_outbound && !args.spec->outbound_private_networks) {
    BlockPrivateNetworks();
  }
  SendRuntimeApiListener(args.spec->runtime_api_port);
  BuildRoot(args, host);
  EnterRoot();
  // The O_PATH fds pointed into the host's tree; they must not reach the runtime.
  for (int fd : {host.root, host.code, host.runtime}) {
    if (fd >= 0) ::close(fd);
  }
  for (int fd : host.writable) ::close(fd);
  ::sethostname("wisp", 4);  // the host's name is none of the function's business
  DropPrivileges(*args.spec);
  // Last step before the fork: from here on, init and the runtime (and every thread and child
  // it ever makes) run under the filter.
  if (args.seccomp != nullptr) {
    if (auto installed = args.seccomp->Install(); !installed) Fail("install seccomp filter");
  }
  // Outbound network: the launcher's helper configures tap0 meanwhile; the runtime must find
  // its route in place from its first instruction.
  if (args.spec->network_outbound) WaitForNetwork();
  ExecRuntimeUnderInit(*args.spec);
}

}  // namespace wisp::sandbox
