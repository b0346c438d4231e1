#include "wisp/core/function_service.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include <spdlog/spdlog.h>

#include "wisp/common/ids.h"
#include "wisp/core/alias_routing.h"
#include "wisp/core/projects.h"

namespace wisp::core {
namespace fs = std::filesystem;
namespace {

constexpr const char* kRuntimeMount = "/opt/wisp/runtime";  // where SpawnSpec::runtime_dir appears

// A custom runtime's bootstrap is an executable with its mode bits: only a zip carries those.
Result<void> CheckPackageForm(const RuntimeEntry& runtime, bool zip_package) {
  if (!runtime.custom() || zip_package) return {};
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("runtime {} runs the package's own executable {}: send a zip "
                               "holding it (the zip field), not code",
                               runtime.name, runtime.bootstrap));
}

// Fields whose change needs new instances; the timeout is read per call and needs none.
// The handler's module is TypeScript: a .ts, .mts or .cts file, and no JavaScript of its name.
// (Not inside a coroutine: g++ 12 mishandles initializer lists there.)
bool IsTypeScriptModule(const std::string& dir, const std::string& module) {
  auto exists = [&](std::string_view extension) {
    std::error_code ec;
    return fs::exists(fs::path(dir) / (module + std::string(extension)), ec);
  };
  for (std::string_view js : {".js", ".mjs", ".cjs"}) {
    if (exists(js)) return false;
  }
  for (std::string_view ts : {".ts", ".mts", ".cts"}) {
    if (exists(ts)) return true;
  }
  return false;
}

bool NeedsNewVersion(const FunctionFields& f) {
  // instance_concurrency reaches the runtime in its environment (AWS_LAMBDA_MAX_CONCURRENCY).
  return f.name || f.runtime || f.handler || f.code || f.zip || f.memory_mb || f.vcpu || f.env ||
         f.style || f.network || f.instance_concurrency;
}

}  // namespace

void FunctionService::Apply(const FunctionFields& f, store::FunctionRecord& r) const {
  if (f.name) r.name = *f.name;
  if (f.runtime) {
    // ValidateFields accepted the name, so the catalog has it.
    const RuntimeEntry* runtime = runtimes_.Find(*f.runtime);
    r.runtime = runtime->name;
    // A runtime that cannot run the function's current style switches it to its own.
    if (!f.style && !runtime->supports(r.style)) r.style = runtime->default_style;
  }
  if (f.style) r.style = *f.style;
  if (f.max_retries) r.max_retries = *f.max_retries;
  if (f.retry_delay_seconds) r.retry_delay_seconds = *f.retry_delay_seconds;
  if (f.max_event_age_seconds) r.max_event_age_seconds = *f.max_event_age_seconds;
  if (f.max_concurrency) r.max_concurrency = *f.max_concurrency;
  if (f.min_instances) r.min_instances = *f.min_instances;
  if (f.instance_concurrency) r.instance_concurrency = *f.instance_concurrency;
  if (f.metadata_json) r.metadata_json = *f.metadata_json;
  if (f.version_label) r.version_label = *f.version_label;
  if (f.handler) r.handler = *f.handler;
  if (f.code) {
    r.code = *f.code;
    r.code_format = "file";
  }
  if (f.timeout_seconds) r.timeout_seconds = *f.timeout_seconds;
  if (f.memory_mb) r.memory_mb = *f.memory_mb;
  if (f.vcpu) r.vcpu = *f.vcpu;
  if (f.env) r.env = *f.env;
  if (f.network) r.network = *f.network;
  if (f.description) r.description = *f.description;
  if (f.tags) r.tags = *f.tags;
  if (f.url_config_json) r.url_config_json = *f.url_config_json;
  if (f.project) r.project = *f.project;
  if (f.file_path) r.file_path = *f.file_path;
  if (f.active) r.active = *f.active;
  if (f.schedules_json) r.schedules_json = *f.schedules_json;
}

FunctionService::FunctionService(asio::io_context& io, asio::thread_pool& workers,
                                 store::Store& store, scheduler::Scheduler& scheduler,
                                 metrics::Registry& metrics, const Clock& clock,
                                 const RuntimeCatalog& runtimes, GoBuilder& go_builder,
                                 code::CodeStore& code_store, DeploymentSettings settings)
    : io_(io),
      workers_(workers),
      record_writes_(asio::make_strand(workers.get_executor())),
      store_(store),
      scheduler_(scheduler),
      metrics_(metrics),
      clock_(clock),
      runtimes_(runtimes),
      go_builder_(go_builder),
      code_store_(code_store),
      settings_(std::move(settings)) {}

Result<void> FunctionService::Load() {
  // First: whatever changes after it, the watch applies (again, if already read below).
  auto revision = store_.LatestRevision();
  if (!revision) return tl::unexpected(revision.error());
  followed_revision_ = *revision;
  auto records = store_.ListFunctions();
  if (!records) return tl::unexpected(records.error());
  bool legacy_kept = false;  // an older wispd's code that could not be moved: not removed
  std::set<std::string> referenced;
  for (auto& record : *records) {
    auto function = std::make_unique<Function>();
    function->metrics = metrics_.ForFunction(record.id, record.name);
    function->latest_version = record.version;
    const bool interrupted = record.state == "creating" || record.state == "deploying";
    const std::string stored_tree = record.code_tree;
    auto tree = RecoverTree(record);
    if (tree) {
      function->code = *tree;
      referenced.insert(record.code_tree);
    } else {
      spdlog::warn("function {} ({}): {}", record.name, record.id, tree.error().message);
      legacy_kept = legacy_kept || record.code_tree.empty();
    }
    if (record.code_tree != stored_tree) {
      // Moved from an older wispd's directory (or made again): the record names its tree now.
      if (auto stored = store_.UpdateFunction(record, record.revision); !stored) {
        spdlog::warn("function {}: code tree not stored: {}", record.id, stored.error().message);
      } else {
        record.revision = *stored;
      }
    }
    if (record.state == "ready") {
      auto deployment =
          tree ? BuildDeployment(record, record.version, function->lifetime, *tree)
               : Result<std::shared_ptr<const scheduler::Deployment>>(tl::unexpected(tree.error()));
      if (deployment) {
        function->deployment = *deployment;
        scheduler_.Publish(function->deployment);
      } else {
        record.state = "error";
        record.error = "the stored function could not be prepared after a restart";
      }
    }
    function->record = record;
    const std::string id = record.id;
    auto versions = store_.ListVersions(id);
    auto aliases = store_.ListAliases(id);
    if (!versions) return tl::unexpected(versions.error());
    if (!aliases) return tl::unexpected(aliases.error());
    std::vector<std::pair<int, Result<code::TreeHandle>>> trees;
    for (const auto& version : *versions) {
      trees.emplace_back(version.number, VersionTree(version));
      if (trees.back().second) referenced.insert((*trees.back().second)->hash());
    }
    AdoptVersions(*function, std::move(*versions), std::move(trees), std::move(*aliases));
    functions_[id] = std::move(function);
    if (interrupted) {
      // wispd stopped mid-deploy: deploy again rather than leave the function stuck.
      Function& f = *functions_[id];
      f.first_deploy = std::make_shared<Event>(io_.get_executor());
      f.changing = std::make_shared<Event>(io_.get_executor());
      asio::co_spawn(io_, DeployCreated(id, record, nullptr, f.changing, true), asio::detached);
    }
  }
  spdlog::info("loaded {} functions from the store", functions_.size());
  std::error_code ec;
  if (!legacy_kept && fs::exists(settings_.functions_dir, ec)) {
    // Every function's code is in the code store now: what an older wispd wrote is not read
    // again.
    fs::remove_all(settings_.functions_dir, ec);
    if (ec) spdlog::warn("cannot remove {}: {}", settings_.functions_dir, ec.message());
  }
  auto collected = code_store_.Collect(referenced);
  if (!collected) return tl::unexpected(collected.error());
  if (collected->trees > 0) {
    spdlog::info("code store: removed {} trees no function refers to ({} bytes)", collected->trees,
                 collected->bytes);
  }
  return {};
}

