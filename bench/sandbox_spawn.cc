// sandbox_spawn: what the jail costs at start. Spawn-to-ready of a jailed instance (the real
// launcher: user/pid/mount/net/ipc/uts/cgroup namespaces, cgroup limits, pivot_root, dropped
// capabilities, seccomp) next to an unjailed fork+exec of the same program, in the same run,
// interleaved so both see the same machine load.
//
// "Ready" is the first line the program prints, read by the caller from its output pipe. Each
// program is measured twice: `/bin/echo` isolates the jail's own cost; `python3 -c print` and
// `node -e console.log` show it next to a real runtime's start-up. "jailed+net" is the same
// jail with outbound network (a slirp4netns per instance, SpawnSpec::network_outbound).
//
// Usage (root): build/bench/sandbox_spawn [--iterations N]    (default 50)
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "wisp/sandbox/process_jail.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using wisp::sandbox::ExitStatus;
using wisp::sandbox::InstanceHandle;
using wisp::sandbox::Launcher;
using wisp::sandbox::LauncherOptions;
using wisp::sandbox::ProcessJail;
using wisp::sandbox::SpawnSpec;

double Millis(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Blocks until `fd` delivers a newline (or EOF / 10 s); true if a line arrived.
bool WaitForLine(int fd) {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  char buf[4096];
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) return false;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return false;
    }
    if (std::memchr(buf, '\n', static_cast<size_t>(n)) != nullptr) return true;
  }
  return false;
}

// Both modes run with exactly this environment (an inherited NODE_EXTRA_CA_CERTS alone costs
// node 20 ms).
const std::vector<std::string> kEnv = {"PATH=/usr/bin:/bin", "HOME=/tmp", "LANG=C.UTF-8"};

// The unjailed baseline: fork, exec, read the first line from a pipe, reap.
double UnjailedOnce(const std::vector<std::string>& argv) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) std::abort();
  const auto start = Clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    std::vector<char*> args, env;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    for (const auto& e : kEnv) env.push_back(const_cast<char*>(e.c_str()));
    env.push_back(nullptr);
    ::execve(args[0], args.data(), env.data());
    ::_exit(127);
  }
  ::close(out[1]);
  bool ok = WaitForLine(out[0]);
  double ms = Millis(Clock::now() - start);
  ::close(out[0]);
  ::waitpid(pid, nullptr, 0);
  return ok ? ms : -1;
}

struct Stats {
  double median = 0, p99 = 0, min = 0;
};

Stats Summarise(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  Stats s;
  s.min = v.front();
  s.median = v[v.size() / 2];
  s.p99 = v[std::min(v.size() - 1, static_cast<size_t>(v.size() * 0.99))];
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  int iterations = 50;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--iterations" && i + 1 < argc) iterations = std::atoi(argv[++i]);
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "sandbox_spawn: needs root (namespaces, cgroups)\n");
    return 2;
  }
  char tmpl[] = "/tmp/wisp-spawn-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 1;
  const std::string dir = tmpl;
  fs::create_directories(dir + "/root");
  fs::create_directories(dir + "/code");

  // Fork the launcher before anything else could start a thread.
  LauncherOptions options;
  options.sandbox_root_dir = dir + "/root";
  options.cgroup_group = fmt::format("wisp/{}", ::getpid());
  auto launcher = Launcher::Fork(options);
  if (!launcher) {
    std::fprintf(stderr, "sandbox_spawn: %s\n", launcher.error().message.c_str());
    return 1;
  }
  boost::asio::io_context io;
  std::map<std::string, ExitStatus> exits;
  {
    ProcessJail jail(io, std::move(*launcher));
    jail.SetExitCallback([&](const ExitStatus& s) { exits[s.instance_id] = s; });
    auto run_until = [&](auto done) {
      while (!done()) {
        if (io.stopped()) io.restart();
        io.run_one_for(std::chrono::milliseconds(50));
      }
    };
    int counter = 0;
    auto jailed_once = [&](const std::vector<std::string>& cmd, bool network = false) {
      SpawnSpec spec;
      spec.network_outbound = network;
      spec.instance_id = fmt::format("bench{}", counter++);
      spec.argv = cmd;
      spec.env = kEnv;
      spec.code_dir = dir + "/code";
      spec.memory_limit_bytes = 256 << 20;
      spec.tmp_size_bytes = 64 << 20;
      const auto start = Clock::now();
      std::optional<wisp::Result<InstanceHandle>> spawned;
      jail.Spawn(spec, [&](wisp::Result<InstanceHandle> r) { spawned = std::move(r); });
      run_until([&] { return spawned.has_value(); });
      if (!*spawned) {
        std::fprintf(stderr, "spawn failed: %s\n", (*spawned).error().message.c_str());
        std::exit(1);
      }
      // Until the first line of output, or its end.
      bool ok = false;
      bool output_done = false;
      wisp::sandbox::LogStream& output = *(*spawned)->logs;
      wisp::asio::co_spawn(
          io,
          [&]() -> wisp::asio::awaitable<void> {
            char buf[4096];
            for (;;) {
              boost::system::error_code ec;
              const size_t n = co_await output.Read(buf, ec);
              if (ec) break;
              if (std::memchr(buf, '\n', n) != nullptr) {
                ok = true;
                break;
              }
            }
            output_done = true;
          },
          wisp::asio::detached);
      run_until([&] { return output_done; });
      double ms = Millis(Clock::now() - start);
      run_until([&] { return exits.count(spec.instance_id) != 0; });
      return ok ? ms : -1;
    };

    const std::vector<std::pair<std::string, std::vector<std::string>>> programs = {
        {"echo", {"/bin/echo", "ready"}},
        {"python3", {"/usr/bin/python3", "-c", "print('ready')"}},
        {"node", {"/usr/bin/node", "-e", "console.log('ready')"}},
    };
    std::printf("spawn-to-ready (first line of output), %d runs each, interleaved\n", iterations);
    std::printf("%-8s %-9s %9s %9s %9s\n", "program", "mode", "min ms", "median ms", "p99 ms");
    for (const auto& [name, cmd] : programs) {
      std::vector<double> jailed, networked, plain;
      jailed_once(cmd);  // warm the page cache for all
      jailed_once(cmd, /*network=*/true);
      UnjailedOnce(cmd);
      for (int i = 0; i < iterations; ++i) {
        plain.push_back(UnjailedOnce(cmd));
        jailed.push_back(jailed_once(cmd));
        networked.push_back(jailed_once(cmd, /*network=*/true));
      }
      Stats j = Summarise(jailed), p = Summarise(plain), n = Summarise(networked);
      std::printf("%-8s %-9s %9.2f %9.2f %9.2f\n", name.c_str(), "unjailed", p.min, p.median,
                  p.p99);
      std::printf("%-8s %-9s %9.2f %9.2f %9.2f\n", name.c_str(), "jailed", j.min, j.median, j.p99);
      std::printf("%-8s %-9s %9s %9.2f %9.2f\n", name.c_str(), "overhead", "", j.median - p.median,
                  j.p99 - p.p99);
      std::printf("%-8s %-9s %9.2f %9.2f %9.2f\n", name.c_str(), "jailed+net", n.min, n.median,
                  n.p99);
      std::printf("%-8s %-9s %9s %9.2f %9.2f\n", name.c_str(), "net extra", "", n.median - j.median,
                  n.p99 - j.p99);
    }
  }
  fs::remove_all(dir);
  return 0;
}
