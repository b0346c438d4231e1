// FunctionService: the functions of this node — create, update (a new version, hot-reloaded),
// delete — kept in memory for the hot path and in the store for restarts. A deploy writes the
// version's code, starts an instance and waits until the handler is loaded; a version that
// fails to load never replaces a good one.
//
// Thread rules: the io thread only. Store calls and file writes go to the worker pool.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "wisp/code/code_store.h"
#include "wisp/common/asio.h"
#include "wisp/common/clock.h"
#include "wisp/common/thread_role.h"
#include "wisp/core/function_spec.h"
#include "wisp/core/go_builder.h"
#include "wisp/core/runtime_catalog.h"
#include "wisp/metrics/event_bus.h"
#include "wisp/metrics/registry.h"
#include "wisp/scheduler/scheduler.h"
#include "wisp/store/store.h"

namespace wisp::core {

// Where runtimes and code live, and the sandbox settings every deployment shares.
struct DeploymentSettings {
  // <data-dir>/functions: code directories per function and version of a wispd before the
  // CodeStore; Load moves what it finds there into the store and removes the directory.
  std::string functions_dir;
  std::string runtimes_dir;  // host directory of the shims (runtimes/)
  // The AWS region functions see (AWS_REGION, AWS_DEFAULT_REGION, their ARN): SDKs inside a
  // function refuse a region that is not in AWS's format.
  std::string region = "us-east-1";
  std::string account_id = "000000000000";  // in the function's ARN (its context's)
  uint64_t tmp_size_bytes = 512ull << 20;
  uint32_t pids_limit = 1024;
  uint32_t max_instances_per_function = 100;
  // The most calls a function may have one instance serve at once (its instance_concurrency).
  uint32_t max_instance_concurrency = 64;
  // See sandbox::SpawnSpec::outbound_private_networks.
  bool outbound_private_networks = false;
};

// A published version: its frozen record and the deployment its calls run on (its own pool,
// `<id>#<n>`, beside $LATEST's), which holds the version's code tree.
struct PublishedVersion {
  store::VersionRecord record;
  // Null when its code could not be prepared (a tree missing on this node).
  std::shared_ptr<const scheduler::Deployment> deployment;
};

// What a qualifier names: the deployment a call runs on and its configuration.
struct ResolvedTarget {
  std::shared_ptr<const scheduler::Deployment> deployment;
  const store::FunctionRecord* config = nullptr;  // valid until the next suspension
};

// A function as the hot path sees it.
struct Function {
  store::FunctionRecord record;  // record.version is the version serving calls
  // The serving deployment; null until a first version has loaded.
  std::shared_ptr<const scheduler::Deployment> deployment;
  int latest_version = 0;  // the newest version created, loaded or not
  // Set while the first version deploys, so early calls wait for it instead of failing.
  std::shared_ptr<Event> first_deploy;
  // Set while a create's deploy or an update runs: updates of one function run one at a time,
  // in the order they arrived, each on top of the last.
  std::shared_ptr<Event> changing;
  // Its series in the metrics registry: what the invoke path counts for it.
  std::shared_ptr<metrics::FunctionMetrics> metrics;
  // The code tree `record.code_tree` names, held so that it is not collected while the function
  // refers to it (the serving deployment holds its own).
  code::TreeHandle code;
  // Marked deleted by Delete: deploys and calls in flight then start nothing more for it.
  std::shared_ptr<scheduler::FunctionLifetime> lifetime =
      std::make_shared<scheduler::FunctionLifetime>();
  std::map<int, PublishedVersion> versions;
  std::map<std::string, store::AliasRecord, std::less<>> aliases;
};

class FunctionService {
 public:
  // `go_builder` compiles program-style Go functions at deploy; `code_store` keeps every
  // version's code (nothing else writes, links or removes it).
  FunctionService(asio::io_context& io, asio::thread_pool& workers, store::Store& store,
                  scheduler::Scheduler& scheduler, metrics::Registry& metrics, const Clock& clock,
                  const RuntimeCatalog& runtimes, GoBuilder& go_builder,
                  code::CodeStore& code_store, DeploymentSettings settings);

  // Reads every function from the store. Called once, before serving. Functions come back
  // ready to start instances on their first call. Code an older wispd kept under functions_dir
  // moves into the code store; trees no function refers to are collected.
  Result<void> Load();