asio::awaitable<Result<store::FunctionRecord>> FunctionService::Create(FunctionFields fields) {
  WISP_DCHECK_ON_THREAD(io_thread_);
  if (auto valid = ValidateFields(fields, runtimes_); !valid) {
    co_return tl::unexpected(valid.error());
  }
  for (const char* missing :
       {!fields.name ? "name" : nullptr, !fields.runtime ? "runtime" : nullptr,
        !fields.code && !fields.zip ? "code (or zip, a package)" : nullptr}) {
    if (missing) {
      co_return MakeError(ErrorCode::kInvalidArgument, fmt::format("{} is required", missing));
    }
  }
  if (auto unscoped = ValidateUnscopedName(*fields.name); !unscoped) {
    co_return tl::unexpected(unscoped.error());
  }
  if (fields.project && !fields.project->empty()) {
    // The caller names the function within its project; everything else sees the global name.
    fields.name = GlobalFunctionName(*fields.project, *fields.name);
    if (fields.name->size() > kMaxNameLength) {
      co_return MakeError(
          ErrorCode::kInvalidArgument,
          fmt::format("the function's global name '{}' (project--name) is over {} characters",
                      *fields.name, kMaxNameLength));
    }
  }
  for (const auto& [id, f] : functions_) {
    if (f->record.name == *fields.name) {
      co_return MakeError(ErrorCode::kAlreadyExists,
                          fmt::format("a function named '{}' already exists", *fields.name));
    }
  }
  store::FunctionRecord record;
  record.id = NewUuid();
  record.handler = "handler";
  record.timeout_seconds = kDefaultTimeoutSeconds;
  record.memory_mb = kDefaultMemoryMb;
  record.vcpu = 1;
  Apply(fields, record);
  const RuntimeEntry& runtime = *runtimes_.Find(record.runtime);
  if (!fields.style) record.style = runtime.default_style;
  if (auto valid = ValidateCombination(runtime, record.style, LimitsOf(record)); !valid) {
    co_return tl::unexpected(valid.error());
  }
  if (auto form = CheckPackageForm(runtime, fields.zip.has_value()); !form) {
    co_return tl::unexpected(form.error());
  }
  code::TreeHandle package;
  if (fields.zip) {
    // Unpacked before anything is stored: a refused zip leaves no function and no tree.
    const auto zip = std::make_shared<const std::string>(std::move(*fields.zip));
    auto unpacked = co_await UnpackPackage(zip, record);
    if (!unpacked) co_return tl::unexpected(unpacked.error());
    package = *unpacked;
  }
  record.version = 1;
  record.state = "creating";
  record.created_at_ms = record.updated_at_ms = ToEpochMillis(clock_.WallNow());

  auto function = std::make_unique<Function>();
  function->record = record;
  function->metrics = metrics_.ForFunction(record.id, record.name);
  function->latest_version = 1;
  function->first_deploy = std::make_shared<Event>(io_.get_executor());
  function->changing = std::make_shared<Event>(io_.get_executor());
  functions_[record.id] = std::move(function);

  // The store decides whether the name is free (another wispd on the same store may have
  // taken it a moment ago).
  auto put = [this, record] { return store_.CreateFunction(record); };
  auto stored = co_await Offload(record_writes_, std::move(put));
  if (!stored) {
    if (Function* f = Find(record.id)) {
      f->first_deploy->Set();
      f->changing->Set();
    }
    functions_.erase(record.id);
    metrics_.RemoveFunction(record.id);
    co_return tl::unexpected(stored.error());
  }
  Function* f = Find(record.id);
  if (!f) co_return MakeError(ErrorCode::kNotFound, "function deleted while being created");
  record.revision = f->record.revision = *stored;
  f->record.state = "deploying";
  f->code = package;
  Announce("function.created", f->record, 1, "");
  Announce("function.deploying", f->record, 1, "");
  asio::co_spawn(io_, DeployCreated(record.id, record, package, f->changing, true), asio::detached);
  co_return f->record;
}

