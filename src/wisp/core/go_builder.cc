#include "wisp/core/go_builder.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include <fmt/format.h>

#include "wisp/common/defer.h"
#include "wisp/common/unique_fd.h"

namespace wisp::core {
namespace fs = std::filesystem;
namespace {

// The compiler's output beyond this is cut: a deploy error should be readable.
constexpr size_t kMaxOutputBytes = 16 << 10;

Result<void> WriteFile(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!out) return MakeError(ErrorCode::kInternal, fmt::format("write {}", path.string()));
  return {};
}

void ChownTree(const fs::path& root, uid_t uid, gid_t gid) {
  ::lchown(root.c_str(), uid, gid);
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    ::lchown(it->path().c_str(), uid, gid);
  }
}

// Go's messages name the build directory; the user knows their file as main.go.
std::string Tidy(std::string text, const std::string& dir) {
  for (size_t at; (at = text.find(dir + "/")) != std::string::npos;) text.erase(at, dir.size() + 1);
  if (text.size() > kMaxOutputBytes) text = text.substr(0, kMaxOutputBytes) + "\n[cut]";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace

Result<void> BuildGoProgram(const GoBuildSettings& settings, const std::string& build_name,
                            const std::string& source, const std::string& output) {
  if (::access(settings.go_binary.c_str(), X_OK) != 0) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("the Go toolchain is not installed ({} not found): install "
                                 "golang-go (scripts/install-deps)",
                                 settings.go_binary));
  }
  const bool drop = ::geteuid() == 0;
  const fs::path dir = fs::path(settings.work_dir) / build_name;
  const fs::path cache = fs::path(settings.cache_dir) / "cache";
  const fs::path gopath = fs::path(settings.cache_dir) / "path";
  std::error_code ec;
  fs::remove_all(dir, ec);
  for (const auto& d : {dir, dir / "tmp", cache, gopath}) {
    fs::create_directories(d, ec);
    if (ec) {
      return MakeError(ErrorCode::kInternal,
                       fmt::format("create {}: {}", d.string(), ec.message()));
    }
  }
  Defer cleanup([&] { fs::remove_all(dir, ec); });
  if (auto r = WriteFile(dir / "main.go", source); !r) return r;
  if (auto r = WriteFile(dir / "go.mod", "module function\n\ngo 1.19\n"); !r) return r;
  if (drop) {
    // The compiler runs user code paths (go:generate is not run, but cgo is off and the
    // toolchain parses untrusted input): not as root. The cache belongs to the build user.
    ChownTree(dir, settings.uid, settings.gid);
    ChownTree(settings.cache_dir, settings.uid, settings.gid);
  }

  // Everything the child needs is prepared before fork: between fork and exec in a threaded
  // process only async-signal-safe calls are allowed.
  const std::string binary = (dir / "function").string();
  std::vector<std::string> args = {settings.go_binary, "build", "-trimpath", "-o", binary, "."};
  std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + dir.string(),
                                  "GOCACHE=" + cache.string(), "GOPATH=" + gopath.string(),
                                  "GOPROXY=off", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local",
                                  "GO111MODULE=on", "CGO_ENABLED=0",
                                  // Not the module's directory: Go ignores a go.mod in TMPDIR.
                                  "TMPDIR=" + (dir / "tmp").string()};
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return ErrnoError("pipe2");
  UniqueFd read_end(pipe_fds[0]);
  UniqueFd write_end(pipe_fds[1]);
  const std::string dir_string = dir.string();
  const uid_t uid = settings.uid;
  const gid_t gid = settings.gid;

  const pid_t pid = ::fork();
  if (pid < 0) return ErrnoError("fork");
  if (pid == 0) {
    ::setpgid(0, 0);  // the timeout kills go and every compiler it started
    ::dup2(write_end.get(), 1);
    ::dup2(write_end.get(), 2);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::syscall(SYS_close_range, 3, ~0U, 0);
    if (drop && (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0)) {
      ::_exit(126);
    }
    if (::chdir(dir_string.c_str()) != 0) ::_exit(125);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  write_end.Reset();

  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + settings.timeout;
  bool timed_out = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{read_end.get(), POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    char buffer[4096];
    const ssize_t n = ::read(read_end.get(), buffer, sizeof buffer);
    if (n <= 0) break;
    if (out.size() < 4 * kMaxOutputBytes) out.append(buffer, static_cast<size_t>(n));
  }
  if (timed_out) ::kill(-pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return MakeError(ErrorCode::kTimeout,
                     fmt::format("go build took longer than {} s", settings.timeout.count()));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    if (WIFEXITED(status) && WEXITSTATUS(status) == 126) {
      return MakeError(ErrorCode::kInternal, "go build: could not drop privileges");
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 125) {
      return MakeError(ErrorCode::kInternal,
                       fmt::format("go build: uid {} cannot enter {} (is the data directory "
                                   "traversable?)",
                                   uid, dir_string));
    }
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("go build failed:\n{}", Tidy(out, dir_string)));
  }
  fs::copy_file(binary, output, fs::copy_options::overwrite_existing, ec);
  if (ec) {
    return MakeError(ErrorCode::kInternal,
                     fmt::format("copy the binary to {}: {}", output, ec.message()));
  }
  fs::permissions(output,
                  fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                      fs::perms::others_read | fs::perms::others_exec,
                  ec);
  return {};
}

}  // namespace wisp::core