  // Validates, stores and starts deploying a new function; returns it (state deploying)
  // without waiting for the deploy.
  asio::awaitable<Result<store::FunctionRecord>> Create(FunctionFields fields);
  // Applies the changes. Code, handler, runtime, memory, vcpu, env or network changes make a new
  // version; the call returns once it serves (or failed to load, leaving the old one serving
  // and `error` set).
  asio::awaitable<Result<store::FunctionRecord>> Update(std::string id, FunctionFields fields);
  // Kills the function's instances and deletes it with its invocation records and code. (Ids by
  // value: a coroutine keeps its own copy, whatever becomes of the caller's string.)
  asio::awaitable<Result<void>> Delete(std::string id);

  // Freezes $LATEST's configuration and code as the next version (waiting for updates in
  // progress first). A $LATEST identical to the newest version publishes nothing and returns
  // that version, as Lambda does. kFailedPrecondition while no version of $LATEST serves.
  asio::awaitable<Result<store::VersionRecord>> PublishVersion(std::string id,
                                                               std::string description);
  // kConflict while an alias points at it.
  asio::awaitable<Result<void>> DeleteVersion(std::string id, int number);
  // Creates (`create`) or replaces an alias (kConflict if `expected_revision_id` is set and
  // differs from the stored one). Returns the stored alias.
  asio::awaitable<Result<store::AliasRecord>> PutAlias(
      std::string id, store::AliasRecord alias, bool create,
      std::optional<std::string> expected_revision_id);
  asio::awaitable<Result<void>> DeleteAlias(std::string id, std::string name);
  // The deployment a qualifier names: "" or "$LATEST", a version number, or an alias (whose
  // weighted choice takes `uniform`, a number in [0, 1)). kNotFound for an unknown one.
  Result<ResolvedTarget> Resolve(Function& function, std::string_view qualifier, double uniform);

  // Follows the store: every `period`, applies what another wispd on the same store changed
  // (functions created, updated, deleted; versions and aliases), deploying as needed. Reads on
  // the worker pool, never on the invoke path.
  void StartWatching(std::chrono::milliseconds period);
  void StopWatching();

  Function* Find(std::string_view id);
  // The function with this name (names are unique, as ids are), or null.
  Function* FindByName(std::string_view name);
  std::vector<const Function*> List() const;

  // The generic deployments of the prewarm pools: `instances` per runtime name, for the
  // runtimes that can be prewarmed (0 or absent: no pool for that runtime), each growing with
  // demand up to `max_instances` (or its own size, if more).
  std::vector<scheduler::PrewarmPool> PrewarmPools(const std::map<std::string, size_t>& instances,
                                                   size_t max_instances) const;

  const RuntimeCatalog& runtimes() const { return runtimes_; }

  // How many instances of the function may run at once: its max_concurrency within the node's
  // limit per function.
  uint32_t ConcurrencyLimit(const Function& function) const;
  // The limits ValidateCombination checks for `record` on this node.
  Limits LimitsOf(const store::FunctionRecord& record) const;

  // Records that a call started now (kept in memory; stored with the next change or at exit).
  void MarkInvoked(Function& function);

  // Creations, deploys (deploying, ready, error) and deletions go to `events` (null: nowhere).
  void SetEventBus(metrics::EventBus* events) { events_ = events; }
  // Writes last_invoked_at of every function. Blocking: for shutdown.
  void PersistActivity();