asio::awaitable<Result<store::FunctionRecord>> FunctionService::Update(std::string id,
                                                                       FunctionFields fields) {
  WISP_DCHECK_ON_THREAD(io_thread_);
  if (auto valid = ValidateFields(fields, runtimes_); !valid) {
    co_return tl::unexpected(valid.error());
  }
  if (!Find(id))
    co_return MakeError(ErrorCode::kNotFound, fmt::format("function {} not found", id));
  // What another node wrote meanwhile first: the update applies on top of the store's record
  // (a store read; its compare-and-swap would refuse a stale one).
  co_await Follow(id);
  Function* f = Find(id);
  if (!f) co_return MakeError(ErrorCode::kNotFound, fmt::format("function {} not found", id));
  while (f->changing) {
    const auto busy = f->changing;
    co_await busy->Wait();
    f = Find(id);
    if (!f) co_return MakeError(ErrorCode::kNotFound, fmt::format("function {} was deleted", id));
  }
  // This update owns the function until it returns, whichever way it returns.
  const auto mine = std::make_shared<Event>(io_.get_executor());
  f->changing = mine;
  struct Release {
    FunctionService* service;
    std::string id;
    std::shared_ptr<Event> event;
    ~Release() {
      if (Function* g = service->Find(id); g && g->changing == event) g->changing.reset();
      event->Set();
    }
  } release{this, id, mine};

  if (fields.project && *fields.project != f->record.project) {
    co_return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("function {} belongs to project '{}': a function cannot move to another "
                    "project (create it there and delete this one)",
                    f->record.name, f->record.project));
  }
  // A body that repeats the function's own global name (a client sending back what it read)
  // renames nothing.
  if (fields.name && *fields.name != f->record.name) {
    if (auto unscoped = ValidateUnscopedName(*fields.name); !unscoped) {
      co_return tl::unexpected(unscoped.error());
    }
    // A project's function is renamed within its project.
    fields.name = GlobalFunctionName(f->record.project, *fields.name);
    if (fields.name->size() > kMaxNameLength) {
      co_return MakeError(ErrorCode::kInvalidArgument,
                          fmt::format("the function's global name '{}' is over {} characters",
                                      *fields.name, kMaxNameLength));
    }
  }
  if (fields.name && *fields.name != f->record.name) {
    for (const auto& [other_id, other] : functions_) {
      if (other_id != id && other->record.name == *fields.name) {
        co_return MakeError(ErrorCode::kAlreadyExists,
                            fmt::format("a function named '{}' already exists", *fields.name));
      }
    }
  }
  store::FunctionRecord candidate = f->record;
  Apply(fields, candidate);
  candidate.updated_at_ms = ToEpochMillis(clock_.WallNow());
  auto runtime = RuntimeOf(candidate);
  if (!runtime) co_return tl::unexpected(runtime.error());
  if (auto valid = ValidateCombination(**runtime, candidate.style, LimitsOf(candidate)); !valid) {
    co_return tl::unexpected(valid.error());
  }
  if (auto form = CheckPackageForm(**runtime, fields.zip || candidate.code_format == "zip");
      !form) {
    co_return tl::unexpected(form.error());
  }
  code::TreeHandle package;
  if (fields.zip) {
    // Moved, not copied: a package is up to tens of MB (fields.zip stays set, emptied).
    const auto zip = std::make_shared<const std::string>(std::move(*fields.zip));
    auto unpacked = co_await UnpackPackage(zip, candidate);
    if (!unpacked) co_return tl::unexpected(unpacked.error());
    package = *unpacked;
    f = Find(id);
    if (!f) co_return MakeError(ErrorCode::kNotFound, fmt::format("function {} was deleted", id));
  }

  if (!NeedsNewVersion(fields)) {
    // Only what needs no new instances: the rest of the record stays as it is. Stored first
    // (compared against the revision this node has): a change someone else made meanwhile wins.
    store::FunctionRecord changed = f->record;
    for (store::FunctionRecord* r : {&changed}) {
      r->timeout_seconds = candidate.timeout_seconds;
      r->max_retries = candidate.max_retries;
      r->retry_delay_seconds = candidate.retry_delay_seconds;
      r->max_event_age_seconds = candidate.max_event_age_seconds;
      r->max_concurrency = candidate.max_concurrency;
      r->min_instances = candidate.min_instances;
      r->metadata_json = candidate.metadata_json;
      r->version_label = candidate.version_label;
      r->description = candidate.description;
      r->tags = candidate.tags;
      r->url_config_json = candidate.url_config_json;
      r->file_path = candidate.file_path;
      r->active = candidate.active;
      r->schedules_json = candidate.schedules_json;
      r->updated_at_ms = candidate.updated_at_ms;
    }
    auto put = [this, changed] { return store_.UpdateFunction(changed, changed.revision); };
    auto stored = co_await Offload(record_writes_, std::move(put));
    if (!stored) co_return tl::unexpected(stored.error());
    f = Find(id);
    if (!f) co_return MakeError(ErrorCode::kNotFound, fmt::format("function {} not found", id));
    const bool limits_changed = candidate.max_concurrency != f->record.max_concurrency ||
                                candidate.min_instances != f->record.min_instances;
    f->record.revision = *stored;
    f->record.description = candidate.description;
    f->record.tags = candidate.tags;
    f->record.url_config_json = candidate.url_config_json;
    f->record.file_path = candidate.file_path;
    f->record.active = candidate.active;
    f->record.schedules_json = candidate.schedules_json;
    f->record.timeout_seconds = candidate.timeout_seconds;
    f->record.max_retries = candidate.max_retries;
    f->record.retry_delay_seconds = candidate.retry_delay_seconds;
    f->record.max_event_age_seconds = candidate.max_event_age_seconds;
    f->record.max_concurrency = candidate.max_concurrency;
    f->record.min_instances = candidate.min_instances;
    f->record.metadata_json = candidate.metadata_json;
    f->record.version_label = candidate.version_label;
    f->record.updated_at_ms = candidate.updated_at_ms;
    if (limits_changed && f->deployment) {
      // Same version, same instances: the scheduler reads the limits from the deployment of
      // each call, so publishing a copy with the new limits is enough.
      auto copy = std::make_shared<scheduler::Deployment>(*f->deployment);
      copy->max_instances = ConcurrencyLimit(*f);
      copy->min_instances = std::min<uint32_t>(f->record.min_instances, copy->max_instances);
      f->deployment = std::move(copy);
      scheduler_.Publish(f->deployment);  // min_instances may have changed
    }
    co_return f->record;
  }

  const int version = ++f->latest_version;
  Announce("function.deploying", f->record, version, "");
  auto deployed = co_await Deploy(id, version, candidate, package, true);
  if (!deployed) co_return tl::unexpected(deployed.error());
  f = Find(id);
  if (!f) co_return MakeError(ErrorCode::kNotFound, fmt::format("function {} was deleted", id));
  co_return f->record;
}

asio::awaitable<void> FunctionService::DeployCreated(std::string id, store::FunctionRecord record,
                                                     code::TreeHandle package,
                                                     std::shared_ptr<Event> creating,
                                                     bool store_result) {
  const int version = record.version;
  auto deployed = co_await Deploy(id, version, std::move(record), std::move(package), store_result);
  if (!deployed) spdlog::warn("function {}: {}", id, deployed.error().message);
  if (Function* f = Find(id); f && f->changing == creating) f->changing.reset();
  creating->Set();
}

asio::awaitable<Result<void>> FunctionService::Deploy(std::string id, int version,
                                                      store::FunctionRecord candidate,
                                                      code::TreeHandle package, bool store_result) {
  std::string failure;
  std::shared_ptr<const scheduler::Deployment> deployment;
  code::TreeHandle tree = package;
  const auto started = clock_.Now();
  const Function* deploying = Find(id);
  if (!deploying) co_return Result<void>();
  const std::shared_ptr<scheduler::FunctionLifetime> lifetime = deploying->lifetime;

  if (auto file = CodeFileName(candidate); !file) {
    failure = file.error().message;
  } else {
    Result<code::TreeHandle> prepared = tree;
    if (!tree) {
      prepared = co_await PrepareTree(id, version, candidate);
    } else {
      // A package from the request: its TypeScript, if any, is compiled now.
      prepared = co_await CompileTypeScript(id, version, candidate, tree);
      if (prepared) candidate.code_tree = (*prepared)->hash();
    }
    if (lifetime->deleted) {
      // Deleted while its code was written or built: start nothing, and let the tree go.
      prepared = MakeError(ErrorCode::kNotFound, "deleted");
      tree.reset();
      package.reset();
      CollectCode();
      co_return Result<void>();
    }
    if (!prepared) {
      failure = prepared.error().message;
    } else {
      tree = *prepared;
      auto built = BuildDeployment(candidate, version, lifetime, tree);
      if (!built) {
        failure = built.error().message;
      } else {
        deployment = *built;
        auto warmed = co_await scheduler_.Warm(deployment);
        if (!warmed) {
          // With the type, as a caller of Lambda sees an init error: "Custom.Type: message".
          const auto& start = warmed.error();
          failure = start.error_type.empty()
                        ? start.message
                        : fmt::format("{}: {}", start.error_type, start.message);
          for (const auto& line : warmed.error().logs)
            spdlog::debug("deploy {} v{}: {}", candidate.name, version, line);
        }
      }
    }
  }

  Function* f = Find(id);
  if (!f) co_return Result<void>();                            // deleted meanwhile
  if (f->latest_version != version) co_return Result<void>();  // a newer update superseded it

  store::FunctionRecord& record = f->record;
  if (failure.empty()) {
    if (candidate.name != record.name) f->metrics = metrics_.ForFunction(id, candidate.name);
    const auto last_invoked = record.last_invoked_at_ms;
    record = candidate;
    record.version = version;
    record.state = "ready";
    record.error.clear();
    record.last_invoked_at_ms = last_invoked;
    f->deployment = deployment;
    f->code = tree;
    scheduler_.Publish(deployment);
    Announce("function.ready", record, version, "");
    spdlog::info("function {} ({}) version {} ready in {:.1f} ms", record.name, id, version,
                 std::chrono::duration<double, std::milli>(clock_.Now() - started).count());
  } else {
    spdlog::info("function {} ({}) version {} failed to deploy: {}", candidate.name, id, version,
                 failure);
    if (f->deployment) {
      // The version that serves keeps serving; the item shows why the new one did not load.
      record.error = fmt::format("version {} failed to load: {}", version, failure);
      record.updated_at_ms = candidate.updated_at_ms;
    } else {
      record = candidate;
      record.version = version;
      record.state = "error";
      record.error = failure;
      f->code = tree;
    }
    Announce("function.error", record, version, failure);
  }
  if (f->first_deploy) {
    f->first_deploy->Set();
    f->first_deploy.reset();
  }
  // Following another node's write: this node now has that revision, loaded or not.
  if (!store_result) record.revision = std::max(record.revision, candidate.revision);
  Result<void> outcome;
  if (store_result) {
    const store::FunctionRecord snapshot = record;
    auto put = [this, snapshot] { return store_.UpdateFunction(snapshot, snapshot.revision); };
    auto stored = co_await Offload(record_writes_, std::move(put));
    if (!stored) {
      // kConflict: another node changed the function meanwhile; the watch brings its change.
      spdlog::warn("function {}: state not stored: {}", id, stored.error().message);
      outcome = tl::unexpected(stored.error());
    } else if (Function* g = Find(id); g && g->record.revision == snapshot.revision) {
      g->record.revision = *stored;
    }
  }
  // The version this one replaced, or this one if it failed, may have left a tree behind.
  tree.reset();
  package.reset();
  deployment.reset();
  CollectCode();
  co_return outcome;
}

