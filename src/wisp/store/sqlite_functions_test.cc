// The store as the source of truth: names, revisions (compare and swap), the change log,
// versions and aliases. Two connections on one file stand for two wispd processes.
#include <sqlite3.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "wisp/store/sqlite_store.h"

namespace wisp::store {
namespace {

class SqliteFunctionsTest : public testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::TempDir() + "/wisp_functions_test_" + std::to_string(getpid()) + ".db";
    store_ = Open();
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
  static FunctionRecord Function(std::string id, std::string name) {
    FunctionRecord f;
    f.id = std::move(id);
    f.name = std::move(name);
    f.runtime = "node";
    f.handler = "handler";
    f.code = "exports.handler = async () => 1;";
    f.state = "ready";
    f.created_at_ms = 1000;
    f.updated_at_ms = 1000;
    return f;
  }
  static VersionRecord Version(const FunctionRecord& f) {
    VersionRecord v;
    v.function_id = f.id;
    v.config = f;
    v.created_at_ms = 2000;
    return v;
  }
  static AliasRecord Alias(std::string function_id, std::string name, int version) {
    AliasRecord a;
    a.function_id = std::move(function_id);
    a.name = std::move(name);
    a.version = version;
    a.revision_id = name + "-r" + std::to_string(version);
    return a;
  }

  std::string path_;
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(SqliteFunctionsTest, ANameIsTakenOnceAcrossConnections) {
  auto other = Open();
  ASSERT_TRUE(store_->CreateFunction(Function("a", "same")));
  auto second = other->CreateFunction(Function("b", "same"));
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kAlreadyExists);
  auto same_id = other->CreateFunction(Function("a", "another"));
  ASSERT_FALSE(same_id);
  EXPECT_EQ(same_id.error().code, ErrorCode::kAlreadyExists);
  // A rename onto a taken name is refused too.
  ASSERT_TRUE(store_->CreateFunction(Function("c", "third")));
  auto stored = store_->GetFunction("c");
  ASSERT_TRUE(stored);
  FunctionRecord renamed = *stored;
  renamed.name = "same";
  auto update = store_->UpdateFunction(renamed, stored->revision);
  ASSERT_FALSE(update);
  EXPECT_EQ(update.error().code, ErrorCode::kAlreadyExists);
}

TEST_F(SqliteFunctionsTest, UpdateComparesTheRevisionAndOnlyOneOfTwoWritersWins) {
  auto other = Open();
  auto created = store_->CreateFunction(Function("f", "fn"));
  ASSERT_TRUE(created);
  // Both writers read revision `created`; the first update wins, the second conflicts.
  FunctionRecord mine = Function("f", "fn");
  mine.code = "mine";
  FunctionRecord theirs = Function("f", "fn");
  theirs.code = "theirs";
  auto first = other->UpdateFunction(theirs, *created);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_GT(*first, *created);
  auto second = store_->UpdateFunction(mine, *created);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kConflict);
  auto stored = store_->GetFunction("f");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->code, "theirs");
  EXPECT_EQ(stored->revision, *first);
  // Read again, retried: it applies on top.
  auto retried = store_->UpdateFunction(mine, stored->revision);
  ASSERT_TRUE(retried);
  EXPECT_EQ(store_->GetFunction("f")->code, "mine");
}

TEST_F(SqliteFunctionsTest, AnUpdateKeepsTheFunctionsInvocationRecordsAndVersions) {
  ASSERT_TRUE(store_->CreateFunction(Function("f", "fn")));
  InvocationRecord r;
  r.id = "i1";
  r.function_id = "f";
  r.request_id = "i1";
  r.status = "success";
  r.event_json = r.response_json = "{}";
  ASSERT_TRUE(store_->PutInvocations({r}));
  ASSERT_TRUE(store_->PublishVersion(Version(Function("f", "fn"))));
  auto stored = store_->GetFunction("f");
  ASSERT_TRUE(store_->UpdateFunction(*stored, stored->revision));
  EXPECT_EQ(store_->ListInvocations("f", 10, 0, "")->size(), 1u);
  EXPECT_EQ(store_->ListVersions("f")->size(), 1u);
}

TEST_F(SqliteFunctionsTest, UpdatesOfUnknownFunctionsAreNotFound) {
  auto update = store_->UpdateFunction(Function("nope", "nope"), 0);
  ASSERT_FALSE(update);
  EXPECT_EQ(update.error().code, ErrorCode::kNotFound);
}

