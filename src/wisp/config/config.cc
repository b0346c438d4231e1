#include "wisp/config/config.h"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>

#include <CLI/CLI.hpp>
#include <toml.hpp>

namespace wisp {
namespace {

Result<uint64_t> ParseUnsigned(const std::string& name, const std::string& text) {
  try {
    size_t used = 0;
    const unsigned long long value = std::stoull(text, &used);
    if (used != text.size() || text.empty() || text[0] == '-') throw std::invalid_argument(text);
    return value;
  } catch (const std::exception&) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: '{}' is not a non-negative integer", name, text));
  }
}

Result<double> ParseDouble(const std::string& name, const std::string& text) {
  try {
    size_t used = 0;
    const double value = std::stod(text, &used);
    if (used != text.size() || value < 0) throw std::invalid_argument(text);
    return value;
  } catch (const std::exception&) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: '{}' is not a non-negative number", name, text));
  }
}

Result<bool> ParseBool(const std::string& name, const std::string& text) {
  if (text == "1" || text == "true" || text == "yes" || text == "on") return true;
  if (text == "0" || text == "false" || text == "no" || text == "off") return false;
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("{}: '{}' is not a boolean (true/false)", name, text));
}

// One table of every setting a file or the environment may set, so the two stay in step.
struct Setting {
  const char* key;  // TOML key; the environment variable is WISP_<KEY upper-cased>
  Result<void> (*apply)(Config&, const std::string& name, const std::string& value);
};

template <auto Member>
Result<void> SetString(Config& c, const std::string&, const std::string& v) {
  c.*Member = v;
  return {};
}
template <auto Member>
Result<void> SetUnsigned(Config& c, const std::string& name, const std::string& v) {
  using Value = std::remove_reference_t<decltype(c.*Member)>;
  auto parsed = ParseUnsigned(name, v);
  if (!parsed) return tl::unexpected(parsed.error());
  // Cast to the setting's width, a number too large would silently become a small one.
  if (*parsed > std::numeric_limits<Value>::max()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: '{}' is too large (at most {})", name, v,
                                 std::numeric_limits<Value>::max()));
  }
  c.*Member = static_cast<Value>(*parsed);
  return {};
}
template <auto Member>
Result<void> SetDouble(Config& c, const std::string& name, const std::string& v) {
  auto parsed = ParseDouble(name, v);
  if (!parsed) return tl::unexpected(parsed.error());
  c.*Member = *parsed;
  return {};
}
template <auto Member>
Result<void> SetBool(Config& c, const std::string& name, const std::string& v) {
  auto parsed = ParseBool(name, v);
  if (!parsed) return tl::unexpected(parsed.error());
  c.*Member = *parsed;
  return {};
}
// A database of a few functions and no records already takes tens of kilobytes: a budget under
// a mebibyte would delete every record as soon as it is written.
Result<void> SetRecordsBudget(Config& c, const std::string& name, const std::string& v) {
  constexpr uint64_t kMinBudget = 1 << 20;
  auto parsed = ParseUnsigned(name, v);
  if (!parsed) return tl::unexpected(parsed.error());
  if (*parsed != 0 && *parsed < kMinBudget) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: '{}' is too small (0 for no budget, or at least {})", name, v,
                                 kMinBudget));
  }
  c.invocation_records_max_bytes = *parsed;
  return {};
}
Result<void> SetListen(Config& c, const std::string&, const std::string& v) {
  return ParseListenAddress(v, c);
}
Result<void> SetRegion(Config& c, const std::string& name, const std::string& v) {
  if (!IsAwsRegion(v)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: '{}' is not an AWS region name such as \"us-east-1\" or "
                                 "\"eu-central-2\"",
                                 name, v));
  }
  c.region = v;
  return {};
}

Result<void> SetAccountId(Config& c, const std::string& name, const std::string& v) {
  if (v.size() != 12 || v.find_first_not_of("0123456789") != std::string::npos) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: '{}' is not an AWS account id (12 digits)", name, v));
  }
  c.account_id = v;
  return {};
}