asio::awaitable<Result<void>> FunctionService::Delete(std::string id) {
  WISP_DCHECK_ON_THREAD(io_thread_);
  auto it = functions_.find(id);
  if (it == functions_.end()) {
    co_return MakeError(ErrorCode::kNotFound, fmt::format("function {} not found", id));
  }
  DropLocal(id);
  deleted_here_.insert(id);  // the watch must not bring it back before the store forgets it
  auto remove = [this, id]() -> Result<void> {
    auto deleted = store_.DeleteFunction(id);
    if (!deleted && deleted.error().code != ErrorCode::kNotFound) return deleted;
    return {};
  };
  auto removed = co_await Offload(record_writes_, std::move(remove));
  // Its tree goes unless another function has the same code; trees its retiring instances'
  // deployments still hold go at a later collection.
  CollectCode();
  co_return removed;
}

void FunctionService::Announce(const char* type, const store::FunctionRecord& record, int version,
                               std::string detail) {
  if (!events_ || !events_->has_subscribers()) return;
  metrics::StateEvent event;
  event.type = type;
  event.function_id = record.id;
  event.function_name = record.name;
  event.version = version;
  event.state = record.state;
  event.detail = std::move(detail);
  events_->Publish(event);
}

Function* FunctionService::Find(std::string_view id) {
  WISP_DCHECK_ON_THREAD(io_thread_);
  auto it = functions_.find(id);
  return it == functions_.end() ? nullptr : it->second.get();
}

Function* FunctionService::FindByName(std::string_view name) {
  WISP_DCHECK_ON_THREAD(io_thread_);
  // A scan: names are looked up by the Lambda API only, and a node holds thousands of
  // functions at most (microseconds).
  for (const auto& [id, function] : functions_) {
    if (function->record.name == name) return function.get();
  }
  return nullptr;
}

std::vector<const Function*> FunctionService::List() const {
  WISP_DCHECK_ON_THREAD(io_thread_);
  std::vector<const Function*> out;
  out.reserve(functions_.size());
  for (const auto& [id, f] : functions_) out.push_back(f.get());
  std::sort(out.begin(), out.end(), [](const Function* a, const Function* b) {
    return a->record.created_at_ms < b->record.created_at_ms;
  });
  return out;
}

void FunctionService::MarkInvoked(Function& function) {
  function.record.last_invoked_at_ms = ToEpochMillis(clock_.WallNow());
}

void FunctionService::PersistActivity() {
  for (const auto& [id, f] : functions_) {
    if (!f->record.last_invoked_at_ms) continue;
    if (auto stored = store_.RecordActivity(id, *f->record.last_invoked_at_ms); !stored) {
      spdlog::warn("function {}: last_invoked_at not stored: {}", id, stored.error().message);
    }
  }
}

sandbox::SpawnSpec FunctionService::BaseSpawnSpec(const RuntimeEntry& runtime, int memory_mb,
                                                  double vcpu) const {
  sandbox::SpawnSpec spawn;
  // A runtime without a handler shim runs programs only; BuildDeployment sets their argv.
  if (runtime.custom()) {
    spawn.argv = runtimes_.BootstrapCommand(runtime, "/var/task");
  } else if (runtime.supports(kHandlerStyle)) {
    spawn.argv = runtimes_.HandlerShimCommand(runtime, kRuntimeMount);
  }
  spawn.runtime_dir = settings_.runtimes_dir;
  spawn.memory_limit_bytes = static_cast<uint64_t>(memory_mb) << 20;
  spawn.tmp_size_bytes = settings_.tmp_size_bytes;
  spawn.pids_limit = settings_.pids_limit;
  spawn.vcpu = vcpu;
  spawn.outbound_private_networks = settings_.outbound_private_networks;
  // What every runtime gets whatever the function; the function's own variables are added
  // at deploy (or sent at specialisation for a prewarmed instance).
  spawn.env = {
      "PATH=/usr/local/bin:/usr/bin:/bin",
      "LANG=C.UTF-8",
      "TZ=:UTC",
      "HOME=/tmp",
      "PYTHONUNBUFFERED=1",
      "PYTHONDONTWRITEBYTECODE=1",
      "LAMBDA_TASK_ROOT=/var/task",
      std::string("LAMBDA_RUNTIME_DIR=") + kRuntimeMount,
      fmt::format("AWS_LAMBDA_RUNTIME_API=127.0.0.1:{}", spawn.runtime_api_port),
      // Wisp's shims use the Runtime API over this already connected Unix socket: cheaper
      // than loopback TCP on both ends of every invocation.
      fmt::format("WISP_RUNTIME_API_FD={}", sandbox::kRuntimeApiChannelFd),
  };
  return spawn;
}

std::vector<scheduler::PrewarmPool> FunctionService::PrewarmPools(
    const std::map<std::string, size_t>& instances, size_t max_instances) const {
  std::vector<scheduler::PrewarmPool> pools;
  for (const RuntimeEntry& runtime : runtimes_.entries()) {
    const auto it = instances.find(runtime.name);
    const size_t size = it == instances.end() ? 0 : it->second;
    if (size == 0 || !runtime.prewarmable) continue;
    auto generic = std::make_shared<scheduler::Deployment>();
    generic->function_id = "prewarm/" + runtime.name;
    generic->function_name = "prewarmed " + runtime.name;
    generic->prewarmed = true;
    generic->memory_mb = kDefaultMemoryMb;
    const size_t max_size = std::max(size, max_instances);
    generic->max_instances = static_cast<uint32_t>(max_size);
    generic->spawn = BaseSpawnSpec(runtime, kDefaultMemoryMb, 1);
    generic->spawn.env.push_back("WISP_PREWARMED=1");
    // The backend gives each generic instance an empty /var/task, filled when it specialises.
    generic->spawn.code_dir.clear();
    generic->spawn.prewarmed = true;
    pools.push_back({std::move(generic), size, max_size});
  }
  return pools;
}

