// The seccomp policy compiler, and the compiled default policy installed in a forked child:
// needs no root (no_new_privs suffices), so these run everywhere.
#include "wisp/sandbox/seccomp_filter.h"

#include <linux/netlink.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <utility>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace wisp::sandbox {
namespace {

using ::testing::HasSubstr;

#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
constexpr long kX32SyscallBit = 0x40000000;
#ifndef IPPROTO_MPTCP
constexpr int kIpprotoMptcp = 262;
#else
constexpr int kIpprotoMptcp = IPPROTO_MPTCP;
#endif

TEST(SeccompFilterTest, DefaultPolicyCompiles) {
  auto filter = SeccompFilter::Compile(DefaultSeccompPolicy());
  ASSERT_TRUE(filter) << filter.error().message;
  EXPECT_GT(filter->instruction_count(), 50u);
}

TEST(SeccompFilterTest, RejectsRuleWithoutComment) {
  auto filter = SeccompFilter::Compile("default errno EPERM # deny\nallow read\n");
  ASSERT_FALSE(filter);
  EXPECT_THAT(filter.error().message, HasSubstr("line 2: every rule needs a `# why` comment"));
}

TEST(SeccompFilterTest, RejectsUnknownSyscallConstantAndMissingDefault) {
  auto typo = SeccompFilter::Compile("default errno EPERM # d\nallow reed # typo\n");
  ASSERT_FALSE(typo);
  EXPECT_THAT(typo.error().message, HasSubstr("line 2: unknown syscall reed"));
  auto constant =
      SeccompFilter::Compile("default errno EPERM # d\nallow socket if arg0 == AF_X # x\n");
  ASSERT_FALSE(constant);
  EXPECT_THAT(constant.error().message, HasSubstr("unknown value AF_X"));
  auto no_default = SeccompFilter::Compile("allow read # r\n");
  ASSERT_FALSE(no_default);
  EXPECT_THAT(no_default.error().message, HasSubstr("no `default` line"));
}

// Runs `probe` in a child under the default policy; the child exits with what `probe` returns
// (an errno, or 0 for success). 200 + errno of a failed install.
int RunConfined(const std::function<int()>& probe) {
  auto filter = SeccompFilter::Compile(DefaultSeccompPolicy());
  if (!filter) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ::_exit(200);
    if (!filter->Install()) ::_exit(201);
    ::_exit(probe());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
}

// The errno of a raw syscall, 0 when it succeeded.
int Errno(long rc) { return rc < 0 ? errno : 0; }

TEST(SeccompFilterTest, AllowsOrdinaryWork) {
  EXPECT_EQ(RunConfined([] { return Errno(::syscall(SYS_getpid)); }), 0);
  EXPECT_EQ(RunConfined([] {
              int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
              return s < 0 ? errno : 0;
            }),
            0);
  EXPECT_EQ(RunConfined([] {
              int s = ::socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
              return s < 0 ? errno : 0;
            }),
            0);
  EXPECT_EQ(RunConfined([] {
              pid_t child = ::fork();
              if (child == 0) ::_exit(0);
              return child < 0 ? errno : 0;
            }),
            0);
}

TEST(SeccompFilterTest, DeniesWithErrnoAndNeverKills) {
  EXPECT_EQ(RunConfined([] { return Errno(::mount("none", "/mnt", "tmpfs", 0, nullptr)); }), EPERM);
  EXPECT_EQ(RunConfined([] { return Errno(::unshare(CLONE_NEWUSER)); }), EPERM);
  EXPECT_EQ(
      RunConfined([] { return Errno(::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)); }),
      EPERM);
  EXPECT_EQ(RunConfined([] { return Errno(::syscall(SYS_clone3, nullptr, 0)); }), ENOSYS);
  EXPECT_EQ(RunConfined([] { return Errno(::syscall(__NR_io_uring_setup, 8, nullptr)); }), ENOSYS);
  EXPECT_EQ(RunConfined([] { return Errno(::syscall(SYS_ptrace, 0, 0, 0, 0)); }), EPERM);
  EXPECT_EQ(RunConfined([] { return Errno(::syscall(SYS_bpf, 0, 0, 0)); }), EPERM);
  EXPECT_EQ(RunConfined([] { return Errno(::socket(AF_PACKET, SOCK_RAW, 0)); }), EPERM);
  EXPECT_EQ(RunConfined([] { return Errno(::socket(AF_INET, SOCK_RAW, 1)); }), EPERM);
  EXPECT_EQ(RunConfined([] { return Errno(::socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER)); }),
            EPERM);
  EXPECT_EQ(RunConfined([] { return Errno(::syscall(SYS_mknod, "/tmp/x", 0020644, 0)); }), EPERM);
}

