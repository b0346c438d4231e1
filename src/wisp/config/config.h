// Config: every setting of wispd, from defaults, then a TOML file, then WISP_* environment
// variables, then command-line flags (each later source wins).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "wisp/common/result.h"

namespace wisp {

struct Config {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 18080;
  std::string data_dir = "data";
  bool log_json = false;
  std::string log_level = "info";

  // Interpreters as seen inside a sandbox (the sandbox mounts the host's /usr read-only).
  std::string node_path = "/usr/bin/node";
  std::string python_path = "/usr/bin/python3";
  // Where the shims live on the host; empty means <directory of wispd>/../runtimes.
  std::string runtimes_dir;

  // Sandboxes.
  uint32_t sandbox_uid = 65534;  // "nobody": root inside a sandbox must not be root outside
  uint32_t sandbox_gid = 65534;
  uint64_t sandbox_tmp_mb = 512;
  uint32_t sandbox_pids_limit = 1024;
  bool enforce_limits = true;        // refuse to start when cgroup limits cannot be applied
  double init_timeout_seconds = 10;  // spawn until the runtime's first /next
  // Functions with outbound network may also reach private, link-local (cloud metadata) and
  // other non-public addresses: the LAN, the host's internal services. Off, they get EACCES.
  bool outbound_private_networks = false;

  // Scheduling.
  uint32_t max_instances_per_function = 100;
  uint32_t max_instances_total = 2000;  // instances alive at once on this node
  uint32_t memory_budget_percent = 80;  // of RAM that instances' memory limits may add up to
  uint32_t max_queued_calls_per_function = 1000;
  // Generic instances kept ready per runtime, specialised on a cold start (0: no pool).
  uint32_t prewarm_node_instances = 1;
  uint32_t prewarm_python_instances = 1;
  double idle_instance_keepalive_seconds = 600;
  double queue_wait_seconds = 10;  // how long a call may wait for a busy function's instance
  // How long a deploy may wait for room when the node is at its instance or memory cap.
  double deploy_queue_wait_seconds = 60;

  // Limits of the public API.
  uint64_t max_request_bytes = 6ull << 20;   // sync invoke payload, as Lambda
  uint64_t max_response_bytes = 6ull << 20;  // sync invoke response, as Lambda
  uint64_t max_log_bytes_per_invocation = 256ull << 10;
  double shutdown_grace_seconds = 10;
  // How long a claim of an async invocation holds it unless renewed (wispd renews every third
  // of it): how soon the work of a dead or hung node runs again. > 0.
  double async_lease_seconds = 30;

  // Invocation records (event, response, logs) kept per function, the newest; older ones are
  // deleted as new ones are written (store::InvocationWriter). 0 keeps none.
  uint32_t invocation_records_per_function = 10000;
};

// Parses argv (and the file and environment it points to). Returns the config, or an error
// that says which setting is wrong. `--help` output goes to stdout and sets `exit_now`.
struct ParsedConfig {
  Config config;
  bool exit_now = false;
  int exit_code = 0;
};
Result<ParsedConfig> ParseConfig(int argc, char** argv);

// Reads a TOML file over `config`.
Result<void> ApplyConfigFile(const std::string& path, Config& config);

// Reads WISP_* environment variables over `config`; `getenv` is injected for tests.
Result<void> ApplyEnvironment(Config& config, const char* (*getenv_fn)(const char*));

Result<void> ParseListenAddress(const std::string& address, Config& config);

}  // namespace wisp