std::string FunctionService::LegacyVersionDir(const std::string& id, int version) const {
  return fmt::format("{}/{}/v{}", settings_.functions_dir, id, version);
}

Limits FunctionService::LimitsOf(const store::FunctionRecord& record) const {
  return {.min_instances = record.min_instances,
          .max_concurrency = record.max_concurrency,
          .instance_concurrency = record.instance_concurrency,
          .max_instance_concurrency = static_cast<int>(settings_.max_instance_concurrency)};
}

uint32_t FunctionService::ConcurrencyLimit(const Function& function) const {
  return std::min<uint32_t>(static_cast<uint32_t>(std::max(function.record.max_concurrency, 1)),
                            settings_.max_instances_per_function);
}

Result<std::string> FunctionService::CodeFileName(const store::FunctionRecord& record) const {
  auto runtime = RuntimeOf(record);
  if (!runtime) return tl::unexpected(runtime.error());
  if (record.style == kProgramStyle) return (*runtime)->program_file;
  auto target = ParseHandler(**runtime, record.handler);
  if (!target) return tl::unexpected(target.error());
  return target->file_name(**runtime);
}

Result<const RuntimeEntry*> FunctionService::RuntimeOf(const store::FunctionRecord& record) const {
  if (const RuntimeEntry* runtime = runtimes_.Find(record.runtime)) return runtime;
  return MakeError(ErrorCode::kFailedPrecondition,
                   fmt::format("runtime '{}' is not available on this node (it has {})",
                               record.runtime, runtimes_.AcceptedNames()));
}

asio::awaitable<Result<code::TreeHandle>> FunctionService::UnpackPackage(
    std::shared_ptr<const std::string> zip, store::FunctionRecord& record) {
  if (auto runtime = RuntimeOf(record); runtime && (*runtime)->compiled) {
    co_return MakeError(ErrorCode::kInvalidArgument,
                        fmt::format("{} functions are built from one source file: send code, not "
                                    "a zip",
                                    record.runtime));
  }
  using Unpacked = std::pair<code::TreeHandle, std::string>;
  auto unpack = [this, zip]() -> Result<Unpacked> {
    auto tree = code_store_.PutZip(*zip);
    if (!tree) return tl::unexpected(tree.error());
    return Unpacked{*tree, code::Sha256Base64(*zip)};
  };
  auto unpacked = co_await Offload(workers_, std::move(unpack));
  if (!unpacked) co_return tl::unexpected(unpacked.error());
  record.code.clear();
  record.code_format = "zip";
  record.code_tree = unpacked->first->hash();
  record.code_sha256 = unpacked->second;
  record.code_size = static_cast<int64_t>(zip->size());
  co_return unpacked->first;
}

asio::awaitable<Result<code::TreeHandle>> FunctionService::PrepareTree(
    const std::string& id, int version, store::FunctionRecord& candidate) {
  auto runtime = RuntimeOf(candidate);
  if (!runtime) co_return tl::unexpected(runtime.error());
  const bool compiled = (*runtime)->compiled && candidate.style == kProgramStyle;
  if (candidate.code_format == "zip") {
    if (compiled) {
      co_return MakeError(ErrorCode::kInvalidArgument,
                          fmt::format("{} functions are built from one source file: send code, "
                                      "not a zip",
                                      candidate.runtime));
    }
    auto acquire = [this, hash = candidate.code_tree] { return code_store_.Acquire(hash); };
    auto acquired = co_await Offload(workers_, std::move(acquire));
    if (!acquired) co_return acquired;
    auto ready = co_await CompileTypeScript(id, version, candidate, std::move(*acquired));
    if (ready) candidate.code_tree = (*ready)->hash();
    co_return ready;
  }
  auto file = CodeFileName(candidate);
  if (!file) co_return tl::unexpected(file.error());
  candidate.code_sha256.clear();
  candidate.code_size = static_cast<int64_t>(candidate.code.size());
  Result<code::TreeHandle> tree = MakeError(ErrorCode::kInternal, "no tree");
  if (!compiled) {
    auto put = [this, &candidate, name = *file]() {
      candidate.code_sha256 = code::Sha256Base64(candidate.code);
      return code_store_.PutFile(name, candidate.code);
    };
    tree = co_await Offload(workers_, std::move(put));
  } else {
    // A program's source stays beside its build output: what runs can be read back.
    std::unique_ptr<code::Draft> draft;
    auto write = [this, &candidate, &draft, name = *file]() -> Result<void> {
      candidate.code_sha256 = code::Sha256Base64(candidate.code);
      auto made = code_store_.NewDraft();
      if (!made) return tl::unexpected(made.error());
      draft = std::move(*made);
      return code_store_.WriteFile(*draft, name, candidate.code, false);
    };
    auto written = co_await Offload(workers_, std::move(write));
    if (!written) co_return tl::unexpected(written.error());
    // Off the worker pool: a build takes seconds to minutes, and the store must not wait.
    const std::string binary = draft->path() + "/" + std::string(kBuildOutputFile);
    auto built =
        co_await go_builder_.Build(fmt::format("{}-v{}", id, version), candidate.code, binary);
    if (!built) co_return tl::unexpected(built.error());
    auto commit = [this, &draft] { return code_store_.Commit(std::move(draft)); };
    tree = co_await Offload(workers_, std::move(commit));
  }
  if (tree) candidate.code_tree = (*tree)->hash();
  co_return tree;
}

asio::awaitable<Result<code::TreeHandle>> FunctionService::CompileTypeScript(
    const std::string& id, int version, const store::FunctionRecord& record,
    code::TreeHandle tree) {
  auto runtime = RuntimeOf(record);
  if (!runtime || (*runtime)->custom() || (*runtime)->source_extension != ".js" ||
      record.style != kHandlerStyle) {
    co_return tree;
  }
  auto target = ParseHandler(**runtime, record.handler);
  if (!target) co_return tree;  // the deployment says what is wrong with the handler
  if (!IsTypeScriptModule(tree->path(), target->module)) co_return tree;
  spdlog::info("function {} version {}: compiling its TypeScript", record.name, version);

  const auto started = std::chrono::steady_clock::now();
  std::unique_ptr<code::Draft> draft;
  auto copy = [this, &draft, source = tree->path()]() -> Result<void> {
    auto made = code_store_.NewDraft();
    if (!made) return tl::unexpected(made.error());
    draft = std::move(*made);
    std::error_code ec;
    fs::copy(source, draft->path(), fs::copy_options::recursive | fs::copy_options::copy_symlinks,
             ec);
    if (ec)
      return MakeError(ErrorCode::kInternal, fmt::format("copy the package: {}", ec.message()));
    return {};
  };
  if (auto copied = co_await Offload(workers_, std::move(copy)); !copied) {
    co_return tl::unexpected(copied.error());
  }
  // Off the worker pool, in a build sandbox: tsc takes seconds, and the code is untrusted.
  auto compiled = co_await go_builder_.CompileTypeScript(fmt::format("{}-v{}-ts", id, version),
                                                         tree->path(), draft->path());
  if (!compiled) co_return tl::unexpected(compiled.error());
  auto commit = [this, &draft] { return code_store_.Commit(std::move(draft)); };
  auto committed = co_await Offload(workers_, std::move(commit));
  spdlog::info("function {} version {}: TypeScript compiled in {} ms", record.name, version,
               std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - started)
                   .count());
  co_return committed;
}

