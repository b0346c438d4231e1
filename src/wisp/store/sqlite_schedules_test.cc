#include <sqlite3.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "wisp/store/sqlite_store.h"

namespace wisp::store {
namespace {

constexpr const char* kSchedules = R"j([{"name":"tick","expression":"rate(1 minute)"}])j";

class SqliteSchedulesTest : public testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::TempDir() + "/wisp_schedules_test_" + std::to_string(getpid()) + ".db";
    store_ = Open();
    FunctionRecord f;
    f.id = "f1";
    f.name = "one";
    f.runtime = "node";
    f.handler = "index.handler";
    f.schedules_json = kSchedules;
    ASSERT_TRUE(store_->CreateFunction(f));
  }
  void TearDown() override {
    store_.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) unlink((path_ + suffix).c_str());
  }
  std::unique_ptr<SqliteStore> Open() {
    auto opened = SqliteStore::Open(path_);
    EXPECT_TRUE(opened) << opened.error().message;
    return opened ? std::move(*opened) : nullptr;
  }
  std::string path_;
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(SqliteSchedulesTest, TheSchedulesAreStoredWithTheFunction) {
  auto got = store_->GetFunction("f1");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->schedules_json, kSchedules);
}

TEST_F(SqliteSchedulesTest, OnlyTheFirstOfTwoClaimsOfASlotSucceeds) {
  EXPECT_EQ(*store_->LastFiring("f1", "tick"), std::nullopt);
  // Arming: the first insert wins, the second finds the row.
  EXPECT_TRUE(*store_->ClaimFiring("f1", "tick", std::nullopt, 1000));
  EXPECT_FALSE(*store_->ClaimFiring("f1", "tick", std::nullopt, 2000));
  EXPECT_EQ(*store_->LastFiring("f1", "tick"), 1000);
  // Two nodes that both read 1000 race for the slot at 60000: one wins.
  auto other = Open();
  EXPECT_TRUE(*store_->ClaimFiring("f1", "tick", 1000, 60000));
  EXPECT_FALSE(*other->ClaimFiring("f1", "tick", 1000, 60000));
  EXPECT_EQ(*other->LastFiring("f1", "tick"), 60000);
  ASSERT_TRUE(store_->ForgetFiring("f1", "tick"));
  EXPECT_EQ(*store_->LastFiring("f1", "tick"), std::nullopt);
}

TEST_F(SqliteSchedulesTest, AFunctionsFiringsGoWithIt) {
  EXPECT_TRUE(*store_->ClaimFiring("f1", "tick", std::nullopt, 1000));
  ASSERT_TRUE(store_->DeleteFunction("f1"));
  EXPECT_EQ(*store_->LastFiring("f1", "tick"), std::nullopt);
  auto gone = store_->ClaimFiring("f1", "tick", std::nullopt, 1000);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, ErrorCode::kNotFound);
}

// A database of a wispd before schedules: the column and the table are added on open.
TEST(SqliteSchedulesMigration, AnOlderDatabaseGetsTheSchedules) {
  const std::string path = testing::TempDir() + "/wisp_schedules_old_" + std::to_string(getpid());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, R"sql(
    CREATE TABLE functions (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, runtime TEXT NOT NULL,
      handler TEXT NOT NULL, code TEXT NOT NULL, timeout_seconds INTEGER NOT NULL,
      memory_mb INTEGER NOT NULL, vcpu REAL NOT NULL, env_json TEXT NOT NULL,
      version INTEGER NOT NULL, state TEXT NOT NULL, error TEXT NOT NULL,
      created_at_ms INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL, last_invoked_at_ms INTEGER);
    INSERT INTO functions VALUES ('f1', 'one', 'node', 'h', 'code', 3, 128, 1, '{}', 1, 'ready',
      '', 1, 1, NULL);
  )sql",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
  auto opened = SqliteStore::Open(path);
  ASSERT_TRUE(opened) << opened.error().message;
  auto got = (*opened)->GetFunction("f1");
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->schedules_json, "");
  EXPECT_TRUE(*(*opened)->ClaimFiring("f1", "s", std::nullopt, 5));
  opened->reset();
  for (const char* suffix : {"", "-wal", "-shm"}) unlink((path + suffix).c_str());
}

}  // namespace
}  // namespace wisp::store