TEST(SeccompFilterTest, RejectsX32Syscalls) {
  EXPECT_EQ(RunConfined([] { return Errno(::syscall(kX32SyscallBit | SYS_getpid)); }), ENOSYS);
}

TEST(SeccompFilterTest, AllowsOnlyTcpUdpAndUnixSockets) {
  // What runtimes create: the type's default protocol or the named one, with or without flags.
  for (int family : {AF_INET, AF_INET6}) {
    for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
      const int named = type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;
      for (int protocol : {0, named}) {
        for (int flags : {0, SOCK_NONBLOCK | SOCK_CLOEXEC}) {
          const int result =
              RunConfined([=] { return Errno(::socket(family, type | flags, protocol)); });
          // A kernel booted with IPv6 disabled has no AF_INET6 at all: not the filter's doing.
          EXPECT_TRUE(result == 0 || (family == AF_INET6 && result == EAFNOSUPPORT))
              << "family " << family << " type " << type << " protocol " << protocol << ": "
              << std::strerror(result);
        }
      }
    }
  }
  EXPECT_EQ(RunConfined([] { return Errno(::socket(AF_UNIX, SOCK_SEQPACKET, 0)); }), 0);
  // Other protocols of the same types: refused by the filter whatever the kernel supports.
  const std::pair<int, int> refused[] = {
      {SOCK_STREAM, kIpprotoMptcp},   {SOCK_STREAM, IPPROTO_SCTP}, {SOCK_DGRAM, IPPROTO_UDPLITE},
      {SOCK_STREAM, IPPROTO_UDP},     {SOCK_DGRAM, IPPROTO_TCP},   {SOCK_DGRAM, IPPROTO_ICMP},
      {SOCK_SEQPACKET, IPPROTO_SCTP},
  };
  for (int family : {AF_INET, AF_INET6}) {
    for (const auto& [type, protocol] : refused) {
      EXPECT_EQ(RunConfined([=] {
                  return Errno(::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol));
                }),
                EPERM)
          << "family " << family << " type " << type << " protocol " << protocol;
    }
  }
}

TEST(SeccompFilterTest, RejectsI386Syscalls) {
  // int 0x80 is the i386 entry point; eax=20 is i386 getpid. Where the kernel has IA32
  // emulation, the filter sees AUDIT_ARCH_I386 and answers ENOSYS; a kernel built without it
  // (CONFIG_IA32_EMULATION=n, or ia32_emulation=0 on the command line) has no such entry point
  // and kills the caller with SIGSEGV before any filter runs. Both mean "refused"; a getpid that
  // ran (a pid comes back) would not.
  constexpr int kKilledBySegv = 1000 + SIGSEGV;
  const int outcome = RunConfined([] {
    long rc;
    asm volatile("int $0x80" : "=a"(rc) : "a"(20L) : "memory");
    return rc == -ENOSYS ? ENOSYS : static_cast<int>(rc > 0 ? 0 : -rc);
  });
  EXPECT_TRUE(outcome == ENOSYS || outcome == kKilledBySegv) << "outcome " << outcome;
  std::printf("i386 syscall refused by %s\n", outcome == ENOSYS ? "the filter (ENOSYS)"
                                              : outcome == kKilledBySegv
                                                  ? "the kernel (SIGSEGV: no IA32 emulation)"
                                                  : "nothing");
}

}  // namespace
}  // namespace wisp::sandbox