Result<code::TreeHandle> FunctionService::RecoverTree(store::FunctionRecord& record) {
  if (!record.code_tree.empty()) {
    auto held = code_store_.Acquire(record.code_tree);
    if (held) return held;
    spdlog::warn("function {}: its code tree {} is missing: making it again", record.id,
                 record.code_tree);
  }
  const auto runtime = RuntimeOf(record);
  const bool compiled = runtime && (*runtime)->compiled && record.style == kProgramStyle;
  const std::string legacy = LegacyVersionDir(record.id, record.version);
  std::error_code ec;
  Result<code::TreeHandle> tree = MakeError(ErrorCode::kNotFound, "no tree");
  if (fs::is_directory(legacy, ec)) {
    // An older wispd's version directory (a Go build's binary included: no rebuild).
    tree = code_store_.Import(legacy);
  } else if (record.code_format == "file" && !compiled) {
    auto file = CodeFileName(record);
    if (!file) return tl::unexpected(file.error());
    tree = code_store_.PutFile(*file, record.code);
  } else {
    return MakeError(
        ErrorCode::kNotFound,
        fmt::format("the code of version {} is missing: deploy it again", record.version));
  }
  if (!tree) return tree;
  record.code_tree = (*tree)->hash();
  if (record.code_sha256.empty() && record.code_format == "file") {
    record.code_sha256 = code::Sha256Base64(record.code);
    record.code_size = static_cast<int64_t>(record.code.size());
  }
  return tree;
}

void FunctionService::CollectCode() { ScheduleCollection(workers_, code_store_); }

void FunctionService::ScheduleCollection(asio::thread_pool& workers, code::CodeStore& store) {
  // Only the store is used: the job may run while wispd stops, after the service is gone.
  asio::post(workers, [&store] {
    auto collected = store.Collect({});
    if (!collected) {
      spdlog::warn("code store: collection failed: {}", collected.error().message);
    } else if (collected->trees > 0) {
      spdlog::debug("code store: removed {} trees ({} bytes)", collected->trees, collected->bytes);
    }
  });
}

Result<std::shared_ptr<const scheduler::Deployment>> FunctionService::BuildDeployment(
    const store::FunctionRecord& record, int version,
    std::shared_ptr<scheduler::FunctionLifetime> lifetime, code::TreeHandle tree) const {
  const bool program = record.style == kProgramStyle;
  auto runtime_of = RuntimeOf(record);
  if (!runtime_of) return tl::unexpected(runtime_of.error());
  const RuntimeEntry& runtime = **runtime_of;
  auto target = program ? Result<HandlerTarget>(HandlerTarget{"main", "main"})
                        : ParseHandler(runtime, record.handler);
  if (!target) return tl::unexpected(target.error());
  if (runtime.custom()) {
    // Said now, in the function's state, rather than as an execve error from the sandbox.
    if (auto bootstrap = CheckBootstrap(runtime, tree->path()); !bootstrap) {
      return tl::unexpected(bootstrap.error());
    }
  }
  auto deployment = std::make_shared<scheduler::Deployment>();
  deployment->function_id = record.id;
  deployment->function_name = record.name;
  deployment->version = version;
  deployment->lifetime = std::move(lifetime);
  deployment->memory_mb = record.memory_mb;
  deployment->max_instances =
      std::min<uint32_t>(static_cast<uint32_t>(std::max(record.max_concurrency, 1)),
                         settings_.max_instances_per_function);
  deployment->min_instances =
      std::min<uint32_t>(static_cast<uint32_t>(record.min_instances), deployment->max_instances);
  deployment->instance_concurrency = static_cast<uint32_t>(std::clamp(
      record.instance_concurrency, 1, static_cast<int>(settings_.max_instance_concurrency)));
  deployment->function_arn = fmt::format("arn:aws:lambda:{}:{}:function:{}", settings_.region,
                                         settings_.account_id, record.name);

  sandbox::SpawnSpec& spawn = deployment->spawn;
  spawn = BaseSpawnSpec(runtime, record.memory_mb, record.vcpu);
  spawn.network_outbound = record.network == "outbound";
  if (program) {
    // The program shim runs the program once per event; the program's argv follows the
    // shim's own. (A different argv also keeps prewarmed handler shims from serving it.)
    spawn.argv = runtimes_.ProgramShimCommand(kRuntimeMount);
    for (auto& arg : runtimes_.ProgramCommand(runtime, "/var/task")) {
      spawn.argv.push_back(std::move(arg));
    }
  }
  spawn.code_dir = tree->path();
  // When the last holder lets this version go (its last instance ended after a newer version
  // or a delete), its tree may be collectable: look then, not only at the next deploy.
  const code::Tree* held = tree.get();
  deployment->code = std::shared_ptr<const void>(held, [tree = std::move(tree), &workers = workers_,
                                                        &store = code_store_](const void*) mutable {
    tree.reset();
    ScheduleCollection(workers, store);
  });
  // User variables come first: getenv() finds the first entry, so a user's PATH, TZ or LANG
  // wins over the defaults below. The platform's own names are refused by ValidateFields.
  std::vector<std::string> platform_env = std::move(spawn.env);
  spawn.env.clear();
  for (const auto& [key, value] : record.env) spawn.env.push_back(key + "=" + value);
  for (auto& entry : platform_env) spawn.env.push_back(std::move(entry));
  for (std::string entry : std::vector<std::string>{
           "_HANDLER=" + (program ? runtime.program_file : target->ToString()),
           "AWS_LAMBDA_FUNCTION_NAME=" + record.name,
           "AWS_LAMBDA_FUNCTION_VERSION=" + std::to_string(version),
           "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + std::to_string(record.memory_mb),
           "AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/" + record.name,
           "AWS_REGION=" + settings_.region,
           "AWS_DEFAULT_REGION=" + settings_.region,
           "AWS_EXECUTION_ENV=Wisp_" + record.runtime,
           "AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
           "AWS_LAMBDA_MAX_CONCURRENCY=" + std::to_string(deployment->instance_concurrency),
       }) {
    spawn.env.push_back(std::move(entry));
  }
  // The project's functions see their project in their context (projectId, project_id).
  if (!record.project.empty()) spawn.env.push_back("WISP_PROJECT_ID=" + record.project);
  return std::shared_ptr<const scheduler::Deployment>(std::move(deployment));
}

void FunctionService::DropLocal(const std::string& id) {
  auto it = functions_.find(id);
  if (it == functions_.end()) return;
  if (it->second->first_deploy) it->second->first_deploy->Set();
  if (it->second->changing) it->second->changing->Set();
  it->second->lifetime->deleted = true;
  Announce("function.deleted", it->second->record, it->second->record.version, "");
  functions_.erase(it);
  metrics_.RemoveFunction(id);
  scheduler_.RetireFunction(id);
}

