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

TEST(ApplyEnvironment, NamesTheBadVariable) {
  std::map<std::string, std::string> env{{"WISP_SANDBOX_PIDS_LIMIT", "lots"}};
  fake_env = &env;
  Config config;
  auto result = ApplyEnvironment(config, FakeGetenv);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("WISP_SANDBOX_PIDS_LIMIT"), std::string::npos);
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

}  // namespace
}  // namespace wisp
