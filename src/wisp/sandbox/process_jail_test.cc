// End-to-end tests of the process jail: a real launcher, real namespaces and cgroups. They need
// root. The launcher is forked in SetUp: gtest runs no threads of its own, so fork is safe.
#include "wisp/sandbox/process_jail.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "wisp/sandbox/backend_factory.h"
#include "wisp/sandbox/cgroup.h"

namespace wisp::sandbox {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr auto kTimeout = std::chrono::seconds(20);

// Reads from a non-blocking fd until EOF, or until `until` appears when given.
std::string ReadOutput(int fd, const std::string& until = "") {
  std::string out;
  const auto deadline = steady_clock::now() + kTimeout;
  while (steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      break;
    }
    out.append(buf, static_cast<size_t>(n));
    if (!until.empty() && out.find(until) != std::string::npos) break;
  }
  return out;
}

bool ProcessExists(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

// Why sandboxes cannot be made on this machine at all, or "" when they can: these tests need
// root, usable memory and pids cgroups (the launcher refuses to run without them) and user
// namespaces. A machine without them says nothing about the jail.
std::string WhySandboxesCannotRunHere() {
  if (::geteuid() != 0) return "needs root: namespaces, mounts and cgroups";
  auto cgroups = CgroupFs::Detect();
  if (!cgroups) return "no usable cgroup hierarchy: " + cgroups.error().message;
  if (!cgroups->CanEnforceLimits()) {
    return fmt::format("cgroups {} lack the memory or pids controller", cgroups->Describe());
  }
  std::ifstream max_user_namespaces("/proc/sys/user/max_user_namespaces");
  int allowed = -1;
  if (max_user_namespaces >> allowed && allowed == 0) {
    return "user namespaces are disabled (user.max_user_namespaces = 0)";
  }
  return "";
}

class ProcessJailTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = WhySandboxesCannotRunHere(); !why.empty()) GTEST_SKIP() << why;
    char tmpl[] = "/tmp/wisp-jail-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ + "/root");
    fs::create_directories(dir_ + "/code");
    fs::create_directories(dir_ + "/runtime");
    std::ofstream(dir_ + "/code/hello.txt") << "code file\n";
    group_ = fmt::format("wisp/{}", ::getpid());

    StartLauncher(LauncherOptions{});
  }

  // (Re)starts the launcher with `options`, its directories and group filled in.
  void StartLauncher(LauncherOptions options) {
    jail_.reset();
    options.sandbox_root_dir = dir_ + "/root";
    options.cgroup_group = group_;
    auto launcher = Launcher::Fork(options);
    ASSERT_TRUE(launcher) << launcher.error().message;
    jail_ = std::make_unique<ProcessJail>(io_, std::move(*launcher));
    jail_->SetExitCallback([this](const ExitStatus& s) { exits_[s.instance_id] = s; });
  }

  void TearDown() override {
    jail_.reset();
    if (!dir_.empty()) {
      // Only empty directories are expected; remove_all would follow nothing outside.
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }

  SpawnSpec Spec(const std::string& id, std::vector<std::string> argv) {
    SpawnSpec s;
    s.instance_id = id;
    s.argv = std::move(argv);
    s.env = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8"};
    s.code_dir = dir_ + "/code";
    s.runtime_dir = dir_ + "/runtime";
    s.memory_limit_bytes = 128 << 20;
    s.tmp_size_bytes = 16 << 20;
    s.pids_limit = 64;
    return s;
  }

  SpawnSpec Shell(const std::string& id, const std::string& script) {
    return Spec(id, {"/bin/sh", "-c", script});
  }

  template <typename Pred>
  void RunIoUntil(Pred done) {
    const auto deadline = steady_clock::now() + kTimeout;
    while (!done() && steady_clock::now() < deadline) {
      if (io_.stopped()) io_.restart();
      io_.run_one_for(milliseconds(50));
    }
  }

  Result<InstanceHandle> SpawnAndWait(const SpawnSpec& spec) {
    std::optional<Result<InstanceHandle>> result;
    jail_->Spawn(spec, [&](Result<InstanceHandle> r) { result = std::move(r); });
    RunIoUntil([&] { return result.has_value(); });
    if (!result) return MakeError(ErrorCode::kTimeout, "no spawn reply");
    return std::move(*result);
  }

  // What the instance wrote, until `until` appears, its output ends, or kTimeout passes.
  std::string ReadLogs(LogStream& logs, const std::string& until = "") {
    std::string out;
    bool done = false;
    boost::asio::co_spawn(
        io_,
        [&]() -> boost::asio::awaitable<void> {
          char buf[4096];
          for (;;) {
            boost::system::error_code ec;
            const size_t n = co_await logs.Read(buf, ec);
            if (ec) break;
            out.append(buf, n);
            if (!until.empty() && out.find(until) != std::string::npos) break;
          }
          done = true;
        },
        boost::asio::detached);
    RunIoUntil([&] { return done; });
    if (!done) {
      logs.Close();  // ends the read, which refers to `out`
      RunIoUntil([&] { return done; });
    }
    return out;
  }

  // The next connection the runtime opens through the instance's transport; closed if none
  // comes within kTimeout.
  runtime_api::RuntimeConnection Accept(runtime_api::Transport& transport) {
    runtime_api::RuntimeConnection connection(io_);
    bool done = false;
    boost::asio::co_spawn(
        io_,
        [&]() -> boost::asio::awaitable<void> {
          co_await transport.Accept(connection);
          done = true;
        },
        boost::asio::detached);
    RunIoUntil([&] { return done; });
    if (!done) {
      transport.Close();
      RunIoUntil([&] { return done; });
    }
    return connection;
  }

  ExitStatus WaitExit(const std::string& id) {
    RunIoUntil([&] { return exits_.count(id) != 0; });
    EXPECT_EQ(exits_.count(id), 1u) << "no exit reported for " << id;
    return exits_.count(id) ? exits_[id] : ExitStatus{};
  }

  // Spawns, collects all output until EOF, waits for the exit.
  std::pair<std::string, ExitStatus> Run(const SpawnSpec& spec) {
    auto instance = SpawnAndWait(spec);
    EXPECT_TRUE(instance) << instance.error().message;
    if (!instance) return {};
    std::string out = ReadLogs(*instance->logs);
    return {out, WaitExit(spec.instance_id)};
  }

  std::string InstanceGroup(const std::string& id) { return group_ + "/" + id; }

  boost::asio::io_context io_;
  std::string dir_;
  std::string group_;
  std::unique_ptr<ProcessJail> jail_;
  std::map<std::string, ExitStatus> exits_;
};

TEST_F(ProcessJailTest, RunsCommandAndCapturesOutput) {
  auto [out, exit] = Run(Shell("echo", "echo hello; echo oops >&2; cat /var/task/hello.txt"));
  EXPECT_EQ(out, "hello\noops\ncode file\n");
  EXPECT_EQ(exit.exit_code, 0);
  EXPECT_EQ(exit.signal, 0);
  EXPECT_FALSE(exit.oom_killed);
}

TEST_F(ProcessJailTest, ReportsExitCodeAndSignal) {
  auto [out1, code] = Run(Shell("code", "exit 7"));
  EXPECT_EQ(code.exit_code, 7);
  EXPECT_EQ(code.signal, 0);
  auto [out2, sig] = Run(Shell("sig", "kill -TERM $$"));
  EXPECT_EQ(sig.exit_code, -1);
  EXPECT_EQ(sig.signal, SIGTERM);
}

TEST_F(ProcessJailTest, SandboxReachesWispdOnlyThroughItsListener) {
  auto instance = SpawnAndWait(Spec("net", {"/usr/bin/python3", "-c",
                                            "import socket\n"
                                            "s = socket.create_connection(('127.0.0.1', 9001))\n"
                                            "s.sendall(b'hello from sandbox\\n')\n"
                                            "s.close()\n"}));
  ASSERT_TRUE(instance) << instance.error().message;
  runtime_api::RuntimeConnection conn = Accept(*instance->runtime_api);
  ASSERT_TRUE(conn.is_open()) << ReadLogs(*instance->logs);
  std::string line = ReadOutput(conn.native_handle(), "\n");
  EXPECT_EQ(line, "hello from sandbox\n");
  EXPECT_EQ(WaitExit("net").exit_code, 0);
}