Result<code::TreeHandle> FunctionService::VersionTree(const store::VersionRecord& version) {
  const store::FunctionRecord& config = version.config;
  if (auto held = code_store_.Acquire(config.code_tree)) return held;
  // Not on this node (published by another wispd on the same store): a single file travels in
  // the record; a package or a build does not.
  const auto runtime = RuntimeOf(config);
  if (config.code_format != "file" || !runtime || (*runtime)->compiled) {
    return MakeError(ErrorCode::kNotFound,
                     fmt::format("the code of version {} is not on this node", version.number));
  }
  auto file = CodeFileName(config);
  if (!file) return tl::unexpected(file.error());
  return code_store_.PutFile(*file, config.code);
}

Result<std::shared_ptr<const scheduler::Deployment>> FunctionService::BuildVersionDeployment(
    const Function& function, const store::VersionRecord& version, code::TreeHandle tree) const {
  store::FunctionRecord config = version.config;
  config.id = function.record.id;
  auto built = BuildDeployment(config, version.number, function.lifetime, std::move(tree));
  if (!built) return built;
  auto deployment = std::make_shared<scheduler::Deployment>(**built);
  deployment->pool = fmt::format("{}#{}", function.record.id, version.number);
  deployment->executed_version = std::to_string(version.number);
  return std::shared_ptr<const scheduler::Deployment>(std::move(deployment));
}

void FunctionService::AdoptVersions(Function& function, std::vector<store::VersionRecord> versions,
                                    std::vector<std::pair<int, Result<code::TreeHandle>>> trees,
                                    std::vector<store::AliasRecord> aliases) {
  std::map<int, PublishedVersion> adopted;
  for (auto& version : versions) {
    const int number = version.number;
    if (auto kept = function.versions.find(number); kept != function.versions.end()) {
      adopted[number] = std::move(kept->second);  // immutable: what this node has is it
      continue;
    }
    PublishedVersion published{std::move(version), nullptr};
    for (auto& [tree_number, tree] : trees) {
      if (tree_number != number) continue;
      if (!tree) {
        spdlog::warn("function {} version {}: {}", function.record.name, number,
                     tree.error().message);
        break;
      }
      auto built = BuildVersionDeployment(function, published.record, *tree);
      if (built) {
        published.deployment = *built;
        scheduler_.Publish(published.deployment);  // its min_instances
      } else {
        spdlog::warn("function {} version {}: {}", function.record.name, number,
                     built.error().message);
      }
    }
    adopted[number] = std::move(published);
  }
  for (const auto& [number, gone] : function.versions) {
    if (!adopted.count(number))
      scheduler_.RetirePool(fmt::format("{}#{}", function.record.id, number));
  }
  function.versions = std::move(adopted);
  function.aliases.clear();
  for (auto& alias : aliases) function.aliases[alias.name] = std::move(alias);
}

asio::awaitable<Result<store::VersionRecord>> FunctionService::PublishVersion(
    std::string id, std::string description) {
  WISP_DCHECK_ON_THREAD(io_thread_);
  // What is published is the store's $LATEST, also when another node changed it a moment ago.
  if (Find(id)) co_await Follow(id);
  Function* f = Find(id);
  if (!f) co_return MakeError(ErrorCode::kNotFound, fmt::format("function {} not found", id));
  while (f->changing) {
    const auto busy = f->changing;
    co_await busy->Wait();
    f = Find(id);
    if (!f) co_return MakeError(ErrorCode::kNotFound, fmt::format("function {} was deleted", id));
  }
  if (!f->deployment || f->record.state != "ready") {
    co_return MakeError(ErrorCode::kFailedPrecondition,
                        fmt::format("function {} has no loaded $LATEST to publish (state {})",
                                    f->record.name, f->record.state));
  }
  if (!f->versions.empty()) {
    // Nothing changed since the newest version: Lambda answers with that version.
    const store::FunctionRecord& newest = f->versions.rbegin()->second.record.config;
    const store::FunctionRecord& latest = f->record;
    if (newest.code_tree == latest.code_tree && newest.runtime == latest.runtime &&
        newest.handler == latest.handler && newest.style == latest.style &&
        newest.env == latest.env && newest.memory_mb == latest.memory_mb &&
        newest.vcpu == latest.vcpu && newest.timeout_seconds == latest.timeout_seconds &&
        newest.network == latest.network && newest.description == latest.description) {
      co_return f->versions.rbegin()->second.record;
    }
  }
  store::VersionRecord version;
  version.function_id = id;
  version.config = f->record;
  version.description = description;
  version.created_at_ms = ToEpochMillis(clock_.WallNow());
  code::TreeHandle tree = f->code;  // held by the version's deployment from here on
  auto put = [this, version] { return store_.PublishVersion(version); };
  auto stored = co_await Offload(record_writes_, std::move(put));
  if (!stored) co_return tl::unexpected(stored.error());
  f = Find(id);
  if (!f) co_return MakeError(ErrorCode::kNotFound, fmt::format("function {} was deleted", id));
  PublishedVersion published{*stored, nullptr};
  auto built = BuildVersionDeployment(*f, published.record, tree);
  if (!built) co_return tl::unexpected(built.error());
  published.deployment = *built;
  scheduler_.Publish(published.deployment);
  f->versions[stored->number] = std::move(published);
  spdlog::info("function {} ({}): published version {}", f->record.name, id, stored->number);
  co_return *stored;
}

asio::awaitable<Result<void>> FunctionService::DeleteVersion(std::string id, int number) {
  WISP_DCHECK_ON_THREAD(io_thread_);
  if (!Find(id))
    co_return MakeError(ErrorCode::kNotFound, fmt::format("function {} not found", id));
  auto remove = [this, id, number] { return store_.DeleteVersion(id, number); };
  auto removed = co_await Offload(record_writes_, std::move(remove));
  if (!removed) co_return removed;
  if (Function* f = Find(id)) f->versions.erase(number);
  scheduler_.RetirePool(fmt::format("{}#{}", id, number));
  CollectCode();
  co_return Result<void>();
}

asio::awaitable<Result<store::AliasRecord>> FunctionService::PutAlias(
    std::string id, store::AliasRecord alias, bool create,
    std::optional<std::string> expected_revision_id) {
  WISP_DCHECK_ON_THREAD(io_thread_);
  if (!Find(id))
    co_return MakeError(ErrorCode::kNotFound, fmt::format("function {} not found", id));
  if (auto valid =
          ValidateRoute({alias.version, alias.additional_version, alias.additional_weight});
      !valid) {
    co_return tl::unexpected(valid.error());
  }
  alias.function_id = id;
  alias.revision_id = NewUuid();
  alias.updated_at_ms = ToEpochMillis(clock_.WallNow());
  if (create) alias.created_at_ms = alias.updated_at_ms;
  auto put = [this, alias, create, expected_revision_id] {
    return store_.PutAlias(alias, create, expected_revision_id);
  };
  auto stored = co_await Offload(record_writes_, std::move(put));
  if (!stored) co_return tl::unexpected(stored.error());
  Function* f = Find(id);
  if (!f) co_return MakeError(ErrorCode::kNotFound, fmt::format("function {} was deleted", id));
  if (auto old = f->aliases.find(alias.name); old != f->aliases.end() && !create) {
    alias.created_at_ms = old->second.created_at_ms;
  }
  f->aliases[alias.name] = alias;
  co_return alias;
}

