#include "wisp/core/go_builder.h"

#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <optional>
#include <regex>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "wisp/common/unique_fd.h"

namespace wisp::core {
namespace fs = std::filesystem;
namespace {

// The compiler's output beyond this is cut: a deploy error should be readable.
constexpr size_t kMaxOutputBytes = 16 << 10;
// Deploys waiting for a build beyond this get a clear "try again" instead of waiting for
// minutes behind each other.
constexpr size_t kMaxWaitingBuilds = 64;
// After the wall-time limit kills a build, the launcher reports its end within milliseconds;
// this only bounds a launcher that is gone or wedged.
constexpr auto kExitReportGrace = std::chrono::seconds(30);
// Where the build sees its directories (the source is the sandbox's /var/task).
constexpr const char* kSandboxOutput = "/out";
constexpr const char* kSandboxCache = "/go";
constexpr const char* kBinaryName = "function";
constexpr const char* kCacheDirName = "go";
constexpr const char* kWorkDirName = "work";

// Writes a new file; refuses to write through anything that is already there.
Result<void> WriteNewFile(const fs::path& path, const std::string& text, mode_t mode) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd) return ErrnoError("create " + path.string());
  for (size_t done = 0; done < text.size();) {
    const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoError("write " + path.string());
    done += static_cast<size_t>(n);
  }
  if (::fchmod(fd.get(), mode) != 0) return ErrnoError("chmod " + path.string());
  return {};
}

// A directory of exactly this owner and mode, made afresh (its parent is root's and 0700, so
// nothing else can have put anything in its place meanwhile).
Result<void> MakeDirectory(const fs::path& path, uid_t uid, gid_t gid, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0) return ErrnoError("mkdir " + path.string());
  if (::chown(path.c_str(), uid, gid) != 0 || ::chmod(path.c_str(), mode) != 0) {
    return ErrnoError("set owner and mode of " + path.string());
  }
  return {};
}

// The build's directories: src/ (root's, read-only inside, filled by the job), out/ for the
// result (the build uid's).
Result<void> PrepareWorkDir(const fs::path& dir, uid_t uid, gid_t gid,
                            const std::function<Result<void>(const std::string&)>& prepare) {
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (auto made = MakeDirectory(dir, 0, 0, 0700); !made) return made;
  if (auto made = MakeDirectory(dir / "src", 0, 0, 0755); !made) return made;
  if (auto made = MakeDirectory(dir / "out", uid, gid, 0700); !made) return made;
  return prepare((dir / "src").string());
}

// A Node package's TypeScript needs Node's globals; Debian has no @types/node, so a package
// without its own gets these loose ones (and any module it imports without types is `any`).
constexpr const char* kNodeGlobals =
    R"ts(// Written by wispd for tsc: Node's globals, loosely typed.
declare var process: any;
declare var require: any;
declare var module: any;
declare var exports: any;
declare var Buffer: any;
declare var __dirname: string;
declare var __filename: string;
declare var global: any;
declare module "*";
)ts";
constexpr const char* kNodeGlobalsFile = "wisp-node-globals.d.ts";

// tsc's output beyond this many bytes and entries is refused (a package's limits).
constexpr uint64_t kMaxTypeScriptOutputBytes = 256ull << 20;
constexpr uint64_t kMaxTypeScriptOutputEntries = 20000;
constexpr int kMaxOutputDepth = 64;

bool IsTypeScriptSource(std::string_view name) {
  for (std::string_view declaration : {".d.ts", ".d.mts", ".d.cts"}) {
    if (name.ends_with(declaration)) return false;
  }
  return name.ends_with(".ts") || name.ends_with(".mts") || name.ends_with(".cts");
}

