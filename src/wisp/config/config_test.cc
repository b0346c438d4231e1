#include "wisp/config/config.h"

#include <cstdio>
#include <fstream>
#include <map>
#include <string>

#include <gtest/gtest.h>

namespace wisp {
namespace {

std::map<std::string, std::string>* fake_env = nullptr;
const char* FakeGetenv(const char* name) {
  auto it = fake_env->find(name);
  return it == fake_env->end() ? nullptr : it->second.c_str();
}

TEST(ParseListenAddress, AcceptsHostPort) {
  Config config;
  ASSERT_TRUE(ParseListenAddress("0.0.0.0:9000", config));
  EXPECT_EQ(config.listen_host, "0.0.0.0");
  EXPECT_EQ(config.listen_port, 9000);
}

TEST(ParseListenAddress, RejectsBadPorts) {
  Config config;
  EXPECT_FALSE(ParseListenAddress("localhost", config));
  EXPECT_FALSE(ParseListenAddress("localhost:http", config));
  EXPECT_FALSE(ParseListenAddress("localhost:70000", config));
  EXPECT_FALSE(ParseListenAddress(":80", config));
}

TEST(ApplyEnvironment, ReadsWispVariables) {
  std::map<std::string, std::string> env{{"WISP_DATA_DIR", "/srv/wisp"},
                                         {"WISP_LISTEN", "127.0.0.1:1234"},
                                         {"WISP_LOG_JSON", "true"},
                                         {"WISP_SANDBOX_TMP_MB", "64"}};
  fake_env = &env;
  Config config;
  ASSERT_TRUE(ApplyEnvironment(config, FakeGetenv));
  EXPECT_EQ(config.data_dir, "/srv/wisp");
  EXPECT_EQ(config.listen_port, 1234);
  EXPECT_TRUE(config.log_json);
  EXPECT_EQ(config.sandbox_tmp_mb, 64u);
}

TEST(ApplyEnvironment, SandboxIdRangeHasAHighDefaultAndIsSetFromTheEnvironment) {
  EXPECT_EQ(Config{}.sandbox_id_base, 0x70000000u);
  EXPECT_EQ(Config{}.sandbox_id_count, 65536u);
  std::map<std::string, std::string> env{{"WISP_SANDBOX_ID_BASE", "200000"},
                                         {"WISP_SANDBOX_ID_COUNT", "1000"}};
  fake_env = &env;
  Config config;
  ASSERT_TRUE(ApplyEnvironment(config, FakeGetenv));
  EXPECT_EQ(config.sandbox_id_base, 200000u);
  EXPECT_EQ(config.sandbox_id_count, 1000u);
  env = {{"WISP_SANDBOX_ID_BASE", "4294967296"}};
  auto result = ApplyEnvironment(config, FakeGetenv);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("WISP_SANDBOX_ID_BASE"), std::string::npos);
}

TEST(ApplyEnvironment, PrewarmPoolsGrowToTwentyOverAMinuteByDefaultAndAreSetFromTheEnvironment) {
  EXPECT_EQ(Config{}.prewarm_max_instances, 20u);
  EXPECT_EQ(Config{}.prewarm_demand_window_seconds, 60);
  std::map<std::string, std::string> env{{"WISP_PREWARM_MAX_INSTANCES", "4"},
                                         {"WISP_PREWARM_DEMAND_WINDOW_SECONDS", "2.5"}};
  fake_env = &env;
  Config config;
  ASSERT_TRUE(ApplyEnvironment(config, FakeGetenv));
  EXPECT_EQ(config.prewarm_max_instances, 4u);
  EXPECT_EQ(config.prewarm_demand_window_seconds, 2.5);
}

TEST(ApplyEnvironment, ANodeWaitsTenSecondsAtMostToBeWarmedUp) {
  EXPECT_EQ(Config{}.warm_up_timeout_seconds, 10);
  std::map<std::string, std::string> env{{"WISP_WARM_UP_TIMEOUT_SECONDS", "0.5"}};
  fake_env = &env;
  Config config;
  ASSERT_TRUE(ApplyEnvironment(config, FakeGetenv));
  EXPECT_EQ(config.warm_up_timeout_seconds, 0.5);
}

TEST(ApplyEnvironment, NamesTheBadVariable) {
  std::map<std::string, std::string> env{{"WISP_SANDBOX_PIDS_LIMIT", "lots"}};
  fake_env = &env;
  Config config;
  auto result = ApplyEnvironment(config, FakeGetenv);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("WISP_SANDBOX_PIDS_LIMIT"), std::string::npos);
}

