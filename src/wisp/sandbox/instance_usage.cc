#include "wisp/sandbox/instance_usage.h"

#include <unistd.h>

#include <map>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "wisp/common/read_file.h"

namespace wisp::sandbox {
namespace {

// A sandbox's process may end while its /proc file is read: no text then (ReadWholeFile).
std::optional<std::string> ReadText(const std::string& path) {
  auto text = ReadWholeFile(path);
  if (!text) return std::nullopt;
  return std::move(*text);
}

std::optional<uint64_t> ReadNumber(const std::string& path) {
  auto text = ReadText(path);
  if (!text) return std::nullopt;
  try {
    return std::stoull(*text);
  } catch (const std::exception&) {
    return std::nullopt;  // "max" and the like
  }
}

// A "key value" line of a flat-keyed file (cpu.stat).
std::optional<uint64_t> ReadKey(const std::string& path, const std::string& key) {
  auto text = ReadText(path);
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  std::string name;
  uint64_t value = 0;
  while (in >> name >> value) {
    if (name == key) return value;
  }
  return std::nullopt;
}

struct CgroupMounts {
  std::map<std::string, std::string> v1;  // controller -> mount point
  std::string v2;                         // the unified hierarchy's mount point, if any
};

// Where each hierarchy is mounted, from this process's mountinfo (the paths differ between
// distributions: "cpuacct" alone, "cpu,cpuacct", v2 at the root or under "unified").
CgroupMounts FindMounts() {
  CgroupMounts mounts;
  auto text = ReadText("/proc/self/mountinfo");
  if (!text) return mounts;
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    // id parent major:minor root mount_point options [optional...] - fstype source super_options
    std::istringstream in(line);
    std::vector<std::string> fields{std::istream_iterator<std::string>(in), {}};
    size_t dash = 0;
    while (dash < fields.size() && fields[dash] != "-") ++dash;
    if (dash < 5 || dash + 3 >= fields.size()) continue;
    const std::string& fstype = fields[dash + 1];
    if (fields[3] != "/") continue;  // a bind of part of a hierarchy: paths would not match
    if (fstype == "cgroup2") {
      if (mounts.v2.empty()) mounts.v2 = fields[4];
    } else if (fstype == "cgroup") {
      std::istringstream options(fields[dash + 3]);
      std::string option;
      while (std::getline(options, option, ',')) mounts.v1.emplace(option, fields[4]);
    }
  }
  return mounts;
}

const CgroupMounts& Mounts() {
  static const CgroupMounts mounts = FindMounts();
  return mounts;
}

// Which group the process is in, per v1 controller, and in the unified hierarchy ("" key).
std::map<std::string, std::string> GroupsOf(pid_t pid) {
  std::map<std::string, std::string> groups;
  auto text = ReadText(fmt::format("/proc/{}/cgroup", pid));
  if (!text) return groups;
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    const auto first = line.find(':');
    const auto second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 1);
    if (controllers.empty()) {
      groups[""] = path;
      continue;
    }
    std::istringstream names(controllers);
    std::string name;
    while (std::getline(names, name, ',')) groups[name] = path;
  }
  return groups;
}

// utime + stime + cutime + cstime of one process, in clock ticks.
std::optional<uint64_t> ProcessTicks(pid_t pid) {
  auto stat = ReadText(fmt::format("/proc/{}/stat", pid));
  if (!stat) return std::nullopt;
  const auto close = stat->rfind(')');
  if (close == std::string::npos || close + 2 > stat->size()) return std::nullopt;
  std::istringstream in(stat->substr(close + 2));
  std::vector<std::string> fields{std::istream_iterator<std::string>(in), {}};
  if (fields.size() < 15) return std::nullopt;
  uint64_t ticks = 0;
  for (size_t i = 11; i <= 14; ++i) ticks += std::stoull(fields[i]);  // fields 14..17 of proc(5)
  return ticks;
}

std::vector<pid_t> ReadPids(const std::string& path) {
  std::vector<pid_t> pids;
  auto text = ReadText(path);
  if (!text) return pids;
  std::istringstream in(*text);
  pid_t pid = 0;
  while (in >> pid) pids.push_back(pid);
  return pids;
}

// `pid` and its descendants, through /proc/<pid>/task/<tid>/children (a process's children
// are listed under the thread that forked them).
std::vector<pid_t> ProcessTree(pid_t root) {
  std::vector<pid_t> out{root};
  for (size_t i = 0; i < out.size() && out.size() < 4096; ++i) {
    const std::string tasks = fmt::format("/proc/{}/task", out[i]);
    for (pid_t tid : ReadPids(fmt::format("{}/{}/children", tasks, out[i]))) out.push_back(tid);
  }
  return out;
}

}  // namespace

InstanceUsage ReadInstanceUsage(pid_t pid) {
  InstanceUsage usage;
  if (pid <= 0) return usage;
  const CgroupMounts& mounts = Mounts();
  const auto groups = GroupsOf(pid);
  const auto group_dir = [&](const std::string& controller) -> std::string {
    auto mount = mounts.v1.find(controller);
    auto group = groups.find(controller);
    if (mount == mounts.v1.end() || group == groups.end() || group->second == "/") return "";
    return mount->second + group->second;
  };
  std::string unified;
  if (auto g = groups.find(""); g != groups.end() && g->second != "/" && !mounts.v2.empty()) {
    unified = mounts.v2 + g->second;
  }

  std::string procs_file;
  if (const std::string memory = group_dir("memory"); !memory.empty()) {
    usage.memory_bytes = ReadNumber(memory + "/memory.usage_in_bytes");
    usage.memory_peak_bytes = ReadNumber(memory + "/memory.max_usage_in_bytes");
    procs_file = memory + "/cgroup.procs";
  } else if (!unified.empty()) {
    usage.memory_bytes = ReadNumber(unified + "/memory.current");
    usage.memory_peak_bytes = ReadNumber(unified + "/memory.peak");  // kernel 5.19 and later
    procs_file = unified + "/cgroup.procs";
  }

  // The cpuacct group counts only this instance when it is the instance's own group, the one
  // its memory group is: a host whose sandboxes are not put into cpuacct leaves them in their
  // parent's, which counts far more.
  const std::string cpuacct = group_dir("cpuacct");
  const auto memory_group = groups.find("memory");
  if (!cpuacct.empty() && memory_group != groups.end() &&
      groups.at("cpuacct") == memory_group->second) {
    if (auto ns = ReadNumber(cpuacct + "/cpuacct.usage")) {
      usage.cpu_seconds = static_cast<double>(*ns) / 1e9;
      usage.cpu_source = "cgroup";
    }
  }
  if (!usage.cpu_seconds && !unified.empty() && procs_file == unified + "/cgroup.procs") {
    if (auto micros = ReadKey(unified + "/cpu.stat", "usage_usec")) {
      usage.cpu_seconds = static_cast<double>(*micros) / 1e6;
      usage.cpu_source = "cgroup";
    }
  }
  if (!usage.cpu_seconds) {
    std::vector<pid_t> pids = procs_file.empty() ? std::vector<pid_t>{} : ReadPids(procs_file);
    if (pids.empty()) pids = ProcessTree(pid);
    uint64_t ticks = 0;
    bool any = false;
    for (pid_t p : pids) {
      if (auto t = ProcessTicks(p)) {
        ticks += *t;
        any = true;
      }
    }
    if (any) {
      usage.cpu_seconds = static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
      usage.cpu_source = "proc";
    }
  }
  return usage;
}

}  // namespace wisp::sandbox