// Copies `from` (a directory fd) into `to` recursively; see TakeBuildOutputTree.
Result<void> CopyOutputDir(int from, const fs::path& to, uid_t build_uid, int depth,
                           uint64_t& bytes, uint64_t& entries, uint64_t max_bytes,
                           uint64_t max_entries, const std::string& relative) {
  if (depth > kMaxOutputDepth) {
    return MakeError(ErrorCode::kInvalidArgument, "the build's output is nested too deeply");
  }
  // Root's from now on: nothing in it can be renamed or replaced but by root.
  if (::fchown(from, 0, 0) != 0 || ::fchmod(from, 0700) != 0) {
    return ErrnoError("take over the build's output directory " + relative);
  }
  std::error_code ec;
  fs::create_directories(to, ec);
  if (ec)
    return MakeError(ErrorCode::kInternal, fmt::format("mkdir {}: {}", to.string(), ec.message()));
  UniqueFd listing(::dup(from));
  if (!listing) return ErrnoError("dup");
  DIR* dir = ::fdopendir(listing.get());
  if (!dir) return ErrnoError("read the build's output");
  (void)listing.Release();
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  for (const std::string& name : names) {
    const std::string path = relative.empty() ? name : relative + "/" + name;
    if (++entries > max_entries) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("the build's output has more than {} entries", max_entries));
    }
    struct stat st;
    if (::fstatat(from, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return ErrnoError("stat the build's output " + path);
    }
    if (S_ISDIR(st.st_mode)) {
      UniqueFd sub(::openat(from, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub) return ErrnoError("open the build's output " + path);
      if (auto copied = CopyOutputDir(sub.get(), to / name, build_uid, depth + 1, bytes, entries,
                                      max_bytes, max_entries, path);
          !copied) {
        return copied;
      }
      continue;
    }
    UniqueFd file(::openat(from, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!file) return ErrnoError("open the build's output " + path);
    if (::fstat(file.get(), &st) != 0) return ErrnoError("stat the build's output " + path);
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_uid != build_uid) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("the build's output {} is not a regular file of the build's "
                                   "own: refused",
                                   path));
    }
    bytes += static_cast<uint64_t>(st.st_size);
    if (bytes > max_bytes) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("the build's output is over {} MiB", max_bytes >> 20));
    }
    const fs::path target = to / name;
    ::unlink(target.c_str());
    UniqueFd copy(
        ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!copy) return ErrnoError("create " + target.string());
    for (;;) {
      const ssize_t n = ::sendfile(copy.get(), file.get(), nullptr, 1 << 20);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoError("copy the build's output " + path);
      if (n == 0) break;
    }
  }
  return {};
}

// Go's messages name the sandbox's source directory; the user knows their file as main.go.
std::string Tidy(std::string text) {
  const std::string dir = "/var/task/";
  for (size_t at; (at = text.find(dir)) != std::string::npos;) text.erase(at, dir.size());
  if (text.size() > kMaxOutputBytes) text = text.substr(0, kMaxOutputBytes) + "\n[cut]";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// The build's "out" directory under `work_dir`, which must be root's and 0700 (so that no other
// uid could have swapped anything on the way there).
Result<UniqueFd> OpenBuildOutputDir(const std::string& work_dir) {
  UniqueFd work(::open(work_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!work) return ErrnoError("open " + work_dir);
  struct stat st;
  if (::fstat(work.get(), &st) != 0) return ErrnoError("stat " + work_dir);
  if (st.st_uid != 0 || (st.st_mode & 077) != 0) {
    return MakeError(ErrorCode::kInternal,
                     fmt::format("{} must be root's with mode 0700 to take a build's output from "
                                 "it",
                                 work_dir));
  }
  UniqueFd out(::openat(work.get(), "out", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!out) {
    return MakeError(
        ErrorCode::kInternal,
        fmt::format("the build's output directory is not a directory: {}", std::strerror(errno)));
  }
  return out;
}

}  // namespace

Result<void> PrepareBuildDir(const GoBuildSettings& settings) {
  const fs::path dir = settings.build_dir;
  if (dir.empty() || !dir.is_absolute()) {
    return MakeError(ErrorCode::kInvalidArgument, "the Go build directory must be absolute");
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return ErrnoError("mkdir " + dir.string());
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd)
    return ErrnoError(fmt::format("open {} (must be a directory, not a link)", dir.string()));
  // Root's alone: no other local user may reach the cache or a build's output below it.
  if (::fchown(fd.get(), 0, 0) != 0 || ::fchmod(fd.get(), 0700) != 0) {
    return ErrnoError("make " + dir.string() + " root's with mode 0700 (wispd runs as root)");
  }
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == kCacheDirName) {
      // The cache is trusted only if the build uid alone could ever write it.
      struct stat st;
      if (::lstat(entry.path().c_str(), &st) == 0 && S_ISDIR(st.st_mode) &&
          st.st_uid == settings.uid && st.st_gid == settings.gid && (st.st_mode & 07777) == 0700) {
        continue;
      }
      spdlog::info("Go build cache {} has another owner or mode: starting it afresh",
                   entry.path().string());
    }
    fs::remove_all(entry.path(), ec);
    if (ec)
      return MakeError(ErrorCode::kInternal,
                       fmt::format("remove {}: {}", entry.path().string(), ec.message()));
  }
  if (ec)
    return MakeError(ErrorCode::kInternal, fmt::format("list {}: {}", dir.string(), ec.message()));
  struct stat st;
  if (::lstat((dir / kCacheDirName).c_str(), &st) != 0) {
    if (auto made = MakeDirectory(dir / kCacheDirName, settings.uid, settings.gid, 0700); !made) {
      return made;
    }
  }
  return MakeDirectory(dir / kWorkDirName, 0, 0, 0700);
}

