// wispd: builds every part of the daemon and wires them together. No part reaches for another
// through a global: each gets what it needs through its constructor.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>

#include <spdlog/spdlog.h>

#include "wisp/api/auth_gate.h"
#include "wisp/api/console_assets.h"
#include "wisp/api/http_server.h"
#include "wisp/api/key_routes.h"
#include "wisp/api/routes.h"
#include "wisp/api/schedule_routes.h"
#include "wisp/auth/api_keys.h"
#include "wisp/auth/key_command.h"
#include "wisp/code/code_store.h"
#include "wisp/common/asio.h"
#include "wisp/common/clock.h"
#include "wisp/common/logging.h"
#include "wisp/common/task_tracker.h"
#include "wisp/config/config.h"
#include "wisp/core/async_dispatcher.h"
#include "wisp/core/function_service.h"
#include "wisp/core/go_builder.h"
#include "wisp/core/invoker.h"
#include "wisp/core/runtime_catalog.h"
#include "wisp/queue/embedded_queue.h"
#include "wisp/runtime_api/endpoint.h"
#include "wisp/sandbox/backend_factory.h"
#include "wisp/sandbox/launcher.h"
#include "wisp/sandbox/process_jail.h"
#include "wisp/schedule/schedule_runner.h"
#include "wisp/scheduler/scheduler.h"
#include "wisp/store/invocation_writer.h"
#include "wisp/store/sqlite_store.h"

namespace fs = std::filesystem;

namespace {

// Blocking work (SQLite, code files) runs here, off the io thread.
constexpr int kWorkerThreads = 2;

std::chrono::milliseconds Millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

// The shims ship next to the binary: <prefix>/bin/wispd and <prefix>/runtimes.
std::string DefaultRuntimesDir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return (exe.parent_path().parent_path() / "runtimes").string();
}

// The fds of an instance serving one call at once: the unit of the scheduler's fd budget (one
// serving K calls at once counts as several, Scheduler::FdSlots).
constexpr size_t kInstanceFdCost = wisp::scheduler::InstanceFdCost(1);

// Raises the soft open-files limit to the hard one (systemd starts services at 1,024), and
// returns how many instances wispd can hold fds for while a quarter of the limit (at least
// 256) stays free for the public API, the store and the rest.
size_t InstancesWithinFdLimit() {
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) != 0) return 0;
  if (nofile.rlim_cur < nofile.rlim_max) {
    const rlim_t before = nofile.rlim_cur;
    nofile.rlim_cur = nofile.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &nofile) != 0) {
      spdlog::warn("cannot raise the open-files limit from {} to {}: {}", before, nofile.rlim_max,
                   strerror(errno));
      getrlimit(RLIMIT_NOFILE, &nofile);
    }
  }
  if (nofile.rlim_cur == RLIM_INFINITY) return 0;
  const size_t limit = static_cast<size_t>(nofile.rlim_cur);
  const size_t reserve = std::max<size_t>(256, limit / 4);
  return limit > reserve ? (limit - reserve) / kInstanceFdCost : 1;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "wispd: %s\n", message.c_str());
  return 1;
}

// The keys of the config file, checked: a weak or malformed key, or one id twice, stops wispd.
wisp::Result<std::vector<wisp::auth::ApiKey>> ConfigKeys(const wisp::Config& config) {
  std::vector<wisp::auth::ApiKey> keys;
  for (const auto& key : config.auth_keys) {
    if (auto checked = wisp::auth::CheckKey(key.id, key.secret); !checked) {
      return wisp::MakeError(
          wisp::ErrorCode::kInvalidArgument,
          fmt::format("[[auth.keys]] in {}: {}", config.auth_keys_file, checked.error().message));
    }
    for (const auto& other : keys) {
      if (other.id == key.id) {
        return wisp::MakeError(wisp::ErrorCode::kInvalidArgument,
                               fmt::format("[[auth.keys]] in {}: key {} is given twice",
                                           config.auth_keys_file, key.id));
      }
    }
    keys.push_back(
        wisp::auth::ApiKey{key.id, key.secret, key.description, 0, wisp::auth::KeySource::kConfig});
  }
  if (!keys.empty()) {
    struct stat st {};
    if (stat(config.auth_keys_file.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      spdlog::warn("{} holds API key secrets and is readable by others (mode {:o}): chmod 600 it",
                   config.auth_keys_file, st.st_mode & 0777);
    }
  }
  return keys;
}

// Creates the data dir owner-only if it is missing (the keys command may run before wispd ever
// did).
wisp::Result<void> MakePrivateDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!ec) fs::permissions(dir, fs::perms::owner_all, ec);
  if (ec) {
    return wisp::MakeError(wisp::ErrorCode::kInternal,
                           fmt::format("cannot create {}: {}", dir.string(), ec.message()));
  }
  return {};
}