 private:
  // Deploys `candidate` as `version`. `package`: the tree a zip in the request became (null:
  // the code comes from the record). `store_result`: write the outcome to the store, compared
  // against candidate.revision (false when following another node's write). The error is the
  // store's (kConflict: someone else changed the function meanwhile).
  asio::awaitable<Result<void>> Deploy(std::string id, int version, store::FunctionRecord candidate,
                                       code::TreeHandle package, bool store_result);
  // A create's deploy, then the function is free for updates.
  asio::awaitable<void> DeployCreated(std::string id, store::FunctionRecord record,
                                      code::TreeHandle package, std::shared_ptr<Event> creating,
                                      bool store_result);
  // A published version's deployment (its own pool), on the tree of its code. Blocking part
  // (the tree) is the caller's.
  Result<std::shared_ptr<const scheduler::Deployment>> BuildVersionDeployment(
      const Function& function, const store::VersionRecord& version, code::TreeHandle tree) const;
  // The version's tree, as RecoverTree makes a record's. Blocking.
  Result<code::TreeHandle> VersionTree(const store::VersionRecord& version);
  // Takes the stored versions and aliases as the function's (publishing deployments of new
  // versions, retiring removed ones).
  void AdoptVersions(Function& function, std::vector<store::VersionRecord> versions,
                     std::vector<std::pair<int, Result<code::TreeHandle>>> trees,
                     std::vector<store::AliasRecord> aliases);
  // The function's local state ends (a delete here or by another node): no store write.
  void DropLocal(const std::string& id);
  asio::awaitable<void> Watch();
  asio::awaitable<void> FollowChanges();
  // Applies the store's state of one function that another node changed; false when it has to
  // wait (a change of this node's is in flight).
  asio::awaitable<bool> Follow(std::string id);
  Result<std::shared_ptr<const scheduler::Deployment>> BuildDeployment(
      const store::FunctionRecord& record, int version,
      std::shared_ptr<scheduler::FunctionLifetime> lifetime, code::TreeHandle tree) const;
  // The version's code as a tree: the record's package tree, or its one file put in the store,
  // or (compiled runtimes) the source with GoBuilder's binary beside it. Sets the record's
  // code_tree, code_sha256 and code_size.
  asio::awaitable<Result<code::TreeHandle>> PrepareTree(const std::string& id, int version,
                                                        store::FunctionRecord& candidate);
  // Unpacks a zip from a request into a tree (the worker pool), or a clear kInvalidArgument.
  // A Node package whose handler module is TypeScript (a .ts, .mts or .cts file and no
  // JavaScript of that name): the tree again with tsc's output beside the sources. Any other
  // tree as it is.
  asio::awaitable<Result<code::TreeHandle>> CompileTypeScript(const std::string& id, int version,
                                                              const store::FunctionRecord& record,
                                                              code::TreeHandle tree);
  asio::awaitable<Result<code::TreeHandle>> UnpackPackage(std::shared_ptr<const std::string> zip,
                                                          store::FunctionRecord& record);
  // The tree of a stored record at Load: from the store, or moved from an older wispd's version
  // directory, or made from the record's one file. Blocking.
  Result<code::TreeHandle> RecoverTree(store::FunctionRecord& record);
  // Removes trees nothing holds any more (in the background, on the worker pool).
  void CollectCode();
  static void ScheduleCollection(asio::thread_pool& workers, code::CodeStore& store);
  // The file the record's code is written to: its handler module's file, or the program's.
  Result<std::string> CodeFileName(const store::FunctionRecord& record) const;
  // Where an older wispd kept a version's code (read once, by Load, to move it into the store).
  std::string LegacyVersionDir(const std::string& id, int version) const;
  // The record's runtime; kFailedPrecondition if the catalog no longer has it (a record stored
  // by a wispd that knew more runtimes).
  Result<const RuntimeEntry*> RuntimeOf(const store::FunctionRecord& record) const;
  // Applies the present fields to the record (runtime aliases become the catalog's name).
  void Apply(const FunctionFields& fields, store::FunctionRecord& record) const;
  // The sandbox settings a runtime gets whatever the function.
  sandbox::SpawnSpec BaseSpawnSpec(const RuntimeEntry& runtime, int memory_mb, double vcpu) const;

  asio::io_context& io_;
  asio::thread_pool& workers_;
  // Function records are written in the order they change: a deploy's final write can never
  // land after the delete that followed it.
  asio::strand<asio::thread_pool::executor_type> record_writes_;
  store::Store& store_;
  scheduler::Scheduler& scheduler_;
  metrics::Registry& metrics_;
  metrics::EventBus* events_ = nullptr;
  // Tells `events_` of a function's change of state (`type`: "function.ready", ...).
  void Announce(const char* type, const store::FunctionRecord& record, int version,
                std::string detail);
  const Clock& clock_;
  const RuntimeCatalog& runtimes_;
  GoBuilder& go_builder_;
  code::CodeStore& code_store_;
  const DeploymentSettings settings_;
  std::map<std::string, std::unique_ptr<Function>, std::less<>> functions_;
  // Functions this node deleted (ids are never reused): the watch never recreates them from a
  // store read that raced with the delete.
  std::set<std::string> deleted_here_;
  // The store's revision this node has applied up to (its own writes and others').
  int64_t followed_revision_ = 0;
  std::optional<asio::steady_timer> watch_timer_;
  std::chrono::milliseconds watch_period_{1000};
  bool watching_ = false;
  ThreadRole io_thread_;
};

}  // namespace wisp::core
