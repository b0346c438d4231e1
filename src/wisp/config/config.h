// Config: every setting of wispd, from defaults, then a TOML file, then WISP_* environment
// variables, then command-line flags (each later source wins).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wisp/common/result.h"

namespace wisp {

// A key written in the config file ([[auth.keys]]); checked by wispd (auth::CheckKey).
struct ConfigApiKey {
  std::string id;
  std::string secret;
  std::string description;
};

struct Config {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 18080;
  std::string data_dir = "data";
  // The SQLite file of functions, versions, aliases and invocation records; empty:
  // <data_dir>/wisp.db. wispd processes with data dirs of their own may share one: each
  // follows the others' changes of functions (the store decides names and update order).
  std::string store_file;
  bool log_json = false;
  std::string log_level = "info";

  // Interpreters as seen inside a sandbox (the sandbox mounts the host's /usr read-only).
  std::string node_path = "/usr/bin/node";
  std::string python_path = "/usr/bin/python3";
  std::string go_path = "/usr/bin/go";  // the toolchain that compiles Go functions at deploy
  // Where the shims live on the host; empty means <directory of wispd>/../runtimes.
  std::string runtimes_dir;

  // Sandboxes.
  // What runs them (sandbox::BackendNames()): "process", the process jail, is the only one yet.
  std::string sandbox_backend = "process";
  // Each sandbox is created by, and its root is, a host uid/gid of its own from this range,
  // which must belong to nobody on the host (sandbox::LauncherOptions::sandbox_id_base).
  uint32_t sandbox_id_base = 0x70000000;
  uint32_t sandbox_id_count = 65536;
  uint64_t sandbox_tmp_mb = 512;
  uint32_t sandbox_pids_limit = 1024;
  bool enforce_limits = true;        // refuse to start when cgroup limits cannot be applied
  double init_timeout_seconds = 10;  // spawn until the runtime's first /next
  // Functions with outbound network may also reach private, link-local (cloud metadata) and
  // other non-public addresses: the LAN, the host's internal services. Off, they get EACCES.
  bool outbound_private_networks = false;
  // The AWS region functions are told they run in (AWS_REGION, AWS_DEFAULT_REGION, ARNs), in
  // AWS's format ("us-east-1"): SDKs used inside functions refuse anything else.
  std::string region = "us-east-1";
  // The account id in the ARNs Wisp shows (arn:aws:lambda:<region>:<account>:function:<name>):
  // 12 digits, as tools that parse ARNs expect.
  std::string account_id = "000000000000";
  // Projects served by host name: a request for {project}.<project_domain> goes to that
  // project's routes (besides /p/{project}/...). Empty: by path only.
  std::string project_domain;

  // Scheduling.
  uint32_t max_instances_per_function = 100;
  // The most calls one instance may serve at once: the cap on a function's instance_concurrency.
  uint32_t max_instance_concurrency = 64;
  uint32_t max_instances_total = 2000;  // instances alive at once on this node
  uint32_t memory_budget_percent = 80;  // of RAM that instances' memory limits may add up to
  uint32_t max_queued_calls_per_function = 1000;
  // Generic instances kept ready per runtime, specialised on a cold start (0: no pool).
  uint32_t prewarm_node_instances = 1;
  uint32_t prewarm_python_instances = 1;
  // A runtime's pool (when it has one) grows with the cold starts of the last
  // prewarm_demand_window_seconds, up to this many generic instances; it shrinks back to its
  // configured size when they stop.
  uint32_t prewarm_max_instances = 20;
  double prewarm_demand_window_seconds = 60;
  // After a start wispd reports itself ready (GET /health/ready) once its prewarm pools hold
  // what they began to fill for the functions it serves, or after this long at most.
  double warm_up_timeout_seconds = 10;
  double idle_instance_keepalive_seconds = 600;
  double queue_wait_seconds = 10;  // how long a call may wait for a busy function's instance
  // How long a deploy may wait for room when the node is at its instance or memory cap.
  double deploy_queue_wait_seconds = 60;