// `wispd keys ...`: on the data dir's store, beside a running wispd or without one.
int RunKeys(const wisp::Config& config, const wisp::KeysCommand& command) {
  using namespace wisp;
  auto config_keys = ConfigKeys(config);
  if (!config_keys) return Fail(config_keys.error().message);
  std::error_code ec;
  const fs::path data_dir = fs::absolute(config.data_dir, ec);
  if (auto made = MakePrivateDir(data_dir); !made) return Fail(made.error().message);
  auto opened = store::SqliteStore::Open(config.store_file.empty() ? (data_dir / "wisp.db").string()
                                                                   : config.store_file);
  if (!opened) return Fail(opened.error().message);
  SystemClock clock;
  auth::KeyRegistry registry(**opened, clock, std::move(*config_keys));
  if (auto loaded = registry.Reload(); !loaded) return Fail(loaded.error().message);
  return auth::RunKeyCommand(registry, command.action,
                             command.action == "revoke" ? command.id : command.description, stdout,
                             stderr);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace wisp;
  auto parsed = ParseConfig(argc, argv);
  if (!parsed) return Fail(parsed.error().message);
  if (parsed->exit_now) return parsed->exit_code;
  Config config = parsed->config;
  if (parsed->keys_command) return RunKeys(config, *parsed->keys_command);
  // Before anything starts: a wispd that others can reach runs only with authentication.
  if (!config.auth_required && !IsLoopbackHost(config.listen_host)) {
    return Fail(fmt::format(
        "refusing to listen on {}: anyone who reaches it could deploy and run code. Turn "
        "authentication on ([auth] required = true in the config file, WISP_AUTH_REQUIRED=1 or "
        "--auth-required) and create a key with `wispd keys create`; or listen on 127.0.0.1",
        config.listen_host));
  }
  auto config_keys = ConfigKeys(config);
  if (!config_keys) return Fail(config_keys.error().message);
  if (config.http_header_timeout_seconds <= 0 || config.http_body_timeout_seconds <= 0) {
    return Fail(
        "http_header_timeout_seconds and http_body_timeout_seconds must be more than 0 (a "
        "request that has begun gets that long to arrive)");
  }
  SetUpLogging(config.log_json, config.log_level);
  signal(SIGPIPE, SIG_IGN);

  std::error_code ec;
  const fs::path data_dir = fs::absolute(config.data_dir, ec);
  const fs::path sandbox_root = data_dir / "sandbox" / "root";
  const fs::path functions_dir = data_dir / "functions";
  const fs::path prewarm_dir = data_dir / "prewarm";
  // Prewarmed instances' code directories were kept here before they moved to the launcher's
  // stage: whatever a previous run left is stale.
  fs::remove_all(prewarm_dir, ec);
  for (const auto& dir : {data_dir, sandbox_root}) {
    fs::create_directories(dir, ec);
    if (ec) return Fail(fmt::format("cannot create {}: {}", dir.string(), ec.message()));
  }
  // Owner-only (also a directory an older wispd left 0755): it holds every function's code,
  // environment and payloads. The launcher opens code directories while still the host's root,
  // so sandboxes need no way through it. A shared directory such as /tmp is refused, not
  // narrowed for everyone.
  if (auto status = fs::status(data_dir, ec);
      !ec && (status.permissions() & fs::perms::sticky_bit) != fs::perms::none) {
    return Fail(fmt::format("data dir {} is a shared (sticky) directory: give wispd one of its own",
                            data_dir.string()));
  }
  fs::permissions(data_dir, fs::perms::owner_all, ec);
  if (ec) return Fail(fmt::format("cannot make {} private: {}", data_dir.string(), ec.message()));
  const std::string runtimes_dir = config.runtimes_dir.empty()
                                       ? DefaultRuntimesDir()
                                       : fs::absolute(config.runtimes_dir).string();
  if (!fs::exists(fs::path(runtimes_dir) / "node" / "bootstrap.js")) {
    return Fail(fmt::format("runtime shims not found in {} (set runtimes_dir)", runtimes_dir));
  }

  // When the host runs out of memory, its OOM killer must pick a sandbox (they run at 1000),
  // never wispd or the launcher, which inherits this.
  // Lowering it takes CAP_SYS_RESOURCE, which root may lack (a container, a user namespace):
  // the write then fails (stdio reports it at the flush), and wispd is as likely an OOM victim
  // as any process.
  FILE* adj = std::fopen("/proc/self/oom_score_adj", "w");
  const bool adj_written = adj != nullptr && std::fputs("-500", adj) >= 0 && std::fflush(adj) == 0;
  const int adj_errno = errno;
  if (adj) std::fclose(adj);
  if (!adj_written) {
    spdlog::warn(
        "cannot set wispd's oom_score_adj to -500 ({}): on host memory pressure the OOM killer "
        "may pick wispd or the launcher instead of a sandbox",
        strerror(adj_errno));
  }

  // Before the launcher is forked, so that it has the raised limit too.
  const size_t instances_within_fds = InstancesWithinFdLimit();

  // The backend (for the process jail: its launcher) starts first, while this process has a
  // single thread.
  asio::io_context io(1);
  sandbox::BackendOptions backend_options;
  backend_options.name = config.sandbox_backend;
  sandbox::LauncherOptions& launcher_options = backend_options.launcher;
  launcher_options.sandbox_root_dir = sandbox_root.string();
  launcher_options.cgroup_group = fmt::format("wisp/{}", getpid());
  launcher_options.sandbox_id_base = config.sandbox_id_base;
  launcher_options.sandbox_id_count = config.sandbox_id_count;
  launcher_options.enforce_limits = config.enforce_limits;
  auto made_backend = sandbox::MakeBackend(io, backend_options);
  if (!made_backend) {
    return Fail(made_backend.error().message +
                (config.enforce_limits
                     ? "\n  (to run without resource limits, unsafe: --no-enforce-limits)"
                     : ""));
  }
  std::unique_ptr<sandbox::Backend> backend = std::move(*made_backend);
  // Go builds run in sandboxes of a launcher of their own, forked now for the same reason, with
  // their own uid and cgroup tree: they never share the functions' instances or exit reports.
  // They need the process jail (writable binds, one uid for the shared cache) whatever runs
  // the functions.
  sandbox::LauncherOptions build_launcher_options = launcher_options;
  build_launcher_options.cgroup_group = fmt::format("wisp-build/{}", getpid());
  build_launcher_options.sandbox_id_base = config.go_build_uid;
  build_launcher_options.sandbox_id_count = 1;
  build_launcher_options.one_id_for_all = true;
  auto build_launcher = sandbox::Launcher::Fork(build_launcher_options);
  if (!build_launcher) {
    return Fail(
        fmt::format("cannot start the Go build launcher: {}", build_launcher.error().message));
  }
  const std::string resource_limits = backend->ResourceLimits();
  if (!config.enforce_limits && resource_limits == "none") {
    spdlog::warn("sandbox resource limits are NOT enforced: no usable cgroups");
  }

  // Every version's code; before the worker pool, whose last jobs may still collect trees.
  auto opened_code = code::CodeStore::Open(
      (data_dir / "code").string(),
      code::CodeLimits{.max_zip_bytes = config.code_max_zip_mb << 20,
                       .max_unzipped_bytes = config.code_max_unzipped_mb << 20,
                       .max_entries = config.code_max_zip_entries});
  if (!opened_code) return Fail(opened_code.error().message);
  std::unique_ptr<code::CodeStore> code_store = std::move(*opened_code);
  asio::thread_pool workers(kWorkerThreads);
  auto opened = store::SqliteStore::Open(config.store_file.empty() ? (data_dir / "wisp.db").string()
                                                                   : config.store_file);
  if (!opened) return Fail(opened.error().message);
  std::unique_ptr<store::SqliteStore> store = std::move(*opened);
  // The async queue has a file of its own: its commits are fsync'd (group commit), the
  // store's are not.
  auto opened_queue = queue::EmbeddedQueue::Open((data_dir / "queue.db").string(),
                                                 ToEpochMillis(std::chrono::system_clock::now()));
  if (!opened_queue) return Fail(opened_queue.error().message);
  std::unique_ptr<queue::EmbeddedQueue> async_queue = std::move(*opened_queue);
  store::InvocationWriter writer(
      *store, store::RecordLimits{.records_per_function = config.invocation_records_per_function,
                                  .max_total_bytes = config.invocation_records_max_bytes,
                                  .max_field_bytes = config.invocation_record_field_max_bytes});
  SystemClock clock;
  // API keys: the store's and the config file's. Read even when auth is off, so that /v1/keys
  // can prepare keys before auth is turned on.
  auth::KeyRegistry keys(*store, clock, std::move(*config_keys));
  if (auto loaded = keys.Reload(); !loaded) return Fail(loaded.error().message);

  scheduler::SchedulerOptions scheduler_options;
  scheduler_options.init_timeout = Millis(config.init_timeout_seconds);
  scheduler_options.queue_wait = Millis(config.queue_wait_seconds);
  scheduler_options.deploy_queue_wait = Millis(config.deploy_queue_wait_seconds);
  scheduler_options.idle_keepalive = Millis(config.idle_instance_keepalive_seconds);
  scheduler_options.prewarm_demand_window = Millis(config.prewarm_demand_window_seconds);
  scheduler_options.warm_up_timeout = Millis(config.warm_up_timeout_seconds);
  scheduler_options.max_response_bytes = config.max_response_bytes;
  scheduler_options.max_log_bytes_per_invocation = config.max_log_bytes_per_invocation;
  scheduler_options.max_instances_total = config.max_instances_total;
  scheduler_options.max_queued_calls_per_function = config.max_queued_calls_per_function;
  scheduler_options.max_instances_by_fds = instances_within_fds;
  if (instances_within_fds > 0 && instances_within_fds < config.max_instances_total) {
    spdlog::warn(
        "the open-files limit allows {} instances, fewer than max_instances_total ({}); raise "
        "it (LimitNOFILE=, ulimit -n) to run more",
        instances_within_fds, config.max_instances_total);
  }
  scheduler_options.memory_budget_bytes = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) *
                                          static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) / 100 *
                                          config.memory_budget_percent;
  scheduler::Scheduler scheduler(io, *backend, clock, scheduler_options);

  core::DeploymentSettings settings;
  settings.functions_dir = functions_dir.string();
  settings.runtimes_dir = runtimes_dir;
  settings.region = config.region;
  settings.account_id = config.account_id;
  settings.tmp_size_bytes = config.sandbox_tmp_mb << 20;
  settings.pids_limit = config.sandbox_pids_limit;
  settings.max_instances_per_function = config.max_instances_per_function;
  settings.max_instance_concurrency =
      std::clamp<uint32_t>(config.max_instance_concurrency, 1, core::kMaxInstanceConcurrency);
  settings.outbound_private_networks = config.outbound_private_networks;
  if (config.outbound_private_networks) {
    spdlog::warn(
        "outbound_private_networks: functions with outbound network can reach private, "
        "link-local and cloud metadata addresses");
  }
  core::GoBuildSettings go_build;
  go_build.go_binary = config.go_path;
  go_build.build_dir = (data_dir / "build").string();
  go_build.uid = config.go_build_uid;
  go_build.gid = config.go_build_uid;
  go_build.concurrency = config.go_build_concurrency;
  go_build.memory_limit_bytes = config.go_build_memory_mb << 20;
  go_build.pids_limit = config.go_build_pids_limit;
  go_build.vcpu = config.go_build_vcpu;
  go_build.timeout = std::chrono::seconds(static_cast<int64_t>(config.go_build_timeout_seconds));
  // Where Go's cache was before builds were sandboxed (writable by the sandbox uid): not trusted.
  fs::remove_all(data_dir / "go", ec);
  if (auto prepared = core::PrepareBuildDir(go_build); !prepared) {
    return Fail(prepared.error().message);
  }
  core::GoBuilder go_builder(
      io, std::make_unique<sandbox::ProcessJail>(io, std::move(*build_launcher)), go_build);
  core::RuntimeCatalog runtimes(core::StandardRuntimes(
      core::InterpreterPaths{config.node_path, config.python_path, config.go_path}));
  // Which interpreter versions actually run, for the functions' runtime_version; off the start
  // path (the interpreters take tens of milliseconds to answer).
  asio::post(workers, [&runtimes] { runtimes.ProbeVersions(std::chrono::seconds(10)); });
  metrics::Registry metrics;
  // State changes for /v1/events/ws; whoever changes a function's or an instance's state
  // publishes here.
  metrics::EventBus events(clock);
  scheduler.SetEventBus(&events);
  core::FunctionService functions(io, workers, *store, scheduler, metrics, clock, runtimes,
                                  go_builder, *code_store, settings);
  if (auto loaded = functions.Load(); !loaded) return Fail(loaded.error().message);
  // Another wispd on the same store (a cluster, or a tool) may change functions: follow it.
  functions.StartWatching(std::chrono::seconds(1));
  scheduler.ConfigurePrewarm(functions.PrewarmPools(
      {{"node", config.prewarm_node_instances}, {"python", config.prewarm_python_instances}},
      config.prewarm_max_instances));
  functions.SetEventBus(&events);
  core::Invoker invoker(functions, scheduler, writer, metrics, clock);
  core::LogFeed log_feed;  // calls' records for the logs that follow
  invoker.SetLogFeed(&log_feed);
  core::AsyncOptions async_options;
  if (config.async_lease_seconds <= 0) return Fail("async_lease_seconds must be more than 0");
  async_options.lease = std::max(Millis(config.async_lease_seconds), std::chrono::milliseconds(1));
  // What a graceful stop waits for: requests being handled and async attempts running.
  TaskTracker tasks;
  core::AsyncDispatcher dispatcher(io, workers, *async_queue, functions, invoker, clock, tasks,
                                   async_options);

  api::Router router;
  api::AddFunctionRoutes(router, functions, scheduler, *store, writer, workers, log_feed);
  api::AddInvokeRoutes(router, invoker, &dispatcher);
  api::AddVersionRoutes(router, functions);
  api::AddInvocationRoutes(router, dispatcher, *async_queue, *store, writer, workers);
  api::AddProgramApiRoutes(router, functions, dispatcher, *async_queue, workers);
  api::AddLambdaApiRoutes(router, functions, invoker, dispatcher, scheduler, workers, *code_store,
                          api::LambdaAccount{config.region, config.account_id});
  api::AddFunctionUrlRoutes(router, functions, invoker,
                            api::LambdaAccount{config.region, config.account_id});
  api::AddProjectRoutes(router, functions, invoker,
                        api::LambdaAccount{config.region, config.account_id},
                        config.project_domain);
  // Schedules' own clock: the test knob replaces it with one that moves only on request.
  std::optional<schedule::SteppedClock> schedule_test_clock;
  if (config.schedule_test_clock_start > 0) {
    schedule_test_clock.emplace(std::chrono::system_clock::time_point(
        std::chrono::seconds(config.schedule_test_clock_start)));
    spdlog::warn(
        "schedule_test_clock_start is set: schedules run on a test clock that stands still "
        "until POST /v1/test/schedule-clock moves it (for tests only)");
  }
  schedule::RunnerOptions schedule_options;
  schedule_options.catch_up_window = Millis(config.schedule_catch_up_seconds);
  schedule_options.region = config.region;
  schedule_options.account_id = config.account_id;
  schedule::ScheduleRunner schedules(
      io, workers, *store, functions, dispatcher,
      schedule_test_clock ? static_cast<const Clock&>(*schedule_test_clock) : clock,
      schedule_options);
  api::AddScheduleRoutes(router, functions, schedules,
                         schedule_test_clock ? &*schedule_test_clock : nullptr);
  api::AddKeyRoutes(router, keys, workers);
  api::AddConsoleRoutes(router);
  // Off (no gate at all, nothing on the request path) unless auth is required.
  std::optional<api::AuthGate> auth_gate;
  if (config.auth_required) {
    auth_gate.emplace(io, workers, keys, clock, api::AuthGateOptions{config.region});
    auth_gate->Start();
    auth_gate->SetPublicRequests([&functions, &config](const api::HttpRequest& request) {
      return api::IsPublicFunctionUrl(functions, request) ||
             api::IsPublicProjectRoute(functions, request, config.project_domain);
    });
    router.SetGate(&*auth_gate);
    if (keys.Snapshot()->keys().empty()) {
      spdlog::warn(
          "authentication is required and there is no API key yet: create one with `wispd keys "
          "create --data-dir {}` (it works at once, no restart)",
          data_dir.string());
    }
  }
  const bool limits_enforced = resource_limits != "none";
  api::AddHealthRoutes(
      router, api::HealthInfo{std::chrono::steady_clock::now(), &metrics, &functions, &scheduler,
                              limits_enforced, async_queue.get(), &writer});
  api::AddObserveRoutes(router, api::ObserveInfo{&metrics, &functions, &scheduler, &events,
                                                 &workers, &clock, async_queue.get()});
  api::HttpServerLimits http_limits;
  http_limits.max_body_bytes = config.max_request_bytes;
  http_limits.header_timeout = Millis(config.http_header_timeout_seconds);
  http_limits.body_timeout = Millis(config.http_body_timeout_seconds);
  http_limits.max_connections_per_client = config.http_max_connections_per_client;
  api::HttpServer server(io, router, http_limits, tasks);
  if (auto listening = server.Listen(config.listen_host, config.listen_port); !listening) {
    return Fail(listening.error().message);
  }
  server.Start();
  dispatcher.Start();
  schedules.Start();
  spdlog::info("wispd listening on http://{}:{} (data {}, limits: {}, auth {})", config.listen_host,
               server.port(), data_dir.string(), resource_limits,
               config.auth_required ? "required" : "off");

  // Graceful stop: refuse new connections, let calls in flight finish (bounded), then end
  // every sandbox and leave.
  std::optional<asio::signal_set> signals(std::in_place, io, SIGINT, SIGTERM);
  signals->async_wait([&](boost::system::error_code ec, int signal_number) {
    if (ec) return;
    spdlog::info("signal {}: stopping", signal_number);
    server.Stop();
    schedules.Stop();
    dispatcher.Stop();  // no new async attempt; those running finish or go back to the queue
    functions.StopWatching();
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          const auto deadline =
              std::chrono::steady_clock::now() + Millis(config.shutdown_grace_seconds);
          if (!co_await tasks.Drained(deadline)) {
            spdlog::warn("stopping with {} requests and async attempts unfinished after {} s",
                         tasks.active(), config.shutdown_grace_seconds);
          }
          scheduler.Shutdown();
          io.stop();
        },
        asio::detached);
  });

  io.run();
  // A second SIGTERM while the store is flushed must not cut the flush short: from here on
  // stop signals are ignored (destroying the signal_set restores their default action first).
  signals.reset();
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGTERM, SIG_IGN);
  workers.join();
  writer.Flush();
  functions.PersistActivity();
  spdlog::info("wispd stopped");
  return 0;
}
