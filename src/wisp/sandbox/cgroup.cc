#include "wisp/sandbox/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "wisp/common/read_file.h"
#include "wisp/common/unique_fd.h"

namespace wisp::sandbox {
namespace {

// The controllers Wisp limits: memory (OOM containment), pids (fork bombs), cpu (fair share).
constexpr const char* kControllers[] = {"memory", "pids", "cpu"};

bool PathExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// O_CREAT is harmless on cgroupfs (the files exist) and lets unit tests use a plain directory.
Result<void> WriteFile(const std::string& path, const std::string& value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return ErrnoError("open " + path);
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return ErrnoError(fmt::format("write '{}' to {}", value, path));
  }
  return {};
}

// Value of the line "<key> <n>" in a flat-keyed file such as memory.events, or 0.
uint64_t ReadKeyedValue(const std::string& path, const std::string& key) {
  auto text = ReadWholeFile(path);
  if (!text) return 0;
  std::istringstream in(*text);
  std::string k;
  uint64_t v;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return 0;
}

std::vector<std::string> SubdirNames(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (e->d_type == DT_DIR) names.push_back(std::move(name));
  }
  ::closedir(d);
  return names;
}

// Removes `dir` and its subdirectories, deepest first. Returns false if any is still there.
bool RemoveTree(const std::string& dir) {
  for (const auto& child : SubdirNames(dir)) RemoveTree(dir + "/" + child);
  return ::rmdir(dir.c_str()) == 0 || errno == ENOENT;
}

void CollectProcs(const std::string& dir, std::set<pid_t>& out) {
  if (auto text = ReadWholeFile(dir + "/cgroup.procs")) {
    std::istringstream in(*text);
    pid_t pid;
    while (in >> pid) out.insert(pid);
  }
  for (const auto& child : SubdirNames(dir)) CollectProcs(dir + "/" + child, out);
}

}  // namespace

Result<CgroupFs> CgroupFs::Detect(const std::string& mount_point) {
  if (PathExists(mount_point + "/cgroup.controllers")) {
    auto offered = ReadWholeFile(mount_point + "/cgroup.controllers");
    if (!offered) return tl::unexpected(offered.error());
    CgroupFs fs(CgroupVersion::kV2, {{"", mount_point}});
    std::istringstream in(*offered);
    std::string c;
    while (in >> c) {
      if (std::find(std::begin(kControllers), std::end(kControllers), c) !=
          std::end(kControllers)) {
        fs.v2_controllers_.push_back(c);
      }
    }
    return fs;
  }
  std::vector<Hierarchy> found;
  for (const char* c : kControllers) {
    std::string root = mount_point + "/" + c;
    if (PathExists(root + "/cgroup.procs")) found.push_back({c, root});
  }
  if (found.empty()) {
    return MakeError(
        ErrorCode::kFailedPrecondition,
        fmt::format("no cgroup v2 or v1 (memory, pids, cpu) mount under {}", mount_point));
  }
  return CgroupFs(CgroupVersion::kV1, std::move(found));
}

bool CgroupFs::HasController(const std::string& controller) const {
  if (version_ == CgroupVersion::kV2) {
    return std::find(v2_controllers_.begin(), v2_controllers_.end(), controller) !=
           v2_controllers_.end();
  }
  return std::any_of(hierarchies_.begin(), hierarchies_.end(),
                     [&](const Hierarchy& h) { return h.controller == controller; });
}

bool CgroupFs::CanEnforceLimits() const { return HasController("memory") && HasController("pids"); }

std::string CgroupFs::Describe() const {
  std::vector<std::string> names;
  for (const char* c : kControllers) {
    if (HasController(c)) names.push_back(c);
  }
  return fmt::format("{} ({})", version_ == CgroupVersion::kV2 ? "v2" : "v1",
                     fmt::join(names, ", "));
}

std::string CgroupFs::DirFor(const std::string& controller, const std::string& group) const {
  if (version_ == CgroupVersion::kV2) {
    return HasController(controller) ? hierarchies_[0].root + "/" + group : "";
  }
  for (const auto& h : hierarchies_) {
    if (h.controller == controller) return h.root + "/" + group;
  }
  return "";
}

Result<void> CgroupFs::CreateGroup(const std::string& group) const {
  for (const auto& h : hierarchies_) {
    std::string path = h.root;
    std::istringstream parts(group);
    std::string part;
    while (std::getline(parts, part, '/')) {
      if (part.empty()) continue;
      if (version_ == CgroupVersion::kV2) {
        // Enable our controllers for the children of `path` before descending into them.
        auto enabled = ReadWholeFile(path + "/cgroup.subtree_control");
        for (const auto& c : v2_controllers_) {
          if (enabled && enabled->find(c) != std::string::npos) continue;
          if (auto r = WriteFile(path + "/cgroup.subtree_control", "+" + c); !r) return r;
        }
      }
      path += "/" + part;
      if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoError("mkdir " + path);
    }
  }
  return {};
}

