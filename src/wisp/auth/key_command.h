// `wispd keys create|list|revoke`: the command line's way to manage keys, on the data dir's
// store, also while a wispd serves from it (which sees the change within a second, or at once
// for a request that names a new key).
#pragma once

#include <cstdio>
#include <string>

#include "wisp/auth/api_keys.h"

namespace wisp::auth {

// Runs `action` ("create" with `argument` the description, "list", or "revoke" with `argument`
// the id), printing to `out` (results) and `err` (errors). Returns the process's exit code.
int RunKeyCommand(KeyRegistry& registry, const std::string& action, const std::string& argument,
                  std::FILE* out, std::FILE* err);

}  // namespace wisp::auth