TEST_F(ProcessJailTest, ChannelConnectsWispdToTheRuntime) {
  auto instance = SpawnAndWait(Spec("channel", {"/usr/bin/python3", "-c",
                                                "import socket\n"
                                                "s = socket.socket(fileno=3)\n"
                                                "s.sendall(s.recv(100).upper())\n"}));
  ASSERT_TRUE(instance) << instance.error().message;
  auto connections = instance->runtime_api->TakeOpenConnections();
  ASSERT_EQ(connections.size(), 1u);
  const int channel = connections[0].native_handle();
  const std::string ping = "ping\n";
  ASSERT_EQ(::send(channel, ping.data(), ping.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(ping.size()));
  EXPECT_EQ(ReadOutput(channel, "\n"), "PING\n");
  EXPECT_EQ(WaitExit("channel").exit_code, 0);
}

TEST(BackendFactoryTest, AnUnknownBackendIsRefusedWithTheValidNames) {
  boost::asio::io_context io;
  BackendOptions options;
  options.name = "qemu";
  auto made = MakeBackend(io, options);
  ASSERT_FALSE(made);
  EXPECT_EQ(made.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(made.error().message, HasSubstr("'qemu' is not a backend; valid: process"));
  EXPECT_EQ(std::vector<std::string_view>(BackendNames().begin(), BackendNames().end()),
            std::vector<std::string_view>{"process"});
}

// A prewarmed instance starts with an empty /var/task; Specialize puts a code directory's files
// there (hard links to the launcher's staged copy), once, while the instance runs.
TEST_F(ProcessJailTest, SpecializePutsCodeIntoAPrewarmedInstance) {
  fs::create_directories(dir_ + "/code/lib");
  { std::ofstream(dir_ + "/code/lib/nested.txt") << "nested file"; }
  fs::create_symlink("hello.txt", dir_ + "/code/link.txt");
  SpawnSpec spec = Shell("warm",
                         "ls -A /var/task; echo listed;"
                         "head -c 1 <&3 >/dev/null;"  // waits for wispd's go-ahead
                         "cat /var/task/hello.txt /var/task/lib/nested.txt /var/task/link.txt;"
                         "echo; touch /var/task/new 2>/dev/null || echo read-only");
  spec.code_dir.clear();
  spec.prewarmed = true;
  auto instance = SpawnAndWait(spec);
  ASSERT_TRUE(instance) << instance.error().message;
  EXPECT_EQ(ReadLogs(*instance->logs, "listed\n"), "listed\n") << "/var/task starts empty";

  std::optional<Result<void>> placed;
  jail_->Specialize("warm", dir_ + "/code", [&](Result<void> r) { placed = std::move(r); });
  RunIoUntil([&] { return placed.has_value(); });
  ASSERT_TRUE(placed && *placed) << (placed ? placed->error().message : "no reply");
  std::optional<Result<void>> again;
  jail_->Specialize("warm", dir_ + "/code", [&](Result<void> r) { again = std::move(r); });
  RunIoUntil([&] { return again.has_value(); });
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again) << "an instance gets its code once";

  auto connections = instance->runtime_api->TakeOpenConnections();
  ASSERT_EQ(connections.size(), 1u);
  ASSERT_EQ(::send(connections[0].native_handle(), "x", 1, MSG_NOSIGNAL), 1);
  EXPECT_EQ(ReadLogs(*instance->logs), "code file\nnested filecode file\n\nread-only\n");
  EXPECT_EQ(WaitExit("warm").exit_code, 0);
}

// A prewarmed instance loads its runtime at a low CPU weight, so that a pool filling in the
// background does not slow down the instances that serve calls; it gets its full weight back
// when it becomes a function's.
TEST_F(ProcessJailTest, APrewarmedInstanceHasALowCpuWeightUntilItIsSpecialized) {
  auto cgroups = CgroupFs::Detect();
  ASSERT_TRUE(cgroups);
  const bool v2 = cgroups->version() == CgroupVersion::kV2;
  const std::string file = "/sys/fs/cgroup/" + std::string(v2 ? "" : "cpu/") +
                           InstanceGroup("weighted") + (v2 ? "/cpu.weight" : "/cpu.shares");
  if (!fs::exists(fs::path(file).parent_path().parent_path())) {
    GTEST_SKIP() << "no cpu controller in this machine's cgroups";
  }
  fs::create_directories(dir_ + "/code");
  SpawnSpec spec = Shell("weighted", "echo up; exec sleep 1000");
  spec.code_dir.clear();
  spec.prewarmed = true;
  spec.vcpu = 1;
  auto instance = SpawnAndWait(spec);
  ASSERT_TRUE(instance) << instance.error().message;
  ReadLogs(*instance->logs, "up");
  auto weight = [&] {
    std::string value;
    std::ifstream(file) >> value;
    return value;
  };
  const std::string full = v2 ? "100" : "1024";
  EXPECT_LT(std::stol(weight()), std::stol(full));

  std::optional<Result<void>> placed;
  jail_->Specialize("weighted", dir_ + "/code", [&](Result<void> r) { placed = std::move(r); });
  RunIoUntil([&] { return placed.has_value(); });
  ASSERT_TRUE(placed && *placed) << (placed ? placed->error().message : "no reply");
  EXPECT_EQ(weight(), full);
  // An instance spawned for a function has its full weight from the start.
  SpawnSpec plain = Shell("plain", "echo up; exec sleep 1000");
  auto started = SpawnAndWait(plain);
  ASSERT_TRUE(started) << started.error().message;
  std::string plain_weight;
  std::ifstream("/sys/fs/cgroup/" + std::string(v2 ? "" : "cpu/") + InstanceGroup("plain") +
                (v2 ? "/cpu.weight" : "/cpu.shares")) >>
      plain_weight;
  EXPECT_EQ(plain_weight, full);
  jail_->Kill("weighted");
  jail_->Kill("plain");
  WaitExit("weighted");
  WaitExit("plain");
}

// Prewarmed spawns go to the launcher one at a time; one killed before its turn never starts,
// and every other one still does.
TEST_F(ProcessJailTest, PrewarmedSpawnsWaitTheirTurnAndCanBeStoppedBeforeIt) {
  std::map<std::string, std::optional<Result<InstanceHandle>>> results;
  for (const char* id : {"p1", "p2", "p3"}) {
    SpawnSpec spec = Shell(id, "echo up; exec sleep 1000");
    spec.code_dir.clear();
    spec.prewarmed = true;
    jail_->Spawn(spec, [&results, id](Result<InstanceHandle> r) { results[id] = std::move(r); });
  }
  jail_->Kill("p2");
  RunIoUntil([&] { return results.size() == 3; });
  ASSERT_EQ(results.size(), 3u);
  ASSERT_TRUE(results["p1"] && *results["p1"]) << results["p1"]->error().message;
  ASSERT_TRUE(results["p3"] && *results["p3"]) << results["p3"]->error().message;
  ASSERT_TRUE(results["p2"]);
  EXPECT_FALSE(*results["p2"]);
  jail_->Kill("p1");
  jail_->Kill("p3");
  WaitExit("p1");
  WaitExit("p3");
}

// A package over the size wispd copies itself: the launcher stages one copy and hard-links it.
TEST_F(ProcessJailTest, SpecializeHardLinksALargePackageFromTheStage) {
  fs::create_directories(dir_ + "/big");
  {
    std::ofstream(dir_ + "/big/blob.bin") << std::string(3 << 20, 'x');
    std::ofstream(dir_ + "/big/hello.txt") << "big package\n";
  }
  SpawnSpec spec = Shell("large",
                         "head -c 1 <&3 >/dev/null; cat /var/task/hello.txt;"
                         "wc -c < /var/task/blob.bin; stat -c %h /var/task/blob.bin");
  spec.code_dir.clear();
  spec.prewarmed = true;
  auto instance = SpawnAndWait(spec);
  ASSERT_TRUE(instance) << instance.error().message;
  std::optional<Result<void>> placed;
  jail_->Specialize("large", dir_ + "/big", [&](Result<void> r) { placed = std::move(r); });
  RunIoUntil([&] { return placed.has_value(); });
  ASSERT_TRUE(placed && *placed) << (placed ? placed->error().message : "no reply");
  auto connections = instance->runtime_api->TakeOpenConnections();
  ASSERT_EQ(connections.size(), 1u);
  ASSERT_EQ(::send(connections[0].native_handle(), "x", 1, MSG_NOSIGNAL), 1);
  // Two names for the file: the stage's copy and this instance's link to it.
  EXPECT_EQ(ReadLogs(*instance->logs), "big package\n3145728\n2\n");
  EXPECT_EQ(WaitExit("large").exit_code, 0);
}

TEST_F(ProcessJailTest, OnlyAPrewarmedInstanceIsSpecialized) {
  auto instance = SpawnAndWait(Shell("plain", "head -c 1 <&3"));
  ASSERT_TRUE(instance) << instance.error().message;
  std::optional<Result<void>> placed;
  jail_->Specialize("plain", dir_ + "/code", [&](Result<void> r) { placed = std::move(r); });
  RunIoUntil([&] { return placed.has_value(); });
  ASSERT_TRUE(placed);
  ASSERT_FALSE(*placed);
  EXPECT_THAT(placed->error().message, HasSubstr("not prewarmed"));
  std::optional<Result<void>> unknown;
  jail_->Specialize("nobody", dir_ + "/code", [&](Result<void> r) { unknown = std::move(r); });
  RunIoUntil([&] { return unknown.has_value(); });
  ASSERT_TRUE(unknown);
  EXPECT_FALSE(*unknown);
  jail_->Kill("plain");
  WaitExit("plain");
}

TEST_F(ProcessJailTest, HandsOverTheCgroupsMemoryPeak) {
  auto instance = SpawnAndWait(Spec("peak", {"/usr/bin/python3", "-c",
                                             "import socket\n"
                                             "b = bytearray(40 << 20)\n"
                                             "b[::4096] = b'\\x01' * len(range(0, len(b), 4096))\n"
                                             "print('allocated', flush=True)\n"
                                             "socket.socket(fileno=3).recv(1)\n"}));
  ASSERT_TRUE(instance) << instance.error().message;
  if (!instance->memory) {
    auto cgroups = CgroupFs::Detect();
    ASSERT_TRUE(cgroups && cgroups->version() == CgroupVersion::kV2)
        << "cgroup v1 always has memory.max_usage_in_bytes";
    jail_->Kill("peak");
    WaitExit("peak");
    GTEST_SKIP() << "this kernel's cgroup v2 has no memory.peak (Linux 5.19 and later do)";
  }
  EXPECT_EQ(ReadLogs(*instance->logs, "\n"), "allocated\n");
  const auto peak = instance->memory->Peak();
  ASSERT_TRUE(peak);
  EXPECT_GE(*peak, uint64_t{40} << 20);
  EXPECT_LE(*peak, uint64_t{128} << 20);
  auto connections = instance->runtime_api->TakeOpenConnections();
  ASSERT_EQ(connections.size(), 1u);
  ASSERT_EQ(::send(connections[0].native_handle(), "x", 1, MSG_NOSIGNAL), 1);
  const ExitStatus exit = WaitExit("peak");
  EXPECT_EQ(exit.exit_code, 0);
  // Read by the launcher just before it removed the group, for calls that end the instance.
  ASSERT_TRUE(exit.memory_peak_bytes);
  EXPECT_GE(*exit.memory_peak_bytes, *peak);
  // The group is gone: its file no longer reads.
  EXPECT_EQ(instance->memory->Peak(), std::nullopt);
}

TEST_F(ProcessJailTest, SandboxSeesOnlyItsOwnWorld) {
  auto [out, exit] = Run(Shell("world",
                               "id -u; id -g;"
                               "test -e /etc/shadow && echo shadow=present || echo shadow=absent;"
                               "touch /var/task/x 2>/dev/null && echo task=rw || echo task=ro;"
                               "touch /usr/x 2>/dev/null && echo usr=rw || echo usr=ro;"
                               "touch /x 2>/dev/null && echo root=rw || echo root=ro;"
                               "touch /tmp/x && echo tmp=rw;"
                               "grep NoNewPrivs /proc/self/status;"
                               "cat /proc/sys/kernel/hostname;"
                               "echo procs: $(ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' ')"));
  EXPECT_EQ(exit.exit_code, 0) << out;
  // Root inside its user namespace (RuntimeIsUnprivilegedOnTheHost checks the outside).
  EXPECT_THAT(out, HasSubstr("0\n0\n"));
  EXPECT_THAT(out, HasSubstr("shadow=absent"));
  EXPECT_THAT(out, HasSubstr("task=ro"));
  EXPECT_THAT(out, HasSubstr("usr=ro"));
  EXPECT_THAT(out, HasSubstr("root=ro"));
  EXPECT_THAT(out, HasSubstr("tmp=rw"));
  EXPECT_THAT(out, HasSubstr("NoNewPrivs:\t1"));
  EXPECT_THAT(out, HasSubstr("wisp\n"));
  // Init (1), the shell (2) and its pipeline children: nothing of the host.
  std::istringstream procs(out.substr(out.find("procs:") + 6));
  pid_t pid;
  int count = 0;
  while (procs >> pid) {
    EXPECT_LT(pid, 20) << out;
    ++count;
  }
  EXPECT_GE(count, 2);
  EXPECT_LE(count, 6) << out;
}

// A job's writable directory (a Go build's output and cache): the sandbox writes there as its
// uid outside, cannot execute or make setuid files there, and the host path is taken as it is,
// never through a symlink.
TEST_F(ProcessJailTest, WritableBindsAreWritableButNotExecutable) {
  // As Go builds run: every sandbox as one id, which owns the output directory.
  constexpr uint32_t kJobId = 0x6fffff00;
  LauncherOptions options;
  options.sandbox_id_base = kJobId;
  options.sandbox_id_count = 1;
  options.one_id_for_all = true;
  StartLauncher(options);
  const std::string out = dir_ + "/private/out";
  fs::create_directories(out);
  fs::permissions(dir_ + "/private", fs::perms::owner_all);  // root's, 0700: as the build dir
  ASSERT_EQ(::chown(out.c_str(), kJobId, kJobId), 0);
  SpawnSpec spec = Shell("writable",
                         "printf '#!/bin/sh\necho ran\n' > /out/script && chmod 4755 /out/script"
                         " && echo written;"
                         "/out/script 2>/dev/null || echo exec=refused;"
                         "touch /var/task/x 2>/dev/null && echo task=rw || echo task=ro;"
                         "grep ' /out ' /proc/self/mountinfo");
  spec.writable_binds = {{out, "/out"}};
  auto [text, exit] = Run(spec);
  EXPECT_EQ(exit.exit_code, 0) << text;
  EXPECT_THAT(text, HasSubstr("written"));
  EXPECT_THAT(text, HasSubstr("exec=refused"));
  EXPECT_THAT(text, HasSubstr("task=ro"));
  EXPECT_THAT(text, HasSubstr("nosuid,nodev,noexec"));
  struct stat st {};
  ASSERT_EQ(::stat((out + "/script").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kJobId);

  // A symlink in the host path's place is refused, not followed.
  fs::rename(out, dir_ + "/private/real");
  fs::create_directory_symlink(dir_ + "/private/real", out);
  spec.instance_id = "writable-link";
  auto refused = SpawnAndWait(spec);
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error().message, HasSubstr("/out"));
}

// Reads "Key:\tvalue" from a /proc status file.
std::string StatusField(const std::string& status_path, const std::string& key) {
  std::ifstream in(status_path);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) {
      std::string value = line.substr(key.size() + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      return value;
    }
  }
  return "<missing>";
}