Result<void> TakeBuildOutput(const std::string& work_dir, uid_t build_uid,
                             const std::string& output) {
  auto out = OpenBuildOutputDir(work_dir);
  if (!out) return tl::unexpected(out.error());
  // The build's processes are gone and no other uid can reach this directory; once it is
  // root's, nothing in it can be renamed, replaced or linked but by root.
  if (::fchown(out->get(), 0, 0) != 0 || ::fchmod(out->get(), 0700) != 0) {
    return ErrnoError("take over the build's output directory");
  }
  // O_NONBLOCK: a FIFO in its place must not block the open; it is refused below.
  UniqueFd binary(
      ::openat(out->get(), kBinaryName, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!binary) {
    if (errno == ELOOP) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "the build's output is a symbolic link: refused");
    }
    if (errno == ENOENT) return MakeError(ErrorCode::kInvalidArgument, "go build left no binary");
    return ErrnoError("open the build's output");
  }
  struct stat st;
  if (::fstat(binary.get(), &st) != 0) return ErrnoError("stat the build's output");
  if (!S_ISREG(st.st_mode)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "the build's output is not a regular file: refused");
  }
  // Another link means the file is also somewhere the build did not write; another owner means
  // the build did not create it.
  if (st.st_nlink != 1 || st.st_uid != build_uid) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("the build's output is not a file of the build's own (owner {}, "
                                 "{} links): refused",
                                 st.st_uid, st.st_nlink));
  }

  const std::string temp = output + ".tmp";
  ::unlink(temp.c_str());
  UniqueFd copy(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0755));
  if (!copy) return ErrnoError("create " + temp);
  for (;;) {
    const ssize_t n = ::sendfile(copy.get(), binary.get(), nullptr, 1 << 20);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::unlink(temp.c_str());
      return ErrnoError("copy the build's output to " + temp, err);
    }
    if (n == 0) break;
  }
  // Root's, readable and executable by the sandbox user, writable by nobody else.
  if (::fchmod(copy.get(), 0755) != 0 || ::rename(temp.c_str(), output.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return ErrnoError("install " + output, err);
  }
  return {};
}

Result<void> TakeBuildOutputTree(const std::string& work_dir, uid_t build_uid,
                                 const std::string& output_dir, uint64_t max_bytes,
                                 uint64_t max_entries) {
  auto out = OpenBuildOutputDir(work_dir);
  if (!out) return tl::unexpected(out.error());
  uint64_t bytes = 0;
  uint64_t entries = 0;
  return CopyOutputDir(out->get(), output_dir, build_uid, 0, bytes, entries, max_bytes, max_entries,
                       "");
}

std::vector<std::string> TypeScriptSources(const std::string& dir) {
  std::vector<std::string> sources;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const fs::path& path = it->path();
    if (it->is_directory(ec) && path.filename() == "node_modules") {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(ec) && IsTypeScriptSource(path.filename().string())) {
      sources.push_back(fs::relative(path, dir, ec).string());
    }
  }
  std::sort(sources.begin(), sources.end());
  return sources;
}

