#include "wisp/sandbox/seccomp_filter.h"

#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <map>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <seccomp.h>

#include "wisp/common/defer.h"
#include "wisp/common/unique_fd.h"

namespace wisp::sandbox {
namespace {

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

// Names a policy may use instead of numbers. Only what the policy needs: an unknown name is an
// error, never a silent zero.
const std::map<std::string, uint64_t, std::less<>> kConstants = {
    {"AF_UNIX", AF_UNIX},
    {"AF_INET", AF_INET},
    {"AF_INET6", AF_INET6},
    {"AF_NETLINK", AF_NETLINK},
    {"AF_PACKET", AF_PACKET},
    {"SOCK_STREAM", SOCK_STREAM},
    {"SOCK_DGRAM", SOCK_DGRAM},
    {"SOCK_RAW", SOCK_RAW},
    {"SOCK_SEQPACKET", SOCK_SEQPACKET},
    {"SOCK_TYPE_MASK", 0xf},  // the kernel's SOCK_TYPE_MASK; the rest are SOCK_CLOEXEC etc.
    {"NETLINK_ROUTE", NETLINK_ROUTE},
    {"IPPROTO_TCP", IPPROTO_TCP},
    {"IPPROTO_UDP", IPPROTO_UDP},
    {"CLONE_NAMESPACES", CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
                             CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWTIME},
    {"S_IFMT", S_IFMT},
    {"S_IFIFO", S_IFIFO},
};

const std::map<std::string, int, std::less<>> kErrnos = {
    {"EPERM", EPERM}, {"ENOSYS", ENOSYS}, {"EACCES", EACCES}, {"EINVAL", EINVAL}};

struct Condition {
  unsigned arg = 0;
  std::optional<uint64_t> mask;
  uint64_t value = 0;
};

struct Rule {
  int line = 0;
  uint32_t action = 0;
  std::vector<std::string> syscalls;
  std::vector<Condition> conditions;
};

std::vector<std::string> Words(std::string_view text) {
  std::istringstream in{std::string(text)};
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(std::move(w));
  return words;
}

std::optional<uint64_t> ParseValue(const std::string& word) {
  if (auto it = kConstants.find(word); it != kConstants.end()) return it->second;
  uint64_t value = 0;
  int base = 10;
  std::string_view digits = word;
  if (digits.starts_with("0x")) {
    base = 16;
    digits.remove_prefix(2);
  }
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
  if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty()) {
    return std::nullopt;
  }
  return value;
}

// "allow" or "errno EPERM", consuming the words it uses.
Result<uint32_t> ParseAction(const std::vector<std::string>& w, size_t& i) {
  if (i < w.size() && w[i] == "allow") {
    ++i;
    return SCMP_ACT_ALLOW;
  }
  if (i + 1 < w.size() && w[i] == "errno") {
    auto it = kErrnos.find(w[i + 1]);
    if (it == kErrnos.end()) {
      return MakeError(ErrorCode::kInvalidArgument, "unknown errno " + w[i + 1]);
    }
    i += 2;
    return SCMP_ACT_ERRNO(static_cast<uint16_t>(it->second));
  }
  return MakeError(ErrorCode::kInvalidArgument, "expected `allow` or `errno <ERRNO>`");
}

// "argN == V" or "argN & M == V" starting at w[i].
Result<Condition> ParseCondition(const std::vector<std::string>& w, size_t& i) {
  auto bad = [&](std::string why) { return MakeError(ErrorCode::kInvalidArgument, why); };
  if (i >= w.size() || w[i].size() != 4 || !w[i].starts_with("arg") || w[i][3] < '0' ||
      w[i][3] > '5') {
    return bad("expected arg0..arg5 in condition");
  }
  Condition c;
  c.arg = static_cast<unsigned>(w[i][3] - '0');
  ++i;
  if (i + 1 < w.size() && w[i] == "&") {
    c.mask = ParseValue(w[i + 1]);
    if (!c.mask) return bad("unknown mask " + w[i + 1]);
    i += 2;
  }
  if (i + 1 >= w.size() || w[i] != "==") return bad("conditions compare with ==");
  auto value = ParseValue(w[i + 1]);
  if (!value) return bad("unknown value " + w[i + 1]);
  c.value = *value;
  i += 2;
  return c;
}

}  // namespace