// The single line of a uid_map or gid_map: "<inside> <outside> <count>".
std::array<uint64_t, 3> IdMap(pid_t pid, const char* name) {
  std::array<uint64_t, 3> map = {9, 9, 9};
  std::ifstream(fmt::format("/proc/{}/{}", pid, name)) >> map[0] >> map[1] >> map[2];
  return map;
}

// The host uid that owns the user namespace of `pid`: the effective uid of its creator.
std::optional<uid_t> UserNamespaceOwner(pid_t pid) {
  UniqueFd ns(::open(fmt::format("/proc/{}/ns/user", pid).c_str(), O_RDONLY | O_CLOEXEC));
  uid_t owner = 0;
  if (!ns || ::ioctl(ns.get(), NS_GET_OWNER_UID, &owner) != 0) return std::nullopt;
  return owner;
}

// Each instance is its own unprivileged host uid (and gid of the same number) from the
// configured range: every process of it runs as that uid, root inside maps to it and nothing
// else, and it created (owns) the instance's user namespace, which is what keeps the kernel's
// per-user counts of one function apart from another's and from root's.
TEST_F(ProcessJailTest, RuntimeIsUnprivilegedOnTheHost) {
  auto cgroups = CgroupFs::Detect();
  ASSERT_TRUE(cgroups);
  std::set<uint64_t> ids;
  for (const char* id : {"uid-a", "uid-b"}) {
    auto instance = SpawnAndWait(Shell(id, "echo up; exec sleep 1000"));
    ASSERT_TRUE(instance) << instance.error().message;
    ReadLogs(*instance->logs, "up");
    const auto uid_map = IdMap(instance->pid, "uid_map");
    const uint64_t host_id = uid_map[1];
    EXPECT_EQ(uid_map[0], 0u);
    EXPECT_EQ(uid_map[2], 1u);
    EXPECT_GE(host_id, kDefaultSandboxIdBase);
    EXPECT_LT(host_id, uint64_t{kDefaultSandboxIdBase} + kDefaultSandboxIdCount);
    EXPECT_EQ(IdMap(instance->pid, "gid_map"), uid_map);
    EXPECT_EQ(UserNamespaceOwner(instance->pid), host_id);
    ids.insert(host_id);
    const std::string ids4 = fmt::format("{0}\t{0}\t{0}\t{0}", host_id);
    const auto procs = cgroups->Procs(InstanceGroup(id));
    EXPECT_FALSE(procs.empty());
    for (pid_t pid : procs) {
      std::string status = fmt::format("/proc/{}/status", pid);
      EXPECT_EQ(StatusField(status, "Uid"), ids4) << pid;
      EXPECT_EQ(StatusField(status, "Gid"), ids4) << pid;
      EXPECT_EQ(StatusField(status, "Groups"), "") << pid;
      std::string adj;
      std::ifstream(fmt::format("/proc/{}/oom_score_adj", pid)) >> adj;
      EXPECT_EQ(adj, "1000") << pid;
    }
  }
  EXPECT_EQ(ids.size(), 2u) << "two live instances share a host uid";
  for (const char* id : {"uid-a", "uid-b"}) {
    jail_->Kill(id);
    WaitExit(id);
  }
}

