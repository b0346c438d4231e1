#include "wisp/sandbox/backend_factory.h"

#include <array>

#include <fmt/format.h>

#include "wisp/sandbox/process_jail.h"

namespace wisp::sandbox {
namespace {

constexpr std::array<std::string_view, 1> kBackendNames = {"process"};

}  // namespace

std::span<const std::string_view> BackendNames() { return kBackendNames; }

Result<std::unique_ptr<Backend>> MakeBackend(asio::io_context& io, const BackendOptions& options) {
  if (options.name == "process") {
    auto launcher = Launcher::Fork(options.launcher);
    if (!launcher) {
      return MakeError(launcher.error().code,
                       "cannot start the sandbox launcher: " + launcher.error().message);
    }
    return std::make_unique<ProcessJail>(io, std::move(*launcher));
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("sandbox_backend: '{}' is not a backend; valid: {}", options.name,
                               fmt::join(kBackendNames, ", ")));
}

}  // namespace wisp::sandbox