TEST_F(SqliteFunctionsTest, ChangesListEveryWriteInRevisionOrder) {
  EXPECT_EQ(*store_->LatestRevision(), 0);
  auto other = Open();
  ASSERT_TRUE(store_->CreateFunction(Function("a", "a")));
  ASSERT_TRUE(other->CreateFunction(Function("b", "b")));
  const int64_t seen = *store_->LatestRevision();
  auto b = store_->GetFunction("b");
  ASSERT_TRUE(other->UpdateFunction(*b, b->revision));
  ASSERT_TRUE(store_->PublishVersion(Version(Function("a", "a"))));
  ASSERT_TRUE(store_->PutAlias(Alias("a", "live", 1), true, std::nullopt));
  ASSERT_TRUE(other->DeleteFunction("b"));
  auto changes = store_->Changes(seen, 100);
  ASSERT_TRUE(changes);
  ASSERT_EQ(changes->size(), 4u);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"b", "function"}, {"a", "versions"}, {"a", "aliases"}, {"b", "deleted"}};
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ((*changes)[i].function_id, expected[i].first) << i;
    EXPECT_EQ((*changes)[i].kind, expected[i].second) << i;
    EXPECT_EQ((*changes)[i].revision, seen + 1 + static_cast<int64_t>(i));
  }
  EXPECT_EQ(*store_->LatestRevision(), seen + 4);
  EXPECT_EQ(store_->Changes(seen, 2)->size(), 2u);
  EXPECT_TRUE(store_->Changes(seen + 4, 100)->empty());
}

TEST_F(SqliteFunctionsTest, ActivityIsNoChange) {
  ASSERT_TRUE(store_->CreateFunction(Function("a", "a")));
  const int64_t before = *store_->LatestRevision();
  ASSERT_TRUE(store_->RecordActivity("a", 1234));
  EXPECT_EQ(*store_->LatestRevision(), before);
  EXPECT_EQ(store_->GetFunction("a")->last_invoked_at_ms, 1234);
}

TEST_F(SqliteFunctionsTest, DescriptionAndTagsRoundTrip) {
  FunctionRecord f = Function("a", "a");
  f.description = "the first";
  f.tags = {{"team", "core"}, {"env", "prod"}};
  ASSERT_TRUE(store_->CreateFunction(f));
  store_ = Open();
  auto stored = store_->GetFunction("a");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->description, "the first");
  EXPECT_EQ(stored->tags, f.tags);
}

TEST_F(SqliteFunctionsTest, VersionNumbersCountUpAndAreNeverReused) {
  FunctionRecord f = Function("a", "a");
  ASSERT_TRUE(store_->CreateFunction(f));
  f.code = "one";
  f.code_tree = "tree1";
  auto v1 = store_->PublishVersion(Version(f));
  f.code = "two";
  auto v2 = store_->PublishVersion(Version(f));
  ASSERT_TRUE(v1 && v2);
  EXPECT_EQ(v1->number, 1);
  EXPECT_EQ(v2->number, 2);
  ASSERT_TRUE(store_->DeleteVersion("a", 2));
  auto v3 = store_->PublishVersion(Version(f));
  ASSERT_TRUE(v3);
  EXPECT_EQ(v3->number, 3);
  auto listed = store_->ListVersions("a");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].number, 1);
  EXPECT_EQ((*listed)[0].config.code, "one");
  EXPECT_EQ((*listed)[0].config.code_tree, "tree1");
  EXPECT_EQ((*listed)[1].number, 3);
  auto missing = store_->PublishVersion(Version(Function("nope", "nope")));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

