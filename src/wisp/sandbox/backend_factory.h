// The backend wispd runs its function instances in, chosen by configuration
// (Config::sandbox_backend) instead of by a type named in main().
//
// Thread rules: MakeBackend runs before wispd starts any thread (the process jail forks its
// launcher, which must not copy a threaded process).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "wisp/common/asio.h"
#include "wisp/common/result.h"
#include "wisp/sandbox/backend.h"
#include "wisp/sandbox/launcher.h"

namespace wisp::sandbox {

// Every name MakeBackend knows, in the order an error lists them.
std::span<const std::string_view> BackendNames();

struct BackendOptions {
  std::string name = "process";
  // For "process": the launcher that creates the instances' sandboxes.
  LauncherOptions launcher;
};

// Starts the backend `options.name` names, bound to `io` (whose thread must then make every
// call to it). An unknown name is refused with the list of valid ones.
Result<std::unique_ptr<Backend>> MakeBackend(asio::io_context& io, const BackendOptions& options);

}  // namespace wisp::sandbox