const Setting kSettings[] = {
    {"account_id", SetAccountId},
    {"listen", SetListen},
    {"data_dir", SetString<&Config::data_dir>},
    {"store_file", SetString<&Config::store_file>},
    {"log_json", SetBool<&Config::log_json>},
    {"log_level", SetString<&Config::log_level>},
    {"node_path", SetString<&Config::node_path>},
    {"python_path", SetString<&Config::python_path>},
    {"go_path", SetString<&Config::go_path>},
    {"project_domain", SetString<&Config::project_domain>},
    {"region", SetRegion},
    {"runtimes_dir", SetString<&Config::runtimes_dir>},
    {"sandbox_backend", SetString<&Config::sandbox_backend>},
    {"sandbox_id_base", SetUnsigned<&Config::sandbox_id_base>},
    {"sandbox_id_count", SetUnsigned<&Config::sandbox_id_count>},
    {"sandbox_tmp_mb", SetUnsigned<&Config::sandbox_tmp_mb>},
    {"sandbox_pids_limit", SetUnsigned<&Config::sandbox_pids_limit>},
    {"enforce_limits", SetBool<&Config::enforce_limits>},
    {"outbound_private_networks", SetBool<&Config::outbound_private_networks>},
    {"init_timeout_seconds", SetDouble<&Config::init_timeout_seconds>},
    {"max_instances_per_function", SetUnsigned<&Config::max_instances_per_function>},
    {"max_instance_concurrency", SetUnsigned<&Config::max_instance_concurrency>},
    {"max_instances_total", SetUnsigned<&Config::max_instances_total>},
    {"memory_budget_percent", SetUnsigned<&Config::memory_budget_percent>},
    {"max_queued_calls_per_function", SetUnsigned<&Config::max_queued_calls_per_function>},
    {"prewarm_node_instances", SetUnsigned<&Config::prewarm_node_instances>},
    {"prewarm_python_instances", SetUnsigned<&Config::prewarm_python_instances>},
    {"prewarm_max_instances", SetUnsigned<&Config::prewarm_max_instances>},
    {"prewarm_demand_window_seconds", SetDouble<&Config::prewarm_demand_window_seconds>},
    {"warm_up_timeout_seconds", SetDouble<&Config::warm_up_timeout_seconds>},
    {"idle_instance_keepalive_seconds", SetDouble<&Config::idle_instance_keepalive_seconds>},
    {"queue_wait_seconds", SetDouble<&Config::queue_wait_seconds>},
    {"deploy_queue_wait_seconds", SetDouble<&Config::deploy_queue_wait_seconds>},
    {"max_request_bytes", SetUnsigned<&Config::max_request_bytes>},
    {"max_response_bytes", SetUnsigned<&Config::max_response_bytes>},
    {"max_log_bytes_per_invocation", SetUnsigned<&Config::max_log_bytes_per_invocation>},
    {"shutdown_grace_seconds", SetDouble<&Config::shutdown_grace_seconds>},
    {"http_header_timeout_seconds", SetDouble<&Config::http_header_timeout_seconds>},
    {"http_body_timeout_seconds", SetDouble<&Config::http_body_timeout_seconds>},
    {"http_max_connections_per_client", SetUnsigned<&Config::http_max_connections_per_client>},
    {"async_lease_seconds", SetDouble<&Config::async_lease_seconds>},
    {"schedule_catch_up_seconds", SetDouble<&Config::schedule_catch_up_seconds>},
    {"schedule_test_clock_start", SetUnsigned<&Config::schedule_test_clock_start>},
    {"invocation_records_per_function", SetUnsigned<&Config::invocation_records_per_function>},
    {"go_build_uid", SetUnsigned<&Config::go_build_uid>},
    {"go_build_concurrency", SetUnsigned<&Config::go_build_concurrency>},
    {"go_build_memory_mb", SetUnsigned<&Config::go_build_memory_mb>},
    {"go_build_pids_limit", SetUnsigned<&Config::go_build_pids_limit>},
    {"go_build_vcpu", SetDouble<&Config::go_build_vcpu>},
    {"go_build_timeout_seconds", SetDouble<&Config::go_build_timeout_seconds>},
    {"code_max_zip_mb", SetUnsigned<&Config::code_max_zip_mb>},
    {"code_max_unzipped_mb", SetUnsigned<&Config::code_max_unzipped_mb>},
    {"code_max_zip_entries", SetUnsigned<&Config::code_max_zip_entries>},
    {"invocation_records_max_bytes", SetRecordsBudget},
    {"invocation_record_field_max_bytes", SetUnsigned<&Config::invocation_record_field_max_bytes>},
    {"auth_required", SetBool<&Config::auth_required>},
};

std::string EnvName(const char* key) {
  std::string name = "WISP_";
  for (const char* p = key; *p; ++p) name.push_back(static_cast<char>(std::toupper(*p)));
  return name;
}

