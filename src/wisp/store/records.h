// The records the store keeps: plain data, no behaviour.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace wisp::store {

struct FunctionRecord {
  std::string id;
  std::string name;
  std::string runtime;  // "node" | "python" | "go"
  // "handler": the shim calls a handler function in the code (Lambda's model). "program": the
  // code is a whole program run once per event with FUNCTION_PAYLOAD set (seed 002's model).
  std::string style = "handler";
  std::string handler;
  std::string code;
  int timeout_seconds = 30;
  int memory_mb = 256;
  double vcpu = 1;
  std::map<std::string, std::string> env;
  int version = 1;    // the version that serves calls
  std::string state;  // creating | deploying | ready | error
  std::string error;  // why the last deploy failed; empty when it did not
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
  std::optional<int64_t> last_invoked_at_ms;
  // Asynchronous invocations: retries of failed attempts and the oldest event still run.
  int max_retries = 2;
  int retry_delay_seconds = 60;
  int max_event_age_seconds = 21600;
  int max_concurrency = 100;         // instances at once (capped by the node's limit)
  int min_instances = 0;             // kept warm
  int instance_concurrency = 1;      // calls one instance serves at once
  std::string metadata_json = "{}";  // the user's JSON object, stored as sent
  std::string version_label;         // the user's own version name (seed 002's "version")
  std::string network = "none";      // "none" | "outbound" (through a user-mode network stack)
  // How the code came: "file" (`code` is the one source file, written where the handler points)
  // or "zip" (a deployment package, unpacked into `code_tree`; `code` is empty).
  std::string code_format = "file";
  std::string code_sha256;  // base64 SHA-256 of the package's bytes (Lambda's CodeSha256)
  int64_t code_size = 0;    // the package's size in bytes (Lambda's CodeSize)
  // The code::CodeStore tree (hex hash) the version runs; empty in a record of an older wispd.
  std::string code_tree;
  std::string description;  // the user's words (Lambda's Description)
  std::map<std::string, std::string> tags;
  // The store-wide revision of the record's last write (Store::UpdateFunction compares it);
  // 0 before the store wrote it.
  int64_t revision = 0;
  // The function's URL (/fn/{name}): api::FunctionUrlConfig's stored JSON; empty: no URL. Not
  // part of a version: it belongs to the function.
  std::string url_config_json;
  // The project the function belongs to (core/projects.h: its name is then
  // "<project>--<name in project>"); empty: none. Fixed at create.
  std::string project;
  // The project file it came from ("api/users/[id].ts"): its route in the project; empty: none.
  std::string file_path;
  // false: disabled, every API refuses to run it (the Vercel-style API's is_active). Not part of
  // a version: it belongs to the function.
  bool active = true;
  // The function's schedules: schedule::Schedule's stored JSON array; empty: none. Not part of
  // a version: they belong to the function and fire $LATEST.
  std::string schedules_json;
};

// A published version: the function's configuration and code frozen as version `number`.
// Immutable; its code tree stays as long as the version does.
struct VersionRecord {
  std::string function_id;
  int number = 0;  // 1, 2, ... per function, never reused
  // The configuration as published (`code_tree` names its code; `version` and `state` are
  // those of $LATEST at the time and mean nothing for the version).
  FunctionRecord config;
  std::string description;
  int64_t created_at_ms = 0;
};

// A name for a version, optionally sending a share of the calls to a second version (a
// canary, Lambda's RoutingConfig.AdditionalVersionWeights).
struct AliasRecord {
  std::string function_id;
  std::string name;
  int version = 0;
  std::optional<int> additional_version;
  double additional_weight = 0;  // 0..1: the share of calls the additional version gets
  std::string description;
  std::string revision_id;  // changes with every write (Lambda's RevisionId)
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
};

// One entry of the store's change log: what another node following the store reloads.
struct FunctionChange {
  int64_t revision = 0;
  std::string function_id;
  std::string kind;  // "function" (created or updated), "deleted", "versions", "aliases"
};

struct InvocationRecord {
  std::string id;
  std::string function_id;
  std::string request_id;
  int version = 0;
  // The version the call ran: "$LATEST" or a published version's number ("3"); empty in the
  // records of an older wispd.
  std::string executed_version;
  std::string status;       // success | error | timeout
  int64_t duration_ms = 0;  // the function's own run: from the event handed over to its answer
  // Before it ran: waiting for an instance (including, on a cold start, the instance's start).
  int64_t queue_wait_ms = 0;
  // A cold start's initialisation (spawn or specialisation until the runtime asked for work);
  // nullopt for a call served by a warm instance.
  std::optional<int64_t> init_duration_ms;
  std::optional<int64_t> memory_used_mb;
  // A call of an asynchronous invocation (every attempt shares the invocation's id; the queue
  // keeps the invocation itself). false: a synchronous call, whose record is all there is.
  bool async = false;
  // The event as the caller sent it (valid JSON), or, when event_size is set, the first bytes of
  // it: a payload over the writer's per-field cap is stored cut (InvocationWriter).
  std::string event_json;
  std::string response_json;      // the result or error object (valid JSON); cut as event_json
  std::vector<std::string> logs;  // when logs_size is set: the last lines that fit the cap
  // The original size in bytes of a field that was cut; unset when the field is whole. For logs,
  // the sum of the lines' lengths.
  std::optional<int64_t> event_size;
  std::optional<int64_t> response_size;
  std::optional<int64_t> logs_size;
  int64_t invoked_at_ms = 0;
};

}  // namespace wisp::store