// An id goes back to the pool when its instance ends, and a spawn that finds none free fails
// clearly instead of sharing one.
TEST_F(ProcessJailTest, HostIdsComeFromTheConfiguredRangeAndAreGivenBack) {
  LauncherOptions options;
  options.sandbox_id_base = 300000;
  options.sandbox_id_count = 1;
  StartLauncher(options);
  auto first = SpawnAndWait(Shell("only", "echo up; exec sleep 1000"));
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(IdMap(first->pid, "uid_map")[1], 300000u);
  auto second = SpawnAndWait(Shell("second", "true"));
  ASSERT_FALSE(second);
  EXPECT_THAT(second.error().message, HasSubstr("all 1 sandbox ids are in use"));
  jail_->Kill("only");
  WaitExit("only");
  auto third = SpawnAndWait(Shell("third", "echo up; exec sleep 1000"));
  ASSERT_TRUE(third) << third.error().message;
  EXPECT_EQ(IdMap(third->pid, "uid_map")[1], 300000u);
  jail_->Kill("third");
  WaitExit("third");
}

// /proc/self/mountinfo shows where each bind mount's source lies on its filesystem: the code
// and the shims must come from the launcher's stage, never from the host's directories; and
// neither /proc/1/cmdline (init is a fork of the launcher, itself a fork of the caller) nor
// /proc/cmdline tells anything of the host.
TEST_F(ProcessJailTest, NothingInsideNamesAHostPath) {
  auto instance = SpawnAndWait(
      Shell("paths",
            "cat /proc/self/mountinfo /proc/self/mounts; tr '\\0' ' ' </proc/1/cmdline; "
            "echo; echo cmdline:$(cat /proc/cmdline); cat /var/task/hello.txt; echo done"));
  ASSERT_TRUE(instance) << instance.error().message;
  const std::string out = ReadLogs(*instance->logs, "done");
  EXPECT_THAT(out, HasSubstr("code file"));  // the copy has the code
  EXPECT_THAT(out, HasSubstr("/var/task"));
  EXPECT_THAT(out, HasSubstr("wisp-init"));
  EXPECT_THAT(out, HasSubstr("cmdline:\n"));
  EXPECT_THAT(out, Not(HasSubstr(dir_))) << out;
  EXPECT_THAT(out, Not(HasSubstr("wisp-jail-test"))) << out;
  EXPECT_THAT(out, Not(HasSubstr("sandbox_test"))) << out;
  WaitExit("paths");
  // The stage's copies live only while an instance uses them. The stage exists only in the
  // launcher's mount namespace: the host sees the empty directory.
  const std::string stage = fmt::format("/proc/{}/root{}/root", jail_->launcher().pid(), dir_);
  EXPECT_TRUE(fs::is_empty(stage + "/trees"));
  EXPECT_TRUE(fs::is_empty(dir_ + "/root"));
  EXPECT_FALSE(fs::is_empty(stage));  // root/, trees/, prewarm/
}

// Every thread of every process of a running Node sandbox - the main thread, V8's and libuv's
// threads, worker_threads started late, and a child process - is under seccomp with
// no_new_privs and without a single capability.
TEST_F(ProcessJailTest, EveryThreadIsConfined) {
  auto instance = SpawnAndWait(
      Spec("threads", {"/usr/bin/node", "-e",
                       "const {Worker} = require('worker_threads');"
                       "const cp = require('child_process');"
                       "new Worker('setInterval(() => {}, 1000)', {eval: true});"
                       "cp.spawn('/bin/sleep', ['1000'], {stdio: 'ignore'});"
                       "setTimeout(() => {"
                       "  new Worker('require(\"worker_threads\").parentPort.postMessage(1);"
                       "              setInterval(() => {}, 1000)', {eval: true})"
                       "    .on('message', () => console.log('ready'));"
                       "}, 200);"
                       "setInterval(() => {}, 1000);"}));
  ASSERT_TRUE(instance) << instance.error().message;
  ASSERT_THAT(ReadLogs(*instance->logs, "ready"), HasSubstr("ready"));

  auto cgroups = CgroupFs::Detect();
  ASSERT_TRUE(cgroups);
  std::vector<pid_t> pids = cgroups->Procs(InstanceGroup("threads"));
  EXPECT_GE(pids.size(), 3u);  // init, node, sleep
  int threads = 0;
  const std::string zero_caps = "0000000000000000";
  for (pid_t pid : pids) {
    for (const auto& task : fs::directory_iterator(fmt::format("/proc/{}/task", pid))) {
      std::string status = task.path().string() + "/status";
      SCOPED_TRACE(status + " (" + StatusField(status, "Name") + ")");
      EXPECT_EQ(StatusField(status, "Seccomp"), "2");
      EXPECT_EQ(StatusField(status, "NoNewPrivs"), "1");
      for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
        EXPECT_EQ(StatusField(status, set), zero_caps) << set;
      }
      ++threads;
    }
  }
  EXPECT_GE(threads, 10);  // node alone runs ~7 threads, plus two workers
  jail_->Kill("threads");
  WaitExit("threads");
}

