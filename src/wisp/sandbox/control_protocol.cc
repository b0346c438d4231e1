#include "wisp/sandbox/control_protocol.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <string_view>

#include <fmt/format.h>

namespace wisp::sandbox {

Result<void> SendDatagram(int sock, std::string_view data, std::span<const int> fds,
                          bool nonblocking) {
  if (data.size() > kMaxDatagramBytes || fds.size() > kMaxDatagramFds) {
    return MakeError(ErrorCode::kTooLarge, "control message too large");
  }
  iovec iov{const_cast<char*>(data.data()), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxDatagramFds)];
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  const int flags = MSG_NOSIGNAL | (nonblocking ? MSG_DONTWAIT : 0);
  for (;;) {
    if (::sendmsg(sock, &msg, flags) >= 0) return {};
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return MakeError(ErrorCode::kUnavailable, "control socket full");
    return ErrnoError("sendmsg on control socket");
  }
}

Result<std::optional<Datagram>> ReceiveDatagram(int sock, bool nonblocking) {
  Datagram d;
  d.data.resize(kMaxDatagramBytes);
  iovec iov{d.data.data(), d.data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxDatagramFds)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const int flags = MSG_CMSG_CLOEXEC | (nonblocking ? MSG_DONTWAIT : 0);
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, flags);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) return MakeError(ErrorCode::kUnavailable, "no control message");
    return ErrnoError("recvmsg on control socket");
  }
  // Take ownership of every fd first, so that none leaks whatever happens next.
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      d.fds.emplace_back(fd);
    }
  }
  // A seqpacket EOF is a zero-length read without any attached fds.
  if (n == 0 && d.fds.empty()) return std::optional<Datagram>();
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    return MakeError(ErrorCode::kTooLarge, "control message truncated");
  }
  d.data.resize(static_cast<size_t>(n));
  return std::optional<Datagram>(std::move(d));
}

nlohmann::json SpawnSpecToJson(const SpawnSpec& s) {
  nlohmann::json binds = nlohmann::json::array();
  for (const auto& b : s.writable_binds) {
    binds.push_back({{"host_path", b.host_path}, {"sandbox_path", b.sandbox_path}});
  }
  return {{"instance_id", s.instance_id},
          {"argv", s.argv},
          {"env", s.env},
          {"code_dir", s.code_dir},
          {"prewarmed", s.prewarmed},
          {"runtime_dir", s.runtime_dir},
          {"memory_limit_bytes", s.memory_limit_bytes},
          {"tmp_size_bytes", s.tmp_size_bytes},
          {"pids_limit", s.pids_limit},
          {"vcpu", s.vcpu},
          {"runtime_api_port", s.runtime_api_port},
          {"network_outbound", s.network_outbound},
          {"outbound_private_networks", s.outbound_private_networks},
          {"writable_binds", std::move(binds)}};
}

Result<SpawnSpec> SpawnSpecFromJson(const nlohmann::json& j) {
  SpawnSpec s;
  try {
    j.at("instance_id").get_to(s.instance_id);
    j.at("argv").get_to(s.argv);
    j.at("env").get_to(s.env);
    j.at("code_dir").get_to(s.code_dir);
    j.at("prewarmed").get_to(s.prewarmed);
    j.at("runtime_dir").get_to(s.runtime_dir);
    j.at("memory_limit_bytes").get_to(s.memory_limit_bytes);
    j.at("tmp_size_bytes").get_to(s.tmp_size_bytes);
    j.at("pids_limit").get_to(s.pids_limit);
    j.at("vcpu").get_to(s.vcpu);
    j.at("runtime_api_port").get_to(s.runtime_api_port);
    j.at("network_outbound").get_to(s.network_outbound);
    j.at("outbound_private_networks").get_to(s.outbound_private_networks);
    for (const auto& b : j.at("writable_binds")) {
      s.writable_binds.push_back(
          {b.at("host_path").get<std::string>(), b.at("sandbox_path").get<std::string>()});
    }
  } catch (const nlohmann::json::exception& e) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("bad spawn spec: {}", e.what()));
  }
  if (auto ok = ValidateSpawnSpec(s); !ok) return tl::unexpected(ok.error());
  return s;
}

