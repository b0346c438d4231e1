#include "wisp/common/read_file.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>

namespace wisp {
namespace {

TEST(ReadWholeFileTest, ReadsAFileWholeAndNamesTheOneItCannotOpen) {
  const std::string path = ::testing::TempDir() + "/wisp-read-file-test";
  std::ofstream(path) << std::string(10000, 'x') << "end";
  auto text = ReadWholeFile(path);
  ASSERT_TRUE(text) << text.error().message;
  EXPECT_EQ(text->size(), 10003u);
  EXPECT_EQ(text->substr(10000), "end");
  ::unlink(path.c_str());
  auto missing = ReadWholeFile(path);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find(path), std::string::npos) << missing.error().message;
}

// The /proc file of a process that has ended is an error. (The crash this replaced needs the
// process to end between open and read, which a test cannot time: std::ifstream then threw.)
TEST(ReadWholeFileTest, AProcFileOfAnEndedProcessIsAnError) {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_FALSE(ReadWholeFile("/proc/" + std::to_string(child) + "/stat"));
}

}  // namespace
}  // namespace wisp