std::string TidyTypeScriptMessages(std::string text) {
  const std::string dir = "/var/task/";
  for (size_t at; (at = text.find(dir)) != std::string::npos;) text.erase(at, dir.size());
  // "index.ts(2,9): error TS2322: ..." -> "index.ts:2:9: error TS2322: ..."
  static const std::regex kPosition(R"re(([^\s():]+)\((\d+),(\d+)\): )re");
  text = std::regex_replace(text, kPosition, "$1:$2:$3: ");
  if (text.size() > kMaxOutputBytes) text = text.substr(0, kMaxOutputBytes) + "\n[cut]";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

struct GoBuilder::RunningBuild {
  explicit RunningBuild(const asio::any_io_executor& executor)
      : spawned(executor), exited(executor) {}
  Event spawned;
  std::optional<Result<sandbox::InstanceHandle>> spawn_result;
  Event exited;
  sandbox::ExitStatus status;
  bool timed_out = false;
};

// A build's turn to run. When it ends, the turn passes straight to the oldest waiting build, so
// a build that arrives meanwhile cannot take it first.
class GoBuilder::Turn {
 public:
  Turn(GoBuilder& builder, std::shared_ptr<bool> alive)
      : builder_(builder), alive_(std::move(alive)) {}
  Turn(const Turn&) = delete;
  Turn& operator=(const Turn&) = delete;
  ~Turn() {
    if (!*alive_) return;
    if (builder_.waiting_.empty()) {
      --builder_.running_;
      return;
    }
    auto next = std::move(builder_.waiting_.front());
    builder_.waiting_.pop_front();
    next->Set();
  }

 private:
  GoBuilder& builder_;
  std::shared_ptr<bool> alive_;
};

GoBuilder::GoBuilder(asio::io_context& io, std::unique_ptr<sandbox::Backend> sandboxes,
                     GoBuildSettings settings)
    : io_(io), sandboxes_(std::move(sandboxes)), settings_(std::move(settings)) {
  sandboxes_->SetExitCallback([this, alive = alive_](const sandbox::ExitStatus& status) {
    if (!*alive) return;
    auto it = builds_.find(status.instance_id);
    if (it == builds_.end()) return;
    it->second->status = status;
    it->second->exited.Set();
  });
}

GoBuilder::~GoBuilder() {
  *alive_ = false;
  files_.join();
}

asio::awaitable<Result<void>> GoBuilder::Build(std::string build_name, std::string source,
                                               std::string output) {
  if (::access(settings_.go_binary.c_str(), X_OK) != 0) {
    co_return MakeError(ErrorCode::kUnavailable,
                        fmt::format("the Go toolchain is not installed ({} not found): install "
                                    "golang-go (scripts/install-deps)",
                                    settings_.go_binary));
  }
  Job job;
  job.what = "go build";
  job.argv = {settings_.go_binary,
              "build",
              "-trimpath",
              "-o",
              fmt::format("{}/{}", kSandboxOutput, kBinaryName),
              "."};
  job.env = {"PATH=/usr/local/bin:/usr/bin:/bin",
             "HOME=/tmp",
             "TMPDIR=/tmp",
             fmt::format("GOCACHE={}/cache", kSandboxCache),
             fmt::format("GOPATH={}/path", kSandboxCache),
             "GOPROXY=off",
             "GOFLAGS=-mod=mod",
             "GOTOOLCHAIN=local",
             "GO111MODULE=on",
             "CGO_ENABLED=0"};
  job.go_cache = true;
  job.prepare = [source = std::move(source)](const std::string& src) -> Result<void> {
    if (auto written = WriteNewFile(fs::path(src) / "main.go", source, 0644); !written) {
      return written;
    }
    return WriteNewFile(fs::path(src) / "go.mod", "module function\n\ngo 1.19\n", 0644);
  };
  job.take = [uid = settings_.uid, output = std::move(output)](const std::string& work_dir) {
    return TakeBuildOutput(work_dir, uid, output);
  };
  job.tidy = Tidy;
  co_return co_await Run(std::move(build_name), std::move(job));
}

asio::awaitable<Result<void>> GoBuilder::CompileTypeScript(std::string build_name,
                                                           std::string source_dir,
                                                           std::string output_dir) {
  if (::access(settings_.tsc_binary.c_str(), X_OK) != 0) {
    co_return MakeError(ErrorCode::kUnavailable,
                        fmt::format("TypeScript is not installed ({} not found): install "
                                    "node-typescript (scripts/install-deps)",
                                    settings_.tsc_binary));
  }
  auto list = [source_dir] { return TypeScriptSources(source_dir); };
  const std::vector<std::string> sources = co_await Offload(files_, std::move(list));
  if (sources.empty()) {
    co_return MakeError(ErrorCode::kInvalidArgument, "the package has no TypeScript file");
  }
  std::error_code ec;
  const bool own_node_types =
      fs::is_directory(fs::path(source_dir) / "node_modules" / "@types" / "node", ec);
  Job job;
  job.what = "tsc";
  // Strict type checking, Node's module rules (a .mts file is an ES module, a .ts file follows
  // package.json's "type"), no output at all when anything is wrong.
  job.argv = {settings_.tsc_binary,
              "--pretty",
              "false",
              "--noEmitOnError",
              "--strict",
              "--skipLibCheck",
              "--esModuleInterop",
              "--target",
              "es2021",
              "--module",
              "node16",
              "--moduleResolution",
              "node16",
              "--rootDir",
              "/var/task",
              "--outDir",
              kSandboxOutput};
  for (const std::string& source : sources) job.argv.push_back("/var/task/" + source);
  if (!own_node_types) job.argv.push_back(std::string("/var/task/") + kNodeGlobalsFile);
  job.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp"};
  job.prepare = [source_dir, own_node_types](const std::string& src) -> Result<void> {
    std::error_code ec;
    fs::copy(source_dir, src, fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
    if (ec) {
      return MakeError(ErrorCode::kInternal,
                       fmt::format("copy the package for tsc: {}", ec.message()));
    }
    if (own_node_types) return {};
    ::unlink((fs::path(src) / kNodeGlobalsFile).c_str());
    return WriteNewFile(fs::path(src) / kNodeGlobalsFile, kNodeGlobals, 0644);
  };
  job.take = [uid = settings_.uid, output_dir](const std::string& work_dir) {
    return TakeBuildOutputTree(work_dir, uid, output_dir, kMaxTypeScriptOutputBytes,
                               kMaxTypeScriptOutputEntries);
  };
  job.tidy = TidyTypeScriptMessages;
  co_return co_await Run(std::move(build_name), std::move(job));
}

asio::awaitable<Result<void>> GoBuilder::Run(std::string build_name, Job job) {
  const auto alive = alive_;
  if (running_ < std::max<uint32_t>(settings_.concurrency, 1) && waiting_.empty()) {
    ++running_;
  } else {
    if (waiting_.size() >= kMaxWaitingBuilds) {
      co_return MakeError(
          ErrorCode::kUnavailable,
          fmt::format("{} builds are waiting already: try again later", waiting_.size()));
    }
    const auto my_turn = std::make_shared<Event>(io_.get_executor());
    waiting_.push_back(my_turn);
    co_await my_turn->Wait();
    if (!*alive) co_return MakeError(ErrorCode::kUnavailable, "wispd is stopping");
  }
  Turn turn(*this, alive);

  const std::string work_dir = (fs::path(settings_.build_dir) / kWorkDirName / build_name).string();
  Result<void> result = co_await Compile(build_name, work_dir, job);
  if (!*alive) co_return result;
  auto remove = [work_dir] {
    std::error_code ec;
    fs::remove_all(work_dir, ec);
    return ec.value();
  };
  co_await Offload(files_, std::move(remove));
  co_return result;
}

sandbox::SpawnSpec GoBuilder::SpecFor(const std::string& build_name, const std::string& work_dir,
                                      const Job& job) const {
  sandbox::SpawnSpec spec;
  spec.instance_id = build_name;
  spec.argv = job.argv;
  spec.env = job.env;
  spec.code_dir = (fs::path(work_dir) / "src").string();  // read-only at /var/task
  spec.memory_limit_bytes = settings_.memory_limit_bytes;
  // Work files go to /tmp, which counts against the memory limit anyway: the limit bounds both
  // together.
  spec.tmp_size_bytes = settings_.memory_limit_bytes;
  spec.pids_limit = settings_.pids_limit;
  spec.vcpu = settings_.vcpu;
  spec.writable_binds = {{(fs::path(work_dir) / "out").string(), kSandboxOutput}};
  if (job.go_cache) {
    spec.writable_binds.push_back(
        {(fs::path(settings_.build_dir) / kCacheDirName).string(), kSandboxCache});
  }
  return spec;
}

asio::awaitable<Result<void>> GoBuilder::Compile(const std::string& build_name,
                                                 const std::string& work_dir, const Job& job) {
  const uid_t uid = settings_.uid;
  const gid_t gid = settings_.gid;
  auto prepare = [work_dir, uid, gid, &job] {
    return PrepareWorkDir(work_dir, uid, gid, job.prepare);
  };
  auto prepared = co_await Offload(files_, std::move(prepare));
  if (!prepared) co_return prepared;

  const auto alive = alive_;
  const auto build = std::make_shared<RunningBuild>(io_.get_executor());
  builds_[build_name] = build;
  sandboxes_->Spawn(SpecFor(build_name, work_dir, job),
                    [build](Result<sandbox::InstanceHandle> spawned) {
                      build->spawn_result = std::move(spawned);
                      build->spawned.Set();
                    });
  co_await build->spawned.Wait();
  if (!*alive) co_return MakeError(ErrorCode::kUnavailable, "wispd is stopping");
  if (!*build->spawn_result) {
    builds_.erase(build_name);
    co_return MakeError(ErrorCode::kInternal,
                        fmt::format("cannot start the {} sandbox: {}", job.what,
                                    build->spawn_result->error().message));
  }
  // The build needs only the output: the Runtime API's transport closes here.
  std::unique_ptr<sandbox::LogStream> build_output = std::move((*build->spawn_result)->logs);
  build->spawn_result.reset();

  asio::steady_timer deadline(io_, settings_.timeout);
  deadline.async_wait([this, alive, build, build_name](const boost::system::error_code& ec) {
    if (ec || !*alive || build->exited.is_set()) return;
    build->timed_out = true;
    sandboxes_->Kill(build_name);
  });
  // The output ends when the last process of the sandbox is gone.
  std::string log;
  std::array<char, 4096> buffer;
  for (;;) {
    boost::system::error_code ec;
    const size_t n = co_await build_output->Read(buffer, ec);
    if (!*alive) co_return MakeError(ErrorCode::kUnavailable, "wispd is stopping");
    if (log.size() < 4 * kMaxOutputBytes) log.append(buffer.data(), n);
    if (ec) break;
  }
  const bool reported =
      co_await build->exited.Wait(std::chrono::steady_clock::now() + kExitReportGrace);
  if (!*alive) co_return MakeError(ErrorCode::kUnavailable, "wispd is stopping");
  deadline.cancel();
  builds_.erase(build_name);
  if (!reported) {
    sandboxes_->Kill(build_name);
    co_return MakeError(ErrorCode::kInternal,
                        fmt::format("the {} sandbox did not report its end", job.what));
  }

  const sandbox::ExitStatus& status = build->status;
  if (build->timed_out) {
    co_return MakeError(ErrorCode::kTimeout,
                        fmt::format("{} took longer than {} s (the build time limit, "
                                    "go_build_timeout_seconds)",
                                    job.what, settings_.timeout.count()));
  }
  if (status.oom_killed) {
    co_return MakeError(ErrorCode::kResourceExhausted,
                        fmt::format("{} ran out of memory: a build may use {} MiB "
                                    "(go_build_memory_mb)",
                                    job.what, settings_.memory_limit_bytes >> 20));
  }
  if (status.signal != 0) {
    co_return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("{} was killed by signal {}:\n{}", job.what, status.signal, job.tidy(log)));
  }
  if (status.exit_code != 0) {
    co_return MakeError(ErrorCode::kInvalidArgument,
                        fmt::format("{} failed:\n{}", job.what, job.tidy(log)));
  }
  auto take = [work_dir, &job] { return job.take(work_dir); };
  co_return co_await Offload(files_, std::move(take));
}

}  // namespace wisp::core