Result<SeccompFilter> SeccompFilter::Compile(std::string_view policy) {
  std::optional<uint32_t> default_action;
  std::vector<Rule> rules;
  std::istringstream lines{std::string(policy)};
  int number = 0;
  for (std::string line; std::getline(lines, line);) {
    ++number;
    auto fail = [&](const std::string& why) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("seccomp policy line {}: {}", number, why));
    };
    const size_t hash = line.find('#');
    const std::string_view body = std::string_view(line).substr(0, hash);
    std::vector<std::string> w = Words(body);
    if (w.empty()) continue;  // blank or comment-only
    if (hash == std::string::npos || Words(std::string_view(line).substr(hash + 1)).empty()) {
      return fail("every rule needs a `# why` comment");
    }
    size_t i = 0;
    if (w[0] == "default") {
      ++i;
      auto action = ParseAction(w, i);
      if (!action) return fail(action.error().message);
      if (i != w.size()) return fail("unexpected words after the default action");
      default_action = *action;
      continue;
    }
    Rule rule;
    rule.line = number;
    auto action = ParseAction(w, i);
    if (!action) return fail(action.error().message);
    rule.action = *action;
    while (i < w.size() && w[i] != "if") rule.syscalls.push_back(w[i++]);
    if (rule.syscalls.empty()) return fail("no syscall named");
    if (i < w.size()) {  // "if" cond ("&&" cond)*
      if (rule.syscalls.size() != 1) return fail("a conditional rule names exactly one syscall");
      ++i;
      for (;;) {
        auto cond = ParseCondition(w, i);
        if (!cond) return fail(cond.error().message);
        rule.conditions.push_back(*cond);
        if (i == w.size()) break;
        if (w[i] != "&&") return fail("conditions are joined with &&");
        ++i;
      }
    }
    rules.push_back(std::move(rule));
  }
  if (!default_action) {
    return MakeError(ErrorCode::kInvalidArgument, "seccomp policy has no `default` line");
  }

  scmp_filter_ctx ctx = seccomp_init(*default_action);
  if (ctx == nullptr) return MakeError(ErrorCode::kInternal, "seccomp_init failed");
  Defer release([&] { seccomp_release(ctx); });
  // seccomp_init() allows only the native architecture (x86_64). Everything else - i386 through
  // int 0x80, and x32 numbers (bit 0x40000000), which libseccomp checks on x86_64 - fails with
  // ENOSYS instead of killing: a probe must not take the runtime down.
  if (int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(ENOSYS)); rc != 0) {
    return ErrnoError("seccomp bad-arch action", -rc);
  }
  // A binary tree of syscall numbers instead of a linear chain: every syscall of every sandbox
  // runs this filter, so its cost is per syscall, not per spawn.
  if (int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2); rc != 0) {
    return ErrnoError("seccomp optimize", -rc);
  }
  for (const Rule& rule : rules) {
    for (const std::string& name : rule.syscalls) {
      int nr = seccomp_syscall_resolve_name(name.c_str());
      if (nr == __NR_SCMP_ERROR || nr < 0) {
        return MakeError(
            ErrorCode::kInvalidArgument,
            fmt::format("seccomp policy line {}: unknown syscall {}", rule.line, name));
      }
      // A rule with the default's action is documentation; libseccomp refuses to add it.
      if (rule.action == *default_action) continue;
      std::vector<scmp_arg_cmp> cmps;
      for (const Condition& c : rule.conditions) {
        cmps.push_back(c.mask ? scmp_arg_cmp{c.arg, SCMP_CMP_MASKED_EQ, *c.mask, c.value}
                              : scmp_arg_cmp{c.arg, SCMP_CMP_EQ, c.value, 0});
      }
      int rc = seccomp_rule_add_array(ctx, rule.action, nr, static_cast<unsigned>(cmps.size()),
                                      cmps.data());
      if (rc != 0) {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("seccomp policy line {}: cannot add {}: {}", rule.line, name,
                                     std::strerror(-rc)));
      }
    }
  }

  // Export the raw BPF once; the sandbox installs it with a single prctl().
  UniqueFd memfd(::memfd_create("wisp-seccomp", MFD_CLOEXEC));
  if (!memfd) return ErrnoError("memfd_create for seccomp");
  if (int rc = seccomp_export_bpf(ctx, memfd.get()); rc != 0) {
    return ErrnoError("seccomp_export_bpf", -rc);
  }
  off_t size = ::lseek(memfd.get(), 0, SEEK_CUR);
  if (size <= 0 || size % sizeof(sock_filter) != 0) {
    return MakeError(ErrorCode::kInternal, "seccomp_export_bpf wrote a malformed program");
  }
  std::vector<sock_filter> program(static_cast<size_t>(size) / sizeof(sock_filter));
  if (::pread(memfd.get(), program.data(), static_cast<size_t>(size), 0) != size) {
    return ErrnoError("read back seccomp program");
  }
  return SeccompFilter(std::move(program));
}

Result<void> SeccompFilter::Install() const {
  sock_fprog prog{static_cast<unsigned short>(program_.size()),
                  const_cast<sock_filter*>(program_.data())};
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) {
    return ErrnoError("install seccomp filter");
  }
  return {};
}

}  // namespace wisp::sandbox