  // Limits of the public API.
  uint64_t max_request_bytes = 6ull << 20;   // sync invoke payload, as Lambda
  uint64_t max_response_bytes = 6ull << 20;  // sync invoke response, as Lambda
  uint64_t max_log_bytes_per_invocation = 256ull << 10;
  double shutdown_grace_seconds = 10;
  // The public port against slow and greedy clients: once a request has begun, its header and
  // then its body must arrive within these; connections open at once per client address
  // (0: no cap). Idle keep-alive connections have no deadline.
  double http_header_timeout_seconds = 20;
  double http_body_timeout_seconds = 60;
  uint32_t http_max_connections_per_client = 1024;

  // Go builds, each in a sandbox of its own (core/go_builder.h), at most this many at once.
  // Every build runs as this host uid and gid of the same number, which owns the Go cache: an
  // id no host account uses, outside the functions' range (just below it by default).
  uint32_t go_build_uid = 0x70000000 - 1;
  uint32_t go_build_concurrency = 1;
  uint64_t go_build_memory_mb = 1024;
  uint32_t go_build_pids_limit = 512;
  double go_build_vcpu = 1;
  double go_build_timeout_seconds = 300;

  // Deployment packages (zip), as Lambda's limits: zipped size, bytes written when unpacked
  // (counted as written: a zip bomb stops there), and entries.
  uint64_t code_max_zip_mb = 50;
  uint64_t code_max_unzipped_mb = 250;
  uint64_t code_max_zip_entries = 20000;

  // How long a claim of an async invocation holds it unless renewed (wispd renews every third
  // of it): how soon the work of a dead or hung node runs again. > 0.
  double async_lease_seconds = 30;

  // Schedules (README "Schedules"): a slot missed while no wispd ran fires once at start if it
  // is at most this old; older missed slots are skipped.
  double schedule_catch_up_seconds = 3600;
  // Tests only: the schedules' clock starts at this Unix time (seconds) and moves only when
  // POST /v1/test/schedule-clock says so; the route exists only then. 0: the system clock.
  uint64_t schedule_test_clock_start = 0;

  // Invocation records (event, response, logs) kept per function, the newest; older ones are
  // deleted as new ones are written (store::InvocationWriter). 0 keeps none.
  uint32_t invocation_records_per_function = 10000;
  // Node-wide bytes of wisp.db's pages in use (records, plus function definitions, which are
  // never evicted); over it, the oldest records of any function are deleted. 0: no budget.
  uint64_t invocation_records_max_bytes = 1ull << 30;
  // Bytes of a call's event, response and logs (each) that its record keeps; a larger one is
  // stored cut, with its size. The sync reply always carries the whole response. 0: no cap.
  uint64_t invocation_record_field_max_bytes = 64ull << 10;

  // Authentication (README "Authentication"). Off by default, allowed only on a loopback
  // listener: wispd refuses any other listen address unless auth is required.
  bool auth_required = false;
  std::vector<ConfigApiKey> auth_keys;  // [[auth.keys]], added to the keys in the store
  std::string auth_keys_file;           // the config file they came from, if any
};

// True for an address only this machine reaches: 127.0.0.0/8, ::1, "localhost".
bool IsLoopbackHost(const std::string& host);

// `wispd keys create|list|revoke`: manage the API keys of the data dir, then exit.
struct KeysCommand {
  std::string action;       // "create", "list" or "revoke"
  std::string description;  // create
  std::string id;           // revoke
};

// Parses argv (and the file and environment it points to). Returns the config, or an error
// that says which setting is wrong. `--help` output goes to stdout and sets `exit_now`.
struct ParsedConfig {
  Config config;
  std::optional<KeysCommand> keys_command;
  bool exit_now = false;
  int exit_code = 0;
};
Result<ParsedConfig> ParseConfig(int argc, char** argv);

// Reads a TOML file over `config`.
Result<void> ApplyConfigFile(const std::string& path, Config& config);

// Reads WISP_* environment variables over `config`; `getenv` is injected for tests.
Result<void> ApplyEnvironment(Config& config, const char* (*getenv_fn)(const char*));

Result<void> ParseListenAddress(const std::string& address, Config& config);

// True for a name in AWS's region format ("us-east-1", "us-gov-west-1").
bool IsAwsRegion(std::string_view name);

}  // namespace wisp