TEST(Region, DefaultsToAnAwsRegionAndRefusesWhatSdksWouldRefuse) {
  EXPECT_EQ(Config{}.region, "us-east-1");
  EXPECT_TRUE(IsAwsRegion(Config{}.region));
  for (const char* good : {"eu-central-2", "us-gov-west-1", "ap-southeast-4"}) {
    std::map<std::string, std::string> env{{"WISP_REGION", good}};
    fake_env = &env;
    Config config;
    ASSERT_TRUE(ApplyEnvironment(config, FakeGetenv)) << good;
    EXPECT_EQ(config.region, good);
  }
  for (const char* bad : {"wisp-local", "", "us-east", "US-EAST-1", "us-east-1a", "-us-1"}) {
    std::map<std::string, std::string> env{{"WISP_REGION", bad}};
    fake_env = &env;
    Config config;
    auto result = ApplyEnvironment(config, FakeGetenv);
    ASSERT_FALSE(result) << bad;
    EXPECT_NE(result.error().message.find("WISP_REGION"), std::string::npos);
  }
}

TEST(AccountId, DefaultsToTwelveZerosAndTakesOnlyTwelveDigits) {
  EXPECT_EQ(Config{}.account_id, "000000000000");
  {
    std::map<std::string, std::string> env{{"WISP_ACCOUNT_ID", "123456789012"}};
    fake_env = &env;
    Config config;
    ASSERT_TRUE(ApplyEnvironment(config, FakeGetenv));
    EXPECT_EQ(config.account_id, "123456789012");
  }
  for (const char* bad : {"", "12345678901", "1234567890123", "12345678901a"}) {
    std::map<std::string, std::string> env{{"WISP_ACCOUNT_ID", bad}};
    fake_env = &env;
    Config config;
    auto result = ApplyEnvironment(config, FakeGetenv);
    ASSERT_FALSE(result) << bad;
    EXPECT_NE(result.error().message.find("WISP_ACCOUNT_ID"), std::string::npos);
  }
}

TEST(ApplyEnvironment, InvocationRecordsPerFunctionKeepsTenThousandByDefaultAndZeroMeansNone) {
  EXPECT_EQ(Config{}.invocation_records_per_function, 10000u);
  for (const auto& [text, expected] :
       {std::pair{"5", 5u}, {"0", 0u}, {"4294967295", 4294967295u}}) {
    std::map<std::string, std::string> env{{"WISP_INVOCATION_RECORDS_PER_FUNCTION", text}};
    fake_env = &env;
    Config config;
    ASSERT_TRUE(ApplyEnvironment(config, FakeGetenv)) << text;
    EXPECT_EQ(config.invocation_records_per_function, expected);
  }
}

TEST(ApplyEnvironment, RecordsBudgetIsAGibibyteByDefaultZeroOrAtLeastAMebibyte) {
  EXPECT_EQ(Config{}.invocation_records_max_bytes, 1ull << 30);
  EXPECT_EQ(Config{}.invocation_record_field_max_bytes, 64ull << 10);
  for (const auto& [text, expected] : {std::pair{"0", 0ull}, {"1048576", 1048576ull}}) {
    std::map<std::string, std::string> env{{"WISP_INVOCATION_RECORDS_MAX_BYTES", text},
                                           {"WISP_INVOCATION_RECORD_FIELD_MAX_BYTES", "100"}};
    fake_env = &env;
    Config config;
    ASSERT_TRUE(ApplyEnvironment(config, FakeGetenv)) << text;
    EXPECT_EQ(config.invocation_records_max_bytes, expected);
    EXPECT_EQ(config.invocation_record_field_max_bytes, 100u);
  }
  for (const char* text : {"1048575", "1", "-1", "lots"}) {
    std::map<std::string, std::string> env{{"WISP_INVOCATION_RECORDS_MAX_BYTES", text}};
    fake_env = &env;
    Config config;
    auto result = ApplyEnvironment(config, FakeGetenv);
    ASSERT_FALSE(result) << text;
    EXPECT_NE(result.error().message.find("WISP_INVOCATION_RECORDS_MAX_BYTES"), std::string::npos);
  }
}

