#include "wisp/common/ids.h"

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace wisp {
namespace {

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST(NewUuid, IsCanonicalVersion7AndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = NewUuid();
    ASSERT_EQ(id.size(), 36u) << id;
    for (int dash : {8, 13, 18, 23}) EXPECT_EQ(id[dash], '-') << id;
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef-"), std::string::npos) << id;
    EXPECT_EQ(id[14], '7') << id;
    EXPECT_TRUE(id[19] == '8' || id[19] == '9' || id[19] == 'a' || id[19] == 'b') << id;
    EXPECT_TRUE(seen.insert(id).second) << "duplicate " << id;
  }
}

TEST(NewUuid, StartsWithItsMillisecondAndSortsByIt) {
  const int64_t before = NowMillis();
  const std::string first = NewUuid();
  const int64_t after = NowMillis();
  const std::string timestamp_hex = first.substr(0, 8) + first.substr(9, 4);
  const int64_t timestamp = std::stoll(timestamp_hex, nullptr, 16);
  EXPECT_GE(timestamp, before);
  EXPECT_LE(timestamp, after);

  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_LT(first, NewUuid());
}

}  // namespace
}  // namespace wisp
