#include "wisp/common/thread_role.h"

#include <thread>

#include <gtest/gtest.h>

namespace wisp {
namespace {

TEST(ThreadRoleTest, TheFirstThreadToCheckOwnsTheRole) {
  ThreadRole role;
  bool other_first = false;
  std::thread([&] { other_first = role.IsCurrent(); }).join();
  EXPECT_TRUE(other_first);
  EXPECT_FALSE(role.IsCurrent());  // bound to the thread that checked first
}

TEST(ThreadRoleTest, ACallFromAnotherThreadAborts) {
  ThreadRole role;
  EXPECT_TRUE(role.IsCurrent());
  role.Check(__FILE__, __LINE__);  // the owner passes
  EXPECT_DEATH(std::thread([&] { role.Check("scheduler.cc", 42); }).join(),
               "scheduler.cc:42: called on the wrong thread");
}

}  // namespace
}  // namespace wisp
