#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "wisp/store/sqlite_store.h"

namespace wisp::store {
namespace {

class SqliteApiKeysTest : public testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::TempDir() + "/wisp_api_keys_test_" + std::to_string(getpid()) + ".db";
    auto opened = SqliteStore::Open(path_);
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(*opened);
  }
  void TearDown() override {
    store_.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) unlink((path_ + suffix).c_str());
  }
  std::string path_;
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(SqliteApiKeysTest, PutListDelete) {
  ASSERT_TRUE(store_->PutApiKey({"WKB", "secret-b", "second", 2000}));
  ASSERT_TRUE(store_->PutApiKey({"WKA", "secret-a", "first", 1000}));
  auto keys = store_->ListApiKeys();
  ASSERT_TRUE(keys) << keys.error().message;
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].id, "WKA");  // oldest first
  EXPECT_EQ((*keys)[0].secret, "secret-a");
  EXPECT_EQ((*keys)[0].description, "first");
  EXPECT_EQ((*keys)[0].created_at_ms, 1000);

  const auto again = store_->PutApiKey({"WKA", "other", "", 3000});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kAlreadyExists);

  ASSERT_TRUE(store_->DeleteApiKey("WKA"));
  const auto gone = store_->DeleteApiKey("WKA");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, ErrorCode::kNotFound);
  keys = store_->ListApiKeys();
  ASSERT_TRUE(keys);
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].id, "WKB");
}

// Secrets are in this file: it must stay owner-only.
TEST_F(SqliteApiKeysTest, DatabaseFileIsOwnerOnly) {
  ASSERT_TRUE(store_->PutApiKey({"WKA", "secret-a", "", 1000}));
  struct stat st {};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// A second connection (the `wispd keys` command while wispd runs) sees what the first wrote.
TEST_F(SqliteApiKeysTest, SecondConnectionSeesKeys) {
  auto other = SqliteStore::Open(path_);
  ASSERT_TRUE(other) << other.error().message;
  ASSERT_TRUE((*other)->PutApiKey({"WKC", "secret-c", "cli", 1000}));
  auto keys = store_->ListApiKeys();
  ASSERT_TRUE(keys);
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].id, "WKC");
}

}  // namespace
}  // namespace wisp::store
