#include "wisp/core/projects.h"

#include <gtest/gtest.h>

namespace wisp::core {
namespace {

TEST(ProjectNames, AcceptsSimpleNamesAndRefusesTheSeparator) {
  EXPECT_TRUE(ValidateProjectName("shop"));
  EXPECT_TRUE(ValidateProjectName("project-123"));
  EXPECT_TRUE(ValidateProjectName("a_b"));
  EXPECT_FALSE(ValidateProjectName(""));
  EXPECT_FALSE(ValidateProjectName("a--b"));
  EXPECT_FALSE(ValidateProjectName("Shop"));
  EXPECT_FALSE(ValidateProjectName("-shop"));
  EXPECT_FALSE(ValidateProjectName("shop-"));
  EXPECT_FALSE(ValidateProjectName("sh op"));
  EXPECT_FALSE(ValidateProjectName("projects"));
  EXPECT_FALSE(ValidateProjectName(std::string(kMaxProjectNameLength + 1, 'a')));
}

TEST(ProjectNames, GlobalNameJoinsAndSplitsAtTheFirstSeparator) {
  EXPECT_EQ(GlobalFunctionName("shop", "hello"), "shop--hello");
  EXPECT_EQ(GlobalFunctionName("", "hello"), "hello");
  EXPECT_EQ(NameInProject("shop", "shop--hello"), "hello");
  // A name in a project may itself hold "--": the project never does.
  EXPECT_EQ(NameInProject("shop", "shop--a--b"), "a--b");
  EXPECT_EQ(NameInProject("", "hello"), "hello");
  EXPECT_EQ(NameInProject("shop", "other"), "other");
}

TEST(ProjectNames, UnscopedNamesMayNotLookScoped) {
  EXPECT_TRUE(ValidateUnscopedName("hello-world"));
  EXPECT_FALSE(ValidateUnscopedName("shop--hello"));
}

TEST(ProjectRoutes, FilePathsBecomeRoutes) {
  EXPECT_EQ(RouteFromFilePath("api/hello.js")->pattern, "/api/hello");
  EXPECT_EQ(RouteFromFilePath("api/users/[id].ts")->pattern, "/api/users/:id");
  EXPECT_EQ(RouteFromFilePath("api/index.js")->pattern, "/api");
  EXPECT_EQ(RouteFromFilePath("api/[org]/repos.py")->pattern, "/api/:org/repos");
  EXPECT_EQ(RouteFromFilePath("api/docs/[...path].mjs")->pattern, "/api/docs/:path*");
  EXPECT_EQ(RouteFromFilePath("index.js")->pattern, "/");
  EXPECT_FALSE(RouteFromFilePath("api/../x.js"));
  EXPECT_FALSE(RouteFromFilePath("/api/x.js"));
  EXPECT_FALSE(RouteFromFilePath("api/[id.js"));
  EXPECT_FALSE(RouteFromFilePath("api/user-[id].js"));
  EXPECT_FALSE(RouteFromFilePath("api/[...all]/x.js"));
  EXPECT_FALSE(RouteFromFilePath(""));
}

std::vector<ProjectRoute> Routes(const std::vector<std::string>& files) {
  std::vector<ProjectRoute> out;
  for (const auto& file : files) out.push_back(*RouteFromFilePath(file));
  return out;
}

TEST(ProjectRoutes, StaticSegmentsBeatDynamicOnesWhateverTheOrder) {
  const auto routes = Routes({"api/users/[id].ts", "api/users/me.js", "api/[x]/me.js"});
  auto match = MatchRoute(routes, "/api/users/me");
  ASSERT_TRUE(match);
  EXPECT_EQ(match->index, 1u);
  EXPECT_TRUE(match->params.empty());

  match = MatchRoute(routes, "/api/users/42");
  ASSERT_TRUE(match);
  EXPECT_EQ(match->index, 0u);
  EXPECT_EQ(match->params.at("id"), "42");

  // The leftmost difference decides: /api/users/... is more specific than /api/:x/...
  match = MatchRoute(routes, "/api/other/me");
  ASSERT_TRUE(match);
  EXPECT_EQ(match->index, 2u);
  EXPECT_EQ(match->params.at("x"), "other");
}

TEST(ProjectRoutes, CatchAllTakesTheRestAndLosesToEverythingElse) {
  const auto routes = Routes({"api/docs/[...path].js", "api/docs/[page].js", "api/docs/index.js"});
  auto match = MatchRoute(routes, "/api/docs/a/b%20c");
  ASSERT_TRUE(match);
  EXPECT_EQ(match->index, 0u);
  EXPECT_EQ(match->params.at("path"), "a/b c");
  match = MatchRoute(routes, "/api/docs/intro");
  ASSERT_TRUE(match);
  EXPECT_EQ(match->index, 1u);
  match = MatchRoute(routes, "/api/docs");
  ASSERT_TRUE(match);
  EXPECT_EQ(match->index, 2u);
}

TEST(ProjectRoutes, NoMatchForOtherLengthsOrStaticText) {
  const auto routes = Routes({"api/users/[id].ts", "api/hello.js"});
  EXPECT_FALSE(MatchRoute(routes, "/api/users"));
  EXPECT_FALSE(MatchRoute(routes, "/api/users/1/2"));
  EXPECT_FALSE(MatchRoute(routes, "/api/hellox"));
  auto match = MatchRoute(routes, "/api/hello/");  // a trailing slash is the same path
  ASSERT_TRUE(match);
  EXPECT_EQ(match->index, 1u);
  EXPECT_EQ(MatchRoute(routes, "/api/users/%E2%9C%93")->params.at("id"), "\xE2\x9C\x93");
}

}  // namespace
}  // namespace wisp::core