TEST_F(SqliteFunctionsTest, AliasesNeedTheirVersionsAndHoldThem) {
  FunctionRecord f = Function("a", "a");
  ASSERT_TRUE(store_->CreateFunction(f));
  ASSERT_TRUE(store_->PublishVersion(Version(f)));
  ASSERT_TRUE(store_->PublishVersion(Version(f)));
  auto unknown = store_->PutAlias(Alias("a", "live", 7), true, std::nullopt);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
  AliasRecord canary = Alias("a", "live", 1);
  canary.additional_version = 2;
  canary.additional_weight = 0.25;
  ASSERT_TRUE(store_->PutAlias(canary, true, std::nullopt));
  auto again = store_->PutAlias(canary, true, std::nullopt);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kAlreadyExists);
  // Neither version goes while the alias uses it.
  for (int number : {1, 2}) {
    auto deleted = store_->DeleteVersion("a", number);
    ASSERT_FALSE(deleted);
    EXPECT_EQ(deleted.error().code, ErrorCode::kConflict);
  }
  // A replace with a stale revision id conflicts; with the stored one it applies.
  AliasRecord moved = Alias("a", "live", 2);
  auto stale = store_->PutAlias(moved, false, std::string("stale"));
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, ErrorCode::kConflict);
  ASSERT_TRUE(store_->PutAlias(moved, false, canary.revision_id));
  auto aliases = store_->ListAliases("a");
  ASSERT_TRUE(aliases);
  ASSERT_EQ(aliases->size(), 1u);
  EXPECT_EQ((*aliases)[0].version, 2);
  EXPECT_FALSE((*aliases)[0].additional_version);
  ASSERT_TRUE(store_->DeleteVersion("a", 1));
  auto missing = store_->PutAlias(Alias("a", "other", 1), false, std::nullopt);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(store_->DeleteAlias("a", "live"));
  EXPECT_EQ(store_->DeleteAlias("a", "live").error().code, ErrorCode::kNotFound);
  // Deleting the function takes its versions and aliases along.
  ASSERT_TRUE(store_->PutAlias(Alias("a", "live", 2), true, std::nullopt));
  ASSERT_TRUE(store_->DeleteFunction("a"));
  EXPECT_TRUE(store_->ListVersions("a")->empty());
  EXPECT_TRUE(store_->ListAliases("a")->empty());
}

TEST_F(SqliteFunctionsTest, AnOlderDatabaseGetsTheNewColumnsAndTables) {
  ASSERT_TRUE(store_->CreateFunction(Function("a", "a")));
  store_.reset();
  // A database of a wispd before versions, tags and revisions.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  for (const char* sql :
       {"DROP TABLE function_versions", "DROP TABLE function_aliases",
        "DROP TABLE function_changes", "ALTER TABLE functions DROP COLUMN description",
        "ALTER TABLE functions DROP COLUMN tags_json", "ALTER TABLE functions DROP COLUMN revision",
        "ALTER TABLE functions DROP COLUMN last_version_number",
        "ALTER TABLE functions DROP COLUMN url_config_json",
        "ALTER TABLE functions DROP COLUMN project", "ALTER TABLE functions DROP COLUMN file_path",
        "ALTER TABLE functions DROP COLUMN active",
        "ALTER TABLE invocations DROP COLUMN executed_version"}) {
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sql;
  }
  sqlite3_close(db);
  store_ = Open();
  ASSERT_TRUE(store_);
  auto stored = store_->GetFunction("a");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->revision, 0);
  EXPECT_TRUE(stored->tags.empty());
  EXPECT_EQ(stored->url_config_json, "");  // no URL
  EXPECT_EQ(stored->project, "");          // in no project, active
  EXPECT_EQ(stored->file_path, "");
  EXPECT_TRUE(stored->active);
  // Its functions take part as any other: updated against revision 0, versioned.
  ASSERT_TRUE(store_->UpdateFunction(*stored, 0));
  auto version = store_->PublishVersion(Version(*stored));
  ASSERT_TRUE(version);
  EXPECT_EQ(version->number, 1);
}

TEST_F(SqliteFunctionsTest, TheUrlConfigIsStoredWithTheFunction) {
  FunctionRecord f = Function("a", "a");
  f.url_config_json = R"({"AuthType":"NONE"})";
  ASSERT_TRUE(store_->CreateFunction(f));
  auto stored = store_->GetFunction("a");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->url_config_json, R"({"AuthType":"NONE"})");
  stored->url_config_json.clear();
  ASSERT_TRUE(store_->UpdateFunction(*stored, stored->revision));
  EXPECT_EQ(store_->GetFunction("a")->url_config_json, "");
}

TEST_F(SqliteFunctionsTest, ProjectFilePathAndActiveRoundTrip) {
  FunctionRecord f = Function("a", "shop--hello");
  f.project = "shop";
  f.file_path = "api/hello.js";
  ASSERT_TRUE(store_->CreateFunction(f));
  auto stored = store_->GetFunction("a");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->project, "shop");
  EXPECT_EQ(stored->file_path, "api/hello.js");
  EXPECT_TRUE(stored->active);
  stored->active = false;
  ASSERT_TRUE(store_->UpdateFunction(*stored, stored->revision));
  EXPECT_FALSE(store_->GetFunction("a")->active);
  EXPECT_FALSE(store_->ListFunctions()->front().active);
}

}  // namespace
}  // namespace wisp::store
