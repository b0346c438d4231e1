#include "wisp/sandbox/cgroup.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "wisp/sandbox/backend.h"

namespace wisp::sandbox {
namespace {

namespace fs = std::filesystem;

// CgroupFs on a plain directory laid out like a cgroup mount, so the file formats are tested
// without root. Real cgroups are exercised by process_jail_test.
class CgroupFsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/wisp-cgroup-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { fs::remove_all(root_); }

  void Write(const std::string& rel, const std::string& text) {
    fs::create_directories(fs::path(root_ + "/" + rel).parent_path());
    std::ofstream(root_ + "/" + rel) << text;
  }
  std::string Read(const std::string& rel) {
    std::ifstream in(root_ + "/" + rel);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::string root_;
};

TEST_F(CgroupFsTest, DetectFailsWithoutAnyHierarchy) {
  auto cg = CgroupFs::Detect(root_);
  ASSERT_FALSE(cg);
  EXPECT_NE(cg.error().message.find("no cgroup"), std::string::npos);
}

TEST_F(CgroupFsTest, V2LimitsAndAccounting) {
  Write("cgroup.controllers", "cpuset cpu io memory pids\n");
  Write("cgroup.subtree_control", "");
  auto cg = CgroupFs::Detect(root_);
  ASSERT_TRUE(cg) << cg.error().message;
  EXPECT_EQ(cg->version(), CgroupVersion::kV2);
  EXPECT_TRUE(cg->CanEnforceLimits());
  EXPECT_EQ(cg->Describe(), "v2 (memory, pids, cpu)");

  ASSERT_TRUE(cg->CreateGroup("wisp/1/a"));
  EXPECT_TRUE(fs::is_directory(root_ + "/wisp/1/a"));
  EXPECT_TRUE(cg->Exists("wisp/1/a"));
  // Controllers are enabled at every level above the instance group.
  EXPECT_FALSE(Read("wisp/1/cgroup.subtree_control").empty());

  Write("wisp/1/a/memory.swap.max", "max");
  ASSERT_TRUE(cg->SetLimits("wisp/1/a", {64 << 20, 100, 1.5}));
  EXPECT_EQ(Read("wisp/1/a/memory.max"), "67108864");
  EXPECT_EQ(Read("wisp/1/a/memory.swap.max"), "0");
  EXPECT_EQ(Read("wisp/1/a/pids.max"), "100");
  EXPECT_EQ(Read("wisp/1/a/cpu.weight"), "150");

  Write("wisp/1/a/memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n");
  EXPECT_EQ(cg->OomKills("wisp/1/a"), 2u);
  Write("wisp/1/a/cgroup.procs", "12\n34\n");
  EXPECT_EQ(cg->Procs("wisp/1"), (std::vector<pid_t>{12, 34}));
  EXPECT_EQ(cg->Children("wisp"), (std::vector<std::string>{"1"}));
}

TEST_F(CgroupFsTest, V1UsesOneHierarchyPerController) {
  for (const char* c : {"memory", "pids", "cpu"}) Write(std::string(c) + "/cgroup.procs", "");
  auto cg = CgroupFs::Detect(root_);
  ASSERT_TRUE(cg) << cg.error().message;
  EXPECT_EQ(cg->version(), CgroupVersion::kV1);
  EXPECT_EQ(cg->Describe(), "v1 (memory, pids, cpu)");

  ASSERT_TRUE(cg->CreateGroup("wisp/1/a"));
  Write("memory/wisp/1/a/memory.memsw.limit_in_bytes", "");
  ASSERT_TRUE(cg->SetLimits("wisp/1/a", {64 << 20, 100, 1.0}));
  EXPECT_EQ(Read("memory/wisp/1/a/memory.limit_in_bytes"), "67108864");
  EXPECT_EQ(Read("memory/wisp/1/a/memory.memsw.limit_in_bytes"), "67108864");
  EXPECT_EQ(Read("pids/wisp/1/a/pids.max"), "100");
  EXPECT_EQ(Read("cpu/wisp/1/a/cpu.shares"), "1024");

  Write("memory/wisp/1/a/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n");
  EXPECT_EQ(cg->OomKills("wisp/1/a"), 1u);
  ASSERT_TRUE(cg->AddProcess("wisp/1/a", 42));
  EXPECT_EQ(Read("pids/wisp/1/a/cgroup.procs"), "42");
}

TEST_F(CgroupFsTest, V2MemoryPeakIsReadAfreshFromOneFd) {
  Write("cgroup.controllers", "cpu memory pids\n");
  Write("cgroup.subtree_control", "");
  auto cg = CgroupFs::Detect(root_);
  ASSERT_TRUE(cg);
  ASSERT_TRUE(cg->CreateGroup("wisp/1/a"));
  // A kernel before 5.19 has no memory.peak: unknown, not an error.
  auto missing = cg->OpenMemoryPeak("wisp/1/a");
  ASSERT_TRUE(missing) << missing.error().message;
  EXPECT_FALSE(*missing);
  EXPECT_EQ(cg->MemoryPeak("wisp/1/a"), std::nullopt);

  Write("wisp/1/a/memory.peak", "12345678\n");
  auto peak = cg->OpenMemoryPeak("wisp/1/a");
  ASSERT_TRUE(peak) << peak.error().message;
  ASSERT_TRUE(*peak);
  EXPECT_EQ(ReadMemoryPeak(peak->get()), 12345678u);
  Write("wisp/1/a/memory.peak", "87654321\n");
  EXPECT_EQ(ReadMemoryPeak(peak->get()), 87654321u);
  EXPECT_EQ(cg->MemoryPeak("wisp/1/a"), 87654321u);
}

TEST_F(CgroupFsTest, V1MemoryPeakIsTheMaxUsage) {
  for (const char* c : {"memory", "pids"}) Write(std::string(c) + "/cgroup.procs", "");
  auto cg = CgroupFs::Detect(root_);
  ASSERT_TRUE(cg);
  ASSERT_TRUE(cg->CreateGroup("wisp/1/a"));
  Write("memory/wisp/1/a/memory.max_usage_in_bytes", "67108864\n");
  auto peak = cg->OpenMemoryPeak("wisp/1/a");
  ASSERT_TRUE(peak) << peak.error().message;
  ASSERT_TRUE(*peak);
  EXPECT_EQ(ReadMemoryPeak(peak->get()), 67108864u);
  EXPECT_EQ(cg->MemoryPeak("wisp/1/a"), 67108864u);
  // A read without a number (on cgroupfs: ENODEV once the group is removed) is unknown, not 0.
  Write("memory/wisp/1/a/memory.max_usage_in_bytes", "");
  EXPECT_EQ(ReadMemoryPeak(peak->get()), std::nullopt);
}

TEST_F(CgroupFsTest, WithoutMemoryControllerThePeakIsUnknown) {
  Write("pids/cgroup.procs", "");
  auto cg = CgroupFs::Detect(root_);
  ASSERT_TRUE(cg);
  ASSERT_TRUE(cg->CreateGroup("wisp/1/a"));
  auto peak = cg->OpenMemoryPeak("wisp/1/a");
  ASSERT_TRUE(peak) << peak.error().message;
  EXPECT_FALSE(*peak);
  EXPECT_EQ(cg->MemoryPeak("wisp/1/a"), std::nullopt);
}

TEST_F(CgroupFsTest, V1WithoutPidsCannotEnforceLimits) {
  Write("memory/cgroup.procs", "");
  auto cg = CgroupFs::Detect(root_);
  ASSERT_TRUE(cg);
  EXPECT_FALSE(cg->CanEnforceLimits());
}

}  // namespace
}  // namespace wisp::sandbox
