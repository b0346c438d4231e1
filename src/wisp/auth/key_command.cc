#include "wisp/auth/key_command.h"

#include <fmt/format.h>

namespace wisp::auth {
namespace {

void Print(std::FILE* to, const std::string& text) { std::fputs(text.c_str(), to); }

}  // namespace

int RunKeyCommand(KeyRegistry& registry, const std::string& action, const std::string& argument,
                  std::FILE* out, std::FILE* err) {
  if (action == "create") {
    auto key = registry.Create(argument);
    if (!key) {
      Print(err, fmt::format("wispd keys create: {}\n", key.error().message));
      return 1;
    }
    // Labelled lines, so a script can take them (`awk '/^secret:/ {print $2}'`).
    Print(out, fmt::format("id:     {}\nsecret: {}\n", key->id, key->secret));
    Print(err,
          "The secret is shown only now: store it. Use it as \"Authorization: Bearer <secret>\", "
          "or as an AWS access key id and secret access key for the Lambda API.\n");
    return 0;
  }
  if (action == "list") {
    const auto keys = registry.Snapshot();
    Print(out, fmt::format("{:<22}{:<26}{:<8}{}\n", "ID", "CREATED", "SOURCE", "DESCRIPTION"));
    for (const ApiKey& key : keys->keys()) {
      const std::string created = key.created_at_ms > 0
                                      ? FormatIso8601(std::chrono::system_clock::time_point(
                                            std::chrono::milliseconds(key.created_at_ms)))
                                      : "-";
      Print(out,
            fmt::format("{:<22}{:<26}{:<8}{}\n", key.id, created,
                        key.source == KeySource::kConfig ? "config" : "store", key.description));
    }
    return 0;
  }
  if (action == "revoke") {
    if (auto revoked = registry.Revoke(argument); !revoked) {
      Print(err, fmt::format("wispd keys revoke: {}\n", revoked.error().message));
      return 1;
    }
    Print(out, fmt::format("revoked {}\n", argument));
    return 0;
  }
  Print(err, fmt::format("wispd keys: unknown action '{}' (create, list, revoke)\n", action));
  return 2;
}

}  // namespace wisp::auth
