#include "wisp/core/function_spec.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace wisp::core {
namespace {

// The catalog every test reads runtimes from: the standard entries at their usual paths.
const RuntimeCatalog& Runtimes() {
  static const RuntimeCatalog catalog(StandardRuntimes(InterpreterPaths{}));
  return catalog;
}
const RuntimeEntry& Runtime(std::string_view name) { return *Runtimes().Find(name); }

TEST(ParseHandler, BareNameUsesTheRuntimesDefaultModule) {
  auto node = ParseHandler(Runtime("node"), "handler");
  ASSERT_TRUE(node);
  EXPECT_EQ(node->ToString(), "index.handler");
  EXPECT_EQ(node->file_name(Runtime("node")), "index.js");
  auto python = ParseHandler(Runtime("python"), "main");
  ASSERT_TRUE(python);
  EXPECT_EQ(python->ToString(), "lambda_function.main");
  EXPECT_EQ(python->file_name(Runtime("python")), "lambda_function.py");
}

TEST(ParseHandler, FileDotFunction) {
  auto target = ParseHandler(Runtime("node"), "src/app.main");
  ASSERT_TRUE(target);
  EXPECT_EQ(target->module, "src/app");
  EXPECT_EQ(target->function, "main");
}

TEST(ParseHandler, PythonModulesInPackagesMayBeDotted) {
  auto dotted = ParseHandler(Runtime("python"), "app.main.handler");
  ASSERT_TRUE(dotted);
  EXPECT_EQ(dotted->module, "app/main");
  EXPECT_EQ(dotted->ToString(), "app/main.handler");
  for (const char* bad : {"..handler", "app..main.handler", ".app.handler"}) {
    EXPECT_FALSE(ParseHandler(Runtime("python"), bad)) << bad;
  }
  // Node's module names keep their meaning: a dot in a file name is no folder.
  EXPECT_FALSE(ParseHandler(Runtime("node"), "app.main.handler"));
}

TEST(ValidateFields, CodeAndZipAreAlternatives) {
  FunctionFields both;
  both.code = "x = 1";
  both.zip = std::string("PK\x05\x06", 4);
  auto refused = ValidateFields(both, Runtimes());
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("not both"), std::string::npos);
}

TEST(ParseHandler, RefusesEscapesAndNonsense) {
  for (const char* bad :
       {"", "../../etc/passwd.handler", "/etc/passwd.x", "a/../b.handler", "a//b.handler", "index.",
        ".handler", "index.1abc", "in dex.handler", "index.hand-ler"}) {
    auto target = ParseHandler(Runtime("node"), bad);
    EXPECT_FALSE(target) << bad;
    if (!target) {
      EXPECT_EQ(target.error().code, ErrorCode::kInvalidArgument);
    }
  }
}

TEST(ValidateFields, ChecksRangesAndNamesTheField) {
  FunctionFields f;
  f.timeout_seconds = 0;
  auto r = ValidateFields(f, Runtimes());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("timeout_seconds"), std::string::npos);
  f = {};
  f.memory_mb = 100;
  EXPECT_NE(ValidateFields(f, Runtimes()).error().message.find("memory_mb"), std::string::npos);
  f = {};
  f.runtime = "cobol";
  EXPECT_NE(ValidateFields(f, Runtimes()).error().message.find("cobol"), std::string::npos);
  f = {};
  f.code = "  \n";
  EXPECT_FALSE(ValidateFields(f, Runtimes()));
  f = {};
  f.env = std::map<std::string, std::string>{{"AWS_LAMBDA_RUNTIME_API", "evil:1"}};
  EXPECT_FALSE(ValidateFields(f, Runtimes()));
  f = {};
  f.env = std::map<std::string, std::string>{{"1BAD", "x"}};
  EXPECT_FALSE(ValidateFields(f, Runtimes()));
  f = {};
  f.name = "ok-name_1.2";
  f.env = std::map<std::string, std::string>{{"GOOD_NAME", "value"}};
  f.vcpu = 0.5;
  EXPECT_TRUE(ValidateFields(f, Runtimes()));
}

TEST(ValidateFields, RefusesAnUnknownRuntimeListingEveryAcceptedName) {
  FunctionFields f;
  f.runtime = "java21";
  auto r = ValidateFields(f, Runtimes());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  for (const char* name : {"java21", "node", "python", "go", "nodejs20.x", "python3.12"}) {
    EXPECT_NE(r.error().message.find(name), std::string::npos) << r.error().message;
  }
  f.runtime = "python3.13";
  EXPECT_TRUE(ValidateFields(f, Runtimes()));
}

TEST(FunctionFields, AsyncFieldsAreRangeChecked) {
  FunctionFields ok;
  ok.max_retries = 0;
  ok.retry_delay_seconds = 0;
  ok.max_event_age_seconds = 60;
  ok.max_concurrency = 1;
  ok.min_instances = 0;
  ok.style = "program";
  ok.network = "outbound";
  EXPECT_TRUE(ValidateFields(ok, Runtimes()));
  for (auto change : std::vector<void (*)(FunctionFields&)>{
           [](FunctionFields& f) { f.max_retries = 11; },
           [](FunctionFields& f) { f.retry_delay_seconds = -1; },
           [](FunctionFields& f) { f.max_event_age_seconds = 0; },
           [](FunctionFields& f) { f.max_concurrency = 0; },
           [](FunctionFields& f) { f.min_instances = -1; },
           [](FunctionFields& f) { f.style = "script"; },
           [](FunctionFields& f) { f.network = "inbound"; },
           [](FunctionFields& f) { f.network = ""; },
           [](FunctionFields& f) { f.version_label = std::string(65, 'v'); }}) {
    FunctionFields f;
    change(f);
    EXPECT_FALSE(ValidateFields(f, Runtimes()));
  }
}