TEST_F(ProcessJailTest, RuntimeInheritsOnlyStdioAndTheRuntimeApiChannel) {
  auto [out, exit] = Run(Spec("fds", {"/usr/bin/python3", "-c",
                                      "import os, socket\n"
                                      "print(sorted(os.listdir('/proc/self/fd')))\n"
                                      "s = socket.socket(fileno=3)\n"
                                      "print(s.family == socket.AF_UNIX, s.type == "
                                      "socket.SOCK_STREAM)"}));
  // 4 is the directory listdir() itself has open; 3 is the Runtime API channel.
  EXPECT_EQ(out, "['0', '1', '2', '3', '4']\nTrue True\n");
}

TEST_F(ProcessJailTest, HostInterfacesAreMaskedOrAbsent) {
  auto [out, exit] = Run(Shell(
      "masked",
      "for f in kcore keys timer_list kallsyms sysrq-trigger; do"
      "  test -e /proc/$f && echo $f=$(wc -c < /proc/$f) || echo $f=absent; done;"
      "echo acpi=$(ls -A /proc/acpi 2>&1 | wc -l);"
      "echo x > /proc/sys/kernel/hostname 2>/dev/null && echo sysctl=rw || echo sysctl=ro;"
      "echo h > /proc/sysrq-trigger 2>/dev/null; echo sysrq-done;"
      "test -e /sys && echo sys=present || echo sys=absent;"
      "echo dev: $(ls /dev | tr '\\n' ' ');"
      "echo cgroup=$(cat /proc/self/cgroup | grep -c wisp);"
      "echo limits=$(grep -E 'open files|core file|file size' /proc/self/limits | tr -s ' ' | "
      "  tr '\\n' '|')"));
  EXPECT_EQ(exit.exit_code, 0) << out;
  // Masked with /dev/null where this kernel has them.
  for (const char* f : {"kcore", "keys", "timer_list", "kallsyms", "sysrq-trigger"}) {
    bool on_host = fs::exists(std::string("/proc/") + f);
    EXPECT_THAT(out, HasSubstr(fmt::format("{}={}\n", f, on_host ? "0" : "absent")));
  }
  EXPECT_THAT(out, HasSubstr("acpi=0\n"));
  EXPECT_THAT(out, HasSubstr("sysctl=ro\n"));
  EXPECT_THAT(out, HasSubstr("sys=absent\n"));
  EXPECT_THAT(out,
              HasSubstr("dev: fd full null random shm stderr stdin stdout tty urandom zero\n"));
  EXPECT_THAT(out, HasSubstr("cgroup=0\n"));  // the cgroup namespace hides wisp/<pid>/<id>
  EXPECT_THAT(out, HasSubstr("Max core file size 0 0 bytes |"));
  EXPECT_THAT(out, HasSubstr("Max open files 1024 1024 files |"));
  EXPECT_THAT(out, HasSubstr(fmt::format("Max file size {0} {0} bytes |", (16 << 20) + (1 << 20))));
}

TEST_F(ProcessJailTest, TmpIsCappedAndChargedToTheMemoryLimit) {
  SpawnSpec full = Shell("tmpfull", "dd if=/dev/zero of=/tmp/big bs=1M count=64 2>&1 | head -1");
  auto [out, exit] = Run(full);  // tmp is 16 MiB, memory 128 MiB
  EXPECT_THAT(out, HasSubstr("No space left on device"));
  // With /tmp larger than the memory limit, filling it is an out-of-memory kill: tmpfs pages
  // are the writer's memory.
  SpawnSpec charged = Shell("tmpcharged", "dd if=/dev/zero of=/tmp/big bs=1M count=96; echo alive");
  charged.tmp_size_bytes = 256 << 20;
  charged.memory_limit_bytes = 48 << 20;
  auto [out2, exit2] = Run(charged);
  EXPECT_TRUE(exit2.oom_killed) << out2;
}

// On cgroup v1 the kernel kills one process per OOM; a runtime whose child was the victim must
// not live on.
TEST_F(ProcessJailTest, OomOfAChildEndsTheWholeInstance) {
  SpawnSpec spec = Shell("oomchild",
                         "/usr/bin/python3 -c 'b = bytearray(256 << 20)'; echo survived; "
                         "exec sleep 1000");
  spec.memory_limit_bytes = 64 << 20;
  auto instance = SpawnAndWait(spec);
  ASSERT_TRUE(instance) << instance.error().message;
  ExitStatus exit = WaitExit("oomchild");
  EXPECT_TRUE(exit.oom_killed);
  EXPECT_EQ(exit.signal, SIGKILL);
  auto cgroups = CgroupFs::Detect();
  ASSERT_TRUE(cgroups);
  EXPECT_FALSE(cgroups->Exists(InstanceGroup("oomchild")));
}

TEST_F(ProcessJailTest, MemoryLimitOomKillsTheInstance) {
  SpawnSpec spec = Spec("oom", {"/usr/bin/python3", "-c", "b = b'x' * (128 << 20)"});
  spec.memory_limit_bytes = 64 << 20;
  auto [out, exit] = Run(spec);
  EXPECT_TRUE(exit.oom_killed) << out;
  EXPECT_EQ(exit.signal, SIGKILL);
  EXPECT_EQ(exit.exit_code, -1);
}

TEST_F(ProcessJailTest, KillLeavesNoProcessBehind) {
  auto instance =
      SpawnAndWait(Shell("daemon", "setsid sh -c 'sleep 1000 &' ; echo started; exec sleep 1000"));
  ASSERT_TRUE(instance) << instance.error().message;
  EXPECT_THAT(ReadLogs(*instance->logs, "started"), HasSubstr("started"));

  auto cgroups = CgroupFs::Detect();
  ASSERT_TRUE(cgroups);
  ASSERT_TRUE(cgroups->Exists(InstanceGroup("daemon")));
  std::vector<pid_t> pids = cgroups->Procs(InstanceGroup("daemon"));
  EXPECT_GE(pids.size(), 3u);  // init, sleep, the daemon's sleep
  EXPECT_NE(std::find(pids.begin(), pids.end(), instance->pid), pids.end());

  jail_->Kill("daemon");
  ExitStatus exit = WaitExit("daemon");
  EXPECT_EQ(exit.signal, SIGKILL);
  EXPECT_FALSE(exit.oom_killed);
  EXPECT_FALSE(cgroups->Exists(InstanceGroup("daemon")));
  for (pid_t pid : pids) EXPECT_FALSE(ProcessExists(pid)) << pid;
}

TEST_F(ProcessJailTest, CgroupHasLimitsWhileRunningAndIsRemovedAfterExit) {
  SpawnSpec spec = Shell("limits", "echo up; exec sleep 1000");
  spec.memory_limit_bytes = 96 << 20;
  spec.pids_limit = 33;
  auto instance = SpawnAndWait(spec);
  ASSERT_TRUE(instance) << instance.error().message;
  ReadLogs(*instance->logs, "up");

  auto cgroups = CgroupFs::Detect();
  ASSERT_TRUE(cgroups);
  const std::string root = "/sys/fs/cgroup/";
  std::string memory_file =
      cgroups->version() == CgroupVersion::kV2
          ? root + InstanceGroup("limits") + "/memory.max"
          : root + "memory/" + InstanceGroup("limits") + "/memory.limit_in_bytes";
  std::string pids_file = cgroups->version() == CgroupVersion::kV2
                              ? root + InstanceGroup("limits") + "/pids.max"
                              : root + "pids/" + InstanceGroup("limits") + "/pids.max";
  std::string memory, pids;
  std::ifstream(memory_file) >> memory;
  std::ifstream(pids_file) >> pids;
  EXPECT_EQ(memory, std::to_string(96 << 20));
  EXPECT_EQ(pids, "33");

  jail_->Kill("limits");
  WaitExit("limits");
  EXPECT_FALSE(cgroups->Exists(InstanceGroup("limits")));

  // A normal exit cleans up the same way.
  Run(Shell("short", "true"));
  EXPECT_FALSE(cgroups->Exists(InstanceGroup("short")));
}