// The [auth] table: `required = true` and [[auth.keys]] entries {id, secret, description}.
Result<void> ApplyAuthTable(const std::string& path, const toml::value& table, Config& config) {
  const auto fail = [&path](std::string what) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("config file {}: {}", path, what));
  };
  for (const auto& [key, value] : table.as_table()) {
    if (key == "required") {
      if (!value.is_boolean()) return fail("auth.required must be true or false");
      config.auth_required = value.as_boolean();
    } else if (key == "keys") {
      if (!value.is_array()) return fail("auth.keys must be an array of tables ([[auth.keys]])");
      for (const auto& entry : value.as_array()) {
        if (!entry.is_table()) return fail("each [[auth.keys]] entry must be a table");
        ConfigApiKey api_key;
        for (const auto& [field, field_value] : entry.as_table()) {
          if (!field_value.is_string()) {
            return fail(fmt::format("auth.keys: '{}' must be a string", field));
          }
          const std::string text = field_value.as_string().str;
          if (field == "id") {
            api_key.id = text;
          } else if (field == "secret") {
            api_key.secret = text;
          } else if (field == "description") {
            api_key.description = text;
          } else {
            return fail(
                fmt::format("auth.keys: unknown field '{}' (id, secret, description)", field));
          }
        }
        if (api_key.id.empty() || api_key.secret.empty()) {
          return fail("each [[auth.keys]] entry needs an id and a secret");
        }
        config.auth_keys.push_back(std::move(api_key));
      }
      config.auth_keys_file = path;
    } else {
      return fail(fmt::format("unknown setting 'auth.{}' (required, keys)", key));
    }
  }
  return {};
}

}  // namespace

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  // 127.0.0.0/8 in dotted-quad form: four numbers, the first 127.
  unsigned a = 0, b = 0, c = 0, d = 0;
  char tail = 0;
  if (std::sscanf(host.c_str(), "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) != 4) return false;
  return a == 127 && b <= 255 && c <= 255 && d <= 255;
}

bool IsAwsRegion(std::string_view name) {
  // <area>-<word>[-<word>...]-<number>: "us-east-1", "us-gov-west-1", "ap-southeast-4".
  size_t parts = 0;
  size_t start = 0;
  while (start <= name.size()) {
    const size_t end = std::min(name.find('-', start), name.size());
    const std::string_view part = name.substr(start, end - start);
    const bool last = end == name.size();
    if (part.empty()) return false;
    for (char c : part) {
      const bool ok = last ? (c >= '0' && c <= '9') : (c >= 'a' && c <= 'z');
      if (!ok) return false;
    }
    ++parts;
    start = end + 1;
  }
  return parts >= 3;
}

Result<void> ParseListenAddress(const std::string& address, Config& config) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("listen address '{}' is not HOST:PORT", address));
  }
  auto port = ParseUnsigned("listen port", address.substr(colon + 1));
  if (!port || *port > 65535) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("listen address '{}' has no valid port (0-65535)", address));
  }
  config.listen_host = address.substr(0, colon);
  config.listen_port = static_cast<uint16_t>(*port);
  return {};
}

Result<void> ApplyConfigFile(const std::string& path, Config& config) {
  toml::value file;
  try {
    file = toml::parse(path);
  } catch (const std::exception& e) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("config file {}: {}", path, e.what()));
  }
  if (!file.is_table()) return {};
  for (const auto& [key, value] : file.as_table()) {
    if (key == "auth" && value.is_table()) {
      if (auto applied = ApplyAuthTable(path, value, config); !applied) return applied;
      continue;
    }
    const Setting* setting = nullptr;
    for (const auto& s : kSettings) {
      if (key == s.key) setting = &s;
    }
    if (!setting) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("config file {}: unknown setting '{}'", path, key));
    }
    std::string text;
    if (value.is_string()) {
      text = value.as_string().str;
    } else if (value.is_boolean()) {
      text = value.as_boolean() ? "true" : "false";
    } else if (value.is_integer()) {
      text = std::to_string(value.as_integer());
    } else if (value.is_floating()) {
      text = std::to_string(value.as_floating());
    } else {
      return MakeError(
          ErrorCode::kInvalidArgument,
          fmt::format("config file {}: '{}' must be a string, number or boolean", path, key));
    }
    if (auto applied = setting->apply(config, fmt::format("{} ({})", key, path), text); !applied) {
      return applied;
    }
  }
  return {};
}

Result<void> ApplyEnvironment(Config& config, const char* (*getenv_fn)(const char*)) {
  for (const auto& s : kSettings) {
    const std::string name = EnvName(s.key);
    if (const char* value = getenv_fn(name.c_str())) {
      if (auto applied = s.apply(config, name, value); !applied) return applied;
    }
  }
  return {};
}