TEST(FunctionFields, CombinationsAreChecked) {
  EXPECT_TRUE(
      ValidateCombination(Runtime("go"), "program", {.min_instances = 0, .max_concurrency = 10}));
  auto go_handler =
      ValidateCombination(Runtime("go"), "handler", {.min_instances = 0, .max_concurrency = 10});
  ASSERT_FALSE(go_handler);
  EXPECT_NE(go_handler.error().message.find("program"), std::string::npos);
  EXPECT_TRUE(
      ValidateCombination(Runtime("node"), "program", {.min_instances = 0, .max_concurrency = 10}));
  EXPECT_TRUE(ValidateCombination(Runtime("python"), "handler",
                                  {.min_instances = 2, .max_concurrency = 2}));
  EXPECT_FALSE(ValidateCombination(Runtime("python"), "handler",
                                   {.min_instances = 3, .max_concurrency = 2}));
  EXPECT_TRUE(ValidateCombination(Runtime("provided.al2023"), "handler",
                                  {.min_instances = 0, .max_concurrency = 10}));
  auto custom_program = ValidateCombination(Runtime("provided.al2023"), "program",
                                            {.min_instances = 0, .max_concurrency = 10});
  ASSERT_FALSE(custom_program);
  EXPECT_NE(custom_program.error().message.find("bootstrap"), std::string::npos);
}

TEST(FunctionFields, InstanceConcurrencyIsBoundedByTheNodeAndTheStyle) {
  FunctionFields fields;
  fields.instance_concurrency = 0;
  EXPECT_FALSE(ValidateFields(fields, Runtimes()));
  fields.instance_concurrency = kMaxInstanceConcurrency + 1;
  EXPECT_FALSE(ValidateFields(fields, Runtimes()));
  fields.instance_concurrency = 8;
  EXPECT_TRUE(ValidateFields(fields, Runtimes()));

  const Limits within{.instance_concurrency = 8, .max_instance_concurrency = 64};
  EXPECT_TRUE(ValidateCombination(Runtime("node"), "handler", within));
  EXPECT_TRUE(ValidateCombination(Runtime("provided.al2023"), "handler", within));
  auto over_cap = ValidateCombination(Runtime("node"), "handler",
                                      {.instance_concurrency = 65, .max_instance_concurrency = 64});
  ASSERT_FALSE(over_cap);
  EXPECT_NE(over_cap.error().message.find("max_instance_concurrency"), std::string::npos);
  auto program = ValidateCombination(Runtime("node"), "program", within);
  ASSERT_FALSE(program);
  EXPECT_NE(program.error().message.find("handler"), std::string::npos);
}

TEST(ParseHandler, ACustomRuntimesHandlerIsPassedAsGiven) {
  for (const char* handler : {"handler", "function.handler", "my.pkg::Handler", "a/b.c", "x"}) {
    auto target = ParseHandler(Runtime("provided.al2023"), handler);
    ASSERT_TRUE(target) << handler;
    EXPECT_EQ(target->ToString(), handler);
    EXPECT_EQ(target->file_name(Runtime("provided.al2023")), "bootstrap");
  }
  for (const std::string& refused :
       {std::string(), std::string("two words"), std::string("tab\there"), std::string("nul\0", 4),
        std::string(kMaxCustomHandlerLength + 1, 'h')}) {
    EXPECT_FALSE(ParseHandler(Runtime("provided"), refused)) << refused;
  }
  EXPECT_TRUE(ParseHandler(Runtime("provided"), std::string(kMaxCustomHandlerLength, 'h')));
}

class CheckBootstrapTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/wisp-bootstrap-" + std::to_string(::getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ + "/bin");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void WriteFile(const std::string& name, mode_t mode) {
    std::ofstream(dir_ + "/" + name) << "#!/bin/sh\n";
    ::chmod((dir_ + "/" + name).c_str(), mode);
  }
  Result<void> Check() { return CheckBootstrap(Runtime("provided.al2023"), dir_); }
  std::string dir_;
};

TEST_F(CheckBootstrapTest, AcceptsAnExecutableFileOrALinkToOneInsideTheTree) {
  WriteFile("bootstrap", 0755);
  EXPECT_TRUE(Check());
  std::filesystem::remove(dir_ + "/bootstrap");
  WriteFile("bin/app", 0755);
  std::filesystem::create_symlink("bin/app", dir_ + "/bootstrap");
  EXPECT_TRUE(Check());
}

TEST_F(CheckBootstrapTest, SaysWhatIsWrong) {
  auto missing = Check();
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(missing.error().message.find("no bootstrap"), std::string::npos);

  WriteFile("bootstrap", 0644);
  auto plain = Check();
  ASSERT_FALSE(plain);
  EXPECT_NE(plain.error().message.find("not executable"), std::string::npos);

  std::filesystem::remove(dir_ + "/bootstrap");
  std::filesystem::create_directory(dir_ + "/bootstrap");
  auto directory = Check();
  ASSERT_FALSE(directory);
  EXPECT_NE(directory.error().message.find("not a file"), std::string::npos);

  // A link out of the tree is not followed, even to an executable the host has.
  std::filesystem::remove(dir_ + "/bootstrap");
  std::filesystem::create_symlink("/bin/sh", dir_ + "/bootstrap");
  EXPECT_FALSE(Check());
  std::filesystem::remove(dir_ + "/bootstrap");
  std::filesystem::create_symlink("../../../../../../bin/sh", dir_ + "/bootstrap");
  EXPECT_FALSE(Check());
}

}  // namespace
}  // namespace wisp::core
