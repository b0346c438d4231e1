#include "wisp/sandbox/instance_usage.h"

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include <gtest/gtest.h>

namespace wisp::sandbox {
namespace {

TEST(InstanceUsageTest, AProcessWithoutAGroupOfItsOwnStillHasItsCpuTime) {
  // Burn some CPU in a child, then read the usage of this process's tree as an instance's.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
    volatile uint64_t n = 0;
    while (std::chrono::steady_clock::now() < until) n = n + 1;
    pause();
    _exit(0);
  }
  // Wait until the child has used its CPU (it pauses then): no sleep-based timing assertion,
  // only "more than nothing".
  InstanceUsage usage;
  for (int i = 0; i < 200; ++i) {
    usage = ReadInstanceUsage(child);
    if (usage.cpu_seconds && *usage.cpu_seconds >= 0.1) break;
    usleep(10'000);
  }
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  ASSERT_TRUE(usage.cpu_seconds.has_value());
  EXPECT_GE(*usage.cpu_seconds, 0.1);
  EXPECT_FALSE(usage.cpu_source.empty());
}

TEST(InstanceUsageTest, NoProcessNoFigures) {
  const auto usage = ReadInstanceUsage(-1);
  EXPECT_FALSE(usage.memory_bytes || usage.memory_peak_bytes || usage.cpu_seconds);
  const auto gone = ReadInstanceUsage(999'999'999);
  EXPECT_FALSE(gone.cpu_seconds.has_value());
}

}  // namespace
}  // namespace wisp::sandbox