Result<ParsedConfig> ParseConfig(int argc, char** argv) {
  ParsedConfig parsed;
  Config& config = parsed.config;

  CLI::App app{"wispd: the Wisp serverless functions daemon"};
  std::string config_file, listen, data_dir, log_level;
  bool log_json = false, no_limits = false, private_networks = false, auth_required = false;
  app.add_option("--config", config_file, "TOML configuration file")->envname("WISP_CONFIG");
  app.add_option("--listen", listen, "HOST:PORT of the public API (default 127.0.0.1:18080)");
  app.add_option("--data-dir", data_dir,
                 "directory for the store and function code (default ./data)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  app.add_flag("--log-json", log_json, "write logs as JSON lines");
  app.add_flag("--no-enforce-limits", no_limits,
               "start even when sandbox resource limits cannot be enforced (unsafe)");
  app.add_flag("--outbound-private-networks", private_networks,
               "let functions with outbound network reach private, link-local and cloud "
               "metadata addresses");
  app.add_flag("--auth-required", auth_required,
               "require an API key on every request (always on for a non-loopback listener)");
  // `wispd keys ...`: options of wispd itself (--data-dir, --config) may follow the words.
  KeysCommand keys_command;
  CLI::App* keys = app.add_subcommand(
      "keys", "manage the API keys in the data dir (takes effect in a running wispd)");
  keys->require_subcommand(1);
  keys->fallthrough();
  CLI::App* create = keys->add_subcommand("create", "create a key and print its secret (once)");
  create->add_option("--description", keys_command.description, "what the key is for");
  create->fallthrough();
  keys->add_subcommand("list", "list the keys (ids and descriptions, never secrets)")
      ->fallthrough();
  CLI::App* revoke = keys->add_subcommand("revoke", "revoke a key: it stops working at once");
  revoke->add_option("id", keys_command.id, "the key's id")->required();
  revoke->fallthrough();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    parsed.exit_now = true;
    parsed.exit_code = app.exit(e);
    return parsed;
  } catch (const CLI::ParseError& e) {
    return MakeError(ErrorCode::kInvalidArgument, e.what());
  }

  if (!config_file.empty()) {
    if (auto applied = ApplyConfigFile(config_file, config); !applied) {
      return tl::unexpected(applied.error());
    }
  }
  if (auto applied =
          ApplyEnvironment(config, [](const char* n) -> const char* { return std::getenv(n); });
      !applied) {
    return tl::unexpected(applied.error());
  }
  if (!listen.empty()) {
    if (auto applied = ParseListenAddress(listen, config); !applied) {
      return tl::unexpected(applied.error());
    }
  }
  if (!data_dir.empty()) config.data_dir = data_dir;
  if (!log_level.empty()) config.log_level = log_level;
  if (log_json) config.log_json = true;
  if (no_limits) config.enforce_limits = false;
  if (private_networks) config.outbound_private_networks = true;
  if (auth_required) config.auth_required = true;
  for (const CLI::App* action : keys->get_subcommands()) {
    if (action->parsed()) {
      keys_command.action = action->get_name();
      parsed.keys_command = keys_command;
    }
  }
  // 0 would mean "no limit" to a cgroup, or no build at all: never what is meant.
  if (config.go_build_concurrency == 0 || config.go_build_memory_mb == 0 ||
      config.go_build_pids_limit == 0 || config.go_build_timeout_seconds < 1) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "go_build_concurrency, go_build_memory_mb and go_build_pids_limit must be at "
                     "least 1, go_build_timeout_seconds at least 1 s");
  }
  if (config.schedule_catch_up_seconds < 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "schedule_catch_up_seconds must be 0 or more (0: missed slots never fire)");
  }
  if (config.go_build_uid == 0) {
    return MakeError(ErrorCode::kInvalidArgument, "go_build_uid must not be root");
  }
  if (config.go_build_uid >= config.sandbox_id_base &&
      uint64_t{config.go_build_uid} < uint64_t{config.sandbox_id_base} + config.sandbox_id_count) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("go_build_uid {} lies in the functions' sandbox ids {}..{}: a "
                                 "function could then write the Go cache",
                                 config.go_build_uid, config.sandbox_id_base,
                                 uint64_t{config.sandbox_id_base} + config.sandbox_id_count - 1));
  }
  return parsed;
}

}  // namespace wisp
