#include "wisp/core/runtime_catalog.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "wisp/common/check.h"
#include "wisp/common/unique_fd.h"

extern char** environ;

namespace wisp::core {
namespace {

// What a version probe may print before it is cut: a version line is short.
constexpr size_t kMaxProbeOutputBytes = 4096;

// Runs `argv` with stdout and stderr captured, bounded by `timeout`; the output, or nullopt
// when it could not run or did not finish. posix_spawn: safe in a process with threads.
std::optional<std::string> RunCaptured(const std::vector<std::string>& argv,
                                       std::chrono::milliseconds timeout) {
  if (argv.empty() || ::access(argv[0].c_str(), X_OK) != 0) return std::nullopt;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return std::nullopt;
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int spawned = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  write_end.Reset();
  if (spawned != 0) return std::nullopt;

  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool finished = false;
  while (!finished) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{read_end.get(), POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    char buffer[512];
    const ssize_t n = ::read(read_end.get(), buffer, sizeof buffer);
    if (n <= 0) {
      finished = true;
    } else if (out.size() < kMaxProbeOutputBytes) {
      out.append(buffer, static_cast<size_t>(n));
    }
  }
  if (!finished) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!finished || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  return out;
}

}  // namespace

RuntimeCatalog::RuntimeCatalog(std::vector<RuntimeEntry> entries) : entries_(std::move(entries)) {
  // A name that meant two runtimes would make a function's runtime depend on entry order.
  std::set<std::string, std::less<>> seen;
  for (const auto& entry : entries_) {
    WISP_CHECK(!entry.name.empty());
    WISP_CHECK(entry.supports(entry.default_style));
    WISP_CHECK(seen.insert(entry.name).second);
    for (const auto& alias : entry.aliases) WISP_CHECK(seen.insert(alias).second);
  }
}

const RuntimeEntry* RuntimeCatalog::Find(std::string_view name_or_alias) const {
  for (const auto& entry : entries_) {
    if (entry.name == name_or_alias) return &entry;
    for (const auto& alias : entry.aliases) {
      if (alias == name_or_alias) return &entry;
    }
  }
  return nullptr;
}

Result<const RuntimeEntry*> RuntimeCatalog::Resolve(std::string_view name_or_alias) const {
  if (const RuntimeEntry* entry = Find(name_or_alias)) return entry;
  return MakeError(ErrorCode::kInvalidArgument, fmt::format("unknown runtime '{}': use one of {}",
                                                            name_or_alias, AcceptedNames()));
}

std::string RuntimeCatalog::AcceptedNames() const {
  std::string out;
  auto add = [&out](const std::string& name) {
    if (!out.empty()) out += ", ";
    out += name;
  };
  for (const auto& entry : entries_) add(entry.name);
  for (const auto& entry : entries_) {
    for (const auto& alias : entry.aliases) add(alias);
  }
  return out;
}

std::vector<std::string> RuntimeCatalog::ProgramCommand(const RuntimeEntry& entry,
                                                        std::string_view code_dir) const {
  if (entry.compiled) return {fmt::format("{}/{}", code_dir, kBuildOutputFile)};
  std::vector<std::string> command = {entry.interpreter};
  command.insert(command.end(), entry.interpreter_flags.begin(), entry.interpreter_flags.end());
  command.push_back(fmt::format("{}/{}", code_dir, entry.program_file));
  return command;
}

std::vector<std::string> RuntimeCatalog::ProgramShimCommand(std::string_view runtime_mount) const {
  // The program shim is written in Python and shares the Python shim's Runtime API client.
  const RuntimeEntry* python = Find("python");
  WISP_CHECK(python != nullptr);
  std::vector<std::string> command = {python->interpreter};
  command.insert(command.end(), python->interpreter_flags.begin(), python->interpreter_flags.end());
  command.push_back(fmt::format("{}/program/bootstrap.py", runtime_mount));
  return command;
}

std::vector<std::string> RuntimeCatalog::HandlerShimCommand(const RuntimeEntry& entry,
                                                            std::string_view runtime_mount) const {
  WISP_CHECK(!entry.shim.empty());
  std::vector<std::string> command = {entry.interpreter};
  command.insert(command.end(), entry.interpreter_flags.begin(), entry.interpreter_flags.end());
  command.push_back(fmt::format("{}/{}", runtime_mount, entry.shim));
  return command;
}

std::vector<std::string> RuntimeCatalog::BootstrapCommand(const RuntimeEntry& entry,
                                                          std::string_view code_dir) const {
  WISP_CHECK(entry.custom());
  return {fmt::format("{}/{}", code_dir, entry.bootstrap)};
}

void RuntimeCatalog::ProbeVersions(std::chrono::milliseconds timeout) {
  for (const auto& entry : entries_) {
    if (entry.interpreter.empty()) continue;  // a custom runtime: the function brings its own
    std::optional<std::string> output;
    if (!entry.version_file.empty()) {
      std::error_code ec;
      const auto real = std::filesystem::canonical(entry.interpreter, ec);
      std::ifstream in(real.parent_path() / entry.version_file);
      std::string line;
      if (!ec && std::getline(in, line)) output = line;
    } else {
      std::vector<std::string> argv = {entry.interpreter};
      argv.insert(argv.end(), entry.version_args.begin(), entry.version_args.end());
      output = RunCaptured(argv, timeout);
    }
    const auto version = output ? ParseVersion(*output) : std::nullopt;
    if (!version) {
      spdlog::warn("runtime {}: could not read the version of {}", entry.name, entry.interpreter);
      continue;
    }
    spdlog::info("runtime {}: {} {}", entry.name, entry.interpreter, *version);
    std::lock_guard lock(versions_mutex_);
    versions_[entry.name] = *version;
  }
}

std::optional<std::string> RuntimeCatalog::Version(std::string_view name) const {
  std::lock_guard lock(versions_mutex_);
  auto it = versions_.find(name);
  if (it == versions_.end()) return std::nullopt;
  return it->second;
}

std::vector<RuntimeEntry> StandardRuntimes(const InterpreterPaths& paths) {
  std::vector<RuntimeEntry> entries;
  {
    RuntimeEntry node;
    node.name = "node";
    node.aliases = {"nodejs",     "node18",     "node20",    "node22",
                    "nodejs18.x", "nodejs20.x", "nodejs22.x"};
    node.interpreter = paths.node;
    node.version_args = {"--version"};
    node.shim = "node/bootstrap.js";
    node.default_module = "index";
    node.source_extension = ".js";
    node.program_file = "main.js";
    node.prewarmable = true;
    node.default_style = kHandlerStyle;
    entries.push_back(std::move(node));
  }
  {
    RuntimeEntry python;
    python.name = "python";
    python.aliases = {"python3"};
    for (int minor = 8; minor <= 13; ++minor)
      python.aliases.push_back(fmt::format("python3.{}", minor));
    python.interpreter = paths.python;
    // Unbuffered: output reaches the logs line by line even if the runtime dies mid-call.
    python.interpreter_flags = {"-u"};
    python.version_args = {"--version"};
    python.shim = "python/bootstrap.py";
    python.default_module = "lambda_function";
    python.source_extension = ".py";
    python.program_file = "main.py";
    python.prewarmable = true;
    python.default_style = kHandlerStyle;
    entries.push_back(std::move(python));
  }
  {
    RuntimeEntry go;
    go.name = "go";
    go.aliases = {"golang", "go1.x"};
    go.interpreter = paths.go;
    go.version_file = "../VERSION";  // GOROOT/VERSION: "go1.19.8"
    go.program_file = "main.go";
    go.compiled = true;
    go.default_style = kProgramStyle;
    entries.push_back(std::move(go));
  }
  // Lambda's custom runtimes: one entry each, so a function shows the identifier it was created
  // with (tools compare it with their templates). They differ on Lambda by the OS image only;
  // here all run on the host's libraries, read-only, like every sandbox.
  // Not prewarmable: a generic instance is an interpreter waiting for code, and here the code
  // is the runtime, so there is nothing to start before the function is known.
  for (const char* name : {"provided", "provided.al2", "provided.al2023"}) {
    RuntimeEntry provided;
    provided.name = name;
    provided.bootstrap = "bootstrap";
    provided.default_style = kHandlerStyle;
    entries.push_back(std::move(provided));
  }
  return entries;
}

std::optional<std::string> ParseVersion(std::string_view output) {
  for (size_t i = 0; i < output.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(output[i]))) continue;
    if (i > 0 && std::isdigit(static_cast<unsigned char>(output[i - 1]))) continue;
    size_t end = i;
    bool dotted = false;
    while (end < output.size() && (std::isdigit(static_cast<unsigned char>(output[end])) ||
                                   (output[end] == '.' && end + 1 < output.size() &&
                                    std::isdigit(static_cast<unsigned char>(output[end + 1]))))) {
      dotted |= output[end] == '.';
      ++end;
    }
    if (dotted) return std::string(output.substr(i, end - i));
    i = end;
  }
  return std::nullopt;
}

}  // namespace wisp::core
