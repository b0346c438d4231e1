#include "wisp/cli/project_folder.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace wisp::cli {
namespace {
namespace fs = std::filesystem;

TEST(Manifest, TomlSetsDefaultsAndPerFunctionOverrides) {
  std::string error;
  auto manifest = ParseManifest(R"toml(
project = "shop"
memory = 256
timeout = 10
public = true
schedule = "rate(5 minutes)"

[env]
GREETING = "hi"

[functions."api/users/[id].ts"]
name = "user"
memory = 512
env = { EXTRA = "x" }
schedule = [{ expression = "cron(0 9 * * ? *)", timezone = "Europe/Paris" }]
)toml",
                                true, &error);
  ASSERT_TRUE(manifest) << error;
  EXPECT_EQ(manifest->project, "shop");
  EXPECT_EQ(manifest->defaults.memory_mb, 256);
  EXPECT_EQ(manifest->defaults.timeout_seconds, 10);
  EXPECT_EQ(manifest->defaults.is_public, true);
  EXPECT_EQ(manifest->defaults.env.at("GREETING"), "hi");
  EXPECT_EQ(*manifest->defaults.schedules,
            nlohmann::json::parse(R"json([{"expression":"rate(5 minutes)"}])json"));
  const auto& user = manifest->functions.at("api/users/[id].ts");
  EXPECT_EQ(user.name, "user");
  EXPECT_EQ(user.memory_mb, 512);
  EXPECT_EQ(user.env.at("EXTRA"), "x");
  EXPECT_EQ((*user.schedules)[0]["timezone"], "Europe/Paris");
}

TEST(Manifest, JsonIsTheSameShape) {
  std::string error;
  auto manifest = ParseManifest(
      R"({"project": "p", "timeout": 5, "functions": {"api/a.js": {"handler": "main"}}})", false,
      &error);
  ASSERT_TRUE(manifest) << error;
  EXPECT_EQ(manifest->defaults.timeout_seconds, 5);
  EXPECT_EQ(manifest->functions.at("api/a.js").handler, "main");
}

TEST(Manifest, UnknownKeysAndWrongTypesAreNamed) {
  std::string error;
  EXPECT_FALSE(ParseManifest("memroy = 3\n", true, &error));
  EXPECT_NE(error.find("memroy"), std::string::npos) << error;
  EXPECT_FALSE(ParseManifest("timeout = \"10s\"\n", true, &error));
  EXPECT_NE(error.find("timeout"), std::string::npos) << error;
  EXPECT_FALSE(ParseManifest("[functions.\"api/a.js\"]\nram = 1\n", true, &error));
  EXPECT_NE(error.find("api/a.js"), std::string::npos) << error;
  EXPECT_FALSE(ParseManifest("schedule = 5\n", true, &error));
  EXPECT_FALSE(ParseManifest("handler = \"x\"\n", true, &error));
  EXPECT_FALSE(ParseManifest("not toml at all [", true, &error));
  EXPECT_FALSE(ParseManifest("[1, 2]", false, &error));
}

TEST(Manifest, SchedulesMatchWhatWispdShowsWithItsDefaults) {
  using nlohmann::json;
  const auto stored = json::parse(
      R"j([{"name": "s1", "expression": "rate(5 minutes)", "timezone": "UTC", "enabled": true}])j");
  EXPECT_TRUE(SchedulesMatch(stored, json::parse(R"j([{"expression": "rate(5 minutes)"}])j")));
  EXPECT_FALSE(SchedulesMatch(stored, json::parse(R"j([{"expression": "rate(6 minutes)"}])j")));
  EXPECT_FALSE(SchedulesMatch(stored, json::array()));
  EXPECT_FALSE(SchedulesMatch(json(), json::parse(R"j([{"expression": "x"}])j")));
}

TEST(ProjectNames, FromPaths) {
  EXPECT_EQ(FunctionNameFromPath("api/hello.js"), "hello");
  EXPECT_EQ(FunctionNameFromPath("api/users/[id].ts"), "users-id");
  EXPECT_EQ(FunctionNameFromPath("api/index.js"), "index");
  EXPECT_EQ(FunctionNameFromPath("api/docs/[...path].mjs"), "docs-path");
  EXPECT_EQ(SafeSegment("[id]"), "_id_");
  EXPECT_EQ(SafeSegment("plain-name_1"), "plain-name_1");
}

Manifest ManifestFor(const std::string& project) {
  Manifest manifest;
  manifest.project = project;
  return manifest;
}

class FolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("wisp-folder-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& path, const std::string& text) {
    fs::create_directories((dir_ / path).parent_path());
    std::ofstream(dir_ / path) << text;
  }
  static std::vector<std::string> Archive(const ProjectFunction& fn) {
    std::vector<std::string> out;
    for (const auto& entry : fn.package) out.push_back(entry.archive_path);
    std::sort(out.begin(), out.end());
    return out;
  }
  fs::path dir_;
};

TEST_F(FolderTest, EveryFunctionFileWithItsPackage) {
  Write("api/hello.js", "exports.handler = async () => 1;");
  Write("api/users/[id].ts", "export const handler = async () => 1;");
  Write("api/_lib/db.js", "module.exports = {};");
  Write("api/report/report.py", "def handler(e, c): return 1");
  Write("api/report/_helper.py", "X = 1");
  Write("api/report/data.csv", "a,b");
  Write("api/types.d.ts", "export {}");
  Write("package.json", "{}");
  Write("node_modules/left-pad/index.js", "module.exports = 1;");
  Write("README.md", "not shipped");
  std::string error;
  auto plan = PlanProject(dir_.string(), ManifestFor("demo"), &error);
  ASSERT_TRUE(plan) << error;
  EXPECT_EQ(plan->project, "demo");
  ASSERT_EQ(plan->functions.size(), 3u);

  const auto& hello = plan->functions[0];
  EXPECT_EQ(hello.file_path, "api/hello.js");
  EXPECT_EQ(hello.name, "hello");
  EXPECT_EQ(hello.runtime, "node");
  EXPECT_EQ(hello.handler, "api/hello.handler");
  EXPECT_EQ(Archive(hello),
            (std::vector<std::string>{"api/_lib/db.js", "api/hello.js", "api/report/_helper.py",
                                      "api/report/data.csv", "api/types.d.ts",
                                      "node_modules/left-pad/index.js", "package.json"}));

  const auto& report = plan->functions[1];
  EXPECT_EQ(report.file_path, "api/report/report.py");
  EXPECT_EQ(report.runtime, "python");
  EXPECT_EQ(report.handler, "report.handler");
  EXPECT_EQ(Archive(report), (std::vector<std::string>{"_helper.py", "data.csv", "report.py"}));

  const auto& user = plan->functions[2];
  EXPECT_EQ(user.file_path, "api/users/[id].ts");
  EXPECT_EQ(user.name, "users-id");
  EXPECT_EQ(user.handler, "api/users/_id_.handler");
  EXPECT_NE(std::find(Archive(user).begin(), Archive(user).end(), "api/users/_id_.ts"),
            Archive(user).end());
}

TEST_F(FolderTest, SamePackageBytesEveryTimeAndDifferentWhenAFileChanges) {
  Write("api/a.js", "exports.handler = async () => 1;");
  Write("api/b.js", "exports.handler = async () => 2;");
  std::string error;
  auto first = PlanProject(dir_.string(), ManifestFor("x"), &error);
  ASSERT_TRUE(first) << error;
  const auto zip_a = ZipEntries(first->functions[0].package, &error);
  const auto zip_b = ZipEntries(first->functions[1].package, &error);
  ASSERT_TRUE(zip_a && zip_b) << error;
  EXPECT_EQ(*ZipEntries(first->functions[0].package, &error), *zip_a);
  Write("api/b.js", "exports.handler = async () => 3;");
  EXPECT_EQ(CodeSha256(*ZipEntries(first->functions[0].package, &error)), CodeSha256(*zip_a));
  EXPECT_NE(CodeSha256(*ZipEntries(first->functions[1].package, &error)), CodeSha256(*zip_b));
  EXPECT_EQ(CodeSha256(""), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
}

TEST_F(FolderTest, RefusesWhatCannotDeploy) {
  std::string error;
  Write("other/x.js", "");
  EXPECT_FALSE(PlanProject(dir_.string(), ManifestFor("x"), &error));
  EXPECT_NE(error.find("api/"), std::string::npos) << error;

  Write("api/users/[id].js", "");
  Write("api/users/id.py", "");
  EXPECT_FALSE(PlanProject(dir_.string(), ManifestFor("x"), &error));
  EXPECT_NE(error.find("users-id"), std::string::npos) << error;

  Manifest named = ManifestFor("x");
  named.functions["api/users/id.py"].name = "user-py";
  EXPECT_TRUE(PlanProject(dir_.string(), named, &error)) << error;

  Manifest stray = ManifestFor("x");
  stray.functions["api/missing.js"] = {};
  EXPECT_FALSE(PlanProject(dir_.string(), stray, &error));
  EXPECT_NE(error.find("api/missing.js"), std::string::npos) << error;
}

}  // namespace
}  // namespace wisp::cli