TEST(ApplyEnvironment, InvocationRecordsPerFunctionRejectsWhatIsNoCount) {
  // 4294967296 would wrap to 0 (keep none) if it were cut to the setting's 32 bits.
  for (const char* text : {"-1", "ten", "1.5", "", "4294967296"}) {
    std::map<std::string, std::string> env{{"WISP_INVOCATION_RECORDS_PER_FUNCTION", text}};
    fake_env = &env;
    Config config;
    auto result = ApplyEnvironment(config, FakeGetenv);
    ASSERT_FALSE(result) << text;
    EXPECT_NE(result.error().message.find("WISP_INVOCATION_RECORDS_PER_FUNCTION"),
              std::string::npos);
    EXPECT_EQ(config.invocation_records_per_function, 10000u);
  }
}

TEST(OutboundPrivateNetworks, IsOffByDefaultAndSetFromEnvironmentFileOrFlag) {
  EXPECT_FALSE(Config{}.outbound_private_networks);

  std::map<std::string, std::string> env{{"WISP_OUTBOUND_PRIVATE_NETWORKS", "true"}};
  fake_env = &env;
  Config from_env;
  ASSERT_TRUE(ApplyEnvironment(from_env, FakeGetenv));
  EXPECT_TRUE(from_env.outbound_private_networks);

  const std::string path = testing::TempDir() + "/wisp_private_networks_test.toml";
  std::ofstream(path) << "outbound_private_networks = true\n";
  Config from_file;
  ASSERT_TRUE(ApplyConfigFile(path, from_file));
  EXPECT_TRUE(from_file.outbound_private_networks);
  std::ofstream(path) << "outbound_private_networks = false\n";
  ASSERT_TRUE(ApplyConfigFile(path, from_file));
  EXPECT_FALSE(from_file.outbound_private_networks);
  std::remove(path.c_str());

  char program[] = "wispd";
  char flag[] = "--outbound-private-networks";
  char* argv[] = {program, flag};
  auto parsed = ParseConfig(2, argv);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_TRUE(parsed->config.outbound_private_networks);
}

TEST(OutboundPrivateNetworks, RejectsWhatIsNoBoolean) {
  for (const char* text : {"maybe", "2", ""}) {
    std::map<std::string, std::string> env{{"WISP_OUTBOUND_PRIVATE_NETWORKS", text}};
    fake_env = &env;
    Config config;
    auto result = ApplyEnvironment(config, FakeGetenv);
    ASSERT_FALSE(result) << text;
    EXPECT_NE(result.error().message.find("WISP_OUTBOUND_PRIVATE_NETWORKS"), std::string::npos);
    EXPECT_FALSE(config.outbound_private_networks);
  }
  const std::string path = testing::TempDir() + "/wisp_private_networks_test.toml";
  std::ofstream(path) << "outbound_private_networks = \"sometimes\"\n";
  Config config;
  auto result = ApplyConfigFile(path, config);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("outbound_private_networks"), std::string::npos);
  EXPECT_FALSE(config.outbound_private_networks);
  std::remove(path.c_str());
}

