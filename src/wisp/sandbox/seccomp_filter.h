// SeccompFilter: the sandbox's seccomp-bpf program, compiled from a policy text (the syntax is
// described at the top of seccomp_policy.txt, which is compiled into the binary and returned by
// DefaultSeccompPolicy()).
//
// The launcher compiles the policy once at start, so a broken policy stops wispd before any
// function runs; each sandbox then only installs the ready program, which needs no allocation
// and no library call in the freshly cloned child.
//
// Thread rules: none of its own. Compile() anywhere; Install() affects only the calling thread
// and the threads and processes it creates afterwards.
#pragma once

#include <linux/filter.h>

#include <string>
#include <string_view>
#include <vector>

#include "wisp/common/result.h"

namespace wisp::sandbox {

// The policy text from src/wisp/sandbox/seccomp_policy.txt, embedded at build time.
std::string_view DefaultSeccompPolicy();

class SeccompFilter {
 public:
  // Parses `policy` and compiles it for x86_64. Fails with the line number and the reason for
  // a syntax error, an unknown syscall or constant, or a rule without its `# why` comment.
  static Result<SeccompFilter> Compile(std::string_view policy);

  // Installs the program on the calling thread. no_new_privs must already be set (the kernel
  // refuses filters from unprivileged processes otherwise). One prctl(); allocates only to
  // report a failure.
  Result<void> Install() const;

  size_t instruction_count() const { return program_.size(); }

 private:
  explicit SeccompFilter(std::vector<sock_filter> program) : program_(std::move(program)) {}

  std::vector<sock_filter> program_;
};

}  // namespace wisp::sandbox