asio::awaitable<Result<void>> FunctionService::DeleteAlias(std::string id, std::string name) {
  WISP_DCHECK_ON_THREAD(io_thread_);
  if (!Find(id))
    co_return MakeError(ErrorCode::kNotFound, fmt::format("function {} not found", id));
  auto remove = [this, id, name] { return store_.DeleteAlias(id, name); };
  auto removed = co_await Offload(record_writes_, std::move(remove));
  if (!removed) co_return removed;
  if (Function* f = Find(id)) f->aliases.erase(name);
  co_return Result<void>();
}

Result<ResolvedTarget> FunctionService::Resolve(Function& function, std::string_view qualifier,
                                                double uniform) {
  if (qualifier.empty() || qualifier == "$LATEST") {
    return ResolvedTarget{function.deployment, &function.record};
  }
  int number = 0;
  const bool numeric = qualifier.find_first_not_of("0123456789") == std::string_view::npos;
  if (numeric) {
    number = std::atoi(std::string(qualifier).c_str());
  } else {
    auto alias = function.aliases.find(qualifier);
    if (alias == function.aliases.end()) {
      return MakeError(ErrorCode::kNotFound,
                       fmt::format("function {} has no alias {}", function.record.name, qualifier));
    }
    const store::AliasRecord& a = alias->second;
    number = ChooseVersion({a.version, a.additional_version, a.additional_weight}, uniform);
  }
  auto version = function.versions.find(number);
  if (version == function.versions.end()) {
    return MakeError(ErrorCode::kNotFound,
                     fmt::format("function {} has no version {}", function.record.name, number));
  }
  if (!version->second.deployment) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("version {} of function {} cannot run on this node: its code is "
                                 "missing",
                                 number, function.record.name));
  }
  return ResolvedTarget{version->second.deployment, &version->second.record.config};
}

void FunctionService::StartWatching(std::chrono::milliseconds period) {
  watch_period_ = period;
  watching_ = true;
  watch_timer_.emplace(io_);
  asio::co_spawn(io_, Watch(), asio::detached);
}

void FunctionService::StopWatching() {
  watching_ = false;
  if (watch_timer_) watch_timer_->cancel();
}

asio::awaitable<void> FunctionService::Watch() {
  while (watching_) {
    watch_timer_->expires_after(watch_period_);
    boost::system::error_code ec;  // cancelled by StopWatching
    co_await watch_timer_->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (!watching_) break;
    co_await FollowChanges();
  }
}

asio::awaitable<void> FunctionService::FollowChanges() {
  constexpr int kChangesPerRead = 1000;
  const int64_t since = followed_revision_;
  auto read = [this, since] { return store_.Changes(since, kChangesPerRead); };
  auto changes = co_await Offload(workers_, std::move(read));
  if (!changes) {
    spdlog::warn("store watch: {}", changes.error().message);
    co_return;
  }
  if (changes->empty()) co_return;
  std::vector<std::string> ids;
  if (changes->front().revision > since + 1) {
    // The log no longer reaches back to where this node was: look at every function.
    auto all = co_await Offload(workers_, [this] { return store_.ListFunctions(); });
    if (!all) co_return;
    for (const auto& record : *all) ids.push_back(record.id);
    for (const auto& [id, f] : functions_) ids.push_back(id);
  }
  for (const auto& change : *changes) ids.push_back(change.function_id);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  bool all_applied = true;
  for (const auto& id : ids) all_applied = co_await Follow(id) && all_applied;
  // A function busy with a change of this node's is looked at again next time.
  if (all_applied) followed_revision_ = std::max(followed_revision_, changes->back().revision);
}

asio::awaitable<bool> FunctionService::Follow(std::string id) {
  struct StoredState {
    Result<store::FunctionRecord> record = MakeError(ErrorCode::kNotFound, "");
    std::vector<store::VersionRecord> versions;
    std::vector<store::AliasRecord> aliases;
    std::vector<std::pair<int, Result<code::TreeHandle>>> trees;
  };
  // The trees of versions this node does not have yet are made or found on the pool too.
  std::set<int> known;
  if (Function* f = Find(id)) {
    for (const auto& [number, version] : f->versions) known.insert(number);
  }
  auto read = [this, id, known]() -> StoredState {
    StoredState state;
    state.record = store_.GetFunction(id);
    if (!state.record) return state;
    if (auto versions = store_.ListVersions(id)) state.versions = std::move(*versions);
    if (auto aliases = store_.ListAliases(id)) state.aliases = std::move(*aliases);
    for (const auto& version : state.versions) {
      if (!known.count(version.number)) {
        state.trees.emplace_back(version.number, VersionTree(version));
      }
    }
    return state;
  };
  StoredState stored = co_await Offload(workers_, std::move(read));
  Function* f = Find(id);
  if (!stored.record) {
    if (stored.record.error().code == ErrorCode::kNotFound && f) {
      spdlog::info("function {} ({}) was deleted through the store: removing it", f->record.name,
                   id);
      DropLocal(id);
      CollectCode();
    }
    co_return true;
  }
  store::FunctionRecord& record = *stored.record;
  if (!f && deleted_here_.count(id)) co_return true;
  if (!f) {
    // Created by another node: deploy it here too (without writing: the writer does that).
    auto function = std::make_unique<Function>();
    function->metrics = metrics_.ForFunction(record.id, record.name);
    function->latest_version = record.version;
    function->record = record;
    function->record.state = "deploying";
    function->first_deploy = std::make_shared<Event>(io_.get_executor());
    function->changing = std::make_shared<Event>(io_.get_executor());
    auto creating = function->changing;
    functions_[id] = std::move(function);
    f = Find(id);
    AdoptVersions(*f, std::move(stored.versions), std::move(stored.trees),
                  std::move(stored.aliases));
    spdlog::info("function {} ({}) was created through the store: deploying it", record.name, id);
    asio::co_spawn(io_, DeployCreated(id, record, nullptr, creating, false), asio::detached);
    co_return true;
  }
  AdoptVersions(*f, std::move(stored.versions), std::move(stored.trees), std::move(stored.aliases));
  // This node's own writes are not followed; a change of its own in flight goes first (its
  // store write then conflicts, and the next look applies the other node's).
  if (record.revision <= f->record.revision) co_return true;
  if (f->changing) co_return false;
  const store::FunctionRecord& local = f->record;
  const bool same_code = record.code_tree == local.code_tree && record.code == local.code &&
                         record.runtime == local.runtime && record.handler == local.handler &&
                         record.style == local.style && record.memory_mb == local.memory_mb &&
                         record.vcpu == local.vcpu && record.env == local.env &&
                         record.network == local.network && record.name == local.name;
  if (same_code) {
    // What needs no new instances (timeout, retries, limits, description, tags...).
    const int version = f->record.version;
    const std::string state = f->record.state;
    const std::string error = f->record.error;
    const auto last_invoked = f->record.last_invoked_at_ms;
    f->record = record;
    f->record.version = version;
    f->record.state = state;
    f->record.error = error;
    f->record.last_invoked_at_ms = last_invoked;
    co_return true;
  }
  spdlog::info("function {} ({}) was updated through the store: deploying revision {}", record.name,
               id, record.revision);
  const auto mine = std::make_shared<Event>(io_.get_executor());
  f->changing = mine;
  const int version = ++f->latest_version;
  (void)co_await Deploy(id, version, record, nullptr, false);
  if (Function* g = Find(id); g && g->changing == mine) g->changing.reset();
  mine->Set();
  co_return true;
}

}  // namespace wisp::core