TEST(GoBuilds, HaveLimitsByDefaultReadFromTheEnvironment) {
  const Config defaults;
  EXPECT_EQ(defaults.go_build_memory_mb, 1024u);
  EXPECT_EQ(defaults.go_build_timeout_seconds, 300);
  EXPECT_EQ(defaults.go_build_concurrency, 1u);
  // The cache's one writer: no function sandbox runs as it.
  EXPECT_TRUE(defaults.go_build_uid < defaults.sandbox_id_base ||
              defaults.go_build_uid >= defaults.sandbox_id_base + defaults.sandbox_id_count);

  std::map<std::string, std::string> env{
      {"WISP_GO_BUILD_MEMORY_MB", "512"}, {"WISP_GO_BUILD_TIMEOUT_SECONDS", "60"},
      {"WISP_GO_BUILD_CONCURRENCY", "2"}, {"WISP_GO_BUILD_PIDS_LIMIT", "256"},
      {"WISP_GO_BUILD_VCPU", "0.5"},      {"WISP_GO_BUILD_UID", "70000"}};
  fake_env = &env;
  Config config;
  ASSERT_TRUE(ApplyEnvironment(config, FakeGetenv));
  EXPECT_EQ(config.go_build_memory_mb, 512u);
  EXPECT_EQ(config.go_build_timeout_seconds, 60);
  EXPECT_EQ(config.go_build_concurrency, 2u);
  EXPECT_EQ(config.go_build_pids_limit, 256u);
  EXPECT_EQ(config.go_build_vcpu, 0.5);
  EXPECT_EQ(config.go_build_uid, 70000u);
}

// 0 would lift a cgroup limit or stop every build: refused with the setting's name.
TEST(GoBuilds, RefusesZeroLimitsAndRoot) {
  const std::string path = testing::TempDir() + "/wisp_go_build_test.toml";
  for (const char* line :
       {"go_build_memory_mb = 0", "go_build_pids_limit = 0", "go_build_concurrency = 0",
        "go_build_timeout_seconds = 0", "go_build_uid = 0"}) {
    std::ofstream(path) << line << "\n";
    std::string flag = "--config=" + path;
    char program[] = "wispd";
    char* argv[] = {program, flag.data()};
    auto parsed = ParseConfig(2, argv);
    ASSERT_FALSE(parsed) << line;
    const std::string key = std::string(line).substr(0, std::string(line).find(' '));
    EXPECT_NE(parsed.error().message.find(key), std::string::npos) << parsed.error().message;
  }
  std::remove(path.c_str());
}

TEST(ApplyConfigFile, ReadsTomlAndRejectsUnknownKeys) {
  const std::string path = testing::TempDir() + "/wisp_config_test.toml";
  {
    std::ofstream out(path);
    out << "listen = \"127.0.0.1:4000\"\nqueue_wait_seconds = 2.5\nenforce_limits = false\n"
        << "invocation_records_per_function = 250\n";
  }
  Config config;
  ASSERT_TRUE(ApplyConfigFile(path, config));
  EXPECT_EQ(config.listen_port, 4000);
  EXPECT_EQ(config.invocation_records_per_function, 250u);
  EXPECT_DOUBLE_EQ(config.queue_wait_seconds, 2.5);
  EXPECT_FALSE(config.enforce_limits);
  {
    std::ofstream out(path);
    out << "no_such_setting = 1\n";
  }
  auto result = ApplyConfigFile(path, config);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("no_such_setting"), std::string::npos);
  {
    std::ofstream out(path);
    out << "invocation_records_per_function = -3\n";
  }
  result = ApplyConfigFile(path, config);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("invocation_records_per_function"), std::string::npos);
  std::remove(path.c_str());
}

TEST(Auth, IsOffByDefaultAndTurnedOnByFileEnvironmentOrFlag) {
  EXPECT_FALSE(Config{}.auth_required);
  std::map<std::string, std::string> env{{"WISP_AUTH_REQUIRED", "1"}};
  fake_env = &env;
  Config from_env;
  ASSERT_TRUE(ApplyEnvironment(from_env, FakeGetenv));
  EXPECT_TRUE(from_env.auth_required);

  char program[] = "wispd";
  char flag[] = "--auth-required";
  char* argv[] = {program, flag};
  auto parsed = ParseConfig(2, argv);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_TRUE(parsed->config.auth_required);
  EXPECT_FALSE(parsed->keys_command);
}

