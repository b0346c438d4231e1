// The control channel between wispd (ProcessJail) and the launcher: one JSON object per
// SOCK_SEQPACKET datagram, file descriptors attached with SCM_RIGHTS.
//
//   wispd -> launcher   {"type":"spawn","spec":{...SpawnSpec}}
//                       {"type":"specialize","instance_id":"...","code_dir":"/..."}
//                       {"type":"kill","instance_id":"..."}
//                       {"type":"kill_all"}
//   launcher -> wispd   {"type":"ready","cgroups":"v1 (memory, pids, cpu)"}  once, at start
//                       {"type":"fatal","error":"..."}                      instead of ready
//                       {"type":"spawned","instance_id":"...","pid":N}  + fds [listener, output,
//                       channel, memory peak (when the cgroup has one)]
//                       {"type":"spawn_failed","instance_id":"...","code":N,"error":"..."}
//                       {"type":"specialized","instance_id":"..."}
//                       {"type":"specialize_failed","instance_id":"...","code":N,"error":"..."}
//                       {"type":"exited","instance_id":"...","exit_code":N,"signal":N,
//                        "oom_killed":bool,"memory_peak_bytes":N|null}
//
// Thread rules: free functions without state; callable from any thread.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "wisp/common/result.h"
#include "wisp/common/unique_fd.h"
#include "wisp/sandbox/backend.h"

namespace wisp::sandbox {

// Big enough for a spec with a few hundred KB of environment; larger specs are refused.
inline constexpr size_t kMaxDatagramBytes = 256 * 1024;
// No message carries more than a spawn reply's listener, output, channel, memory peak and (for
// a prewarmed instance) CPU weight.
inline constexpr size_t kMaxDatagramFds = 5;

struct Datagram {
  std::string data;
  std::vector<UniqueFd> fds;
};

// Sends one datagram. Never raises SIGPIPE. With `nonblocking`, a full socket fails with
// ErrorCode::kUnavailable.
Result<void> SendDatagram(int sock, std::string_view data, std::span<const int> fds = {},
                          bool nonblocking = false);

// Receives one datagram; std::nullopt means the peer closed the channel. With `nonblocking`,
// an empty socket fails with ErrorCode::kUnavailable. Received fds are close-on-exec.
Result<std::optional<Datagram>> ReceiveDatagram(int sock, bool nonblocking = false);

nlohmann::json SpawnSpecToJson(const SpawnSpec& spec);
// Parses and validates (see ValidateSpawnSpec).
Result<SpawnSpec> SpawnSpecFromJson(const nlohmann::json& j);

// The checks both sides make before a spec reaches clone(): the instance id becomes a cgroup
// path component, so it must be a plain name; paths must be absolute.
Result<void> ValidateSpawnSpec(const SpawnSpec& spec);

}  // namespace wisp::sandbox
