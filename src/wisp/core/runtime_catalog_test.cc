#include "wisp/core/runtime_catalog.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace wisp::core {
namespace {

TEST(RuntimeCatalog, MapsEveryAwsIdentifierOntoItsInterpreter) {
  const RuntimeCatalog catalog(StandardRuntimes(InterpreterPaths{}));
  for (const char* alias : {"node", "nodejs", "nodejs18.x", "nodejs20.x", "nodejs22.x"}) {
    ASSERT_NE(catalog.Find(alias), nullptr) << alias;
    EXPECT_EQ(catalog.Find(alias)->name, "node");
  }
  for (const char* alias : {"python", "python3", "python3.8", "python3.9", "python3.10",
                            "python3.11", "python3.12", "python3.13"}) {
    ASSERT_NE(catalog.Find(alias), nullptr) << alias;
    EXPECT_EQ(catalog.Find(alias)->name, "python");
  }
  for (const char* alias : {"go", "golang", "go1.x"}) {
    ASSERT_NE(catalog.Find(alias), nullptr) << alias;
    EXPECT_EQ(catalog.Find(alias)->name, "go");
  }
  // Lambda's custom runtimes keep their own names: the function's bootstrap is the runtime.
  for (const char* name : {"provided", "provided.al2", "provided.al2023"}) {
    ASSERT_NE(catalog.Find(name), nullptr) << name;
    EXPECT_EQ(catalog.Find(name)->name, name);
  }
  for (const char* unknown : {"java21", "ruby3.3", "dotnet8", "provided.al2024", "", "Node"}) {
    EXPECT_EQ(catalog.Find(unknown), nullptr) << unknown;
  }
}

TEST(RuntimeCatalog, RefusalListsEveryAcceptedName) {
  const RuntimeCatalog catalog(StandardRuntimes(InterpreterPaths{}));
  auto refused = catalog.Resolve("java21");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  const std::string& message = refused.error().message;
  EXPECT_NE(message.find("'java21'"), std::string::npos) << message;
  for (const auto& entry : catalog.entries()) {
    EXPECT_NE(message.find(entry.name), std::string::npos) << message;
    for (const auto& alias : entry.aliases) {
      EXPECT_NE(message.find(alias), std::string::npos) << alias << " in " << message;
    }
  }
}

TEST(RuntimeCatalog, EntriesSayHowTheirCodeRuns) {
  InterpreterPaths paths;
  paths.node = "/opt/node/bin/node";
  paths.python = "/opt/python/bin/python3";
  const RuntimeCatalog catalog(StandardRuntimes(paths));
  const RuntimeEntry& node = *catalog.Find("node");
  const RuntimeEntry& python = *catalog.Find("python");
  const RuntimeEntry& go = *catalog.Find("go");
  EXPECT_EQ(catalog.HandlerShimCommand(node, "/rt"),
            (std::vector<std::string>{"/opt/node/bin/node", "/rt/node/bootstrap.js"}));
  EXPECT_EQ(catalog.HandlerShimCommand(python, "/rt"),
            (std::vector<std::string>{"/opt/python/bin/python3", "-u", "/rt/python/bootstrap.py"}));
  EXPECT_EQ(
      catalog.ProgramShimCommand("/rt"),
      (std::vector<std::string>{"/opt/python/bin/python3", "-u", "/rt/program/bootstrap.py"}));
  EXPECT_EQ(catalog.ProgramCommand(node, "/var/task"),
            (std::vector<std::string>{"/opt/node/bin/node", "/var/task/main.js"}));
  EXPECT_EQ(catalog.ProgramCommand(go, "/var/task"),
            (std::vector<std::string>{"/var/task/function"}));
  EXPECT_TRUE(node.prewarmable);
  EXPECT_TRUE(python.prewarmable);
  EXPECT_FALSE(go.prewarmable);
  EXPECT_TRUE(go.supports(kProgramStyle));
  EXPECT_FALSE(go.supports(kHandlerStyle));
  EXPECT_EQ(go.default_style, kProgramStyle);
  EXPECT_EQ(node.default_style, kHandlerStyle);
  EXPECT_EQ(python.default_module, "lambda_function");
  EXPECT_EQ(node.default_module, "index");
  const RuntimeEntry& provided = *catalog.Find("provided.al2023");
  EXPECT_TRUE(provided.custom());
  EXPECT_FALSE(node.custom());
  EXPECT_EQ(catalog.BootstrapCommand(provided, "/var/task"),
            (std::vector<std::string>{"/var/task/bootstrap"}));
  EXPECT_TRUE(provided.supports(kHandlerStyle));
  EXPECT_FALSE(provided.supports(kProgramStyle));
  EXPECT_FALSE(provided.prewarmable);
}

TEST(RuntimeCatalog, ANewRuntimeIsOneEntry) {
  std::vector<RuntimeEntry> entries = StandardRuntimes(InterpreterPaths{});
  RuntimeEntry ruby;
  ruby.name = "ruby";
  ruby.aliases = {"ruby3.3"};
  ruby.interpreter = "/usr/bin/ruby";
  ruby.shim = "ruby/bootstrap.rb";
  ruby.default_module = "lambda_function";
  ruby.source_extension = ".rb";
  ruby.program_file = "main.rb";
  ruby.default_style = kHandlerStyle;
  entries.push_back(ruby);
  const RuntimeCatalog catalog(std::move(entries));
  ASSERT_NE(catalog.Find("ruby3.3"), nullptr);
  EXPECT_EQ(catalog.Find("ruby3.3")->name, "ruby");
  EXPECT_NE(catalog.AcceptedNames().find("ruby3.3"), std::string::npos);
}

TEST(ParseVersion, FindsTheDottedNumberInEachInterpretersOutput) {
  EXPECT_EQ(ParseVersion("v20.20.2\n"), "20.20.2");
  EXPECT_EQ(ParseVersion("Python 3.11.2\n"), "3.11.2");
  EXPECT_EQ(ParseVersion("go version go1.19.8 linux/amd64\n"), "1.19.8");
  EXPECT_EQ(ParseVersion("tool 2 version 7.1"), "7.1");
  EXPECT_EQ(ParseVersion("no version here"), std::nullopt);
  EXPECT_EQ(ParseVersion("42"), std::nullopt);
}

TEST(RuntimeCatalog, ProbesTheInterpretersVersionOnce) {
  // Any interpreter that prints a dotted version will do; the host's python3 is one Wisp
  // needs anyway (the program shim runs on it).
  if (::access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3 here";
  InterpreterPaths paths;
  paths.node = "/nonexistent/node";
  RuntimeCatalog catalog(StandardRuntimes(paths));
  EXPECT_EQ(catalog.Version("python"), std::nullopt);
  catalog.ProbeVersions(std::chrono::seconds(30));
  const auto version = catalog.Version("python");
  ASSERT_TRUE(version);
  EXPECT_EQ(version->rfind("3.", 0), 0u) << *version;
  EXPECT_EQ(catalog.Version("node"), std::nullopt);  // missing interpreter: unknown, no error
  EXPECT_EQ(catalog.Version("provided.al2023"), std::nullopt);  // none: the function brings it
}

// A toolchain's version comes from the file beside it, without running it as root.
TEST(RuntimeCatalog, ReadsAVersionFileInsteadOfRunningTheToolchain) {
  const std::string root = testing::TempDir() + "/wisp-goroot";
  std::filesystem::create_directories(root + "/bin");
  // Not executable, and a version probe by running it would fail: only the file can answer.
  std::ofstream(root + "/bin/go") << "not a program\n";
  std::ofstream(root + "/VERSION") << "go1.21.3\ntime 2023-10-09\n";
  std::filesystem::create_directory_symlink(root + "/bin", root + "/linked-bin");
  InterpreterPaths paths;
  paths.node = "/nonexistent/node";
  paths.python = "/nonexistent/python3";
  paths.go = root + "/linked-bin/go";  // resolved to its real place first, as /usr/bin/go is
  RuntimeCatalog catalog(StandardRuntimes(paths));
  catalog.ProbeVersions(std::chrono::seconds(5));
  EXPECT_EQ(catalog.Version("go"), "1.21.3");
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace wisp::core