TEST(Auth, TomlTableWithKeys) {
  const std::string path = testing::TempDir() + "/wisp_auth_test.toml";
  std::ofstream(path) << "[auth]\nrequired = true\n[[auth.keys]]\nid = \"WKEXAMPLE00000000001\"\n"
                      << "secret = \"abcdefghijklmnopqrstuvwxyz\"\ndescription = \"ci\"\n"
                      << "[[auth.keys]]\nid = \"WKEXAMPLE00000000002\"\n"
                      << "secret = \"ABCDEFGHIJKLMNOPQRSTUVWXYZ\"\n";
  Config config;
  auto applied = ApplyConfigFile(path, config);
  ASSERT_TRUE(applied) << applied.error().message;
  EXPECT_TRUE(config.auth_required);
  ASSERT_EQ(config.auth_keys.size(), 2u);
  EXPECT_EQ(config.auth_keys[0].id, "WKEXAMPLE00000000001");
  EXPECT_EQ(config.auth_keys[0].secret, "abcdefghijklmnopqrstuvwxyz");
  EXPECT_EQ(config.auth_keys[0].description, "ci");
  EXPECT_EQ(config.auth_keys[1].id, "WKEXAMPLE00000000002");
  EXPECT_EQ(config.auth_keys_file, path);

  for (const char* bad : {"[auth]\nrequired = \"yes\"\n", "[auth]\nrequire = true\n",
                          "[[auth.keys]]\nid = \"WKEXAMPLE00000000001\"\n",
                          "[[auth.keys]]\nid = \"a\"\nsecret = \"b\"\ncolour = \"red\"\n"}) {
    std::ofstream(path) << bad;
    Config other;
    EXPECT_FALSE(ApplyConfigFile(path, other)) << bad;
  }
  std::remove(path.c_str());
}

TEST(Auth, LoopbackHosts) {
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.1.2.3"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("::"));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.1"));
  EXPECT_FALSE(IsLoopbackHost("127.0.0.1.evil"));
  EXPECT_FALSE(IsLoopbackHost("128.0.0.1"));
}

TEST(KeysCommand, ParsesSubcommandsWithDaemonOptionsAnywhere) {
  {
    const char* args[] = {"wispd",  "keys",       "create", "--description",
                          "for ci", "--data-dir", "/tmp/x"};
    auto parsed = ParseConfig(7, const_cast<char**>(args));
    ASSERT_TRUE(parsed) << parsed.error().message;
    ASSERT_TRUE(parsed->keys_command);
    EXPECT_EQ(parsed->keys_command->action, "create");
    EXPECT_EQ(parsed->keys_command->description, "for ci");
    EXPECT_EQ(parsed->config.data_dir, "/tmp/x");
  }
  {
    const char* args[] = {"wispd", "--data-dir", "/tmp/y", "keys", "revoke", "WKABC"};
    auto parsed = ParseConfig(6, const_cast<char**>(args));
    ASSERT_TRUE(parsed) << parsed.error().message;
    ASSERT_TRUE(parsed->keys_command);
    EXPECT_EQ(parsed->keys_command->action, "revoke");
    EXPECT_EQ(parsed->keys_command->id, "WKABC");
    EXPECT_EQ(parsed->config.data_dir, "/tmp/y");
  }
  {
    const char* args[] = {"wispd", "keys", "list"};
    auto parsed = ParseConfig(3, const_cast<char**>(args));
    ASSERT_TRUE(parsed) << parsed.error().message;
    EXPECT_EQ(parsed->keys_command->action, "list");
  }
  {
    const char* args[] = {"wispd", "keys", "revoke"};
    EXPECT_FALSE(ParseConfig(3, const_cast<char**>(args)));
  }
  {
    const char* args[] = {"wispd", "keys"};
    EXPECT_FALSE(ParseConfig(2, const_cast<char**>(args)));
  }
}

}  // namespace
}  // namespace wisp
