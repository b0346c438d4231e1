#include "wisp/core/alias_routing.h"

#include <random>

#include <fmt/format.h>

namespace wisp::core {

int ChooseVersion(const AliasRoute& route, double uniform) {
  if (route.additional_version && uniform < route.additional_weight) {
    return *route.additional_version;
  }
  return route.version;
}

Result<void> ValidateRoute(const AliasRoute& route) {
  if (route.version < 1) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "an alias points at a published version (a number from 1), not $LATEST");
  }
  if (!route.additional_version) {
    if (route.additional_weight != 0) {
      return MakeError(ErrorCode::kInvalidArgument, "a weight needs an additional version");
    }
    return {};
  }
  if (*route.additional_version < 1) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "the additional version must be a published version (a number from 1)");
  }
  if (*route.additional_version == route.version) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("the additional version must differ from the alias's version "
                                 "({})",
                                 route.version));
  }
  if (!(route.additional_weight >= 0 && route.additional_weight <= 1)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "the additional version's weight must be between 0.0 and 1.0");
  }
  return {};
}

double UniformRandom() {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(generator);
}

}  // namespace wisp::core
