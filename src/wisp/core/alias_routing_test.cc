#include "wisp/core/alias_routing.h"

#include <gtest/gtest.h>

namespace wisp::core {
namespace {

TEST(AliasRouting, WithoutAnAdditionalVersionTheVersionServesEveryCall) {
  const AliasRoute route{3, std::nullopt, 0};
  for (double u : {0.0, 0.5, 0.999}) EXPECT_EQ(ChooseVersion(route, u), 3);
}

TEST(AliasRouting, TheWeightIsTheShareOfTheAdditionalVersion) {
  const AliasRoute route{1, 2, 0.3};
  EXPECT_EQ(ChooseVersion(route, 0.0), 2);
  EXPECT_EQ(ChooseVersion(route, 0.299), 2);
  EXPECT_EQ(ChooseVersion(route, 0.3), 1);
  EXPECT_EQ(ChooseVersion(route, 0.999), 1);
  // Over many draws of the generator, close to the weight.
  int additional = 0;
  for (int i = 0; i < 10000; ++i) additional += ChooseVersion(route, UniformRandom()) == 2;
  EXPECT_GT(additional, 2500);
  EXPECT_LT(additional, 3500);
}

TEST(AliasRouting, WeightsZeroAndOneAreAllOrNothing) {
  EXPECT_EQ(ChooseVersion({1, 2, 0.0}, 0.0), 1);
  EXPECT_EQ(ChooseVersion({1, 2, 1.0}, 0.999), 2);
}

TEST(AliasRouting, ValidationNamesWhatIsWrong) {
  EXPECT_TRUE(ValidateRoute({1, std::nullopt, 0}));
  EXPECT_TRUE(ValidateRoute({1, 2, 0.5}));
  EXPECT_FALSE(ValidateRoute({0, std::nullopt, 0}));
  EXPECT_FALSE(ValidateRoute({1, 1, 0.5}));
  EXPECT_FALSE(ValidateRoute({1, 2, 1.5}));
  EXPECT_FALSE(ValidateRoute({1, 2, -0.1}));
  EXPECT_FALSE(ValidateRoute({1, std::nullopt, 0.2}));
  EXPECT_FALSE(ValidateRoute({1, 0, 0.2}));
}

}  // namespace
}  // namespace wisp::core