namespace {

// Where the sandbox mounts something of its own (sandbox_child.cc): a writable bind on, above or
// below one of them would hide it or be hidden.
constexpr std::string_view kSandboxMountPoints[] = {
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64",    "/libx32",
    "/etc", "/dev", "/proc", "/sys", "/tmp",   "/var/task", "/opt/wisp/runtime"};

// True when one path is the other or lies below it ("/a" and "/a/b"; not "/a" and "/ab").
bool Overlap(std::string_view a, std::string_view b) {
  if (a.size() > b.size()) std::swap(a, b);
  return b.substr(0, a.size()) == a && (b.size() == a.size() || b[a.size()] == '/');
}

// Absolute, without empty, "." or ".." components, and not "/" itself.
bool IsPlainAbsolutePath(std::string_view path) {
  if (path.size() < 2 || path[0] != '/' || path.back() == '/') return false;
  for (size_t start = 1; start <= path.size();) {
    const size_t end = std::min(path.find('/', start), path.size());
    const std::string_view part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

}  // namespace

Result<void> ValidateSpawnSpec(const SpawnSpec& s) {
  auto invalid = [](std::string what) {
    return MakeError(ErrorCode::kInvalidArgument, std::move(what));
  };
  if (s.instance_id.empty() || s.instance_id.size() > 64) {
    return invalid("instance_id must have 1 to 64 characters");
  }
  for (char c : s.instance_id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
    if (!ok) return invalid("instance_id may only contain [A-Za-z0-9_-]");
  }
  if (s.argv.empty() || s.argv[0].empty() || s.argv[0][0] != '/') {
    return invalid("argv[0] must be an absolute path inside the sandbox");
  }
  if (s.prewarmed) {
    if (!s.code_dir.empty())
      return invalid("a prewarmed instance gets its code later: no code_dir");
  } else if (s.code_dir.empty() || s.code_dir[0] != '/') {
    return invalid("code_dir must be absolute");
  }
  if (!s.runtime_dir.empty() && s.runtime_dir[0] != '/') {
    return invalid("runtime_dir must be absolute");
  }
  for (const auto& e : s.env) {
    if (e.find('=') == std::string::npos) return invalid("env entries must be KEY=VALUE");
  }
  if (s.runtime_api_port == 0) return invalid("runtime_api_port must not be 0");
  if (s.vcpu < 0) return invalid("vcpu must not be negative");
  for (size_t i = 0; i < s.writable_binds.size(); ++i) {
    const WritableBind& bind = s.writable_binds[i];
    if (!IsPlainAbsolutePath(bind.host_path)) {
      return invalid(fmt::format("writable bind host path '{}' must be a plain absolute path",
                                 bind.host_path));
    }
    if (!IsPlainAbsolutePath(bind.sandbox_path)) {
      return invalid(fmt::format("writable bind sandbox path '{}' must be a plain absolute path",
                                 bind.sandbox_path));
    }
    for (std::string_view taken : kSandboxMountPoints) {
      if (Overlap(bind.sandbox_path, taken)) {
        return invalid(fmt::format("writable bind sandbox path '{}' overlaps the sandbox's {}",
                                   bind.sandbox_path, taken));
      }
    }
    for (size_t j = 0; j < i; ++j) {
      if (Overlap(bind.sandbox_path, s.writable_binds[j].sandbox_path)) {
        return invalid(fmt::format("writable binds '{}' and '{}' overlap", bind.sandbox_path,
                                   s.writable_binds[j].sandbox_path));
      }
    }
  }
  return {};
}

}  // namespace wisp::sandbox
