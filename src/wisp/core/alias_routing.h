// Which version an alias sends a call to: its version, or with probability `additional_weight`
// its additional version (a canary, Lambda's RoutingConfig.AdditionalVersionWeights). Pure: the
// caller brings the random number, so tests choose it.
#pragma once

#include <optional>

#include "wisp/common/result.h"

namespace wisp::core {

struct AliasRoute {
  int version = 0;
  std::optional<int> additional_version;
  double additional_weight = 0;  // 0..1
};

// `uniform` is in [0, 1): below the weight, the additional version serves.
int ChooseVersion(const AliasRoute& route, double uniform);

// A route Lambda would accept: a version from 1, a weight in [0, 1], an additional version that
// is not the version itself. The message names what is wrong.
Result<void> ValidateRoute(const AliasRoute& route);

// A number in [0, 1) from a per-thread generator, for ChooseVersion.
double UniformRandom();

}  // namespace wisp::core