TEST_F(ProcessJailTest, SpawnFailsClearlyForMissingCodeDir) {
  SpawnSpec spec = Shell("nocode", "true");
  spec.code_dir = dir_ + "/does-not-exist";
  auto instance = SpawnAndWait(spec);
  ASSERT_FALSE(instance);
  EXPECT_THAT(instance.error().message, HasSubstr("/var/task"));
  EXPECT_THAT(instance.error().message, HasSubstr("does-not-exist: No such file or directory"));
  auto cgroups = CgroupFs::Detect();
  ASSERT_TRUE(cgroups);
  EXPECT_FALSE(cgroups->Exists(InstanceGroup("nocode")));
  EXPECT_EQ(exits_.count("nocode"), 0u);
}

TEST_F(ProcessJailTest, SpawnFailsClearlyForMissingExecutable) {
  auto instance = SpawnAndWait(Spec("noexec", {"/usr/bin/no-such-runtime"}));
  ASSERT_FALSE(instance);
  EXPECT_THAT(instance.error().message,
              HasSubstr("execve /usr/bin/no-such-runtime: No such file or directory"));
}

TEST_F(ProcessJailTest, RejectsDuplicateAndInvalidIds) {
  auto first = SpawnAndWait(Shell("dup", "exec sleep 1000"));
  ASSERT_TRUE(first);
  auto second = SpawnAndWait(Shell("dup", "true"));
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kAlreadyExists);
  auto bad = SpawnAndWait(Shell("../escape", "true"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  jail_->Kill("dup");
  WaitExit("dup");
}

TEST_F(ProcessJailTest, KillAllStopsEveryInstance) {
  for (const char* id : {"a", "b", "c"}) {
    ASSERT_TRUE(SpawnAndWait(Shell(id, "exec sleep 1000")));
  }
  jail_->KillAll();
  EXPECT_EQ(exits_.size(), 3u);
  auto cgroups = CgroupFs::Detect();
  ASSERT_TRUE(cgroups);
  EXPECT_TRUE(cgroups->Children(group_).empty());
}

TEST_F(ProcessJailTest, ClosingTheJailRemovesItsCgroup) {
  ASSERT_TRUE(SpawnAndWait(Shell("left", "exec sleep 1000")));
  jail_.reset();  // the launcher kills what is left, removes its group and exits
  auto cgroups = CgroupFs::Detect();
  ASSERT_TRUE(cgroups);
  EXPECT_FALSE(cgroups->Exists(group_));
}

TEST_F(ProcessJailTest, LauncherDeathTakesInstancesWithIt) {
  auto instance = SpawnAndWait(Shell("orphan", "exec sleep 1000"));
  ASSERT_TRUE(instance) << instance.error().message;
  ASSERT_EQ(::kill(jail_->launcher().pid(), SIGKILL), 0);
  // wispd learns it from the closed channel; the kernel kills the sandbox (PR_SET_PDEATHSIG).
  ExitStatus exit = WaitExit("orphan");
  EXPECT_EQ(exit.signal, SIGKILL);
  const auto deadline = steady_clock::now() + kTimeout;
  while (ProcessExists(instance->pid) && steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_FALSE(ProcessExists(instance->pid));
  std::optional<Result<InstanceHandle>> after;
  jail_->Spawn(Shell("after", "true"), [&](Result<InstanceHandle> r) { after = std::move(r); });
  RunIoUntil([&] { return after.has_value(); });
  ASSERT_TRUE(after && !*after);
  EXPECT_EQ(after->error().code, ErrorCode::kUnavailable);
}

TEST_F(ProcessJailTest, MeasureSpawnToReady) {
  std::vector<double> ms;
  for (int i = 0; i < 10; ++i) {
    auto start = steady_clock::now();
    auto instance = SpawnAndWait(Spec(fmt::format("true{}", i), {"/bin/true"}));
    ASSERT_TRUE(instance) << instance.error().message;
    ms.push_back(std::chrono::duration<double, std::milli>(steady_clock::now() - start).count());
    WaitExit(fmt::format("true{}", i));
  }
  std::sort(ms.begin(), ms.end());
  std::printf("spawn-to-ready of /bin/true: median %.2f ms, min %.2f ms, max %.2f ms\n", ms[5],
              ms[0], ms[9]);
}

// Children of `parent` whose command name is `comm` (e.g. the launcher's slirp4netns helpers).
std::vector<pid_t> ChildrenNamed(pid_t parent, const std::string& comm) {
  std::vector<pid_t> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat;
    std::getline(std::ifstream(entry.path() / "stat"), stat);
    // "pid (comm) state ppid ...": comm may hold spaces, so split at the last ')'.
    const size_t open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent && stat.substr(open + 1, close - open - 1) == comm) {
      out.push_back(std::stoi(name));
    }
  }
  return out;
}

// Outbound network through slirp4netns. The only traffic these tests send goes to loopback and
// to a network namespace the test creates: a veth pair with 198.18.0.1/30 on the host side and
// 198.18.0.2/30 inside (198.18.0.0/15 is reserved for benchmarks), and a TCP server in it. The
// namespace also holds a private address and the cloud metadata address, which the host routes
// to it: the sandbox's connections to them, made by slirp4netns on the host, never leave the
// machine even when the sandbox is wrongly allowed to make them. (While a test runs, the host's
// own metadata requests go there too; `append` lets security_test's namespace hold it as well.)
class OutboundNetworkTest : public ProcessJailTest {
 protected:
  static constexpr uint16_t kServerPort = 8080;
  static constexpr uint16_t kMetadataPort = 80;
  static constexpr const char* kPrivateAddress = "10.198.0.2";
  static constexpr const char* kMetadataAddress = "169.254.169.254";