Result<void> CgroupFs::SetLimits(const std::string& group, const CgroupLimits& limits) const {
  const bool v2 = version_ == CgroupVersion::kV2;
  if (std::string dir = DirFor("memory", group); !dir.empty() && limits.memory_bytes > 0) {
    std::string bytes = std::to_string(limits.memory_bytes);
    if (auto r = WriteFile(dir + (v2 ? "/memory.max" : "/memory.limit_in_bytes"), bytes); !r) {
      return r;
    }
    // Without a swap limit an over-limit instance would page to swap instead of being killed.
    if (v2) {
      if (PathExists(dir + "/memory.swap.max")) {
        if (auto r = WriteFile(dir + "/memory.swap.max", "0"); !r) return r;
      }
      // An OOM kills every process of the instance, not one of them: a half-killed runtime
      // (say, its worker gone) must not be reused.
      if (auto r = WriteFile(dir + "/memory.oom.group", "1"); !r) return r;
    } else if (PathExists(dir + "/memory.memsw.limit_in_bytes")) {
      if (auto r = WriteFile(dir + "/memory.memsw.limit_in_bytes", bytes); !r) return r;
    }
  }
  if (std::string dir = DirFor("pids", group); !dir.empty() && limits.pids > 0) {
    if (auto r = WriteFile(dir + "/pids.max", std::to_string(limits.pids)); !r) return r;
  }
  if (std::string dir = DirFor("cpu", group); !dir.empty() && limits.vcpu > 0) {
    const char* file = v2 ? "/cpu.weight" : "/cpu.shares";
    if (auto r = WriteFile(dir + file, CpuWeightText(limits.vcpu)); !r) return r;
  }
  return {};
}

std::string CgroupFs::CpuWeightText(double vcpu) const {
  // Weight relative to other instances: one vcpu is the default weight of each version.
  if (version_ == CgroupVersion::kV2) {
    return std::to_string(std::clamp<long>(std::lround(100 * vcpu), 1, 10000));
  }
  return std::to_string(std::max<long>(2, std::lround(1024 * vcpu)));
}

Result<UniqueFd> CgroupFs::OpenCpuWeight(const std::string& group) const {
  std::string dir = DirFor("cpu", group);
  if (dir.empty()) return UniqueFd();
  std::string path = dir + (version_ == CgroupVersion::kV2 ? "/cpu.weight" : "/cpu.shares");
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return ErrnoError("open " + path);
  return fd;
}

Result<void> CgroupFs::AddProcess(const std::string& group, pid_t pid) const {
  for (const auto& h : hierarchies_) {
    if (auto r = WriteFile(h.root + "/" + group + "/cgroup.procs", std::to_string(pid)); !r) {
      return r;
    }
  }
  return {};
}

std::vector<pid_t> CgroupFs::Procs(const std::string& group) const {
  std::set<pid_t> pids;
  for (const auto& h : hierarchies_) CollectProcs(h.root + "/" + group, pids);
  return {pids.begin(), pids.end()};
}

Result<UniqueFd> CgroupFs::OomEventFd(const std::string& group) const {
  std::string dir = DirFor("memory", group);
  if (version_ == CgroupVersion::kV2 || dir.empty()) return UniqueFd();
  UniqueFd event(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!event) return ErrnoError("eventfd");
  UniqueFd control(::open((dir + "/memory.oom_control").c_str(), O_RDONLY | O_CLOEXEC));
  if (!control) return ErrnoError("open " + dir + "/memory.oom_control");
  // The kernel keeps its own reference to `control`; ours may close right away.
  if (auto r = WriteFile(dir + "/cgroup.event_control",
                         fmt::format("{} {}", event.get(), control.get()));
      !r) {
    return tl::unexpected(r.error());
  }
  return event;
}

uint64_t CgroupFs::OomKills(const std::string& group) const {
  std::string dir = DirFor("memory", group);
  if (dir.empty()) return 0;
  return ReadKeyedValue(
      dir + (version_ == CgroupVersion::kV2 ? "/memory.events" : "/memory.oom_control"),
      "oom_kill");
}

Result<UniqueFd> CgroupFs::OpenMemoryPeak(const std::string& group) const {
  std::string dir = DirFor("memory", group);
  if (dir.empty()) return UniqueFd();
  std::string path =
      dir + (version_ == CgroupVersion::kV2 ? "/memory.peak" : "/memory.max_usage_in_bytes");
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return UniqueFd();
    return ErrnoError("open " + path);
  }
  return fd;
}

std::optional<uint64_t> CgroupFs::MemoryPeak(const std::string& group) const {
  auto fd = OpenMemoryPeak(group);
  if (!fd || !*fd) return std::nullopt;
  return ReadMemoryPeak(fd->get());
}

std::vector<std::string> CgroupFs::Children(const std::string& group) const {
  std::set<std::string> names;
  for (const auto& h : hierarchies_) {
    for (auto& n : SubdirNames(h.root + "/" + group)) names.insert(std::move(n));
  }
  return {names.begin(), names.end()};
}

bool CgroupFs::Exists(const std::string& group) const {
  return std::any_of(hierarchies_.begin(), hierarchies_.end(),
                     [&](const Hierarchy& h) { return PathExists(h.root + "/" + group); });
}

Result<void> CgroupFs::KillAndRemove(const std::string& group) const {
  constexpr int kAttempts = 200;  // x 10 ms
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    for (pid_t pid : Procs(group)) ::kill(pid, SIGKILL);
    bool removed = true;
    for (const auto& h : hierarchies_) removed = RemoveTree(h.root + "/" + group) && removed;
    if (removed) return {};
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return MakeError(ErrorCode::kInternal,
                   fmt::format("cgroup {} still busy after killing its processes", group));
}

std::optional<uint64_t> ReadMemoryPeak(int fd) {
  char text[32];
  const ssize_t n = ::pread(fd, text, sizeof text, 0);
  if (n <= 0) return std::nullopt;
  uint64_t bytes = 0;
  if (std::from_chars(text, text + n, bytes).ec != std::errc()) return std::nullopt;
  return bytes;
}

}  // namespace wisp::sandbox