  void SetUp() override {
    ProcessJailTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (!fs::exists("/usr/bin/slirp4netns")) {
      GTEST_SKIP() << "needs /usr/bin/slirp4netns (scripts/install-deps installs it)";
    }
    veth_ = fmt::format("wt{}h", ::getpid());
    const std::string peer = fmt::format("wt{}n", ::getpid());
    // The test network needs iproute2, named network namespaces and veth: a machine without
    // them cannot host this test, which says nothing about the jail.
    const std::string netns = fmt::format("wisp-test-{}", ::getpid());
    if (std::system(fmt::format("ip netns add {} 2>/dev/null", netns).c_str()) != 0) {
      GTEST_SKIP() << "cannot make a network namespace here (`ip netns add` failed)";
    }
    netns_ = netns;
    if (std::system(fmt::format("ip link add {} type veth peer name {} 2>/dev/null", veth_, peer)
                        .c_str()) != 0) {
      GTEST_SKIP() << "cannot make a veth pair here (`ip link add ... type veth` failed)";
    }
    for (const std::string& cmd : {
             fmt::format("ip link set {} netns {}", peer, netns_),
             fmt::format("ip addr add 198.18.0.1/30 dev {}", veth_),
             fmt::format("ip link set {} up", veth_),
             fmt::format("ip netns exec {} ip addr add 198.18.0.2/30 dev {}", netns_, peer),
             fmt::format("ip netns exec {} ip link set {} up", netns_, peer),
             fmt::format("ip netns exec {} ip link set lo up", netns_),
             fmt::format("ip netns exec {} ip addr add {}/32 dev lo", netns_, kPrivateAddress),
             fmt::format("ip netns exec {} ip addr add {}/32 dev lo", netns_, kMetadataAddress),
             fmt::format("ip route add {}/32 via 198.18.0.2 dev {}", kPrivateAddress, veth_),
             fmt::format("ip route append {}/32 via 198.18.0.2 dev {}", kMetadataAddress, veth_),
         }) {
      ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    }
    StartServerInNetns();

    // A server on the host's loopback, as wispd's API is: no sandbox may reach it.
    host_listener_.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    ASSERT_TRUE(host_listener_);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(host_listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(host_listener_.get(), 16), 0);
    socklen_t len = sizeof addr;
    ::getsockname(host_listener_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    host_port_ = ntohs(addr.sin_port);
  }

  void TearDown() override {
    if (server_pid_ > 0) {
      ::kill(server_pid_, SIGKILL);
      ::waitpid(server_pid_, nullptr, 0);
    }
    // Deleting the namespace destroys the veth pair with it, and the host's routes through it;
    // the host side goes explicitly in case the move into the namespace never happened.
    if (!netns_.empty()) {
      (void)std::system(fmt::format("ip netns del {} 2>/dev/null", netns_).c_str());
      (void)std::system(fmt::format("ip link del {} 2>/dev/null", veth_).c_str());
    }
    ProcessJailTest::TearDown();
  }

  // `ip netns exec` enters the namespace and execs python in place: server_pid_ is the server.
  // It answers on every address of the namespace, on the server's and the metadata port.
  void StartServerInNetns() {
    int out[2];
    ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
    UniqueFd read_end(out[0]);
    const std::string script = fmt::format(
        "import select, socket\n"
        "listeners = []\n"
        "for port in ({}, {}):\n"
        "    s = socket.socket()\n"
        "    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "    s.bind(('0.0.0.0', port))\n"
        "    s.listen(16)\n"
        "    listeners.append(s)\n"
        "print('listening', flush=True)\n"
        "while True:\n"
        "    for s in select.select(listeners, [], [])[0]:\n"
        "        c, _ = s.accept()\n"
        "        c.sendall(b'hello from the netns\\n')\n"
        "        c.close()\n",
        kServerPort, kMetadataPort);
    server_pid_ = ::fork();
    ASSERT_GE(server_pid_, 0);
    if (server_pid_ == 0) {
      ::dup2(out[1], 1);
      ::execl("/usr/sbin/ip", "ip", "netns", "exec", netns_.c_str(), "/usr/bin/python3", "-c",
              script.c_str(), nullptr);
      ::_exit(127);
    }
    ::close(out[1]);
    ::fcntl(read_end.get(), F_SETFL, O_NONBLOCK);
    ASSERT_THAT(ReadOutput(read_end.get(), "listening"), HasSubstr("listening"));
    server_output_ = std::move(read_end);  // open while the server runs: no EPIPE at its exit
  }

  // A python program that tries each host:port and prints one line per target: "ok <what the
  // server said>", an errno name, or "timeout"; then the resolver configuration. A "udp:host:port"
  // target sends one datagram instead and prints "sent" or the errno.
  SpawnSpec Probe(const std::string& id, const std::vector<std::string>& targets) {
    std::vector<std::string> argv = {"/usr/bin/python3", "-c",
                                     "import errno, socket, sys\n"
                                     "for target in sys.argv[1:]:\n"
                                     "    udp = target.startswith('udp:')\n"
                                     "    host, port = target[4 if udp else 0:].rsplit(':', 1)\n"
                                     "    try:\n"
                                     "        if udp:\n"
                                     "            s = socket.socket(type=socket.SOCK_DGRAM)\n"
                                     "            s.sendto(b'probe', (host, int(port)))\n"
                                     "            print(target, 'sent')\n"
                                     "            continue\n"
                                     "        s = socket.create_connection((host, int(port)), 3)\n"
                                     "        said = s.recv(100).decode().strip()\n"
                                     "        print(target, 'ok', said)\n"
                                     "    except socket.timeout:\n"
                                     "        print(target, 'timeout')\n"
                                     "    except OSError as e:\n"
                                     "        print(target, errno.errorcode.get(e.errno, e))\n"
                                     "print('resolv:', open('/etc/resolv.conf').read().strip())\n"};
    argv.insert(argv.end(), targets.begin(), targets.end());
    return Spec(id, std::move(argv));
  }

  std::string Server() const { return fmt::format("198.18.0.2:{}", kServerPort); }
  std::string PrivateServer() const { return fmt::format("{}:{}", kPrivateAddress, kServerPort); }
  std::string Metadata() const { return fmt::format("{}:{}", kMetadataAddress, kMetadataPort); }
  std::string HostLoopback() const { return fmt::format("127.0.0.1:{}", host_port_); }
  std::string SlirpHost() const { return fmt::format("10.0.2.2:{}", host_port_); }

  bool HostListenerWasReached() {
    UniqueFd conn(::accept4(host_listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    return bool(conn);
  }

  std::string netns_;
  std::string veth_;
  pid_t server_pid_ = -1;
  UniqueFd server_output_;
  UniqueFd host_listener_;
  uint16_t host_port_ = 0;
};

// The host's mount table, as mount points and their roots.
std::multiset<std::string> HostMounts() {
  std::multiset<std::string> mounts;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    fields >> id >> parent >> dev >> root >> point;
    mounts.insert(root + " " + point);
  }
  return mounts;
}

TEST_F(OutboundNetworkTest, ReachesTheOutsideButNeverTheHostLoopback) {
  // Includes the test's own /run/netns mount: the helper's sandboxing must not touch it.
  const auto mounts_before = HostMounts();
  SpawnSpec spec = Probe("outbound", {Server(), HostLoopback(), SlirpHost()});
  spec.network_outbound = true;
  auto [out, exit] = Run(spec);
  EXPECT_EQ(HostMounts(), mounts_before);
  EXPECT_EQ(exit.exit_code, 0) << out;
  EXPECT_THAT(out, HasSubstr(Server() + " ok hello from the netns\n"));
  // 127.0.0.1 inside is the sandbox's own loopback: nothing listens there on that port.
  EXPECT_THAT(out, HasSubstr(HostLoopback() + " ECONNREFUSED\n"));
  // --disable-host-loopback: slirp's gateway does not lead to the host's 127.0.0.1.
  EXPECT_THAT(out, ::testing::Not(HasSubstr(SlirpHost() + " ok")));
  EXPECT_THAT(out, HasSubstr("resolv: nameserver 10.0.2.3\n"));
  EXPECT_FALSE(HostListenerWasReached());
}

TEST_F(OutboundNetworkTest, WithoutTheOptionThereIsNoRoute) {
  auto [out, exit] = Run(Probe("offline", {Server(), HostLoopback()}));
  EXPECT_EQ(exit.exit_code, 0) << out;
  EXPECT_THAT(out, HasSubstr(Server() + " ENETUNREACH\n"));
  EXPECT_THAT(out, HasSubstr(HostLoopback() + " ECONNREFUSED\n"));
  EXPECT_FALSE(HostListenerWasReached());
  EXPECT_TRUE(ChildrenNamed(jail_->launcher().pid(), "slirp4netns").empty());
}

// The helper lives exactly as long as its instance, however the instance ends.
TEST_F(OutboundNetworkTest, HelperEndsWithItsInstance) {
  const pid_t launcher = jail_->launcher().pid();
  SpawnSpec spec = Shell("killed", "echo up; exec sleep 1000");
  spec.network_outbound = true;
  auto instance = SpawnAndWait(spec);
  ASSERT_TRUE(instance) << instance.error().message;
  ReadLogs(*instance->logs, "up");
  std::vector<pid_t> helpers = ChildrenNamed(launcher, "slirp4netns");
  ASSERT_EQ(helpers.size(), 1u);
  // Killed with the instance, reaped by the launcher a few ms later (its exit is slow).
  auto gone = [&] {
    const auto deadline = steady_clock::now() + kTimeout;
    while (!ChildrenNamed(launcher, "slirp4netns").empty() && steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(5));
    }
    return ChildrenNamed(launcher, "slirp4netns").empty();
  };
  jail_->Kill("killed");
  WaitExit("killed");
  EXPECT_TRUE(gone());
  EXPECT_FALSE(ProcessExists(helpers[0]));

  SpawnSpec exits = Shell("exits", "true");
  exits.network_outbound = true;
  Run(exits);
  EXPECT_TRUE(gone());

  SpawnSpec left = Shell("left", "exec sleep 1000");
  left.network_outbound = true;
  ASSERT_TRUE(SpawnAndWait(left));
  helpers = ChildrenNamed(launcher, "slirp4netns");
  ASSERT_EQ(helpers.size(), 1u);
  jail_.reset();  // the launcher shuts down with the instance still running
  EXPECT_FALSE(ProcessExists(helpers[0]));
}

// Server-side request forgery: the host's LAN and its cloud's metadata service are the first
// things a hostile function tries.
TEST_F(OutboundNetworkTest, PrivateAndMetadataAddressesAreRefused) {
  SpawnSpec spec = Probe(
      "ssrf", {Server(), PrivateServer(), Metadata(), "udp:" + PrivateServer(), "udp:10.0.2.3:53"});
  spec.network_outbound = true;
  auto [out, exit] = Run(spec);
  EXPECT_EQ(exit.exit_code, 0) << out;
  EXPECT_THAT(out, HasSubstr(Server() + " ok hello from the netns\n"));
  EXPECT_THAT(out, HasSubstr(PrivateServer() + " EACCES\n"));
  EXPECT_THAT(out, HasSubstr(Metadata() + " EACCES\n"));
  EXPECT_THAT(out, HasSubstr("udp:" + PrivateServer() + " EACCES\n"));
  // slirp's DNS forwarder is in 10.0.0.0/8 but on the sandbox's own link: still reachable.
  EXPECT_THAT(out, HasSubstr("udp:10.0.2.3:53 sent\n"));
}

// The routes are the sandbox's own, but its runtime has no CAP_NET_ADMIN to change them.
TEST_F(OutboundNetworkTest, RuntimeCannotChangeTheRoutes) {
  SpawnSpec spec = Spec(
      "reroute",
      {"/usr/bin/python3", "-c",
       "import errno, socket, struct\n"
       "RTM_NEWROUTE, RTM_DELROUTE, RTA_DST, RTA_GATEWAY = 24, 25, 1, 5\n"
       "NLM_F_REQUEST, NLM_F_ACK, NLM_F_CREATE = 1, 4, 0x400\n"
       "RTN_UNICAST, RTN_PROHIBIT, RT_TABLE_MAIN, RTPROT_STATIC = 1, 8, 254, 4\n"
       "def route(kind, flags, dst, length, rtype, gateway=None):\n"
       "    attrs = struct.pack('=HH4s', 8, RTA_DST, socket.inet_aton(dst))\n"
       "    if gateway:\n"
       "        attrs += struct.pack('=HH4s', 8, RTA_GATEWAY, socket.inet_aton(gateway))\n"
       "    body = struct.pack('=8BI', socket.AF_INET, length, 0, 0, RT_TABLE_MAIN,\n"
       "                       RTPROT_STATIC, 0, rtype, 0) + attrs\n"
       "    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)\n"
       "    s.send(struct.pack('=IHHII', 16 + len(body), kind, flags | NLM_F_REQUEST | NLM_F_ACK,\n"
       "                       1, 0) + body)\n"
       "    error = -struct.unpack_from('=i', s.recv(4096), 16)[0]\n"
       "    return errno.errorcode.get(error, 'ok')\n"
       "print('delete', route(RTM_DELROUTE, 0, '169.254.0.0', 16, RTN_PROHIBIT))\n"
       "print('bypass', route(RTM_NEWROUTE, NLM_F_CREATE, '169.254.169.254', 32, RTN_UNICAST,\n"
       "                      '10.0.2.2'))\n"
       "try:\n"
       "    socket.create_connection(('169.254.169.254', 80), 3)\n"
       "    print('metadata ok')\n"
       "except OSError as e:\n"
       "    print('metadata', errno.errorcode.get(e.errno, e))\n"});
  spec.network_outbound = true;
  auto [out, exit] = Run(spec);
  EXPECT_EQ(exit.exit_code, 0) << out;
  EXPECT_THAT(out, HasSubstr("delete EPERM\n"));
  EXPECT_THAT(out, HasSubstr("bypass EPERM\n"));
  EXPECT_THAT(out, HasSubstr("metadata EACCES\n"));
}

// The operator's outbound_private_networks: for functions that must reach a database on the LAN.
TEST_F(OutboundNetworkTest, OperatorCanAllowPrivateNetworks) {
  SpawnSpec spec = Probe("private", {Server(), PrivateServer(), Metadata()});
  spec.network_outbound = true;
  spec.outbound_private_networks = true;
  auto [out, exit] = Run(spec);
  EXPECT_EQ(exit.exit_code, 0) << out;
  EXPECT_THAT(out, HasSubstr(Server() + " ok hello from the netns\n"));
  EXPECT_THAT(out, HasSubstr(PrivateServer() + " ok hello from the netns\n"));
  EXPECT_THAT(out, HasSubstr(Metadata() + " ok hello from the netns\n"));
}

// Interleaved: no network; outbound network (helper, and the routes that refuse non-public
// addresses); outbound with private networks allowed (helper, no routes).
TEST_F(OutboundNetworkTest, MeasureSpawnOverhead) {
  enum Variant { kPlain, kOutbound, kPrivateAllowed, kVariants };
  std::vector<double> ms[kVariants];
  for (int i = 0; i < 20; ++i) {
    for (int v = kPlain; v < kVariants; ++v) {
      SpawnSpec spec = Spec(fmt::format("m{}v{}", i, v), {"/bin/true"});
      spec.network_outbound = v != kPlain;
      spec.outbound_private_networks = v == kPrivateAllowed;
      auto start = steady_clock::now();
      auto instance = SpawnAndWait(spec);
      ASSERT_TRUE(instance) << instance.error().message;
      ms[v].push_back(
          std::chrono::duration<double, std::milli>(steady_clock::now() - start).count());
      WaitExit(spec.instance_id);
    }
  }
  for (auto& m : ms) std::sort(m.begin(), m.end());
  std::printf(
      "spawn-to-ready of /bin/true: without network median %.2f ms (p90 %.2f), with outbound "
      "network median %.2f ms (p90 %.2f), outbound with private networks allowed median %.2f ms "
      "(p90 %.2f)\n",
      ms[kPlain][10], ms[kPlain][18], ms[kOutbound][10], ms[kOutbound][18], ms[kPrivateAllowed][10],
      ms[kPrivateAllowed][18]);
}

// A launcher that died without cleaning up left "wisp/<dead pid>" with a process in it; the
// next launcher removes both.
TEST(LauncherTest, RemovesStaleGroupsOfDeadLaunchers) {
  if (auto why = WhySandboxesCannotRunHere(); !why.empty()) GTEST_SKIP() << why;
  auto cgroups = CgroupFs::Detect();
  ASSERT_TRUE(cgroups);
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  const std::string stale = fmt::format("wisp/{}", dead);
  ASSERT_TRUE(cgroups->CreateGroup(stale + "/inst"));
  pid_t sleeper = ::fork();
  if (sleeper == 0) {
    ::execl("/bin/sleep", "sleep", "1000", nullptr);
    ::_exit(127);
  }
  ASSERT_TRUE(cgroups->AddProcess(stale + "/inst", sleeper));

  char tmpl[] = "/tmp/wisp-jail-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  LauncherOptions options;
  options.sandbox_root_dir = tmpl;
  options.cgroup_group = fmt::format("wisp/{}", ::getpid());
  auto launcher = Launcher::Fork(options);
  ASSERT_TRUE(launcher) << launcher.error().message;
  EXPECT_FALSE(cgroups->Exists(stale));
  int status = 0;
  ASSERT_EQ(::waitpid(sleeper, &status, 0), sleeper);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  launcher->Shutdown();
  ::rmdir(tmpl);
}

TEST(LauncherTest, ForkFailsClearlyWithoutRootDir) {
  if (auto why = WhySandboxesCannotRunHere(); !why.empty()) GTEST_SKIP() << why;
  LauncherOptions options;
  options.sandbox_root_dir = "/nonexistent/wisp-root";
  options.cgroup_group = fmt::format("wisp/{}", ::getpid());
  auto launcher = Launcher::Fork(options);
  ASSERT_FALSE(launcher);
  EXPECT_THAT(launcher.error().message, HasSubstr("/nonexistent/wisp-root is not a directory"));
}

}  // namespace
}  // namespace wisp::sandbox
